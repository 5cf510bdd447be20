//! The binlog client against a real MariaDB: what it streams is what the
//! server wrote, byte for byte, in GTID order; it resumes exactly after a
//! GTID, follows rotations, and reports a server restart as an error.
//!
//! What is comparable with the server's files: every event with a non-zero
//! log_pos and no artificial flag sits in `event.file` at
//! `[log_pos - event_size, log_pos)`. The artificial Rotate that opens a
//! stream (log_pos 0) and heartbeats are made up for the stream and are not
//! in any file. One bit differs by design: the in-use flag of the
//! FORMAT_DESCRIPTION of the file the server is still writing.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use instarec_mysql::{
    BinlogClient, BinlogEvent, BinlogStream, EventGtid, EventType, MariadbGtid, MariadbGtidPos,
    MysqlError, StartPosition, StreamedEvent, BINLOG_MAGIC,
};
use support::MariaDb;

const REPLICA_ID: u32 = 1001;
const WAIT: Duration = Duration::from_secs(20);

async fn next_event(stream: &mut BinlogStream) -> StreamedEvent {
    tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("no event within 20 s")
        .expect("stream failed")
        .expect("stream ended")
}

/// Reads events until the one that ends the transaction `last`.
async fn read_through(stream: &mut BinlogStream, last: MariadbGtid) -> Vec<BinlogEvent> {
    let mut events = Vec::new();
    let mut in_last = false;
    loop {
        match next_event(stream).await {
            StreamedEvent::Heartbeat { .. } => {}
            StreamedEvent::Event(ev) => {
                if let Some(EventGtid::Mariadb(g)) = ev.gtid {
                    in_last = g == last;
                }
                let done = in_last && ev.ends_transaction;
                events.push(ev);
                if done {
                    return events;
                }
            }
        }
    }
}

fn gtids(events: &[BinlogEvent]) -> Vec<MariadbGtid> {
    events
        .iter()
        .filter_map(|e| match e.gtid {
            Some(EventGtid::Mariadb(g)) => Some(g),
            _ => None,
        })
        .collect()
}

fn binlog_pos(db: &MariaDb) -> MariadbGtidPos {
    db.query("SELECT @@global.gtid_binlog_pos").parse().unwrap()
}

fn last_gtid(db: &MariaDb) -> MariadbGtid {
    *binlog_pos(db).get(0).expect("domain 0 in gtid_binlog_pos")
}

/// Every comparable event equals the file's bytes at its offsets, and the
/// comparable events of each file tile it from the magic to its end.
fn assert_byte_identical_to_files(db: &MariaDb, events: &[BinlogEvent]) -> usize {
    let mut by_file: BTreeMap<&str, Vec<&BinlogEvent>> = BTreeMap::new();
    for ev in events.iter().filter(|e| !e.artificial) {
        by_file.entry(ev.file.as_str()).or_default().push(ev);
    }
    let mut compared = 0;
    for (file, evs) in by_file {
        let bytes = std::fs::read(db.data_dir().join(file)).unwrap();
        assert_eq!(&bytes[..4], &BINLOG_MAGIC, "{file}");
        let mut expected_start = 4u64;
        for ev in evs {
            let end = u64::from(ev.log_pos());
            let start = end - ev.raw.bytes.len() as u64;
            assert_eq!(
                start,
                expected_start,
                "{file}: gap or overlap before the {:?} ending at {end}",
                ev.event_type()
            );
            let mut in_file = bytes[start as usize..end as usize].to_vec();
            if ev.event_type() == EventType::FormatDescription {
                // The file still being written has LOG_EVENT_BINLOG_IN_USE_F
                // in its FORMAT_DESCRIPTION; the stream has it cleared (the
                // CRC32 leaves it out, so both verify).
                in_file[17] &= !1;
            }
            assert_eq!(
                &in_file[..],
                &ev.raw.bytes[..],
                "{file}: {:?} at {start}..{end} differs from the file",
                ev.event_type()
            );
            expected_start = end;
            compared += 1;
        }
        assert_eq!(
            expected_start,
            bytes.len() as u64,
            "{file}: the stream stops short of the file's end"
        );
    }
    compared
}

