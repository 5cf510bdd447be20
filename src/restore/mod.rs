//! Restoring backups: a hot standby that follows the archive (`standby
//! init`) and point-in-time recovery (`restore`). Both extract a backup,
//! verify it against its manifest, and append recovery settings that make a
//! stock PostgreSQL fetch WAL through `instarec wal-fetch`.

pub mod archive_bounds;
pub mod backup_source;
pub mod data_dir;
pub mod error;
pub mod extraction;
pub mod mysql;
pub mod pitr;
pub mod progress;
pub mod recovery_conf;
pub mod server;
pub mod standby;
pub mod target;

pub use error::RestoreError;
pub use pitr::{Prepared, RestoreOptions, RestorePlan};
pub use recovery_conf::restore_command;
pub use server::{RecoveryEnd, RecoveryOutcome, StartOptions};
pub use standby::{StandbyInit, StandbyOptions};
pub use target::RecoveryTarget;
