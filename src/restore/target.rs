//! What a point-in-time restore aims at, and which backup can reach it.

use super::error::RestoreError;
use crate::backup::BackupRecord;
use chrono::{DateTime, Utc};
use instarec_postgres::lsn::{Lsn, TimelineId};

/// The point recovery stops at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryTarget {
    /// Stop before the first transaction that committed after this time.
    Time(DateTime<Utc>),
    /// Stop after the record at this position.
    Lsn(Lsn),
    /// Stop after this transaction commits.
    Xid(u64),
    /// Replay everything archived.
    Latest,
}

impl std::fmt::Display for RecoveryTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecoveryTarget::Time(t) => write!(f, "time {}", t.to_rfc3339()),
            RecoveryTarget::Lsn(l) => write!(f, "LSN {l}"),
            RecoveryTarget::Xid(x) => write!(f, "transaction {x}"),
            RecoveryTarget::Latest => f.write_str("the end of the archive"),
        }
    }
}

/// A backup's stop position, parsed.
pub fn stop_lsn(record: &BackupRecord) -> Result<Lsn, RestoreError> {
    record
        .stop_position
        .parse()
        .map_err(|_| RestoreError::BadRecord {
            backup: record.id.clone(),
            reason: format!("stop position {:?} is not an LSN", record.stop_position),
        })
}

/// The backup to restore from: the newest one that is consistent before
/// the target (so recovery replays the least WAL). For a transaction id
/// the order of commits is unknown without reading WAL, so the oldest
/// backup is used. `backups` is oldest first, as [`BackupRecord::list`] gives.
pub fn choose_backup<'a>(
    backups: &'a [BackupRecord],
    target: &RecoveryTarget,
    timeline: Option<TimelineId>,
) -> Result<&'a BackupRecord, RestoreError> {
    let candidates: Vec<&BackupRecord> = backups
        .iter()
        .filter(|b| timeline.is_none_or(|t| b.timeline <= t.0))
        .collect();
    let Some(oldest) = candidates.first() else {
        return Err(RestoreError::NoBackup);
    };
    let before_oldest = |what: String| RestoreError::BeforeOldestBackup {
        target: target.to_string(),
        oldest: oldest.id.clone(),
        oldest_end: what,
    };
    match target {
        RecoveryTarget::Latest => Ok(candidates[candidates.len() - 1]),
        RecoveryTarget::Xid(_) => Ok(oldest),
        RecoveryTarget::Time(t) => candidates
            .iter()
            .rev()
            .find(|b| b.stop_time <= *t)
            .copied()
            .ok_or_else(|| before_oldest(oldest.stop_time.to_rfc3339())),
        RecoveryTarget::Lsn(l) => {
            let mut found = None;
            for b in candidates.iter().rev() {
                if stop_lsn(b)? <= *l {
                    found = Some(*b);
                    break;
                }
            }
            found.ok_or_else(|| before_oldest(oldest.stop_position.clone()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Engine;

    fn backup(id: &str, stop: &str, at: &str) -> BackupRecord {
        let t = DateTime::parse_from_rfc3339(at)
            .unwrap()
            .with_timezone(&Utc);
        BackupRecord {
            id: id.into(),
            label: id.into(),
            engine: Engine::Postgres,
            system_id: "1".into(),
            start_position: stop.into(),
            stop_position: stop.into(),
            timeline: 1,
            start_time: t,
            stop_time: t,
            size_bytes: 0,
            archives: vec![],
            manifest_blake3: String::new(),
            server_version: None,
        }
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn newest_backup_before_the_target() {
        let b = vec![
            backup("a", "0/2000100", "2026-11-27T10:00:00Z"),
            backup("b", "0/5000100", "2026-11-27T11:00:00Z"),
        ];
        let pick = |t| choose_backup(&b, &t, None).map(|r| r.id.clone());
        assert_eq!(pick(RecoveryTarget::Latest).unwrap(), "b");
        assert_eq!(pick(RecoveryTarget::Xid(900)).unwrap(), "a");
        assert_eq!(
            pick(RecoveryTarget::Time(at("2026-11-27T10:30:00Z"))).unwrap(),
            "a"
        );
        assert_eq!(
            pick(RecoveryTarget::Time(at("2026-11-27T11:00:00Z"))).unwrap(),
            "b"
        );
        assert_eq!(pick(RecoveryTarget::Lsn(Lsn(0x5000100))).unwrap(), "b");
        assert_eq!(pick(RecoveryTarget::Lsn(Lsn(0x50000FF))).unwrap(), "a");
    }

    #[test]
    fn a_target_before_every_backup_is_refused() {
        let b = vec![backup("a", "0/2000100", "2026-11-27T10:00:00Z")];
        let err = choose_backup(&b, &RecoveryTarget::Time(at("2026-11-27T09:00:00Z")), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("before the oldest backup a"), "{err}");
        let err = choose_backup(&b, &RecoveryTarget::Lsn(Lsn(0x100)), None).unwrap_err();
        assert!(matches!(err, RestoreError::BeforeOldestBackup { .. }));
        assert!(matches!(
            choose_backup(&[], &RecoveryTarget::Latest, None),
            Err(RestoreError::NoBackup)
        ));
    }

    #[test]
    fn timeline_limits_the_candidates() {
        let mut newer = backup("b", "0/5000100", "2026-11-27T11:00:00Z");
        newer.timeline = 2;
        let b = vec![backup("a", "0/2000100", "2026-11-27T10:00:00Z"), newer];
        let pick = choose_backup(&b, &RecoveryTarget::Latest, Some(TimelineId(1))).unwrap();
        assert_eq!(pick.id, "a");
    }
}
