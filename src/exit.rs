//! Documented exit codes (README, "Exit codes"), and the mapping from
//! errors to them. Scripts and PostgreSQL's restore_command depend on these.

use std::error::Error;

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

/// An error that knows its documented exit code. Each error type says it
/// where it is defined; a wrapper (`#[error(transparent)]` hides what it
/// wraps from the cause chain) asks what it wraps.
pub trait ExitCode {
    /// None: this error does not decide; the next cause in the chain may.
    fn exit_code(&self) -> Option<u8>;
}

/// Picks the exit code for an error by walking its cause chain.
pub fn code_for(err: &anyhow::Error) -> u8 {
    err.chain().find_map(classify).unwrap_or(ERROR)
}

/// The code one cause decides: the engine-neutral errors here, the
/// engines' own behind their one dispatch point.
fn classify(cause: &(dyn Error + 'static)) -> Option<u8> {
    if let Some(c) = cause.downcast_ref::<CodedError>() {
        return Some(c.code);
    }
    if let Some(e) = cause.downcast_ref::<crate::config::ConfigError>() {
        return e.exit_code();
    }
    if let Some(e) = cause.downcast_ref::<crate::archive::ArchiveError>() {
        return e.exit_code();
    }
    if let Some(e) = cause.downcast_ref::<crate::restore::RestoreError>() {
        return e.exit_code();
    }
    crate::engines::exit_code(cause)
}
