//! `instarec backup` against a real PostgreSQL 15: the tar stream lands in
//! the archive as chunks that concatenate to a valid tar agreeing with the
//! server's manifest, and the record that makes a backup count is written
//! only once the WAL up to its stop position is archived.

mod support;

use support::instarec::text;

use support::instarec::run as instarec;

use instarec::archive::{Archive, ArchiveSettings, ClusterRecord, ClusterTag};
use instarec::backup::{layout, BackupRecord};
use instarec::engine::Engine;
use instarec_postgres::Lsn;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::instarec::{write_pg_config, Shipper};
use support::Postgres;

fn write_config(dir: &Path, archive_url: &str, pg: &Postgres) -> PathBuf {
    write_pg_config(dir, archive_url, &pg.url(), "", "")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

/// The archive, bound to the cluster its record names (reads check the tag).
async fn bound_archive(url: &str) -> Archive {
    let archive = Archive::open(&ArchiveSettings::new(url)).unwrap();
    let cluster = archive
        .read_cluster()
        .await
        .unwrap()
        .expect("cluster record");
    archive.bind_cluster(ClusterTag::of(cluster.engine, &cluster.system_id))
}

/// Every regular file in a tar: path → (size, contents if small).
async fn tar_files(bytes: &[u8]) -> HashMap<String, (u64, Vec<u8>)> {
    use futures::StreamExt as _;
    use tokio::io::AsyncReadExt as _;
    let mut archive = tokio_tar::Archive::new(bytes);
    let mut entries = archive.entries().unwrap();
    let mut out = HashMap::new();
    while let Some(entry) = entries.next().await {
        let mut entry = entry.expect("a valid tar entry");
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).await.unwrap();
        let size = data.len() as u64;
        if size > 4096 {
            data.clear();
        }
        out.insert(path, (size, data));
    }
    out
}

#[test]
fn backup_under_load_with_ship_running_is_a_valid_tar_that_matches_its_manifest() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}/archive", dir.path().display());
    let config = write_config(dir.path(), &url, &pg);
    // ~35 MB of tables: base.tar spans several 16 MiB chunks.
    assert!(pg.pgbench(&["-i", "-s", "2", "postgres"]).status.success());
    let shipper = Shipper::start(&config);
    let bench = {
        let mut cmd = pg.client_command("pgbench");
        cmd.args(["-n", "-c", "2", "-T", "8", "postgres"]);
        std::thread::spawn(move || cmd.output().unwrap())
    };
    std::thread::sleep(Duration::from_secs(1));

    let out = instarec(&config, &["backup", "--json", "--wal-timeout", "60s"]);
    assert!(
        out.status.success(),
        "backup failed; {}\nship log:\n{}",
        text(&out),
        shipper.log()
    );
    let record: BackupRecord =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    assert!(bench.join().unwrap().status.success());

    let list = instarec(&config, &["backup", "list", "--json"]);
    assert!(list.status.success(), "{}", text(&list));
    let listed: Vec<BackupRecord> = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(listed, vec![record.clone()]);
    let start: Lsn = record.start_position.parse().unwrap();
    let stop: Lsn = record.stop_position.parse().unwrap();
    assert!(start < stop, "{start} < {stop}");
    assert_eq!(record.timeline, 1);
    assert_eq!(record.archives.len(), 1, "no tablespaces: only base.tar");
    assert_eq!(record.archives[0].name, "base.tar");
    assert!(record.archives[0].chunks >= 2, "{:?}", record.archives);

    let human = instarec(&config, &["backup", "list"]);
    assert!(
        String::from_utf8_lossy(&human.stdout).contains(&record.id),
        "{}",
        text(&human)
    );

    runtime().block_on(async {
        let archive = bound_archive(&url).await;
        let base = &record.archives[0];
        let prefix = format!("{}data/base.tar/", layout::backup_prefix(&record.id));
        let keys: Vec<String> = archive
            .list(&prefix)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.key)
            .collect();
        let expected: Vec<String> = (0..base.chunks)
            .map(|i| layout::chunk_key(&record.id, "base.tar", i))
            .collect();
        assert_eq!(keys, expected);
        let mut tar = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let chunk = archive.get(key).await.unwrap();
            if i + 1 < keys.len() {
                assert_eq!(chunk.len(), layout::CHUNK_BYTES, "{key} is a full chunk");
            }
            tar.extend_from_slice(&chunk);
        }
        assert_eq!(tar.len() as u64, base.bytes);
        assert_eq!(record.size_bytes, base.bytes);
        let files = tar_files(&tar).await;
        let pg_version = format!("{}\n", support::postgres::server_major());
        assert_eq!(
            files.get("PG_VERSION").map(|f| f.1.as_slice()),
            Some(pg_version.as_bytes())
        );
        assert!(
            files.contains_key("global/pg_control"),
            "no global/pg_control"
        );
        assert!(files.contains_key("backup_label"), "no backup_label");

        let manifest = archive
            .get(&layout::manifest_key(&record.id))
            .await
            .unwrap();
        assert_eq!(
            blake3::hash(&manifest).to_hex().to_string(),
            record.manifest_blake3
        );
        let manifest: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
        let listed = manifest["Files"].as_array().expect("Files");
        assert_eq!(
            listed.len(),
            files.len(),
            "manifest and tar list the same number of files"
        );
        for f in listed {
            let path = f["Path"].as_str().expect("Path");
            let size = f["Size"].as_u64().expect("Size");
            let in_tar = files
                .get(path)
                .unwrap_or_else(|| panic!("{path} is in the manifest, not in the tar"));
            assert_eq!(in_tar.0, size, "size of {path}");
        }
        let range = &manifest["WAL-Ranges"][0];
        assert_eq!(
            range["Start-LSN"].as_str(),
            Some(record.start_position.as_str())
        );
        assert_eq!(
            range["End-LSN"].as_str(),
            Some(record.stop_position.as_str())
        );
    });
    let log = shipper.log();
    assert_eq!(shipper.stop(), 0, "clean stop; log:\n{log}");
}

