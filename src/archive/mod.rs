//! The archive: immutable, self-describing, checksummed objects in an object store.
//!
//! Everything instarec ships (WAL segments, binlog files, backups) and the small
//! records that coordinate writers (the cluster record, fencing epochs) live here.
//! Every object is written once (`PutMode::Create`), carries a header that says how
//! to read it, and is verified on every read.

mod cluster;
mod encryption_key;
mod epoch;
mod error;
mod handle;
mod location;
pub mod object;
pub mod retry;
mod settings;
mod verify;

pub use cluster::{ClusterRecord, ClusterTag, CLUSTER_KEY, FORMAT_VERSION};
pub use encryption_key::EncryptionKey;
pub use epoch::{Epoch, EpochClaim, EpochRecord, EPOCHS_PREFIX};
pub use error::ArchiveError;
pub use handle::{Archive, ObjectEntry, PutOutcome};
pub use settings::{ArchiveSettings, Compression, RetryPolicy, S3Settings, DEFAULT_ZSTD_LEVEL};
pub use verify::{ObjectSummary, VerifyReport};
