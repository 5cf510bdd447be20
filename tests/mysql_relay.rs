//! `instarec relay` against real MariaDB servers: a primary shipped into a
//! file:// archive by `instarec ship`, the relay serving that archive, and
//! a stock MariaDB replica (CHANGE MASTER TO ... MASTER_USE_GTID=slave_pos)
//! applying what it streams with its own SQL thread.

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::instarec::Shipper;
use support::relay::{
    relay_config as config, Relay, RELAY_PASSWORD as PASSWORD, RELAY_USER as USER,
};
use support::{free_port, MariaDb, MariaDbOptions};

/// Waits until the shipper archived its first chunk.
fn wait_first_chunk(dir: &Path, shipper: &Shipper) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !dir.join("archive/binlog-index").exists() {
        assert!(
            Instant::now() < deadline,
            "nothing archived:\n{}",
            shipper.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn point_at_relay(replica: &MariaDb, port: u16, password: &str) {
    replica.query(&format!(
        "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={port}, \
         MASTER_USER='{USER}', MASTER_PASSWORD='{password}', \
         MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1, MASTER_HEARTBEAT_PERIOD=1; \
         START SLAVE"
    ));
}

/// SHOW SLAVE STATUS as field → value.
fn slave_status(replica: &MariaDb) -> HashMap<String, String> {
    // Vertical output with field names ("Field: value"); the harness's
    // client_command drops names (-N).
    let mut cmd = Command::new(support::require_binary("mariadb", "mariadb-client"));
    cmd.args([
        "--no-defaults",
        "-u",
        "root",
        "--protocol=TCP",
        "-h",
        "127.0.0.1",
        "-P",
        &replica.port().to_string(),
        "-E",
        "-e",
        "SHOW SLAVE STATUS",
    ]);
    let out = cmd.output().expect("running the mariadb client");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn gtid_binlog_pos(db: &MariaDb) -> String {
    db.query("SELECT @@global.gtid_binlog_pos")
}

/// Waits until the replica applied everything the primary logged, with
/// both replication threads running and no error.
fn wait_caught_up(primary: &MariaDb, replica: &MariaDb, relay: &Relay, shipper: &Shipper) {
    let target = gtid_binlog_pos(primary);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let at = replica.query("SELECT @@global.gtid_slave_pos");
        let status = slave_status(replica);
        let field = |k: &str| status.get(k).cloned().unwrap_or_default();
        assert_eq!(
            field("Last_SQL_Errno"),
            "0",
            "replica SQL error: {status:?}"
        );
        if at == target && field("Slave_IO_Running") == "Yes" && field("Slave_SQL_Running") == "Yes"
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "replica at {at:?}, primary at {target:?}; status {status:?}\nrelay log:\n{}\nshipper log:\n{}",
            relay.log(),
            shipper.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn checksum(db: &MariaDb) -> String {
    db.query("CHECKSUM TABLE test.t, test.aria")
}

fn insert_rows(primary: &MariaDb, from: u32, n: u32) {
    for i in from..from + n {
        primary.query(&format!(
            "BEGIN; INSERT INTO test.t VALUES ({i}, REPEAT('r', {})); \
             INSERT INTO test.aria VALUES ({i}); COMMIT",
            (i % 40) * 17
        ));
    }
}

/// Commit on the primary → visible on the replica, per row: the time from
/// before the primary's client starts to MASTER_GTID_WAIT returning on the
/// replica. It includes two client process starts, so it is an upper bound.
fn freshness(primary: &MariaDb, replica: &MariaDb, rows: std::ops::Range<u32>) -> Vec<Duration> {
    rows.map(|i| {
        let t0 = Instant::now();
        let gtid = primary.query(&format!(
            "INSERT INTO test.t VALUES ({i}, 'fresh'); SELECT @@last_gtid"
        ));
        let waited = replica.query(&format!("SELECT MASTER_GTID_WAIT('{gtid}', 10)"));
        assert_eq!(
            waited, "0",
            "row {i} ({gtid}) did not reach the replica within 10 s"
        );
        t0.elapsed()
    })
    .collect()
}

#[test]
fn replica_follows_the_primary_through_the_relay_across_restarts_and_rotation() {
    let primary = MariaDb::start();
    primary.query(
        "CREATE DATABASE test; \
         CREATE TABLE test.t (id INT PRIMARY KEY, v TEXT) ENGINE=InnoDB; \
         CREATE TABLE test.aria (id INT) ENGINE=Aria",
    );
    let dir = tempfile::tempdir().unwrap();
    let relay_port = free_port();
    let config = config(dir.path(), &primary, relay_port);
    let shipper = Shipper::start(&config);
    insert_rows(&primary, 0, 20);
    wait_first_chunk(dir.path(), &shipper);
    let relay = Relay::start(&config, relay_port);

    let mut replica = MariaDb::start_with(MariaDbOptions {
        server_id: 2,
        ..MariaDbOptions::default()
    });
    point_at_relay(&replica, relay_port, PASSWORD);
    wait_caught_up(&primary, &replica, &relay, &shipper);
    assert_eq!(checksum(&replica), checksum(&primary));

    // New commits stream as the shipper archives them.
    insert_rows(&primary, 100, 20);
    wait_caught_up(&primary, &replica, &relay, &shipper);

    // Stopped while the primary writes, then started: no gap, no duplicate
    // (gtid_strict_mode would stop the SQL thread on a duplicate).
    replica.query("STOP SLAVE");
    insert_rows(&primary, 200, 20);
    replica.query("START SLAVE");
    wait_caught_up(&primary, &replica, &relay, &shipper);

    // Resuming in the middle of a chunk: one client call commits 30
    // transactions (one or two chunks). The replica is then wound back to
    // the 15th, as if it had stopped there, and must get exactly the 16th
    // onwards: a re-sent one fails on its duplicate key.
    let before: u64 = gtid_binlog_pos(&primary)
        .rsplit('-')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let batch: String = (600..630)
        .map(|i| format!("BEGIN; INSERT INTO test.t VALUES ({i}, 'batch'); COMMIT; "))
        .collect();
    primary.query(&batch);
    wait_caught_up(&primary, &replica, &relay, &shipper);
    replica.query(&format!(
        "STOP SLAVE; SET SESSION sql_log_bin = 0; DELETE FROM test.t WHERE id >= 615 AND id < 630; \
         SET GLOBAL gtid_slave_pos = '0-1-{}'; START SLAVE",
        before + 15
    ));
    wait_caught_up(&primary, &replica, &relay, &shipper);
    assert_eq!(checksum(&replica), checksum(&primary));

    // A rotation on the primary, then the replica server restarts.
    primary.query("FLUSH BINARY LOGS");
    insert_rows(&primary, 300, 10);
    wait_caught_up(&primary, &replica, &relay, &shipper);
    replica.restart();
    insert_rows(&primary, 400, 10);
    primary.query("FLUSH BINARY LOGS");
    insert_rows(&primary, 500, 10);
    wait_caught_up(&primary, &replica, &relay, &shipper);
    assert_eq!(checksum(&replica), checksum(&primary));

    let mut lat = freshness(&primary, &replica, 1000..1030);
    lat.sort();
    println!(
        "freshness commit→replica over {} rows: p50 {:?}, max {:?}",
        lat.len(),
        lat[lat.len() / 2],
        lat[lat.len() - 1]
    );
    assert!(
        lat[lat.len() / 2] < Duration::from_secs(1),
        "median freshness {:?} misses the 1 s goal",
        lat[lat.len() / 2]
    );
    wait_caught_up(&primary, &replica, &relay, &shipper);
    assert_eq!(checksum(&replica), checksum(&primary));
    // Idle: heartbeats keep the connection up, and the replica takes them.
    let beats = |db: &MariaDb| -> u64 {
        db.query("SHOW STATUS LIKE 'Slave_received_heartbeats'")
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let before_idle = beats(&replica);
    std::thread::sleep(Duration::from_secs(3));
    assert!(beats(&replica) >= before_idle + 2, "no heartbeats");
    let status = slave_status(&replica);
    assert_eq!(
        status.get("Last_IO_Errno").map(String::as_str),
        Some("0"),
        "{status:?}"
    );
    wait_caught_up(&primary, &replica, &relay, &shipper);

    let log = relay.log();
    assert!(log.contains("replica asked for the binlog"), "{log}");
    // Every reconnect (START SLAVE, the replica's restart) resumed by GTID.
    let dumps: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("replica asked for the binlog"))
        .collect();
    assert!(dumps.len() >= 3, "{log}");
    assert!(
        dumps.iter().all(|l| l.contains("MariadbGtid")),
        "{dumps:#?}"
    );
}

#[test]
fn a_replica_with_a_wrong_password_is_refused_and_shows_why() {
    let primary = MariaDb::start();
    primary.query("CREATE DATABASE test");
    let dir = tempfile::tempdir().unwrap();
    let relay_port = free_port();
    let config = config(dir.path(), &primary, relay_port);
    let shipper = Shipper::start(&config);
    // The archive holds the binlog, so only the password is wrong.
    wait_first_chunk(dir.path(), &shipper);
    let relay = Relay::start(&config, relay_port);
    let replica = MariaDb::start_with(MariaDbOptions {
        server_id: 2,
        ..MariaDbOptions::default()
    });
    point_at_relay(&replica, relay_port, "not-the-password");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = slave_status(&replica);
        let error = status.get("Last_IO_Error").cloned().unwrap_or_default();
        if error.contains("Access denied") {
            assert_ne!(
                status.get("Slave_IO_Running").map(String::as_str),
                Some("Yes")
            );
            assert!(error.contains(USER), "{error}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no access-denied error: {status:?}\n{}",
            relay.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(replica.query("SELECT @@global.gtid_slave_pos"), "");
    assert!(relay.log().contains("failed to log in"), "{}", relay.log());
}
