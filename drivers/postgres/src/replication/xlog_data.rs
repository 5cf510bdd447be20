//! XLogData ('w'): a run of WAL bytes sent inside CopyData.

use bytes::{BufMut, Bytes, BytesMut};

use crate::lsn::Lsn;
use crate::replication::message::{be_i64, be_u64, MessageError};
use crate::replication::timestamp::PgTimestamp;

pub const TAG: u8 = b'w';
const HEADER_LEN: usize = 1 + 8 + 8 + 8;

#[derive(Clone, Eq, PartialEq, Debug)]
pub struct XLogData {
    /// LSN of the first byte of `data`.
    pub wal_start: Lsn,
    /// The server's current end of WAL.
    pub wal_end: Lsn,
    pub send_time: PgTimestamp,
    pub data: Bytes,
}

impl XLogData {
    /// Parses a CopyData payload, tag byte included. Copies `data`; see [`XLogData::from_bytes`].
    pub fn parse(buf: &[u8]) -> Result<Self, MessageError> {
        Self::from_bytes(Bytes::copy_from_slice(buf))
    }

    /// Like [`XLogData::parse`], but `data` shares `payload`'s memory.
    pub fn from_bytes(payload: Bytes) -> Result<Self, MessageError> {
        if payload.len() < HEADER_LEN {
            return Err(MessageError::Truncated {
                message: "XLogData",
                need: HEADER_LEN,
                have: payload.len(),
            });
        }
        if payload[0] != TAG {
            return Err(MessageError::Tag {
                message: "XLogData",
                tag: payload[0],
            });
        }
        Ok(XLogData {
            wal_start: Lsn(be_u64(&payload, 1)),
            wal_end: Lsn(be_u64(&payload, 9)),
            send_time: PgTimestamp(be_i64(&payload, 17)),
            data: payload.slice(HEADER_LEN..),
        })
    }

    pub fn encode(&self, buf: &mut BytesMut) {
        buf.reserve(HEADER_LEN + self.data.len());
        buf.put_u8(TAG);
        buf.put_u64(self.wal_start.0);
        buf.put_u64(self.wal_end.0);
        buf.put_i64(self.send_time.0);
        buf.put_slice(&self.data);
    }

    /// The LSN just past the last byte of `data`.
    pub fn data_end(&self) -> Lsn {
        Lsn(self.wal_start.0.saturating_add(self.data.len() as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BYTES: &[u8] = &[
        b'w', //
        0, 0, 0, 0, 0x03, 0, 0, 0x60, // wal_start 0/3000060
        0, 0, 0, 0, 0x03, 0, 0x01, 0, // wal_end 0/3000100
        0, 0, 0, 0, 0, 0x0F, 0x42, 0x40, // send_time 1_000_000 us
        0xDE, 0xAD, 0xBE, 0xEF,
    ];

    #[test]
    fn parses_and_encodes_literal_bytes() {
        let m = XLogData::parse(BYTES).unwrap();
        assert_eq!(m.wal_start, "0/3000060".parse().unwrap());
        assert_eq!(m.wal_end, "0/3000100".parse().unwrap());
        assert_eq!(m.send_time, PgTimestamp(1_000_000));
        assert_eq!(&m.data[..], &[0xDE, 0xAD, 0xBE, 0xEF]);
        assert_eq!(m.data_end(), "0/3000064".parse().unwrap());
        let mut out = BytesMut::new();
        m.encode(&mut out);
        assert_eq!(&out[..], BYTES);
    }

    #[test]
    fn empty_data_is_allowed_and_short_input_is_an_error() {
        assert!(XLogData::parse(&BYTES[..25]).unwrap().data.is_empty());
        assert_eq!(
            XLogData::parse(&BYTES[..24]),
            Err(MessageError::Truncated {
                message: "XLogData",
                need: 25,
                have: 24
            })
        );
        let mut wrong = BYTES.to_vec();
        wrong[0] = b'k';
        assert_eq!(
            XLogData::parse(&wrong),
            Err(MessageError::Tag {
                message: "XLogData",
                tag: b'k'
            })
        );
    }
}
