//! ROTATE_EVENT (4): ends a binlog file and names the next one.
//!
//! ```text
//! position u64le | next file name (rest of the body, no NUL)
//! ```

use bytes::{BufMut, BytesMut};

use crate::binlog_position::BinlogPosition;
use crate::event::{require_len, EventError};
use crate::event_type::EventType;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotateEvent {
    /// Where the next file's events start (4, just after the magic).
    pub next: BinlogPosition,
}

impl RotateEvent {
    /// Parses the body (between header and checksum trailer).
    pub fn parse(body: &[u8]) -> Result<Self, EventError> {
        require_len(EventType::Rotate, body, 9)?;
        let mut pos = [0u8; 8];
        pos.copy_from_slice(&body[..8]);
        let name = std::str::from_utf8(&body[8..]).map_err(|_| EventError::InvalidBody {
            event_type: EventType::Rotate,
            reason: "next file name is not UTF-8".into(),
        })?;
        let next = BinlogPosition::new(name, u64::from_le_bytes(pos)).map_err(|e| {
            EventError::InvalidBody {
                event_type: EventType::Rotate,
                reason: e.to_string(),
            }
        })?;
        Ok(RotateEvent { next })
    }

    pub fn encode(&self, buf: &mut BytesMut) {
        buf.put_u64_le(self.next.pos);
        buf.put_slice(self.next.file.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_encodes_literal_bytes() {
        let body = b"\x04\0\0\0\0\0\0\0mysql-bin.000003";
        let ev = RotateEvent::parse(body).unwrap();
        assert_eq!(ev.next.to_string(), "mysql-bin.000003:4");
        let mut buf = BytesMut::new();
        ev.encode(&mut buf);
        assert_eq!(&buf[..], body);
    }

    #[test]
    fn rejects_short_or_unsafe_names() {
        assert!(RotateEvent::parse(b"\x04\0\0\0\0\0\0\0").is_err());
        assert!(RotateEvent::parse(b"\x04\0\0").is_err());
        assert!(RotateEvent::parse(b"\x04\0\0\0\0\0\0\0../x").is_err());
        assert!(RotateEvent::parse(b"\x04\0\0\0\0\0\0\0\xff").is_err());
    }
}
