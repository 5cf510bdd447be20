//! `instarec restore`: point-in-time recovery into a new data directory,
//! optionally running the server until it reaches the target.

use super::standby::{absolute, self_restore_command};
use super::Context;
use crate::engine::Engine;
use crate::exit::{self, CodedError};
use crate::restore::mysql::{self, MysqlRestoreOptions, MysqlTarget, ServerOptions};
use crate::restore::pitr::{plan, prepare, RestoreOptions};
use crate::restore::server::{check_binary_major, recover, RecoveryEnd, StartOptions};
use crate::restore::RecoveryTarget;
use anyhow::Context as _;
use chrono::{DateTime, NaiveDateTime, Utc};
use instarec_postgres::lsn::{Lsn, TimelineId};
use instarec_postgres::version::ServerVersionNum;
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["to_time", "to_lsn", "to_xid", "to_gtid", "latest"])))]
pub struct Args {
    /// Data directory to create (must be empty or missing, unless --force)
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// Stop before the first commit after this time: RFC 3339 or
    /// "2026-11-27 16:50:00[.123][+02]" (UTC when no offset is given)
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub to_time: Option<DateTime<Utc>>,
    /// Stop after the WAL record at this LSN, e.g. 0/3000060
    #[arg(long, value_name = "LSN")]
    pub to_lsn: Option<Lsn>,
    /// Stop after this transaction commits (restores from the oldest backup
    /// unless --backup)
    #[arg(long, value_name = "XID")]
    pub to_xid: Option<u64>,
    /// MySQL/MariaDB: stop once this GTID position is applied, e.g. 0-1-42
    /// (name every domain to replay, as in @@gtid_slave_pos)
    #[arg(long, value_name = "GTID")]
    pub to_gtid: Option<String>,
    /// Replay everything archived
    #[arg(long)]
    pub latest: bool,
    /// Recover along this timeline [default: latest]
    #[arg(long, value_name = "N")]
    pub timeline: Option<u32>,
    /// Backup id to restore [default: the newest that precedes the target]
    #[arg(long, value_name = "ID")]
    pub backup: Option<String>,
    /// At the target, pause (read-only, inspectable) instead of promoting
    #[arg(long)]
    pub pause: bool,
    /// Delete everything in --data-dir first
    #[arg(long)]
    pub force: bool,
    /// Start postgres, wait until recovery ends, report, then stop it
    #[arg(long)]
    pub start: bool,
    /// With --start: leave the server running
    #[arg(long, requires = "start")]
    pub keep_running: bool,
    /// With --start: the port [default: a free one]
    #[arg(long, requires = "start")]
    pub port: Option<u16>,
    /// With --start: a role of the restored cluster to query it as
    /// [default: postgres; MariaDB: root, over the server's socket, with
    /// the password in INSTAREC_DB_PASSWORD if it needs one]
    #[arg(long, requires = "start")]
    pub db_user: Option<String>,
    /// With --start as root: the OS user that runs the server
    /// [default: postgres; MariaDB: mysql]
    #[arg(long, requires = "start")]
    pub os_user: Option<String>,
    /// With --start: directory holding the postgres binary
    #[arg(long, value_name = "DIR", requires = "start")]
    pub pg_bin_dir: Option<PathBuf>,
    /// With --start: stop the server and fail if recovery has not ended
    /// (or paused) this long after it started, e.g. "30m"
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = humantime::parse_duration)]
    pub start_timeout: std::time::Duration,
    /// Chunk downloads in flight at once (memory ≈ this × 16 MiB)
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallel: u16,
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    for f in ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%.f%#z"] {
        if let Ok(t) = DateTime::parse_from_str(s, f) {
            return Ok(t.with_timezone(&Utc));
        }
    }
    for f in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Ok(t.and_utc());
        }
    }
    Err(format!(
        "{s:?} is not a time; write it as RFC 3339 (2026-11-27T16:50:00Z) or \"2026-11-27 16:50:00+00\""
    ))
}

