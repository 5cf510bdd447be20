//! PostgreSQL adapter: WAL from a physical replication slot, archived as
//! complete segments plus ranged parts of the in-progress segment.

pub mod archive_end;
pub mod backup_verify;
pub mod control;
pub mod exit_codes;
pub mod history_sync;
pub mod layout;
pub mod live_status;
pub mod resume;
pub mod segment_buffer;
pub mod source;
pub mod timeline_history;
pub mod wal_transfer;
pub mod wal_verify;

pub use control::PgControl;
pub use source::{PgSource, PgSourceOptions};
