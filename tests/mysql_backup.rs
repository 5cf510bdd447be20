//! `instarec backup` with engine = "mysql" against a real MariaDB: the
//! mariabackup xbstream lands in the archive as chunks that concatenate to a
//! stream `mbstream -x` unpacks and `mariabackup --prepare` accepts, at a
//! GTID position the primary reached; and the record that makes a backup
//! count is written only once the binlog archive covers that position.

mod support;

use support::instarec::bound_archive;

use support::instarec::text;

use support::instarec::run as instarec;

use instarec::archive::{Archive, ArchiveSettings};
use instarec::backup::mysql_take::{XbstreamManifest, XBSTREAM_ARCHIVE};
use instarec::backup::{layout, BackupRecord};
use instarec_mysql::MariadbGtidPos;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::instarec::{write_mysql_config, Shipper};
use support::mariadb_writer::Writer;
use support::MariaDb;

/// A password that needs quoting in an option file.
const PASSWORD: &str = r#"s3 "cr\et#"#;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn archive_url(dir: &Path) -> String {
    format!("file://{}/archive", dir.display())
}

/// A backup account with a password (from password_file) and the
/// privileges mariabackup and the shipper need; returns the config.
fn config_for(db: &MariaDb, dir: &Path, user: &str, privileges: &str) -> PathBuf {
    let sql_password = PASSWORD.replace('\\', "\\\\").replace('\'', "\\'");
    db.query(&format!(
        "SET SESSION sql_log_bin = 0; \
         CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{sql_password}'; \
         GRANT {privileges} ON *.* TO '{user}'@'127.0.0.1'"
    ));
    let password_file = dir.join(format!("{user}.password"));
    std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
    write_mysql_config(
        dir,
        &archive_url(dir),
        &format!("mysql://{user}@127.0.0.1:{}/", db.port()),
        &format!("password_file = \"{}\"", password_file.display()),
    )
}

fn schema(db: &MariaDb, big_rows: u32) {
    db.query(&format!(
        "CREATE DATABASE test; \
         CREATE TABLE test.t (id INT PRIMARY KEY, v TEXT) ENGINE=InnoDB; \
         CREATE TABLE test.big (id INT PRIMARY KEY, v VARCHAR(1000)) ENGINE=InnoDB; \
         INSERT INTO test.big SELECT seq, REPEAT(CHAR(65 + seq % 26), 1000) FROM test.seq_1_to_{big_rows}"
    ));
}

/// The backup's chunks, fetched (and checked) from the archive, in order.
fn xbstream(archive: &Archive, record: &BackupRecord) -> Vec<u8> {
    assert_eq!(record.archives.len(), 1, "{record:?}");
    let a = &record.archives[0];
    assert_eq!(a.name, XBSTREAM_ARCHIVE);
    let rt = runtime();
    let mut out = Vec::new();
    for n in 0..a.chunks {
        let chunk = rt
            .block_on(archive.get(&layout::chunk_key(&record.id, &a.name, n)))
            .unwrap_or_else(|e| panic!("chunk {n} of {}: {e}", record.id));
        out.extend_from_slice(&chunk);
    }
    assert_eq!(out.len() as u64, a.bytes);
    out
}

fn unpack(stream: &[u8], dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let mut child = Command::new(support::require_binary("mbstream", "mariadb-backup"))
        .arg("-x")
        .arg("-C")
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning mbstream");
    let mut stdin = child.stdin.take().unwrap();
    let bytes = stream.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&bytes));
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap().expect("feeding mbstream");
    assert!(out.status.success(), "mbstream -x failed: {}", text(&out));
}

