//! `instarec standby init` against a real PostgreSQL 15: a backup becomes a
//! stock hot standby that replays the archive, including the in-progress
//! segment's parts, and stays within seconds of the primary (measured, idle
//! and under pgbench). Bad input (a corrupt chunk, a non-empty directory)
//! fails with a clear error and starts nothing.

mod support;

use support::instarec::text;

use support::instarec::run as instarec;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::postgres::new_scratch_dir;
use support::process::GroupChild;
use support::Postgres;

/// Freshness the test insists on; the goal (README) is 1 s.
const FRESHNESS_LIMIT: Duration = Duration::from_secs(5);
const SAMPLES: usize = 10;

struct Shipper {
    _child: GroupChild,
}

fn start_shipper(config: &Path) -> Shipper {
    let log = config.with_extension("ship.log");
    let file = std::fs::File::create(&log).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_instarec"));
    cmd.arg("--config")
        .arg(config)
        .arg("ship")
        .stdout(file.try_clone().unwrap())
        .stderr(file);
    let child = GroupChild::spawn("instarec ship", cmd, libc::SIGTERM, Duration::from_secs(10))
        .expect("spawning instarec ship");
    Shipper { _child: child }
}

/// Config and archive live in a dir the postgres user can read: the
/// standby's restore_command runs instarec as that user.
/// Fields drop in this order: the shipper stops before the archive dir it
/// writes into is removed (else it recreates the dir after the test).
struct Setup {
    _shipper: Shipper,
    primary: Postgres,
    config: PathBuf,
    dir: tempfile::TempDir,
}

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
    let shipper = start_shipper(&config);
    primary.psql("CREATE TABLE marker(id int PRIMARY KEY, at timestamptz DEFAULT now())");
    Setup {
        primary,
        dir,
        config,
        _shipper: shipper,
    }
}

fn backup(s: &Setup) -> String {
    let out = instarec(&s.config, &["backup", "--json", "--wal-timeout", "60s"]);
    assert!(out.status.success(), "backup failed: {}", text(&out));
    let record: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    record["id"].as_str().unwrap().to_string()
}

/// `standby init` into a fresh scratch dir, then a stock postgres on it.
fn start_standby(s: &Setup) -> Postgres {
    let scratch = new_scratch_dir();
    let data = scratch.path().join("data");
    let out = instarec(
        &s.config,
        &["standby", "init", "--data-dir", data.to_str().unwrap()],
    );
    assert!(out.status.success(), "standby init failed: {}", text(&out));
    let auto = std::fs::read_to_string(data.join("postgresql.auto.conf")).unwrap();
    assert!(auto.contains("wal-fetch --partial %f %p"), "{auto}");
    assert!(data.join("standby.signal").exists());
    Postgres::start_existing(scratch, data, None)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn connect(pg: &Postgres) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting to {}: {e}", pg.url()));
    tokio::spawn(conn);
    client
}

