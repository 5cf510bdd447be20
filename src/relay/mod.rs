//! `instarec relay`: a binlog server over the archive. A stock MariaDB
//! replica connects with CHANGE MASTER TO ... MASTER_USE_GTID=slave_pos (a
//! MySQL 8 one with SOURCE_AUTO_POSITION = 1) and gets the archived events
//! it lacks, exact bytes, then new ones as the shipper archives them. The
//! protocol is the driver's (instarec_mysql::relay); this side reads the
//! archive.

mod binlog_archive;
mod error;
mod identity;
mod replica_stream;
mod server;
mod start_filter;
mod start_point;
mod until;

pub use binlog_archive::BinlogArchive;
pub use error::RelayServeError;
pub use server::{RelayOptions, RelayServer};
pub use until::UntilTarget;
