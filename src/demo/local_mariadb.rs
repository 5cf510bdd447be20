//! Throwaway MariaDB servers for the demo, on 127.0.0.1 in a directory the
//! demo owns: a primary it installs and starts itself (binlog, ROW format,
//! gtid_strict_mode), and the standby that `instarec standby init --start`
//! starts, adopted through its pid file so the demo can crash or stop it.

use crate::os_user;
use crate::restore::mysql::tool::{self, Tool};
use anyhow::{bail, Context as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
const INSTALL_HINT: &str =
    "install them (Debian: apt-get install mariadb-server mariadb-backup) or put them on PATH";

/// The MariaDB programs the demo runs itself (mariabackup is run by
/// `instarec backup`, but checked here so a missing one fails first).
#[derive(Debug, Clone)]
pub struct MariadbTools {
    pub mariadbd: PathBuf,
    pub install_db: PathBuf,
}

impl MariadbTools {
    pub fn find() -> anyhow::Result<Self> {
        let missing = |what: &str| {
            format!("the MySQL demo needs MariaDB's {what} (10.11 or newer); {INSTALL_HINT}")
        };
        let mariadbd =
            tool::find(Tool::Mariadbd).map_err(|_| anyhow::anyhow!(missing("mariadbd")))?;
        tool::find(Tool::Mariabackup).map_err(|_| anyhow::anyhow!(missing("mariabackup")))?;
        // Debian keeps it in /usr/bin, mariadbd in /usr/sbin.
        let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect())
            .unwrap_or_default();
        dirs.extend(mariadbd.parent().map(Path::to_path_buf));
        dirs.push("/usr/bin".into());
        let install_db = dirs
            .iter()
            .map(|d| d.join("mariadb-install-db"))
            .find(|p| p.is_file())
            .with_context(|| missing("mariadb-install-db"))?;
        Ok(MariadbTools {
            mariadbd,
            install_db,
        })
    }
}

enum ServerProcess {
    /// Started by the demo: its own child, in its own process group.
    Child(Child),
    /// Started by another process (`standby init --start`), which wrote
    /// its pid here; mariadbd leads its own process group there too.
    PidFile(PathBuf),
}

pub struct LocalMariadb {
    pub name: &'static str,
    /// data/, tmp/, the socket, the pid file and the error log.
    pub dir: PathBuf,
    pub port: u16,
    process: Option<ServerProcess>,
    owner: Option<(u32, u32)>,
}

