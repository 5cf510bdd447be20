//! `instarec ship` with engine = "mysql" against a real MariaDB: the archive
//! holds the primary's binlog byte for byte, in chunks of whole
//! transactions that tile its files, through rotations, a kill -9 of the
//! shipper, a primary restart, fencing and semi-sync (zero-loss) mode.

mod support;

use support::instarec::bound_archive;

use instarec::archive::{Archive, ArchiveSettings, EpochClaim};
use instarec::engines::mysql::index::ChunkIndex;
use instarec::engines::mysql::layout::{self, BinlogKey, IndexKey};
use instarec_mysql::{EventHeader, EventType, MariadbGtidPos, EVENT_HEADER_LEN};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::instarec::{write_mysql_config, Shipper};
use support::mariadb_writer::Writer;
use support::MariaDb;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn archive_url(dir: &Path) -> String {
    format!("file://{}/archive", dir.display())
}

/// Every index with its chunk's bytes, in stream order.
fn chunks(archive: &Archive) -> Vec<(ChunkIndex, Vec<u8>)> {
    let rt = runtime();
    let mut keys: Vec<IndexKey> = rt
        .block_on(archive.list(layout::INDEX_PREFIX))
        .unwrap()
        .iter()
        .filter_map(|e| IndexKey::parse(&e.key))
        .collect();
    keys.sort_by(|a, b| a.stream_order(b));
    keys.iter()
        .map(|k| {
            let key = layout::index_key(k.epoch, &k.file, k.first);
            let index = rt.block_on(ChunkIndex::read(archive, &key)).unwrap();
            let bytes = rt.block_on(archive.get(&index.chunk)).unwrap().to_vec();
            (index, bytes)
        })
        .collect()
}

fn gtid_binlog_pos(db: &MariaDb) -> MariadbGtidPos {
    db.query("SELECT @@global.gtid_binlog_pos").parse().unwrap()
}

