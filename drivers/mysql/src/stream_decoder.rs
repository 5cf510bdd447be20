//! Turns the packets of a binlog stream into `StreamedEvent`s: the pure
//! state machine behind `BinlogStream`, tested on literal bytes.
//!
//! It parses every event with this crate's own framing (event.rs), never
//! with mysql_common's `EventStreamReader`, so the bytes handed on are the
//! packet's bytes and a truncated or garbled packet is an error, not a
//! panic. It tracks what a single event cannot tell:
//! - the checksum algorithm, from the last FORMAT_DESCRIPTION. Before the
//!   first one (the artificial Rotate that opens a stream) it is unknown, so
//!   a trailer is assumed when the last four bytes are the CRC32 of the
//!   rest. That is how MariaDB's checksummed fake Rotate is read without the
//!   four stray bytes in its file name (mysql_async #189);
//! - the current file name, from Rotate events;
//! - where event groups end, for resume points.

use bytes::Bytes;

use crate::binlog_position::BinlogPosition;
use crate::checksum::{BinlogChecksum, CRC32_LEN};
use crate::event::{EventError, EventHeader, RawEvent, EVENT_HEADER_LEN};
use crate::event_type::EventType;
use crate::format_description_event::FormatDescriptionEvent;
use crate::mariadb_gtid_event::MariadbGtidEvent;
use crate::mysql_error::MysqlError;
use crate::mysql_gtid_event::MysqlGtidEvent;
use crate::query_event::QueryEvent;
use crate::rotate_event::RotateEvent;
use crate::semi_sync;
use crate::server_error_packet::{ServerErrorPacket, EOF_HEADER, ERR_HEADER, OK_HEADER};
use crate::streamed_event::{BinlogEvent, EventGtid, StreamedEvent};

/// LOG_EVENT_ARTIFICIAL_F: the event was made up for this stream.
const ARTIFICIAL_FLAG: u16 = 0x20;

/// What one packet of the stream was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    Event(StreamedEvent),
    /// The primary ended the stream (EOF packet; only with a non-blocking dump).
    End,
}

/// Where we are in an event group, to tell which event ends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Group {
    /// Between groups (or before the first GTID).
    Outside,
    /// After a MariaDB GTID with FL_STANDALONE: the next statement is the
    /// whole group (a DDL; no COMMIT follows).
    Standalone,
    /// After a MySQL GTID: BEGIN opens a transaction, anything else is a DDL.
    AfterMysqlGtid,
    /// Inside a transaction, until XID or COMMIT/ROLLBACK.
    Transaction,
}

#[derive(Debug)]
pub struct StreamDecoder {
    addr: String,
    semi_sync: bool,
    checksum: Option<BinlogChecksum>,
    file: String,
    /// log_pos of the last event from a file, for heartbeats without one.
    last_pos: u64,
    group: Group,
}

impl StreamDecoder {
    /// `addr` names the primary in errors; `semi_sync` says whether the
    /// stream was asked for with `@rpl_semi_sync_slave = 1`.
    pub fn new(addr: impl Into<String>, semi_sync: bool) -> Self {
        StreamDecoder {
            addr: addr.into(),
            semi_sync,
            checksum: None,
            file: String::new(),
            last_pos: 0,
            group: Group::Outside,
        }
    }

    /// The checksum algorithm of the events now arriving, once known.
    pub fn checksum(&self) -> Option<BinlogChecksum> {
        self.checksum
    }

    /// The binlog file the stream is in ("" before its first Rotate).
    pub fn file(&self) -> &str {
        &self.file
    }

    /// Decodes one whole packet payload.
    pub fn decode(&mut self, payload: Bytes) -> Result<Decoded, MysqlError> {
        match payload.first() {
            Some(&OK_HEADER) => {}
            Some(&ERR_HEADER) => {
                return Err(match ServerErrorPacket::parse(&payload) {
                    Some(e) => MysqlError::Server {
                        addr: self.addr.clone(),
                        what: format!("the binlog stream (in file {:?})", self.file),
                        code: e.code,
                        state: e.state,
                        message: e.message,
                    },
                    None => self.protocol("truncated ERR packet", &payload),
                })
            }
            Some(&EOF_HEADER) if payload.len() < 9 => return Ok(Decoded::End),
            _ => return Err(self.protocol("expected an event packet (0x00)", &payload)),
        }
        // A primary with semi-sync switched off sends no header even to a
        // replica that asked for it: take the header only where the event
        // after it has exactly the size its own header says.
        let (needs_ack, start) = match semi_sync::split_header(&payload[1..]) {
            Some((needs_ack, event)) if self.semi_sync && is_whole_event(event) => (needs_ack, 3),
            _ => (false, 1),
        };
        let raw = RawEvent::parse(payload.slice(start..)).map_err(|e| self.event_error(0, e))?;
        self.decode_event(raw, needs_ack).map(Decoded::Event)
    }

