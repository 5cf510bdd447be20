//! Invariant 5 where it matters: commits really are lost. A PostgreSQL 15
//! primary ships asynchronously (synchronous = false) with a long
//! flush_interval, so its last commits sit only in the shipper's buffer and
//! the primary's pg_wal; then the primary and its shipper are killed -9
//! together, as when their host dies, and `instarec promote` fails over to
//! a hot standby that replayed the archive. The client's ledger of
//! acknowledged commits is compared with the new primary: every missing
//! commit must be covered by the report, and the report must claim no
//! exactness it does not have.

mod support;

use instarec_postgres::Lsn;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use support::instarec::{write_config, Shipper};
use support::ledger::{assert_lost_within_rpo, ids_in, Ledger};
use support::pg_archive_standby::backup_and_standby;
use support::pg_ledger::PgLedger;
use support::postgres::new_scratch_dir;
use support::promote::promote_json;
use support::Postgres;

/// Each round is a fresh primary, archive and standby.
const ROUNDS: usize = 3;
/// The shipper uploads at most this often, so up to this much of the
/// primary's acknowledged log is only on the primary when both die.
const FLUSH_INTERVAL: &str = "2s";

struct Round {
    primary: Postgres,
    standby: Postgres,
    shipper: Shipper,
    config: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

fn config_text(archive_url: &str, primary_url: &str, rest: &str) -> String {
    format!(
        "[archive]\nurl = \"{archive_url}\"\n\n[primary]\nengine = \"postgres\"\nurl = \"{primary_url}\"\nflush_interval = \"{FLUSH_INTERVAL}\"\nsynchronous = false\n{rest}"
    )
}

/// Primary + asynchronous shipper + backup + a hot standby from it,
/// replaying the archive (restore_command = instarec wal-fetch).
fn round() -> Round {
    let primary = Postgres::start();
    primary.psql("CREATE TABLE ledger(id bigint PRIMARY KEY)");
    let dir = new_scratch_dir();
    let archive_url = format!("file://{}/archive", dir.path().display());
    let config = dir.path().join("instarec.toml");
    write_config(&config, &config_text(&archive_url, &primary.url(), ""));
    let shipper = Shipper::start(&config);
    let standby = backup_and_standby(&config, || shipper.log());
    write_config(
        &config,
        &config_text(
            &archive_url,
            &primary.url(),
            &format!(
                "\n[standby]\nurl = \"{}\"\n\n[promote]\nold_primary_timeout = \"1s\"\ndrain_timeout = \"20s\"\n",
                standby.url()
            ),
        ),
    );
    Round {
        primary,
        standby,
        shipper,
        config,
        _dir: dir,
    }
}

/// Where the dead primary's WAL really ends: restarted, it replays its WAL
/// to the first invalid record and writes its end-of-recovery checkpoint
/// right there, so that checkpoint record starts where the WAL ended.
/// (pg_walinspect, not pg_waldump: Debian's pg_waldump 15 cannot read the
/// WAL of newer majors.)
fn wal_end_on_disk(dead_primary: &mut Postgres, from: Lsn) -> Lsn {
    dead_primary.restart();
    let found = dead_primary.psql(&format!(
        "CREATE EXTENSION IF NOT EXISTS pg_walinspect;\n\
         SELECT min(start_lsn) FROM pg_get_wal_records_info('{from}', pg_current_wal_flush_lsn()) \
         WHERE resource_manager = 'XLOG' AND record_type = 'CHECKPOINT_SHUTDOWN'"
    ));
    found
        .parse()
        .unwrap_or_else(|_| panic!("no end-of-recovery checkpoint after {from}: {found:?}"))
}

fn lsn(report: &serde_json::Value, key: &str) -> Lsn {
    report[key]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{key} is not an LSN: {report}"))
}

#[test]
fn failover_after_host_loss_reports_rpo_covering_every_lost_commit() {
    let started = Instant::now();
    let mut lost_in_all = 0;
    for n in 0..ROUNDS {
        let mut r = round();
        let ledger = Ledger::start(PgLedger {
            url: r.primary.url(),
        });
        ledger.wait_for(100);
        // Wait for an upload, then kill well inside the next interval: the
        // commits since that upload exist only on the primary.
        let streaming = r.primary.psql("SELECT count(*) FROM pg_stat_replication");
        assert_eq!(streaming, "1", "the shipper streams from the primary");
        std::thread::sleep(Duration::from_millis(2300 + 400 * n as u64));
        r.shipper.child.kill9();
        r.primary.kill9();
        let acked = ledger.finish();
        let report = promote_json(&r.config, &[], || {
            format!(
                "standby log:\n{}\nship log:\n{}",
                r.standby.log_tail(30),
                r.shipper.log()
            )
        });
        let on_new: BTreeSet<i64> = ids_in(&r.standby.psql("SELECT id FROM ledger"));
        let lost = assert_lost_within_rpo(&report, &acked, &on_new);
        println!(
            "round {n}: {} acknowledged, {} lost (ids {:?}..{:?}); report {report}",
            acked.len(),
            lost.len(),
            lost.first(),
            lost.last()
        );

        // The old primary's death was not seen, so nothing is exact.
        assert_eq!(report["mode"], "failover", "{report}");
        assert_eq!(report["old_primary_fenced"], false, "{report}");
        assert_eq!(
            report["rpo_bytes_exact"], false,
            "a failover cannot know the whole loss: {report}"
        );
        assert!(report["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("lower bound")));

        // What the new primary holds is what the report says it recovered,
        // and rpo_bytes is a lower bound: the log really missing from the
        // new primary, between what it recovered and where the old
        // primary's WAL ends on disk, is at least rpo_bytes.
        let recovered = lsn(&report, "recovered_position");
        let last_known = lsn(&report, "last_known_primary_position");
        let on_disk = wal_end_on_disk(&mut r.primary, recovered);
        let rpo_bytes = report["rpo_bytes"].as_u64().unwrap();
        assert_eq!(
            last_known.bytes_since(recovered),
            Some(rpo_bytes),
            "{report}"
        );
        assert!(
            last_known <= on_disk,
            "the report claims at least {rpo_bytes} bytes lost up to {last_known}, but the old primary's WAL ends at {on_disk}: {report}"
        );
        if !lost.is_empty() {
            assert!(
                on_disk > recovered,
                "commits {lost:?} are missing, yet the old primary's WAL ends at {on_disk}, not after the recovered {recovered}"
            );
        }
        lost_in_all += lost.len();
    }
    println!(
        "{ROUNDS} rounds in {:?}: {lost_in_all} acknowledged commits lost, each within rpo_seconds",
        started.elapsed()
    );
    assert!(
        lost_in_all > 0,
        "no round lost a commit: the test proved nothing about the RPO bound"
    );
}
