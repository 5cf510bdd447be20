//! `instarec backup`: take a base backup of [primary] into the archive.
//! `instarec backup list`: the committed backups, oldest first.

use super::Context;
use crate::backup::mysql_take::{
    take_mysql_backup, MysqlBackupError, MysqlBackupOutcome, MysqlTakeOptions,
};
use crate::backup::progress::BackupProgress;
use crate::backup::take::{take_backup, BackupError, BackupOutcome, TakeOptions};
use crate::backup::BackupRecord;
use crate::config::ConfigError;
use crate::config::{Config, PrimarySection};
use crate::engine::Engine;
use crate::engines::mysql::MysqlSourceOptions;
use clap::{Subcommand, ValueEnum};
use instarec_postgres::CheckpointMode;
use std::io::IsTerminal as _;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<BackupCommand>,
    #[command(flatten)]
    pub take: TakeArgs,
}

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// List committed backups, oldest first
    List(ListArgs),
}

#[derive(Debug, clap::Args)]
pub struct TakeArgs {
    /// Label stored in backup_label [default: "instarec <id>"]
    #[arg(long)]
    pub label: Option<String>,
    /// Start with an immediate checkpoint (fast) or a spread one (less I/O); PostgreSQL only
    #[arg(long, value_enum, default_value_t = Checkpoint::Fast)]
    pub checkpoint: Checkpoint,
    /// How long to wait for `instarec ship` to archive the WAL (or binlog) up to the backup's end
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    pub wal_timeout: Duration,
    /// Chunk uploads in flight at once (memory ≈ (this + 1) × 16 MiB)
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallel: u16,
    /// Print the backup record as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Checkpoint {
    Fast,
    Spread,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Print a JSON array of backup records
    #[arg(long)]
    pub json: bool,
}

pub async fn run(ctx: &Context, args: Args) -> anyhow::Result<()> {
    match args.command {
        Some(BackupCommand::List(list)) => run_list(ctx, list).await,
        None => run_take(ctx, args.take).await,
    }
}

async fn run_take(ctx: &Context, args: TakeArgs) -> anyhow::Result<()> {
    let config = ctx.config()?;
    let primary = config.primary.as_ref().ok_or(ConfigError::MissingSection {
        section: "primary",
        origin: "the configuration".into(),
    })?;
    if primary.engine == Engine::Mysql {
        return run_take_mysql(ctx, &config, primary, args).await;
    }
    let archive = ctx.open_archive(&config)?;
    let mut opts = TakeOptions::new(primary.postgres_conn()?);
    opts.label = args.label;
    opts.checkpoint = match args.checkpoint {
        Checkpoint::Fast => CheckpointMode::Fast,
        Checkpoint::Spread => CheckpointMode::Spread,
    };
    opts.wal_timeout = args.wal_timeout;
    opts.upload_parallelism = args.parallel.into();

    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_signal.cancel();
        }
    });
    let mut progress = BackupProgress::new(std::io::stderr().is_terminal());
    let result = take_backup(&opts, &archive, &mut progress, &cancel).await;
    progress.finish();
    let outcome = result.map_err(|e| match e {
        // Unwrapped so the exit code reflects it (cluster mismatch, fenced…).
        BackupError::Archive(a) => anyhow::Error::from(a),
        other => anyhow::Error::from(other),
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcome.record)?);
    } else {
        println!("{}", summary(&outcome));
    }
    Ok(())
}

/// mariabackup/xtrabackup into the archive; same flags, same output.
async fn run_take_mysql(
    ctx: &Context,
    config: &Config,
    primary: &PrimarySection,
    args: TakeArgs,
) -> anyhow::Result<()> {
    let archive = ctx.open_archive(config)?;
    let source = MysqlSourceOptions::from_primary(primary)?;
    let mut opts = MysqlTakeOptions::new(source.url, source.cluster_id);
    opts.label = args.label;
    opts.binlog_timeout = args.wal_timeout;
    opts.upload_parallelism = args.parallel.into();

    // SIGINT or SIGTERM: the tool is killed and no record is written.
    let cancel = super::signals::shutdown_on_signal("backup");
    let mut progress = BackupProgress::new(std::io::stderr().is_terminal());
    let result = take_mysql_backup(&opts, &archive, &mut progress, &cancel).await;
    progress.finish();
    let outcome = result.map_err(|e| match e {
        // Unwrapped so the exit code reflects it (cluster mismatch, fenced…).
        MysqlBackupError::Archive(a) => anyhow::Error::from(a),
        other => anyhow::Error::from(other),
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcome.record)?);
    } else {
        println!("{}", mysql_summary(&outcome));
    }
    Ok(())
}

fn mysql_summary(o: &MysqlBackupOutcome) -> String {
    let r = &o.record;
    let m = &o.manifest;
    let secs = o.duration.as_secs_f64().max(0.001);
    format!(
        "backup {}: GTID {} (binlog {}:{}), {} in {} chunks (stored {}), {:.1} s, {:.1} MB/s",
        r.id,
        r.stop_position,
        m.binlog_file,
        m.binlog_pos,
        bytesize::ByteSize(r.size_bytes),
        m.chunks,
        bytesize::ByteSize(o.stored_bytes),
        secs,
        r.size_bytes as f64 / secs / 1e6
    )
}

fn summary(o: &BackupOutcome) -> String {
    let r = &o.record;
    let secs = o.duration.as_secs_f64().max(0.001);
    format!(
        "backup {}: {} → {} on timeline {}, {} in {} files (stored {}), {:.1} s, {:.1} MB/s",
        r.id,
        r.start_position,
        r.stop_position,
        r.timeline,
        bytesize::ByteSize(r.size_bytes),
        o.files,
        bytesize::ByteSize(o.stored_bytes),
        secs,
        r.size_bytes as f64 / secs / 1e6
    )
}

/// MySQL has no timelines: its GTID position says it all.
fn timeline_column(b: &BackupRecord) -> String {
    if b.engine == Engine::Mysql {
        "-".to_string()
    } else {
        b.timeline.to_string()
    }
}

async fn run_list(ctx: &Context, args: ListArgs) -> anyhow::Result<()> {
    let config = ctx.config()?;
    let (archive, _) = ctx.open_existing_archive(&config).await?;
    let backups = BackupRecord::list(&archive).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&backups)?);
        return Ok(());
    }
    if backups.is_empty() {
        println!("no backups in {}", archive.url());
        return Ok(());
    }
    println!(
        "{:<16}  {:<19}  {:>12}  {:>12}  {:>3}  {:>10}",
        "ID", "STARTED", "START", "STOP", "TL", "SIZE"
    );
    for b in &backups {
        println!(
            "{:<16}  {:<19}  {:>12}  {:>12}  {:>3}  {:>10}",
            b.id,
            b.start_time.format("%Y-%m-%d %H:%M:%S"),
            b.start_position,
            b.stop_position,
            timeline_column(b),
            bytesize::ByteSize(b.size_bytes).to_string()
        );
    }
    Ok(())
}
