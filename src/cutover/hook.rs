//! Cutover through a user command (DNS update, service discovery, ...):
//! `sh -c <command>` with the new primary in its environment.

use super::{CutoverError, CutoverTarget};
use crate::config::HookSection;
use std::os::unix::process::CommandExt as _;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};

/// How much of the hook's stderr an error quotes.
const STDERR_TAIL_BYTES: usize = 2048;
/// After the hook exits (or is killed), how long its output pipes may stay open.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

pub async fn cut_over(
    section: &HookSection,
    target: &CutoverTarget,
) -> Result<String, CutoverError> {
    let command = section.command.clone();
    let timeout = section.timeout.0;
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(&command)
        .env("INSTAREC_NEW_PRIMARY_HOST", &target.host)
        .env("INSTAREC_NEW_PRIMARY_PORT", target.port.to_string())
        .env("INSTAREC_EPOCH", target.epoch.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // Its own process group, so a timeout kills what the shell started too.
    cmd.as_std_mut().process_group(0);
    let mut child = cmd.spawn().map_err(|e| CutoverError::HookSpawn {
        command: command.clone(),
        reason: e.to_string(),
    })?;
    let stdout = child.stdout.take().map(|out| tokio::spawn(read_tail(out)));
    let stderr = child.stderr.take().map(|err| tokio::spawn(read_tail(err)));

    let status = tokio::time::timeout(timeout, child.wait()).await;
    if status.is_err() {
        if let Some(pid) = child.id() {
            // SAFETY: plain syscall; the child is unreaped, so its pgid cannot be reused.
            unsafe { libc::kill(-(pid as libc::pid_t), libc::SIGKILL) };
        }
        let _ = child.wait().await;
    }
    let stderr_tail = collect(stderr).await;
    let stdout_tail = collect(stdout).await;
    match status {
        Err(_) => Err(CutoverError::HookTimeout {
            command,
            timeout: humantime::format_duration(timeout).to_string(),
            stderr: stderr_tail,
        }),
        Ok(Err(e)) => Err(CutoverError::HookSpawn {
            command,
            reason: format!("waiting for it: {e}"),
        }),
        Ok(Ok(status)) if !status.success() => Err(CutoverError::HookFailed {
            command,
            status: status.to_string(),
            stderr: stderr_tail,
        }),
        Ok(Ok(_)) => {
            let said = stdout_tail.lines().last().unwrap_or("").trim().to_string();
            Ok(if said.is_empty() {
                format!("hook {command:?} succeeded")
            } else {
                format!("hook {command:?} succeeded: {said}")
            })
        }
    }
}

/// Reads everything, keeping only the last STDERR_TAIL_BYTES.
async fn read_tail<R: AsyncRead + Unpin>(mut reader: R) -> Vec<u8> {
    let mut tail = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => return tail,
            Ok(n) => {
                tail.extend_from_slice(&buf[..n]);
                if tail.len() > STDERR_TAIL_BYTES {
                    tail.drain(..tail.len() - STDERR_TAIL_BYTES);
                }
            }
        }
    }
}

async fn collect(reader: Option<tokio::task::JoinHandle<Vec<u8>>>) -> String {
    let Some(handle) = reader else {
        return String::new();
    };
    // A grandchild that escaped the process group may hold the pipe open.
    let abort = handle.abort_handle();
    match tokio::time::timeout(DRAIN_GRACE, handle).await {
        Ok(Ok(bytes)) => String::from_utf8_lossy(&bytes).trim_end().to_string(),
        Ok(Err(_)) => String::new(),
        Err(_) => {
            abort.abort();
            String::new()
        }
    }
}
