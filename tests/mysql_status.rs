//! `instarec status` with engine = "mysql" against real MariaDB servers: a
//! primary shipped into a file:// archive, `instarec relay` serving it and a
//! replica of the relay as the standby. Status reads the archive's end as a
//! GTID position and binlog file:pos, measures the archive's lag behind the
//! live primary in transactions, bytes and (an upper bound of) seconds, the
//! standby's lag behind the archive, and exits 6 for monitoring when a lag
//! is over a threshold or cannot be measured.

mod support;

use chrono::{DateTime, Utc};
use serde_json::Value;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};
use support::instarec::{run, write_mysql_config, Shipper};
use support::mariadb_topology::{gtid_binlog_pos, text, Cluster};
use support::MariaDb;

fn status_json(config: &Path, args: &[&str]) -> Value {
    let mut all = vec!["status", "--json"];
    all.extend_from_slice(args);
    let out = run(config, &all);
    assert!(out.status.success(), "status: {}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("JSON: {e}\n{}", text(&out)))
}

fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

/// `instarec status <threshold>` exits with each expected code.
fn assert_exit_codes(config: &Path, cases: &[(&[&str], i32)]) {
    for (threshold, expected) in cases {
        let mut args = vec!["status"];
        args.extend_from_slice(threshold);
        let out = run(config, &args);
        assert_eq!(code(&out), Some(*expected), "{threshold:?}: {}", text(&out));
    }
}

/// Polls archive-only status until its archive_end is `target`.
fn wait_archive_end(config: &Path, target: &str, shipper: &Shipper) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = status_json(config, &["--archive-only"]);
        if v["archive_end"] == target {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "archive end stayed {} instead of {target}:\n{v:#}\nshipper log:\n{}",
            v["archive_end"],
            shipper.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// (File, Position) of SHOW MASTER STATUS.
fn master_status(db: &MariaDb) -> (String, u64) {
    let row = db.query("SHOW MASTER STATUS");
    let mut cols = row.split('\t');
    let file = cols.next().unwrap().to_string();
    let pos = cols.next().unwrap().parse().unwrap();
    (file, pos)
}

/// A binlog file's size as SHOW BINARY LOGS lists it.
fn binlog_size(db: &MariaDb, file: &str) -> u64 {
    db.query("SHOW BINARY LOGS")
        .lines()
        .find_map(|l| {
            let (name, size) = l.split_once('\t')?;
            (name == file).then(|| size.trim().parse().ok())?
        })
        .unwrap_or_else(|| panic!("{file} is not in SHOW BINARY LOGS"))
}

#[test]
fn status_follows_a_mariadb_primary_its_archive_and_standby_in_gtids() {
    let Cluster {
        mut primary,
        standby,
        shipper,
        relay,
        config,
        dir: _dir,
        ..
    } = Cluster::start();
    for i in 1..=20 {
        primary.query(&format!("INSERT INTO test.ledger VALUES ({i})"));
    }
    let target = gtid_binlog_pos(&primary);

    // Archive only: the end is the primary's GTID position, at the offset
    // SHOW MASTER STATUS names; nothing is asked of the servers.
    let v = wait_archive_end(&config, &target, &shipper);
    assert_eq!(v["engine"], "mysql", "{v:#}");
    assert_eq!(v["timeline"], Value::Null, "{v:#}");
    assert_eq!(v["live"], Value::Null, "{v:#}");
    assert_eq!(v["archive_lag_transactions"], Value::Null, "{v:#}");
    let (file, pos) = master_status(&primary);
    assert_eq!(v["archive_end_binlog"], format!("{file}:{pos}"), "{v:#}");
    assert!(v["archive_end_time"].is_string(), "{v:#}");

    // Live, caught up: the archive lacks nothing; the standby replayed it all.
    let waited = standby.query(&format!("SELECT MASTER_GTID_WAIT('{target}', 30)"));
    assert_eq!(
        waited,
        "0",
        "standby did not reach {target}:\n{}",
        relay.log()
    );
    // Let the shipper record the primary's position (at most once a second).
    std::thread::sleep(Duration::from_millis(1500));
    let v = status_json(&config, &[]);
    assert_eq!(v["live"]["primary_position"], target.as_str(), "{v:#}");
    assert_eq!(
        v["live"]["primary_binlog"],
        format!("{file}:{pos}"),
        "{v:#}"
    );
    assert_eq!(v["live"]["primary_error"], Value::Null, "{v:#}");
    assert_eq!(v["archive_lag_transactions"], 0, "{v:#}");
    assert_eq!(v["archive_lag_bytes"], 0, "{v:#}");
    assert_eq!(v["live"]["archive_lag_seconds"], 0.0, "{v:#}");
    assert_eq!(v["estimated_rpo_transactions"], 0, "{v:#}");
    assert_eq!(v["estimated_rpo_seconds"], 0.0, "{v:#}");
    assert_eq!(
        v["live"]["standby_replay_position"],
        target.as_str(),
        "{v:#}"
    );
    assert_eq!(v["standby_lag_transactions"], 0, "{v:#}");
    assert_eq!(v["estimated_rto_seconds"], 2.0, "{v:#}");
    // The newest record may predate the last inserts' archiving.
    assert!(v["last_primary_position"]["primary"].is_string(), "{v:#}");
    let recorded_lag = v["last_known_lag_transactions"].as_u64();
    assert!(recorded_lag.is_some_and(|n| n <= 20), "{v:#}");
    assert_exit_codes(
        &config,
        &[
            (&["--max-lag-bytes", "0"], 0),
            (&["--max-lag", "1s"], 0),
            (&["--max-lag-transactions", "0"], 0),
        ],
    );

    // The shipper stops; the primary commits 5 more. The archive lacks
    // exactly those, and no fewer seconds of them than have passed since
    // the first one committed.
    assert_eq!(shipper.stop(), 0);
    let first_unarchived_at: DateTime<Utc> = Utc::now();
    for i in 21..=25 {
        primary.query(&format!("INSERT INTO test.ledger VALUES ({i})"));
        if i == 22 {
            // The lag spans a rotation: bytes count across the files.
            primary.query("FLUSH BINARY LOGS");
        }
    }
    let ahead = gtid_binlog_pos(&primary);
    std::thread::sleep(Duration::from_millis(2100));
    let v = status_json(&config, &[]);
    let waited = (Utc::now() - first_unarchived_at).num_milliseconds() as f64 / 1000.0;
    assert_eq!(v["archive_end"], target.as_str(), "{v:#}");
    assert_eq!(v["live"]["primary_position"], ahead.as_str(), "{v:#}");
    assert_eq!(v["archive_lag_transactions"], 5, "{v:#}");
    assert_eq!(v["estimated_rpo_transactions"], 5, "{v:#}");
    let (file_ahead, pos_ahead) = master_status(&primary);
    assert_ne!(file_ahead, file);
    let rest_of_file = binlog_size(&primary, &file) - pos;
    assert_eq!(v["archive_lag_bytes"], rest_of_file + pos_ahead, "{v:#}");
    let rpo = v["estimated_rpo_seconds"].as_f64().expect("an RPO bound");
    assert!(
        rpo >= waited,
        "RPO {rpo} s < {waited} s since the first unarchived commit"
    );
    assert_eq!(
        v["live"]["archive_lag_seconds"].as_f64(),
        Some(rpo),
        "{v:#}"
    );
    assert_exit_codes(
        &config,
        &[
            (&["--max-lag", "1s"], 6),
            (&["--max-lag-bytes", "0"], 6),
            (&["--max-lag-transactions", "4"], 6),
            (&["--max-lag-transactions", "5"], 0),
            (&["--max-lag", "1h"], 0),
        ],
    );
    let out = run(&config, &["status"]);
    assert_eq!(code(&out), Some(0), "{}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains(&format!("archive end    {target} ")),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("primary        at {ahead} ")),
        "{shown}"
    );
    assert!(shown.contains("archive 5 transactions"), "{shown}");

    // The standby stops applying; a new shipper archives the 5: the
    // standby lags the archive by them, and promote would replay them.
    standby.query("STOP SLAVE SQL_THREAD");
    let shipper = Shipper::start(&config);
    wait_archive_end(&config, &ahead, &shipper);
    let v = status_json(&config, &[]);
    assert_eq!(v["archive_lag_transactions"], 0, "{v:#}");
    assert_eq!(
        v["live"]["standby_replay_position"],
        target.as_str(),
        "{v:#}"
    );
    assert_eq!(v["standby_lag_transactions"], 5, "{v:#}");
    assert_eq!(v["estimated_rto_seconds"], 2.0 + 5.0 / 2000.0, "{v:#}");
    assert_eq!(
        v["live"]["standby_replay_delay_seconds"],
        Value::Null,
        "{v:#}"
    );

    // The primary dies: reported, with exit 6 (what a promote would lose is
    // unknown), and said in words on the promote line.
    primary.kill9();
    let out = run(&config, &["status", "--json"]);
    assert_eq!(code(&out), Some(6), "{}", text(&out));
    let v: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    let shown = run(&config, &["status"]);
    assert_eq!(code(&shown), Some(6), "{}", text(&shown));
    assert!(
        String::from_utf8_lossy(&shown.stdout).contains("loss unknown: the primary is unreachable"),
        "{}",
        text(&shown)
    );
    assert!(
        String::from_utf8_lossy(&shown.stderr).contains("could not reach the primary"),
        "{}",
        text(&shown)
    );
    assert!(v["live"]["primary_error"].is_string(), "{v:#}");
    assert_eq!(v["live"]["primary_position"], Value::Null, "{v:#}");
    assert_eq!(v["archive_lag_transactions"], Value::Null, "{v:#}");
    assert_eq!(v["estimated_rpo_seconds"], Value::Null, "{v:#}");
    assert_eq!(v["archive_end"], ahead.as_str(), "{v:#}");
    let out = run(&config, &["status", "--max-lag-bytes", "1"]);
    assert_eq!(code(&out), Some(6), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("unreachable"),
        "{}",
        text(&out)
    );
    drop(shipper);
}

#[test]
fn semi_sync_promises_no_loss_only_while_the_primary_waits_for_the_shipper() {
    let primary = MariaDb::start();
    primary.query("CREATE DATABASE test; CREATE TABLE test.t (id INT PRIMARY KEY)");
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}/archive", dir.path().display());
    let config = write_mysql_config(dir.path(), &url, &primary.url(), "synchronous = true");
    let shipper = Shipper::start(&config);
    // A short timeout: without our ack a commit soon goes asynchronous.
    primary.query(
        "SET GLOBAL rpl_semi_sync_master_timeout = 500; \
         SET GLOBAL rpl_semi_sync_master_enabled = ON",
    );
    let semi_sync_clients = || {
        primary.query(
            "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS \
             WHERE VARIABLE_NAME = 'Rpl_semi_sync_master_clients'",
        )
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while semi_sync_clients() != "1" {
        assert!(
            Instant::now() < deadline,
            "no semi-sync client:\n{}",
            shipper.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    primary.query("INSERT INTO test.t VALUES (1)");
    wait_archive_end(&config, &gtid_binlog_pos(&primary), &shipper);
    let v = status_json(&config, &[]);
    assert_eq!(v["estimated_rpo_transactions"], 0, "{v:#}");
    assert_eq!(v["estimated_rpo_seconds"], 0.0, "{v:#}");

    // Without the shipper the commit waits 500 ms, then is acknowledged
    // unarchived: the primary no longer waits, so the loss is real.
    assert_eq!(shipper.stop(), 0);
    primary.query("INSERT INTO test.t VALUES (2)");
    let v = status_json(&config, &[]);
    assert_eq!(v["archive_lag_transactions"], 1, "{v:#}");
    assert_eq!(v["estimated_rpo_transactions"], 1, "{v:#}");
    assert!(v["estimated_rpo_seconds"].as_f64().is_some(), "{v:#}");

    // Another semi-sync replica (a second shipper, into another archive)
    // acknowledges commits our archive lacks: semi-sync is ON with one
    // client, but not ours, so it promises nothing for this archive.
    let other_dir = tempfile::tempdir().unwrap();
    let other_config = other_dir.path().join("other.toml");
    std::fs::write(
        &other_config,
        format!(
            "[archive]\nurl = \"file://{}/archive\"\n\n[primary]\nengine = \"mysql\"\nurl = \"{}\"\nserver_id = 4200000002\nsynchronous = true\nflush_interval = \"200ms\"\n",
            other_dir.path().display(),
            primary.url()
        ),
    )
    .unwrap();
    let other = Shipper::start(&other_config);
    let deadline = Instant::now() + Duration::from_secs(30);
    while semi_sync_clients() != "1" {
        assert!(
            Instant::now() < deadline,
            "no semi-sync client:\n{}",
            other.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    primary.query("INSERT INTO test.t VALUES (3)");
    let v = status_json(&config, &[]);
    assert_eq!(v["archive_lag_transactions"], 2, "{v:#}");
    assert_eq!(v["estimated_rpo_transactions"], 2, "{v:#}");
    assert_eq!(other.stop(), 0);
}
