//! `instarec standby init`: turn a backup into a data directory that a stock
//! `postgres -D` runs as a hot standby fed from the archive.

use super::Context;
use crate::restore::standby::{init_standby, StandbyOptions};
use crate::restore::{restore_command, RestoreError};
use anyhow::Context as _;
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Subcommand)]
pub enum StandbyCommand {
    /// Restore the newest backup (or --backup) into --data-dir as a hot standby
    Init(InitArgs),
}

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Data directory to create (must be empty or missing, unless --force)
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// Backup id to restore [default: the newest]
    #[arg(long, value_name = "ID")]
    pub backup: Option<String>,
    /// Delete everything in --data-dir first
    #[arg(long)]
    pub force: bool,
    /// Chunk downloads in flight at once (memory ≈ this × 16 MiB)
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallel: u16,
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}

pub async fn run(ctx: &Context, cmd: StandbyCommand) -> anyhow::Result<()> {
    match cmd {
        StandbyCommand::Init(args) => run_init(ctx, args).await,
    }
}

async fn run_init(ctx: &Context, args: InitArgs) -> anyhow::Result<()> {
    let config = ctx.config()?;
    let archive = ctx.open_archive(&config)?;
    let data_dir = absolute(&args.data_dir)?;
    let opts = StandbyOptions {
        data_dir: data_dir.clone(),
        backup: args.backup,
        force: args.force,
        restore_command: self_restore_command(ctx, true)?,
        parallelism: args.parallel.into(),
    };
    let init = init_standby(&archive, &opts)
        .await
        .map_err(RestoreError::into_anyhow)?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "data_dir": data_dir,
                "backup": init.backup.id,
                "backup_stop_position": init.backup.stop_position,
                "bytes": init.extracted.tar_bytes,
                "files_verified": init.extracted.verified.files,
                "restore_command": opts.restore_command,
            })
        );
    } else {
        println!(
            "standby data directory {} ready from backup {} ({}, {} files verified); start it with `postgres -D {}`",
            data_dir.display(),
            init.backup.id,
            bytesize::ByteSize(init.extracted.tar_bytes),
            init.extracted.verified.files,
            data_dir.display()
        );
    }
    Ok(())
}

/// The restore_command that runs this very binary with this very config:
/// absolute paths, since the server runs it from its data directory.
pub(super) fn self_restore_command(ctx: &Context, partial: bool) -> anyhow::Result<String> {
    let exe = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .context("finding the path of this instarec binary for restore_command")?;
    let config = match &ctx.sources.file {
        Some(file) => Some(absolute(file)?),
        None => {
            let default = Path::new(crate::config::DEFAULT_CONFIG_PATH);
            if default.exists() {
                Some(absolute(default)?)
            } else {
                tracing::warn!("no config file: restore_command relies on INSTAREC_* variables in the server's environment");
                None
            }
        }
    };
    let archive_url = ctx
        .sources
        .flags
        .iter()
        .find_map(|(k, v)| match (k.as_str(), v) {
            ("archive.url", toml::Value::String(url)) => Some(url.clone()),
            _ => None,
        });
    Ok(restore_command(
        &exe,
        config.as_deref(),
        archive_url.as_deref(),
        partial,
    ))
}

pub(super) fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("resolving {}", path.display()))
}
