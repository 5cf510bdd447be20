//! Invariant 5 where it matters, on MariaDB: commits really are lost. The
//! primary ships asynchronously (synchronous = false) with a long
//! flush_interval, so its last commits sit only in the shipper's buffer and
//! the primary's binlog; then the primary and its shipper are killed -9
//! together, as when their host dies, and `instarec promote` fails over to
//! the relay's stock replica. The client's ledger of acknowledged commits
//! is compared with the new primary, and the dead primary, restarted
//! afterwards, says what it really had: every missing commit must be
//! covered by the report (rpo_seconds), what the report names as lost
//! (lost_gtids, rpo_transactions, rpo_bytes) must really be lost, and the
//! report must claim no exactness it does not have.

mod support;

use instarec_mysql::{MariadbGtid, MariadbGtidPos};
use std::time::{Duration, Instant};
use support::mariadb_topology::{assert_lost_within_rpo, gtid_binlog_pos, ids_on, Cluster};
use support::MariaDb;

/// Each round is a fresh primary, archive, relay and replica.
const ROUNDS: usize = 3;

fn position(text: &str) -> MariadbGtidPos {
    text.parse()
        .unwrap_or_else(|e| panic!("{text:?} is not a GTID position: {e}"))
}

/// `lost_gtids` as the report writes it ("0-1-[46..50],1-2-7"): per range
/// its domain and first and last seq_no.
fn reported_ranges(text: &str) -> Vec<(u32, u64, u64)> {
    text.split(',')
        .filter(|p| !p.is_empty())
        .map(|part| match part.split_once("-[") {
            Some((domain_server, seqs)) => {
                let domain = domain_server.split('-').next().unwrap().parse().unwrap();
                let (first, last) = seqs.trim_end_matches(']').split_once("..").unwrap();
                (domain, first.parse().unwrap(), last.parse().unwrap())
            }
            None => {
                let g: MariadbGtid = part.parse().unwrap();
                (g.domain_id, g.seq_no, g.seq_no)
            }
        })
        .collect()
}

/// The binlog bytes the (restarted) old primary wrote from the start of
/// transaction `first_lost` to the end of that binlog file, as SHOW BINLOG
/// EVENTS lists them; None when no file holds it.
fn binlog_bytes_from(old: &MariaDb, first_lost: &MariadbGtid) -> Option<u64> {
    let begin = format!("GTID {first_lost}");
    for file in old.query("SHOW BINARY LOGS").lines() {
        let name = file.split('\t').next().unwrap();
        let events = old.query(&format!("SHOW BINLOG EVENTS IN '{name}'"));
        let rows: Vec<Vec<&str>> = events.lines().map(|l| l.split('\t').collect()).collect();
        let Some(start) = rows.iter().find(|r| {
            r[2] == "Gtid" && r[5].split_whitespace().any(|w| w == first_lost.to_string())
        }) else {
            continue;
        };
        assert!(start[5].contains(&begin), "{start:?}");
        let from: u64 = start[1].parse().unwrap();
        let end: u64 = rows.last().unwrap()[4].parse().unwrap();
        return Some(end - from);
    }
    None
}

#[test]
fn failover_after_host_loss_reports_rpo_covering_every_lost_commit() {
    let started = Instant::now();
    let mut lost_in_all = 0;
    for n in 0..ROUNDS {
        let mut c = Cluster::start_lagging("2s");
        let ledger = c.ledger_through(c.primary.port());
        ledger.wait_for(100);
        // Well inside a flush interval after the last upload: the commits
        // since then exist only on the primary.
        std::thread::sleep(Duration::from_millis(2300 + 400 * n as u64));
        c.shipper.child.kill9();
        c.primary.kill9();
        let acked = ledger.finish();
        let report = c.promote(&[]);
        let lost = assert_lost_within_rpo(&report, &acked, &ids_on(&c.standby));
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

        // The dead primary, back up, holds every acknowledged commit: the
        // lost ones are lost by the failover, not by the crash.
        c.primary.restart();
        let on_old = ids_on(&c.primary);
        let crashed: Vec<&i64> = lost.iter().filter(|id| !on_old.contains(id)).collect();
        assert!(
            crashed.is_empty(),
            "acknowledged commits {crashed:?} are not even on the old primary"
        );
        let old_end = position(&gtid_binlog_pos(&c.primary));
        let recovered = position(report["recovered_position"].as_str().unwrap());
        let really_lost = old_end.missing_from(&recovered);
        let really_lost_count: u64 = really_lost.iter().map(|r| r.count()).sum();
        assert!(
            lost.len() as u64 <= really_lost_count,
            "{} acknowledged commits lost, but the old primary has only {really_lost_count} transactions beyond {recovered}",
            lost.len()
        );

        // Every GTID the report names as lost was committed by the old
        // primary and is not on the new one; the count is that of the
        // named GTIDs, and in failover at most the real loss ("at least").
        let named = reported_ranges(report["lost_gtids"].as_str().unwrap());
        for (domain, first, last) in &named {
            let had = old_end.get(*domain).map_or(0, |g| g.seq_no);
            let kept = recovered.get(*domain).map_or(0, |g| g.seq_no);
            assert!(
                *first > kept && *last <= had,
                "lost_gtids names {domain}-*-[{first}..{last}]; the new primary has up to {kept}, the old primary had up to {had}: {report}"
            );
        }
        let rpo_transactions = report["rpo_transactions"].as_u64().unwrap();
        let named_count: u64 = named.iter().map(|(_, a, b)| b - a + 1).sum();
        assert_eq!(rpo_transactions, named_count, "{report}");
        assert!(
            rpo_transactions <= really_lost_count,
            "the report claims at least {rpo_transactions} transactions lost; the old primary had {really_lost_count} beyond {recovered}: {report}"
        );

        // rpo_bytes is at least what is reported: no more than the binlog
        // the old primary wrote from the first lost transaction on.
        let rpo_bytes = report["rpo_bytes"].as_u64().unwrap();
        match really_lost.first() {
            None => assert_eq!(rpo_bytes, 0, "nothing was lost: {report}"),
            Some(range) => {
                let first = MariadbGtid {
                    domain_id: range.domain_id,
                    server_id: range.last.server_id,
                    seq_no: range.first_seq_no,
                };
                let binlog = binlog_bytes_from(&c.primary, &first)
                    .unwrap_or_else(|| panic!("no binlog of the old primary holds {first}"));
                assert!(
                    rpo_bytes <= binlog,
                    "the report claims at least {rpo_bytes} bytes lost; the old primary wrote {binlog} from {first} on: {report}"
                );
            }
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
