//! What a new user meets in the first hour, run as they run it: a shipper
//! started before its primary, unknown variables, missing files and
//! archives, engines implied by URLs, errors that say the cause once.

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use support::instarec::{write_pg_config, Shipper};
use support::Postgres;

/// Runs the binary with a clean INSTAREC_* and AWS_* environment plus `env`.
fn run_env(config: Option<&Path>, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_instarec"));
    for (k, _) in std::env::vars() {
        if k.starts_with("INSTAREC_") || k.starts_with("AWS_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied());
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    cmd.args(args).output().expect("running instarec")
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn text(out: &Output) -> String {
    support::instarec::text(out)
}

/// A service started before its database: `ship` retries with backoff,
/// logging each attempt and its next delay, and ships once the primary is
/// up; `--fail-fast` exits 1 at once instead.
#[test]
fn ship_started_before_its_primary_waits_for_it_and_then_ships() {
    let mut pg = Postgres::start();
    pg.psql("SELECT 1");
    pg.stop();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}/archive", dir.path().display());
    let config = write_pg_config(dir.path(), &url, &pg.url(), "", "");

    let started = Instant::now();
    let out = run_env(Some(&config), &["ship", "--fail-fast"], &[]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "fail-fast took {:?}",
        started.elapsed()
    );
    assert!(
        stderr(&out).contains(&pg.port().to_string()),
        "{}",
        text(&out)
    );

    let mut shipper = Shipper::start(&config);
    let deadline = Instant::now() + Duration::from_secs(20);
    while shipper
        .log()
        .matches("primary unreachable at start")
        .count()
        < 2
    {
        assert!(
            Instant::now() < deadline,
            "no retries logged:\n{}",
            shipper.log()
        );
        assert!(
            shipper.child.is_running(),
            "ship exited:\n{}",
            shipper.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(shipper.log().contains("retry_in_ms"), "{}", shipper.log());

    pg.restart();
    let target = pg.psql("SELECT pg_current_wal_lsn()").parse().unwrap();
    shipper.wait_flushed(&pg, target, Duration::from_secs(60));
    assert_eq!(shipper.stop(), 0);
}
