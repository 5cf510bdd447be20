//! A PostgreSQL cluster shipping into S3 (moto) whose store stalls (moto
//! SIGSTOPped): `status` still answers within its --timeout, the shipper's
//! lag metrics and `status` tell the same story, and a stalled upload is
//! logged and counted instead of passing in silence.

mod support;

use instarec_postgres::Lsn;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};
use support::instarec::{run, text, Shipper};
use support::{free_port, Moto, Postgres};

const FLUSH_INTERVAL: f64 = 0.2;

/// A config shipping `pg` into moto, with metrics on `metrics_port`.
fn s3_config(dir: &Path, moto: &Moto, pg: &Postgres, metrics_port: u16, archive: &str) -> PathBuf {
    let path = dir.join("instarec.toml");
    std::fs::write(
        &path,
        format!(
            "[archive]\nurl = \"s3://{bucket}/lag\"\n{archive}\n\n\
             [archive.s3]\nendpoint = \"{endpoint}\"\nregion = \"{region}\"\n\
             access_key_id = \"testing\"\nsecret_access_key = \"testing\"\nallow_http = true\n\n\
             [primary]\nengine = \"postgres\"\nurl = \"{url}\"\nflush_interval = \"200ms\"\n\n\
             [metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n",
            bucket = moto.bucket(),
            endpoint = moto.endpoint(),
            region = moto.region(),
            url = pg.url(),
        ),
    )
    .unwrap();
    path
}

fn metric(port: u16, name: &str) -> f64 {
    let body = support::http::request(port, "GET", "/metrics", &[], &[])
        .expect("metrics endpoint answers")
        .body_text();
    body.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from:\n{body}"))
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("JSON: {e}\n{}", text(out)))
}

fn ship_until_flushed(pg: &Postgres, shipper: &Shipper) {
    let target: Lsn = pg
        .psql("SELECT pg_current_wal_flush_lsn()")
        .parse()
        .unwrap();
    shipper.wait_flushed(pg, target, Duration::from_secs(60));
}

/// pgbench as fast as it goes (WAL never stops arriving) for `seconds`, in the background.
fn steady_load(pg: &Postgres, seconds: u32) -> std::thread::JoinHandle<Output> {
    let mut cmd = pg.client_command("pgbench");
    cmd.args(["-n", "-c", "2", "-T", &seconds.to_string(), "postgres"]);
    std::thread::spawn(move || cmd.output().unwrap())
}

#[test]
fn status_answers_within_its_timeout_while_the_store_hangs() {
    let moto = Moto::start();
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let config = s3_config(dir.path(), &moto, &pg, free_port(), "");
    let shipper = Shipper::start(&config);
    pg.psql("CREATE TABLE t AS SELECT generate_series(1, 1000) AS x");
    ship_until_flushed(&pg, &shipper);
    let answered = run(&config, &["status", "--archive-only"]);
    assert_eq!(answered.status.code(), Some(0), "{}", text(&answered));

    let paused = moto.pause();
    let started = Instant::now();
    let out = run(&config, &["status", "--archive-only", "--max-lag", "5s"]);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(6), "{}", text(&out));
    // 5 s default deadline, plus starting the process on a busy machine.
    assert!(
        took < Duration::from_secs(12),
        "took {took:?}: {}",
        text(&out)
    );
    let shown = text(&out);
    assert!(
        shown.contains(&format!(
            "timed out      the archive s3://{}/lag did not answer within 5s",
            moto.bucket()
        )),
        "{shown}"
    );
    assert!(shown.contains("the lag cannot be measured"), "{shown}");

    let started = Instant::now();
    let out = run(&config, &["status", "--json", "--timeout", "2s"]);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(6), "{}", text(&out));
    assert!(
        took < Duration::from_secs(8),
        "took {took:?}: {}",
        text(&out)
    );
    let v = json(&out);
    let timed_out = v["timed_out"].as_str().unwrap_or_default();
    assert!(timed_out.contains("did not answer within 1s"), "{v:#}");
    // The primary still answers: it says how far the archive is behind.
    assert!(v["live"]["primary_position"].is_string(), "{v:#}");
    assert!(v["archive_lag_bytes"].is_u64(), "{v:#}");
    drop(paused);
    let back = run(&config, &["status", "--json"]);
    assert_eq!(back.status.code(), Some(0), "{}", text(&back));
    assert_eq!(shipper.stop(), 0);
}

