//! `instarec standby init`: turn a backup into a data directory that a stock
//! `postgres -D` runs as a hot standby fed from the archive.

use super::Context;
use crate::archive::Archive;
use crate::config::Config;
use crate::engine::Engine;
use crate::restore::mysql::{self, MysqlStandbyOptions, ServerOptions, Source};
use crate::restore::restore_command;
use crate::restore::standby::{init_standby, StandbyOptions};
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
    /// MariaDB: start mariadbd on --data-dir (left running) and make it
    /// replicate from [relay]; without it, the command prints how
    #[arg(long)]
    pub start: bool,
    /// MariaDB: the standby's port [default: a free one]
    #[arg(long)]
    pub port: Option<u16>,
    /// MariaDB: the standby's server_id; must differ from the primary's
    #[arg(long, default_value_t = 4_294_967_000)]
    pub server_id: u32,
    /// MariaDB as root: the OS user that owns the data directory and runs mariadbd
    #[arg(long, default_value = "mysql")]
    pub os_user: String,
    /// MariaDB with --start: the account to configure replication as, over
    /// the socket (password from INSTAREC_DB_PASSWORD, if it needs one)
    #[arg(long, default_value = "root")]
    pub db_user: String,
    /// MariaDB: the relay's host as the standby reaches it [default: the
    /// [relay] listen address, 127.0.0.1 when that is a wildcard]
    #[arg(long, value_name = "HOST")]
    pub relay_host: Option<String>,
}

pub async fn run(ctx: &Context, cmd: StandbyCommand) -> anyhow::Result<()> {
    match cmd {
        StandbyCommand::Init(args) => run_init(ctx, args).await,
    }
}

async fn run_init(ctx: &Context, args: InitArgs) -> anyhow::Result<()> {
    let config = ctx.config()?;
    let archive = ctx.open_archive(&config)?;
    if let Some(record) = archive.read_cluster().await? {
        if record.engine == Engine::Mysql {
            let archive = archive.bind_cluster(record.tag());
            return run_init_mysql(&config, archive, args).await;
        }
    }
    let data_dir = absolute(&args.data_dir)?;
    let opts = StandbyOptions {
        data_dir: data_dir.clone(),
        backup: args.backup,
        force: args.force,
        restore_command: self_restore_command(ctx, true)?,
        parallelism: args.parallel.into(),
    };
    let init = init_standby(&archive, &opts).await?;
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

/// MariaDB: what `standby init` does itself is restore and prepare the
/// backup (the slow, archive-reading part). Starting the server and
/// pointing it at the relay is printed, or done with --start, because how
/// the standby's mariadbd runs (config, service manager) is the operator's.
async fn run_init_mysql(config: &Config, archive: Archive, args: InitArgs) -> anyhow::Result<()> {
    let data_dir = absolute(&args.data_dir)?;
    // [relay] is needed to configure the replica; without it (and without
    // --start) the printed statements carry placeholders.
    let source = match &config.relay {
        Some(relay) => Source {
            host: args.relay_host.clone().unwrap_or_else(|| {
                if relay.listen.ip().is_unspecified() {
                    "127.0.0.1".into()
                } else {
                    relay.listen.ip().to_string()
                }
            }),
            port: relay.listen.port(),
            user: relay.user.clone(),
            password: relay.password.expose().to_string(),
        },
        None if args.start => anyhow::bail!(
            "no [relay] section; a MariaDB standby replicates from `instarec relay`: add listen, user and password"
        ),
        None => Source {
            host: args.relay_host.clone().unwrap_or_else(|| "<relay host>".into()),
            port: 3307,
            user: "<[relay] user>".into(),
            password: String::new(),
        },
    };
    let opts = MysqlStandbyOptions {
        data_dir: data_dir.clone(),
        backup: args.backup.clone(),
        force: args.force,
        parallelism: args.parallel.into(),
        os_user: args.os_user.clone(),
    };
    let init = mysql::standby::init(&archive, &opts).await?;
    let mut server = ServerOptions::new(args.server_id);
    server.port = args.port;
    server.os_user = args.os_user.clone();
    server.db_user = args.db_user.clone();
    server.db_password = std::env::var("INSTAREC_DB_PASSWORD").ok();
    // A standby may be promoted and shipped from: it keeps a binlog.
    server.log_bin = true;
    let started = if args.start {
        Some(mysql::standby::start(&data_dir, &init.backup_gtid, &server, &source).await?)
    } else {
        None
    };
    let port = started
        .as_ref()
        .map(|s| s.port)
        .or(args.port)
        .unwrap_or(3306);
    let mariadbd = mysql::tool::find(mysql::tool::Tool::Mariadbd)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "mariadbd".into());
    let command =
        mysql::mariadbd::command_line(std::path::Path::new(&mariadbd), &data_dir, port, &server);
    let sql = mysql::replication::setup_sql(&init.backup_gtid, &source, "'<[relay] password>'");
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "data_dir": data_dir,
                "backup": init.backup.id,
                "backup_gtid": init.backup_gtid.to_string(),
                "bytes": init.restored.bytes,
                "start_command": command,
                "replication_sql": sql,
                "started": started.is_some(),
                "pid": started.as_ref().map(|s| s.pid),
                "port": started.as_ref().map(|s| s.port),
                "socket": started.as_ref().map(|s| s.socket.clone()),
                "log": started.as_ref().map(|s| s.log.clone()),
            })
        );
    } else if let Some(s) = &started {
        println!(
            "standby data directory {} ready from backup {} (GTID {}); mariadbd runs (pid {}, port {}, socket {}) and replicates from the relay at {}:{}",
            data_dir.display(),
            init.backup.id,
            init.backup_gtid,
            s.pid,
            s.port,
            s.socket.display(),
            source.host,
            source.port
        );
    } else {
        println!(
            "standby data directory {} ready from backup {} (GTID {}, {}). Start it{}:\n  {}\nthen, as an admin of the restored server:\n  {}",
            data_dir.display(),
            init.backup.id,
            init.backup_gtid,
            bytesize::ByteSize(init.restored.bytes),
            if crate::os_user::running_as_root() { format!(" as {}", args.os_user) } else { String::new() },
            command.join(" "),
            sql
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
