//! `standby init` for MySQL/MariaDB: the newest backup (or a chosen one)
//! prepared into a data directory, plus what makes it a replica of
//! `instarec relay`: gtid_slave_pos at the backup's position and
//! CHANGE MASTER TO ... MASTER_USE_GTID=slave_pos. `start` runs that on a
//! mariadbd it starts and leaves running.

use super::data_dir::{self, Restored};
use super::error::MysqlRestoreError;
use super::mariadbd::{Mariadbd, ServerOptions};
use super::plan::backup_gtid;
use super::replication::{self, Source};
use super::session::Session;
use crate::archive::Archive;
use crate::backup::BackupRecord;
use crate::engine::Engine;
use crate::restore::{backup_source, RestoreError};
use instarec_mysql::MariadbGtidPos;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct MysqlStandbyOptions {
    pub data_dir: PathBuf,
    /// None: the newest backup.
    pub backup: Option<String>,
    pub force: bool,
    pub parallelism: usize,
    /// Owns the data directory when we are root.
    pub os_user: String,
}

#[derive(Debug, Clone)]
pub struct MysqlStandbyInit {
    pub backup: BackupRecord,
    /// The replica's gtid_slave_pos to start from.
    pub backup_gtid: MariadbGtidPos,
    pub restored: Restored,
}

/// The running standby `start` leaves behind.
#[derive(Debug, Clone)]
pub struct StartedStandby {
    pub pid: u32,
    pub port: u16,
    pub socket: PathBuf,
    pub log: PathBuf,
}

/// `archive` must be bound to its cluster.
pub async fn init(
    archive: &Archive,
    opts: &MysqlStandbyOptions,
) -> Result<MysqlStandbyInit, MysqlRestoreError> {
    let backup = backup_source::backups(archive, opts.backup.as_deref())
        .await?
        .into_iter()
        .rev()
        .find(|b| b.engine == Engine::Mysql)
        .ok_or(RestoreError::NoBackup)?;
    let gtid = backup_gtid(&backup)?;
    let owner = data_dir::owner(&opts.os_user)?;
    data_dir::check_empty(&opts.data_dir, opts.force).await?;
    let restored =
        data_dir::restore(archive, &backup, &opts.data_dir, opts.parallelism, owner).await?;
    Ok(MysqlStandbyInit {
        backup,
        backup_gtid: gtid,
        restored,
    })
}

/// Starts mariadbd on the initialized `data_dir` and makes it replicate
/// from `source`; it keeps running after we exit.
pub async fn start(
    data_dir: &Path,
    backup_gtid: &MariadbGtidPos,
    server_opts: &ServerOptions,
    source: &Source,
) -> Result<StartedStandby, MysqlRestoreError> {
    let server = Mariadbd::start(data_dir, server_opts).await?;
    let mut session = Session::connect(&server.socket, &server.log, server_opts).await?;
    replication::start(&mut session, backup_gtid, source).await?;
    session.close().await;
    let (port, socket, log) = (server.port, server.socket.clone(), server.log.clone());
    Ok(StartedStandby {
        pid: server.detach(),
        port,
        socket,
        log,
    })
}
