//! `restore`: a data directory that recovers to a point in time. Every
//! check (a backup reaches the target, the archive holds the WAL up to it)
//! runs before anything is written.

use super::archive_bounds::{self, ArchiveBounds};
use super::backup_source;
use super::error::RestoreError;
use super::extraction;
use super::recovery_conf::{RecoveryConf, RecoveryMode};
use super::target::{self, RecoveryTarget};
use crate::archive::Archive;
use crate::backup::restore::Extracted;
use crate::backup::BackupRecord;
use chrono::Utc;
use instarec_postgres::lsn::TimelineId;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct RestoreOptions {
    pub data_dir: PathBuf,
    pub target: RecoveryTarget,
    /// None: 'latest'.
    pub timeline: Option<TimelineId>,
    /// Pause at the target instead of promoting.
    pub pause: bool,
    /// None: the newest backup that reaches the target.
    pub backup: Option<String>,
    pub force: bool,
    /// The full restore_command; with `--partial` so WAL that is archived
    /// only as parts of the in-progress segment is replayed too.
    pub restore_command: String,
    pub parallelism: usize,
}

/// What a restore will do, decided before anything is written.
#[derive(Debug, Clone)]
pub struct RestorePlan {
    pub backup: BackupRecord,
    pub bounds: ArchiveBounds,
}

#[derive(Debug, Clone)]
pub struct Prepared {
    pub plan: RestorePlan,
    pub extracted: Extracted,
}

/// Picks the backup and checks the archive reaches the target.
pub async fn plan(archive: &Archive, opts: &RestoreOptions) -> Result<RestorePlan, RestoreError> {
    let archive = backup_source::bind(archive).await?;
    let backups = backup_source::backups(&archive, opts.backup.as_deref()).await?;
    let backup = target::choose_backup(&backups, &opts.target, opts.timeline)?.clone();
    let bounds = archive_bounds::read(&archive).await?;
    check_reachable(&backup, &bounds, &opts.target)?;
    Ok(RestorePlan { backup, bounds })
}

/// The archive must hold WAL from the backup to the target.
pub fn check_reachable(
    backup: &BackupRecord,
    bounds: &ArchiveBounds,
    target: &RecoveryTarget,
) -> Result<(), RestoreError> {
    let needed = target::stop_lsn(backup)?;
    let Some((tli, end)) = bounds.wal_end else {
        return Err(RestoreError::WalMissing {
            backup: backup.id.clone(),
            needed: needed.to_string(),
            end: "nowhere (no WAL archived)".into(),
        });
    };
    if end < needed {
        return Err(RestoreError::WalMissing {
            backup: backup.id.clone(),
            needed: needed.to_string(),
            end: format!("{end} on timeline {tli}"),
        });
    }
    let after = |end: String| RestoreError::AfterArchiveEnd {
        target: target.to_string(),
        end,
    };
    match target {
        RecoveryTarget::Lsn(l) if *l > end => Err(after(format!("{end} on timeline {tli}"))),
        RecoveryTarget::Time(t) if *t > Utc::now() => {
            Err(after("now: the target is in the future".into()))
        }
        // Recovery to a time stops before the first commit after it; with no
        // later commit archived PostgreSQL ends recovery with an error. The
        // shipper records the primary's position whenever it moves, so a
        // target after the last record has no later commit.
        RecoveryTarget::Time(t) => match bounds.last_seen {
            Some(seen) if *t > seen => Err(after(format!(
                "the last commit the archive can hold, around {}",
                seen.to_rfc3339()
            ))),
            _ => Ok(()),
        },
        _ => Ok(()),
    }
}

/// Checks, extracts and writes the recovery settings.
pub async fn prepare(archive: &Archive, opts: &RestoreOptions) -> Result<Prepared, RestoreError> {
    let plan = plan(archive, opts).await?;
    let bound = backup_source::bind(archive).await?;
    tracing::info!(backup = %plan.backup.id, target = %opts.target, data_dir = %opts.data_dir.display(), "restoring");
    let extracted = extraction::extract_into(
        &bound,
        &plan.backup,
        &opts.data_dir,
        opts.force,
        opts.parallelism,
    )
    .await?;
    let conf = RecoveryConf {
        mode: RecoveryMode::Targeted,
        restore_command: opts.restore_command.clone(),
        target: opts.target,
        timeline: opts.timeline,
        pause: opts.pause,
    };
    let header = format!(
        "instarec restore from backup {} to {}",
        plan.backup.id, opts.target
    );
    extraction::write_conf(&conf, &opts.data_dir, &header).await?;
    Ok(Prepared { plan, extracted })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Engine;
    use chrono::{DateTime, Duration};
    use instarec_postgres::lsn::Lsn;

    fn backup() -> BackupRecord {
        let t = DateTime::parse_from_rfc3339("2026-11-27T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        BackupRecord {
            id: "a".into(),
            label: "a".into(),
            engine: Engine::Postgres,
            system_id: "1".into(),
            start_position: "0/2000028".into(),
            stop_position: "0/2000100".into(),
            timeline: 1,
            start_time: t,
            stop_time: t,
            size_bytes: 0,
            archives: vec![],
            manifest_blake3: String::new(),
            server_version: None,
        }
    }

    #[test]
    fn targets_past_the_archive_are_refused() {
        let b = backup();
        let bounds = ArchiveBounds {
            wal_end: Some((TimelineId(1), Lsn(0x3000000))),
            last_seen: Some(Utc::now() - Duration::hours(1)),
        };
        assert!(check_reachable(&b, &bounds, &RecoveryTarget::Lsn(Lsn(0x2FFFFFF))).is_ok());
        let err = check_reachable(&b, &bounds, &RecoveryTarget::Lsn(Lsn(0x3000001))).unwrap_err();
        assert!(
            err.to_string()
                .contains("after the end of the archived WAL (0/3000000"),
            "{err}"
        );
        let future = RecoveryTarget::Time(Utc::now() + Duration::minutes(5));
        assert!(matches!(
            check_reachable(&b, &bounds, &future),
            Err(RestoreError::AfterArchiveEnd { .. })
        ));
        let idle_tail = RecoveryTarget::Time(Utc::now() - Duration::minutes(5));
        assert!(check_reachable(&b, &bounds, &idle_tail).is_err());
        let inside = RecoveryTarget::Time(Utc::now() - Duration::hours(2));
        assert!(check_reachable(&b, &bounds, &inside).is_ok());
        assert!(check_reachable(&b, &bounds, &RecoveryTarget::Latest).is_ok());
    }

    #[test]
    fn wal_must_reach_the_backup_end() {
        let b = backup();
        let short = ArchiveBounds {
            wal_end: Some((TimelineId(1), Lsn(0x2000000))),
            last_seen: None,
        };
        assert!(matches!(
            check_reachable(&b, &short, &RecoveryTarget::Latest),
            Err(RestoreError::WalMissing { .. })
        ));
        let none = ArchiveBounds {
            wal_end: None,
            last_seen: None,
        };
        assert!(matches!(
            check_reachable(&b, &none, &RecoveryTarget::Latest),
            Err(RestoreError::WalMissing { .. })
        ));
    }
}
