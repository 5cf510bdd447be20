//! Binlog event framing: the 19-byte v4 common header and the raw event.
//!
//! ```text
//! timestamp u32le | type_code u8 | server_id u32le | event_size u32le | log_pos u32le | flags u16le
//! ```
//!
//! `event_size` counts the whole event: header, body and checksum trailer.
//! `log_pos` is the offset just past this event in the primary's binlog file
//! (0 for artificial events a server makes up for a stream).

use bytes::{BufMut, Bytes, BytesMut};

use crate::checksum::{BinlogChecksum, CRC32_LEN};
use crate::event_type::EventType;

pub const EVENT_HEADER_LEN: usize = 19;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("binlog event header needs {EVENT_HEADER_LEN} bytes, got {len}")]
    TruncatedHeader { len: usize },
    #[error("binlog event header says event_size {event_size}, less than the {EVENT_HEADER_LEN}-byte header itself; the bytes are not a binlog event")]
    EventSizeTooSmall { event_size: u32 },
    #[error("binlog event {event_type:?} says event_size {event_size} but {len} bytes were given")]
    SizeMismatch {
        event_type: EventType,
        event_size: u32,
        len: usize,
    },
    #[error("binlog event {event_type:?} ending at log_pos {log_pos} has {len} bytes, too short for a header and a CRC32 trailer")]
    TooShortForChecksum {
        event_type: EventType,
        log_pos: u32,
        len: usize,
    },
    #[error("binlog event {event_type:?} ending at log_pos {log_pos} fails its CRC32: stored {stored:#010x}, computed {computed:#010x}; the bytes were corrupted in transit or storage")]
    ChecksumMismatch {
        event_type: EventType,
        log_pos: u32,
        stored: u32,
        computed: u32,
    },
    #[error("{event_type:?} event body needs {needed} bytes, got {len}")]
    BodyTooShort {
        event_type: EventType,
        needed: usize,
        len: usize,
    },
    #[error("{event_type:?} event body is invalid: {reason}")]
    InvalidBody {
        event_type: EventType,
        reason: String,
    },
}

/// The common header of every binlog event (binlog format v4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventHeader {
    pub timestamp: u32,
    pub event_type: EventType,
    pub server_id: u32,
    pub event_size: u32,
    pub log_pos: u32,
    pub flags: u16,
}

impl EventHeader {
    /// Parses the header from the first 19 bytes of `bytes`; the rest is
    /// ignored.
    pub fn parse(bytes: &[u8]) -> Result<Self, EventError> {
        let h: &[u8; EVENT_HEADER_LEN] = bytes
            .get(..EVENT_HEADER_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(EventError::TruncatedHeader { len: bytes.len() })?;
        let u32_at = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        Ok(EventHeader {
            timestamp: u32_at(0),
            event_type: EventType::from(h[4]),
            server_id: u32_at(5),
            event_size: u32_at(9),
            log_pos: u32_at(13),
            flags: u16::from_le_bytes([h[17], h[18]]),
        })
    }

    pub fn encode(&self, buf: &mut BytesMut) {
        buf.put_u32_le(self.timestamp);
        buf.put_u8(self.event_type.into());
        buf.put_u32_le(self.server_id);
        buf.put_u32_le(self.event_size);
        buf.put_u32_le(self.log_pos);
        buf.put_u16_le(self.flags);
    }
}

/// One event's exact bytes (header, body and checksum trailer, if any) with
/// its parsed header. The bytes are what the primary sent; the archive stores
/// and a replica receives them unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEvent {
    pub header: EventHeader,
    pub bytes: Bytes,
}

