//! instarec itself as a child process of the demo: long-running commands
//! in their own process group (stopped on drop), one-shot commands awaited.

use anyhow::{bail, Context as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub struct InstarecChild {
    child: Option<Child>,
}

impl InstarecChild {
    /// A long-running command (ship, proxy), logging to `log`.
    pub fn spawn(config: &Path, args: &[&str], log: &Path) -> anyhow::Result<Self> {
        let log = std::fs::File::create(log)?;
        let child = Command::new(instarec_exe()?)
            .arg("--config")
            .arg(config)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting instarec {}", args.join(" ")))?;
        Ok(InstarecChild { child: Some(child) })
    }

    /// A one-shot command; returns its stdout, fails with its log's tail.
    pub async fn run(config: &Path, args: &[&str], log: &Path) -> anyhow::Result<String> {
        let out = tokio::process::Command::new(instarec_exe()?)
            .arg("--config")
            .arg(config)
            .args(args)
            .stdin(Stdio::null())
            // An interrupted demo (Ctrl-C) leaves nothing running.
            .kill_on_drop(true)
            .output()
            .await
            .with_context(|| format!("running instarec {}", args.join(" ")))?;
        std::fs::write(log, &out.stderr)?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let tail: Vec<&str> = err.lines().rev().take(5).collect();
            bail!(
                "instarec {} failed ({}):\n{}",
                args.join(" "),
                out.status,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// SIGTERM (ship flushes first), then wait.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: plain syscall on our own child.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
            let _ = child.wait();
        }
    }
}

/// This binary. If it was replaced on disk while the demo runs (an upgrade,
/// a rebuild), Linux reports the old path with " (deleted)": use the new
/// binary at that path.
fn instarec_exe() -> std::io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    if exe.exists() {
        return Ok(exe);
    }
    match exe.to_str().and_then(|p| p.strip_suffix(" (deleted)")) {
        Some(path) => Ok(PathBuf::from(path)),
        None => Ok(exe),
    }
}

impl Drop for InstarecChild {
    fn drop(&mut self) {
        self.stop();
    }
}
