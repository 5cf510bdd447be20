//! `instarec restore` against a real PostgreSQL 15: point-in-time recovery
//! to a time, an LSN and the archive's end lands exactly where asked; a
//! backup taken under pgbench restores to a consistent state that equals
//! the primary's at the same LSN (and passes pg_amcheck); unreachable
//! targets fail before anything is written.

mod support;

use support::instarec::text;

use support::instarec::run as instarec;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};
use support::postgres::new_scratch_dir;
use support::process::GroupChild;
use support::Postgres;

/// Fields drop in this order: the shipper stops before the archive dir it
/// writes into is removed (else it recreates the dir after the test).
struct Setup {
    _shipper: GroupChild,
    primary: Postgres,
    config: PathBuf,
    _dir: tempfile::TempDir,
}

/// Config and archive in a dir the postgres user can read: the restored
/// server's restore_command runs instarec as that user.
fn setup() -> Setup {
    let primary = Postgres::start();
    let dir = new_scratch_dir();
    let url = format!("file://{}/archive", dir.path().display());
    let config = dir.path().join("instarec.toml");
    std::fs::write(
        &config,
        format!(
            "[archive]\nurl = \"{url}\"\n\n[primary]\nengine = \"postgres\"\nurl = \"{}\"\nflush_interval = \"200ms\"\n",
            primary.url()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(config.with_extension("ship.log")).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_instarec"));
    cmd.arg("--config")
        .arg(&config)
        .arg("ship")
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    let shipper = GroupChild::spawn("instarec ship", cmd, libc::SIGTERM, Duration::from_secs(10))
        .expect("spawning instarec ship");
    Setup {
        primary,
        _dir: dir,
        config,
        _shipper: shipper,
    }
}

fn backup(s: &Setup) {
    let out = instarec(&s.config, &["backup", "--json", "--wal-timeout", "60s"]);
    assert!(out.status.success(), "backup failed: {}", text(&out));
}

/// Waits until the archive holds the primary's WAL up to now, and the
/// shipper has recorded the primary's position after it.
fn wait_archived(pg: &Postgres) {
    let target = pg.psql("SELECT pg_current_wal_lsn()");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let done = pg.psql(&format!(
            "SELECT coalesce(bool_or(flush_lsn >= '{target}'), false) FROM pg_stat_replication WHERE application_name = 'instarec'"
        ));
        if done == "t" {
            break;
        }
        assert!(Instant::now() < deadline, "archive did not reach {target}");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(1500));
}

/// `instarec restore ARGS --start --json` into a fresh dir; returns the
/// report and the (stopped, promoted) data dir in its scratch dir.
fn restore_and_start(s: &Setup, args: &[&str]) -> (serde_json::Value, Postgres) {
    let scratch = new_scratch_dir();
    let data = scratch.path().join("data");
    let bin_dir = support::postgres::server_bin_dir();
    let mut all = vec!["restore", "--data-dir", data.to_str().unwrap()];
    all.extend_from_slice(args);
    // The server binaries under test, not whichever postgres is on PATH.
    all.extend_from_slice(&[
        "--start",
        "--json",
        "--pg-bin-dir",
        bin_dir.to_str().unwrap(),
    ]);
    let out = instarec(&s.config, &all);
    assert!(
        out.status.success(),
        "restore {args:?} failed: {}",
        text(&out)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("restore printed no JSON ({e}): {}", text(&out)));
    assert_eq!(report["end"], "promoted", "{report}");
    assert!(report["pid"].is_null(), "the server was stopped: {report}");
    // The recovered directory is an ordinary, promoted cluster now.
    (report, Postgres::start_existing(scratch, data, None))
}

/// A server build of a major other than the one under test: the PostgreSQL 14
/// that tests/pg_unsupported_major.rs runs too.
fn other_major_bin_dir() -> PathBuf {
    let dir = std::env::var_os("INSTAREC_TEST_PG_UNSUPPORTED_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/instarec-pg/14/bin"));
    assert!(
        dir.join("postgres").is_file(),
        "no PostgreSQL 14 in {}: run scripts/test (it fetches one) or set INSTAREC_TEST_PG_UNSUPPORTED_BIN",
        dir.display()
    );
    dir
}

fn count(pg: &Postgres, batch: &str) -> i64 {
    pg.psql(&format!("SELECT count(*) FROM t WHERE batch = '{batch}'"))
        .parse()
        .unwrap()
}

fn refused(s: &Setup, args: &[&str], expect: &str) {
    let scratch = new_scratch_dir();
    let data = scratch.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let mut all = vec!["restore", "--data-dir", data.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = instarec(&s.config, &all);
    assert!(!out.status.success(), "restore {args:?} succeeded");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(instarec::exit::USAGE as i32),
        "restore {args:?}: a target it cannot reach is bad input (exit 2):\n{err}"
    );
    assert!(
        err.contains(expect),
        "restore {args:?}: want {expect:?} in:\n{err}"
    );
    assert!(
        std::fs::read_dir(&data).unwrap().next().is_none(),
        "restore {args:?} wrote into the data dir"
    );
}

