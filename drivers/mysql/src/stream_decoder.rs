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

    fn decode_event(
        &mut self,
        raw: RawEvent,
        needs_ack: bool,
    ) -> Result<StreamedEvent, MysqlError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format_description_event::FormatDescriptionEvent;
    use bytes::{BufMut, BytesMut};

    fn header(event_type: EventType, log_pos: u32, flags: u16) -> EventHeader {
        EventHeader {
            timestamp: 1_700_000_000,
            event_type,
            server_id: 1,
            event_size: 0,
            log_pos,
            flags,
        }
    }

    fn packet(event: &RawEvent) -> Bytes {
        let mut p = vec![0u8];
        p.extend_from_slice(&event.bytes);
        p.into()
    }

    fn crc(event_type: EventType, log_pos: u32, flags: u16, body: &[u8]) -> RawEvent {
        RawEvent::build(
            header(event_type, log_pos, flags),
            body,
            BinlogChecksum::Crc32,
        )
    }

    fn fde() -> RawEvent {
        let mut body = BytesMut::new();
        FormatDescriptionEvent {
            binlog_version: 4,
            server_version: "10.11.6-MariaDB-log".into(),
            create_timestamp: 0,
            post_header_lengths: vec![0x38, 0x0d, 0x00, 0x08],
            checksum: BinlogChecksum::Crc32,
        }
        .encode(&mut body);
        crc(EventType::FormatDescription, 256, 0, &body)
    }

    fn query(text: &str, log_pos: u32) -> RawEvent {
        let mut body = vec![0u8; 13];
        body[8] = 4; // db_len
        body.extend_from_slice(b"test\0");
        body.extend_from_slice(text.as_bytes());
        crc(EventType::Query, log_pos, 0, &body)
    }

    fn gtid(seq_no: u64, flags: u8, log_pos: u32) -> RawEvent {
        let mut body = BytesMut::new();
        body.put_u64_le(seq_no);
        body.put_u32_le(0);
        body.put_u8(flags);
        body.put_bytes(0, 6);
        crc(EventType::MariadbGtid, log_pos, 0, &body)
    }

    fn decode_event(d: &mut StreamDecoder, ev: &RawEvent) -> BinlogEvent {
        match d.decode(packet(ev)).unwrap() {
            Decoded::Event(StreamedEvent::Event(e)) => e,
            other => panic!("{other:?}"),
        }
    }

    /// MariaDB's first packet: the artificial Rotate, with a CRC32 trailer
    /// before any FORMAT_DESCRIPTION said so (mysql_async #189).
    #[rustfmt::skip]
    const FAKE_ROTATE_PACKET: &[u8] = &[
        0x00, // OK byte
        0x00, 0x00, 0x00, 0x00, 0x04, 0x01, 0x00, 0x00, 0x00, 0x2f, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x20, 0x00, // header: Rotate, size 47, log_pos 0, ARTIFICIAL
        0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // pos 4
        b'm', b'y', b's', b'q', b'l', b'-', b'b', b'i', b'n', b'.', b'0', b'0', b'0', b'0', b'0', b'1',
        0x1f, 0x0e, 0xac, 0x68, // CRC32
    ];

    #[test]
    fn fake_rotate_name_has_no_checksum_bytes() {
        let mut d = StreamDecoder::new("db:3306", false);
        let Decoded::Event(StreamedEvent::Event(ev)) =
            d.decode(Bytes::from_static(FAKE_ROTATE_PACKET)).unwrap()
        else {
            panic!("not an event")
        };
        assert_eq!(ev.file, "mysql-bin.000001");
        assert!(ev.artificial);
        assert_eq!(&ev.raw.bytes[..], &FAKE_ROTATE_PACKET[1..]);
        assert_eq!(d.file(), "mysql-bin.000001");
        assert_eq!(d.checksum(), None);
        // Without a trailer the whole rest is the name.
        let plain = RawEvent::build(
            header(EventType::Rotate, 0, 0x20),
            b"\x04\0\0\0\0\0\0\0mysql-bin.000007",
            BinlogChecksum::Off,
        );
        let mut d = StreamDecoder::new("db:3306", false);
        assert_eq!(decode_event(&mut d, &plain).file, "mysql-bin.000007");
    }

    #[test]
    fn tracks_checksum_groups_and_rotation() {
        let mut d = StreamDecoder::new("db:3306", false);
        decode_event(
            &mut d,
            &RawEvent::parse(Bytes::from_static(&FAKE_ROTATE_PACKET[1..])).unwrap(),
        );
        let f = decode_event(&mut d, &fde());
        assert!(!f.artificial);
        assert_eq!(d.checksum(), Some(BinlogChecksum::Crc32));

        // A transaction: GTID … XID.
        let g = decode_event(&mut d, &gtid(7, 0, 300));
        assert_eq!(g.gtid.unwrap().to_string(), "0-1-7");
        assert!(!g.ends_transaction);
        let q = decode_event(&mut d, &query("INSERT INTO t VALUES (1)", 400));
        assert!(
            !q.ends_transaction,
            "statement inside a MariaDB transaction"
        );
        let x = decode_event(&mut d, &crc(EventType::Xid, 431, 0, &9u64.to_le_bytes()));
        assert!(x.ends_transaction);
        assert_eq!(x.position().to_string(), "mysql-bin.000001:431");

        // A non-transactional change: GTID … COMMIT.
        decode_event(&mut d, &gtid(8, 0, 500));
        assert!(decode_event(&mut d, &query("COMMIT", 560)).ends_transaction);

        // A DDL: standalone GTID, then its statement ends the group.
        decode_event(&mut d, &gtid(9, 0x01 | 0x20, 600));
        assert!(decode_event(&mut d, &query("CREATE TABLE c (a int)", 700)).ends_transaction);

        // Opaque MariaDB events pass through untouched.
        let annotate = crc(EventType::AnnotateRows, 750, 0, b"INSERT INTO t VALUES (2)");
        assert_eq!(decode_event(&mut d, &annotate).raw, annotate);

        // Rotation: the Rotate is in the old file, what follows in the new.
        let rotate = crc(
            EventType::Rotate,
            800,
            0,
            b"\x04\0\0\0\0\0\0\0mysql-bin.000002",
        );
        let r = decode_event(&mut d, &rotate);
        assert_eq!((r.file.as_str(), r.artificial), ("mysql-bin.000001", false));
        assert_eq!(d.file(), "mysql-bin.000002");

        // Heartbeat: MariaDB names the file and puts the position in log_pos.
        let hb = crc(EventType::Heartbeat, 1234, 0, b"mysql-bin.000002");
        let Decoded::Event(StreamedEvent::Heartbeat { position }) = d.decode(packet(&hb)).unwrap()
        else {
            panic!("not a heartbeat")
        };
        assert_eq!(position.to_string(), "mysql-bin.000002:1234");
    }

    #[test]
    fn mysql_groups_end_at_commit_or_after_a_ddl() {
        let mut d = StreamDecoder::new("db:3306", false);
        decode_event(&mut d, &fde());
        let mut body = vec![1u8];
        body.extend_from_slice(&[0x11; 16]);
        body.extend_from_slice(&5i64.to_le_bytes());
        let g = decode_event(&mut d, &crc(EventType::MysqlGtid, 100, 0, &body));
        assert!(matches!(g.gtid, Some(EventGtid::Mysql(m)) if m.gno == 5));
        assert!(!decode_event(&mut d, &query("BEGIN", 200)).ends_transaction);
        assert!(!decode_event(&mut d, &query("INSERT INTO t VALUES (1)", 300)).ends_transaction);
        assert!(decode_event(&mut d, &query("COMMIT", 400)).ends_transaction);
        decode_event(&mut d, &crc(EventType::MysqlGtid, 500, 0, &body));
        assert!(decode_event(&mut d, &query("DROP TABLE t", 600)).ends_transaction);
        // A compressed transaction is whole in one event; nothing inside it is yielded.
        decode_event(&mut d, &crc(EventType::MysqlGtid, 700, 0, &body));
        let payload = decode_event(
            &mut d,
            &crc(EventType::TransactionPayload, 900, 0, &[1, 2, 3]),
        );
        assert!(payload.ends_transaction);
    }

    #[test]
    fn bad_packets_are_errors_not_panics() {
        let mut d = StreamDecoder::new("db:3306", false);
        decode_event(&mut d, &fde());
        let good = packet(&gtid(1, 0, 300));
        for cut in 0..good.len() {
            assert!(d.decode(good.slice(..cut)).is_err(), "cut at {cut}");
        }
        let mut flipped = good.to_vec();
        flipped[25] ^= 0x40;
        let err = d.decode(flipped.into()).unwrap_err();
        assert!(err.to_string().contains("CRC32"), "{err}");
        let mut garbage = good.to_vec();
        garbage[10..14].copy_from_slice(&u32::MAX.to_le_bytes()); // event_size
        assert!(d.decode(garbage.into()).is_err());
        assert!(d.decode(Bytes::from_static(b"\x01\x02")).is_err());

        let mut err_packet = vec![0xff, 0xd4, 0x04, b'#'];
        err_packet.extend_from_slice(b"HY000Could not find first log file name");
        let err = d.decode(err_packet.into()).unwrap_err();
        assert!(
            matches!(err, MysqlError::Server { code: 1236, .. }),
            "{err:?}"
        );
        assert_eq!(
            d.decode(Bytes::from_static(b"\xfe\0\0\x02\0")).unwrap(),
            Decoded::End
        );
    }

    #[test]
    fn semi_sync_header_is_split_off_when_present() {
        let mut d = StreamDecoder::new("db:3306", true);
        decode_event(&mut d, &fde());
        let xid = crc(EventType::Xid, 431, 0, &9u64.to_le_bytes());
        let mut p = vec![0x00, 0xef, 0x01];
        p.extend_from_slice(&xid.bytes);
        let Decoded::Event(StreamedEvent::Event(ev)) = d.decode(p.into()).unwrap() else {
            panic!("not an event")
        };
        assert!(ev.needs_ack);
        assert_eq!(ev.raw, xid);
        // A primary with semi-sync off sends no header.
        assert!(!decode_event(&mut d, &xid).needs_ack);
        // Without semi-sync asked for, 0xef is just the first timestamp byte.
        let mut plain = StreamDecoder::new("db:3306", false);
        let mut p = vec![0x00, 0xef, 0x01];
        p.extend_from_slice(&xid.bytes);
        assert!(plain.decode(p.into()).is_err());
    }
}
