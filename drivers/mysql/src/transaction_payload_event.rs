//! MySQL TRANSACTION_PAYLOAD_EVENT (40) body: a whole transaction's events,
//! compressed (binlog_transaction_compression=ON, MySQL 8.0.20+).
//!
//! ```text
//! fields: (type packed-int, length packed-int, value packed-int)*, then type 0
//!         type 1 payload_size | 2 compression_type (0 zstd, 255 none)
//!         | 3 uncompressed_size
//! payload [payload_size]: the compressed events
//! ```
//!
//! instarec reads only this header, to check the event is whole. The
//! payload is never decompressed: the event is archived and relayed as the
//! one event the primary wrote, so its inner events are never stored twice.

use bytes::{BufMut, BytesMut};

use crate::event::EventError;
use crate::event_type::EventType;

const TYPE: EventType = EventType::TransactionPayload;
const END_MARK: u64 = 0;
const PAYLOAD_SIZE: u64 = 1;
const COMPRESSION_TYPE: u64 = 2;
const UNCOMPRESSED_SIZE: u64 = 3;

/// How the payload is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadCompression {
    Zstd,
    None,
    /// A code this version does not know; the event still passes through.
    Other(u64),
}

impl PayloadCompression {
    fn from_code(code: u64) -> Self {
        match code {
            0 => PayloadCompression::Zstd,
            255 => PayloadCompression::None,
            other => PayloadCompression::Other(other),
        }
    }

