//! `restore --start`: run a stock `postgres -D` on the restored directory
//! until recovery reaches its target, report where it ended, and stop it
//! cleanly (unless asked to keep it running).
//!
//! instarec talks to the server over a private Unix socket directory
//! (mode 0700) with its own hba file that trusts local connections there,
//! so it needs no password and opens nothing to the network.

use crate::os_user::{self, running_as_root};
use chrono::{DateTime, TimeZone, Utc};
use instarec_postgres::lsn::Lsn;
use instarec_postgres::version::ServerVersionNum;
use instarec_postgres::ConnConfig;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const POLL: Duration = Duration::from_millis(200);
const STOP_GRACE: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot find the `postgres` binary for PostgreSQL {version}; put it on PATH or pass --pg-bin-dir")]
    NoBinary { version: String },
    #[error("backup {backup} was taken on PostgreSQL {backup_major}, but {binary} is PostgreSQL {binary_major}; a server of one major cannot run another's data directory: pass --pg-bin-dir with PostgreSQL {backup_major}'s bin dir (Debian: /usr/lib/postgresql/{backup_major}/bin)")]
    WrongMajor {
        backup: String,
        backup_major: u32,
        binary: String,
        binary_major: String,
    },
    #[error("running as root, but user {user} does not exist; create it (Debian: install postgresql) or run instarec as the server's user")]
    NoUser { user: String },
    #[error("cannot prepare {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("postgres on {data_dir} exited during recovery ({status}); last log lines from {log}:\n{tail}")]
    Exited {
        data_dir: String,
        status: String,
        log: String,
        tail: String,
    },
    #[error("postgres at {addr} accepts connections but its recovery status query failed: {reason}; the server was stopped: check --db-user names a role of the restored cluster")]
    Query { addr: String, reason: String },
    #[error("postgres on {data_dir} did not finish recovery within {timeout} (last replayed LSN: {replayed}); the server was stopped and the directory is left as it is: read {log} to see why recovery has not ended, then start `postgres -D {data_dir}` yourself or retry with a longer --start-timeout; last log lines:\n{tail}")]
    Timeout {
        data_dir: String,
        timeout: String,
        replayed: String,
        log: String,
        tail: String,
    },
    #[error("recovery of {data_dir} was interrupted; the server was stopped, the directory is left as it is (log: {log})")]
    Cancelled { data_dir: String, log: String },
}

