//! `instarec archive verify` on a MariaDB archive: a real workload (DDL, a
//! multi-statement transaction, a row larger than one 16 MiB packet, an
//! Aria table) shipped by `instarec ship` verifies clean and rebuilds into a
//! binlog file `mariadb-binlog` reads; a stray corrupt chunk and a deleted
//! chunk are each caught, by key and by the GTIDs they lose.

mod support;

use support::instarec::bound_archive;

use instarec::archive::Archive;
use instarec::engines::mysql::epoch_chunks;
use instarec::engines::mysql::index::ChunkIndex;
use instarec::engines::mysql::layout;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::instarec::{binary, write_mysql_config, Shipper};
use support::{MariaDb, MariaDbOptions};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Every complete chunk's index of the newest epoch, in stream order.
fn indexes(archive: &Archive) -> Vec<ChunkIndex> {
    let rt = runtime();
    let Some(epoch) = rt.block_on(epoch_chunks::newest_epoch(archive)).unwrap() else {
        return Vec::new();
    };
    rt.block_on(epoch_chunks::complete_indexes(archive, epoch))
        .unwrap()
        .iter()
        .map(|k| rt.block_on(ChunkIndex::read(archive, k)).unwrap())
        .collect()
}

/// Waits until the archive holds the primary's @@gtid_binlog_pos, so the
/// next statement lands in a chunk of its own.
fn wait_archived(db: &MariaDb, url: &str, shipper: &Shipper) {
    let target = db.query("SELECT @@global.gtid_binlog_pos");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let last = std::panic::catch_unwind(|| {
            indexes(&bound_archive(url))
                .last()
                .map(|i| i.gtid_pos_after.clone())
        })
        .ok()
        .flatten();
        if last.as_deref() == Some(target.as_str()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "archive reached {last:?}, not {target}; shipper log:\n{}",
            shipper.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `instarec archive verify`: exit code and stdout.
fn verify(config: &Path) -> (i32, String) {
    let out = Command::new(binary())
        .arg("--config")
        .arg(config)
        .args(["archive", "verify"])
        .output()
        .expect("running instarec archive verify");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn verify_passes_a_shipped_workload_and_names_stray_and_missing_chunks() {
    let db = MariaDb::start_with(MariaDbOptions {
        extra_args: vec!["--max-allowed-packet=64M".into()],
        ..MariaDbOptions::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}/archive", dir.path().display());
    let config = write_mysql_config(dir.path(), &url, &db.url(), "");
    let shipper = Shipper::start(&config);
    db.query("CREATE DATABASE test");
    wait_archived(&db, &url, &shipper);
    // The workload's file starts with its format, so it rebuilds whole.
    db.query("FLUSH BINARY LOGS");
    let steps = [
        "CREATE TABLE test.t (id INT PRIMARY KEY, v TEXT) ENGINE=InnoDB",
        "CREATE TABLE test.big (id INT PRIMARY KEY, v LONGTEXT) ENGINE=InnoDB",
        "CREATE TABLE test.aria (id INT) ENGINE=Aria",
        "BEGIN; INSERT INTO test.t VALUES (1, 'a'); INSERT INTO test.t VALUES (2, 'b'); \
         UPDATE test.t SET v = 'c' WHERE id = 1; COMMIT",
        "INSERT INTO test.big VALUES (1, REPEAT('y', 17 * 1024 * 1024))",
        "INSERT INTO test.aria VALUES (1), (2)",
        "INSERT INTO test.t VALUES (3, 'd')",
        "INSERT INTO test.t VALUES (4, 'e')",
        "INSERT INTO test.t VALUES (5, 'f')",
    ];
    for sql in steps {
        db.query(sql);
        wait_archived(&db, &url, &shipper);
    }
    assert_eq!(shipper.stop(), 0);

    let (code, out) = verify(&config);
    assert_eq!(code, 0, "a shipped archive verifies clean:\n{out}");
    assert!(out.contains("binlog:"), "{out}");

    // The big row's file, rebuilt from format + chunks, is a binlog file
    // the server's own tool reads.
    let archive = bound_archive(&url);
    let all = indexes(&archive);
    let big = all
        .iter()
        .find(|i| i.bytes > 16 << 20)
        .expect("a chunk holding the 17 MiB row");
    let rt = runtime();
    let mut file = b"\xfebin".to_vec();
    file.extend_from_slice(
        &rt.block_on(archive.get(&layout::format_key(big.epoch, &big.file)))
            .unwrap(),
    );
    for i in all.iter().filter(|i| i.file == big.file) {
        assert_eq!(i.first_pos, file.len() as u64, "{} tiles the file", i.chunk);
        file.extend_from_slice(&rt.block_on(archive.get(&i.chunk)).unwrap());
    }
    let rebuilt = dir.path().join(&big.file);
    std::fs::write(&rebuilt, &file).unwrap();
    let tool = support::require_binary("mariadb-binlog", "mariadb-client");
    let read = Command::new(tool)
        .arg("--no-defaults")
        .arg(&rebuilt)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&read.stdout);
    assert!(
        read.status.success(),
        "mariadb-binlog: {}",
        String::from_utf8_lossy(&read.stderr)
    );
    assert!(text.contains("`test`.`big`"), "the big row's table map");
    assert!(text.contains("`test`.`aria`"), "the Aria table's row");

    // A stray chunk overlapping a real one, its bytes corrupt: named by key.
    let victim = all
        .iter()
        .filter(|i| i.first_gtid.is_some())
        .nth(3)
        .expect("enough chunks with transactions");
    let mut bytes = rt.block_on(archive.get(&victim.chunk)).unwrap().to_vec();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    let stray = layout::chunk_key(
        victim.epoch,
        &victim.file,
        victim.first_pos + 1,
        victim.end_pos + 1,
    );
    rt.block_on(archive.put(&stray, bytes.into())).unwrap();
    let (code, out) = verify(&config);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains(&format!("FAULT {stray}")), "{out}");
    assert!(out.contains("has no index"), "{out}");
    assert!(
        out.contains("log_pos"),
        "its events are not at its offsets:\n{out}"
    );
    assert!(
        out.contains("1 faults"),
        "the real chunks around it are not blamed:\n{out}"
    );
    rt.block_on(archive.delete(&stray)).unwrap();
    let (code, out) = verify(&config);
    assert_eq!(code, 0, "clean again without the stray:\n{out}");

    // A chunk and its index deleted mid-stream: the lost GTIDs are named.
    rt.block_on(archive.delete(&victim.chunk)).unwrap();
    rt.block_on(archive.delete(&layout::index_key(
        victim.epoch,
        &victim.file,
        victim.first_pos,
    )))
    .unwrap();
    let (code, out) = verify(&config);
    assert_eq!(code, 3, "{out}");
    let first = victim.first_gtid.clone().unwrap();
    let last = victim.last_gtid.clone().unwrap();
    let missing = if first == last {
        first
    } else {
        let seq = |g: &str| g.rsplit('-').next().unwrap().to_string();
        format!("0-1-[{}..{}]", seq(&first), seq(&last))
    };
    assert!(
        out.contains(&format!("GTIDs {missing} are missing")),
        "names {missing}:\n{out}"
    );
    assert!(out.contains("are missing between"), "the byte gap:\n{out}");
}
