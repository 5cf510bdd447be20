//! What arrives on a physical replication stream.

use bytes::Bytes;

use crate::replication::keepalive::{self, PrimaryKeepalive};
use crate::replication::xlog_data::{self, XLogData};

#[derive(Clone, Eq, PartialEq, Debug)]
pub enum ReplicationMessage {
    XLogData(XLogData),
    Keepalive(PrimaryKeepalive),
    /// The server sent CopyDone: this timeline ended (or the server is shutting down).
    /// Call [`crate::WalStream::finish`] to learn the next timeline.
    EndOfTimeline,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("{message} is truncated: need {need} bytes, got {have}")]
    Truncated {
        message: &'static str,
        need: usize,
        have: usize,
    },
    #[error("{message} has tag {:?}", *.tag as char)]
    Tag { message: &'static str, tag: u8 },
    #[error("unknown replication message tag {:?} in CopyData", *.tag as char)]
    Unknown { tag: u8 },
    #[error("empty CopyData on the replication stream")]
    Empty,
}

impl ReplicationMessage {
    /// Parses one CopyData payload from the server.
    pub fn from_copy_data(payload: Bytes) -> Result<Self, MessageError> {
        match payload.first() {
            Some(&xlog_data::TAG) => {
                Ok(ReplicationMessage::XLogData(XLogData::from_bytes(payload)?))
            }
            Some(&keepalive::TAG) => Ok(ReplicationMessage::Keepalive(PrimaryKeepalive::parse(
                &payload,
            )?)),
            Some(&tag) => Err(MessageError::Unknown { tag }),
            None => Err(MessageError::Empty),
        }
    }
}

pub(crate) fn be_u64(buf: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    u64::from_be_bytes(b)
}

pub(crate) fn be_i64(buf: &[u8], at: usize) -> i64 {
    be_u64(buf, at) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispatches_on_tag() {
        let k = Bytes::from_static(&[b'k', 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0]);
        assert!(matches!(
            ReplicationMessage::from_copy_data(k),
            Ok(ReplicationMessage::Keepalive(_))
        ));
        let w = Bytes::from_static(&[
            b'w', 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3, 7,
        ]);
        match ReplicationMessage::from_copy_data(w).unwrap() {
            ReplicationMessage::XLogData(x) => assert_eq!(&x.data[..], &[7]),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            ReplicationMessage::from_copy_data(Bytes::from_static(b"x")),
            Err(MessageError::Unknown { tag: b'x' })
        );
        assert_eq!(
            ReplicationMessage::from_copy_data(Bytes::new()),
            Err(MessageError::Empty)
        );
    }
}