impl RawEvent {
    /// Takes `bytes` as exactly one event: its header's event_size must
    /// equal the length.
    pub fn parse(bytes: Bytes) -> Result<Self, EventError> {
        let header = EventHeader::parse(&bytes)?;
        if (header.event_size as usize) < EVENT_HEADER_LEN {
            return Err(EventError::EventSizeTooSmall {
                event_size: header.event_size,
            });
        }
        if header.event_size as usize != bytes.len() {
            return Err(EventError::SizeMismatch {
                event_type: header.event_type,
                event_size: header.event_size,
                len: bytes.len(),
            });
        }
        Ok(RawEvent { header, bytes })
    }

    /// Builds an event from a header and body, setting event_size and
    /// appending the trailer `checksum` calls for. `header.event_size` is
    /// ignored.
    pub fn build(header: EventHeader, body: &[u8], checksum: BinlogChecksum) -> Self {
        let len = EVENT_HEADER_LEN + body.len() + checksum.trailer_len();
        let header = EventHeader {
            event_size: len as u32,
            ..header
        };
        let mut buf = BytesMut::with_capacity(len);
        header.encode(&mut buf);
        buf.put_slice(body);
        if checksum == BinlogChecksum::Crc32 {
            let crc = crc32fast::hash(&buf);
            buf.put_u32_le(crc);
        }
        RawEvent {
            header,
            bytes: buf.freeze(),
        }
    }

    pub fn encode(&self, buf: &mut BytesMut) {
        buf.put_slice(&self.bytes);
    }

    /// Checks the CRC32 trailer (binlog_checksum=CRC32).
    pub fn verify_crc32(&self) -> Result<(), EventError> {
        let len = self.bytes.len();
        if len < EVENT_HEADER_LEN + CRC32_LEN {
            return Err(EventError::TooShortForChecksum {
                event_type: self.header.event_type,
                log_pos: self.header.log_pos,
                len,
            });
        }
        let (covered, trailer) = self.bytes.split_at(len - CRC32_LEN);
        let stored = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
        let computed = crc32fast::hash(covered);
        if stored != computed {
            return Err(EventError::ChecksumMismatch {
                event_type: self.header.event_type,
                log_pos: self.header.log_pos,
                stored,
                computed,
            });
        }
        Ok(())
    }

    /// Checks the trailer if `checksum` says there is one.
    pub fn verify(&self, checksum: BinlogChecksum) -> Result<(), EventError> {
        match checksum {
            BinlogChecksum::Off => Ok(()),
            BinlogChecksum::Crc32 => self.verify_crc32(),
        }
    }

    /// The bytes between the header and the checksum trailer.
    pub fn body(&self, checksum: BinlogChecksum) -> Result<&[u8], EventError> {
        let end = self
            .bytes
            .len()
            .checked_sub(checksum.trailer_len())
            .filter(|&end| end >= EVENT_HEADER_LEN)
            .ok_or(EventError::TooShortForChecksum {
                event_type: self.header.event_type,
                log_pos: self.header.log_pos,
                len: self.bytes.len(),
            })?;
        Ok(&self.bytes[EVENT_HEADER_LEN..end])
    }
}