pub async fn run(ctx: &Context, args: Args) -> anyhow::Result<()> {
    let config = ctx.config()?;
    let (archive, cluster) = ctx.open_existing_archive(&config).await?;
    if cluster.engine == Engine::Mysql {
        return run_mysql(args, archive).await;
    }
    if args.to_gtid.is_some() {
        return Err(CodedError::new(exit::USAGE, format!("--to-gtid is for MySQL/MariaDB archives and {} is PostgreSQL's; use --to-lsn, --to-xid or --to-time", archive.url())).into());
    }
    let target = match (args.to_time, args.to_lsn, args.to_xid) {
        (Some(t), _, _) => RecoveryTarget::Time(t),
        (_, Some(l), _) => RecoveryTarget::Lsn(l),
        (_, _, Some(x)) => RecoveryTarget::Xid(x),
        _ => RecoveryTarget::Latest,
    };
    let data_dir = absolute(&args.data_dir)?;
    let opts = RestoreOptions {
        data_dir: data_dir.clone(),
        target,
        timeline: args.timeline.map(TimelineId),
        pause: args.pause,
        backup: args.backup,
        force: args.force,
        // With --partial: WAL archived only as parts of the in-progress
        // segment is as durable as a complete segment and belongs in a PITR.
        restore_command: self_restore_command(ctx, true)?,
        parallelism: args.parallel.into(),
    };
    if args.start {
        // The server binaries must fit the backup's major; refused before
        // anything is written, not by postgres after the extraction.
        let chosen = plan(&archive, &opts).await?;
        if let Some(major) = backup_major(&chosen.backup) {
            check_binary_major(&chosen.backup.id, major, args.pg_bin_dir.as_deref())?;
        }
    }
    let prepared = prepare(&archive, &opts).await?;
    let backup = &prepared.plan.backup;
    let major = backup_major(backup);
    let taken_on = major.map_or(String::new(), |m| format!(" (PostgreSQL {m})"));
    if !args.start {
        if args.json {
            println!(
                "{}",
                serde_json::json!({
                    "data_dir": data_dir,
                    "backup": backup.id,
                    "backup_major": major,
                    "target": target.to_string(),
                    "started": false,
                })
            );
        } else {
            println!(
                "data directory {} restored from backup {}{taken_on}; `postgres -D {}` recovers to {} and then {}",
                data_dir.display(),
                backup.id,
                data_dir.display(),
                target,
                if args.pause { "pauses" } else { "promotes" }
            );
        }
        return Ok(());
    }

    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_signal.cancel();
        }
    });
    let start = StartOptions {
        port: args.port,
        keep_running: args.keep_running,
        db_user: args.db_user.unwrap_or_else(|| "postgres".into()),
        os_user: args.os_user.unwrap_or_else(|| "postgres".into()),
        bin_dir: args.pg_bin_dir,
        timeout: args.start_timeout,
    };
    let outcome = recover(&data_dir, &start, &cancel)
        .await
        .with_context(|| format!("recovering {} to {target}", data_dir.display()))?;
    let end = match outcome.end {
        RecoveryEnd::Promoted => "promoted",
        RecoveryEnd::Paused => "paused",
    };
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "data_dir": data_dir,
                "backup": backup.id,
                "backup_major": major,
                "target": target.to_string(),
                "started": true,
                "end": end,
                "replay_lsn": outcome.replay_lsn.to_string(),
                "last_commit": outcome.last_commit.map(|t| t.to_rfc3339()),
                "port": outcome.port,
                "socket_dir": outcome.socket_dir,
                "pid": outcome.pid,
                "log": outcome.log,
            })
        );
    } else {
        let commit = outcome
            .last_commit
            .map(|t| t.to_rfc3339())
            .unwrap_or_else(|| "none replayed".into());
        let running = match outcome.pid {
            Some(pid) => format!("still running (pid {pid}, port {})", outcome.port),
            None => "stopped".into(),
        };
        println!(
            "recovered {} from backup {}{taken_on} to {target}: {end} at LSN {}, last commit {commit}; server {running}",
            data_dir.display(),
            backup.id,
            outcome.replay_lsn,
        );
    }
    Ok(())
}

