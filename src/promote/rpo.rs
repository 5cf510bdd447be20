//! What a promote lost, told honestly (invariant 5: never less than the
//! data actually lost).
//!
//! - planned: the old primary was fenced and its final position reached the
//!   new primary, so nothing committed is missing: 0, exactly.
//! - synchronous: the old primary waited for the archive before
//!   acknowledging a commit, so once the new primary replayed the whole
//!   archive no acknowledged commit is missing: 0. The unacknowledged tail
//!   is still reported as `known_gap_bytes`.
//! - failover: the bytes between the last position anyone saw the primary
//!   at and what was recovered are a lower bound only: the primary may have
//!   committed more after it was last seen. The time bound is the honest
//!   one: the old primary stamped `last_commit_at` on the last transaction
//!   the new primary replayed, before it reserved that record's place in
//!   the log. Every missing commit sits later in the log, so it was
//!   reserved, flushed and acknowledged after that stamp: every lost commit
//!   was acknowledged in [last_commit_at, promote start] (or later, if the
//!   old primary is partitioned rather than dead). Clocks of the old
//!   primary and of the promoting host are assumed to agree.

use chrono::{DateTime, Utc};
use serde::Serialize;
use std::fmt::Display;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Planned,
    Failover,
    Synchronous,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Planned => "planned",
            Mode::Failover => "failover",
            Mode::Synchronous => "synchronous",
        })
    }
}