fn write_some_transactions(db: &MariaDb, first_id: u32, n: u32) {
    for i in first_id..first_id + n {
        db.query(&format!(
            "INSERT INTO test.t VALUES ({i}, REPEAT('x', {}))",
            i * 37
        ));
    }
    // A multi-statement transaction and a non-transactional change (ends with COMMIT, not XID).
    db.query(&format!(
        "BEGIN; INSERT INTO test.t VALUES ({}, 'a'); UPDATE test.t SET v = 'b' WHERE id = {first_id}; COMMIT",
        first_id + n
    ));
    db.query(&format!("INSERT INTO test.aria VALUES ({first_id})"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_the_binlog_byte_identical_in_gtid_order_resumes_and_follows_rotation() {
    let db = MariaDb::start();
    db.query(
        "CREATE DATABASE test; \
         CREATE TABLE test.t (id INT PRIMARY KEY, v TEXT) ENGINE=InnoDB; \
         CREATE TABLE test.aria (id INT) ENGINE=Aria",
    );

    let client = BinlogClient::connect(&db.url(), REPLICA_ID)
        .await
        .unwrap()
        .with_heartbeat(Duration::from_millis(200));
    assert_eq!(client.flavor(), instarec_mysql::ServerFlavor::Mariadb);
    let mut stream = client
        .clone()
        .start(StartPosition::MariadbGtid(MariadbGtidPos::new()))
        .await
        .unwrap();

    // Writes while the stream is open.
    tokio::task::block_in_place(|| write_some_transactions(&db, 1, 20));
    let mut events = read_through(&mut stream, last_gtid(&db)).await;

    let first = &events[0];
    assert_eq!(first.event_type(), EventType::Rotate);
    assert!(
        first.artificial,
        "the stream opens with the artificial Rotate"
    );
    assert_eq!(
        first.file, "mysql-bin.000001",
        "no stray checksum bytes in the name"
    );

    // GTIDs: one per transaction, consecutive, the last one the server's position.
    let seen = gtids(&events);
    assert!(seen.len() >= 24, "{} GTIDs", seen.len());
    for pair in seen.windows(2) {
        assert_eq!(
            pair[1].seq_no,
            pair[0].seq_no + 1,
            "{} then {}",
            pair[0],
            pair[1]
        );
    }
    let pos: MariadbGtidPos = seen.iter().copied().collect();
    assert_eq!(pos, binlog_pos(&db));
    // Each event group ends exactly once, before the next GTID.
    let mut open = false;
    for ev in &events {
        if let Some(gtid) = ev.gtid {
            assert!(!open, "GTID {gtid} starts before the previous group ended");
            open = true;
        }
        if ev.ends_transaction {
            assert!(
                open,
                "{:?} at {} ends no group",
                ev.event_type(),
                ev.log_pos()
            );
            open = false;
        }
    }
    assert!(
        events
            .iter()
            .any(|e| e.event_type() == EventType::Query && e.ends_transaction),
        "the Aria insert ends with a COMMIT query"
    );
    assert!(events.iter().any(|e| e.event_type() == EventType::Xid));

    // Rotation: FLUSH BINARY LOGS, then more writes land in the next file.
    tokio::task::block_in_place(|| {
        db.query("FLUSH BINARY LOGS");
        write_some_transactions(&db, 100, 5);
    });
    let after = read_through(&mut stream, last_gtid(&db)).await;
    let rotate = after
        .iter()
        .find(|e| e.event_type() == EventType::Rotate && !e.artificial)
        .expect("a real Rotate at the end of mysql-bin.000001");
    assert_eq!(rotate.file, "mysql-bin.000001");
    assert_eq!(stream.file(), "mysql-bin.000002");
    assert_eq!(after.last().unwrap().file, "mysql-bin.000002");
    events.extend(after);

    // Idle: a heartbeat at the position after the last event, not archived.
    let last = events.last().unwrap().position();
    loop {
        if let StreamedEvent::Heartbeat { position } = next_event(&mut stream).await {
            assert_eq!(position, last);
            break;
        }
    }

    // Byte identity, file by file.
    let compared = assert_byte_identical_to_files(&db, &events);
    assert!(compared > 100, "only {compared} events compared");
    for ev in &events {
        assert_eq!(ev.raw.header.event_size as usize, ev.raw.bytes.len());
        ev.raw.verify_crc32().unwrap();
    }

    // Resume from a GTID in the middle: exactly the transactions after it.
    let all = gtids(&events);
    let mid = all[all.len() / 2];
    let mut resumed = client
        .start(StartPosition::MariadbGtid([mid].into_iter().collect()))
        .await
        .unwrap();
    let rest = read_through(&mut resumed, *all.last().unwrap()).await;
    assert_eq!(gtids(&rest), all[all.len() / 2 + 1..].to_vec());
    let rest_real: Vec<&BinlogEvent> = rest
        .iter()
        .filter(|e| !e.artificial && e.gtid.is_some())
        .collect();
    assert_eq!(rest_real.len(), all.len() - all.len() / 2 - 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_ends_the_stream_with_an_error() {
    let mut db = MariaDb::start();
    db.query("CREATE DATABASE test; CREATE TABLE test.t (id INT PRIMARY KEY) ENGINE=InnoDB");
    let mut stream = BinlogClient::connect(&db.url(), REPLICA_ID)
        .await
        .unwrap()
        .start(StartPosition::MariadbGtid(MariadbGtidPos::new()))
        .await
        .unwrap();
    read_through(&mut stream, last_gtid(&db)).await;

    tokio::task::block_in_place(|| db.restart());
    let err = loop {
        match tokio::time::timeout(WAIT, stream.next())
            .await
            .expect("no error within 20 s")
        {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the stream ended quietly instead of failing"),
            Err(e) => break e,
        }
    };
    assert!(
        matches!(err, MysqlError::Closed { .. } | MysqlError::Server { .. }),
        "{err:?}"
    );
    // Reconnecting is the caller's job, and works.
    let mut again = BinlogClient::connect(&db.url(), REPLICA_ID)
        .await
        .unwrap()
        .start(StartPosition::MariadbGtid(MariadbGtidPos::new()))
        .await
        .unwrap();
    db.query("INSERT INTO test.t VALUES (1)");
    let events = read_through(&mut again, last_gtid(&db)).await;
    assert!(events.iter().any(|e| e.event_type() == EventType::Xid));
}

#[tokio::test]
async fn wrong_password_and_bad_urls_are_clear_errors() {
    let err = BinlogClient::connect("postgres://x@127.0.0.1:1/", REPLICA_ID)
        .await
        .unwrap_err();
    assert!(matches!(err, MysqlError::InvalidUrl { .. }), "{err}");
    let err = BinlogClient::connect("mysql://root:pw@127.0.0.1:1/", REPLICA_ID)
        .await
        .unwrap_err();
    assert!(!err.to_string().contains("pw@"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn semi_sync_commit_waits_for_our_ack() {
    let db = std::sync::Arc::new(MariaDb::start());
    db.query("CREATE DATABASE test; CREATE TABLE test.t (id INT PRIMARY KEY) ENGINE=InnoDB");
    let mut stream = BinlogClient::connect(&db.url(), REPLICA_ID)
        .await
        .unwrap()
        .with_semi_sync(true)
        .start(StartPosition::MariadbGtid(MariadbGtidPos::new()))
        .await
        .unwrap();
    read_through(&mut stream, last_gtid(&db)).await;
    db.query(
        "SET GLOBAL rpl_semi_sync_master_timeout = 30000; \
         SET GLOBAL rpl_semi_sync_master_enabled = 1",
    );

    let writer = {
        let db = db.clone();
        tokio::task::spawn_blocking(move || db.query("INSERT INTO test.t VALUES (1)"))
    };
    let acked = loop {
        if let StreamedEvent::Event(ev) = next_event(&mut stream).await {
            if ev.needs_ack {
                break ev;
            }
        }
    };
    assert_eq!(acked.event_type(), EventType::Xid);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!writer.is_finished(), "the commit returned before our ack");
    stream.semi_sync_ack(&acked.position()).await.unwrap();
    tokio::time::timeout(WAIT, writer)
        .await
        .expect("the commit still waits after the ack")
        .unwrap();
    let status = db.query(
        "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS \
         WHERE VARIABLE_NAME IN ('Rpl_semi_sync_master_yes_tx', 'Rpl_semi_sync_master_status') \
         ORDER BY VARIABLE_NAME",
    );
    assert_eq!(status.split_whitespace().collect::<Vec<_>>(), ["ON", "1"]);
}
