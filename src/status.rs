//! What the archive says about the cluster right now: who owns it, which
//! epoch writes, where the log ends, how far behind the primary it was last
//! seen, and which backups exist.

use crate::archive::{Archive, ArchiveError, Engine};
use crate::backup::BackupRecord;
use crate::config::Config;
use crate::engines::postgres::archive_end;
use crate::engines::postgres::live_status::{self, LiveStatus};
use crate::ship::position_record::{self, PositionRecord};
use chrono::{DateTime, Utc};
use instarec_postgres::Lsn;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub archive: String,
    pub engine: Option<String>,
    pub system_id: Option<String>,
    pub epoch: Option<u64>,
    pub epoch_primary: Option<String>,
    pub epoch_holder: Option<String>,
    pub epoch_claimed_at: Option<DateTime<Utc>>,
    /// Where the archived log ends (engine notation) and on which timeline.
    pub archive_end: Option<String>,
    pub timeline: Option<u32>,
    /// The newest recorded primary position and when it was seen.
    pub last_primary_position: Option<PositionRecord>,
    /// Bytes the archive was behind the primary at that record, when known.
    pub last_known_lag_bytes: Option<u64>,
    pub backups: usize,
    pub newest_backup: Option<String>,
    pub newest_backup_stop_time: Option<DateTime<Utc>>,
    /// The live servers, when configured and reachable.
    pub live: Option<LiveStatus>,
    /// Bytes the primary has that the archive does not (live).
    pub archive_lag_bytes: Option<u64>,
    /// Bytes the archive has that the standby has not replayed.
    pub standby_lag_bytes: Option<u64>,
    /// What a promote would lose right now: the archive's lag (0 in
    /// synchronous mode, where nothing unarchived is acknowledged).
    pub estimated_rpo_bytes: Option<u64>,
    pub estimated_rpo_seconds: Option<f64>,
    /// Measured promote overhead plus replaying the standby's lag.
    pub estimated_rto_seconds: Option<f64>,
}

/// Promote's fixed cost on the reference machine (0.3–1.2 s measured,
/// docs/benchmarks.md), and a conservative replay rate for the lag.
const PROMOTE_OVERHEAD_SECONDS: f64 = 1.0;
const REPLAY_BYTES_PER_SECOND: f64 = 64.0 * 1024.0 * 1024.0;

/// Adds what the live servers say to an archive-only report.
pub async fn with_live(mut report: StatusReport, config: &Config) -> StatusReport {
    if report.engine.as_deref() != Some("postgres") {
        return report;
    }
    let live = live_status::probe(config).await;
    let end: Option<Lsn> = report.archive_end.as_deref().and_then(|e| e.parse().ok());
    let primary: Option<Lsn> = live
        .primary_position
        .as_deref()
        .and_then(|p| p.parse().ok());
    let standby: Option<Lsn> = live
        .standby_replay_position
        .as_deref()
        .and_then(|p| p.parse().ok());
    report.archive_lag_bytes = match (primary, end) {
        (Some(p), Some(e)) => Some(p.0.saturating_sub(e.0)),
        _ => None,
    };
    report.standby_lag_bytes = match (end, standby) {
        (Some(e), Some(s)) => Some(e.0.saturating_sub(s.0)),
        _ => None,
    };
    let synchronous = config.primary.as_ref().is_some_and(|p| p.synchronous);
    report.estimated_rpo_bytes = if synchronous {
        Some(0)
    } else {
        report.archive_lag_bytes
    };
    report.estimated_rpo_seconds = if synchronous {
        Some(0.0)
    } else {
        live.archive_lag_seconds
            .or(report.archive_lag_bytes.filter(|b| *b == 0).map(|_| 0.0))
    };
    report.estimated_rto_seconds = report
        .standby_lag_bytes
        .map(|b| PROMOTE_OVERHEAD_SECONDS + b as f64 / REPLAY_BYTES_PER_SECOND);
    report.live = Some(live);
    report
}

pub async fn gather(archive: &Archive) -> Result<StatusReport, ArchiveError> {
    let cluster = archive.read_cluster().await?;
    let archive = match &cluster {
        Some(c) => archive.bind_cluster(c.tag()),
        None => archive.clone(),
    };
    let epoch = archive.current_epoch().await?;
    let position = position_record::latest(&archive).await?;
    let backups = BackupRecord::list(&archive).await?;
    let (mut end, mut timeline, mut lag) = (None, None, None);
    if cluster.as_ref().map(|c| c.engine) == Some(Engine::Postgres) {
        if let Some(size) = archive_end::segment_size(&archive).await? {
            if let Some((tli, lsn)) = archive_end::durable_end(&archive, size).await? {
                end = Some(lsn.to_string());
                timeline = Some(tli.0);
            }
        }
        lag = position.as_ref().and_then(|p| {
            let primary: instarec_postgres::Lsn = p.primary.parse().ok()?;
            let durable: instarec_postgres::Lsn = p.durable.parse().ok()?;
            Some(primary.0.saturating_sub(durable.0))
        });
    }
    let newest = backups.last();
    Ok(StatusReport {
        archive: archive.url().to_string(),
        engine: cluster.as_ref().map(|c| c.engine.to_string()),
        system_id: cluster.as_ref().map(|c| c.system_id.clone()),
        epoch: epoch.as_ref().map(|e| e.epoch.0),
        epoch_primary: epoch.as_ref().and_then(|e| e.primary.clone()),
        epoch_holder: epoch.as_ref().map(|e| e.holder.clone()),
        epoch_claimed_at: epoch.as_ref().map(|e| e.claimed_at),
        archive_end: end,
        timeline,
        last_primary_position: position,
        last_known_lag_bytes: lag,
        backups: backups.len(),
        newest_backup: newest.map(|b| b.id.clone()),
        newest_backup_stop_time: newest.map(|b| b.stop_time),
        live: None,
        archive_lag_bytes: None,
        standby_lag_bytes: None,
        estimated_rpo_bytes: None,
        estimated_rpo_seconds: None,
        estimated_rto_seconds: None,
    })
}