#[derive(Debug, Clone)]
pub struct StartOptions {
    /// None: a free port.
    pub port: Option<u16>,
    /// Leave the server running after recovery ends.
    pub keep_running: bool,
    /// A role that exists in the restored cluster (any role can run the
    /// recovery functions).
    pub db_user: String,
    /// The OS account to run postgres as when instarec runs as root.
    pub os_user: String,
    /// Where `postgres` lives; None: PATH, then /usr/lib/postgresql/<major>/bin.
    pub bin_dir: Option<PathBuf>,
    /// From the server's start: a recovery that has not ended or paused by
    /// then is stopped and reported as an error.
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryEnd {
    /// Recovery ended and the server promoted itself (read-write).
    Promoted,
    /// Recovery paused at the target (--pause): read-only, inspectable.
    Paused,
}

#[derive(Debug, Clone)]
pub struct RecoveryOutcome {
    pub end: RecoveryEnd,
    /// The end of the last WAL record replayed.
    pub replay_lsn: Lsn,
    /// Commit time of the last transaction replayed.
    pub last_commit: Option<DateTime<Utc>>,
    pub port: u16,
    pub socket_dir: PathBuf,
    pub log: PathBuf,
    /// Some when the server was left running.
    pub pid: Option<u32>,
}

/// Starts postgres on `data_dir`, waits until recovery ends or pauses,
/// reports, and stops it unless `keep_running`.
pub async fn recover(
    data_dir: &Path,
    opts: &StartOptions,
    cancel: &CancellationToken,
) -> Result<RecoveryOutcome, ServerError> {
    let postgres = find_postgres(data_dir, opts.bin_dir.as_deref())?;
    let owner = if running_as_root() {
        let user = lookup_user(&opts.os_user)?;
        chown_tree(data_dir, user)?;
        Some(user)
    } else {
        None
    };
    let port = match opts.port {
        Some(p) => p,
        None => free_port()?,
    };
    // /tmp, not $TMPDIR: the server's user must reach it, and socket paths
    // are limited to ~100 bytes.
    let tmp = Some(PathBuf::from("/tmp"))
        .filter(|t| t.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    let socket_dir = tmp.join(format!("instarec-restore-{}-{port}", std::process::id()));
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| ServerError::Io { path, source }
    };
    std::fs::create_dir_all(&socket_dir).map_err(io(&socket_dir))?;
    // Removed on every way out except a server left running on it.
    let mut socket_guard = SocketDirGuard(Some(socket_dir.clone()));
    std::fs::set_permissions(&socket_dir, std::fs::Permissions::from_mode(0o700))
        .map_err(io(&socket_dir))?;
    let hba = socket_dir.join("pg_hba.conf");
    let original = std::fs::read_to_string(data_dir.join("pg_hba.conf")).unwrap_or_default();
    std::fs::write(
        &hba,
        format!("# instarec restore: trust only this private socket dir\nlocal all all trust\n{original}"),
    )
    .map_err(io(&hba))?;
    if let Some((uid, gid)) = owner {
        chown_tree(&socket_dir, (uid, gid))?;
    }
    let log = data_dir.join("instarec-recovery.log");
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .map_err(io(&log))?;
    let log_start = log_file.metadata().map(|m| m.len()).unwrap_or(0);
    let log_err = log_file.try_clone().map_err(io(&log))?;

    let mut cmd = std::process::Command::new(&postgres);
    cmd.arg("-D")
        .arg(data_dir)
        .arg("-c")
        .arg(format!("port={port}"))
        .arg("-c")
        .arg(format!("unix_socket_directories={}", socket_dir.display()))
        .arg("-c")
        .arg(format!("hba_file={}", hba.display()))
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(log_err)
        // Its own process group: a Ctrl-C meant for instarec must not
        // reach a server that --keep-running leaves behind.
        .process_group(0);
    if !opts.keep_running {
        cmd.arg("-c").arg("listen_addresses=");
    }
    if let Some((uid, gid)) = owner {
        cmd.uid(uid).gid(gid);
    }
    let mut child = tokio::process::Command::from(cmd)
        .spawn()
        .map_err(io(&postgres))?;
    let pid = child.id().unwrap_or(0);
    tracing::info!(pid, port, data_dir = %data_dir.display(), log = %log.display(), "postgres started, waiting for recovery to end");

    let conn = ConnConfig::from_url(&format!(
        "postgres://{}@localhost/template1?host={}&port={port}&sslmode=disable&application_name=instarec-restore",
        percent(&opts.db_user),
        percent(&socket_dir.display().to_string()),
    ))
    .map_err(|e| ServerError::Io {
        path: socket_dir.display().to_string(),
        source: std::io::Error::other(e),
    })?;

    let exited = |status: String| ServerError::Exited {
        data_dir: data_dir.display().to_string(),
        status,
        log: log.display().to_string(),
        tail: log_tail(&log, log_start, 20),
    };
    let deadline = tokio::time::Instant::now() + opts.timeout;
    let mut replayed = None;
    let outcome = loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(exited(status.to_string()));
        }
        // A poll that hangs (a server that stopped answering) must not
        // outlast the deadline either.
        let polled = tokio::time::timeout_at(deadline, poll_state(&conn))
            .await
            .unwrap_or(Ok(None));
        match polled {
            Ok(Some(state)) => {
                if let Some(end) = state.end {
                    break (end, state);
                }
                tracing::debug!(replay = %state.replay_lsn, "recovering");
                replayed = Some(state.replay_lsn);
            }
            Ok(None) => {}
            Err(reason) => {
                stop(&mut child, pid).await;
                return Err(ServerError::Query {
                    addr: conn.addr(),
                    reason,
                });
            }
        }
        if tokio::time::Instant::now() >= deadline {
            stop(&mut child, pid).await;
            return Err(ServerError::Timeout {
                data_dir: data_dir.display().to_string(),
                timeout: humantime::format_duration(opts.timeout).to_string(),
                replayed: replayed.map_or_else(
                    || "none: the server never accepted connections".into(),
                    |l| l.to_string(),
                ),
                log: log.display().to_string(),
                tail: log_tail(&log, log_start, 20),
            });
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = cancel.cancelled() => {
                stop(&mut child, pid).await;
                return Err(ServerError::Cancelled {
                    data_dir: data_dir.display().to_string(),
                    log: log.display().to_string(),
                });
            }
        }
    };
    let (end, state) = outcome;
    let still_running = if opts.keep_running {
        Some(pid)
    } else {
        stop(&mut child, pid).await;
        None
    };
    if still_running.is_some() {
        socket_guard.0 = None;
    }
    drop(socket_guard);
    Ok(RecoveryOutcome {
        end,
        replay_lsn: state.replay_lsn,
        last_commit: state.last_commit,
        port,
        socket_dir,
        log,
        pid: still_running,
    })
}

/// The private socket dir of a server this restore started; removed when
/// dropped unless the server is left running on it.
struct SocketDirGuard(Option<PathBuf>);

