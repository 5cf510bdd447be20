//! The command line: global options, the command tree, and dispatch.
//! Each command lives in its own file and only resolves config, calls the
//! library and prints.

mod archive_init;
mod archive_ls;
mod archive_verify;
mod backup;
mod config_check;
mod context;
mod demo;
mod promote;
mod proxy;
mod relay;
mod restore;
mod ship;
mod signals;
mod standby;
mod status;
mod wal_fetch;
mod wal_push;

pub use context::Context;

use crate::logging::LogFormat;
use clap::{ArgAction, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "instarec",
    version,
    about = "Keeps PostgreSQL and MySQL/MariaDB recoverable in seconds",
    long_about = None
)]
pub struct Cli {
    /// Config file [default: ./instarec.toml]
    #[arg(long, global = true, env = "INSTAREC_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Overrides [archive] url
    #[arg(long, global = true, value_name = "URL")]
    pub archive_url: Option<String>,
    /// Overrides [primary] url
    #[arg(long, global = true, value_name = "URL")]
    pub primary_url: Option<String>,
    /// Log format on stderr
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// More logging (-v debug, -vv trace)
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,
    /// Less logging (-q warnings only, -qq errors only)
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub quiet: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage the archive: init, ls, verify
    #[command(subcommand)]
    Archive(ArchiveCommand),
    /// Take a base backup of [primary] into the archive; `backup list` shows them
    Backup(backup::Args),
    /// Inspect the configuration
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Watch ship, backup, standby, crash, promote and the RPO report on this machine
    Demo(demo::Args),
    /// Forward client connections to the current primary, following promotes (long-running)
    Proxy(proxy::Args),
    /// Promote [standby]: fence [primary], drain, promote, cut over, report RPO/RTO
    Promote(promote::Args),
    /// Serve the archive's binlog to MySQL 8 / MariaDB replicas as their primary (long-running)
    Relay(relay::Args),
    /// Point-in-time restore of a backup plus archived WAL or binlog into a new data directory
    Restore(restore::Args),
    /// Stream the primary's log into the archive (long-running)
    Ship(ship::Args),
    /// The archive's view of the cluster: owner, epoch, log end, lag, backups
    Status(status::Args),
    /// Hot standbys fed from the archive: init
    #[command(subcommand)]
    Standby(standby::StandbyCommand),
    /// archive_command: archive one WAL, .history, .backup or .partial file
    WalPush(wal_push::Args),
    /// restore_command: fetch one file from the archive (exit 1 = absent)
    WalFetch(wal_fetch::Args),
}

#[derive(Debug, Subcommand)]
pub enum ArchiveCommand {
    /// Write the cluster record that binds this archive to one database cluster
    Init(archive_init::Args),
    /// List archive objects under a prefix, in key order
    Ls(archive_ls::Args),
    /// Check every object's header, checksum and cluster identity
    Verify(archive_verify::Args),
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the config and print what it resolved to, secrets masked
    Check(config_check::Args),
}

impl Cli {
    pub fn verbosity(&self) -> i8 {
        self.verbose as i8 - self.quiet as i8
    }
}

/// Runs the parsed command; the binary maps the error to an exit code.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let ctx = Context::new(&cli);
    match cli.command {
        Command::Archive(ArchiveCommand::Init(args)) => archive_init::run(&ctx, args).await,
        Command::Archive(ArchiveCommand::Ls(args)) => archive_ls::run(&ctx, args).await,
        Command::Archive(ArchiveCommand::Verify(args)) => archive_verify::run(&ctx, args).await,
        Command::Backup(args) => backup::run(&ctx, args).await,
        Command::Config(ConfigCommand::Check(args)) => config_check::run(&ctx, args).await,
        Command::Demo(args) => demo::run(&ctx, args).await,
        Command::Proxy(args) => proxy::run(&ctx, args).await,
        Command::Promote(args) => promote::run(&ctx, args).await,
        Command::Relay(args) => relay::run(&ctx, args).await,
        Command::Restore(args) => restore::run(&ctx, args).await,
        Command::Ship(args) => ship::run(&ctx, args).await,
        Command::Status(args) => status::run(&ctx, args).await,
        Command::Standby(cmd) => standby::run(&ctx, cmd).await,
        Command::WalPush(args) => wal_push::run(&ctx, args).await,
        Command::WalFetch(args) => wal_fetch::run(&ctx, args).await,
    }
}
