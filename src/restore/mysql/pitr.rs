//! `restore` for MySQL/MariaDB: the newest backup before the target,
//! prepared into the data directory, started with gtid_strict_mode on, then
//! fed by an in-process relay that stops at the target. The server's own
//! SQL thread applies the binlog (a replica connecting by GTID), so strict
//! mode holds where piping mariadb-binlog into a client does not.

use super::data_dir::{self, Restored};
use super::error::MysqlRestoreError;
use super::mariadbd::{Mariadbd, ServerOptions};
use super::plan::{plan, MysqlRestorePlan, MysqlTarget};
use super::replication::{self, Source};
use super::session::Session;
use crate::archive::Archive;
use crate::relay::{RelayOptions, RelayServer};
use chrono::{DateTime, Utc};
use instarec_mysql::relay::Credentials;
use rand::distr::{Alphanumeric, SampleString as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The restored server's server_id during the replay: not a primary's
/// (a replica skips events carrying its own id).
pub const REPLAY_SERVER_ID: u32 = 4_294_967_290;

#[derive(Debug, Clone)]
pub struct MysqlRestoreOptions {
    pub data_dir: PathBuf,
    pub target: MysqlTarget,
    /// None: the newest backup before the target.
    pub backup: Option<String>,
    pub force: bool,
    pub parallelism: usize,
    pub server: ServerOptions,
    /// Leave mariadbd running at the target.
    pub keep_running: bool,
}

#[derive(Debug, Clone)]
pub struct MysqlRestoreOutcome {
    pub plan: MysqlRestorePlan,
    pub bytes: u64,
    /// @@gtid_slave_pos and @@gtid_current_pos once detached.
    pub gtid_slave_pos: String,
    pub gtid_current_pos: String,
    /// The time of the last replayed transaction's last event.
    pub last_commit: Option<DateTime<Utc>>,
    pub port: u16,
    pub socket: PathBuf,
    pub log: PathBuf,
    /// Some while it still runs (--keep-running).
    pub pid: Option<u32>,
    pub unpack_time: Duration,
    pub prepare_time: Duration,
    pub replay_time: Duration,
}

/// Plans (refusing a target outside the archive before anything is
/// written), restores, replays to the target, detaches.
pub async fn restore(
    archive: &Archive,
    opts: &MysqlRestoreOptions,
    cancel: &CancellationToken,
) -> Result<MysqlRestoreOutcome, MysqlRestoreError> {
    let plan = plan(archive, &opts.target, opts.backup.as_deref()).await?;
    tracing::info!(
        backup = %plan.backup.id,
        from = %plan.backup_gtid,
        to = %plan.reach.position,
        target = %plan.target,
        "restore planned"
    );
    let owner = data_dir::owner(&opts.server.os_user)?;
    data_dir::check_empty(&opts.data_dir, opts.force).await?;
    let restored: Restored = data_dir::restore(
        archive,
        &plan.backup,
        &opts.data_dir,
        opts.parallelism,
        owner,
    )
    .await?;

    let began = Instant::now();
    let server_opts = ServerOptions {
        replay_tuning: true,
        ..opts.server.clone()
    };
    let server = Mariadbd::start(&opts.data_dir, &server_opts).await?;
    let replayed = replay(
        archive,
        &plan,
        &opts.data_dir,
        &server,
        &server_opts,
        cancel,
    )
    .await;
    let (gtid_slave_pos, gtid_current_pos) = match replayed {
        Ok(p) => p,
        Err(e) => {
            let _ = server.stop().await;
            return Err(e);
        }
    };
    let replay_time = began.elapsed();
    let (port, socket, log) = (server.port, server.socket.clone(), server.log.clone());
    let pid = if opts.keep_running {
        Some(server.detach())
    } else {
        server.stop().await?;
        None
    };
    Ok(MysqlRestoreOutcome {
        last_commit: plan.reach.last_event,
        plan,
        bytes: restored.bytes,
        gtid_slave_pos,
        gtid_current_pos,
        port,
        socket,
        log,
        pid,
        unpack_time: restored.unpack_time,
        prepare_time: restored.prepare_time,
        replay_time,
    })
}

/// Runs the relay on a loopback port with a one-off account, replicates
/// from it up to the plan's reach, and detaches.
async fn replay(
    archive: &Archive,
    plan: &MysqlRestorePlan,
    data_dir: &Path,
    server: &Mariadbd,
    server_opts: &ServerOptions,
    cancel: &CancellationToken,
) -> Result<(String, String), MysqlRestoreError> {
    let credentials = Credentials {
        user: "instarec_restore".into(),
        password: Alphanumeric.sample_string(&mut rand::rng(), 24),
    };
    let mut options = RelayOptions::new(([127, 0, 0, 1], 0).into(), credentials.clone());
    options.poll_interval = Duration::from_millis(100);
    options.max_replicas = 2;
    options.until = Some(plan.until.clone());
    let relay = RelayServer::bind(options, archive.clone()).await?;
    let port = relay
        .local_addr()
        .map_err(|source| MysqlRestoreError::Io {
            what: "read the address of",
            path: "the in-process relay".into(),
            source,
        })?
        .port();
    let relay_stop = cancel.child_token();
    let relay_task = tokio::spawn(relay.serve(relay_stop.clone()));
    let source = Source {
        host: "127.0.0.1".into(),
        port,
        user: credentials.user,
        password: credentials.password,
    };
    let result = async {
        let mut session = Session::connect(&server.socket, &server.log, server_opts).await?;
        replication::start(&mut session, &plan.backup_gtid, &source).await?;
        replication::wait_applied(
            &mut session,
            &plan.reach.position,
            &data_dir.display().to_string(),
            &server.log.display().to_string(),
            cancel,
        )
        .await?;
        replication::detach(&mut session).await?;
        let positions = replication::positions(&mut session).await?;
        session.close().await;
        Ok(positions)
    }
    .await;
    relay_stop.cancel();
    let _ = relay_task.await;
    result
}
