//! Events the relay makes up for a stream, as a primary does: the fake
//! ROTATE that names the file a stream starts in, the FORMAT_DESCRIPTION
//! with its in-use flag clear (re-stamped for a stream that starts
//! mid-file), a GTID_LIST with the
//! replica's position, and HEARTBEATs while idle. Each gets a CRC32 trailer
//! when the stream carries checksums.
//!
//! ```text
//! HEARTBEAT_LOG_EVENT (27): header (log_pos = position in the current file) | file name
//! ```

use bytes::{Bytes, BytesMut};

use crate::binlog_position::BinlogPosition;
use crate::checksum::{BinlogChecksum, CRC32_LEN};
use crate::event::{EventError, EventHeader, RawEvent, EVENT_HEADER_LEN};
use crate::event_type::EventType;
use crate::format_description_event::{FormatDescriptionEvent, BINLOG_IN_USE_FLAG};
use crate::gtid::MariadbGtidPos;
use crate::mariadb_gtid_event::MariadbGtidListEvent;
use crate::rotate_event::RotateEvent;

/// LOG_EVENT_ARTIFICIAL_F: made up for the stream, not in any file; the
/// replica does not take its log_pos as a position.
pub const ARTIFICIAL_FLAG: u16 = 0x20;

const LOG_POS_AT: usize = 13;
const FLAGS_AT: usize = 17;
/// binlog_version u16 and server_version [50] come before create_timestamp.
const CREATED_AT: usize = EVENT_HEADER_LEN + 2 + 50;

fn header(event_type: EventType, server_id: u32, log_pos: u32, flags: u16) -> EventHeader {
    EventHeader {
        timestamp: 0,
        event_type,
        server_id,
        event_size: 0,
        log_pos,
        flags,
    }
}

/// The ROTATE that opens a stream (or a new file in it): "continue in
/// `next.file` at `next.pos`".
pub fn fake_rotate(server_id: u32, next: &BinlogPosition, checksum: BinlogChecksum) -> RawEvent {
    let mut body = BytesMut::new();
    RotateEvent { next: next.clone() }.encode(&mut body);
    RawEvent::build(
        header(EventType::Rotate, server_id, 0, ARTIFICIAL_FLAG),
        &body,
        checksum,
    )
}

/// A heartbeat: the stream is alive and at `at` (the end of the last event
/// sent, in its file).
pub fn heartbeat(server_id: u32, at: &BinlogPosition, checksum: BinlogChecksum) -> RawEvent {
    let log_pos = u32::try_from(at.pos).unwrap_or(u32::MAX);
    RawEvent::build(
        header(EventType::Heartbeat, server_id, log_pos, ARTIFICIAL_FLAG),
        at.file.as_bytes(),
        checksum,
    )
}

/// The GTID state a stream starts from.
pub fn gtid_list(server_id: u32, state: &MariadbGtidPos, checksum: BinlogChecksum) -> RawEvent {
    let mut body = BytesMut::new();
    MariadbGtidListEvent {
        flags: 0,
        gtids: state.iter().copied().collect(),
    }
    .encode(&mut body);
    RawEvent::build(
        header(EventType::GtidList, server_id, 0, 0),
        &body,
        checksum,
    )
}

/// A file's FORMAT_DESCRIPTION as a primary sends it to a replica that
/// reads the file from its start: as in the file, with the in-use flag
/// clear (the CRC32 already covers the event with the flag clear).
pub fn format_description_from_start(fd: &RawEvent) -> Result<RawEvent, EventError> {
    FormatDescriptionEvent::from_event(fd)?;
    if fd.header.flags & BINLOG_IN_USE_FLAG == 0 {
        return Ok(fd.clone());
    }
    let mut bytes = fd.bytes.to_vec();
    let flags = fd.header.flags & !BINLOG_IN_USE_FLAG;
    bytes[FLAGS_AT..FLAGS_AT + 2].copy_from_slice(&flags.to_le_bytes());
    RawEvent::parse(Bytes::from(bytes))
}

