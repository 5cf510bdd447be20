//! MySQL/MariaDB driver for instarec.
//!
//! The pure parts: GTID positions (MariaDB) and GTID sets (MySQL), binlog
//! event framing with CRC32 checks, whole binlog files, and the bodies of
//! the events that carry GTIDs and file names (and the header of MySQL's
//! TRANSACTION_PAYLOAD, whose payload stays compressed). The binlog client
//! (binlog_client.rs, binlog_stream.rs) streams a primary's binlog as a
//! replica, yielding each event's exact bytes.

pub mod binlog_checkpoint_event;
pub mod binlog_client;
pub mod binlog_file;
pub mod binlog_position;
pub mod binlog_stream;
pub mod checksum;
pub mod event;
pub mod event_type;
pub mod format_description_event;
pub mod gtid;
pub mod gtid_mysql;
mod login;
pub mod mariadb_gtid_event;
pub mod mysql_error;
pub mod mysql_gtid_event;
mod packet_connection;
pub mod query_event;
pub mod relay;
pub mod replication_command;
pub mod rotate_event;
pub mod semi_sync;
pub mod server_error_packet;
pub mod stream_decoder;
pub mod streamed_event;
#[cfg(test)]
mod testdata;
pub mod transaction_payload_event;

pub use binlog_client::{BinlogClient, ServerFlavor, StartPosition};
pub use binlog_file::{BinlogFile, BinlogFileError, BINLOG_MAGIC};
pub use binlog_position::{BinlogPosition, BinlogPositionError};
pub use binlog_stream::BinlogStream;
pub use checksum::BinlogChecksum;
pub use event::{EventError, EventHeader, RawEvent, EVENT_HEADER_LEN};
pub use event_type::EventType;
pub use gtid::{GtidError, MariadbGtid, MariadbGtidPos, MariadbGtidRange};
pub use gtid_mysql::{GnoInterval, MysqlGtid, MysqlGtidSet, MysqlGtidSetError, ServerUuid};
pub use mysql_error::MysqlError;
pub use streamed_event::{BinlogEvent, EventGtid, StreamedEvent};
