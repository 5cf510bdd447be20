//! What the archive says about the cluster right now: who owns it, which
//! epoch writes, where the log ends, how far behind the primary it was last
//! seen, and which backups exist; with the live servers, the lags and what
//! a promote would lose and take.

use crate::archive::{Archive, ArchiveError, Engine};
use crate::backup::BackupRecord;
use crate::config::Config;
use crate::engines::mysql::epoch_chunks;
use crate::engines::mysql::index::ChunkIndex;
use crate::engines::mysql::live_status as mysql_live;
use crate::engines::postgres::archive_end;
use crate::engines::postgres::live_status as pg_live;
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
    /// Where the archived log ends in the engine's notation (an LSN, a
    /// GTID position) and, for PostgreSQL, on which timeline.
    pub archive_end: Option<String>,
    /// MySQL: the binlog file:pos of that end on the primary that wrote it.
    pub archive_end_binlog: Option<String>,
    /// MySQL: the timestamp of the last archived event.
    pub archive_end_time: Option<DateTime<Utc>>,
    pub timeline: Option<u32>,
    /// The newest recorded primary position and when it was seen.
    pub last_primary_position: Option<PositionRecord>,
    /// Bytes the archive was behind the primary at that record, when known.
    pub last_known_lag_bytes: Option<u64>,
    /// MySQL: transactions the archive lacked at that record.
    pub last_known_lag_transactions: Option<u64>,
    pub backups: usize,
    pub newest_backup: Option<String>,
    pub newest_backup_stop_time: Option<DateTime<Utc>>,
    /// The live servers, when configured and reachable.
    pub live: Option<Live>,
    /// Bytes the primary has that the archive does not (live).
    pub archive_lag_bytes: Option<u64>,
    /// MySQL: transactions the primary has that the archive does not.
    pub archive_lag_transactions: Option<u64>,
    /// Bytes the archive has that the standby has not replayed.
    pub standby_lag_bytes: Option<u64>,
    /// MySQL: transactions the archive has that the standby has not applied.
    pub standby_lag_transactions: Option<u64>,
    /// What a promote would lose right now: the archive's lag (0 in
    /// synchronous mode, where nothing unarchived is acknowledged).
    pub estimated_rpo_bytes: Option<u64>,
    /// MySQL: the same in transactions.
    pub estimated_rpo_transactions: Option<u64>,
    pub estimated_rpo_seconds: Option<f64>,
    /// Promote overhead plus replaying the standby's lag.
    pub estimated_rto_seconds: Option<f64>,
    /// MySQL: the archive's newest chunk, for comparing with the live servers.
    #[serde(skip)]
    pub archive_end_chunk: Option<ChunkIndex>,
}

/// What the live servers said, in the engine's terms; the JSON keys of
/// PostgreSQL's are a subset of MySQL's.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Live {
    Postgres(pg_live::LiveStatus),
    Mysql(mysql_live::LiveStatus),
}

impl Live {
    /// How long ago the oldest commit the archive lacks was made, at most.
    pub fn archive_lag_seconds(&self) -> Option<f64> {
        match self {
            Live::Postgres(l) => l.archive_lag_seconds,
            Live::Mysql(l) => l.archive_lag_seconds,
        }
    }
}

/// Promote's fixed cost on the reference machine (PostgreSQL: 0.6–1.0 s
/// measured, docs/benchmarks.md), and a conservative replay rate for the lag.
const PROMOTE_OVERHEAD_SECONDS: f64 = 1.0;
const REPLAY_BYTES_PER_SECOND: f64 = 64.0 * 1024.0 * 1024.0;
/// MariaDB promote measured 0.2–0.7 s (docs/benchmarks.md); 2 s leaves room
/// for a slower relay poll and the replica's reconnect.
const MYSQL_PROMOTE_OVERHEAD_SECONDS: f64 = 2.0;
/// A replica fed by `instarec relay` applied 6,400 tx/s on the reference
/// machine (docs/benchmarks.md); a third of that allows for bigger
/// transactions and a busier host.
const MYSQL_APPLY_TRANSACTIONS_PER_SECOND: f64 = 2_000.0;

/// Adds what the live servers say to an archive-only report.
pub async fn with_live(report: StatusReport, config: &Config) -> StatusReport {
    match report.engine.as_deref() {
        Some("postgres") => with_live_postgres(report, config).await,
        Some("mysql") => with_live_mysql(report, config).await,
        _ => report,
    }
}

async fn with_live_postgres(mut report: StatusReport, config: &Config) -> StatusReport {
    let live = pg_live::probe(config).await;
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
    // Zero-loss only while the primary waits for the shipper; trusted from
    // the config when the primary cannot be asked.
    let synchronous = config.primary.as_ref().is_some_and(|p| p.synchronous)
        && live.synchronous_active.unwrap_or(true);
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
    report.live = Some(Live::Postgres(live));
    report
}

