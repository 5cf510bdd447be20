//! What `instarec status` asks the live servers: the primary's position and
//! the archive's lag as the primary measures it, and the standby's replay.
//! Each server is optional: an unreachable one is reported, not fatal.

use crate::config::Config;
use instarec_postgres::{connect_sql, ConnConfig, Lsn};
use serde::Serialize;
use std::time::Duration;

const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Default, Serialize)]
pub struct LiveStatus {
    pub primary_position: Option<String>,
    /// The shipper's flush lag as the primary's walsender measures it.
    pub archive_lag_seconds: Option<f64>,
    pub primary_error: Option<String>,
    /// The primary waits for the shipper's flush before it acknowledges a
    /// commit: its sync_state is `sync` (not `quorum`: another member could
    /// answer for it) and synchronous_commit waits for standbys. A session
    /// that sets synchronous_commit = local itself is not seen. None when
    /// the primary was not asked.
    pub synchronous_active: Option<bool>,
    pub standby_replay_position: Option<String>,
    /// Seconds since the last transaction the standby replayed committed.
    pub standby_replay_delay_seconds: Option<f64>,
    pub standby_error: Option<String>,
}

pub async fn probe(config: &Config) -> LiveStatus {
    let mut out = LiveStatus::default();
    if let Some(primary) = &config.primary {
        let application = primary.application_name.clone();
        match query_primary(primary.url.expose(), &application).await {
            Ok(primary) => {
                out.primary_position = Some(primary.position.to_string());
                out.archive_lag_seconds = primary.flush_lag_seconds;
                out.synchronous_active = Some(primary.synchronous);
            }
            Err(e) => out.primary_error = Some(e),
        }
    }
    if let Some(url) = config.standby.as_ref().and_then(|s| s.url.as_ref()) {
        match query_standby(url.expose()).await {
            Ok((pos, delay)) => {
                out.standby_replay_position = pos.map(|l| l.to_string());
                out.standby_replay_delay_seconds = delay;
            }
            Err(e) => out.standby_error = Some(e),
        }
    }
    out
}

async fn connect(url: &str) -> Result<tokio_postgres::Client, String> {
    let mut cfg = ConnConfig::from_url(url).map_err(|e| e.to_string())?;
    cfg.connect_timeout = Some(PROBE_TIMEOUT);
    tokio::time::timeout(PROBE_TIMEOUT, connect_sql(&cfg))
        .await
        .map_err(|_| format!("no answer within {PROBE_TIMEOUT:?}"))?
        .map_err(|e| e.to_string())
}

struct PrimaryProbe {
    position: Lsn,
    flush_lag_seconds: Option<f64>,
    synchronous: bool,
}

async fn query_primary(url: &str, application: &str) -> Result<PrimaryProbe, String> {
    let client = connect(url).await?;
    let row = client
        .query_one(
            "WITH shipper AS (SELECT flush_lag, sync_state FROM pg_stat_replication
                               WHERE application_name = $1
                               ORDER BY flush_lsn DESC NULLS LAST LIMIT 1)
             SELECT pg_current_wal_flush_lsn()::text,
                    (SELECT extract(epoch FROM flush_lag)::float8 FROM shipper),
                    coalesce((SELECT sync_state = 'sync' FROM shipper), false)
                      AND current_setting('synchronous_commit') IN ('on', 'remote_write', 'remote_apply')",
            &[&application],
        )
        .await
        .map_err(|e| e.to_string())?;
    let pos: String = row.get(0);
    Ok(PrimaryProbe {
        position: pos.parse::<Lsn>().map_err(|e| e.to_string())?,
        flush_lag_seconds: row.get(1),
        synchronous: row.get(2),
    })
}

async fn query_standby(url: &str) -> Result<(Option<Lsn>, Option<f64>), String> {
    let client = connect(url).await?;
    let row = client
        .query_one(
            "SELECT pg_last_wal_replay_lsn()::text,
                    extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    let pos: Option<String> = row.get(0);
    Ok((pos.and_then(|p| p.parse().ok()), row.get(1)))
}