/// What promote knows when it assesses the loss.
#[derive(Debug, Clone)]
pub struct RpoInputs<P> {
    /// The fenced old primary's final position (planned switchover).
    pub fenced_final: Option<P>,
    /// [primary] synchronous = true: the shipper acknowledged only what the
    /// archive held. Trusted when the old primary cannot be asked.
    pub synchronous: bool,
    /// The engine's zero-loss mode can lapse unseen (MySQL semi-sync), so an
    /// unreachable old primary's `synchronous` is not trusted.
    pub synchronous_can_lapse: bool,
    /// The end of the log the new primary replayed.
    pub recovered: P,
    /// The archive's end, read after promotion.
    pub archive_end: Option<P>,
    /// The newest primary position a shipper recorded in the archive.
    pub recorded_primary: Option<P>,
    pub last_commit_at: Option<DateTime<Utc>>,
    pub started_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rpo<P> {
    pub mode: Mode,
    pub bytes: u64,
    /// Upper bound on how long before promote started the oldest lost
    /// commit was acknowledged; None when nothing bounds it.
    pub seconds: Option<f64>,
    /// True when `bytes` is the whole loss, not a lower bound.
    pub bytes_exact: bool,
    pub last_known: P,
    /// Log bytes between what was recovered and the last known position,
    /// acknowledged or not.
    pub known_gap_bytes: u64,
    /// True when no acknowledged commit can be missing (planned and fully
    /// drained, or synchronous with the whole archive replayed).
    pub nothing_lost: bool,
    pub notes: Vec<String>,
}

pub fn assess<P: Ord + Clone + Display>(
    i: &RpoInputs<P>,
    bytes_between: impl Fn(&P, &P) -> u64,
) -> Rpo<P> {
    let mut notes = Vec::new();
    let time_bound = || -> Option<f64> {
        i.last_commit_at.map(|t| {
            ((i.started_at - t).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6).max(0.0)
        })
    };

    if let Some(final_position) = &i.fenced_final {
        let gap = bytes_between(&i.recovered, final_position);
        let (bytes, seconds) = if i.recovered >= *final_position {
            (0, Some(0.0))
        } else {
            notes.push(format!(
                "the new primary stopped at {} before the fenced primary's final position {final_position}",
                i.recovered
            ));
            (gap, time_bound())
        };
        return Rpo {
            mode: Mode::Planned,
            bytes,
            seconds,
            bytes_exact: true,
            last_known: final_position.clone(),
            known_gap_bytes: gap,
            nothing_lost: i.recovered >= *final_position,
            notes,
        };
    }

    let last_known = [i.archive_end.clone(), i.recorded_primary.clone()]
        .into_iter()
        .flatten()
        .chain(std::iter::once(i.recovered.clone()))
        .max()
        .unwrap_or_else(|| i.recovered.clone());
    let gap = bytes_between(&i.recovered, &last_known);
    let archive_replayed = i.archive_end.as_ref().is_none_or(|end| i.recovered >= *end);

    if i.synchronous && i.synchronous_can_lapse {
        notes.push(
            "synchronous = true, but semi-sync falls back to asynchronous after rpl_semi_sync_master_timeout and the old primary could not be asked whether it had: reporting the failover bound".into(),
        );
    } else if i.synchronous && archive_replayed {
        notes.push(
            "synchronous: the old primary was unreachable, so its synchronous_standby_names could not be checked; trusting [primary] synchronous = true".into(),
        );
        return Rpo {
            mode: Mode::Synchronous,
            bytes: 0,
            seconds: Some(0.0),
            bytes_exact: true,
            last_known,
            known_gap_bytes: gap,
            nothing_lost: true,
            notes,
        };
    }
    if i.synchronous && !i.synchronous_can_lapse {
        notes.push(format!(
            "synchronous, but the new primary stopped at {} before the archive's end {}: reporting the failover bound",
            i.recovered,
            i.archive_end.as_ref().map(ToString::to_string).unwrap_or_default()
        ));
    }
    notes.push(
        "rpo_bytes is a lower bound: the old primary may have committed after it was last seen; rpo_seconds bounds every lost commit".into(),
    );
    let seconds = time_bound();
    if seconds.is_none() {
        notes.push(
            "rpo_seconds is unknown: the standby replayed no transaction since it started, so no commit time bounds the loss".into(),
        );
    }
    Rpo {
        mode: if i.synchronous {
            Mode::Synchronous
        } else {
            Mode::Failover
        },
        bytes: gap,
        seconds,
        bytes_exact: false,
        last_known,
        known_gap_bytes: gap,
        nothing_lost: false,
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    fn inputs(recovered: u64) -> RpoInputs<u64> {
        RpoInputs {
            fenced_final: None,
            synchronous: false,
            synchronous_can_lapse: false,
            recovered,
            archive_end: Some(100),
            recorded_primary: Some(150),
            last_commit_at: Some(at(10)),
            started_at: at(13),
        }
    }

    fn diff(a: &u64, b: &u64) -> u64 {
        b.saturating_sub(*a)
    }

    #[test]
    fn planned_reaching_the_final_position_loses_nothing() {
        let mut i = inputs(120);
        i.fenced_final = Some(110);
        let r = assess(&i, diff);
        assert_eq!(
            (r.mode, r.bytes, r.seconds, r.bytes_exact),
            (Mode::Planned, 0, Some(0.0), true)
        );
        assert_eq!(r.last_known, 110);
        assert!(r.nothing_lost);
    }

    #[test]
    fn planned_short_of_the_final_position_reports_the_gap() {
        let mut i = inputs(100);
        i.fenced_final = Some(110);
        let r = assess(&i, diff);
        assert_eq!((r.bytes, r.seconds, r.bytes_exact), (10, Some(3.0), true));
        assert!(!r.nothing_lost);
    }

    #[test]
    fn failover_bytes_are_a_lower_bound_and_time_comes_from_the_last_commit() {
        let r = assess(&inputs(100), diff);
        assert_eq!(r.mode, Mode::Failover);
        assert_eq!((r.bytes, r.last_known, r.bytes_exact), (50, 150, false));
        assert!(!r.nothing_lost);
        assert_eq!(r.seconds, Some(3.0));
    }

    #[test]
    fn failover_without_a_replayed_commit_has_no_time_bound() {
        let mut i = inputs(100);
        i.last_commit_at = None;
        let r = assess(&i, diff);
        assert_eq!(r.seconds, None);
        assert!(r.notes.iter().any(|n| n.contains("unknown")));
    }

    #[test]
    fn failover_archive_beyond_record_counts() {
        let mut i = inputs(100);
        i.archive_end = Some(180);
        assert_eq!(assess(&i, diff).bytes, 80);
    }

    #[test]
    fn synchronous_is_zero_only_when_the_whole_archive_was_replayed() {
        let mut i = inputs(100);
        i.synchronous = true;
        let r = assess(&i, diff);
        assert_eq!(
            (r.mode, r.bytes, r.seconds),
            (Mode::Synchronous, 0, Some(0.0))
        );
        assert_eq!(r.known_gap_bytes, 50);
        i.recovered = 90;
        let r = assess(&i, diff);
        assert_eq!((r.bytes, r.seconds, r.bytes_exact), (60, Some(3.0), false));
    }

    #[test]
    fn a_synchronous_mode_that_can_lapse_unseen_reports_the_failover_bound() {
        let mut i = inputs(100);
        i.synchronous = true;
        i.synchronous_can_lapse = true;
        let r = assess(&i, diff);
        assert!(!r.nothing_lost);
        assert_eq!((r.bytes, r.seconds, r.bytes_exact), (50, Some(3.0), false));
        assert!(
            r.notes.iter().any(|n| n.contains("semi-sync")),
            "{:?}",
            r.notes
        );
    }

    #[test]
    fn clock_ahead_never_gives_negative_seconds() {
        let mut i = inputs(100);
        i.last_commit_at = Some(at(20));
        assert_eq!(assess(&i, diff).seconds, Some(0.0));
    }
}
