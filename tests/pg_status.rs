//! `instarec status` reads the archive's view of a cluster that is shipping.

mod support;

use instarec_postgres::Lsn;
use std::process::Command;
use std::time::Duration;
use support::instarec::{binary, write_pg_config, Shipper};
use support::{PgOptions, Postgres};

#[test]
fn status_reports_owner_epoch_and_archive_end_of_a_shipping_cluster() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}/archive", dir.path().display());
    let config = write_pg_config(dir.path(), &url, &pg.url(), "", "");
    let shipper = Shipper::start(&config);
    pg.psql("CREATE TABLE t AS SELECT generate_series(1, 20000) AS x");
    let target: Lsn = pg
        .psql("SELECT pg_current_wal_flush_lsn()")
        .parse()
        .unwrap();
    shipper.wait_flushed(&pg, target, Duration::from_secs(30));
    // Let the shipper record the primary's position (at most once a second).
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(shipper.stop(), 0);

    let out = Command::new(binary())
        .arg("--config")
        .arg(&config)
        .args(["status", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let system_id = pg.psql("SELECT system_identifier FROM pg_control_system()");
    assert_eq!(v["engine"], "postgres");
    assert_eq!(v["system_id"], system_id.as_str());
    assert_eq!(v["epoch"], 1);
    assert_eq!(
        v["epoch_primary"],
        format!("127.0.0.1:{}", pg.port()).as_str()
    );
    let end: Lsn = v["archive_end"].as_str().unwrap().parse().unwrap();
    assert!(end >= target, "archive end {end} < {target}");
    assert_eq!(v["timeline"], 1);
    assert!(v["last_primary_position"]["primary"].is_string(), "{v}");
    assert_eq!(v["backups"], 0);
    // Live: the primary answers; the shipper stopped after flushing, so
    // the archive holds everything the primary had then.
    assert!(v["live"]["primary_position"].is_string(), "{v}");
    assert!(v["archive_lag_bytes"].as_u64().is_some(), "{v}");
    assert_eq!(v["estimated_rpo_bytes"], v["archive_lag_bytes"], "{v}");

    let within = Command::new(binary())
        .arg("--config")
        .arg(&config)
        .args(["status", "--max-lag-bytes", "100000000"])
        .output()
        .unwrap();
    assert_eq!(
        within.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&within.stderr)
    );

    let text = Command::new(binary())
        .arg("--config")
        .arg(&config)
        .arg("status")
        .output()
        .unwrap();
    assert!(text.status.success());
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains(&system_id), "{text}");
    assert!(text.contains("epoch          1"), "{text}");

    // With the primary gone the lag cannot be measured: monitoring sees 6.
    let mut pg = pg;
    pg.stop();
    let unknown = Command::new(binary())
        .arg("--config")
        .arg(&config)
        .args(["status", "--max-lag-bytes", "1"])
        .output()
        .unwrap();
    assert_eq!(
        unknown.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&unknown.stderr)
    );
    assert!(
        String::from_utf8_lossy(&unknown.stdout).contains("unreachable"),
        "{}",
        String::from_utf8_lossy(&unknown.stdout)
    );
    // Without a threshold too: a server it was asked about is down, so
    // what a promote would lose is unknown, said in words, with exit 6; the
    // refusal reads as `backup` words it, with what to check.
    let down = support::instarec::run(&config, &["status"]);
    let shown = support::instarec::text(&down);
    assert_eq!(down.status.code(), Some(6), "{shown}");
    let addr = format!("127.0.0.1:{}", pg.port());
    assert!(
        shown.contains(&format!(
            "primary        unreachable: could not connect to PostgreSQL at {addr}: Connection refused"
        )),
        "{shown}"
    );
    assert!(
        shown.contains("check that the server is running"),
        "{shown}"
    );
    assert!(
        shown.contains("promote now    loss unknown: the primary is unreachable (above)"),
        "{shown}"
    );
    assert!(!shown.contains("~-"), "no dashes for numbers: {shown}");
    assert!(
        shown.contains(&format!(
            "error: could not reach the primary (could not connect to PostgreSQL at {addr}"
        )),
        "{shown}"
    );
}

fn status_json(config: &std::path::Path) -> serde_json::Value {
    let out = Command::new(binary())
        .arg("--config")
        .arg(config)
        .args(["status", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `synchronous = true` promises RPO 0 only while the primary really waits
/// for the shipper; a config that says so is not enough.
#[test]
fn status_reports_zero_rpo_only_while_the_primary_waits_for_the_shipper() {
    let pg = Postgres::start_with(PgOptions {
        synchronous_standby_names: Some("instarec".into()),
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}/archive", dir.path().display());
    let config = write_pg_config(dir.path(), &url, &pg.url(), "synchronous = true", "");
    let shipper = Shipper::start(&config);
    pg.psql("CREATE TABLE t AS SELECT generate_series(1, 1000) AS x");
    let waiting = status_json(&config);
    assert_eq!(waiting["live"]["synchronous_active"], true, "{waiting}");
    assert_eq!(waiting["estimated_rpo_bytes"], 0, "{waiting}");
    assert_eq!(shipper.stop(), 0);

    // Shipper gone: the primary no longer waits for anyone (local commits
    // go on), so the estimate is the measured lag, not the config's promise.
    pg.psql("SET synchronous_commit = local; INSERT INTO t SELECT generate_series(1, 100000)");
    let alone = status_json(&config);
    assert_eq!(alone["live"]["synchronous_active"], false, "{alone}");
    let lag = alone["archive_lag_bytes"].as_u64().expect("lag measured");
    assert!(lag > 0, "{alone}");
    assert_eq!(alone["estimated_rpo_bytes"], lag, "{alone}");
}

/// [primary] password_file is what `status` authenticates with, as `ship`
/// and `backup` do (status used to connect with the bare URL and fail).
#[test]
fn status_reaches_a_primary_with_the_password_from_password_file() {
    let pg = Postgres::start_with(PgOptions {
        scram_password: Some("s3cret pass".into()),
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}/archive", dir.path().display());
    let password_file = dir.path().join("pgpass");
    std::fs::write(&password_file, "s3cret pass\n").unwrap();
    let bare_url = format!("postgres://postgres@127.0.0.1:{}/postgres", pg.port());
    let config = write_pg_config(
        dir.path(),
        &url,
        &bare_url,
        &format!("password_file = \"{}\"", password_file.display()),
        "",
    );
    let shipper = Shipper::start(&config);
    let target: Lsn = pg
        .psql("SELECT pg_current_wal_flush_lsn()")
        .parse()
        .unwrap();
    shipper.wait_flushed(&pg, target, Duration::from_secs(30));

    let out = Command::new(binary())
        .arg("--config")
        .arg(&config)
        .args(["status", "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert!(v["live"]["primary_error"].is_null(), "{v}");
    assert!(v["live"]["primary_position"].is_string(), "{v}");
    assert!(out.status.success(), "{v}");
    assert_eq!(shipper.stop(), 0);
}
