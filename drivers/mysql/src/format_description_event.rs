//! FORMAT_DESCRIPTION_EVENT (15): the first event of every binlog file and
//! stream. It says which server wrote the binlog and, in its last five bytes,
//! which checksum the following events carry.
//!
//! ```text
//! binlog_version u16le | server_version [50] NUL-padded | create_timestamp u32le
//! | header_length u8 | post_header_lengths [n] | checksum_alg u8 | crc32 [4]
//! ```
//!
//! The event itself always has the 4-byte trailer (servers that know about
//! checksums checksum it whatever binlog_checksum says), so its body is read
//! from the end inwards. Servers older than MySQL 5.6.1 / MariaDB 5.3 wrote no
//! algorithm byte; they are refused with a clear error.

use bytes::{BufMut, BytesMut};

use crate::checksum::{BinlogChecksum, CRC32_LEN};
use crate::event::{require_len, EventError, RawEvent, EVENT_HEADER_LEN};
use crate::event_type::EventType;

const SERVER_VERSION_LEN: usize = 50;
/// binlog_version, server_version, create_timestamp, header_length.
const FIXED_LEN: usize = 2 + SERVER_VERSION_LEN + 4 + 1;
const TYPE: EventType = EventType::FormatDescription;

/// LOG_EVENT_BINLOG_IN_USE_F: set in the FORMAT_DESCRIPTION of a binlog
/// file while the server writes it, cleared when it closes the file and in
/// what it streams. The CRC32 is computed as if it were clear, so clearing
/// it changes no checksum.
pub const BINLOG_IN_USE_FLAG: u16 = 0x1;
/// Where the low byte of the header's flags sits.
const FLAGS_OFFSET: usize = 17;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatDescriptionEvent {
    pub binlog_version: u16,
    pub server_version: String,
    pub create_timestamp: u32,
    /// Post-header length for each event type, indexed by type_code - 1.
    pub post_header_lengths: Vec<u8>,
    pub checksum: BinlogChecksum,
}

impl FormatDescriptionEvent {
    /// Parses the event's bytes after the common header, trailer included.
    pub fn parse(after_header: &[u8]) -> Result<Self, EventError> {
        require_len(TYPE, after_header, FIXED_LEN + 1 + CRC32_LEN)?;
        let invalid = |reason: String| EventError::InvalidBody {
            event_type: TYPE,
            reason,
        };
        let binlog_version = u16::from_le_bytes([after_header[0], after_header[1]]);
        if binlog_version != 4 {
            return Err(invalid(format!(
                "binlog_version {binlog_version}; only version 4 (MySQL 5.0+, MariaDB) is supported"
            )));
        }
        let version_field = &after_header[2..2 + SERVER_VERSION_LEN];
        let version_len = version_field
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(SERVER_VERSION_LEN);
        let server_version = String::from_utf8_lossy(&version_field[..version_len]).into_owned();
        let t = &after_header[52..56];
        let create_timestamp = u32::from_le_bytes([t[0], t[1], t[2], t[3]]);
        let header_length = after_header[56];
        if header_length as usize != EVENT_HEADER_LEN {
            return Err(invalid(format!(
                "common header length {header_length}, expected {EVENT_HEADER_LEN}"
            )));
        }
        let alg_at = after_header.len() - CRC32_LEN - 1;
        let alg = after_header[alg_at];
        let checksum = BinlogChecksum::from_byte(alg).ok_or_else(|| {
            invalid(format!(
                "checksum algorithm byte {alg} from server {server_version:?}; instarec reads binlogs with binlog_checksum NONE or CRC32 from MySQL 5.6.1+ / MariaDB 5.3+"
            ))
        })?;
        Ok(FormatDescriptionEvent {
            binlog_version,
            server_version,
            create_timestamp,
            post_header_lengths: after_header[FIXED_LEN..alg_at].to_vec(),
            checksum,
        })
    }

    /// Parses `event` and, if it announces CRC32, checks its own checksum.
    pub fn from_event(event: &RawEvent) -> Result<Self, EventError> {
        if event.header.event_type != TYPE {
            return Err(EventError::InvalidBody {
                event_type: event.header.event_type,
                reason: "expected a FORMAT_DESCRIPTION event".into(),
            });
        }
        let fde = Self::parse(&event.bytes[EVENT_HEADER_LEN..])?;
        if event.header.flags & BINLOG_IN_USE_FLAG == 0 {
            event.verify(fde.checksum)?;
        } else {
            // The server's CRC covers the event with the flag cleared.
            let mut bytes = event.bytes.to_vec();
            bytes[FLAGS_OFFSET] &= !(BINLOG_IN_USE_FLAG as u8);
            RawEvent::parse(bytes.into())?.verify(fde.checksum)?;
        }
        Ok(fde)
    }

