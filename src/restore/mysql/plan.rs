//! What a MySQL/MariaDB restore will do, decided before anything is
//! written: the target as a GTID position the relay stops at, the newest
//! backup before it, and a check that the archive reaches it.

use super::binlog_reach::{self, covers, ArchiveEnd, Reach};
use super::error::MysqlRestoreError;
use crate::archive::Archive;
use crate::backup::BackupRecord;
use crate::engine::Engine;
use crate::relay::{BinlogArchive, UntilTarget};
use crate::restore::{backup_source, RestoreError};
use chrono::{DateTime, Utc};
use instarec_mysql::MariadbGtidPos;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MysqlTarget {
    /// Everything archived when the restore starts.
    Latest,
    /// Every transaction stamped at or before this time (binlog
    /// timestamps are whole seconds), up to the first one stamped later.
    Time(DateTime<Utc>),
    /// Every transaction this GTID position contains.
    Gtid(MariadbGtidPos),
}

impl std::fmt::Display for MysqlTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MysqlTarget::Latest => f.write_str("the end of the archive"),
            MysqlTarget::Time(t) => write!(f, "time {}", t.to_rfc3339()),
            MysqlTarget::Gtid(p) => write!(f, "GTID {p}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct MysqlRestorePlan {
    pub target: MysqlTarget,
    pub backup: BackupRecord,
    /// The backup's GTID position: where replay starts.
    pub backup_gtid: MariadbGtidPos,
    /// What the relay streams up to.
    pub until: UntilTarget,
    /// Where the replay ends: wait for `reach.position`.
    pub reach: Reach,
    pub end: ArchiveEnd,
}

/// `archive` must be bound to its cluster.
pub async fn plan(
    archive: &Archive,
    target: &MysqlTarget,
    backup_id: Option<&str>,
) -> Result<MysqlRestorePlan, MysqlRestoreError> {
    let binlog = BinlogArchive::new(archive.clone());
    let keys = binlog_reach::chunk_keys(&binlog).await?;
    let end = binlog_reach::archive_end(archive, &binlog, &keys).await?;
    let after_end = |end_text: String| RestoreError::AfterArchiveEnd {
        target: target.to_string(),
        end: end_text,
    };
    let until = match target {
        MysqlTarget::Latest => UntilTarget::Gtid(end.gtid.clone()),
        MysqlTarget::Gtid(g) => {
            if !covers(&end.gtid, g) {
                return Err(after_end(format!("GTID {}", end.gtid)).into());
            }
            UntilTarget::Gtid(g.clone())
        }
        MysqlTarget::Time(t) => {
            if *t > end.complete_until {
                return Err(after_end(format!(
                    "{}, GTID {}",
                    end.complete_until.to_rfc3339(),
                    end.gtid
                ))
                .into());
            }
            UntilTarget::Time(*t)
        }
    };
    let backups: Vec<BackupRecord> = backup_source::backups(archive, backup_id)
        .await?
        .into_iter()
        .filter(|b| b.engine == Engine::Mysql)
        .collect();
    let mut candidates = Vec::new();
    for b in backups {
        let gtid = backup_gtid(&b)?;
        candidates.push((b, gtid));
    }
    let oldest = candidates
        .first()
        .map(|(b, g)| {
            (
                b.id.clone(),
                format!("GTID {g}, {}", b.stop_time.to_rfc3339()),
            )
        })
        .ok_or(RestoreError::NoBackup)?;
    // Newest first: the least binlog to replay.
    for (backup, backup_gtid) in candidates.into_iter().rev() {
        let before = match target {
            MysqlTarget::Latest => true,
            MysqlTarget::Gtid(g) => covers(g, &backup_gtid),
            MysqlTarget::Time(t) => backup.stop_time < *t,
        };
        if !before {
            continue;
        }
        let mut reach = binlog_reach::reach(&binlog, &keys, &backup_gtid, &until).await?;
        // The replica starts with the backup's transactions whatever the
        // binlog before them says.
        reach.position = binlog_reach::merge(&reach.position, &backup_gtid);
        return Ok(MysqlRestorePlan {
            target: target.clone(),
            backup,
            backup_gtid,
            until,
            reach,
            end,
        });
    }
    Err(RestoreError::BeforeOldestBackup {
        target: target.to_string(),
        oldest: oldest.0,
        oldest_end: oldest.1,
    }
    .into())
}

pub fn backup_gtid(record: &BackupRecord) -> Result<MariadbGtidPos, MysqlRestoreError> {
    record
        .stop_position
        .parse()
        .map_err(|e: instarec_mysql::GtidError| MysqlRestoreError::BadGtid {
            what: format!("backup {}'s position", record.id),
            text: record.stop_position.clone(),
            reason: e.to_string(),
        })
}