/// Commits marker rows on the primary and measures, polling every 10 ms,
/// how long each takes to become visible on the standby.
async fn measure_freshness(
    config: &Path,
    primary: &Postgres,
    standby: &Postgres,
    first_id: i32,
    samples: usize,
) -> Vec<Duration> {
    let p = connect(primary).await;
    let s = connect(standby).await;
    let mut out = Vec::new();
    for i in 0..samples as i32 {
        let id = first_id + i;
        p.execute("INSERT INTO marker(id) VALUES ($1)", &[&id])
            .await
            .unwrap();
        let committed = Instant::now();
        loop {
            let n: i64 = match s
                .query_one("SELECT count(*) FROM marker WHERE id = $1", &[&id])
                .await
            {
                Ok(row) => row.get(0),
                Err(e) => panic!(
                    "standby query failed: {e}; standby log:\n{}",
                    support::process::log_tail(standby.log_path(), 30)
                ),
            };
            if n == 1 {
                break;
            }
            assert!(
                committed.elapsed() < Duration::from_secs(60),
                "marker {id} not visible on the standby after 60 s; standby log:\n{}\narchive:\n{}",
                support::process::log_tail(standby.log_path(), 10),
                archive_listing(config)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        out.push(committed.elapsed());
        // Spread commits over different points of the flush cycle.
        tokio::time::sleep(Duration::from_millis(150 + 37 * (i as u64 % 5))).await;
    }
    out
}

fn archive_listing(config: &Path) -> String {
    let out = Command::new("find")
        .arg(config.parent().unwrap().join("archive"))
        .output()
        .unwrap();
    let ship_log = std::fs::read_to_string(config.with_extension("ship.log")).unwrap_or_default();
    format!("{}\nship log:\n{}", text(&out), ship_log)
}

fn summary(label: &str, mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    let p50 = samples[samples.len() / 2];
    let max = *samples.last().unwrap();
    let ms: Vec<u128> = samples.iter().map(|d| d.as_millis()).collect();
    println!("standby freshness {label}: p50 {p50:?}, max {max:?}, samples (ms) {ms:?}");
    max
}

#[test]
fn standby_from_backup_serves_reads_and_stays_fresh_idle_and_under_pgbench() {
    let s = setup();
    assert!(s
        .primary
        .pgbench(&["-i", "-s", "1", "postgres"])
        .status
        .success());
    s.primary.psql("INSERT INTO marker(id) VALUES (0)");
    backup(&s);
    let standby = start_standby(&s);

    // Read-only hot standby with the backup's data.
    assert_eq!(standby.psql("SELECT pg_is_in_recovery()"), "t");
    assert_eq!(standby.psql("SELECT count(*) FROM pgbench_branches"), "1");
    assert!(standby
        .try_psql("INSERT INTO marker(id) VALUES (-1)")
        .unwrap_err()
        .contains("read-only"));

    let rt = runtime();
    let idle = rt.block_on(measure_freshness(
        &s.config, &s.primary, &standby, 1000, SAMPLES,
    ));
    let idle_max = summary("idle", idle);

    let bench = {
        let mut cmd = s.primary.client_command("pgbench");
        cmd.args(["-n", "-c", "2", "-j", "2", "-T", "12", "postgres"]);
        std::thread::spawn(move || cmd.output().unwrap())
    };
    std::thread::sleep(Duration::from_secs(1));
    let busy = rt.block_on(measure_freshness(
        &s.config, &s.primary, &standby, 2000, SAMPLES,
    ));
    let bench = bench.join().unwrap();
    assert!(
        bench.status.success(),
        "pgbench: {}",
        String::from_utf8_lossy(&bench.stderr)
    );
    let busy_max = summary("under pgbench", busy);

    assert!(idle_max < FRESHNESS_LIMIT, "idle max {idle_max:?}");
    assert!(busy_max < FRESHNESS_LIMIT, "busy max {busy_max:?}");

    // After the load the standby converges on the primary's data.
    let want = s
        .primary
        .psql("SELECT sum(abalance), count(*) FROM pgbench_accounts");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = standby.psql("SELECT sum(abalance), count(*) FROM pgbench_accounts");
        if got == want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "standby has {got}, primary {want}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn corrupt_chunk_and_non_empty_dir_fail_clearly_and_start_nothing() {
    let s = setup();
    let id = backup(&s);
    let scratch = new_scratch_dir();
    let data = scratch.path().join("data");

    // A non-empty data dir is refused and left as it was.
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("precious"), "keep me").unwrap();
    let out = instarec(
        &s.config,
        &["standby", "init", "--data-dir", data.to_str().unwrap()],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is not empty") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(data.join("precious")).unwrap(),
        "keep me"
    );

    // A flipped byte in a chunk: the error names the key, nothing is left.
    let key = format!("backups/{id}/data/base.tar/00000000");
    let object = s.dir.path().join("archive").join(&key);
    let mut bytes = std::fs::read(&object).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(&object, &bytes).unwrap();
    let out = instarec(
        &s.config,
        &[
            "standby",
            "init",
            "--force",
            "--data-dir",
            data.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&key), "error names the key: {err}");
    assert_eq!(
        out.status.code(),
        Some(instarec::exit::ARCHIVE_FAULT as i32),
        "{err}"
    );
    assert!(
        std::fs::read_dir(&data).unwrap().next().is_none(),
        "a failed init leaves an empty data dir"
    );
    assert!(!data.join("postmaster.pid").exists());
}

/// `restore --start` waits for recovery to end; a standby's never does. The
/// deadline stops the server and fails naming the data dir and its log.
#[test]
fn start_deadline_stops_a_recovery_that_never_ends_and_names_dir_and_log() {
    use instarec::restore::server::{recover, ServerError, StartOptions};
    let s = setup();
    backup(&s);
    let scratch = new_scratch_dir();
    let data = scratch.path().join("data");
    let out = instarec(
        &s.config,
        &["standby", "init", "--data-dir", data.to_str().unwrap()],
    );
    assert!(out.status.success(), "standby init failed: {}", text(&out));
    let opts = StartOptions {
        port: None,
        keep_running: false,
        db_user: "postgres".into(),
        os_user: "postgres".into(),
        bin_dir: Some(support::postgres::server_bin_dir()),
        timeout: Duration::from_secs(8),
    };
    let started = Instant::now();
    let result = runtime().block_on(recover(
        &data,
        &opts,
        &tokio_util::sync::CancellationToken::new(),
    ));
    let waited = started.elapsed();
    let err = match result {
        Err(e @ ServerError::Timeout { .. }) => e.to_string(),
        other => panic!("want a timeout, got {other:?}"),
    };
    assert!(
        waited >= opts.timeout && waited < opts.timeout + Duration::from_secs(60),
        "gave up after {waited:?}"
    );
    let log = data.join("instarec-recovery.log");
    assert!(
        err.contains(&data.display().to_string())
            && err.contains(&log.display().to_string())
            && err.contains("--start-timeout"),
        "{err}"
    );
    // It was a hot standby by then: the error says how far it got.
    assert!(!err.contains("never accepted connections"), "{err}");
    assert!(
        !data.join("postmaster.pid").exists(),
        "the server was stopped: {err}"
    );
}
