//! Primary keepalive ('k'): the server's WAL end and whether it wants a status update now.

use bytes::{BufMut, BytesMut};

use crate::lsn::Lsn;
use crate::replication::message::{be_i64, be_u64, MessageError};
use crate::replication::timestamp::PgTimestamp;

pub const TAG: u8 = b'k';
const LEN: usize = 1 + 8 + 8 + 1;

#[derive(Copy, Clone, Eq, PartialEq, Debug)]
pub struct PrimaryKeepalive {
    pub wal_end: Lsn,
    pub send_time: PgTimestamp,
    /// The server will disconnect us after wal_sender_timeout unless we answer soon.
    pub reply_requested: bool,
}

impl PrimaryKeepalive {
    /// Parses a CopyData payload, tag byte included.
    pub fn parse(buf: &[u8]) -> Result<Self, MessageError> {
        if buf.len() < LEN {
            return Err(MessageError::Truncated {
                message: "PrimaryKeepalive",
                need: LEN,
                have: buf.len(),
            });
        }
        if buf[0] != TAG {
            return Err(MessageError::Tag {
                message: "PrimaryKeepalive",
                tag: buf[0],
            });
        }
        Ok(PrimaryKeepalive {
            wal_end: Lsn(be_u64(buf, 1)),
            send_time: PgTimestamp(be_i64(buf, 9)),
            reply_requested: buf[17] != 0,
        })
    }

    pub fn encode(&self, buf: &mut BytesMut) {
        buf.reserve(LEN);
        buf.put_u8(TAG);
        buf.put_u64(self.wal_end.0);
        buf.put_i64(self.send_time.0);
        buf.put_u8(u8::from(self.reply_requested));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BYTES: &[u8] = &[
        b'k', //
        0, 0, 0, 0x16, 0xB3, 0x74, 0xD8, 0x48, // wal_end 16/B374D848
        0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE, // send_time -2
        1,
    ];

    #[test]
    fn parses_and_encodes_literal_bytes() {
        let m = PrimaryKeepalive::parse(BYTES).unwrap();
        assert_eq!(
            m,
            PrimaryKeepalive {
                wal_end: "16/B374D848".parse().unwrap(),
                send_time: PgTimestamp(-2),
                reply_requested: true
            }
        );
        let mut out = BytesMut::new();
        m.encode(&mut out);
        assert_eq!(&out[..], BYTES);
    }

    #[test]
    fn rejects_short_or_mistagged_input() {
        assert!(matches!(
            PrimaryKeepalive::parse(&BYTES[..17]),
            Err(MessageError::Truncated { .. })
        ));
        assert!(matches!(
            PrimaryKeepalive::parse(b"w00000000000000000"),
            Err(MessageError::Tag { tag: b'w', .. })
        ));
    }
}