#[test]
fn backup_under_load_with_ship_running_unpacks_and_prepares_at_an_archived_gtid() {
    let db = Arc::new(MariaDb::start());
    // ~20 MB of table on top of the system tablespace: several 16 MiB chunks.
    schema(&db, 20_000);
    let dir = tempfile::tempdir().unwrap();
    let url = archive_url(dir.path());
    let config = config_for(&db, dir.path(), "backup", "ALL PRIVILEGES");

    let shipper = Shipper::start(&config);
    let writer = Writer::start(&db, |i| {
        format!(
            "INSERT INTO test.t VALUES ({i}, REPEAT('x', {}))",
            (i % 50) * 41
        )
    });
    writer.wait_rows(50);
    let out = instarec(&config, &["backup", "--json", "--wal-timeout", "60s"]);
    assert!(
        out.status.success(),
        "{}\nshipper log:\n{}",
        text(&out),
        shipper.log()
    );
    let record: BackupRecord = serde_json::from_slice(&out.stdout).expect("a record on stdout");
    writer.wait_rows(writer.rows() + 20);
    let rows = writer.stop();
    assert!(rows > 70);

    assert_eq!(record.engine.to_string(), "mysql");
    assert_eq!(record.start_position, record.stop_position);
    let gtid: MariadbGtidPos = record
        .stop_position
        .parse()
        .expect("a MariaDB GTID position");
    let primary: MariadbGtidPos = db.query("SELECT @@global.gtid_binlog_pos").parse().unwrap();
    let backup_gtid = *gtid.get(0).expect("domain 0");
    assert!(
        primary.contains(&backup_gtid) && backup_gtid.seq_no >= 3 + 50,
        "backup at {gtid}, primary at {primary}"
    );
    assert!(record.label.contains("binlog "), "{}", record.label);
    assert!(record.archives[0].chunks >= 2, "{record:?}");

    // The record is listed; the stream is what mariabackup wrote.
    let archive = bound_archive(&url);
    let listed = runtime().block_on(BackupRecord::list(&archive)).unwrap();
    assert_eq!(listed, vec![record.clone()]);
    let manifest_bytes = runtime()
        .block_on(archive.get(&layout::manifest_key(&record.id)))
        .unwrap();
    assert_eq!(
        blake3::hash(&manifest_bytes).to_hex().to_string(),
        record.manifest_blake3
    );
    let manifest: XbstreamManifest = serde_json::from_slice(&manifest_bytes).unwrap();
    let stream = xbstream(&archive, &record);
    assert_eq!(blake3::hash(&stream).to_hex().to_string(), manifest.blake3);
    assert_eq!(
        (manifest.bytes, manifest.gtid.as_str()),
        (record.size_bytes, record.stop_position.as_str())
    );
    assert!(
        manifest
            .tool_version
            .as_deref()
            .unwrap_or("")
            .contains("MariaDB"),
        "{manifest:?}"
    );

    let restore = dir.path().join("restore");
    unpack(&stream, &restore);
    assert!(restore.join("xtrabackup_checkpoints").is_file());
    let binlog_info = std::fs::read_to_string(restore.join("xtrabackup_binlog_info")).unwrap();
    let fields: Vec<&str> = binlog_info.split_whitespace().collect();
    assert_eq!(
        fields,
        [
            manifest.binlog_file.as_str(),
            &manifest.binlog_pos.to_string(),
            record.stop_position.as_str()
        ],
        "xtrabackup_binlog_info agrees with the record"
    );
    let prepare = Command::new(support::require_binary("mariabackup", "mariadb-backup"))
        .arg("--prepare")
        .arg(format!("--target-dir={}", restore.display()))
        .output()
        .unwrap();
    assert!(
        prepare.status.success(),
        "mariabackup --prepare: {}",
        text(&prepare)
    );
    // A table bulk-loaded into while the backup ran is streamed as `.new`
    // and becomes `.ibd` in --prepare; after it the table file must exist.
    assert!(
        restore.join("test/big.ibd").is_file(),
        "test/big.ibd missing from the prepared backup; test/ holds {:?}",
        std::fs::read_dir(restore.join("test")).map(|rd| rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .collect::<Vec<_>>())
    );

    // `backup list` shows the GTID, no timeline.
    let list = instarec(&config, &["backup", "list"]);
    assert!(list.status.success(), "{}", text(&list));
    let shown = String::from_utf8_lossy(&list.stdout);
    let line = shown
        .lines()
        .find(|l| l.starts_with(&record.id))
        .unwrap_or_else(|| panic!("{shown}"));
    assert!(
        line.contains(&record.stop_position) && line.contains(" - "),
        "{shown}"
    );
    assert_eq!(shipper.stop(), 0);
}

