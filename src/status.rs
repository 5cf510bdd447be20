//! What the archive says about the cluster right now: who owns it, which
//! epoch writes, where the log ends, how far behind the primary it was last
//! seen, and which backups exist; with the live servers, the lags and what
//! a promote would lose and take.

use crate::archive::{Archive, ArchiveError};
use crate::backup::BackupRecord;
use crate::config::Config;
use crate::engine::Engine;
use crate::engines::mysql::epoch_chunks;
use crate::engines::mysql::index::ChunkIndex;
use crate::engines::mysql::live_status as mysql_live;
use crate::engines::postgres::archive_end;
use crate::engines::postgres::live_status as pg_live;
use crate::ship::position_record::{self, PositionRecord};
use chrono::{DateTime, Utc};
use instarec_postgres::Lsn;
use serde::Serialize;
use std::time::Duration;

#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub archive: String,
    pub engine: Option<Engine>,
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
    /// What did not answer within `status --timeout` (the archive, the
    /// servers); null when everything answered. Keys above that depend on
    /// it are null.
    pub timed_out: Option<String>,
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

/// The longest one server is waited for, even with a longer deadline.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// The whole report within `timeout`: the archive, then (with `live`) the
/// servers with what is left of it. What did not answer in time is named in
/// `timed_out`; a monitoring check gets an answer in bounded time even when
/// the object store hangs (its own retries can take minutes).
pub async fn gather_within(
    archive: &Archive,
    config: &Config,
    live: bool,
    timeout: Duration,
) -> Result<StatusReport, ArchiveError> {
    let deadline = tokio::time::Instant::now() + timeout;
    // The servers get their share of the deadline even when the archive
    // takes all of its own: the primary can still say how far behind it is.
    let probe_timeout = if live {
        (timeout / 2).min(PROBE_TIMEOUT)
    } else {
        Duration::ZERO
    };
    let archive_deadline = deadline - probe_timeout;
    let report = match tokio::time::timeout_at(archive_deadline, gather(archive)).await {
        Ok(report) => report?,
        Err(_) => {
            let mut report = StatusReport::empty(archive.url().to_string());
            report.timed_out = Some(format!(
                "the archive {} did not answer within {:?} (--timeout {timeout:?})",
                archive.url(),
                timeout - probe_timeout
            ));
            // The engine as configured: the cluster record did not answer.
            report.engine = config.primary.as_ref().map(|p| p.engine);
            report
        }
    };
    if !live {
        return Ok(report);
    }
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    let probe_timeout = left.min(PROBE_TIMEOUT);
    // The probes keep to probe_timeout themselves; this bounds what they
    // cannot (a server that accepts and then stalls mid-handshake).
    let fallback = report.clone();
    match tokio::time::timeout_at(deadline, with_live(report, config, probe_timeout)).await {
        Ok(report) => Ok(report),
        Err(_) => {
            let mut report = fallback;
            let what =
                format!("the primary and standby did not answer within {timeout:?} (--timeout)");
            report.timed_out = Some(match report.timed_out.take() {
                Some(archive) => format!("{archive}; {what}"),
                None => what,
            });
            Ok(report)
        }
    }
}

/// Adds what the live servers say to an archive-only report, waiting for
/// each server at most `timeout`.
pub async fn with_live(report: StatusReport, config: &Config, timeout: Duration) -> StatusReport {
    match report.engine {
        Some(Engine::Postgres) => with_live_postgres(report, config, timeout).await,
        Some(Engine::Mysql) => with_live_mysql(report, config, timeout).await,
        None => report,
    }
}

async fn with_live_postgres(
    mut report: StatusReport,
    config: &Config,
    timeout: Duration,
) -> StatusReport {
    let live = pg_live::probe(config, timeout).await;
    // Without the archive's own answer, what the shipper confirmed to the
    // primary: it confirms only what is durable.
    let end: Option<Lsn> = report
        .archive_end
        .as_deref()
        .or(live
            .shipper_confirmed_position
            .as_deref()
            .filter(|_| report.timed_out.is_some()))
        .and_then(|e| e.parse().ok());
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

async fn with_live_mysql(
    mut report: StatusReport,
    config: &Config,
    timeout: Duration,
) -> StatusReport {
    let probe = mysql_live::probe(config, timeout).await;
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
        // A mistyped URL or an archive never initialised: say so rather
        // than report an empty archive as healthy.
        None => {
            return Err(ArchiveError::NoClusterRecord {
                url: archive.url().to_string(),
            })
        }
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
        engine: cluster.as_ref().map(|c| c.engine),
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
        timed_out: None,
        archive_end_chunk: chunk,
    })
}

impl StatusReport {
    /// A report that knows only which archive it is about.
    fn empty(archive: String) -> Self {
        StatusReport {
            archive,
            engine: None,
            system_id: None,
            epoch: None,
            epoch_primary: None,
            epoch_holder: None,
            epoch_claimed_at: None,
            archive_end: None,
            archive_end_binlog: None,
            archive_end_time: None,
            timeline: None,
            last_primary_position: None,
            last_known_lag_bytes: None,
            last_known_lag_transactions: None,
            backups: 0,
            newest_backup: None,
            newest_backup_stop_time: None,
            live: None,
            archive_lag_bytes: None,
            archive_lag_transactions: None,
            standby_lag_bytes: None,
            standby_lag_transactions: None,
            estimated_rpo_bytes: None,
            estimated_rpo_transactions: None,
            estimated_rpo_seconds: None,
            estimated_rto_seconds: None,
            timed_out: None,
            archive_end_chunk: None,
        }
    }
}
