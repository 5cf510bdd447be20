//! What promote achieved, as text or as the `--json` contract runbooks
//! script against (README, "promote --json"). The first eight keys are the
//! contract; the rest explain them.

use super::rpo::Mode;
use super::steps::StepTime;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::fmt::Write as _;

#[derive(Debug, Clone, Serialize)]
pub struct PromoteReport {
    pub rpo_bytes: u64,
    /// Null when nothing bounds the loss in time (see notes).
    pub rpo_seconds: Option<f64>,
    pub rto_seconds: f64,
    pub recovered_position: String,
    pub last_known_primary_position: String,
    pub epoch: u64,
    pub mode: Mode,
    pub steps: Vec<StepTime>,
    /// False when rpo_bytes is only a lower bound (failover).
    pub rpo_bytes_exact: bool,
    /// MySQL/MariaDB: how many transactions were lost (may count GTIDs
    /// never used, never fewer); exact like rpo_bytes when
    /// rpo_bytes_exact, else a lower bound. Null for PostgreSQL.
    pub rpo_transactions: Option<u64>,
    /// MySQL/MariaDB: the lost GTIDs, e.g. "0-1-[46..50]"; "" when none.
    pub lost_gtids: Option<String>,
    /// Log bytes between recovered and last known, acknowledged or not.
    pub known_gap_bytes: u64,
    pub started_at: DateTime<Utc>,
    pub last_replayed_commit_at: Option<DateTime<Utc>>,
    /// host:port of the new primary: ship from here under `epoch`.
    pub new_primary: String,
    pub old_primary: Option<String>,
    pub old_primary_fenced: bool,
    pub cutover: Vec<CutoverStepReport>,
    /// Where the first write after promotion was accepted.
    pub write_path: String,
    /// When the new primary inherited zero-loss mode: "restored after
    /// N s" once a shipper streamed, or "asynchronous: ..." when none did.
    /// Null when it did not inherit it ([promote] synchronous_after_promote).
    pub synchronous_after_promote: Option<String>,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CutoverStepReport {
    pub method: String,
    pub seconds: f64,
    pub detail: String,
}

impl PromoteReport {
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let seconds = match self.rpo_seconds {
            Some(s) => format!("{s:.3} s"),
            None => "unknown".into(),
        };
        let bytes = if self.rpo_bytes_exact {
            format!("{} bytes", self.rpo_bytes)
        } else {
            format!("at least {} bytes", self.rpo_bytes)
        };
        let _ = writeln!(
            out,
            "promoted {} ({}) in epoch {}",
            self.new_primary, self.mode, self.epoch
        );
        let _ = writeln!(out, "  RPO  {bytes}, {seconds}");
        if let Some(n) = self.rpo_transactions {
            let at_least = if self.rpo_bytes_exact {
                ""
            } else {
                "at least "
            };
            let ids = self.lost_gtids.as_deref().unwrap_or_default();
            let _ = writeln!(out, "       {at_least}{n} transactions {ids}");
        }
        let _ = writeln!(
            out,
            "  RTO  {:.3} s (first write through {})",
            self.rto_seconds, self.write_path
        );
        let _ = writeln!(
            out,
            "  recovered {} of last known {}",
            self.recovered_position, self.last_known_primary_position
        );
        if let Some(sync) = &self.synchronous_after_promote {
            let _ = writeln!(out, "  zero-loss mode on the new primary: {sync}");
        }
        for step in &self.steps {
            let _ = writeln!(out, "  {:<20} {:>8.3} s", step.name, step.seconds);
        }
        for note in &self.notes {
            let _ = writeln!(out, "  note: {note}");
        }
        let _ = write!(
            out,
            "next: run `instarec ship` with [primary] url pointing at {} (epoch {} names it)",
            self.new_primary, self.epoch
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_starts_with_the_contract_keys() {
        let report = PromoteReport {
            rpo_bytes: 0,
            rpo_seconds: Some(0.0),
            rto_seconds: 1.25,
            recovered_position: "0/3000060".into(),
            last_known_primary_position: "0/3000060".into(),
            epoch: 2,
            mode: Mode::Planned,
            steps: vec![StepTime {
                name: "promote".into(),
                seconds: 0.5,
            }],
            rpo_bytes_exact: true,
            rpo_transactions: None,
            lost_gtids: None,
            known_gap_bytes: 0,
            started_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            last_replayed_commit_at: None,
            new_primary: "db2:5432".into(),
            old_primary: Some("db1:5432".into()),
            old_primary_fenced: true,
            cutover: vec![],
            write_path: "db2:5432".into(),
            synchronous_after_promote: None,
            notes: vec![],
        };
        let text = serde_json::to_string(&report).unwrap();
        let contract = [
            "rpo_bytes",
            "rpo_seconds",
            "rto_seconds",
            "recovered_position",
            "last_known_primary_position",
            "epoch",
            "mode",
            "steps",
        ];
        let positions: Vec<usize> = contract
            .iter()
            .map(|k| text.find(&format!("\"{k}\":")).expect(k))
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["mode"], "planned");
        assert_eq!(json["steps"][0]["name"], "promote");
        assert!(report.to_text().contains("RPO  0 bytes, 0.000 s"));
    }
}
