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

    let shipper = Shipper::start(&config);
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

/// Every file and directory under `root`, for "nothing changed" checks.
fn tree(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(root) {
        for e in entries.flatten() {
            let p = e.path();
            out.push(p.display().to_string());
            if p.is_dir() {
                out.extend(tree(&p));
            }
        }
    }
    out.sort();
    out
}

/// A mistyped file:// URL or an archive without a cluster record: every
/// read-only command fails naming the URL and `archive init`, exit 2, and
/// creates nothing.
#[test]
fn read_only_commands_create_nothing_and_name_the_missing_archive() {
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("archvie");
    let empty = dir.path().join("empty-archive");
    std::fs::create_dir(&empty).unwrap();
    let wal_dest = dir.path().join("RECOVERYXLOG");
    let wal_dest = wal_dest.to_str().unwrap();
    let commands: [&[&str]; 6] = [
        &["status", "--archive-only"],
        &["archive", "ls"],
        &["archive", "verify"],
        &["backup", "list"],
        &["wal-fetch", "000000010000000000000001", wal_dest],
        &["status", "--json", "--archive-only"],
    ];
    for archive in [&typo, &empty] {
        let url = format!("file://{}", archive.display());
        let config = dir.path().join("instarec.toml");
        std::fs::write(&config, format!("[archive]\nurl = \"{url}\"\n")).unwrap();
        for args in commands {
            let before = tree(dir.path());
            let out = run_env(Some(&config), args, &[]);
            let err = stderr(&out);
            let want = if args[0] == "wal-fetch" { 126 } else { 2 };
            assert_eq!(code(&out), want, "{args:?} on {url}: {}", text(&out));
            assert!(
                err.contains(&url) && err.contains("instarec archive init"),
                "{args:?} names the URL and the fix:\n{err}"
            );
            assert_eq!(tree(dir.path()), before, "{args:?} on {url} changed files");
        }
        let before = tree(dir.path());
        let out = run_env(Some(&config), &["config", "check"], &[]);
        assert_eq!(code(&out), 0, "{}", text(&out));
        assert_eq!(tree(dir.path()), before, "config check changed files");
    }
    assert!(!typo.exists(), "no command created the mistyped archive");
}

/// With no config file, `config check` says so instead of naming
/// ./instarec.toml as a source; a missing explicit file names its error once.
#[test]
fn config_check_without_a_file_says_it_was_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_instarec"));
    for (k, _) in std::env::vars() {
        if k.starts_with("INSTAREC_") {
            cmd.env_remove(k);
        }
    }
    let archive = dir.path().join("archive");
    let url = format!("file://{}", archive.display());
    let out = cmd
        .current_dir(dir.path())
        .args(["--archive-url", &url, "config", "check"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("instarec.toml was not found"),
        "{}",
        text(&out)
    );
    assert!(
        !stdout.contains("resolved from ./instarec.toml"),
        "{}",
        text(&out)
    );
    assert!(!archive.exists(), "config check created the archive");

    let missing = dir.path().join("nope.toml");
    let out = run_env(Some(&missing), &["config", "check"], &[]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    let err = stderr(&out);
    assert!(err.contains(missing.to_str().unwrap()), "{err}");
    assert_eq!(err.matches("(os error 2)").count(), 1, "said once:\n{err}");
}

/// INSTAREC_PRIMARY_SLOTT is the variable's fault, not the file's.
#[test]
fn an_unknown_instarec_variable_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pg1.toml");
    std::fs::write(
        &config,
        "[archive]\nurl = \"memory://\"\n[primary]\nengine = \"postgres\"\nurl = \"postgres://u@127.0.0.1:1/postgres\"\n",
    )
    .unwrap();
    let out = run_env(
        Some(&config),
        &["config", "check"],
        &[("INSTAREC_PRIMARY_SLOTT", "x")],
    );
    assert_eq!(code(&out), 2, "{}", text(&out));
    let err = stderr(&out);
    assert!(err.contains("INSTAREC_PRIMARY_SLOTT"), "{err}");
    assert!(
        !err.contains("pg1.toml"),
        "the file is not at fault:\n{err}"
    );
}

/// Piped stderr carries no colour codes; `--log-format json` makes the
/// final error a JSON line too.
#[test]
fn piped_logs_are_plain_and_json_covers_the_final_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("instarec.toml");
    let url = format!("file://{}/missing", dir.path().display());
    std::fs::write(&config, format!("[archive]\nurl = \"{url}\"\n")).unwrap();
    let out = run_env(Some(&config), &["-v", "archive", "ls"], &[]);
    assert!(
        !stderr(&out).contains('\u{1b}'),
        "colour on a pipe:\n{}",
        text(&out)
    );
    let out = run_env(
        Some(&config),
        &["--log-format", "json", "archive", "ls"],
        &[],
    );
    assert_eq!(code(&out), 2, "{}", text(&out));
    for line in stderr(&out).lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert_eq!(v["level"], "ERROR", "{v}");
        assert!(v["message"].as_str().unwrap().contains(&url), "{v}");
        assert_eq!(v["exit_code"], 2, "{v}");
    }
    assert!(!stderr(&out).is_empty());
}

/// `--primary-url postgres://…` alone is enough: the scheme names the engine.
#[test]
fn the_primary_url_names_the_engine() {
    let out = run_env(
        None,
        &[
            "--archive-url",
            "memory://",
            "--primary-url",
            "postgres://u@127.0.0.1:1/postgres",
            "config",
            "check",
        ],
        &[("INSTAREC_CONFIG", "/nonexistent-instarec-test/none.toml")],
    );
    assert_eq!(code(&out), 2, "an explicit missing file: {}", text(&out));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("instarec.toml");
    std::fs::write(&config, "[archive]\nurl = \"memory://\"\n").unwrap();
    let out = run_env(
        Some(&config),
        &[
            "--primary-url",
            "postgres://u@127.0.0.1:1/postgres",
            "config",
            "check",
        ],
        &[],
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("engine = \"postgres\""),
        "{}",
        text(&out)
    );
    std::fs::write(
        &config,
        "[archive]\nurl = \"memory://\"\n[primary]\nengine = \"mysql\"\nurl = \"postgres://u@h/db\"\n",
    )
    .unwrap();
    let out = run_env(Some(&config), &["config", "check"], &[]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(stderr(&out).contains("postgres:// URL"), "{}", text(&out));
}

/// s3:// without credentials: one sentence naming the keys to set, not the
/// instance-metadata error three times. The metadata endpoint points at a
/// closed port so the lookup fails at once, here as on a laptop.
#[test]
fn s3_without_credentials_says_so_once_with_the_fix() {
    let moto = support::Moto::start();
    let url = format!("s3://{}/first-hour", moto.bucket());
    let endpoint = moto.endpoint();
    let started = Instant::now();
    let out = run_env(
        None,
        &["--archive-url", &url, "archive", "ls"],
        &[
            ("INSTAREC_CONFIG", "/dev/null"),
            ("INSTAREC_ARCHIVE_S3_ENDPOINT", &endpoint),
            ("INSTAREC_ARCHIVE_S3_ALLOW_HTTP", "true"),
            ("INSTAREC_ARCHIVE_S3_REGION", "us-east-1"),
            ("AWS_METADATA_ENDPOINT", "http://127.0.0.1:1"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ],
    );
    let err = stderr(&out);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(
        err.contains("no AWS credentials")
            && err.contains("access_key_id")
            && err.contains("AWS_ACCESS_KEY_ID"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.len() < 400, "{} chars: {err}", err.len());
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
}