impl LocalMariadb {
    /// mariadb-install-db into `dir/data`; the server is not started yet.
    pub async fn install(
        name: &'static str,
        tools: &MariadbTools,
        dir: &Path,
    ) -> anyhow::Result<Self> {
        let owner = service_owner()?;
        std::fs::create_dir_all(dir.join("tmp"))?;
        if let Some(o) = owner {
            os_user::chown_tree(dir, o)?;
        }
        let mut cmd = tokio::process::Command::new(&tools.install_db);
        cmd.arg("--no-defaults")
            .arg("--auth-root-authentication-method=normal")
            .arg("--skip-test-db")
            .arg(format!("--datadir={}", dir.join("data").display()))
            .arg(format!("--tmpdir={}", dir.join("tmp").display()))
            .current_dir(dir)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if let Some((uid, gid)) = owner {
            cmd.uid(uid).gid(gid);
        }
        let out = cmd.output().await.context("running mariadb-install-db")?;
        if !out.status.success() {
            bail!(
                "mariadb-install-db --datadir={} failed ({}): {}{}",
                dir.join("data").display(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(LocalMariadb {
            name,
            dir: dir.to_path_buf(),
            port: 0,
            process: None,
            owner,
        })
    }

    /// The server `instarec standby init --start --port <port>` runs on
    /// `data_dir`, from the moment that command is started: dropping this
    /// stops the server even if the command was interrupted.
    pub fn adopt(name: &'static str, data_dir: &Path, port: u16) -> Self {
        use crate::restore::mysql::data_dir::PID_FILE;
        LocalMariadb {
            name,
            dir: data_dir.to_path_buf(),
            port,
            process: Some(ServerProcess::PidFile(data_dir.join(PID_FILE))),
            owner: None,
        }
    }

    /// Starts mariadbd as the primary (server_id 1) on a free loopback
    /// port, waits until it answers, and lets root in over TCP.
    pub async fn start_primary(&mut self, tools: &MariadbTools) -> anyhow::Result<()> {
        self.port = os_user::free_port()?;
        let log = std::fs::File::create(self.log_path())?;
        if let Some(o) = self.owner {
            os_user::chown_tree(&self.log_path(), o)?;
        }
        let d = &self.dir;
        let mut cmd = Command::new(&tools.mariadbd);
        // --no-defaults must come first.
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", d.join("data").display()))
            .arg(format!("--tmpdir={}", d.join("tmp").display()))
            .arg(format!("--port={}", self.port))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--socket={}", self.socket_path().display()))
            .arg(format!("--pid-file={}", d.join("mariadbd.pid").display()))
            .arg(format!("--log-error={}", self.log_path().display()))
            .args([
                "--log-bin=mysql-bin",
                "--binlog-format=ROW",
                "--server-id=1",
                "--gtid-strict-mode=1",
                "--skip-name-resolve",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0);
        if let Some((uid, gid)) = self.owner {
            cmd.uid(uid).gid(gid);
        }
        let child = cmd.spawn().context("starting mariadbd")?;
        self.process = Some(ServerProcess::Child(child));
        self.wait_ready().await?;
        // mariadb-install-db only lets root in over the socket; the
        // instarec commands connect over TCP. Not binlogged: replicas
        // get it from the backup.
        let mut conn = self.socket_conn().await?;
        use mysql_async::prelude::Queryable as _;
        conn.query_drop(
            "SET SESSION sql_log_bin = 0; \
             CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY ''; \
             GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION",
        )
        .await
        .with_context(|| format!("letting root in over TCP on {}", self.addr()))?;
        conn.disconnect().await?;
        Ok(())
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(ServerProcess::Child(child)) = &mut self.process {
                if let Some(status) = child.try_wait()? {
                    self.process = None;
                    bail!(
                        "{} mariadbd exited ({status}); see {}",
                        self.name,
                        self.log_path().display()
                    );
                }
            }
            if self.socket_path().exists() {
                if let Ok(conn) = self.socket_conn().await {
                    let _ = conn.disconnect().await;
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "{} mariadbd did not start in {READY_TIMEOUT:?}; see {}",
                    self.name,
                    self.log_path().display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn socket_conn(&self) -> anyhow::Result<mysql_async::Conn> {
        let opts = mysql_async::OptsBuilder::default()
            .socket(Some(self.socket_path().display().to_string()))
            .user(Some("root"));
        Ok(mysql_async::Conn::new(opts).await?)
    }

    /// root over TCP (no password: a throwaway server on loopback).
    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}/", self.port)
    }

    pub async fn admin(&self) -> anyhow::Result<mysql_async::Conn> {
        let opts = mysql_async::Opts::from_url(&self.url())?;
        mysql_async::Conn::new(opts)
            .await
            .with_context(|| format!("connecting to the {} at {}", self.name, self.addr()))
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn socket_path(&self) -> PathBuf {
        self.dir.join("mariadbd.sock")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("error.log")
    }

    /// The process group leader's pid, while there is one.
    fn pid(&self) -> Option<libc::pid_t> {
        match self.process.as_ref()? {
            ServerProcess::Child(c) => Some(c.id() as libc::pid_t),
            ServerProcess::PidFile(path) => std::fs::read_to_string(path)
                .ok()?
                .trim()
                .parse()
                .ok()
                .filter(|&p: &libc::pid_t| p > 1),
        }
    }

    /// A crash: SIGKILL mariadbd's process group.
    pub fn kill9(&mut self) {
        if let Some(pid) = self.pid() {
            // SAFETY: plain syscall on a server this demo started.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            self.wait_gone(pid, Duration::from_secs(10));
        }
        self.process = None;
    }

    /// SIGTERM (InnoDB shuts down cleanly), SIGKILL after STOP_TIMEOUT.
    pub fn stop(&mut self) {
        if let Some(pid) = self.pid() {
            // SAFETY: as in kill9.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            if !self.wait_gone(pid, STOP_TIMEOUT) {
                // SAFETY: as above.
                unsafe { libc::kill(-pid, libc::SIGKILL) };
                self.wait_gone(pid, Duration::from_secs(10));
            }
        }
        self.process = None;
    }

    /// Waits for the process to exit (reaping it if it is our child).
    fn wait_gone(&mut self, pid: libc::pid_t, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let gone = match &mut self.process {
                Some(ServerProcess::Child(c)) => c.try_wait().ok().flatten().is_some(),
                _ => !alive(pid),
            };
            if gone {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for LocalMariadb {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Not ours to reap: once its parent is gone, whoever adopts it may leave
/// it a zombie for a while, which still answers kill(pid, 0).
fn alive(pid: libc::pid_t) -> bool {
    // SAFETY: signal 0 only checks that the pid exists.
    if unsafe { libc::kill(pid, 0) } != 0 {
        return false;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The state follows the parenthesized command name.
    let state = stat
        .rsplit_once(") ")
        .and_then(|(_, rest)| rest.chars().next());
    !matches!(state, Some('Z') | Some('X'))
}

/// The account mariadbd runs as: `mysql` when we are root, else ourselves.
fn service_owner() -> anyhow::Result<Option<(u32, u32)>> {
    if !os_user::running_as_root() {
        return Ok(None);
    }
    os_user::lookup_user("mysql")
        .map(Some)
        .context("running as root, but there is no `mysql` user to run MariaDB as; install mariadb-server (it creates the user) or run the demo as an ordinary user")
}
