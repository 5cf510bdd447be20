//! MariaDB BINLOG_CHECKPOINT_EVENT (161): names the oldest binlog file a
//! crash recovery would still need.
//!
//! ```text
//! file name length u32le | file name
//! ```

use bytes::{BufMut, BytesMut};

use crate::event::{require_len, EventError};
use crate::event_type::EventType;

const TYPE: EventType = EventType::BinlogCheckpoint;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinlogCheckpointEvent {
    pub file: String,
}

impl BinlogCheckpointEvent {
    /// Parses the body (between header and checksum trailer).
    pub fn parse(body: &[u8]) -> Result<Self, EventError> {
        require_len(TYPE, body, 4)?;
        let len = u32::from_le_bytes([body[0], body[1], body[2], body[3]]) as usize;
        let name = body
            .get(4..4usize.saturating_add(len))
            .ok_or(EventError::BodyTooShort {
                event_type: TYPE,
                needed: 4usize.saturating_add(len),
                len: body.len(),
            })?;
        let file = String::from_utf8(name.to_vec()).map_err(|_| EventError::InvalidBody {
            event_type: TYPE,
            reason: "file name is not UTF-8".into(),
        })?;
        Ok(BinlogCheckpointEvent { file })
    }

    pub fn encode(&self, buf: &mut BytesMut) {
        buf.put_u32_le(self.file.len() as u32);
        buf.put_slice(self.file.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_encodes_literal_bytes() {
        let body = b"\x10\0\0\0mysql-bin.000001";
        let ev = BinlogCheckpointEvent::parse(body).unwrap();
        assert_eq!(ev.file, "mysql-bin.000001");
        let mut buf = BytesMut::new();
        ev.encode(&mut buf);
        assert_eq!(&buf[..], body);
        assert!(BinlogCheckpointEvent::parse(&body[..10]).is_err());
        assert!(BinlogCheckpointEvent::parse(b"\xff\xff\xff\xffx").is_err());
    }
}