/// Fails with BodyTooShort unless `body` has at least `needed` bytes.
pub(crate) fn require_len(
    event_type: EventType,
    body: &[u8],
    needed: usize,
) -> Result<(), EventError> {
    if body.len() < needed {
        return Err(EventError::BodyTooShort {
            event_type,
            needed,
            len: body.len(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The GTID_LIST event of the MariaDB knowledge base's example
    /// (gtid_list_event.md): "Gtid list [0-10124-3584]", CRC32 0xb6d8f0a8.
    #[rustfmt::skip]
    const GTID_LIST_EVENT: &[u8] = &[
        0xa4, 0x85, 0x9e, 0x59, 0xa3, 0x8c, 0x27, 0x00, 0x00, 0x2b, 0x00, 0x00, 0x00, 0x24, 0x01, 0x00,
        0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x8c, 0x27, 0x00, 0x00, 0x00,
        0x0e, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xa8, 0xf0, 0xd8, 0xb6,
    ];

    #[test]
    fn header_parses_and_encodes_literal_bytes() {
        let h = EventHeader::parse(GTID_LIST_EVENT).unwrap();
        assert_eq!(
            h,
            EventHeader {
                timestamp: 0x599e85a4,
                event_type: EventType::GtidList,
                server_id: 10124,
                event_size: 43,
                log_pos: 292,
                flags: 0,
            }
        );
        let mut buf = BytesMut::new();
        h.encode(&mut buf);
        assert_eq!(&buf[..], &GTID_LIST_EVENT[..EVENT_HEADER_LEN]);
    }

    #[test]
    fn raw_event_keeps_exact_bytes_and_verifies_crc32() {
        let ev = RawEvent::parse(Bytes::from_static(GTID_LIST_EVENT)).unwrap();
        ev.verify_crc32().unwrap();
        assert_eq!(&ev.bytes[..], GTID_LIST_EVENT);
        assert_eq!(ev.body(BinlogChecksum::Crc32).unwrap().len(), 20);
        assert_eq!(ev.body(BinlogChecksum::Off).unwrap().len(), 24);
        let mut out = BytesMut::new();
        ev.encode(&mut out);
        assert_eq!(&out[..], GTID_LIST_EVENT);
    }

    #[test]
    fn any_flipped_bit_fails_the_crc32() {
        for i in 0..GTID_LIST_EVENT.len() {
            let mut bad = GTID_LIST_EVENT.to_vec();
            bad[i] ^= 0x10;
            // Flips in event_size fail parse instead; both are errors.
            let checked = RawEvent::parse(Bytes::from(bad)).and_then(|ev| ev.verify_crc32());
            assert!(checked.is_err(), "flip at byte {i} went unnoticed");
        }
        let mut bad = GTID_LIST_EVENT.to_vec();
        bad[25] ^= 1;
        let err = RawEvent::parse(Bytes::from(bad))
            .unwrap()
            .verify_crc32()
            .unwrap_err();
        assert!(
            err.to_string().contains("stored 0xb6d8f0a8"),
            "error names the checksums: {err}"
        );
    }

    #[test]
    fn build_computes_size_and_checksum() {
        let header = EventHeader::parse(GTID_LIST_EVENT).unwrap();
        let body = &GTID_LIST_EVENT[EVENT_HEADER_LEN..GTID_LIST_EVENT.len() - 4];
        let built = RawEvent::build(
            EventHeader {
                event_size: 0,
                ..header
            },
            body,
            BinlogChecksum::Crc32,
        );
        assert_eq!(&built.bytes[..], GTID_LIST_EVENT);
        let plain = RawEvent::build(header, body, BinlogChecksum::Off);
        assert_eq!(plain.header.event_size, 39);
        assert_eq!(plain.body(BinlogChecksum::Off).unwrap(), body);
    }

    #[test]
    fn truncated_or_garbage_input_is_an_error() {
        for cut in 0..GTID_LIST_EVENT.len() {
            let bytes = Bytes::copy_from_slice(&GTID_LIST_EVENT[..cut]);
            assert!(RawEvent::parse(bytes).is_err(), "cut at {cut}");
        }
        let mut tiny = GTID_LIST_EVENT[..EVENT_HEADER_LEN].to_vec();
        tiny[9..13].copy_from_slice(&5u32.to_le_bytes());
        assert_eq!(
            RawEvent::parse(Bytes::from(tiny)),
            Err(EventError::EventSizeTooSmall { event_size: 5 })
        );
        let mut header_only = GTID_LIST_EVENT[..EVENT_HEADER_LEN].to_vec();
        header_only[9..13].copy_from_slice(&19u32.to_le_bytes());
        let ev = RawEvent::parse(Bytes::from(header_only)).unwrap();
        assert!(ev.verify_crc32().is_err());
        assert!(ev.body(BinlogChecksum::Crc32).is_err());
        assert_eq!(ev.body(BinlogChecksum::Off).unwrap(), &[] as &[u8]);
    }
}