/// A file's FORMAT_DESCRIPTION as a primary sends it to a replica that
/// starts past the file's beginning: log_pos 0 (not a position to take),
/// create_timestamp 0 (not "the primary just restarted", which would make
/// the replica drop its temporary tables) and the in-use flag clear. The
/// CRC32, if the event has one, is recomputed over the new bytes.
pub fn restamped_format_description(fd: &RawEvent) -> Result<RawEvent, EventError> {
    let parsed = FormatDescriptionEvent::from_event(fd)?;
    let mut bytes = fd.bytes.to_vec();
    if bytes.len() < CREATED_AT + 4 + CRC32_LEN {
        return Err(EventError::BodyTooShort {
            event_type: EventType::FormatDescription,
            needed: CREATED_AT + 4 + CRC32_LEN,
            len: bytes.len(),
        });
    }
    bytes[LOG_POS_AT..LOG_POS_AT + 4].copy_from_slice(&0u32.to_le_bytes());
    let flags = u16::from_le_bytes([bytes[FLAGS_AT], bytes[FLAGS_AT + 1]]) & !BINLOG_IN_USE_FLAG;
    bytes[FLAGS_AT..FLAGS_AT + 2].copy_from_slice(&flags.to_le_bytes());
    bytes[CREATED_AT..CREATED_AT + 4].copy_from_slice(&0u32.to_le_bytes());
    if parsed.checksum == BinlogChecksum::Crc32 {
        let end = bytes.len() - CRC32_LEN;
        let crc = crc32fast::hash(&bytes[..end]);
        bytes[end..].copy_from_slice(&crc.to_le_bytes());
    }
    RawEvent::parse(Bytes::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mariadb_gtid_event::MariadbGtidListEvent;

    #[test]
    fn fake_rotate_literal_bytes() {
        let next = BinlogPosition::new("mysql-bin.000002", 4).unwrap();
        let ev = fake_rotate(1, &next, BinlogChecksum::Off);
        #[rustfmt::skip]
        let mut expected = vec![
            0, 0, 0, 0,       // timestamp
            0x04,             // ROTATE
            1, 0, 0, 0,       // server_id
            43, 0, 0, 0,      // event_size: 19 + 8 + 16
            0, 0, 0, 0,       // log_pos 0
            0x20, 0x00,       // LOG_EVENT_ARTIFICIAL_F
            4, 0, 0, 0, 0, 0, 0, 0,
        ];
        expected.extend_from_slice(b"mysql-bin.000002");
        assert_eq!(&ev.bytes[..], &expected[..]);
        let crc = fake_rotate(1, &next, BinlogChecksum::Crc32);
        assert_eq!(crc.bytes.len(), 47);
        crc.verify_crc32().unwrap();
        let body = crc.body(BinlogChecksum::Crc32).unwrap();
        assert_eq!(RotateEvent::parse(body).unwrap().next, next);
    }

    #[test]
    fn heartbeat_literal_bytes() {
        let at = BinlogPosition::new("mysql-bin.000001", 1234).unwrap();
        let ev = heartbeat(7, &at, BinlogChecksum::Crc32);
        assert_eq!(
            &ev.bytes[..19],
            &[0, 0, 0, 0, 27, 7, 0, 0, 0, 39, 0, 0, 0, 0xd2, 0x04, 0, 0, 0x20, 0]
        );
        assert_eq!(&ev.bytes[19..35], b"mysql-bin.000001");
        ev.verify_crc32().unwrap();
    }

    #[test]
    fn gtid_list_holds_the_state() {
        let state: MariadbGtidPos = "0-1-5,2-3-9".parse().unwrap();
        let ev = gtid_list(1, &state, BinlogChecksum::Crc32);
        ev.verify_crc32().unwrap();
        let parsed = MariadbGtidListEvent::from_event(&ev, BinlogChecksum::Crc32).unwrap();
        assert_eq!(parsed.position(), state);
        assert_eq!(ev.header.log_pos, 0);
    }

    #[test]
    fn restamped_fd_keeps_a_valid_checksum() {
        let fde = FormatDescriptionEvent {
            binlog_version: 4,
            server_version: "10.11.6-MariaDB-log".into(),
            create_timestamp: 1_700_000_000,
            post_header_lengths: vec![0x38, 0x0d, 0x00, 0x08],
            checksum: BinlogChecksum::Crc32,
        };
        let mut body = BytesMut::new();
        fde.encode(&mut body);
        let original = RawEvent::build(
            EventHeader {
                timestamp: 1_700_000_000,
                event_type: EventType::FormatDescription,
                server_id: 1,
                event_size: 0,
                log_pos: 256,
                flags: 0,
            },
            &body,
            BinlogChecksum::Crc32,
        );
        let mut in_use = original.bytes.to_vec();
        in_use[FLAGS_AT] |= 1;
        let in_use = RawEvent::parse(Bytes::from(in_use)).unwrap();
        let sent = restamped_format_description(&in_use).unwrap();
        sent.verify_crc32().unwrap();
        assert_eq!(sent.header.log_pos, 0);
        assert_eq!(sent.header.flags, 0);
        let parsed = FormatDescriptionEvent::from_event(&sent).unwrap();
        assert_eq!(parsed.create_timestamp, 0);
        assert_eq!(parsed.server_version, fde.server_version);
        // From the file's start: only the flag changes, and the CRC32
        // (over the event with the flag clear) stays valid.
        let from_start = format_description_from_start(&in_use).unwrap();
        assert_eq!(from_start.bytes, original.bytes);
        from_start.verify_crc32().unwrap();
        assert_eq!(
            format_description_from_start(&original).unwrap().bytes,
            original.bytes
        );
        let mut corrupt = original.bytes.to_vec();
        corrupt[40] ^= 1;
        let corrupt = RawEvent::parse(Bytes::from(corrupt)).unwrap();
        assert!(restamped_format_description(&corrupt).is_err());
        assert!(format_description_from_start(&corrupt).is_err());
    }
}
