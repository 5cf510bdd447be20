//! Semi-synchronous replication framing (MariaDB and MySQL).
//!
//! A replica that sets `@rpl_semi_sync_slave = 1` gets every event packet
//! with two extra bytes after the 0x00 OK byte:
//!
//! ```text
//! 0x00 | 0xef | flags u8 (0x01 = the primary waits for an ack) | event
//! ```
//!
//! and acknowledges a flagged event, once it is durable, with its own packet:
//!
//! ```text
//! 0xef | binlog_pos u64le | binlog file name (rest)
//! ```

use bytes::{BufMut, BytesMut};

use crate::binlog_position::BinlogPosition;

pub const SEMI_SYNC_MAGIC: u8 = 0xef;
const NEED_ACK: u8 = 0x01;

/// Splits the semi-sync header off an event packet's payload (after the
/// 0x00 byte): returns whether the primary waits for an ack, and the event.
/// None if the header is missing.
pub fn split_header(payload: &[u8]) -> Option<(bool, &[u8])> {
    match payload {
        [SEMI_SYNC_MAGIC, flags, event @ ..] => Some((flags & NEED_ACK != 0, event)),
        _ => None,
    }
}

/// The ack telling the primary that everything up to `position` is safe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SemiSyncAck {
    pub position: BinlogPosition,
}

impl SemiSyncAck {
    pub fn encode(&self, buf: &mut BytesMut) {
        buf.put_u8(SEMI_SYNC_MAGIC);
        buf.put_u64_le(self.position.pos);
        buf.put_slice(self.position.file.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_literal_bytes() {
        assert_eq!(
            split_header(&[0xef, 0x01, 9, 9]),
            Some((true, &[9u8, 9][..]))
        );
        assert_eq!(split_header(&[0xef, 0x00, 9]), Some((false, &[9u8][..])));
        assert_eq!(split_header(&[0xef]), None);
        assert_eq!(split_header(&[0x5f, 0x01, 9]), None);
    }

    #[test]
    fn ack_literal_bytes() {
        let mut buf = BytesMut::new();
        SemiSyncAck {
            position: BinlogPosition::new("mysql-bin.000001", 0x1234).unwrap(),
        }
        .encode(&mut buf);
        let mut expected = vec![0xef, 0x34, 0x12, 0, 0, 0, 0, 0, 0];
        expected.extend_from_slice(b"mysql-bin.000001");
        assert_eq!(&buf[..], &expected[..]);
    }
}