/// Waits until the newest chunk's gtid_pos_after is the primary's position.
fn wait_archived(db: &MariaDb, url: &str, shipper: &Shipper, timeout: Duration) {
    let target = gtid_binlog_pos(db).to_string();
    let deadline = Instant::now() + timeout;
    loop {
        let last = std::panic::catch_unwind(|| {
            let archive = bound_archive(url);
            chunks(&archive)
                .last()
                .map(|(i, _)| i.gtid_pos_after.clone())
        })
        .ok()
        .flatten();
        if last.as_deref() == Some(target.as_str()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "archive reached {last:?}, not {target} in {timeout:?}; shipper log:\n{}",
            shipper.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The chunks equal the server's binlog files at their offsets and tile
/// each file without gap or overlap from the first archived offset (after
/// the file's FORMAT_DESCRIPTION, archived on its own) to the file's end,
/// except the newest file, which may keep growing. Returns the GTIDs that
/// start transactions, in archive order.
fn assert_tiles_the_binlog(db: &MariaDb, archive: &Archive) -> Vec<String> {
    let all = chunks(archive);
    assert!(!all.is_empty(), "no chunks archived");
    let mut by_file: BTreeMap<String, Vec<&(ChunkIndex, Vec<u8>)>> = BTreeMap::new();
    for c in &all {
        by_file.entry(c.0.file.clone()).or_default().push(c);
    }
    let newest = by_file.keys().last().cloned().unwrap();
    let mut gtids = Vec::new();
    for (file, list) in &by_file {
        let bytes = std::fs::read(db.data_dir().join(file)).unwrap();
        let epoch = list[0].0.epoch;
        let format = runtime()
            .block_on(archive.get(&layout::format_key(epoch, file)))
            .unwrap_or_else(|e| panic!("format of {file}: {e}"));
        let fde_end = 4 + format.len();
        let mut in_file = bytes[4..fde_end].to_vec();
        in_file[17] &= !1; // LOG_EVENT_BINLOG_IN_USE_F is cleared in the stream
        assert_eq!(in_file, format.to_vec(), "{file}: format differs");
        let mut expected = fde_end as u64;
        for (index, chunk) in list {
            assert_eq!(
                index.first_pos, expected,
                "{file}: gap or overlap before {}",
                index.chunk
            );
            assert_eq!(index.bytes as usize, chunk.len());
            assert_eq!(
                &bytes[index.first_pos as usize..index.end_pos as usize],
                &chunk[..],
                "{file}: {} differs from the file",
                index.chunk
            );
            let (events, chunk_gtids) = walk_events(chunk);
            assert_eq!(events, index.events, "{}", index.chunk);
            assert_eq!(chunk_gtids.first(), index.first_gtid.as_ref());
            assert_eq!(chunk_gtids.last(), index.last_gtid.as_ref());
            gtids.extend(chunk_gtids);
            expected = index.end_pos;
        }
        if *file != newest {
            assert_eq!(expected, bytes.len() as u64, "{file}: archive stops short");
        }
    }
    gtids
}

/// Counts the events in a chunk and reads the GTIDs that start groups.
fn walk_events(chunk: &[u8]) -> (u64, Vec<String>) {
    let mut at = 0;
    let mut n = 0;
    let mut gtids = Vec::new();
    while at < chunk.len() {
        let h = EventHeader::parse(&chunk[at..]).unwrap();
        let end = at + h.event_size as usize;
        if h.event_type == EventType::MariadbGtid {
            let body = &chunk[at + EVENT_HEADER_LEN..end - 4];
            let ev = instarec_mysql::mariadb_gtid_event::MariadbGtidEvent::parse(body).unwrap();
            gtids.push(ev.gtid(h.server_id).to_string());
        }
        at = end;
        n += 1;
    }
    assert_eq!(at, chunk.len(), "a chunk ends on an event boundary");
    (n, gtids)
}

fn schema(db: &MariaDb) {
    db.query(
        "CREATE DATABASE test; \
         CREATE TABLE test.t (id INT PRIMARY KEY, v TEXT) ENGINE=InnoDB; \
         CREATE TABLE test.aria (id INT) ENGINE=Aria",
    );
}

#[test]
fn ships_the_binlog_byte_identical_through_rotation_kill9_and_a_primary_restart() {
    let db = Arc::new(MariaDb::start());
    schema(&db);
    let dir = tempfile::tempdir().unwrap();
    let url = archive_url(dir.path());
    let config = write_mysql_config(dir.path(), &url, &db.url(), "");

    let shipper = Shipper::start(&config);
    let writer = Writer::start(&db, |i| {
        // Multi-row transactions, so chunks hold several events each.
        format!(
            "BEGIN; INSERT INTO test.t VALUES ({i}, REPEAT('x', {})); \
             INSERT INTO test.aria VALUES ({i}); COMMIT",
            (i % 50) * 41
        )
    });
    writer.wait_rows(100);
    db.query("FLUSH BINARY LOGS");
    writer.wait_rows(200);

    // kill -9 mid-load: the restarted shipper continues with no gap and no duplicate.
    let mut shipper = shipper;
    shipper.child.kill9();
    writer.wait_rows(300);
    let shipper = Shipper::start(&config);
    writer.wait_rows(400);
    let rows = writer.stop();
    wait_archived(&db, &url, &shipper, Duration::from_secs(60));

    // The primary restarts (a new binlog file); shipping follows it.
    let mut db = Arc::try_unwrap(db).expect("writer stopped");
    db.restart();
    db.query("INSERT INTO test.t VALUES (1000000, 'after restart')");
    db.query("FLUSH BINARY LOGS");
    db.query("INSERT INTO test.t VALUES (1000001, 'after rotation')");
    wait_archived(&db, &url, &shipper, Duration::from_secs(60));
    assert!(
        shipper.log().contains("reconnected to the primary"),
        "{}",
        shipper.log()
    );
    assert_eq!(shipper.stop(), 0);

    let archive = bound_archive(&url);
    let gtids = assert_tiles_the_binlog(&db, &archive);
    // Every GTID once, in order: 1..=N in domain 0.
    let expected: Vec<String> = (1..=gtids.len()).map(|n| format!("0-1-{n}")).collect();
    assert_eq!(gtids, expected, "duplicate or missing GTIDs");
    assert!(
        gtids.len() as u32 >= rows + 3,
        "{} GTIDs for {rows} rows",
        gtids.len()
    );
    let files: std::collections::BTreeSet<String> =
        chunks(&archive).into_iter().map(|(i, _)| i.file).collect();
    assert!(files.len() >= 4, "rotations followed: {files:?}");
    // RPO bookkeeping: the primary's position was recorded.
    let positions = runtime().block_on(archive.list("positions/")).unwrap();
    assert!(!positions.is_empty(), "no primary position recorded");
    // Every key under binlog/ is a format or a chunk some index names.
    let named: std::collections::HashSet<String> =
        chunks(&archive).into_iter().map(|(i, _)| i.chunk).collect();
    for e in runtime()
        .block_on(archive.list(layout::BINLOG_PREFIX))
        .unwrap()
    {
        match layout::parse_key(&e.key) {
            BinlogKey::Format { .. } => {}
            BinlogKey::Chunk { .. } => assert!(named.contains(&e.key), "orphan {}", e.key),
            BinlogKey::Other => panic!("unexpected key {}", e.key),
        }
    }
}

#[test]
fn a_fenced_shipper_exits_with_code_4() {
    let db = MariaDb::start();
    schema(&db);
    let dir = tempfile::tempdir().unwrap();
    let url = archive_url(dir.path());
    let config = write_mysql_config(dir.path(), &url, &db.url(), "");
    let mut shipper = Shipper::start(&config);
    db.query("INSERT INTO test.t VALUES (1, 'a')");
    wait_archived(&db, &url, &shipper, Duration::from_secs(30));

    // A promote claims the next epoch for another server.
    let archive = bound_archive(&url);
    runtime()
        .block_on(archive.claim_epoch(EpochClaim {
            holder: "test promote".into(),
            primary: Some("127.0.0.1:1".into()),
        }))
        .unwrap();
    db.query("INSERT INTO test.t VALUES (2, 'b')");
    let before = chunks(&archive).len();
    assert_eq!(
        shipper.wait_exit(Duration::from_secs(20)),
        Some(4),
        "fenced shipper exit code; log:\n{}",
        shipper.log()
    );
    assert!(shipper.log().contains("fenced"), "{}", shipper.log());
    assert_eq!(chunks(&archive).len(), before, "a fenced shipper wrote");

    let mut again = Shipper::start(&config);
    assert_eq!(
        again.wait_exit(Duration::from_secs(20)),
        Some(4),
        "{}",
        again.log()
    );
}

#[test]
fn an_archive_of_another_topology_is_refused() {
    let db = MariaDb::start();
    let dir = tempfile::tempdir().unwrap();
    let url = archive_url(dir.path());
    let config = write_mysql_config(dir.path(), &url, &db.url(), "cluster_id = \"east\"");
    let shipper = Shipper::start(&config);
    db.query("CREATE DATABASE test");
    wait_archived(&db, &url, &shipper, Duration::from_secs(30));
    assert_eq!(shipper.stop(), 0);
    let listing = |url: &str| {
        let a = Archive::open(&ArchiveSettings::new(url)).unwrap();
        runtime().block_on(a.list("")).unwrap().len()
    };
    let before = listing(&url);

    let other = write_mysql_config(dir.path(), &url, &db.url(), "cluster_id = \"west\"");
    let mut refused = Shipper::start(&other);
    assert_eq!(
        refused.wait_exit(Duration::from_secs(20)),
        Some(5),
        "{}",
        refused.log()
    );
    assert_eq!(
        listing(&url),
        before,
        "the refused shipper changed the archive"
    );
}

#[test]
fn semi_sync_a_commit_that_returned_ok_is_in_the_archive_when_the_primary_dies() {
    let mut db = MariaDb::start();
    schema(&db);
    let dir = tempfile::tempdir().unwrap();
    let url = archive_url(dir.path());
    let config = write_mysql_config(dir.path(), &url, &db.url(), "synchronous = true");
    let shipper = Shipper::start(&config);
    wait_archived(&db, &url, &shipper, Duration::from_secs(30));
    // A long timeout: a commit without our ack would hang, not go async.
    db.query(
        "SET GLOBAL rpl_semi_sync_master_timeout = 60000; \
         SET GLOBAL rpl_semi_sync_master_enabled = ON",
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while db.query(
        "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS \
         WHERE VARIABLE_NAME = 'Rpl_semi_sync_master_clients'",
    ) != "1"
    {
        assert!(
            Instant::now() < deadline,
            "no semi-sync client; log:\n{}",
            shipper.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    for i in 1..=20 {
        db.query(&format!("INSERT INTO test.t VALUES ({i}, 'committed')"));
    }
    // The commits returned: each waited for our ack (none fell back to async).
    let status = db.query(
        "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS \
         WHERE VARIABLE_NAME IN ('Rpl_semi_sync_master_no_tx', 'Rpl_semi_sync_master_yes_tx') \
         ORDER BY VARIABLE_NAME",
    );
    let counts: Vec<u64> = status
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(
        counts[0],
        0,
        "commits without our ack; log:\n{}",
        shipper.log()
    );
    assert!(counts[1] >= 20, "semi-sync yes_tx {}", counts[1]);
    // One connection throughout: an ack must not break the stream.
    assert!(
        !shipper.log().contains("binlog stream lost"),
        "the stream broke around a semi-sync ack; log:\n{}",
        shipper.log()
    );
    // So they are in the archive, whatever happens to the primary now.
    let acked = gtid_binlog_pos(&db);
    db.kill9();
    let log = shipper.log();
    assert_eq!(shipper.stop(), 0, "{log}");

    let archive = bound_archive(&url);
    let last = chunks(&archive)
        .last()
        .map(|(i, _)| i.gtid_pos_after.clone());
    let last: MariadbGtidPos = last.expect("chunks").parse().unwrap();
    let acked_gtid = acked.get(0).unwrap();
    assert!(
        last.contains(acked_gtid),
        "commit {acked_gtid} returned OK but the archive ends at {last}"
    );
}

/// A primary that purged its old binlogs before shipping ever started: the
/// first start archives from its oldest binlog instead of failing.
#[test]
fn a_first_start_on_a_primary_with_purged_binlogs_ships_from_its_oldest_binlog() {
    let db = MariaDb::start();
    db.query("CREATE DATABASE test; CREATE TABLE test.t (id INT PRIMARY KEY)");
    db.query("INSERT INTO test.t VALUES (1), (2)");
    db.query("FLUSH BINARY LOGS");
    let current = db.query("SHOW MASTER STATUS");
    let current = current.split_whitespace().next().unwrap().to_string();
    // MariaDB keeps a binlog until its binlog checkpoint has moved past it.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        db.query(&format!("PURGE BINARY LOGS TO '{current}'"));
        let left = db.query("SHOW BINARY LOGS");
        if left.starts_with(&current) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "older binlogs not purged: {left}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    db.query("INSERT INTO test.t VALUES (3)");

    let dir = tempfile::tempdir().unwrap();
    let url = archive_url(dir.path());
    let config = write_mysql_config(dir.path(), &url, &db.url(), "");
    let shipper = Shipper::start(&config);
    wait_archived(&db, &url, &shipper, Duration::from_secs(30));
    assert_eq!(shipper.stop(), 0);
    let archive = bound_archive(&url);
    let files: Vec<String> = chunks(&archive)
        .iter()
        .map(|(i, _)| i.file.clone())
        .collect();
    assert!(
        files.iter().all(|f| *f == current),
        "archived files {files:?}, the primary only has {current}"
    );
}
