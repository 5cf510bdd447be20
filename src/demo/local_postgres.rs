//! A throwaway PostgreSQL server for the demo: initdb, start, kill -9, all
//! on 127.0.0.1 in a directory the demo owns.

use crate::exit::{self, CodedError};
use crate::os_user;
use anyhow::{bail, Context as _};
use instarec_postgres::version::supported_major;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct LocalPostgres {
    pub name: &'static str,
    pub data_dir: PathBuf,
    pub port: u16,
    bin_dir: PathBuf,
    child: Option<Child>,
    owner: Option<(u32, u32)>,
}

/// Where the demo's initdb and postgres live, and their major.
pub struct PgBinaries {
    pub dir: PathBuf,
    pub major: u32,
}

/// `explicit` (`--pg-bin`), which must hold a supported major; else the
/// first dir on PATH, then Debian's versioned dirs (newest first), holding
/// initdb and a postgres of a supported major.
pub fn find_bin_dir(explicit: Option<&Path>) -> anyhow::Result<PgBinaries> {
    if let Some(dir) = explicit {
        if !(dir.join("initdb").is_file() && dir.join("postgres").is_file()) {
            return Err(CodedError::new(
                exit::USAGE,
                format!(
                    "--pg-bin {}: no initdb and postgres there; name the bin dir of a PostgreSQL 15 to 18 installation (Debian: /usr/lib/postgresql/15/bin)",
                    dir.display()
                ),
            )
            .into());
        }
        let version = postgres_version(dir)?;
        return match supported_major(&dir.join("postgres").display().to_string(), &version) {
            Ok(row) => Ok(PgBinaries {
                dir: dir.to_path_buf(),
                major: row.major,
            }),
            Err(e) => Err(CodedError::new(exit::USAGE, format!("--pg-bin: {e}")).into()),
        };
    }
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    debian.sort();
    debian.reverse(); // newest major first
    dirs.extend(debian);
    dirs.into_iter()
        .filter(|d| d.join("initdb").is_file() && d.join("postgres").is_file())
        .find_map(|dir| {
            let version = postgres_version(&dir).ok()?;
            let row = supported_major(&dir.display().to_string(), &version).ok()?;
            Some(PgBinaries {
                dir,
                major: row.major,
            })
        })
        .context("the demo needs PostgreSQL's initdb and postgres (15 to 18); install them (Debian: apt-get install postgresql-15), put their bin dir on PATH or pass --pg-bin DIR")
}

/// "18.4" from `postgres --version` ("postgres (PostgreSQL) 18.4").
fn postgres_version(dir: &Path) -> anyhow::Result<String> {
    let postgres = dir.join("postgres");
    let out = Command::new(&postgres)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {} --version", postgres.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .split_whitespace()
        .last()
        .unwrap_or_default()
        .to_string())
}

impl LocalPostgres {
    /// initdb a new cluster in `data_dir` (trust auth on loopback).
    pub fn init(name: &'static str, bin_dir: &Path, data_dir: &Path) -> anyhow::Result<Self> {
        let owner = service_owner()?;
        std::fs::create_dir_all(data_dir)?;
        if let Some(o) = owner {
            os_user::chown_tree(data_dir, o)?;
        }
        let mut cmd = Command::new(bin_dir.join("initdb"));
        cmd.arg("-D")
            .arg(data_dir)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .env("LC_ALL", "C");
        run_as(&mut cmd, owner);
        let out = cmd.output().context("running initdb")?;
        if !out.status.success() {
            bail!("initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(Self::existing(name, bin_dir, data_dir, owner))
    }

    /// A server on a data dir prepared elsewhere (e.g. `standby init`).
    pub fn existing(
        name: &'static str,
        bin_dir: &Path,
        data_dir: &Path,
        owner: Option<(u32, u32)>,
    ) -> Self {
        LocalPostgres {
            name,
            data_dir: data_dir.to_path_buf(),
            port: 0,
            bin_dir: bin_dir.to_path_buf(),
            child: None,
            owner,
        }
    }

    /// Starts on a free loopback port and waits until it accepts connections.
    pub fn start(&mut self, extra: &[(&str, &str)]) -> anyhow::Result<()> {
        self.port = os_user::free_port()?;
        let mut settings: Vec<(String, String)> = vec![
            ("listen_addresses".into(), "127.0.0.1".into()),
            ("port".into(), self.port.to_string()),
            (
                "unix_socket_directories".into(),
                self.data_dir.display().to_string(),
            ),
            ("wal_level".into(), "replica".into()),
            ("max_wal_senders".into(), "10".into()),
            ("max_replication_slots".into(), "10".into()),
            ("wal_keep_size".into(), "256MB".into()),
        ];
        settings.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut conf = String::from("\n# instarec demo\n");
        for (k, v) in &settings {
            conf.push_str(&format!("{k} = '{v}'\n"));
        }
        let path = self.data_dir.join("postgresql.auto.conf");
        let mut existing = std::fs::read_to_string(&path).unwrap_or_default();
        existing.push_str(&conf);
        std::fs::write(&path, existing)?;
        if let Some(o) = self.owner {
            os_user::chown_tree(&self.data_dir, o)?;
        }
        std::fs::set_permissions(
            &self.data_dir,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )?;
        let log = std::fs::File::create(self.log_path())?;
        let mut cmd = Command::new(self.bin_dir.join("postgres"));
        cmd.arg("-D")
            .arg(&self.data_dir)
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0);
        run_as(&mut cmd, self.owner);
        self.child = Some(cmd.spawn().context("starting postgres")?);
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() || !self.ready() {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!(
                    "{} exited ({status}); see {}",
                    self.name,
                    self.log_path().display()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not start in 60 s; see {}",
                    self.name,
                    self.log_path().display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    fn ready(&self) -> bool {
        let pid_file =
            std::fs::read_to_string(self.data_dir.join("postmaster.pid")).unwrap_or_default();
        pid_file
            .lines()
            .nth(7)
            .is_some_and(|l| l.trim() == "ready" || l.trim() == "standby")
    }

    pub fn log_path(&self) -> PathBuf {
        self.data_dir.with_extension("log")
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A crash: SIGKILL the postmaster's whole process group.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: plain syscall on our own child's process group.
            unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
            let _ = child.wait();
        }
    }

    /// Fast shutdown.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: plain syscall on our own child.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if child.try_wait().ok().flatten().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            // SAFETY: as above.
            unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
            let _ = child.wait();
        }
    }

    pub fn owner(&self) -> Option<(u32, u32)> {
        self.owner
    }
}

impl Drop for LocalPostgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The account servers run as: `postgres` when we are root, else ourselves.
pub fn service_owner() -> anyhow::Result<Option<(u32, u32)>> {
    if !os_user::running_as_root() {
        return Ok(None);
    }
    os_user::lookup_user("postgres")
        .map(Some)
        .context("running as root, but there is no `postgres` user to run PostgreSQL as; create it or run the demo as an ordinary user")
}

fn run_as(cmd: &mut Command, owner: Option<(u32, u32)>) {
    if let Some((uid, gid)) = owner {
        cmd.uid(uid).gid(gid);
    }
}
