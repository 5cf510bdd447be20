//! MySQL/MariaDB adapter: the binlog streamed as a replica, archived as
//! chunks of whole transactions with a plain index per chunk.

pub mod chunk_buffer;
pub mod index;
pub mod layout;
pub mod position;
pub mod primary_status;
pub mod resume;
pub mod source;

pub use position::{BinlogPoint, GtidState};
pub use source::{MysqlSource, MysqlSourceOptions};
