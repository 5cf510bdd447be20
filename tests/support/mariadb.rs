//! A throwaway MariaDB server on 127.0.0.1 with binlog and GTID strict mode.
//!
//! Scratch layout: `data/`, `tmp/`, `error.log`, `mariadbd.sock`,
//! `mariadbd.pid`. `root` logs in over TCP from 127.0.0.1 without a password
//! (mariadb-install-db only creates root@localhost, which with
//! --skip-name-resolve matches the socket alone, so the harness adds
//! root@127.0.0.1 on first start, outside the binlog).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::process::{free_port, log_tail, GroupChild};
use super::service_user::{scratch_dir, service_user, ServiceUser};

const SERVER_PACKAGE: &str = "mariadb-server";
const CLIENT_PACKAGE: &str = "mariadb-client";
const READY_TIMEOUT: Duration = Duration::from_secs(120);
const STOP_GRACE: Duration = Duration::from_secs(60);

/// Server settings; `Default` is server_id 1 with no extra arguments.
#[derive(Debug, Clone)]
pub struct MariaDbOptions {
    pub server_id: u32,
    /// Extra mariadbd arguments, e.g. `--log-slave-updates`.
    pub extra_args: Vec<String>,
}

impl Default for MariaDbOptions {
    fn default() -> Self {
        MariaDbOptions {
            server_id: 1,
            extra_args: Vec::new(),
        }
    }
}

/// A running (or stopped) MariaDB server; killed and deleted on drop.
#[derive(Debug)]
pub struct MariaDb {
    // Field order matters: the server must be gone before its directory is removed.
    process: Option<GroupChild>,
    port: u16,
    opts: MariaDbOptions,
    user: Option<ServiceUser>,
    data_dir: PathBuf,
    scratch: tempfile::TempDir,
}

/// The account mariadbd runs as: `mysql` when we are root, else ourselves.
pub fn server_user() -> Option<ServiceUser> {
    service_user("mysql", SERVER_PACKAGE)
}

impl MariaDb {
    pub fn start() -> MariaDb {
        MariaDb::start_with(MariaDbOptions::default())
    }

