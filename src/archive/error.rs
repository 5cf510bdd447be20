//! What can go wrong with the archive, named by key, and what to do about it.

use super::cluster::ClusterTag;
use super::epoch::Epoch;

/// Every archive failure. Each message names the object (or URL) and ends with
/// what the operator should do next.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error(
        "archive object {key} not found; check that [archive] url points at this cluster's archive"
    )]
    NotFound { key: String },

    #[error(
        "archive object {key} already exists with different content \
         (existing checksum {existing}, new checksum {new}); archive objects are never \
         overwritten: make sure only one instarec ships this cluster into this archive"
    )]
    Conflict {
        key: String,
        existing: String,
        new: String,
    },

    #[error(
        "archive object {key} is corrupt: {reason}; do not use it: restore the object \
         from bucket versioning or another copy, then run `instarec archive verify`"
    )]
    Corrupt { key: String, reason: String },

    #[error(
        "archive object {key} is truncated: expected {expected} bytes, found {actual}; \
         restore the object from bucket versioning or another copy, then run \
         `instarec archive verify`"
    )]
    Truncated {
        key: String,
        expected: u64,
        actual: u64,
    },

    #[error(
        "archive object {key} was encrypted with key {found}, but the configured key is \
         {configured}; set [archive] encryption_key_file to the key this archive was written with"
    )]
    WrongKey {
        key: String,
        found: String,
        configured: String,
    },

    #[error(
        "archive object {key} is encrypted (key {key_id}) but no encryption key is \
         configured; set [archive] encryption_key_file to the key this archive was written with"
    )]
    MissingKey { key: String, key_id: String },

    #[error(
        "archive {url} belongs to {archive}, primary is {ours}; point [archive] url at \
         this cluster's archive or run `instarec archive init` on an empty prefix"
    )]
    ClusterMismatch {
        url: String,
        archive: String,
        ours: String,
    },

    #[error(
        "archive object {key} belongs to cluster {found}, this archive is bound to cluster \
         {expected}; the archive mixes clusters: point [archive] url at an archive that \
         holds only this cluster"
    )]
    ForeignObject {
        key: String,
        found: ClusterTag,
        expected: ClusterTag,
    },

    #[error(
        "{what} uses archive format version {found}, this instarec supports up to \
         {supported}; upgrade instarec"
    )]
    NewerFormat {
        what: String,
        found: u32,
        supported: u32,
    },

    #[error(
        "fenced: this writer holds {mine} but {newer} has been claimed (a promote made \
         another server the primary); nothing more is written from here: point this \
         shipper at the new primary, whose address `instarec archive ls epochs/` records"
    )]
    Fenced { mine: Epoch, newer: Epoch },

    #[error(
        "{epoch} was claimed by another instarec first; list `epochs/` with `instarec archive ls epochs/` to see \
         who holds it before trying again"
    )]
    EpochTaken { epoch: Epoch },

    #[error(
        "invalid archive url {url:?}: {reason}; supported: file:///absolute/path, \
         s3://bucket/prefix, gs://bucket/prefix, az://container/prefix, memory://"
    )]
    BadUrl { url: String, reason: String },

    #[error(
        "archive {url} does not exist; check [archive] url (or --archive-url), \
         or create the archive with `instarec archive init`"
    )]
    Missing { url: String },

    #[error(
        "archive {url} has no cluster record, so it holds no cluster's data; check [archive] url \
         (or --archive-url), or bind it to a cluster with `instarec archive init` (or by starting `instarec ship`)"
    )]
    NoClusterRecord { url: String },

    #[error(
        "invalid archive key {key:?}: {reason}; keys are relative paths like \
         \"wal/000000010000000000000001\" (this is a bug in instarec, please report it)"
    )]
    BadKey { key: String, reason: String },

    #[error(
        "invalid encryption key from {origin}: {reason}; the key must be 32 raw bytes, \
         64 hex characters or base64 of 32 bytes (make one with \
         `head -c 32 /dev/urandom > archive.key`)"
    )]
    BadEncryptionKey { origin: String, reason: String },

    #[error(
        "cannot read encryption key file {path}: {source}; check [archive] encryption_key_file"
    )]
    KeyFile {
        path: String,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "archive store failed on {key}: {source}; check the store's credentials, \
         permissions and network, then retry"
    )]
    Store {
        key: String,
        #[source]
        source: object_store::Error,
    },

    #[error(
        "no AWS credentials for the archive (reading {key}): set `[archive.s3] access_key_id` and \
         `secret_access_key` (or INSTAREC_ARCHIVE_S3_ACCESS_KEY_ID / AWS_ACCESS_KEY_ID and their secrets), \
         or run where an instance role provides them"
    )]
    NoCredentials { key: String },

    #[error("archive codec task for {key} failed: {reason}; this is a bug in instarec, please report it")]
    Task { key: String, reason: String },
}

/// The error object_store reports when the EC2 instance metadata service
/// (its last credential source) answered with no credentials.
pub(crate) fn is_metadata_credentials_failure(err: &object_store::Error) -> bool {
    let text = err.to_string();
    text.contains("169.254.169.254") || text.contains("/latest/api/token")
}

impl ArchiveError {
    /// Wraps a store error for `key`, mapping "not found" to [`ArchiveError::NotFound`].
    pub(crate) fn from_store(key: &str, source: object_store::Error) -> Self {
        match source {
            object_store::Error::NotFound { .. } => ArchiveError::NotFound {
                key: key.to_string(),
            },
            // object_store asks the instance metadata service only when no
            // other credentials were found; its failure means exactly that.
            source if is_metadata_credentials_failure(&source) => ArchiveError::NoCredentials {
                key: key.to_string(),
            },
            source => ArchiveError::Store {
                key: key.to_string(),
                source,
            },
        }
    }

    /// True when the error says the bytes of an object can't be trusted
    /// (as opposed to the store being unreachable or misconfigured).
    pub fn is_integrity_fault(&self) -> bool {
        matches!(
            self,
            ArchiveError::Corrupt { .. }
                | ArchiveError::Truncated { .. }
                | ArchiveError::ForeignObject { .. }
        )
    }
}

impl crate::exit::ExitCode for ArchiveError {
    fn exit_code(&self) -> Option<u8> {
        use crate::exit::{ARCHIVE_FAULT, CLUSTER_MISMATCH, ERROR, FENCED, USAGE};
        Some(match self {
            ArchiveError::Fenced { .. } => FENCED,
            ArchiveError::ClusterMismatch { .. } | ArchiveError::NewerFormat { .. } => {
                CLUSTER_MISMATCH
            }
            ArchiveError::Conflict { .. }
            | ArchiveError::Corrupt { .. }
            | ArchiveError::Truncated { .. } => ARCHIVE_FAULT,
            ArchiveError::BadUrl { .. }
            | ArchiveError::Missing { .. }
            | ArchiveError::NoClusterRecord { .. } => USAGE,
            _ => ERROR,
        })
    }
}
