//! Cutover through pgbouncer's admin console: PAUSE the database (in-flight
//! transactions finish, new ones wait), repoint it in the `[databases]`
//! include file, RELOAD, RESUME. Waiting clients then run on the new primary
//! without seeing an error.

use super::{pgbouncer_databases, CutoverError, CutoverTarget};
use crate::config::PgbouncerSection;
use std::path::Path;
use std::time::Duration;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// RELOAD, RESUME and SHOW answer at once; anything slower is a hung pgbouncer.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// Planned switchover, before fencing: PAUSE, waiting up to pause_timeout.
pub async fn pause(section: &PgbouncerSection) -> Result<(), CutoverError> {
    let admin = Admin::connect(section).await?;
    if admin.is_paused().await? {
        return Ok(());
    }
    admin.pause(section.pause_timeout.0).await
}

/// Undoes a pause without moving anything.
pub async fn resume(section: &PgbouncerSection) -> Result<(), CutoverError> {
    let admin = Admin::connect(section).await?;
    if admin.is_paused().await? {
        admin.command(&format!("RESUME {}", admin.database)).await?;
    }
    Ok(())
}

/// PAUSE (if [`pause`] did not already), repoint, RELOAD, RESUME, check.
pub async fn cut_over(
    section: &PgbouncerSection,
    target: &CutoverTarget,
) -> Result<String, CutoverError> {
    let mut admin = Admin::connect(section).await?;
    let mut how = "paused";
    if !admin.is_paused().await? {
        if let Err(e) = admin.pause(section.pause_timeout.0).await {
            // Unplanned failover: transactions on a dead primary never end.
            // The first session still waits on PAUSE, so go on in a new one.
            tracing::warn!(error = %e, "pgbouncer: PAUSE did not finish; killing the database's connections");
            admin = Admin::connect(section).await?;
            admin.command(&format!("KILL {}", admin.database)).await?;
            how = "killed (PAUSE timed out)";
        }
    }
    let moved = async {
        repoint_file(&section.databases_file, &section.database, target).await?;
        admin.command("RELOAD").await?;
        Ok::<(), CutoverError>(())
    }
    .await;
    // Resume even when repointing failed: waiting clients get an answer.
    let resumed = admin.command(&format!("RESUME {}", admin.database)).await;
    moved?;
    resumed?;
    admin.check_points_at(target).await?;
    Ok(format!(
        "pgbouncer {}: database {} {how}, repointed to {}:{}, resumed",
        admin.masked_url, admin.database, target.host, target.port
    ))
}

async fn repoint_file(
    path: &Path,
    database: &str,
    target: &CutoverTarget,
) -> Result<(), CutoverError> {
    let failed = |reason: String| CutoverError::DatabasesFile {
        path: path.to_path_buf(),
        reason,
    };
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| failed(format!("cannot read: {e}")))?;
    let new_text =
        pgbouncer_databases::repoint(&text, database, &target.address()).map_err(failed)?;
    // Write beside it and rename, so pgbouncer never reads half a file.
    let tmp = path.with_extension("instarec-tmp");
    let permissions = tokio::fs::metadata(path)
        .await
        .map_err(|e| failed(format!("cannot stat: {e}")))?
        .permissions();
    tokio::fs::write(&tmp, new_text.as_bytes())
        .await
        .map_err(|e| failed(format!("cannot write {}: {e}", tmp.display())))?;
    tokio::fs::set_permissions(&tmp, permissions)
        .await
        .map_err(|e| failed(format!("cannot chmod {}: {e}", tmp.display())))?;
    tokio::fs::rename(&tmp, path)
        .await
        .map_err(|e| failed(format!("cannot rename {} over it: {e}", tmp.display())))
}

/// One admin console session.
struct Admin {
    client: Client,
    masked_url: String,
    database: String,
}

impl Admin {
    async fn connect(section: &PgbouncerSection) -> Result<Admin, CutoverError> {
        let masked_url = section.admin_url.masked();
        let failed = |reason: String| CutoverError::Pgbouncer {
            admin: masked_url.clone(),
            command: "connect".to_string(),
            reason,
        };
        let mut config: tokio_postgres::Config = section
            .admin_url
            .expose()
            .parse()
            .map_err(|e| failed(format!("admin_url is not a connection URL: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let (client, connection) = config
            .connect(NoTls)
            .await
            .map_err(|e| failed(e.to_string()))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "pgbouncer admin connection ended");
            }
        });
        Ok(Admin {
            client,
            masked_url,
            database: section.database.clone(),
        })
    }

    async fn pause(&self, timeout: Duration) -> Result<(), CutoverError> {
        let command = format!("PAUSE {}", self.database);
        match tokio::time::timeout(timeout, self.client.simple_query(&command)).await {
            Ok(result) => result
                .map(|_| ())
                .map_err(|e| self.failed(&command, e.to_string())),
            Err(_) => Err(self.failed(
                &command,
                format!("in-flight transactions did not finish within {timeout:?}"),
            )),
        }
    }

    async fn command(&self, command: &str) -> Result<Vec<SimpleQueryMessage>, CutoverError> {
        match tokio::time::timeout(COMMAND_TIMEOUT, self.client.simple_query(command)).await {
            Ok(result) => result.map_err(|e| self.failed(command, e.to_string())),
            Err(_) => Err(self.failed(command, format!("no answer within {COMMAND_TIMEOUT:?}"))),
        }
    }

    /// The `SHOW DATABASES` row of our database, as (column, value) pairs.
    async fn database_row(&self) -> Result<Vec<(String, String)>, CutoverError> {
        for message in self.command("SHOW DATABASES").await? {
            if let SimpleQueryMessage::Row(row) = message {
                if row.get("name") == Some(self.database.as_str()) {
                    return Ok(row
                        .columns()
                        .iter()
                        .enumerate()
                        .map(|(i, c)| (c.name().to_string(), row.get(i).unwrap_or("").to_string()))
                        .collect());
                }
            }
        }
        Err(self.failed(
            "SHOW DATABASES",
            format!(
                "no database {:?}; check [cutover.pgbouncer] database",
                self.database
            ),
        ))
    }

    async fn is_paused(&self) -> Result<bool, CutoverError> {
        let row = self.database_row().await?;
        Ok(column(&row, "paused") == Some("1"))
    }

    async fn check_points_at(&self, target: &CutoverTarget) -> Result<(), CutoverError> {
        let row = self.database_row().await?;
        let (host, port) = (column(&row, "host"), column(&row, "port"));
        if host == Some(target.host.as_str()) && port == Some(target.port.to_string().as_str()) {
            return Ok(());
        }
        Err(self.failed(
            "SHOW DATABASES",
            format!(
                "after RELOAD database {} points at host={} port={}, not {}:{}; is [cutover.pgbouncer] databases_file included by pgbouncer.ini?",
                self.database,
                host.unwrap_or("?"),
                port.unwrap_or("?"),
                target.host,
                target.port
            ),
        ))
    }

    fn failed(&self, command: &str, reason: String) -> CutoverError {
        CutoverError::Pgbouncer {
            admin: self.masked_url.clone(),
            command: command.to_string(),
            reason,
        }
    }
}

fn column<'a>(row: &'a [(String, String)], name: &str) -> Option<&'a str> {
    row.iter().find(|(c, _)| c == name).map(|(_, v)| v.as_str())
}
