//! Documented exit codes (README, "Exit codes"), and the mapping from
//! errors to them. Scripts and PostgreSQL's restore_command depend on these.

use crate::archive::ArchiveError;
use crate::backup::take::BackupError;
use crate::config::ConfigError;
use crate::engines::postgres::wal_transfer::TransferError;
use crate::restore::mysql::MysqlRestoreError;
use crate::restore::server::ServerError;
use crate::restore::RestoreError;
use instarec_postgres::version::UnsupportedVersion;
use instarec_postgres::PgError;

pub const OK: u8 = 0;
/// Any error not listed below.
pub const ERROR: u8 = 1;
/// Bad command line or invalid configuration; nothing was changed.
pub const USAGE: u8 = 2;
/// The archive holds a corrupt, truncated or conflicting object.
pub const ARCHIVE_FAULT: u8 = 3;
/// A newer fencing epoch exists: this writer was fenced by a promote.
pub const FENCED: u8 = 4;
/// The archive belongs to another cluster, or to a newer instarec format.
pub const CLUSTER_MISMATCH: u8 = 5;
/// `status --max-lag[-bytes]`: the archive lags the primary by more than
/// the threshold, or the lag cannot be measured.
pub const LAG_OVER_THRESHOLD: u8 = 6;
/// wal-fetch: the requested file is not in the archive (PostgreSQL's "absent").
pub const WAL_FETCH_ABSENT: u8 = 1;
/// wal-fetch: any other failure. Above 125, so PostgreSQL stops recovery
/// instead of treating the file as absent and ending recovery early.
pub const WAL_FETCH_FATAL: u8 = 126;

/// An error that already carries its exit code (e.g. `archive verify` found faults).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CodedError {
    pub code: u8,
    pub message: String,
}

impl CodedError {
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        CodedError {
            code,
            message: message.into(),
        }
    }
}

/// Picks the exit code for an error by walking its cause chain.
pub fn code_for(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if let Some(c) = cause.downcast_ref::<CodedError>() {
            return c.code;
        }
        if cause.downcast_ref::<ConfigError>().is_some() {
            return USAGE;
        }
        if let Some(a) = cause.downcast_ref::<ArchiveError>() {
            return archive_code(a);
        }
        if let Some(r) = cause.downcast_ref::<RestoreError>() {
            if restore_refused(r) {
                return USAGE;
            }
        }
        if let Some(MysqlRestoreError::BadGtid { .. }) = cause.downcast_ref::<MysqlRestoreError>() {
            return USAGE;
        }
        if is_unsupported_server(cause) {
            return USAGE;
        }
        if let Some(ServerError::WrongMajor { .. }) = cause.downcast_ref::<ServerError>() {
            return USAGE;
        }
        match cause.downcast_ref::<TransferError>() {
            Some(TransferError::Archive(a)) => return archive_code(a),
            Some(TransferError::OtherCluster { .. }) => return CLUSTER_MISMATCH,
            _ => {}
        }
    }
    ERROR
}

/// A PostgreSQL major instarec does not support: refused at connect, before
/// anything was written. BackupError::Pg is transparent, so it hides the
/// PgError from the cause chain and is looked into here.
fn is_unsupported_server(cause: &(dyn std::error::Error + 'static)) -> bool {
    let pg =
        cause
            .downcast_ref::<PgError>()
            .or_else(|| match cause.downcast_ref::<BackupError>() {
                Some(BackupError::Pg(e)) => Some(&**e),
                _ => None,
            });
    matches!(pg, Some(PgError::UnsupportedVersion(_)))
        || cause.downcast_ref::<UnsupportedVersion>().is_some()
}

/// A restore refused before it changed anything because of what it was
/// asked: a target no backup or archived log reaches, an unknown backup, a
/// data directory that is not empty.
fn restore_refused(err: &RestoreError) -> bool {
    matches!(
        err,
        RestoreError::BeforeOldestBackup { .. }
            | RestoreError::AfterArchiveEnd { .. }
            | RestoreError::UnknownBackup { .. }
            | RestoreError::NotEmpty { .. }
    )
}

fn archive_code(err: &ArchiveError) -> u8 {
    match err {
        ArchiveError::Fenced { .. } => FENCED,
        ArchiveError::ClusterMismatch { .. } | ArchiveError::NewerFormat { .. } => CLUSTER_MISMATCH,
        ArchiveError::Conflict { .. }
        | ArchiveError::Corrupt { .. }
        | ArchiveError::Truncated { .. } => ARCHIVE_FAULT,
        ArchiveError::BadUrl { .. }
        | ArchiveError::Missing { .. }
        | ArchiveError::NoClusterRecord { .. } => USAGE,
        _ => ERROR,
    }
}
