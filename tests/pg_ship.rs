//! `instarec ship` against a real PostgreSQL 15: every byte of WAL lands in
//! the archive, byte-identical to pg_wal, through restarts, kill -9, fencing
//! and synchronous (zero-loss) mode.

mod support;

use instarec::archive::{Archive, ArchiveSettings, EpochClaim, S3Settings};
use instarec::engines::postgres::layout::{self, WalKey};
use instarec::engines::postgres::wal_transfer;
use instarec_postgres::{Lsn, WalSegmentSize};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::instarec::{write_pg_config, Shipper};
use support::{Moto, PgOptions, Postgres};

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn write_config(dir: &Path, archive_url: &str, pg: &Postgres, extra_primary: &str) -> PathBuf {
    write_pg_config(dir, archive_url, &pg.url(), extra_primary, "")
}

fn write_config_with(
    dir: &Path,
    archive_url: &str,
    pg: &Postgres,
    extra_primary: &str,
    extra: &str,
) -> PathBuf {
    write_pg_config(dir, archive_url, &pg.url(), extra_primary, extra)
}

fn open_archive(url: &str) -> Archive {
    Archive::open(&ArchiveSettings::new(url)).unwrap()
}

fn s3_config_section(moto: &Moto) -> String {
    format!(
        "[archive.s3]\nendpoint = \"{}\"\nregion = \"{}\"\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\nallow_http = true\n",
        moto.endpoint(),
        moto.region(),
        moto.access_key_id(),
        moto.secret_access_key()
    )
}

fn open_s3_archive(url: &str, moto: &Moto) -> Archive {
    let mut settings = ArchiveSettings::new(url);
    settings.s3 = S3Settings {
        endpoint: Some(moto.endpoint()),
        region: Some(moto.region().to_string()),
        access_key_id: Some(moto.access_key_id().to_string()),
        secret_access_key: Some(moto.secret_access_key().to_string()),
        allow_http: true,
    };
    Archive::open(&settings).unwrap()
}

fn lsn(pg: &Postgres, sql: &str) -> Lsn {
    pg.psql(sql).parse().expect("an LSN")
}

fn wait_flushed(pg: &Postgres, target: Lsn, timeout: Duration, shipper: &Shipper) {
    shipper.wait_flushed(pg, target, timeout)
}

fn segment_size(pg: &Postgres) -> WalSegmentSize {
    let bytes: u64 = pg
        .psql("SELECT setting::bigint * 1 FROM pg_settings WHERE name = 'wal_segment_size'")
        .parse()
        .unwrap();
    WalSegmentSize::new(bytes).unwrap()
}

/// Compares every archived segment with pg_wal and the in-progress
/// segment's parts with the file's prefix; returns the archived end.
async fn assert_archive_matches_pg_wal(archive: &Archive, pg: &Postgres, must_cover: Lsn) -> Lsn {
    let size = segment_size(pg);
    let bound = archive
        .read_cluster()
        .await
        .unwrap()
        .expect("cluster record");
    let archive = archive.bind_cluster(instarec::archive::ClusterTag::of(
        bound.engine,
        &bound.system_id,
    ));
    let mut complete = Vec::new();
    let mut part_segments = std::collections::BTreeSet::new();
    for e in archive.list("wal/").await.unwrap() {
        match layout::parse_key(&e.key, size) {
            WalKey::Segment { tli, seg } => complete.push((tli, seg, e.key)),
            WalKey::Part { tli, seg, .. } => {
                part_segments.insert((tli, seg));
            }
            _ => {}
        }
    }
    assert!(
        !complete.is_empty() || !part_segments.is_empty(),
        "archive holds no WAL"
    );
    let mut end = Lsn(0);
    let mut previous = None;
    for (tli, seg, key) in &complete {
        if let Some(p) = previous {
            assert_eq!(seg.0, p + 1, "segments are contiguous, {key} follows {p}");
        }
        previous = Some(seg.0);
        let name = key.rsplit('/').next().unwrap();
        let on_disk = std::fs::read(pg.data_dir().join("pg_wal").join(name))
            .unwrap_or_else(|e| panic!("reading pg_wal/{name}: {e}"));
        let archived = archive.get(key).await.unwrap();
        assert!(
            on_disk == archived[..],
            "archived {key} differs from pg_wal/{name}"
        );
        assert_eq!(tli.0, 1);
        end = Lsn(size.segment_start(*seg).0 + size.bytes());
    }
    let next_seg = previous.map(|p| p + 1);
    for (tli, seg) in &part_segments {
        if complete.iter().any(|(t, s, _)| t == tli && s == seg) {
            continue; // leftover parts of a complete segment are harmless
        }
        if Some(seg.0) != next_seg && next_seg.is_some() {
            continue;
        }
        let key = layout::segment_key(*tli, *seg, size);
        let (data, received) = wal_transfer::assemble_parts(&archive, &key)
            .await
            .unwrap()
            .expect("parts");
        let name = key.rsplit('/').next().unwrap();
        let on_disk = std::fs::read(pg.data_dir().join("pg_wal").join(name)).unwrap();
        let n = received as usize;
        assert!(
            on_disk[..n] == data[..n],
            "parts of {key} differ from pg_wal/{name} within [0, {n})"
        );
        end = Lsn(size.segment_start(*seg).0 + received);
    }
    assert!(
        end >= must_cover,
        "archive ends at {end}, before {must_cover}"
    );
    end
}