#[test]
fn without_ship_the_backup_does_not_count() {
    let db = MariaDb::start();
    schema(&db, 100);
    let dir = tempfile::tempdir().unwrap();
    let url = archive_url(dir.path());
    let config = config_for(&db, dir.path(), "backup", "ALL PRIVILEGES");
    let out = instarec(&config, &["backup", "--wal-timeout", "3s"]);
    assert!(!out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("is uploaded but binlog up to 0-1-")
            && stderr.contains("is `instarec ship` running?"),
        "{}",
        text(&out)
    );
    let list = instarec(&config, &["backup", "list", "--json"]);
    assert!(list.status.success(), "{}", text(&list));
    let listed: Vec<BackupRecord> = serde_json::from_slice(&list.stdout).unwrap();
    assert!(listed.is_empty(), "{listed:?}");
    let keys: Vec<String> = runtime()
        .block_on(bound_archive(&url).list(layout::BACKUPS_PREFIX))
        .unwrap()
        .into_iter()
        .map(|e| e.key)
        .collect();
    assert!(
        keys.iter().any(|k| k.contains("/data/backup.xbstream/")),
        "the data was uploaded: {keys:?}"
    );
    assert!(
        !keys.iter().any(|k| k.ends_with("/record")),
        "no record: {keys:?}"
    );
}

#[test]
fn a_failing_backup_tool_reports_its_error_and_writes_no_record() {
    let db = MariaDb::start();
    schema(&db, 100);
    let dir = tempfile::tempdir().unwrap();
    let url = archive_url(dir.path());
    let config = config_for(&db, dir.path(), "weak", "SELECT");
    let out = instarec(&config, &["backup", "--wal-timeout", "3s"]);
    assert!(!out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("mariabackup failed")
            && stderr.contains("missing required privilege RELOAD")
            && stderr.contains("no record was written"),
        "{}",
        text(&out)
    );
    assert!(!stderr.contains("cr\\et"), "the password leaked: {stderr}");
    let keys = runtime()
        .block_on(bound_archive(&url).list(layout::BACKUPS_PREFIX))
        .unwrap();
    assert!(keys.is_empty(), "{keys:?}");
}

/// Timing for docs: `cargo test --test mysql_backup -- --ignored --nocapture`.
#[test]
#[ignore]
fn timing_of_a_200_mb_table() {
    let db = MariaDb::start();
    schema(&db, 1);
    // Random bytes: the archive's compression gets no free ride.
    db.query(
        "CREATE TABLE test.random (id INT PRIMARY KEY, v VARBINARY(1000)) ENGINE=InnoDB; \
         INSERT INTO test.random SELECT seq, RANDOM_BYTES(1000) FROM test.seq_1_to_200000",
    );
    let dir = tempfile::tempdir().unwrap();
    let config = config_for(&db, dir.path(), "backup", "ALL PRIVILEGES");
    let shipper = Shipper::start(&config);
    let started = Instant::now();
    let out = instarec(&config, &["backup"]);
    let took = started.elapsed();
    assert!(out.status.success(), "{}", text(&out));
    println!(
        "{} (wall {:.1} s)",
        String::from_utf8_lossy(&out.stdout).trim(),
        took.as_secs_f64()
    );
    assert_eq!(shipper.stop(), 0);
}

#[test]
fn sigterm_while_waiting_for_the_binlog_stops_without_a_record() {
    let db = MariaDb::start();
    schema(&db, 100);
    let dir = tempfile::tempdir().unwrap();
    let url = archive_url(dir.path());
    let config = config_for(&db, dir.path(), "backup", "ALL PRIVILEGES");
    let child = Command::new(env!("CARGO_BIN_EXE_instarec"))
        .arg("--config")
        .arg(&config)
        .args(["backup", "--wal-timeout", "120s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The manifest is stored just before the wait for the binlog starts.
    let deadline = Instant::now() + Duration::from_secs(60);
    let manifest_stored = || {
        let archive = Archive::open(&ArchiveSettings::new(url.as_str())).unwrap();
        runtime()
            .block_on(archive.list(layout::BACKUPS_PREFIX))
            .map(|l| l.iter().any(|e| e.key.ends_with("/backup_manifest")))
            .unwrap_or(false)
    };
    while !manifest_stored() {
        assert!(Instant::now() < deadline, "backup never reached its wait");
        std::thread::sleep(Duration::from_millis(50));
    }
    let signalled = Instant::now();
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    assert!(
        signalled.elapsed() < Duration::from_secs(10),
        "took {:?} to stop",
        signalled.elapsed()
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cancelled; no record was written"),
        "{}",
        text(&out)
    );
    let keys = runtime()
        .block_on(bound_archive(&url).list(layout::BACKUPS_PREFIX))
        .unwrap();
    assert!(!keys.iter().any(|e| e.key.ends_with("/record")), "{keys:?}");
}
