//! What a binlog stream yields: each event's exact bytes with what the
//! shipper needs to know about it, or a heartbeat.

use std::fmt;

use crate::binlog_position::BinlogPosition;
use crate::event::RawEvent;
use crate::event_type::EventType;
use crate::gtid::MariadbGtid;
use crate::gtid_mysql::MysqlGtid;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamedEvent {
    /// An event to archive (unless `artificial`).
    Event(BinlogEvent),
    /// The primary is idle; nothing to archive. `position` is where it is.
    Heartbeat { position: BinlogPosition },
}

/// The GTID an event group starts with, in its server's flavour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventGtid {
    Mariadb(MariadbGtid),
    Mysql(MysqlGtid),
}

impl fmt::Display for EventGtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventGtid::Mariadb(g) => g.fmt(f),
            EventGtid::Mysql(g) => g.fmt(f),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinlogEvent {
    /// The bytes exactly as the primary sent them: header, body, checksum.
    pub raw: RawEvent,
    /// The binlog file the event is in. For the artificial Rotate that
    /// starts a stream, the file it announces.
    pub file: String,
    /// Set on the GTID event that starts an event group.
    pub gtid: Option<EventGtid>,
    /// The last event of a transaction (XID, COMMIT, the DDL after a
    /// standalone GTID, a MySQL TRANSACTION_PAYLOAD): a resume point.
    pub ends_transaction: bool,
    /// Made up by the primary for this stream (the Rotate at the start, a
    /// format description or GTID list with log_pos 0); not in its file at
    /// these bytes.
    pub artificial: bool,
    /// Semi-sync: the primary waits for an ack of this event's position.
    pub needs_ack: bool,
}

impl BinlogEvent {
    pub fn event_type(&self) -> EventType {
        self.raw.header.event_type
    }

    /// The offset just past this event in `file` (0 for artificial events).
    pub fn log_pos(&self) -> u32 {
        self.raw.header.log_pos
    }

    /// When the primary wrote the event, in seconds since the Unix epoch.
    pub fn timestamp(&self) -> u32 {
        self.raw.header.timestamp
    }

    /// `file:log_pos`, the position after this event, as a semi-sync ack
    /// and a file-based restart need it.
    pub fn position(&self) -> BinlogPosition {
        BinlogPosition {
            file: self.file.clone(),
            pos: u64::from(self.log_pos()),
        }
    }
}
