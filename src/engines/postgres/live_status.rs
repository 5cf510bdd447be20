//! What `instarec status` asks the live servers: the primary's position and
//! the archive's lag as the primary measures it, and the standby's replay.
//! Each server is optional: an unreachable one is reported, not fatal.

use crate::config::Config;
use instarec_postgres::{connect_sql, ConnConfig, Lsn, PgError};
use serde::Serialize;
use std::time::Duration;

#[derive(Debug, Clone, Default, Serialize)]
pub struct LiveStatus {
    pub primary_position: Option<String>,
    /// The age of the oldest WAL not yet durable in the archive, as the
    /// primary measures it: how long ago it flushed the WAL the shipper last
    /// confirmed (pg_stat_replication.flush_lag at that reply, plus the time
    /// since the reply). Never less than the true age; 0 when nothing is
    /// missing; None when no shipper is connected.
    pub archive_lag_seconds: Option<f64>,
    pub primary_error: Option<String>,
    /// What the shipper last confirmed durable to the primary
    /// (pg_stat_replication.flush_lsn); None when no shipper is connected.
    pub shipper_confirmed_position: Option<String>,
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

/// Asks the configured primary and standby at once, each for at most
/// `timeout` (connecting included): two unreachable servers cost one timeout.
pub async fn probe(config: &Config, timeout: Duration) -> LiveStatus {
    let mut out = LiveStatus::default();
    let primary = async {
        let primary = config.primary.as_ref()?;
        let application = primary.application_name.clone();
        let conn = match primary.postgres_conn() {
            Ok(conn) => conn,
            Err(e) => return Some(Err(format!("{e:#}"))),
        };
        Some(query_primary(conn, &application, timeout).await)
    };
    let standby = async {
        let url = config.standby.as_ref()?.url.as_ref()?;
        let conn = match ConnConfig::from_url(url.expose()) {
            Ok(conn) => conn,
            Err(e) => return Some(Err(format!("[standby] url {url}: {e}"))),
        };
        Some(query_standby(conn, timeout).await)
    };
    let (primary, standby) = tokio::join!(primary, standby);
    match primary {
        Some(Ok(primary)) => {
            out.primary_position = Some(primary.position.to_string());
            out.archive_lag_seconds = primary.oldest_unconfirmed_age_seconds;
            out.shipper_confirmed_position = primary.confirmed.map(|l| l.to_string());
            out.synchronous_active = Some(primary.synchronous);
        }
        Some(Err(e)) => out.primary_error = Some(e),
        None => {}
    }
    match standby {
        Some(Ok((pos, delay))) => {
            out.standby_replay_position = pos.map(|l| l.to_string());
            out.standby_replay_delay_seconds = delay;
        }
        Some(Err(e)) => out.standby_error = Some(e),
        None => {}
    }
    out
}

/// Connects, or says why not in the words `backup` uses for the same failure.
async fn connect(
    mut cfg: ConnConfig,
    timeout: Duration,
) -> Result<(tokio_postgres::Client, String), String> {
    cfg.connect_timeout = Some(timeout);
    let addr = cfg.addr();
    let client = tokio::time::timeout(timeout, connect_sql(&cfg))
        .await
        .map_err(|_| {
            PgError::ConnectTimeout {
                addr: addr.clone(),
                after: timeout,
            }
            .to_string()
        })?
        .map_err(|e| e.to_string())?;
    Ok((client, addr))
}

/// One query within what is left of `timeout`, naming the server if it hangs.
async fn query_one(
    client: &tokio_postgres::Client,
    addr: &str,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    timeout: Duration,
) -> Result<tokio_postgres::Row, String> {
    tokio::time::timeout(timeout, client.query_one(sql, params))
        .await
        .map_err(|_| format!("PostgreSQL at {addr} did not answer within {timeout:?}"))?
        .map_err(|e| format!("PostgreSQL at {addr}: {e}"))
}

struct PrimaryProbe {
    position: Lsn,
    oldest_unconfirmed_age_seconds: Option<f64>,
    confirmed: Option<Lsn>,
    synchronous: bool,
}

/// The age is 0 when the shipper confirmed everything the primary flushed;
/// otherwise the WAL it confirmed last was flushed `flush_lag` before that
/// reply (the walsender interpolates while the confirmed position is stuck),
/// and everything after it is younger.
async fn query_primary(
    conn: ConnConfig,
    application: &str,
    timeout: Duration,
) -> Result<PrimaryProbe, String> {
    let deadline = std::time::Instant::now() + timeout;
    let (client, addr) = connect(conn, timeout).await?;
    let row = query_one(
        &client,
        &addr,
        "WITH shipper AS (SELECT flush_lsn, flush_lag, reply_time, sync_state
                           FROM pg_stat_replication
                           WHERE application_name = $1
                           ORDER BY flush_lsn DESC NULLS LAST LIMIT 1),
              primary_end AS (SELECT pg_current_wal_flush_lsn() AS lsn)
         SELECT (SELECT lsn FROM primary_end)::text,
                (SELECT CASE WHEN flush_lsn >= (SELECT lsn FROM primary_end) THEN 0::float8
                             ELSE extract(epoch FROM flush_lag + (now() - reply_time))::float8
                        END FROM shipper),
                coalesce((SELECT sync_state = 'sync' FROM shipper), false)
                  AND current_setting('synchronous_commit') IN ('on', 'remote_write', 'remote_apply'),
                (SELECT flush_lsn::text FROM shipper)",
        &[&application],
        deadline.saturating_duration_since(std::time::Instant::now()),
    )
    .await?;
    let pos: String = row.get(0);
    Ok(PrimaryProbe {
        position: pos.parse::<Lsn>().map_err(|e| e.to_string())?,
        oldest_unconfirmed_age_seconds: row.get(1),
        synchronous: row.get(2),
        confirmed: row.get::<_, Option<String>>(3).and_then(|l| l.parse().ok()),
    })
}

async fn query_standby(
    conn: ConnConfig,
    timeout: Duration,
) -> Result<(Option<Lsn>, Option<f64>), String> {
    let deadline = std::time::Instant::now() + timeout;
    let (client, addr) = connect(conn, timeout).await?;
    let row = query_one(
        &client,
        &addr,
        "SELECT pg_last_wal_replay_lsn()::text,
                extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8",
        &[],
        deadline.saturating_duration_since(std::time::Instant::now()),
    )
    .await?;
    let pos: Option<String> = row.get(0);
    Ok((pos.and_then(|p| p.parse().ok()), row.get(1)))
}
