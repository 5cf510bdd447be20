//! Standby status update ('r'): what we have written, flushed and applied. The server
//! keeps WAL (with a slot) and reports `flush_lsn` in pg_stat_replication from it, so
//! `flush` must only cover WAL that is durable in the archive.

use bytes::{BufMut, BytesMut};

use crate::lsn::Lsn;
use crate::replication::message::{be_i64, be_u64, MessageError};
use crate::replication::timestamp::PgTimestamp;

pub const TAG: u8 = b'r';
const LEN: usize = 1 + 8 + 8 + 8 + 8 + 1;

#[derive(Copy, Clone, Eq, PartialEq, Debug)]
pub struct StandbyStatusUpdate {
    pub write: Lsn,
    pub flush: Lsn,
    pub apply: Lsn,
    pub send_time: PgTimestamp,
    /// Ask the server to answer with a keepalive right away.
    pub reply_requested: bool,
}

impl StandbyStatusUpdate {
    /// Parses a CopyData payload, tag byte included.
    pub fn parse(buf: &[u8]) -> Result<Self, MessageError> {
        if buf.len() < LEN {
            return Err(MessageError::Truncated {
                message: "StandbyStatusUpdate",
                need: LEN,
                have: buf.len(),
            });
        }
        if buf[0] != TAG {
            return Err(MessageError::Tag {
                message: "StandbyStatusUpdate",
                tag: buf[0],
            });
        }
        Ok(StandbyStatusUpdate {
            write: Lsn(be_u64(buf, 1)),
            flush: Lsn(be_u64(buf, 9)),
            apply: Lsn(be_u64(buf, 17)),
            send_time: PgTimestamp(be_i64(buf, 25)),
            reply_requested: buf[33] != 0,
        })
    }

    pub fn encode(&self, buf: &mut BytesMut) {
        buf.reserve(LEN);
        buf.put_u8(TAG);
        buf.put_u64(self.write.0);
        buf.put_u64(self.flush.0);
        buf.put_u64(self.apply.0);
        buf.put_i64(self.send_time.0);
        buf.put_u8(u8::from(self.reply_requested));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BYTES: &[u8] = &[
        b'r', //
        0, 0, 0, 0, 0x03, 0, 0x01, 0, // write 0/3000100
        0, 0, 0, 0, 0x03, 0, 0, 0x60, // flush 0/3000060
        0, 0, 0, 0, 0, 0, 0, 0, // apply 0/0
        0, 0, 0, 0, 0, 0, 0x01, 0x00, // send_time 256
        0,
    ];

    #[test]
    fn parses_and_encodes_literal_bytes() {
        let m = StandbyStatusUpdate::parse(BYTES).unwrap();
        assert_eq!(
            m,
            StandbyStatusUpdate {
                write: "0/3000100".parse().unwrap(),
                flush: "0/3000060".parse().unwrap(),
                apply: Lsn::ZERO,
                send_time: PgTimestamp(256),
                reply_requested: false,
            }
        );
        let mut out = BytesMut::new();
        m.encode(&mut out);
        assert_eq!(&out[..], BYTES);
    }

    #[test]
    fn rejects_short_input() {
        assert_eq!(
            StandbyStatusUpdate::parse(&BYTES[..33]),
            Err(MessageError::Truncated {
                message: "StandbyStatusUpdate",
                need: 34,
                have: 33
            })
        );
    }
}