    fn decode_event(&mut self, raw: RawEvent, needs_ack: bool) -> Result<StreamedEvent, MysqlError> {
        let header = raw.header;
        let ty = header.event_type;
        let bad = |this: &Self, e| this.event_error(header.log_pos, e);
        let checksum = match ty {
            EventType::FormatDescription => {
                let fde = FormatDescriptionEvent::from_event(&raw).map_err(|e| bad(self, e))?;
                self.checksum = Some(fde.checksum);
                fde.checksum
            }
            _ => match self.checksum {
                Some(c) => c,
                None => guess_checksum(&raw),
            },
        };
        raw.verify(checksum).map_err(|e| bad(self, e))?;
        let body = raw.body(checksum).map_err(|e| bad(self, e))?;
        let artificial = header.flags & ARTIFICIAL_FLAG != 0 || header.log_pos == 0;

        match ty {
            EventType::Heartbeat | EventType::HeartbeatV2 => {
                let position = self.heartbeat_position(ty, header.log_pos, body);
                return Ok(StreamedEvent::Heartbeat { position });
            }
            EventType::Rotate => {
                let rotate = RotateEvent::parse(body).map_err(|e| bad(self, e))?;
                // A real Rotate is the last event of the old file.
                let file = if artificial {
                    rotate.next.file.clone()
                } else {
                    self.file.clone()
                };
                self.file = rotate.next.file;
                self.last_pos = rotate.next.pos;
                return Ok(self.event(raw, file, None, false, artificial, needs_ack));
            }
            _ => {}
        }

        let mut gtid = None;
        let mut ends = false;
        match ty {
            EventType::MariadbGtid => {
                let ev = MariadbGtidEvent::parse(body).map_err(|e| bad(self, e))?;
                gtid = Some(EventGtid::Mariadb(ev.gtid(header.server_id)));
                self.group = if ev.is_standalone() {
                    Group::Standalone
                } else {
                    Group::Transaction
                };
            }
            EventType::MysqlGtid => {
                let ev = MysqlGtidEvent::parse(body).map_err(|e| bad(self, e))?;
                gtid = Some(EventGtid::Mysql(ev.gtid));
                self.group = Group::AfterMysqlGtid;
            }
            // No GTID we can name (tagged GTIDs are not modelled yet), but a group starts.
            EventType::AnonymousGtid | EventType::MysqlGtidTagged => {
                self.group = Group::AfterMysqlGtid;
            }
            EventType::Query => {
                let q = QueryEvent::parse(body).map_err(|e| bad(self, e))?;
                (self.group, ends) = match self.group {
                    Group::Standalone => (Group::Outside, true),
                    Group::AfterMysqlGtid | Group::Outside if opens_transaction(&q) => {
                        (Group::Transaction, false)
                    }
                    Group::AfterMysqlGtid | Group::Outside => (Group::Outside, true),
                    Group::Transaction if q.ends_group() => (Group::Outside, true),
                    Group::Transaction => (Group::Transaction, false),
                };
            }
            // The whole MySQL transaction, compressed; its inner events are
            // never decompressed here, so never archived twice.
            EventType::Xid | EventType::XaPrepare | EventType::TransactionPayload => {
                self.group = Group::Outside;
                ends = true;
            }
            _ => {}
        }
        let file = self.file.clone();
        Ok(self.event(raw, file, gtid, ends, artificial, needs_ack))
    }

    fn event(
        &mut self,
        raw: RawEvent,
        file: String,
        gtid: Option<EventGtid>,
        ends_transaction: bool,
        artificial: bool,
        needs_ack: bool,
    ) -> StreamedEvent {
        if !artificial && raw.header.log_pos != 0 {
            self.last_pos = u64::from(raw.header.log_pos);
        }
        StreamedEvent::Event(BinlogEvent {
            raw,
            file,
            gtid,
            ends_transaction,
            artificial,
            needs_ack,
        })
    }

    /// MariaDB's heartbeat carries the file name as its body and the
    /// position in log_pos; MySQL's v2 heartbeat packs both in fields we do
    /// not need, so it gets the last known position.
    fn heartbeat_position(&self, ty: EventType, log_pos: u32, body: &[u8]) -> BinlogPosition {
        let named = std::str::from_utf8(body)
            .ok()
            .filter(|_| ty == EventType::Heartbeat)
            .and_then(|name| BinlogPosition::new(name, u64::from(log_pos)).ok());
        named.unwrap_or_else(|| BinlogPosition {
            file: self.file.clone(),
            pos: self.last_pos,
        })
    }

    fn event_error(&self, log_pos: u32, source: EventError) -> MysqlError {
        MysqlError::Event {
            addr: self.addr.clone(),
            file: self.file.clone(),
            log_pos,
            source,
        }
    }

    fn protocol(&self, reason: &str, packet: &[u8]) -> MysqlError {
        MysqlError::Protocol {
            addr: self.addr.clone(),
            reason: reason.to_string(),
            packet: packet.to_vec(),
        }
    }
}

fn is_whole_event(bytes: &[u8]) -> bool {
    EventHeader::parse(bytes).is_ok_and(|h| h.event_size as usize == bytes.len())
}

fn opens_transaction(q: &QueryEvent<'_>) -> bool {
    let text = q.query.trim_ascii();
    q.is_begin() || text.len() >= 8 && text[..8].eq_ignore_ascii_case(b"XA START")
}

/// Before the first FORMAT_DESCRIPTION: a CRC32 trailer if the last four
/// bytes are the CRC32 of the rest (a 1 in 2^32 chance of a false match).
fn guess_checksum(raw: &RawEvent) -> BinlogChecksum {
    if raw.bytes.len() >= EVENT_HEADER_LEN + CRC32_LEN && raw.verify_crc32().is_ok() {
        BinlogChecksum::Crc32
    } else {
        BinlogChecksum::Off
    }
}
