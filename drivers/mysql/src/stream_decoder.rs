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
use crate::transaction_payload_event::TransactionPayloadEvent;

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

#[derive(Debug, Clone)]
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
        // from_event checked a FORMAT_DESCRIPTION's CRC32 already, with
        // BINLOG_IN_USE cleared as the server computed it.
        if ty != EventType::FormatDescription {
            raw.verify(checksum).map_err(|e| bad(self, e))?;
        }
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
            // gtid_mode=OFF: a group starts, with no GTID to track.
            EventType::AnonymousGtid => {
                self.group = Group::AfterMysqlGtid;
            }
            // Archiving a tagged transaction without its GTID would leave
            // it out of the resume set: a reconnect would archive it twice.
            EventType::MysqlGtidTagged => {
                return Err(MysqlError::Unsupported {
                    addr: self.addr.clone(),
                    reason: format!(
                        "it wrote a tagged GTID (GTID_TAGGED_LOG_EVENT, MySQL 8.3+) at {}:{}, and instarec tracks untagged GTIDs only; commit without a tag (gtid_next AUTOMATIC, not AUTOMATIC:<tag>) on this primary",
                        self.file, header.log_pos
                    ),
                });
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
            EventType::Xid | EventType::XaPrepare => {
                self.group = Group::Outside;
                ends = true;
            }
            // The whole MySQL transaction, compressed. Only its header is
            // read (the payload must be whole); the events inside are never
            // decompressed, so never archived twice.
            EventType::TransactionPayload => {
                TransactionPayloadEvent::parse(body).map_err(|e| bad(self, e))?;
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
    use crate::testdata;
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
        // payload_size 3, end mark, then the 3 payload bytes.
        let whole = [0x01, 0x01, 0x03, 0x00, 7, 8, 9];
        let payload = decode_event(&mut d, &crc(EventType::TransactionPayload, 900, 0, &whole));
        assert!(payload.ends_transaction);
        // A payload shorter than its header says is refused, not archived.
        decode_event(&mut d, &crc(EventType::MysqlGtid, 1000, 0, &body));
        let cut = crc(EventType::TransactionPayload, 1100, 0, &whole[..6]);
        let err = d.decode(packet(&cut)).unwrap_err();
        assert!(err.to_string().contains("payload_size 3"), "{err}");
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

    /// Streams `bytes`, a real binlog file named `name`, the way a MySQL
    /// primary sends it after COM_BINLOG_DUMP_GTID; every decoded event.
    /// On the way, every shorter prefix of every packet must be an error.
    fn stream_file(bytes: &'static [u8], name: &str) -> Vec<BinlogEvent> {
        let file = testdata::parse(bytes);
        let mut d = StreamDecoder::new("mysql8:3306", false);
        let mut out = Vec::new();
        for packet in testdata::dump_packets(&file, name) {
            for cut in 0..packet.len() {
                let mut probe = d.clone();
                assert!(probe.decode(packet.slice(..cut)).is_err(), "cut at {cut}");
            }
            match d.decode(packet).unwrap() {
                Decoded::Event(StreamedEvent::Event(e)) => out.push(e),
                other => panic!("{other:?}"),
            }
        }
        out
    }

    /// The streamed events are the file's events byte for byte, each
    /// named by file and position, after the artificial Rotate.
    fn assert_stream_is_the_file(bytes: &'static [u8], name: &str, events: &[BinlogEvent]) {
        let file = testdata::parse(bytes);
        assert_eq!(events.len(), file.events.len() + 1);
        assert!(events[0].artificial);
        assert_eq!(events[0].file, name);
        for (streamed, raw) in events[1..].iter().zip(&file.events) {
            assert_eq!(&streamed.raw, raw);
            assert_eq!(streamed.file, name);
            assert!(!streamed.artificial);
        }
    }

    /// (GTID, log_pos of the event that ends its group) per group, and
    /// checks nothing outside a group ends one.
    fn groups(events: &[BinlogEvent]) -> Vec<(String, u32)> {
        let mut out = Vec::new();
        let mut open: Option<String> = None;
        for e in events {
            if matches!(
                e.event_type(),
                EventType::MysqlGtid | EventType::AnonymousGtid
            ) {
                assert!(open.is_none(), "a group starts inside another");
                open = Some(e.gtid.map_or("anonymous".into(), |g| g.to_string()));
            }
            if e.ends_transaction {
                let gtid = open.take().expect("a group ends that never started");
                out.push((gtid, e.log_pos()));
            }
        }
        assert!(open.is_none(), "the last group never ended");
        out
    }

    #[test]
    fn a_real_mysql_8_stream_yields_the_file_and_its_transactions() {
        let events = stream_file(testdata::MYSQL_8_0_26, "binlog.000001");
        assert_stream_is_the_file(testdata::MYSQL_8_0_26, "binlog.000001", &events);
        let sid = "97c7af02-4c50-11ec-acd8-681842034964";
        // Two DDLs end at their statement, three row transactions at XID.
        assert_eq!(
            groups(&events),
            [
                (format!("{sid}:1"), 491),
                (format!("{sid}:2"), 787),
                (format!("{sid}:3"), 1120),
                (format!("{sid}:4"), 1438),
                (format!("{sid}:5"), 1787),
            ]
        );
        assert!(events
            .iter()
            .filter(|e| e.gtid.is_some())
            .all(|e| matches!(e.gtid, Some(EventGtid::Mysql(_)))));
        let last = events.last().unwrap();
        assert_eq!(last.event_type(), EventType::Stop);
        assert_eq!(last.position().to_string(), "binlog.000001:1810");

        let events = stream_file(testdata::MYSQL_8_0_28, "binlog.000007");
        assert_stream_is_the_file(testdata::MYSQL_8_0_28, "binlog.000007", &events);
        let ends: Vec<u32> = groups(&events).into_iter().map(|(_, end)| end).collect();
        assert_eq!(ends, [493, 791, 1560, 2659, 3331]);
    }

    #[test]
    fn a_compressed_mysql_transaction_is_one_opaque_event() {
        let name = "binlog.000042";
        let events = stream_file(testdata::MYSQL_8_0_32_COMPRESSED, name);
        assert_stream_is_the_file(testdata::MYSQL_8_0_32_COMPRESSED, name, &events);
        // ANONYMOUS_GTID + TRANSACTION_PAYLOAD is the whole transaction: the
        // payload ends it and nothing from inside it is yielded.
        assert_eq!(groups(&events), [("anonymous".to_string(), 431)]);
        let types: Vec<EventType> = events.iter().map(BinlogEvent::event_type).collect();
        assert_eq!(
            types,
            [
                EventType::Rotate,
                EventType::FormatDescription,
                EventType::PreviousGtids,
                EventType::AnonymousGtid,
                EventType::TransactionPayload,
                EventType::Rotate,
            ]
        );
        let payload = &events[4];
        assert_eq!(payload.raw.bytes.len(), 157);
        payload.raw.verify_crc32().unwrap();
        // Its body still holds the zstd frame (magic 28 b5 2f fd) MySQL wrote.
        let body = payload.raw.body(BinlogChecksum::Crc32).unwrap();
        assert!(body.windows(4).any(|w| w == [0x28, 0xb5, 0x2f, 0xfd]));
        // The real Rotate at the end is in this file; the next one follows.
        assert_eq!(events[5].file, name);
        assert!(!events[5].artificial);
    }

    #[test]
    fn a_tagged_gtid_is_refused_by_name() {
        let file = testdata::parse(testdata::MYSQL_9_6_TAGGED);
        let mut d = StreamDecoder::new("mysql96:3306", false);
        let mut packets = testdata::dump_packets(&file, "binlog.000004").into_iter();
        for packet in packets.by_ref().take(3) {
            d.decode(packet).unwrap(); // Rotate, FORMAT_DESCRIPTION, PREVIOUS_GTIDS
        }
        let err = d.decode(packets.next().unwrap()).unwrap_err();
        assert!(matches!(err, MysqlError::Unsupported { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("mysql96:3306"), "{text}");
        assert!(text.contains("tagged GTID"), "{text}");
        assert!(text.contains("binlog.000004:328"), "{text}");
    }

    #[test]
    fn the_truncated_fixture_as_a_packet_is_an_event_error() {
        // The 10 header bytes after the truncated file's magic, as a packet.
        let mut packet = vec![0x00];
        packet.extend_from_slice(&testdata::TRUNCATED[4..]);
        let err = StreamDecoder::new("mysql8:3306", false)
            .decode(packet.into())
            .unwrap_err();
        assert!(
            matches!(
                err,
                MysqlError::Event {
                    source: EventError::TruncatedHeader { len: 10 },
                    ..
                }
            ),
            "{err:?}"
        );
    }
}