    pub fn start_with(opts: MariaDbOptions) -> MariaDb {
        let user = server_user();
        let scratch = scratch_dir("instarec-mariadb-", user.as_ref());
        let data_dir = scratch.path().join("data");
        let tmp_dir = scratch.path().join("tmp");
        std::fs::create_dir(&tmp_dir)
            .unwrap_or_else(|e| panic!("creating {}: {e}", tmp_dir.display()));
        if let Some(user) = &user {
            user.chown_tree(&tmp_dir);
        }

        let mut install = Command::new(super::require_binary("mariadb-install-db", SERVER_PACKAGE));
        install
            .arg("--no-defaults")
            .arg("--auth-root-authentication-method=normal")
            .arg("--skip-test-db")
            .arg(format!("--datadir={}", data_dir.display()))
            .arg(format!("--tmpdir={}", tmp_dir.display()))
            .stdin(Stdio::null())
            .current_dir(scratch.path());
        if let Some(user) = &user {
            // Started directly as mysql rather than with --user, see service_user.rs.
            user.apply(&mut install);
        }
        let out = install
            .output()
            .unwrap_or_else(|e| panic!("running mariadb-install-db: {e}"));
        if !out.status.success() {
            panic!(
                "mariadb-install-db --datadir={} failed ({}):\n{}{}",
                data_dir.display(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }

        let mut db = MariaDb {
            process: None,
            port: free_port(),
            opts,
            user,
            data_dir,
            scratch,
        };
        db.first_start();
        db.socket_query(
            "SET SESSION sql_log_bin = 0; \
             CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY ''; \
             GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;",
        )
        .unwrap_or_else(|e| panic!("creating root@127.0.0.1 on port {}: {e}", db.port));
        db
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `mysql://root@127.0.0.1:PORT/` (root has no password over TCP).
    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}/", self.port)
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn scratch_dir(&self) -> &Path {
        self.scratch.path()
    }

    pub fn socket_path(&self) -> PathBuf {
        self.scratch.path().join("mariadbd.sock")
    }

    pub fn log_path(&self) -> PathBuf {
        self.scratch.path().join("error.log")
    }

    pub fn server_id(&self) -> u32 {
        self.opts.server_id
    }

    /// mariadbd's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process
            .as_ref()
            .filter(|p| p.is_running())
            .map(GroupChild::pid)
    }

    /// Runs `sql` as root over TCP with the `mariadb` client in batch mode
    /// without column names; returns trimmed stdout, panics on error.
    pub fn query(&self, sql: &str) -> String {
        self.try_query(sql).unwrap_or_else(|e| {
            panic!(
                "mariadb query on port {} failed for {sql:?}:\n{e}",
                self.port
            )
        })
    }

    pub fn try_query(&self, sql: &str) -> Result<String, String> {
        let mut cmd = self.client_command();
        cmd.args([
            "--protocol=TCP",
            "-h",
            "127.0.0.1",
            "-P",
            &self.port.to_string(),
        ]);
        run_client(cmd, sql)
    }

    /// The `mariadb` client as root, no option files read; add connection args.
    pub fn client_command(&self) -> Command {
        let mut cmd = Command::new(super::require_binary("mariadb", CLIENT_PACKAGE));
        cmd.args([
            "--no-defaults",
            "-u",
            "root",
            "-N",
            "-B",
            "--connect-timeout=10",
        ])
        .env_remove("MYSQL_PWD")
        .env_remove("MYSQL_HOST")
        .env_remove("MYSQL_TCP_PORT")
        .stdin(Stdio::null());
        cmd
    }

    /// Graceful shutdown (SIGTERM), waiting for mariadbd to exit.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.stop(libc::SIGTERM, STOP_GRACE);
        }
    }

    /// SIGKILLs mariadbd: a crash; InnoDB recovers on restart.
    pub fn kill9(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill9();
        }
    }

    /// Starts mariadbd again (stopping it first if running) on the same port
    /// and data dir, and waits until it answers queries.
    pub fn restart(&mut self) {
        if let Err(e) = self.try_restart() {
            panic!("{e}");
        }
    }

    /// Waits until mariadbd answers on its socket; panics with the error log tail otherwise.
    pub fn wait_ready(&mut self, timeout: Duration) {
        if let Err(e) = self.try_wait_ready(timeout, 0) {
            panic!("{e}");
        }
    }

    /// First start: another process may have taken our free port meanwhile.
    fn first_start(&mut self) {
        for _ in 0..3 {
            match self.try_restart() {
                Ok(()) => return,
                Err(StartError::PortInUse) => self.port = free_port(),
                Err(StartError::Failed(e)) => panic!("{e}"),
            }
        }
        panic!(
            "mariadbd found its port taken three times; log {}:\n{}",
            self.log_path().display(),
            log_tail(&self.log_path(), 40)
        );
    }

    fn try_restart(&mut self) -> Result<(), StartError> {
        self.stop();
        let log_start = std::fs::metadata(self.log_path())
            .map(|m| m.len())
            .unwrap_or(0);
        let dir = self.scratch.path();
        let mut cmd = Command::new(super::require_binary("mariadbd", SERVER_PACKAGE));
        // --no-defaults must come first; --log-basename before the log options it would reset.
        cmd.arg("--no-defaults")
            .arg("--log-basename=instarec")
            .arg(format!("--datadir={}", self.data_dir.display()))
            .arg(format!("--tmpdir={}", dir.join("tmp").display()))
            .arg(format!("--port={}", self.port))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--socket={}", self.socket_path().display()))
            .arg(format!("--pid-file={}", dir.join("mariadbd.pid").display()))
            .arg(format!("--log-error={}", self.log_path().display()))
            .arg("--log-bin=mysql-bin")
            .arg("--binlog-format=ROW")
            .arg(format!("--server-id={}", self.opts.server_id))
            .arg("--gtid-strict-mode=1")
            .arg("--skip-name-resolve")
            .args(&self.opts.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(user) = &self.user {
            user.apply(&mut cmd);
        }
        // No shared memory to leak, and the data dir is deleted anyway: SIGKILL on drop.
        let process = GroupChild::spawn("mariadbd", cmd, libc::SIGKILL, Duration::from_secs(5))
            .unwrap_or_else(|e| {
                panic!(
                    "spawning mariadbd --datadir={}: {e}",
                    self.data_dir.display()
                )
            });
        self.process = Some(process);
        self.try_wait_ready(READY_TIMEOUT, log_start)
    }

    /// Ready means our own socket answers (a TCP probe could reach another
    /// server that grabbed the port first).
    fn try_wait_ready(&mut self, timeout: Duration, log_start: u64) -> Result<(), StartError> {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.process.as_mut().and_then(|p| p.try_wait());
            if let Some(status) = status {
                self.process = None;
                let bytes = std::fs::read(self.log_path()).unwrap_or_default();
                let new_log =
                    String::from_utf8_lossy(&bytes[(log_start as usize).min(bytes.len())..])
                        .into_owned();
                if new_log.contains("Address already in use") {
                    return Err(StartError::PortInUse);
                }
                return Err(StartError::Failed(format!(
                    "mariadbd on port {} exited during startup ({status}); log {}:\n{}",
                    self.port,
                    self.log_path().display(),
                    log_tail(&self.log_path(), 40)
                )));
            }
            if self.process.is_none() {
                return Err(StartError::Failed(format!(
                    "mariadbd on port {} is not running",
                    self.port
                )));
            }
            if self.socket_path().exists() && self.socket_query("SELECT 1").is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(StartError::Failed(format!(
                    "mariadbd on port {} not answering after {timeout:?}; log {}:\n{}",
                    self.port,
                    self.log_path().display(),
                    log_tail(&self.log_path(), 40)
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The last `lines` lines of the error log.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log_path(), lines)
    }

    fn socket_query(&self, sql: &str) -> Result<String, String> {
        let mut cmd = self.client_command();
        cmd.arg(format!("--socket={}", self.socket_path().display()));
        run_client(cmd, sql)
    }
}

enum StartError {
    PortInUse,
    Failed(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::PortInUse => f.write_str("mariadbd: port already in use"),
            StartError::Failed(msg) => f.write_str(msg),
        }
    }
}

fn run_client(mut cmd: Command, sql: &str) -> Result<String, String> {
    let out = cmd
        .arg("-e")
        .arg(sql)
        .output()
        .map_err(|e| format!("running the mariadb client: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        ))
    }
}