impl Drop for SocketDirGuard {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

struct State {
    end: Option<RecoveryEnd>,
    replay_lsn: Lsn,
    last_commit: Option<DateTime<Utc>>,
}

/// One look at the server: Ok(None) while it does not accept connections
/// yet (it does once consistent, as a hot standby); Err when it accepts
/// them but the status query fails, which waiting would not fix.
async fn poll_state(conn: &ConnConfig) -> Result<Option<State>, String> {
    let client = match instarec_postgres::connect_sql(conn).await {
        Ok(c) => c,
        // A missing role or database will not appear by waiting.
        Err(e) if e.to_string().contains("does not exist") => return Err(e.to_string()),
        Err(_) => return Ok(None),
    };
    let rows = client
        .simple_query(
            // The pause state errors outside recovery: ask only during it.
            "SELECT pg_is_in_recovery()::text, \
             CASE WHEN pg_is_in_recovery() THEN pg_get_wal_replay_pause_state() ELSE 'not paused' END, \
             coalesce(pg_last_wal_replay_lsn(), '0/0')::text, \
             (extract(epoch FROM pg_last_xact_replay_timestamp()) * 1000000)::bigint::text",
        )
        .await
        .map_err(|e| e.to_string())?;
    let row = rows
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        })
        .ok_or("the status query returned no row")?;
    let in_recovery = row.get(0) == Some("true");
    let paused = row.get(1) == Some("paused");
    let replay_lsn = row
        .get(2)
        .and_then(|l| l.parse().ok())
        .ok_or("the status query returned no replay LSN")?;
    let last_commit = row
        .get(3)
        .and_then(|m| m.parse::<i64>().ok())
        .and_then(|micros| Utc.timestamp_micros(micros).single());
    let end = match (in_recovery, paused) {
        (false, _) => Some(RecoveryEnd::Promoted),
        (true, true) => Some(RecoveryEnd::Paused),
        (true, false) => None,
    };
    Ok(Some(State {
        end,
        replay_lsn,
        last_commit,
    }))
}

/// Fast shutdown (SIGINT), then immediate (SIGQUIT) if it takes too long.
async fn stop(child: &mut tokio::process::Child, pid: u32) {
    signal(pid, libc::SIGINT);
    if tokio::time::timeout(STOP_GRACE, child.wait())
        .await
        .is_err()
    {
        signal(pid, libc::SIGQUIT);
        let _ = child.wait().await;
    }
}

fn signal(pid: u32, sig: i32) {
    if pid > 0 {
        // SAFETY: kill has no memory-safety preconditions; pid is our child.
        unsafe {
            libc::kill(pid as i32, sig);
        }
    }
}

// The OS helpers live in crate::os_user; these only name the failure.
fn lookup_user(name: &str) -> Result<(u32, u32), ServerError> {
    os_user::lookup_user(name).ok_or_else(|| ServerError::NoUser { user: name.into() })
}

fn chown_tree(path: &Path, owner: (u32, u32)) -> Result<(), ServerError> {
    os_user::chown_tree(path, owner).map_err(|source| ServerError::Io {
        path: path.display().to_string(),
        source,
    })
}

fn free_port() -> Result<u16, ServerError> {
    os_user::free_port().map_err(|source| ServerError::Io {
        path: "127.0.0.1:0".into(),
        source,
    })
}

/// `postgres` from --pg-bin-dir, PATH, or Debian's versioned dir.
fn find_postgres(data_dir: &Path, bin_dir: Option<&Path>) -> Result<PathBuf, ServerError> {
    let version = std::fs::read_to_string(data_dir.join("PG_VERSION"))
        .map(|v| v.trim().to_string())
        .unwrap_or_default();
    find_postgres_for(&version, bin_dir)
}

/// Before anything is written: the `postgres` that `recover` would run
/// must be of the major backup `backup` was taken on (`backup_major`).
pub fn check_binary_major(
    backup: &str,
    backup_major: u32,
    bin_dir: Option<&Path>,
) -> Result<(), ServerError> {
    let postgres = find_postgres_for(&backup_major.to_string(), bin_dir)?;
    let io = |source| ServerError::Io {
        path: postgres.display().to_string(),
        source,
    };
    let out = std::process::Command::new(&postgres)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(io)?;
    // "postgres (PostgreSQL) 18.4"
    let text = String::from_utf8_lossy(&out.stdout);
    let reported = text.split_whitespace().last().unwrap_or("");
    let binary_major = ServerVersionNum::from_server_version(reported).map(ServerVersionNum::major);
    if binary_major == Some(backup_major) {
        return Ok(());
    }
    Err(ServerError::WrongMajor {
        backup: backup.to_string(),
        backup_major,
        binary: postgres.display().to_string(),
        binary_major: match binary_major {
            Some(m) => m.to_string(),
            None => format!("of unknown major ({:?})", text.trim()),
        },
    })
}

fn find_postgres_for(version: &str, bin_dir: Option<&Path>) -> Result<PathBuf, ServerError> {
    let version = version.to_string();
    let mut dirs: Vec<PathBuf> = bin_dir.map(Path::to_path_buf).into_iter().collect();
    if bin_dir.is_none() {
        if !version.is_empty() {
            dirs.push(PathBuf::from(format!("/usr/lib/postgresql/{version}/bin")));
        }
        if let Some(path) = std::env::var_os("PATH") {
            dirs.extend(std::env::split_paths(&path));
        }
    }
    dirs.into_iter()
        .map(|d| d.join("postgres"))
        .find(|p| p.is_file())
        .ok_or(ServerError::NoBinary { version })
}

fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn log_tail(log: &Path, from: u64, lines: usize) -> String {
    let text = std::fs::read(log).unwrap_or_default();
    let start = (from as usize).min(text.len());
    let text = String::from_utf8_lossy(&text[start..]);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encodes_socket_paths() {
        assert_eq!(percent("/tmp/a b"), "%2Ftmp%2Fa%20b");
        assert_eq!(percent("postgres"), "postgres");
    }
}
