//! The exit codes of PostgreSQL's own errors, asked by `exit::code_for`
//! through `engines::exit_code`.

use super::wal_transfer::TransferError;
use crate::backup::take::BackupError;
use crate::exit::{ExitCode, CLUSTER_MISMATCH, USAGE};
use crate::restore::server::ServerError;
use instarec_postgres::version::UnsupportedVersion;
use instarec_postgres::PgError;
use std::error::Error;

pub fn exit_code(cause: &(dyn Error + 'static)) -> Option<u8> {
    if let Some(e) = cause.downcast_ref::<PgError>() {
        return e.exit_code();
    }
    if cause.downcast_ref::<UnsupportedVersion>().is_some() {
        return Some(USAGE);
    }
    if let Some(e) = cause.downcast_ref::<TransferError>() {
        return e.exit_code();
    }
    if let Some(e) = cause.downcast_ref::<ServerError>() {
        return e.exit_code();
    }
    cause.downcast_ref::<BackupError>()?.exit_code()
}

impl ExitCode for ServerError {
    /// Binaries of another major than the backup's are refused before
    /// anything is extracted.
    fn exit_code(&self) -> Option<u8> {
        matches!(self, ServerError::WrongMajor { .. }).then_some(USAGE)
    }
}

impl ExitCode for PgError {
    /// A major instarec does not support is refused at connect, before
    /// anything was written.
    fn exit_code(&self) -> Option<u8> {
        matches!(self, PgError::UnsupportedVersion(_)).then_some(USAGE)
    }
}

impl ExitCode for TransferError {
    fn exit_code(&self) -> Option<u8> {
        match self {
            TransferError::Archive(a) => a.exit_code(),
            TransferError::OtherCluster { .. } => Some(CLUSTER_MISMATCH),
            _ => None,
        }
    }
}

impl ExitCode for BackupError {
    fn exit_code(&self) -> Option<u8> {
        match self {
            BackupError::Pg(e) => e.exit_code(),
            BackupError::Archive(a) => a.exit_code(),
            _ => None,
        }
    }
}