    /// Encodes the body up to and including the algorithm byte; the
    /// trailer is added by `RawEvent::build` with `BinlogChecksum::Crc32`.
    pub fn encode(&self, buf: &mut BytesMut) {
        buf.put_u16_le(self.binlog_version);
        let mut version = [0u8; SERVER_VERSION_LEN];
        let n = self.server_version.len().min(SERVER_VERSION_LEN);
        version[..n].copy_from_slice(&self.server_version.as_bytes()[..n]);
        buf.put_slice(&version);
        buf.put_u32_le(self.create_timestamp);
        buf.put_u8(EVENT_HEADER_LEN as u8);
        buf.put_slice(&self.post_header_lengths);
        buf.put_u8(self.checksum.to_byte());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventHeader;
    use bytes::Bytes;

    #[test]
    fn parse_then_build_reproduces_the_event() {
        let fde = FormatDescriptionEvent {
            binlog_version: 4,
            server_version: "10.11.19-MariaDB-log".into(),
            create_timestamp: 0,
            post_header_lengths: vec![0x38, 0x0d, 0x00, 0x08],
            checksum: BinlogChecksum::Crc32,
        };
        let mut body = BytesMut::new();
        fde.encode(&mut body);
        assert_eq!(body.len(), FIXED_LEN + 4 + 1);
        assert_eq!(&body[..4], &[0x04, 0x00, b'1', b'0']);
        let header = EventHeader {
            timestamp: 1,
            event_type: TYPE,
            server_id: 1,
            event_size: 0,
            log_pos: 4 + 19 + 66,
            flags: 0,
        };
        let event = RawEvent::build(header, &body, BinlogChecksum::Crc32);
        assert_eq!(FormatDescriptionEvent::from_event(&event).unwrap(), fde);
        let reparsed = RawEvent::parse(event.bytes.clone()).unwrap();
        assert_eq!(reparsed, event);
    }

    #[test]
    fn in_use_flag_is_outside_the_checksum() {
        let fde = FormatDescriptionEvent {
            binlog_version: 4,
            server_version: "10.11.19-MariaDB-log".into(),
            create_timestamp: 0,
            post_header_lengths: vec![0x38, 0x0d],
            checksum: BinlogChecksum::Crc32,
        };
        let mut body = BytesMut::new();
        fde.encode(&mut body);
        let header = EventHeader {
            timestamp: 1,
            event_type: TYPE,
            server_id: 1,
            event_size: 0,
            log_pos: 0,
            flags: 0,
        };
        let closed = RawEvent::build(header, &body, BinlogChecksum::Crc32);
        let mut open = closed.bytes.to_vec();
        open[FLAGS_OFFSET] |= 1;
        let open = RawEvent::parse(open.into()).unwrap();
        assert!(open.verify_crc32().is_err());
        assert_eq!(FormatDescriptionEvent::from_event(&open).unwrap(), fde);
        let mut corrupt = open.bytes.to_vec();
        corrupt[30] ^= 1;
        assert!(
            FormatDescriptionEvent::from_event(&RawEvent::parse(corrupt.into()).unwrap()).is_err()
        );
    }

    #[test]
    fn refuses_unknown_algorithms_and_short_bodies() {
        let mut body = vec![4, 0];
        body.extend_from_slice(&[0u8; SERVER_VERSION_LEN]);
        body.extend_from_slice(&[0, 0, 0, 0, 19, 2, 0, 0, 0, 0]);
        body.push(0); // alg + 4 crc bytes below: alg sits at len - 5
        body.extend_from_slice(&[0; 4]);
        let n = body.len();
        body[n - 5] = 255;
        let err = FormatDescriptionEvent::parse(&body).unwrap_err();
        assert!(err.to_string().contains("MariaDB 5.3+"), "{err}");
        for cut in 0..FIXED_LEN + 5 {
            assert!(FormatDescriptionEvent::parse(&body[..cut]).is_err());
        }
        let rotate = RawEvent::build(
            EventHeader {
                timestamp: 0,
                event_type: EventType::Rotate,
                server_id: 1,
                event_size: 0,
                log_pos: 0,
                flags: 0,
            },
            &body,
            BinlogChecksum::Off,
        );
        assert!(FormatDescriptionEvent::from_event(&rotate).is_err());
        assert!(RawEvent::parse(Bytes::from_static(&[0; 3])).is_err());
    }
}
