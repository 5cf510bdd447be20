//! Restoring MySQL/MariaDB from the archive: `standby init` (a backup
//! prepared into a data directory that replicates from `instarec relay`)
//! and `restore` (the same, replayed to a point in time through an
//! in-process relay that stops there, then detached).

pub mod binlog_reach;
pub mod data_dir;
pub mod error;
pub mod mariadbd;
pub mod pitr;
pub mod plan;
pub mod replication;
pub mod session;
pub mod standby;
pub mod tool;
pub mod xbstream_unpack;

pub use error::MysqlRestoreError;
pub use mariadbd::ServerOptions;
pub use pitr::{restore, MysqlRestoreOptions, MysqlRestoreOutcome, REPLAY_SERVER_ID};
pub use plan::{plan, MysqlRestorePlan, MysqlTarget};
pub use replication::Source;
pub use standby::{MysqlStandbyInit, MysqlStandbyOptions, StartedStandby};