#[test]
fn pitr_to_a_time_an_lsn_and_the_latest_and_refuses_unreachable_targets() {
    let s = setup();
    let p = &s.primary;
    p.psql("CREATE TABLE t(batch text, n int)");
    backup(&s);

    p.psql("INSERT INTO t SELECT 'A', g FROM generate_series(1, 100) g");
    let after_a = p.psql("SELECT pg_current_wal_lsn()");
    std::thread::sleep(Duration::from_secs(1));
    let between = p.psql(
        "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
    );
    std::thread::sleep(Duration::from_secs(1));
    p.psql("INSERT INTO t SELECT 'B', g FROM generate_series(1, 100) g");
    wait_archived(p);

    // Unreachable targets: clear errors, nothing written.
    refused(
        &s,
        &["--to-time", "2000-01-01T00:00:00Z"],
        "before the oldest backup",
    );
    refused(
        &s,
        &["--to-lsn", "FFFF/0"],
        "after the end of the archived WAL",
    );
    let future = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    refused(&s, &["--to-time", &future], "in the future");
    // Binaries of another major (a PostgreSQL 14 build, which scripts/test
    // fetches) are refused before the extraction, naming both majors.
    let other = other_major_bin_dir();
    let major = support::postgres::server_major();
    refused(
        &s,
        &[
            "--latest",
            "--start",
            "--pg-bin-dir",
            other.to_str().unwrap(),
        ],
        &format!(
            "was taken on PostgreSQL {major}, but {}/postgres is PostgreSQL 14",
            other.display()
        ),
    );

    let (report, at_time) = restore_and_start(&s, &["--to-time", &between]);
    assert_eq!((count(&at_time, "A"), count(&at_time, "B")), (100, 0));
    let last_commit = report["last_commit"].as_str().expect("a last commit");
    assert!(
        last_commit < between.as_str() || last_commit.starts_with(&between[..19]),
        "last commit {last_commit} is not before {between}"
    );
    drop(at_time);

    let (report, at_lsn) = restore_and_start(&s, &["--to-lsn", &after_a]);
    assert_eq!((count(&at_lsn, "A"), count(&at_lsn, "B")), (100, 0));
    let reached: instarec_postgres::Lsn = report["replay_lsn"].as_str().unwrap().parse().unwrap();
    assert!(reached >= after_a.parse().unwrap(), "{report}");
    drop(at_lsn);

    let (_, latest) = restore_and_start(&s, &["--latest"]);
    assert_eq!((count(&latest, "A"), count(&latest, "B")), (100, 100));
}

/// A corrupt backup chunk fails the restore with exit 3, and the data dir
/// is left as found: one the restore created is gone, an empty one stays
/// empty, and the log claims no --force it was not given.
#[test]
fn failed_restore_removes_the_data_dir_it_created_and_logs_only_what_it_did() {
    let s = setup();
    s.primary.psql("CREATE TABLE t(batch text, n int)");
    backup(&s);
    let archive = s._dir.path().join("archive");
    let chunk = walk(&archive)
        .into_iter()
        .find(|p| p.to_string_lossy().contains("/base.tar/"))
        .expect("a base.tar chunk in the archive");
    let mut bytes = std::fs::read(&chunk).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(&chunk, &bytes).unwrap();

    let scratch = new_scratch_dir();
    let missing = scratch.path().join("missing");
    let empty = scratch.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    for data in [&missing, &empty] {
        let out = instarec(
            &s.config,
            &["restore", "--latest", "--data-dir", data.to_str().unwrap()],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(instarec::exit::ARCHIVE_FAULT as i32),
            "{err}"
        );
        assert!(!err.contains("--force"), "no --force was given:\n{err}");
        if data == &missing {
            assert!(
                err.contains("removed the directory the failed restore created"),
                "says what it cleaned:\n{err}"
            );
        }
    }
    assert!(!missing.exists(), "the dir the restore created is removed");
    assert!(
        std::fs::read_dir(&empty).unwrap().next().is_none(),
        "the empty dir stays empty"
    );
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

#[test]
fn backup_under_pgbench_restores_to_the_primarys_state_at_an_lsn_and_passes_amcheck() {
    let s = setup();
    let p = &s.primary;
    assert!(p.pgbench(&["-i", "-s", "2", "postgres"]).status.success());
    let bench = {
        let mut cmd = p.client_command("pgbench");
        cmd.args(["-n", "-c", "2", "-j", "2", "-T", "8", "postgres"]);
        std::thread::spawn(move || cmd.output().unwrap())
    };
    std::thread::sleep(Duration::from_secs(1));
    backup(&s);
    let bench = bench.join().unwrap();
    assert!(
        bench.status.success(),
        "pgbench: {}",
        String::from_utf8_lossy(&bench.stderr)
    );

    const STATE: &str = "SELECT (SELECT sum(abalance) || '/' || count(*) FROM pgbench_accounts) \
        || ' ' || (SELECT sum(tbalance) FROM pgbench_tellers) \
        || ' ' || (SELECT sum(bbalance) FROM pgbench_branches) \
        || ' ' || (SELECT count(*) FROM pgbench_history)";
    let want = p.psql(STATE);
    let x = p.psql("SELECT pg_current_wal_lsn()");
    // WAL after X, so recovery finds a record at or past it.
    p.psql("CREATE TABLE after_x(n int); INSERT INTO after_x VALUES (1)");
    wait_archived(p);

    let (report, restored) = restore_and_start(&s, &["--to-lsn", &x]);
    assert_eq!(
        restored.psql(STATE),
        want,
        "restored state differs; {report}"
    );
    assert_eq!(
        restored.psql("SELECT count(*) FROM pg_class WHERE relname = 'after_x'"),
        "0"
    );
    let amcheck = restored
        .client_command("pg_amcheck")
        .args(["--install-missing", "--heapallindexed", "postgres"])
        .output()
        .unwrap();
    assert!(
        amcheck.status.success(),
        "pg_amcheck: {}{}",
        String::from_utf8_lossy(&amcheck.stdout),
        String::from_utf8_lossy(&amcheck.stderr)
    );
}
