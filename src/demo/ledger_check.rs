//! The demo's verdict: every commit the clients saw acknowledged is on the
//! new primary, or was acknowledged within the RPO that promote reported
//! (invariant 5, checked from the application's side).

use super::ledger::{Commit, LedgerDb};
use std::collections::HashSet;
use std::time::Instant;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerCheck {
    pub acknowledged: usize,
    /// Acknowledged and found on the new primary.
    pub present: usize,
    /// Acknowledged and missing on the new primary.
    pub lost: usize,
    /// Every lost commit was acknowledged within `rpo_seconds` before
    /// promote started (true when nothing was lost).
    pub lost_covered_by_rpo: bool,
}

/// Reads the ledger on the new primary and checks it against `report`.
pub async fn check_new_primary(
    new_primary: &LedgerDb,
    acknowledged: &[Commit],
    report: &serde_json::Value,
    promote_started: Instant,
) -> anyhow::Result<LedgerCheck> {
    let present = new_primary.connect().await?.present_ids().await?;
    Ok(check(acknowledged, &present, report, promote_started))
}

/// `report` is promote's `--json` report; `promote_started` is no later
/// than the moment promote (or the crash before it) began.
pub fn check(
    acknowledged: &[Commit],
    present: &HashSet<i64>,
    report: &serde_json::Value,
    promote_started: Instant,
) -> LedgerCheck {
    let lost: Vec<&Commit> = acknowledged
        .iter()
        .filter(|c| !present.contains(&c.id))
        .collect();
    LedgerCheck {
        acknowledged: acknowledged.len(),
        present: acknowledged.len() - lost.len(),
        lost: lost.len(),
        lost_covered_by_rpo: rpo_covers(report, &lost, promote_started),
    }
}

fn rpo_covers(report: &serde_json::Value, lost: &[&Commit], promote_started: Instant) -> bool {
    if lost.is_empty() {
        return true;
    }
    // A loss with no time bound (rpo_seconds null) is not covered.
    let Some(window) = report["rpo_seconds"].as_f64() else {
        return false;
    };
    // MySQL/MariaDB also count lost transactions; when the report says the
    // count is exact, each lost ledger commit (its own transaction) must be
    // in it.
    if let Some(counted) = report["rpo_transactions"].as_u64() {
        if report["rpo_bytes_exact"] == true && (lost.len() as u64) > counted {
            return false;
        }
    }
    lost.iter().all(|c| {
        let before_promote = promote_started
            .saturating_duration_since(c.acked_at)
            .as_secs_f64();
        before_promote <= window
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn commits(now: Instant, ages_ms: &[(i64, u64)]) -> Vec<Commit> {
        ages_ms
            .iter()
            .map(|&(id, age)| Commit {
                id,
                acked_at: now - Duration::from_millis(age),
            })
            .collect()
    }

    #[test]
    fn nothing_lost_is_covered_whatever_the_report() {
        let now = Instant::now();
        let acked = commits(now, &[(1, 900), (2, 500)]);
        let present = HashSet::from([1, 2]);
        let c = check(&acked, &present, &serde_json::json!({}), now);
        assert_eq!(
            c,
            LedgerCheck {
                acknowledged: 2,
                present: 2,
                lost: 0,
                lost_covered_by_rpo: true
            }
        );
    }

    #[test]
    fn a_lost_commit_older_than_the_rpo_window_is_not_covered() {
        let now = Instant::now();
        let acked = commits(now, &[(1, 3000), (2, 200), (3, 100)]);
        let present = HashSet::from([1]);
        let report = serde_json::json!({"rpo_seconds": 0.5});
        let c = check(&acked, &present, &report, now);
        assert_eq!((c.present, c.lost), (1, 2));
        assert!(c.lost_covered_by_rpo);

        let present = HashSet::from([2, 3]);
        assert!(!check(&acked, &present, &report, now).lost_covered_by_rpo);
    }

    #[test]
    fn a_loss_without_a_time_bound_is_not_covered() {
        let now = Instant::now();
        let acked = commits(now, &[(1, 10)]);
        let report = serde_json::json!({"rpo_seconds": null});
        assert!(!check(&acked, &HashSet::new(), &report, now).lost_covered_by_rpo);
    }

    #[test]
    fn an_exact_report_of_no_lost_transactions_contradicts_a_lost_commit() {
        let now = Instant::now();
        let acked = commits(now, &[(1, 10)]);
        let report = serde_json::json!({
            "rpo_seconds": 5.0, "rpo_transactions": 0, "rpo_bytes_exact": true
        });
        assert!(!check(&acked, &HashSet::new(), &report, now).lost_covered_by_rpo);
    }

    #[test]
    fn an_exact_count_smaller_than_the_lost_commits_is_not_covered() {
        let now = Instant::now();
        let acked = commits(now, &[(1, 10), (2, 10), (3, 10)]);
        let exact = |n: u64| {
            serde_json::json!({
                "rpo_seconds": 5.0, "rpo_transactions": n, "rpo_bytes_exact": true
            })
        };
        let present = HashSet::from([1]);
        assert!(!check(&acked, &present, &exact(1), now).lost_covered_by_rpo);
        assert!(check(&acked, &present, &exact(2), now).lost_covered_by_rpo);
        // A lower bound (failover) may count fewer than were lost.
        let lower = serde_json::json!({
            "rpo_seconds": 5.0, "rpo_transactions": 1, "rpo_bytes_exact": false
        });
        assert!(check(&acked, &present, &lower, now).lost_covered_by_rpo);
    }
}
