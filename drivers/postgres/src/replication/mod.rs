//! The physical replication client: walsender commands and the WAL stream.

pub mod base_backup;
pub mod client;
pub mod keepalive;
pub mod message;
pub mod slot;
pub mod status_update;
pub mod stream;
pub mod system_identity;
pub mod timestamp;
pub mod xlog_data;
