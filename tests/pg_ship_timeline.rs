//! A shipper streaming from a standby follows it across its promotion:
//! the new timeline's history file is archived and its WAL goes under its
//! own prefix, continuing the old timeline's bytes before the switch point.

mod support;

use instarec::archive::{Archive, ArchiveSettings};
use instarec::engines::postgres::layout;
use instarec_postgres::{Lsn, SegmentNo, TimelineId, WalSegmentSize};
use std::time::{Duration, Instant};
use support::instarec::{write_pg_config, Shipper};
use support::{PgOptions, Postgres};

fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn shipping_from_a_standby_follows_its_promotion_to_a_new_timeline() {
    let mut primary = Postgres::start_with(PgOptions {
        extra_conf: vec![("wal_keep_size".into(), "1GB".into())],
        ..Default::default()
    });
    primary.psql("CREATE TABLE t AS SELECT generate_series(1, 1000) AS x");

    let standby = primary.streaming_standby();
    // It will be promoted and shipped from: it keeps WAL as the primary
    // does, with the postgresql.conf the base backup copied.
    assert_eq!(standby.psql("SHOW wal_keep_size"), "1GB");
    assert_eq!(standby.psql("SELECT pg_is_in_recovery()"), "t");

    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}/archive", dir.path().display());
    let config = write_pg_config(dir.path(), &url, &standby.url(), "", "");
    let shipper = Shipper::start(&config);

    primary.psql("INSERT INTO t SELECT generate_series(1, 5000)");
    let on_primary: Lsn = primary
        .psql("SELECT pg_current_wal_flush_lsn()")
        .parse()
        .unwrap();
    wait_until("standby replay", Duration::from_secs(30), || {
        standby
            .psql("SELECT pg_last_wal_replay_lsn()")
            .parse::<Lsn>()
            .is_ok_and(|l| l >= on_primary)
    });
    shipper.wait_flushed(&standby, on_primary, Duration::from_secs(30));

    primary.stop();
    standby.psql("SELECT pg_promote(wait => true)");
    assert_eq!(
        standby.psql("SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)"),
        "00000002"
    );
    standby.psql("CREATE TABLE on_timeline_two AS SELECT generate_series(1, 5000) AS x");
    let after: Lsn = standby
        .psql("SELECT pg_current_wal_flush_lsn()")
        .parse()
        .unwrap();
    shipper.wait_flushed(&standby, after, Duration::from_secs(30));
    let log = shipper.log();
    assert!(log.contains("following timeline switch"), "{log}");
    assert_eq!(shipper.stop(), 0, "{log}");

    let archive = Archive::open(&ArchiveSettings::new(&url)).unwrap();
    let size = WalSegmentSize::new(
        standby
            .psql("SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'")
            .parse()
            .unwrap(),
    )
    .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let history = archive
            .get(&layout::history_key(TimelineId(2)))
            .await
            .expect("the new timeline's history file is archived");
        let on_disk = std::fs::read(standby.data_dir().join("pg_wal/00000002.history")).unwrap();
        assert_eq!(&history[..], &on_disk[..]);

        // The archived tli-2 WAL equals the promoted server's own segment
        // up to what was durable, including the tli-1 prefix it copied.
        let seg: SegmentNo = size.segment_of(after);
        let key = layout::segment_key(TimelineId(2), seg, size);
        let name = key.rsplit('/').next().unwrap().to_string();
        let on_disk = std::fs::read(standby.data_dir().join("pg_wal").join(&name)).unwrap();
        let archived = match archive.get_opt(&key).await.unwrap() {
            Some(full) => full.to_vec(),
            None => {
                let (data, received) =
                    instarec::engines::postgres::wal_transfer::assemble_parts(&archive, &key)
                        .await
                        .unwrap()
                        .expect("parts of the timeline-2 segment");
                data[..received as usize].to_vec()
            }
        };
        let covered = (after.0 - size.segment_start(seg).0) as usize;
        assert!(
            archived.len() >= covered,
            "archived {} < {covered}",
            archived.len()
        );
        assert!(
            archived[..covered] == on_disk[..covered],
            "timeline-2 WAL in the archive differs from pg_wal/{name}"
        );
    });
}
