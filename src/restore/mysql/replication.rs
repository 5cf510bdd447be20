//! The restored server as a replica: it starts at the backup's GTID
//! position, replicates with MASTER_USE_GTID=slave_pos (so gtid_strict_mode
//! holds: every transaction keeps its GTID and arrives once, in order), and
//! is detached once it has applied what it should.

use super::error::MysqlRestoreError;
use super::session::{quote, Session};
use instarec_mysql::MariadbGtidPos;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Where the replica connects: `instarec relay` (or the in-process one).
#[derive(Clone)]
pub struct Source {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
}

/// The statements that make a server at `applied` replicate from `source`;
/// `password` is what to write for MASTER_PASSWORD (shown or real).
pub fn setup_sql(applied: &MariadbGtidPos, source: &Source, password: &str) -> String {
    format!(
        "SET GLOBAL gtid_slave_pos = {}; CHANGE MASTER TO MASTER_HOST={}, MASTER_PORT={}, \
         MASTER_USER={}, MASTER_PASSWORD={password}, MASTER_USE_GTID=slave_pos, \
         MASTER_CONNECT_RETRY=1, MASTER_HEARTBEAT_PERIOD=1; START SLAVE;",
        quote(&applied.to_string()),
        quote(&source.host),
        source.port,
        quote(&source.user),
    )
}

pub async fn start(
    session: &mut Session,
    applied: &MariadbGtidPos,
    source: &Source,
) -> Result<(), MysqlRestoreError> {
    let shown = setup_sql(applied, source, "'***'");
    // A backup carries no replica state of ours; a previous run's would be stale.
    session
        .exec("STOP SLAVE; RESET SLAVE ALL", "RESET SLAVE ALL")
        .await?;
    session
        .exec(
            &setup_sql(applied, source, &quote(&source.password)),
            &shown,
        )
        .await
}

/// Waits until the replica's gtid_slave_pos reaches `target`, failing as
/// soon as a replication thread stops with an error.
pub async fn wait_applied(
    session: &mut Session,
    target: &MariadbGtidPos,
    data_dir: &str,
    log: &str,
    cancel: &CancellationToken,
) -> Result<(), MysqlRestoreError> {
    if target.is_empty() {
        return Ok(());
    }
    let wait = format!("SELECT MASTER_GTID_WAIT({}, 1)", quote(&target.to_string()));
    let mut last_report = Instant::now();
    loop {
        if session.value(&wait).await? == "0" {
            return Ok(());
        }
        if cancel.is_cancelled() {
            return Err(MysqlRestoreError::Cancelled {
                data_dir: data_dir.to_string(),
            });
        }
        let status = session.slave_status().await?;
        let field = |k: &str| {
            status
                .iter()
                .find(|(c, _)| c == k)
                .map(|(_, v)| v.as_str())
                .unwrap_or("")
        };
        let failed = [
            ("Slave_SQL_Running", "Last_SQL_Error"),
            ("Slave_IO_Running", "Last_IO_Error"),
        ]
        .iter()
        .find(|(running, error)| field(running) == "No" && !field(error).is_empty());
        if let Some((_, error)) = failed {
            return Err(MysqlRestoreError::Replication {
                at: session.value("SELECT @@global.gtid_slave_pos").await?,
                target: target.to_string(),
                reason: field(error).to_string(),
                log: log.to_string(),
            });
        }
        if last_report.elapsed() >= Duration::from_secs(10) {
            tracing::info!(
                at = field("Gtid_Slave_Pos"),
                %target,
                behind = field("Seconds_Behind_Master"),
                "replaying the archived binlog"
            );
            last_report = Instant::now();
        }
    }
}

/// What the server has applied: @@gtid_slave_pos and @@gtid_current_pos.
pub async fn positions(session: &mut Session) -> Result<(String, String), MysqlRestoreError> {
    Ok((
        session.value("SELECT @@global.gtid_slave_pos").await?,
        session.value("SELECT @@global.gtid_current_pos").await?,
    ))
}

/// Stops replication and forgets its source: the server is on its own.
pub async fn detach(session: &mut Session) -> Result<(), MysqlRestoreError> {
    session
        .exec("STOP SLAVE; RESET SLAVE ALL", "STOP SLAVE; RESET SLAVE ALL")
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_statements_name_the_position_and_source() {
        let source = Source {
            host: "127.0.0.1".into(),
            port: 3307,
            user: "repl".into(),
            password: "x".into(),
        };
        let sql = setup_sql(&"0-1-5".parse().unwrap(), &source, "'***'");
        assert_eq!(
            sql,
            "SET GLOBAL gtid_slave_pos = '0-1-5'; CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=3307, \
             MASTER_USER='repl', MASTER_PASSWORD='***', MASTER_USE_GTID=slave_pos, \
             MASTER_CONNECT_RETRY=1, MASTER_HEARTBEAT_PERIOD=1; START SLAVE;"
        );
    }
}
