//! What can stop a MySQL/MariaDB standby init or restore, named, with what
//! to do. The checks shared with PostgreSQL (no backup, a target outside
//! the archive, a non-empty data directory) are `RestoreError`'s.

use crate::archive::ArchiveError;
use crate::exit::ExitCode;
use crate::relay::RelayServeError;
use crate::restore::RestoreError;

#[derive(Debug, thiserror::Error)]
pub enum MysqlRestoreError {
    #[error(transparent)]
    Restore(#[from] RestoreError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error("the archive holds no binlog; run `instarec ship` for the primary before restoring")]
    NoBinlog,
    #[error("{what} {text:?} is not a MariaDB GTID position: {reason}; write it like @@gtid_slave_pos, e.g. 0-1-42 or 0-1-42,1-2-7")]
    BadGtid {
        what: String,
        text: String,
        reason: String,
    },
    #[error("backup {backup}: {reason}; restore from another backup with --backup")]
    BadBackup { backup: String, reason: String },
    #[error("{tool} is not installed here (tried {tried}); install the {package} package")]
    ToolMissing {
        tool: &'static str,
        tried: String,
        package: &'static str,
    },
    #[error("{what} failed ({status}); its last lines:\n{tail}\n{advice}")]
    ToolFailed {
        what: String,
        status: String,
        tail: String,
        advice: &'static str,
    },
    #[error("cannot {what} {path}: {source}; check free space and permissions")]
    Io {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("OS user {user} does not exist; create it or pass --os-user")]
    NoOsUser { user: String },
    #[error("mariadbd on {data_dir} {reason}; its log {log}:\n{tail}")]
    ServerStart {
        data_dir: String,
        reason: String,
        log: String,
        tail: String,
    },
    #[error("the restored server at {socket}: {query}: {source}; check the log {log}")]
    Sql {
        socket: String,
        query: String,
        log: String,
        #[source]
        source: Box<mysql_async::Error>,
    },
    #[error("replication from the archive stopped at {at} before reaching {target}: {reason}; the server log is {log}")]
    Replication {
        at: String,
        target: String,
        reason: String,
        log: String,
    },
    #[error("the in-process relay: {0}")]
    Relay(#[from] RelayServeError),
    #[error("cancelled; the data directory {data_dir} is partly restored: delete it (or restore again with --force)")]
    Cancelled { data_dir: String },
    #[error("an internal task failed: {0}; please report this")]
    Task(String),
}

impl ExitCode for MysqlRestoreError {
    fn exit_code(&self) -> Option<u8> {
        match self {
            MysqlRestoreError::BadGtid { .. } => Some(crate::exit::USAGE),
            MysqlRestoreError::Archive(a) => a.exit_code(),
            MysqlRestoreError::Restore(r) => r.exit_code(),
            _ => None,
        }
    }
}
