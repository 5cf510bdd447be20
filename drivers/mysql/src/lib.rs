//! MySQL/MariaDB driver for instarec.
//!
//! What is here so far are the pure parts every later piece stands on:
//! GTID positions (MariaDB) and GTID sets (MySQL), binlog event framing with
//! CRC32 checks, whole binlog files, and the bodies of the events that carry
//! GTIDs and file names. There is no network code yet.

pub mod binlog_checkpoint_event;
pub mod binlog_file;
pub mod binlog_position;
pub mod checksum;
pub mod event;
pub mod event_type;
pub mod format_description_event;
pub mod gtid;
pub mod gtid_mysql;
pub mod mariadb_gtid_event;
pub mod mysql_gtid_event;
pub mod rotate_event;

pub use binlog_file::{BinlogFile, BinlogFileError, BINLOG_MAGIC};
pub use binlog_position::{BinlogPosition, BinlogPositionError};
pub use checksum::BinlogChecksum;
pub use event::{EventError, EventHeader, RawEvent, EVENT_HEADER_LEN};
pub use event_type::EventType;
pub use gtid::{GtidError, MariadbGtid, MariadbGtidPos, MariadbGtidRange};
pub use gtid_mysql::{GnoInterval, MysqlGtid, MysqlGtidSet, MysqlGtidSetError, ServerUuid};