/// MariaDB: restore the backup, then replay the binlog through an
/// in-process relay up to the target. The replay runs the server, so it
/// always starts (as if --start); it stops at the target unless
/// --keep-running.
async fn run_mysql(args: Args, archive: crate::archive::Archive) -> anyhow::Result<()> {
    let postgres_only = [
        (args.to_lsn.is_some(), "--to-lsn"),
        (args.to_xid.is_some(), "--to-xid"),
        (args.timeline.is_some(), "--timeline"),
        (args.pause, "--pause"),
        (args.pg_bin_dir.is_some(), "--pg-bin-dir"),
    ];
    if let Some((_, flag)) = postgres_only.iter().find(|(set, _)| *set) {
        return Err(CodedError::new(exit::USAGE, format!("{flag} is for PostgreSQL archives and {} is MySQL/MariaDB's; use --to-gtid, --to-time or --latest", archive.url())).into());
    }
    let target = match (args.to_time, &args.to_gtid) {
        (Some(t), _) => MysqlTarget::Time(t),
        (_, Some(g)) => MysqlTarget::Gtid(
            g.parse()
                .map_err(|e| CodedError::new(exit::USAGE, format!("--to-gtid {g:?}: {e}")))?,
        ),
        _ => MysqlTarget::Latest,
    };
    let data_dir = absolute(&args.data_dir)?;
    let mut server = ServerOptions::new(mysql::REPLAY_SERVER_ID);
    server.port = args.port;
    if let Some(user) = args.os_user {
        server.os_user = user;
    }
    if let Some(user) = args.db_user {
        server.db_user = user;
    }
    server.db_password = std::env::var("INSTAREC_DB_PASSWORD").ok();
    let opts = MysqlRestoreOptions {
        data_dir: data_dir.clone(),
        target: target.clone(),
        backup: args.backup,
        force: args.force,
        parallelism: args.parallel.into(),
        server,
        keep_running: args.keep_running,
    };
    let cancel = super::signals::shutdown_on_signal("the restore");
    let outcome = mysql::restore(&archive, &opts, &cancel)
        .await
        .with_context(|| format!("restoring {} to {target}", data_dir.display()))?;
    let last_commit = outcome.last_commit.map(|t| t.to_rfc3339());
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "data_dir": data_dir,
                "backup": outcome.plan.backup.id,
                "target": target.to_string(),
                "started": true,
                "end": "stopped at target",
                "backup_gtid": outcome.plan.backup_gtid.to_string(),
                "gtid_slave_pos": outcome.gtid_slave_pos,
                "gtid_current_pos": outcome.gtid_current_pos,
                "last_commit": last_commit,
                "port": outcome.port,
                "socket": outcome.socket,
                "pid": outcome.pid,
                "log": outcome.log,
                "xbstream_bytes": outcome.bytes,
                "unpack_seconds": outcome.unpack_time.as_secs_f64(),
                "prepare_seconds": outcome.prepare_time.as_secs_f64(),
                "replay_seconds": outcome.replay_time.as_secs_f64(),
            })
        );
    } else {
        let running = match outcome.pid {
            Some(pid) => format!(
                "still running (pid {pid}, port {}, socket {})",
                outcome.port,
                outcome.socket.display()
            ),
            None => "stopped".into(),
        };
        println!(
            "restored {} from backup {} (GTID {}) to {target}: gtid_slave_pos {}, last commit {}; replay took {:.1}s; server {running}",
            data_dir.display(),
            outcome.plan.backup.id,
            outcome.plan.backup_gtid,
            outcome.gtid_slave_pos,
            last_commit.as_deref().unwrap_or("none replayed"),
            outcome.replay_time.as_secs_f64(),
        );
    }
    Ok(())
}

/// The major a backup was taken on, from the server_version it recorded
/// (None for records written before instarec kept it).
fn backup_major(backup: &crate::backup::BackupRecord) -> Option<u32> {
    backup
        .server_version
        .as_deref()
        .and_then(ServerVersionNum::from_server_version)
        .map(ServerVersionNum::major)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_with_and_without_offsets() {
        let want = DateTime::parse_from_rfc3339("2026-11-27T14:50:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(parse_time("2026-11-27T14:50:00Z").unwrap(), want);
        assert_eq!(parse_time("2026-11-27 16:50:00+02").unwrap(), want);
        assert_eq!(parse_time("2026-11-27 14:50:00").unwrap(), want);
        assert!(parse_time("yesterday").is_err());
    }
}