#[test]
fn without_ship_the_backup_does_not_count() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}/archive", dir.path().display());
    let config = write_config(dir.path(), &url, &pg);
    let out = instarec(&config, &["backup", "--wal-timeout", "3s"]);
    assert!(!out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("is not archived yet") && stderr.contains("is `instarec ship` running?"),
        "{}",
        text(&out)
    );
    let list = instarec(&config, &["backup", "list", "--json"]);
    assert!(list.status.success(), "{}", text(&list));
    let listed: Vec<BackupRecord> = serde_json::from_slice(&list.stdout).unwrap();
    assert!(listed.is_empty(), "{listed:?}");
    let keys: Vec<String> = runtime()
        .block_on(async {
            bound_archive(&url)
                .await
                .list(layout::BACKUPS_PREFIX)
                .await
                .unwrap()
        })
        .into_iter()
        .map(|e| e.key)
        .collect();
    assert!(
        keys.iter().any(|k| k.contains("/data/base.tar/")),
        "the data was uploaded: {keys:?}"
    );
    assert!(
        !keys.iter().any(|k| k.ends_with("/record")),
        "no record: {keys:?}"
    );
}

#[test]
fn an_archive_of_another_cluster_is_refused_before_anything_is_written() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}/archive", dir.path().display());
    let config = write_config(dir.path(), &url, &pg);
    let archive = Archive::open(&ArchiveSettings::new(&url)).unwrap();
    runtime()
        .block_on(archive.init_cluster(&ClusterRecord::new(Engine::Postgres, "1234567890")))
        .unwrap();
    let out = instarec(&config, &["backup", "--wal-timeout", "3s"]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("1234567890"),
        "{}",
        text(&out)
    );
    let keys = runtime()
        .block_on(archive.list(layout::BACKUPS_PREFIX))
        .unwrap();
    assert!(keys.is_empty(), "nothing written: {keys:?}");
}

#[test]
fn archive_verify_checks_each_backups_chunks_manifest_and_wal() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let archive_dir = dir.path().join("archive");
    let url = format!("file://{}", archive_dir.display());
    let config = write_config(dir.path(), &url, &pg);
    let shipper = Shipper::start(&config);
    pg.psql("CREATE TABLE t AS SELECT generate_series(1, 10000) AS x");
    let out = instarec(&config, &["backup", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let record: BackupRecord = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shipper.stop(), 0);

    let clean = instarec(&config, &["archive", "verify"]);
    assert!(clean.status.success(), "{}", text(&clean));
    let taken_on = format!(
        "taken on PostgreSQL {} (1)",
        support::postgres::server_major()
    );
    assert!(text(&clean).contains(&taken_on), "{}", text(&clean));
    assert!(
        text(&clean).contains("backups: 1 checked"),
        "{}",
        text(&clean)
    );

    // Losing the WAL a backup needs makes it unrestorable: verify says which.
    let stop: Lsn = record.stop_position.parse().unwrap();
    let seg_size: u64 = pg
        .psql("SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'")
        .parse()
        .unwrap();
    let size = instarec_postgres::WalSegmentSize::new(seg_size).unwrap();
    let wal_key = instarec::engines::postgres::layout::segment_key(
        instarec_postgres::TimelineId(record.timeline),
        size.segment_of(stop),
        size,
    );
    let wal_file = archive_dir.join(&wal_key);
    let parts_dir = archive_dir.join(format!("{wal_key}.part"));
    let _ = std::fs::remove_file(&wal_file);
    let _ = std::fs::remove_dir_all(&parts_dir);
    let out = instarec(&config, &["archive", "verify"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("backup {} needs WAL", record.id)),
        "{}",
        text(&out)
    );
    // Still so when the archive holds no WAL at all (nothing to learn the
    // segment size from).
    let _ = std::fs::remove_dir_all(archive_dir.join("wal"));
    let out = instarec(&config, &["archive", "verify"]);
    assert_eq!(out.status.code(), Some(3), "no WAL at all: {}", text(&out));
    assert!(
        text(&out).contains(&format!("backup {} needs WAL", record.id)),
        "{}",
        text(&out)
    );

    // A missing chunk is named.
    let chunk = layout::chunk_key(&record.id, "base.tar", 0);
    std::fs::remove_file(archive_dir.join(&chunk)).unwrap();
    let out = instarec(&config, &["archive", "verify"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains(&chunk), "{}", text(&out));
}
