//! A mariadbd that instarec runs on a restored data directory: started as
//! the `mysql` user when we are root, on 127.0.0.1 and a socket inside the
//! data directory, with gtid_strict_mode on; stopped with SIGTERM (InnoDB
//! shuts down cleanly) or left running.

use super::data_dir::PID_FILE;
use super::error::MysqlRestoreError;
use super::session::Session;
use super::tool::{self, Tool};
use crate::os_user;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// The socket and log mariadbd gets, inside its data directory.
pub const SOCKET_FILE: &str = "instarec-mariadbd.sock";
pub const LOG_FILE: &str = "instarec-mariadbd.err";

const READY_TIMEOUT: Duration = Duration::from_secs(300);
const STOP_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// None: a free port.
    pub port: Option<u16>,
    /// Must differ from every server_id in the replayed binlog: a replica
    /// skips events that carry its own.
    pub server_id: u32,
    /// The OS user mariadbd runs as when we are root.
    pub os_user: String,
    /// Where mariadbd is, if not on PATH or in /usr/sbin.
    pub bin_dir: Option<PathBuf>,
    /// Write a binlog (with log_slave_updates): for a standby that may be
    /// promoted and shipped from. A replay does without.
    pub log_bin: bool,
    /// Apply fast rather than durably (a replay that crashes is redone
    /// from the backup anyway): commits flush the redo log once a second,
    /// and replication applies in parallel (optimistic mode keeps the
    /// commit order, so strict GTID order holds).
    pub replay_tuning: bool,
    /// Who to log in as over the socket, and the password (None: none;
    /// root over the socket as OS root works with unix_socket auth).
    pub db_user: String,
    pub db_password: Option<String>,
}

impl ServerOptions {
    pub fn new(server_id: u32) -> Self {
        ServerOptions {
            port: None,
            server_id,
            os_user: "mysql".into(),
            bin_dir: None,
            log_bin: false,
            replay_tuning: false,
            db_user: "root".into(),
            db_password: None,
        }
    }
}

/// The command line `start` runs, for printing too.
pub fn command_line(
    program: &Path,
    data_dir: &Path,
    port: u16,
    opts: &ServerOptions,
) -> Vec<String> {
    let d = data_dir.display();
    let mut args = vec![
        program.display().to_string(),
        // First, or it is ignored: the restored directory is all it needs.
        "--no-defaults".into(),
        format!("--datadir={d}"),
        format!("--port={port}"),
        "--bind-address=127.0.0.1".into(),
        format!("--socket={d}/{SOCKET_FILE}"),
        format!("--pid-file={d}/{PID_FILE}"),
        format!("--log-error={d}/{LOG_FILE}"),
        format!("--server-id={}", opts.server_id),
        "--gtid-strict-mode=1".into(),
        "--skip-slave-start".into(),
        "--skip-name-resolve".into(),
    ];
    if opts.replay_tuning {
        args.extend([
            "--innodb-flush-log-at-trx-commit=2".into(),
            "--slave-parallel-threads=4".into(),
            "--slave-parallel-mode=optimistic".into(),
        ]);
    }
    if opts.log_bin {
        args.extend([
            "--log-bin=mysql-bin".into(),
            "--log-slave-updates".into(),
            "--binlog-format=ROW".into(),
        ]);
    }
    args
}

pub struct Mariadbd {
    child: Option<tokio::process::Child>,
    pub pid: u32,
    pub port: u16,
    pub socket: PathBuf,
    pub log: PathBuf,
}

impl Mariadbd {
    /// Starts mariadbd on `data_dir` and waits until it answers.
    pub async fn start(
        data_dir: &Path,
        opts: &ServerOptions,
    ) -> Result<Mariadbd, MysqlRestoreError> {
        let program = tool::find_in(Tool::Mariadbd, opts.bin_dir.as_deref())?;
        let port = match opts.port {
            Some(p) => p,
            None => os_user::free_port().map_err(|source| MysqlRestoreError::Io {
                what: "find a free port for",
                path: data_dir.display().to_string(),
                source,
            })?,
        };
        let args = command_line(&program, data_dir, port, opts);
        let log = data_dir.join(LOG_FILE);
        let log_start = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        let mut cmd = tokio::process::Command::new(&program);
        cmd.args(&args[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: a Ctrl-C on our terminal reaches us,
            // and we stop it cleanly.
            .process_group(0);
        if let Some((uid, gid)) = super::data_dir::owner(&opts.os_user)? {
            cmd.uid(uid).gid(gid);
        }
        let child = cmd.spawn().map_err(|source| MysqlRestoreError::Io {
            what: "run",
            path: program.display().to_string(),
            source,
        })?;
        let pid = child.id().unwrap_or(0);
        tracing::info!(pid, port, data_dir = %data_dir.display(), "mariadbd starting");
        let mut server = Mariadbd {
            child: Some(child),
            pid,
            port,
            socket: data_dir.join(SOCKET_FILE),
            log,
        };
        server.wait_ready(data_dir, opts, log_start).await?;
        Ok(server)
    }

    async fn wait_ready(
        &mut self,
        data_dir: &Path,
        opts: &ServerOptions,
        log_start: u64,
    ) -> Result<(), MysqlRestoreError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let fail = |reason: String, log: &Path| MysqlRestoreError::ServerStart {
            data_dir: data_dir.display().to_string(),
            reason,
            log: log.display().to_string(),
            tail: log_since(log, log_start),
        };
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(fail(format!("exited during startup ({status})"), &self.log));
                }
            }
            if self.socket.exists() {
                match Session::connect(&self.socket, &self.log, opts).await {
                    Ok(s) => {
                        s.close().await;
                        return Ok(());
                    }
                    Err(e) if Instant::now() >= deadline => {
                        return Err(fail(format!("does not let us in: {e}"), &self.log))
                    }
                    Err(_) => {}
                }
            }
            if Instant::now() >= deadline {
                return Err(fail(
                    format!("is not answering after {READY_TIMEOUT:?}"),
                    &self.log,
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM, then waits for it to exit.
    pub async fn stop(mut self) -> Result<(), MysqlRestoreError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        // SAFETY: kill with a pid we spawned and have not reaped.
        unsafe { libc::kill(self.pid as i32, libc::SIGTERM) };
        match tokio::time::timeout(STOP_TIMEOUT, child.wait()).await {
            Ok(_) => {
                tracing::info!(pid = self.pid, "mariadbd stopped");
                Ok(())
            }
            Err(_) => {
                let _ = child.kill().await;
                Err(MysqlRestoreError::ServerStart {
                    data_dir: self
                        .socket
                        .parent()
                        .unwrap_or(Path::new(""))
                        .display()
                        .to_string(),
                    reason: format!(
                        "did not stop within {STOP_TIMEOUT:?} of SIGTERM and was killed"
                    ),
                    log: self.log.display().to_string(),
                    tail: tool::file_tail(&self.log, 20),
                })
            }
        }
    }

    /// Leaves it running after we exit.
    pub fn detach(mut self) -> u32 {
        self.child = None;
        self.pid
    }
}

impl Drop for Mariadbd {
    /// An error path: the server must not outlive a failed restore.
    fn drop(&mut self) {
        if self.child.is_some() {
            // SAFETY: kill with a pid we spawned and have not reaped.
            unsafe { libc::kill(self.pid as i32, libc::SIGTERM) };
        }
    }
}

fn log_since(log: &Path, from: u64) -> String {
    let bytes = std::fs::read(log).unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes[(from as usize).min(bytes.len())..]).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
