//! Five promotions in a row (timeline 1 → 6) under one `follow_promotions`
//! shipper. A promoted server keeps only its newest history files, so from
//! the third promotion on the new primary cannot serve its ancestors'
//! history: the shipper must take what it needs from the archive and carry
//! on. The archive stays continuous on every timeline, verifies clean, and
//! a restore from the timeline-1 backup reaches the newest timeline's end.

mod support;

use instarec::archive::EpochClaim;
use instarec::engines::postgres::layout;
use instarec_postgres::{Lsn, TimelineId};
use std::time::{Duration, Instant};
use support::instarec::{bound_archive, run, text, write_pg_config, Shipper};
use support::postgres::{new_scratch_dir, server_bin_dir};
use support::{PgOptions, Postgres};

const ROWS_PER_TIMELINE: i64 = 1000;
const LAST_TIMELINE: u32 = 6;

fn flush_lsn(pg: &Postgres) -> Lsn {
    pg.psql("SELECT pg_current_wal_flush_lsn()")
        .parse()
        .unwrap()
}

fn timeline_of(pg: &Postgres) -> u32 {
    let walfile = pg.psql("SELECT pg_walfile_name(pg_current_wal_lsn())");
    u32::from_str_radix(&walfile[..8], 16).unwrap()
}

fn wait_replayed(standby: &Postgres, target: Lsn) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while standby
        .psql("SELECT pg_last_wal_replay_lsn()")
        .parse::<Lsn>()
        .map_or(true, |l| l < target)
    {
        assert!(Instant::now() < deadline, "standby did not replay {target}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn insert_rows(pg: &Postgres, timeline: u32) {
    pg.psql(&format!(
        "INSERT INTO t SELECT {timeline}, generate_series(1, {ROWS_PER_TIMELINE})"
    ));
}

#[test]
fn five_promotions_in_a_row_keep_the_archive_continuous_and_restorable() {
    let wal_keep = PgOptions {
        extra_conf: vec![("wal_keep_size".into(), "1GB".into())],
        ..Default::default()
    };
    let mut primary = Postgres::start_with(wal_keep);
    // Readable by the postgres user: the restored server's restore_command
    // runs instarec as that user.
    let dir = new_scratch_dir();
    let url = format!("file://{}/archive", dir.path().display());
    let config = write_pg_config(
        dir.path(),
        &url,
        &primary.url(),
        "follow_promotions = true",
        "",
    );
    let shipper = Shipper::start(&config);
    primary.psql("CREATE TABLE t (timeline int, x int)");
    insert_rows(&primary, 1);
    shipper.wait_flushed(&primary, flush_lsn(&primary), Duration::from_secs(30));
    let out = run(&config, &["backup", "--json", "--wal-timeout", "60s"]);
    assert!(out.status.success(), "backup: {}", text(&out));

    let archive = bound_archive(&url);
    let rt = tokio::runtime::Runtime::new().unwrap();
    for timeline in 2..=LAST_TIMELINE {
        let standby = primary.streaming_standby();
        wait_replayed(&standby, flush_lsn(&primary));
        // What promote does, by hand: the old primary goes away, the
        // standby is promoted, and the next epoch names it.
        primary.stop();
        standby.psql("SELECT pg_promote(wait => true)");
        assert_eq!(timeline_of(&standby), timeline);
        rt.block_on(archive.claim_epoch(EpochClaim {
            holder: format!("test promote to timeline {timeline}"),
            primary: Some(format!("127.0.0.1:{}", standby.port())),
        }))
        .unwrap();

        insert_rows(&standby, timeline);
        shipper.wait_flushed(&standby, flush_lsn(&standby), Duration::from_secs(60));
        primary = standby;
    }
    // The newest timeline's tail reaches the archive as a completed segment.
    primary.psql("SELECT pg_switch_wal()");
    primary.psql("CHECKPOINT");
    shipper.wait_flushed(&primary, flush_lsn(&primary), Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(1500));

    let log = shipper.log();
    assert!(!log.contains("rejected TIMELINE_HISTORY"), "{log}");
    rt.block_on(async {
        for t in 2..=LAST_TIMELINE {
            let key = layout::history_key(TimelineId(t));
            assert!(archive.exists(&key).await.unwrap(), "{key} archived");
            let wal = archive.list(&format!("wal/{t:08X}/")).await.unwrap();
            assert!(!wal.is_empty(), "timeline {t} WAL archived");
        }
    });

    let verify = run(&config, &["archive", "verify", "--json"]);
    assert!(verify.status.success(), "archive verify: {}", text(&verify));
    let report: serde_json::Value = serde_json::from_slice(&verify.stdout)
        .unwrap_or_else(|e| panic!("verify JSON ({e}): {}", text(&verify)));
    assert_eq!(
        report["faults"].as_array().map(Vec::len),
        Some(0),
        "{report}"
    );

    let scratch = new_scratch_dir();
    let data = scratch.path().join("data");
    let bin_dir = server_bin_dir();
    let out = run(
        &config,
        &[
            "restore",
            "--data-dir",
            data.to_str().unwrap(),
            "--latest",
            "--start",
            "--pg-bin-dir",
            bin_dir.to_str().unwrap(),
            "--json",
        ],
    );
    assert!(
        out.status.success(),
        "restore --latest: {}\nshipper log:\n{log}",
        text(&out)
    );
    let restored = Postgres::start_existing(scratch, data, None);
    let per_timeline = restored.psql(
        "SELECT string_agg(timeline || ':' || n, ',' ORDER BY timeline) FROM (SELECT timeline, count(*) AS n FROM t GROUP BY timeline) c",
    );
    let want: Vec<String> = (1..=LAST_TIMELINE)
        .map(|t| format!("{t}:{ROWS_PER_TIMELINE}"))
        .collect();
    assert_eq!(per_timeline, want.join(","));
    assert_eq!(shipper.stop(), 0, "{}", log);
}
