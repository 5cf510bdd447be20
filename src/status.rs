//! What the archive says about the cluster right now: who owns it, which
//! epoch writes, where the log ends, how far behind the primary it was last
//! seen, and which backups exist.

use crate::archive::{Archive, ArchiveError, Engine};
use crate::backup::BackupRecord;
use crate::engines::postgres::archive_end;
use crate::ship::position_record::{self, PositionRecord};
use chrono::{DateTime, Utc};
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
    })
}
