//! What can stop a standby init or a restore, named, with what to do.

use crate::archive::ArchiveError;
use crate::backup::restore::ExtractError;
use crate::exit::ExitCode;

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("the archive holds no backup; take one with `instarec backup` first")]
    NoBackup,
    #[error("backup {id} is not in the archive; list backups with `instarec archive ls backups/`")]
    UnknownBackup { id: String },
    #[error("backup {backup} has an unusable record: {reason}; restore from another backup with --backup")]
    BadRecord { backup: String, reason: String },
    #[error("the target {target} is before the oldest backup {oldest} (consistent at {oldest_end}); no backup can reach it: choose a later target")]
    BeforeOldestBackup {
        target: String,
        oldest: String,
        oldest_end: String,
    },
    #[error("the target {target} is after the end of the archived WAL ({end}); choose an earlier target, or --latest for everything archived")]
    AfterArchiveEnd { target: String, end: String },
    #[error("the archive's WAL ends at {end}, before backup {backup} becomes consistent at {needed}; WAL is missing from the archive: check that `instarec ship` is running, then retry")]
    WalMissing {
        backup: String,
        needed: String,
        end: String,
    },
    #[error("data directory {path} is not empty; pick an empty directory or pass --force to delete its contents")]
    NotEmpty { path: String },
    #[error("cannot prepare {path}: {source}; check the path and its permissions")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "archive {url} has no cluster record; run `instarec ship` or `instarec archive init` first"
    )]
    Uninitialized { url: String },
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error(transparent)]
    Extract(#[from] ExtractError),
}

impl ExitCode for RestoreError {
    fn exit_code(&self) -> Option<u8> {
        match self {
            // Refused before anything changed because of what was asked: a
            // target no backup or archived log reaches, an unknown backup, a
            // data directory that is not empty.
            RestoreError::BeforeOldestBackup { .. }
            | RestoreError::AfterArchiveEnd { .. }
            | RestoreError::UnknownBackup { .. }
            | RestoreError::NotEmpty { .. } => Some(crate::exit::USAGE),
            RestoreError::Archive(a) | RestoreError::Extract(ExtractError::Archive(a)) => {
                a.exit_code()
            }
            _ => None,
        }
    }
}