fn pgbench_load(pg: &Postgres, seconds: u32) {
    let out = pg.pgbench(&[
        "-n",
        "-c",
        "2",
        "-j",
        "2",
        "-T",
        &seconds.to_string(),
        "postgres",
    ]);
    assert!(
        out.status.success(),
        "pgbench: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn start_pg() -> Postgres {
    Postgres::start_with(PgOptions {
        // Keep old segments as they were so they can be compared byte for byte.
        extra_conf: vec![("wal_keep_size".into(), "4GB".into())],
        ..Default::default()
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

#[test]
fn ship_under_pgbench_archives_every_byte_identical_to_pg_wal() {
    let pg = start_pg();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}/archive", dir.path().display());
    let config = write_config(dir.path(), &url, &pg, "");
    let init = pg.pgbench(&["-i", "-s", "2", "postgres"]);
    assert!(init.status.success());

    let shipper = Shipper::start(&config);
    pgbench_load(&pg, 4);
    pg.psql("SELECT pg_switch_wal()");
    pg.psql("CREATE TABLE after_switch(x int); INSERT INTO after_switch VALUES (1)");
    let target = lsn(&pg, "SELECT pg_current_wal_flush_lsn()");
    wait_flushed(&pg, target, Duration::from_secs(30), &shipper);
    let log = shipper.log();
    assert_eq!(shipper.stop(), 0, "clean stop; log:\n{log}");

    let archive = open_archive(&url);
    runtime().block_on(assert_archive_matches_pg_wal(&archive, &pg, target));
}

#[test]
fn kill9_during_load_then_restart_leaves_no_gap_and_no_conflict() {
    let pg = start_pg();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}/archive", dir.path().display());
    let config = write_config(dir.path(), &url, &pg, "");
    assert!(pg.pgbench(&["-i", "-s", "2", "postgres"]).status.success());

    let bench = {
        let args: Vec<String> = vec!["-n", "-c", "2", "-T", "6", "postgres"]
            .into_iter()
            .map(String::from)
            .collect();
        let mut cmd = pg.client_command("pgbench");
        cmd.args(&args);
        std::thread::spawn(move || cmd.output().unwrap())
    };
    for round in 0..3 {
        let mut s = Shipper::start(&config);
        std::thread::sleep(Duration::from_millis(700 + round * 300));
        s.child.kill9();
    }
    assert!(bench.join().unwrap().status.success());
    let shipper = Shipper::start(&config);
    pg.psql("SELECT pg_switch_wal()");
    pg.psql("CREATE TABLE after_kill(x int)");
    let target = lsn(&pg, "SELECT pg_current_wal_flush_lsn()");
    wait_flushed(&pg, target, Duration::from_secs(60), &shipper);
    let log = shipper.log();
    assert_eq!(shipper.stop(), 0, "clean stop; log:\n{log}");
    let archive = open_archive(&url);
    runtime().block_on(assert_archive_matches_pg_wal(&archive, &pg, target));
}

#[test]
fn synchronous_mode_commit_is_archived_even_if_primary_dies_right_after() {
    let pg = Postgres::start_with(PgOptions {
        synchronous_standby_names: Some("instarec".into()),
        extra_conf: vec![("wal_keep_size".into(), "1GB".into())],
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}/archive", dir.path().display());
    let config = write_config(dir.path(), &url, &pg, "synchronous = true");
    // Local commit only: no synchronous shipper is running yet.
    pg.psql("SET synchronous_commit = local; CREATE TABLE ledger(note text)");

    // With the shipper down, a commit waits for it.
    let mut cmd = pg.client_command("psql");
    cmd.args([
        "-X",
        "-c",
        "INSERT INTO ledger VALUES ('waited-for-shipper')",
    ]);
    let blocked = std::thread::spawn(move || cmd.output().unwrap());
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !blocked.is_finished(),
        "commit returned without the synchronous shipper"
    );
    let shipper = Shipper::start(&config);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !blocked.is_finished() {
        assert!(
            Instant::now() < deadline,
            "commit still blocked; shipper log:\n{}",
            shipper.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(blocked.join().unwrap().status.success());

    let marker = format!("acknowledged-{}", rand_suffix());
    pg.psql(&format!("INSERT INTO ledger VALUES ('{marker}')"));
    let mut pg = pg;
    pg.kill9();
    let log = shipper.log();
    assert_eq!(
        shipper.stop(),
        0,
        "clean stop after the primary died; log:\n{log}"
    );

    let archive = open_archive(&url);
    let found = runtime().block_on(async {
        let mut all = Vec::new();
        for e in archive.list("wal/").await.unwrap() {
            all.extend_from_slice(&archive.get(&e.key).await.unwrap());
        }
        all
    });
    assert!(
        found.windows(marker.len()).any(|w| w == marker.as_bytes()),
        "the acknowledged commit's row {marker} is not in the archived WAL"
    );
}

#[test]
fn a_fenced_shipper_exits_with_code_4() {
    let pg = start_pg();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}/archive", dir.path().display());
    let config = write_config(dir.path(), &url, &pg, "");
    let mut shipper = Shipper::start(&config);
    pg.psql("CREATE TABLE t(x int); INSERT INTO t VALUES (1)");
    let target = lsn(&pg, "SELECT pg_current_wal_flush_lsn()");
    wait_flushed(&pg, target, Duration::from_secs(30), &shipper);

    // A promote claims the next epoch on the archive bound to the cluster.
    let archive = open_archive(&url);
    let record = runtime().block_on(archive.read_cluster()).unwrap().unwrap();
    let archive = archive.bind_cluster(record.tag());
    runtime()
        .block_on(archive.claim_epoch(EpochClaim {
            holder: "test promote".into(),
            primary: Some("127.0.0.1:1".into()),
        }))
        .unwrap();
    pg.psql("INSERT INTO t SELECT generate_series(1, 1000)");
    let code = shipper.wait_exit(Duration::from_secs(20));
    assert_eq!(
        code,
        Some(4),
        "fenced shipper exit code; log:\n{}",
        shipper.log()
    );
    assert!(
        shipper.log().contains("fenced"),
        "log names the fence:\n{}",
        shipper.log()
    );

    // A restarted old shipper refuses too, before writing anything.
    let mut again = Shipper::start(&config);
    assert_eq!(
        again.wait_exit(Duration::from_secs(20)),
        Some(4),
        "{}",
        again.log()
    );
}

#[test]
fn an_archive_of_another_cluster_is_refused() {
    let pg = start_pg();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}/archive", dir.path().display());
    let config = write_config(dir.path(), &url, &pg, "");
    let archive = open_archive(&url);
    runtime()
        .block_on(archive.init_cluster(&instarec::archive::ClusterRecord::new(
            instarec::engine::Engine::Postgres,
            "1234567890",
        )))
        .unwrap();
    let mut shipper = Shipper::start(&config);
    assert_eq!(
        shipper.wait_exit(Duration::from_secs(20)),
        Some(5),
        "{}",
        shipper.log()
    );
    assert!(shipper.log().contains("1234567890"), "{}", shipper.log());
    let keys: Vec<String> = runtime()
        .block_on(archive.list("wal/"))
        .unwrap()
        .into_iter()
        .map(|e| e.key)
        .collect();
    assert!(keys.is_empty(), "nothing written: {keys:?}");
}

#[test]
fn ship_to_s3_archives_every_byte_identical_to_pg_wal() {
    let moto = Moto::start();
    let pg = start_pg();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("s3://{}/cluster-a", moto.bucket());
    // [archive.s3] must follow [archive]'s keys, so it goes into the extra sections.
    let config = write_config_with(dir.path(), &url, &pg, "", &s3_config_section(&moto));
    assert!(pg.pgbench(&["-i", "-s", "1", "postgres"]).status.success());
    let shipper = Shipper::start(&config);
    pgbench_load(&pg, 3);
    pg.psql("SELECT pg_switch_wal()");
    pg.psql("CREATE TABLE after_switch(x int)");
    let target = lsn(&pg, "SELECT pg_current_wal_flush_lsn()");
    wait_flushed(&pg, target, Duration::from_secs(60), &shipper);
    let log = shipper.log();
    assert_eq!(shipper.stop(), 0, "clean stop; log:\n{log}");
    let archive = open_s3_archive(&url, &moto);
    runtime().block_on(assert_archive_matches_pg_wal(&archive, &pg, target));
}

#[test]
fn primary_restart_is_followed_by_reconnect_without_a_gap() {
    let mut pg = start_pg();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}/archive", dir.path().display());
    let config = write_config(dir.path(), &url, &pg, "");
    let shipper = Shipper::start(&config);
    pg.psql("CREATE TABLE before_restart AS SELECT generate_series(1, 10000) AS x");
    let first = lsn(&pg, "SELECT pg_current_wal_flush_lsn()");
    wait_flushed(&pg, first, Duration::from_secs(30), &shipper);
    pg.restart();
    pg.psql("CREATE TABLE after_restart AS SELECT generate_series(1, 10000) AS x");
    pg.psql("SELECT pg_switch_wal()");
    pg.psql("CREATE TABLE after_switch(x int)");
    let target = lsn(&pg, "SELECT pg_current_wal_flush_lsn()");
    wait_flushed(&pg, target, Duration::from_secs(60), &shipper);
    let log = shipper.log();
    assert!(
        log.contains("reconnect"),
        "the log says it reconnected:\n{log}"
    );
    assert_eq!(shipper.stop(), 0, "clean stop; log:\n{log}");
    let archive = open_archive(&url);
    runtime().block_on(assert_archive_matches_pg_wal(&archive, &pg, target));
}

#[test]
fn metrics_endpoint_reports_uploads_and_durable_position() {
    let pg = start_pg();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}/archive", dir.path().display());
    let port = support::free_port();
    let config = write_config_with(
        dir.path(),
        &url,
        &pg,
        "",
        &format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let shipper = Shipper::start(&config);
    pg.psql("CREATE TABLE t AS SELECT generate_series(1, 1000) AS x");
    let target = lsn(&pg, "SELECT pg_current_wal_flush_lsn()");
    wait_flushed(&pg, target, Duration::from_secs(30), &shipper);
    let body = support::http::request(port, "GET", "/metrics", &[], &[])
        .expect("metrics endpoint answers")
        .body_text();
    let value = |name: &str| -> f64 {
        body.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from:\n{body}"))
    };
    assert!(
        value("instarec_ship_uploaded_objects_total") >= 1.0,
        "{body}"
    );
    assert!(value("instarec_ship_uploaded_bytes_total") > 0.0, "{body}");
    assert!(
        value("instarec_ship_durable_position") >= target.0 as f64,
        "{body}"
    );
    assert!(
        body.contains("instarec_ship_upload_seconds_bucket"),
        "{body}"
    );
    assert!(body.contains("instarec_ship_archive_lag_bytes"), "{body}");
    assert_eq!(shipper.stop(), 0);
}