async fn with_live_mysql(mut report: StatusReport, config: &Config) -> StatusReport {
    let probe = mysql_live::probe(config).await;
    let end = report.archive_end_chunk.as_ref();
    let mut live = mysql_live::LiveStatus::default();
    // Semi-sync: a commit is acknowledged only once the shipper has it
    // durable, but only while the primary says so: semi-sync falls back to
    // asynchronous on its own (rpl_semi_sync_master_timeout), so a primary
    // that cannot be asked is not trusted.
    let mut synchronous = config.primary.as_ref().is_some_and(|p| p.synchronous);
    match &probe.primary {
        Some(Ok(p)) => {
            // File offsets compare only within the binlog of the primary
            // that writes the current epoch.
            let same_server = end.is_some_and(|e| Some(e.epoch.0) == report.epoch);
            let lag = mysql_live::archive_lag(end, same_server, p);
            live.primary_position = Some(p.end.gtid.to_string());
            live.primary_binlog = Some(p.end.at.to_string());
            live.archive_lag_seconds = lag.seconds;
            report.archive_lag_bytes = lag.bytes;
            report.archive_lag_transactions = lag.transactions;
            synchronous &= p.semi_sync_active;
        }
        Some(Err(e)) => {
            live.primary_error = Some(e.clone());
            synchronous = false;
        }
        None => synchronous = false,
    }
    match &probe.standby {
        Some(Ok(s)) => {
            live.standby_replay_position = Some(s.applied.to_string());
            live.standby_replay_delay_seconds = s.seconds_behind_master;
            report.standby_lag_transactions = end
                .and_then(mysql_live::archived_gtid)
                .and_then(|a| mysql_live::transactions_missing(&a, &s.applied));
        }
        Some(Err(e)) => live.standby_error = Some(e.clone()),
        None => {}
    }
    (
        report.estimated_rpo_bytes,
        report.estimated_rpo_transactions,
        report.estimated_rpo_seconds,
    ) = if synchronous {
        (Some(0), Some(0), Some(0.0))
    } else {
        (
            report.archive_lag_bytes,
            report.archive_lag_transactions,
            live.archive_lag_seconds,
        )
    };
    report.estimated_rto_seconds = report
        .standby_lag_transactions
        .map(|n| MYSQL_PROMOTE_OVERHEAD_SECONDS + n as f64 / MYSQL_APPLY_TRANSACTIONS_PER_SECOND);
    report.live = Some(Live::Mysql(live));
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
    let (mut chunk, mut lag_transactions) = (None, None);
    match cluster.as_ref().map(|c| c.engine) {
        Some(Engine::Postgres) => {
            if let Some(size) = archive_end::segment_size(&archive).await? {
                if let Some((tli, lsn)) = archive_end::durable_end(&archive, size).await? {
                    end = Some(lsn.to_string());
                    timeline = Some(tli.0);
                }
            }
            lag = position.as_ref().and_then(|p| {
                let primary: Lsn = p.primary.parse().ok()?;
                let durable: Lsn = p.durable.parse().ok()?;
                Some(primary.0.saturating_sub(durable.0))
            });
        }
        Some(Engine::Mysql) => {
            // Where promote finds the archive's end: the newest epoch's
            // last complete chunk.
            if let Some(e) = epoch_chunks::newest_epoch(&archive).await? {
                chunk = epoch_chunks::last_chunk(&archive, e).await?;
            }
            end = chunk.as_ref().map(|c| c.gtid_pos_after.clone());
            // Records hold GTID states only: no byte count.
            let flavor = chunk.as_ref().map(|c| c.flavor.as_str());
            lag_transactions = position.as_ref().and_then(|p| {
                let primary = mysql_live::recorded_gtid(&p.primary, flavor)?;
                let durable = mysql_live::recorded_gtid(&p.durable, flavor)?;
                mysql_live::transactions_missing(&primary, &durable)
            });
        }
        None => {}
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
        archive_end_binlog: chunk.as_ref().map(|c| format!("{}:{}", c.file, c.end_pos)),
        archive_end_time: chunk
            .as_ref()
            .and_then(|c| DateTime::from_timestamp(i64::from(c.last_ts), 0)),
        timeline,
        last_primary_position: position,
        last_known_lag_bytes: lag,
        last_known_lag_transactions: lag_transactions,
        backups: backups.len(),
        newest_backup: newest.map(|b| b.id.clone()),
        newest_backup_stop_time: newest.map(|b| b.stop_time),
        live: None,
        archive_lag_bytes: None,
        archive_lag_transactions: None,
        standby_lag_bytes: None,
        standby_lag_transactions: None,
        estimated_rpo_bytes: None,
        estimated_rpo_transactions: None,
        estimated_rpo_seconds: None,
        estimated_rto_seconds: None,
        archive_end_chunk: chunk,
    })
}