/// Both figures are the age / size of the oldest WAL not yet durable: the
/// metric as the shipper received it, status as the primary flushed it.
/// They agree within one flush_interval under a steady load, and during a
/// stall both grow with it.
#[test]
fn lag_metric_and_status_agree_under_load_and_while_the_store_hangs() {
    let moto = Moto::start();
    let pg = Postgres::start();
    assert!(pg.pgbench(&["-i", "-s", "1", "postgres"]).status.success());
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = s3_config(dir.path(), &moto, &pg, port, "");
    let shipper = Shipper::start(&config);
    ship_until_flushed(&pg, &shipper);
    let load = steady_load(&pg, 30);
    std::thread::sleep(Duration::from_secs(2));

    let (mut metrics, mut statuses) = (Vec::new(), Vec::new());
    for _ in 0..12 {
        metrics.push(metric(port, "instarec_ship_archive_lag_seconds"));
        let out = run(&config, &["status", "--json"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let v = json(&out);
        statuses.push(
            v["live"]["archive_lag_seconds"]
                .as_f64()
                .unwrap_or_else(|| panic!("{v:#}")),
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (m, s) = (mean(&metrics), mean(&statuses));
    eprintln!("steady: metric {metrics:?} status {statuses:?}");
    for (what, samples) in [("metric", &metrics), ("status", &statuses)] {
        assert!(
            samples.iter().all(|x| *x < 1.5),
            "{what} lag under a steady load stays near flush_interval: {samples:?}"
        );
    }
    assert!(
        (m - s).abs() <= FLUSH_INTERVAL + 0.1,
        "mean lag: metric {m:.3} s, status {s:.3} s (metric {metrics:?}, status {statuses:?})"
    );

    // The store hangs for a few seconds: the primary keeps writing.
    let paused = moto.pause();
    std::thread::sleep(Duration::from_secs(3));
    let out = run(&config, &["status", "--json", "--timeout", "2s"]);
    let metric_seconds = metric(port, "instarec_ship_archive_lag_seconds");
    let metric_bytes = metric(port, "instarec_ship_archive_lag_bytes");
    let slot_bytes: f64 = pg
        .psql("SELECT pg_current_wal_flush_lsn() - flush_lsn FROM pg_stat_replication WHERE application_name = 'instarec'")
        .parse()
        .unwrap();
    drop(paused);
    assert_eq!(
        out.status.code(),
        Some(6),
        "the archive timed out: {}",
        text(&out)
    );
    let v = json(&out);
    let status_seconds = v["live"]["archive_lag_seconds"]
        .as_f64()
        .unwrap_or_else(|| panic!("{v:#}"));
    let status_bytes = v["archive_lag_bytes"]
        .as_f64()
        .unwrap_or_else(|| panic!("{v:#}"));
    eprintln!(
        "stalled: metric {metric_seconds:.3} s {metric_bytes} B, status {status_seconds:.3} s {status_bytes} B, primary {slot_bytes} B"
    );
    assert!(
        metric_seconds >= 3.0,
        "metric grows with the stall: {metric_seconds}"
    );
    assert!(
        status_seconds >= 3.0,
        "status grows with the stall: {status_seconds}"
    );
    // The metric was read a moment after status; allow one flush_interval
    // plus that moment.
    assert!(
        (metric_seconds - status_seconds).abs() <= FLUSH_INTERVAL + 0.5,
        "stalled: metric {metric_seconds:.3} s, status {status_seconds:.3} s"
    );
    // Sizes: what the primary holds for the shipper, within what it wrote
    // between the readings (a few hundred pgbench transactions: well under 1 MB).
    assert!(
        (metric_bytes - slot_bytes).abs() <= 1_000_000.0,
        "stalled: metric {metric_bytes} B, primary holds {slot_bytes} B"
    );
    assert!(
        (status_bytes - slot_bytes).abs() <= 1_000_000.0,
        "stalled: status {status_bytes} B, primary holds {slot_bytes} B"
    );
    assert!(load.join().unwrap().status.success());
    assert_eq!(shipper.stop(), 0);
}

#[test]
fn a_stalled_upload_is_logged_with_its_key_and_counted() {
    let moto = Moto::start();
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = s3_config(dir.path(), &moto, &pg, port, "stall_warning = \"1s\"");
    let shipper = Shipper::start(&config);
    pg.psql("CREATE TABLE t AS SELECT generate_series(1, 1000) AS x");
    ship_until_flushed(&pg, &shipper);
    assert_eq!(metric(port, "instarec_ship_upload_stalls_total"), 0.0);

    let paused = moto.pause();
    pg.psql("INSERT INTO t SELECT generate_series(1, 1000)");
    std::thread::sleep(Duration::from_secs(3));
    drop(paused);
    ship_until_flushed(&pg, &shipper);
    let log = shipper.log();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("still not durable after"))
        .collect();
    assert!(
        !warnings.is_empty(),
        "a WARN for the stalled upload:\n{log}"
    );
    for w in &warnings {
        assert!(w.contains("wal/"), "names the key: {w}");
        assert!(w.contains("stall_warning = 1s"), "names the setting: {w}");
    }
    assert!(
        log.lines()
            .any(|l| l.contains("stalled archive upload of wal/") && l.contains("ended after")),
        "says when it ended, and after how long:\n{log}"
    );
    let stalls = metric(port, "instarec_ship_upload_stalls_total");
    assert_eq!(
        stalls,
        warnings.len() as f64,
        "one count per warning:\n{log}"
    );
    assert_eq!(shipper.stop(), 0);
}
