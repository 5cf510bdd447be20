//! The instarec binary under test: a long-running `ship` with its log
//! captured, torn down with the test like every other server here.

use super::postgres::Postgres;
use super::process::GroupChild;
use instarec_postgres::Lsn;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_instarec")
}

/// `instarec --config <config> ship`, logging at debug level to a file.
pub struct Shipper {
    pub child: GroupChild,
    log: PathBuf,
}

impl Shipper {
    pub fn start(config: &Path) -> Shipper {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let log = config.with_extension(format!("ship-{stamp}.log"));
        let file = std::fs::File::create(&log).expect("creating the shipper log");
        let mut cmd = Command::new(binary());
        cmd.arg("--config")
            .arg(config)
            .arg("-v")
            .arg("ship")
            .stdout(file.try_clone().expect("log handle"))
            .stderr(file);
        let child = GroupChild::spawn("instarec ship", cmd, libc::SIGTERM, Duration::from_secs(10))
            .expect("spawning instarec ship");
        Shipper { child, log }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM: the shipper flushes and exits; returns its exit code.
    pub fn stop(mut self) -> i32 {
        let status = self
            .child
            .stop(libc::SIGTERM, Duration::from_secs(20))
            .expect("shipper status");
        status.code().unwrap_or(-1)
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        self.child
            .wait_timeout(timeout)
            .map(|s| s.code().unwrap_or(-1))
    }

    /// Waits until the primary reports our flush position at `target`.
    pub fn wait_flushed(&self, pg: &Postgres, target: Lsn, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let flushed = pg.psql(
                "SELECT coalesce(flush_lsn, '0/0') FROM pg_stat_replication WHERE application_name = 'instarec'",
            );
            if flushed.parse::<Lsn>().is_ok_and(|l| l >= target) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "archive did not reach {target} in {timeout:?} (primary reports {flushed:?}); shipper log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A config for a PostgreSQL primary; `extra_primary` goes into [primary],
/// `extra` after it (further sections).
pub fn write_pg_config(
    dir: &Path,
    archive_url: &str,
    primary_url: &str,
    extra_primary: &str,
    extra: &str,
) -> PathBuf {
    let path = dir.join("instarec.toml");
    std::fs::write(
        &path,
        format!(
            "[archive]\nurl = \"{archive_url}\"\n\n[primary]\nengine = \"postgres\"\nurl = \"{primary_url}\"\nflush_interval = \"200ms\"\n{extra_primary}\n\n{extra}"
        ),
    )
    .expect("writing instarec.toml");
    path
}

/// A config for a MySQL/MariaDB primary; `extra_primary` goes into
/// [primary] (e.g. `synchronous = true`, `cluster_id = "..."`).
pub fn write_mysql_config(
    dir: &Path,
    archive_url: &str,
    primary_url: &str,
    extra_primary: &str,
) -> PathBuf {
    let path = dir.join("instarec.toml");
    std::fs::write(
        &path,
        format!(
            "[archive]\nurl = \"{archive_url}\"\n\n[primary]\nengine = \"mysql\"\nurl = \"{primary_url}\"\nserver_id = 4200000001\nflush_interval = \"200ms\"\n{extra_primary}\n"
        ),
    )
    .expect("writing instarec.toml");
    path
}

/// Runs `instarec --config <config> <args>` to completion.
pub fn run(config: &Path, args: &[&str]) -> std::process::Output {
    Command::new(binary())
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("running instarec")
}

/// Writes a config atomically: running commands (a standby's
/// restore_command, a relay) may read it while a test rewrites it.
pub fn write_config(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A finished command's exit code and output, for assertion messages.
pub fn text(out: &std::process::Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The archive at `url` bound to the cluster its record names, as a reader
/// opens it. Call from outside a tokio runtime.
pub fn bound_archive(url: &str) -> instarec::archive::Archive {
    use instarec::archive::{Archive, ArchiveSettings};
    let archive = Archive::open(&ArchiveSettings::new(url)).unwrap();
    let record = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(archive.read_cluster())
        .unwrap()
        .expect("a cluster record");
    archive.bind_cluster(record.tag())
}
