//! `follow_promotions = true`: a shipper fenced by a promote reconnects to
//! the primary the new epoch names and keeps the archive growing on the new
//! timeline, instead of exiting 4.

mod support;

use instarec::archive::{Archive, ArchiveSettings, EpochClaim};
use instarec::engines::postgres::layout;
use instarec_postgres::{Lsn, TimelineId};
use std::time::{Duration, Instant};
use support::instarec::{write_pg_config, Shipper};
use support::{PgOptions, Postgres};

#[test]
fn a_fenced_shipper_with_follow_promotions_ships_from_the_new_primary() {
    let mut primary = Postgres::start_with(PgOptions {
        extra_conf: vec![("wal_keep_size".into(), "1GB".into())],
        ..Default::default()
    });
    let standby = primary.streaming_standby();

    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}/archive", dir.path().display());
    let config = write_pg_config(
        dir.path(),
        &url,
        &primary.url(),
        "follow_promotions = true",
        "",
    );
    let shipper = Shipper::start(&config);
    primary.psql("CREATE TABLE t AS SELECT generate_series(1, 5000) AS x");
    let before: Lsn = primary
        .psql("SELECT pg_current_wal_flush_lsn()")
        .parse()
        .unwrap();
    shipper.wait_flushed(&primary, before, Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(30);
    while standby
        .psql("SELECT pg_last_wal_replay_lsn()")
        .parse::<Lsn>()
        .map_or(true, |l| l < before)
    {
        assert!(Instant::now() < deadline, "standby did not replay {before}");
        std::thread::sleep(Duration::from_millis(50));
    }

    // What promote does, by hand: the old primary goes away, the standby
    // is promoted, and the next epoch names it.
    primary.stop();
    standby.psql("SELECT pg_promote(wait => true)");
    let archive = Archive::open(&ArchiveSettings::new(&url)).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let record = rt.block_on(archive.read_cluster()).unwrap().unwrap();
    let archive = archive.bind_cluster(record.tag());
    rt.block_on(archive.claim_epoch(EpochClaim {
        holder: "test promote".into(),
        primary: Some(format!("127.0.0.1:{}", standby.port())),
    }))
    .unwrap();

    standby.psql("CREATE TABLE after_promotion AS SELECT generate_series(1, 5000) AS x");
    let after: Lsn = standby
        .psql("SELECT pg_current_wal_flush_lsn()")
        .parse()
        .unwrap();
    shipper.wait_flushed(&standby, after, Duration::from_secs(60));
    let log = shipper.log();
    assert!(log.contains("following the new primary"), "{log}");
    assert_eq!(shipper.stop(), 0, "{log}");
    rt.block_on(async {
        assert!(archive
            .exists(&layout::history_key(TimelineId(2)))
            .await
            .unwrap());
        let keys = archive.list("wal/00000002/").await.unwrap();
        assert!(!keys.is_empty(), "timeline 2 WAL archived");
    });
}
