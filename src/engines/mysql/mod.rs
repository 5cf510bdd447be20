//! MySQL/MariaDB adapter: the binlog streamed as a replica, archived as
//! chunks of whole transactions with a plain index per chunk.

pub mod binlog_verify;
pub mod chunk_buffer;
pub mod control;
pub mod epoch_chunks;
pub mod exit_codes;
#[cfg(test)]
pub(crate) mod fixture_archive;
pub mod gtid_point;
pub mod index;
pub mod layout;
pub mod live_status;
pub mod position;
pub mod primary_status;
pub mod resume;
pub mod server_addr;
pub mod source;

pub use control::MysqlControl;
pub use gtid_point::GtidPoint;
pub use position::{BinlogPoint, GtidState};
pub use source::{MysqlSource, MysqlSourceOptions};