    fn code(self) -> u64 {
        match self {
            PayloadCompression::Zstd => 0,
            PayloadCompression::None => 255,
            PayloadCompression::Other(code) => code,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionPayloadEvent<'a> {
    pub compression: PayloadCompression,
    pub uncompressed_size: u64,
    /// The compressed events, exactly payload_size bytes.
    pub payload: &'a [u8],
}

impl<'a> TransactionPayloadEvent<'a> {
    /// Parses the body (between header and checksum trailer). The payload
    /// must fill the rest of the body exactly. Unknown fields are skipped,
    /// as MySQL does.
    pub fn parse(body: &'a [u8]) -> Result<Self, EventError> {
        let mut r = Reader { body, at: 0 };
        let (mut size, mut compression, mut uncompressed) = (None, None, None);
        loop {
            let field = r.packed("field type")?;
            if field == END_MARK {
                break;
            }
            let len = r.packed("field length")?;
            let value = r.bytes(len, "field value")?;
            let mut v = Reader { body: value, at: 0 };
            match field {
                PAYLOAD_SIZE => size = Some(v.packed("payload_size")?),
                COMPRESSION_TYPE => compression = Some(v.packed("compression_type")?),
                UNCOMPRESSED_SIZE => uncompressed = Some(v.packed("uncompressed_size")?),
                _ => {}
            }
        }
        let size = size.ok_or_else(|| invalid("the header has no payload_size".into()))?;
        let rest = body.len() - r.at;
        if size != rest as u64 {
            return Err(invalid(format!(
                "payload_size {size}, but {rest} bytes follow the header"
            )));
        }
        Ok(TransactionPayloadEvent {
            compression: PayloadCompression::from_code(compression.unwrap_or(0)),
            uncompressed_size: uncompressed.unwrap_or(0),
            payload: &body[r.at..],
        })
    }

    /// Writes the fields in the order MySQL 8.0 does (compression type,
    /// uncompressed size, payload size), the end mark and the payload.
    pub fn encode(&self, buf: &mut BytesMut) {
        for (field, value) in [
            (COMPRESSION_TYPE, self.compression.code()),
            (UNCOMPRESSED_SIZE, self.uncompressed_size),
            (PAYLOAD_SIZE, self.payload.len() as u64),
        ] {
            let mut v = BytesMut::new();
            put_packed(&mut v, value);
            put_packed(buf, field);
            put_packed(buf, v.len() as u64);
            buf.put_slice(&v);
        }
        put_packed(buf, END_MARK);
        buf.put_slice(self.payload);
    }
}

fn invalid(reason: String) -> EventError {
    EventError::InvalidBody {
        event_type: TYPE,
        reason,
    }
}

/// MySQL's packed integer (net_field_length): < 251 in one byte, else a
/// marker 0xfc/0xfd/0xfe and 2/3/8 little-endian bytes.
fn put_packed(buf: &mut BytesMut, v: u64) {
    match v {
        0..=250 => buf.put_u8(v as u8),
        251..=0xffff => {
            buf.put_u8(0xfc);
            buf.put_u16_le(v as u16);
        }
        0x1_0000..=0xff_ffff => {
            buf.put_u8(0xfd);
            buf.put_slice(&v.to_le_bytes()[..3]);
        }
        _ => {
            buf.put_u8(0xfe);
            buf.put_u64_le(v);
        }
    }
}

struct Reader<'a> {
    body: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: u64, what: &str) -> Result<&'a [u8], EventError> {
        let end = usize::try_from(n)
            .ok()
            .and_then(|n| self.at.checked_add(n))
            .filter(|&end| end <= self.body.len())
            .ok_or_else(|| {
                invalid(format!(
                    "{what} needs {n} bytes at offset {}, the header has {}",
                    self.at,
                    self.body.len()
                ))
            })?;
        let out = &self.body[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn packed(&mut self, what: &str) -> Result<u64, EventError> {
        let first = self.bytes(1, what)?[0];
        let width = match first {
            0..=250 => return Ok(u64::from(first)),
            0xfc => 2,
            0xfd => 3,
            0xfe => 8,
            other => return Err(invalid(format!("{what} starts with byte {other:#04x}"))),
        };
        let mut le = [0u8; 8];
        le[..width].copy_from_slice(self.bytes(width as u64, what)?);
        Ok(u64::from_le_bytes(le))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum::BinlogChecksum;
    use crate::testdata;

    /// The header MySQL 8.0.32 wrote for the one compressed transaction of
    /// testdata/mysql-8.0.32-transaction-compression.bin (at offset 274):
    /// zstd, 179 bytes uncompressed, 124 compressed.
    #[rustfmt::skip]
    const HEADER_8_0_32: &[u8] = &[
        0x02, 0x01, 0x00, // compression_type: zstd
        0x03, 0x01, 0xb3, // uncompressed_size 179
        0x01, 0x01, 0x7c, // payload_size 124
        0x00,             // end mark
    ];

    fn real_body() -> &'static [u8] {
        let bytes = testdata::MYSQL_8_0_32_COMPRESSED;
        &bytes[274 + 19..274 + 157 - 4]
    }

    #[test]
    fn parses_the_header_mysql_wrote_and_encodes_it_back() {
        let body = real_body();
        assert_eq!(&body[..HEADER_8_0_32.len()], HEADER_8_0_32);
        let ev = TransactionPayloadEvent::parse(body).unwrap();
        assert_eq!(ev.compression, PayloadCompression::Zstd);
        assert_eq!(ev.uncompressed_size, 179);
        assert_eq!(ev.payload.len(), 124);
        // A zstd frame, left compressed.
        assert_eq!(&ev.payload[..4], &[0x28, 0xb5, 0x2f, 0xfd]);
        let mut buf = BytesMut::new();
        ev.encode(&mut buf);
        assert_eq!(&buf[..], body);
        // The same through the event's own framing.
        let file = testdata::parse(testdata::MYSQL_8_0_32_COMPRESSED);
        let raw = testdata::events_of(&file, TYPE)[0];
        let parsed = TransactionPayloadEvent::parse(raw.body(BinlogChecksum::Crc32).unwrap());
        assert_eq!(parsed.unwrap(), ev);
    }

    #[test]
    fn a_cut_or_lying_header_is_an_error_not_a_panic() {
        let body = real_body();
        for cut in 0..body.len() {
            assert!(
                TransactionPayloadEvent::parse(&body[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        let mut longer = body.to_vec();
        longer.push(0);
        let err = TransactionPayloadEvent::parse(&longer).unwrap_err();
        assert!(err.to_string().contains("payload_size 124"), "{err}");
        // A length that points past the end of the body.
        let huge = [0x01, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert!(TransactionPayloadEvent::parse(&huge).is_err());
        assert!(TransactionPayloadEvent::parse(&[0xff]).is_err());
    }

    #[test]
    fn unknown_fields_are_skipped_and_wide_sizes_round_trip() {
        let payload = vec![7u8; 300];
        let ev = TransactionPayloadEvent {
            compression: PayloadCompression::None,
            uncompressed_size: 70_000,
            payload: &payload,
        };
        let mut buf = BytesMut::new();
        ev.encode(&mut buf);
        assert_eq!(TransactionPayloadEvent::parse(&buf).unwrap(), ev);
        // A field type 9 of 2 bytes before the others.
        let mut with_unknown = vec![0x09, 0x02, 0xaa, 0xbb];
        with_unknown.extend_from_slice(&buf);
        assert_eq!(TransactionPayloadEvent::parse(&with_unknown).unwrap(), ev);
    }
}
