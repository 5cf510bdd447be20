//! Server control over an ordinary SQL connection: what promote does to an
//! old primary (read-only fencing, ending write sessions, its final WAL
//! position) and to a standby (replay position, last replayed commit time,
//! `pg_promote`). One connection per server; every call is one round trip
//! or a short, bounded poll.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::conn::config::ConnConfig;
use crate::error::PgError;
use crate::lsn::Lsn;
use crate::sql::connect_sql;

/// A SQL connection used to control one server.
pub struct ControlConnection {
    client: tokio_postgres::Client,
    addr: String,
}

/// What a standby (or a server that claims to be one) says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerState {
    /// `pg_control_system().system_identifier`, in decimal.
    pub system_id: String,
    pub in_recovery: bool,
}

impl ControlConnection {
    /// A server of a major instarec does not support is refused here.
    pub async fn connect(cfg: &ConnConfig) -> Result<Self, PgError> {
        let client = connect_sql(cfg).await?;
        let conn = ControlConnection {
            client,
            addr: cfg.addr(),
        };
        let row = conn.query_one("SHOW server_version").await?;
        let reported: String = row.get(0);
        crate::version::supported_major(&conn.addr, &reported)?;
        Ok(conn)
    }

    /// host:port, for messages.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub async fn state(&self) -> Result<ServerState, PgError> {
        let row = self
            .query_one(
                "SELECT system_identifier::text, pg_is_in_recovery() FROM pg_control_system()",
            )
            .await?;
        Ok(ServerState {
            system_id: row.get(0),
            in_recovery: row.get(1),
        })
    }

    /// Makes new transactions read-only server-wide (ALTER SYSTEM survives a
    /// restart), reloads, and waits until this backend has taken the reload,
    /// which proves the postmaster did too: later sessions start read-only.
    pub async fn fence_read_only(&self, wait: Duration) -> Result<(), PgError> {
        self.execute("ALTER SYSTEM SET default_transaction_read_only = on")
            .await?;
        self.execute("SELECT pg_reload_conf()").await?;
        self.wait_setting("default_transaction_read_only", "on", wait)
            .await
    }

    /// Undoes [`fence_read_only`](Self::fence_read_only), for a switchover
    /// abandoned before anything else changed.
    pub async fn lift_read_only(&self, wait: Duration) -> Result<(), PgError> {
        self.execute("ALTER SYSTEM RESET default_transaction_read_only")
            .await?;
        self.execute("SELECT pg_reload_conf()").await?;
        self.wait_setting("default_transaction_read_only", "off", wait)
            .await
    }

    /// Terminates every client session except this one (walsenders, which
    /// carry WAL to the archive, are not client backends and stay), waiting
    /// up to `wait` for each to exit. Returns how many were terminated.
    pub async fn terminate_client_sessions(&self, wait: Duration) -> Result<u64, PgError> {
        let millis = wait.as_millis().min(i64::MAX as u128) as i64;
        let row = self
            .client
            .query_one(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, $1)) \
                 FROM pg_stat_activity \
                 WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
                &[&millis],
            )
            .await
            .map_err(|e| self.sql_error(e))?;
        let n: i64 = row.get(0);
        Ok(n.max(0) as u64)
    }

    /// The WAL flush position once the server is quiet: waits (up to `wait`)
    /// for the flush position to catch up with what was written, so
    /// asynchronous commits already acknowledged are included.
    pub async fn settled_flush_position(&self, wait: Duration) -> Result<Lsn, PgError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let row = self
                .query_one("SELECT pg_current_wal_flush_lsn()::text, pg_current_wal_lsn()::text")
                .await?;
            let flush = self.lsn(row.get(0))?;
            let written = self.lsn(row.get(1))?;
            if flush >= written || tokio::time::Instant::now() >= deadline {
                return Ok(flush);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `synchronous_standby_names` and `synchronous_commit`, as the server
    /// has them now.
    pub async fn synchronous_settings(&self) -> Result<(String, String), PgError> {
        let row = self
            .query_one(
                "SELECT current_setting('synchronous_standby_names'), current_setting('synchronous_commit')",
            )
            .await?;
        Ok((row.get(0), row.get(1)))
    }

    /// Sets `synchronous_standby_names` server-wide (ALTER SYSTEM, so it
    /// survives a restart), reloads, and waits up to `wait` until this
    /// backend sees it.
    pub async fn set_synchronous_standby_names(
        &self,
        value: &str,
        wait: Duration,
    ) -> Result<(), PgError> {
        let quoted = value.replace('\'', "''");
        self.execute(&format!(
            "ALTER SYSTEM SET synchronous_standby_names = '{quoted}'"
        ))
        .await?;
        self.execute("SELECT pg_reload_conf()").await?;
        self.wait_setting("synchronous_standby_names", value, wait)
            .await
    }

    /// How many walsenders named `application_name` are streaming.
    pub async fn streaming_replicas(&self, application_name: &str) -> Result<i64, PgError> {
        let row = self
            .client
            .query_one(
                "SELECT count(*) FROM pg_stat_replication WHERE application_name = $1 AND state = 'streaming'",
                &[&application_name],
            )
            .await
            .map_err(|e| self.sql_error(e))?;
        Ok(row.get(0))
    }

    /// `pg_last_wal_replay_lsn()`: the end of the last record replayed;
    /// stays fixed after promotion. None on a server that never recovered.
    pub async fn replay_position(&self) -> Result<Option<Lsn>, PgError> {
        let row = self
            .query_one("SELECT pg_last_wal_replay_lsn()::text")
            .await?;
        let text: Option<String> = row.get(0);
        text.map(|t| self.lsn(t)).transpose()
    }

    /// `pg_last_xact_replay_timestamp()`: the commit (or abort) time the
    /// primary stamped on the last transaction record replayed.
    pub async fn last_replayed_commit_time(&self) -> Result<Option<SystemTime>, PgError> {
        let row = self
            .query_one(
                "SELECT (extract(epoch FROM pg_last_xact_replay_timestamp()) * 1000000)::bigint",
            )
            .await?;
        let micros: Option<i64> = row.get(0);
        Ok(micros.map(|m| UNIX_EPOCH + Duration::from_micros(m.max(0) as u64)))
    }

    /// `wal_retrieve_retry_interval`: how long a standby waits before asking
    /// restore_command again after a file was absent or incomplete.
    pub async fn wal_retrieve_retry_interval(&self) -> Result<Duration, PgError> {
        let row = self
            .query_one(
                "SELECT setting::bigint FROM pg_settings WHERE name = 'wal_retrieve_retry_interval'",
            )
            .await?;
        let millis: i64 = row.get(0);
        Ok(Duration::from_millis(millis.max(0) as u64))
    }

    /// `pg_promote(wait => true)`: ends recovery. False when the server did
    /// not finish promoting within `wait` (it may still finish later).
    pub async fn promote(&self, wait: Duration) -> Result<bool, PgError> {
        let seconds = wait.as_secs().clamp(1, i32::MAX as u64) as i32;
        let row = self
            .client
            .query_one("SELECT pg_promote(true, $1)", &[&seconds])
            .await
            .map_err(|e| self.sql_error(e))?;
        Ok(row.get(0))
    }

    /// Creates the probe table if needed and commits one row: proof that the
    /// server (or whatever this connection goes through) accepts writes.
    pub async fn write_probe(&self, note: &str) -> Result<(), PgError> {
        self.execute(
            "CREATE TABLE IF NOT EXISTS instarec_promote_probe (\
             at timestamptz NOT NULL DEFAULT now(), note text NOT NULL)",
        )
        .await?;
        self.client
            .execute(
                "INSERT INTO instarec_promote_probe(note) VALUES ($1)",
                &[&note],
            )
            .await
            .map_err(|e| self.sql_error(e))?;
        Ok(())
    }

    async fn wait_setting(&self, name: &str, want: &str, wait: Duration) -> Result<(), PgError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let row = self
                .client
                .query_one("SELECT current_setting($1)", &[&name])
                .await
                .map_err(|e| self.sql_error(e))?;
            let value: String = row.get(0);
            if value == want {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(PgError::Protocol {
                    addr: self.addr.clone(),
                    detail: format!(
                        "{name} is still {value:?} {wait:?} after pg_reload_conf(); check the server log for configuration errors"
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn execute(&self, sql: &str) -> Result<(), PgError> {
        self.client
            .simple_query(sql)
            .await
            .map(|_| ())
            .map_err(|e| self.sql_error(e))
    }

    async fn query_one(&self, sql: &str) -> Result<tokio_postgres::Row, PgError> {
        self.client
            .query_one(sql, &[])
            .await
            .map_err(|e| self.sql_error(e))
    }

    fn lsn(&self, text: String) -> Result<Lsn, PgError> {
        text.parse().map_err(|_| PgError::Protocol {
            addr: self.addr.clone(),
            detail: format!("{text:?} is not an LSN"),
        })
    }

    fn sql_error(&self, source: tokio_postgres::Error) -> PgError {
        PgError::Sql {
            addr: self.addr.clone(),
            source,
        }
    }
}

/// Whether `synchronous_standby_names` makes the server wait for
/// `application_name`: a plain list, `FIRST n (...)` or `ANY n (...)`, with
/// `*` matching anyone. Names compare case-insensitively unless quoted.
pub fn names_standby(synchronous_standby_names: &str, application_name: &str) -> bool {
    let text = synchronous_standby_names.trim();
    if text.is_empty() {
        return false;
    }
    let list = match (text.find('('), text.rfind(')')) {
        (Some(open), Some(close)) if open < close => &text[open + 1..close],
        _ => text,
    };
    list.split(',').map(str::trim).any(|name| {
        if name == "*" {
            return true;
        }
        match name.strip_prefix('"').and_then(|n| n.strip_suffix('"')) {
            Some(quoted) => quoted.replace("\"\"", "\"") == application_name,
            None => name.eq_ignore_ascii_case(application_name),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::names_standby;

    #[test]
    fn synchronous_standby_names_forms() {
        assert!(names_standby("instarec", "instarec"));
        assert!(names_standby("a, InstaRec", "instarec"));
        assert!(names_standby("FIRST 1 (a, instarec)", "instarec"));
        assert!(names_standby("ANY 2 (x,instarec,y)", "instarec"));
        assert!(names_standby("2 (a, instarec)", "instarec"));
        assert!(names_standby("*", "instarec"));
        assert!(names_standby("\"instarec\"", "instarec"));
        assert!(!names_standby("\"InstaRec\"", "instarec"));
        assert!(!names_standby("", "instarec"));
        assert!(!names_standby("FIRST 1 (a, b)", "instarec"));
        assert!(!names_standby("instarec2", "instarec"));
    }
}
