//! The OK packet (protocol 4.1):
//!
//! ```text
//! 0x00 | affected_rows lenenc | last_insert_id lenenc | status u16le | warnings u16le
//! ```

use bytes::{BufMut, BytesMut};

use super::handshake::STATUS_AUTOCOMMIT;
use super::wire::{put_lenenc_int, Reader, Truncated};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OkPacket {
    pub affected_rows: u64,
    pub last_insert_id: u64,
    pub status: u16,
    pub warnings: u16,
}

impl Default for OkPacket {
    fn default() -> Self {
        OkPacket {
            affected_rows: 0,
            last_insert_id: 0,
            status: STATUS_AUTOCOMMIT,
            warnings: 0,
        }
    }
}

impl OkPacket {
    pub fn encode(&self, buf: &mut BytesMut) {
        buf.put_u8(0x00);
        put_lenenc_int(buf, self.affected_rows);
        put_lenenc_int(buf, self.last_insert_id);
        buf.put_u16_le(self.status);
        buf.put_u16_le(self.warnings);
    }

    pub fn parse(packet: &[u8]) -> Result<Self, Truncated> {
        let mut r = Reader::new(packet);
        if r.u8("header")? != 0x00 {
            return Err(Truncated("not an OK packet"));
        }
        Ok(OkPacket {
            affected_rows: r.lenenc_int("affected rows")?,
            last_insert_id: r.lenenc_int("last insert id")?,
            status: r.u16("status")?,
            warnings: r.u16("warnings")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_bytes() {
        let mut buf = BytesMut::new();
        OkPacket::default().encode(&mut buf);
        assert_eq!(&buf[..], &[0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00]);
        assert_eq!(OkPacket::parse(&buf).unwrap(), OkPacket::default());
        let ok = OkPacket {
            affected_rows: 300,
            last_insert_id: 1,
            status: 0,
            warnings: 2,
        };
        buf.clear();
        ok.encode(&mut buf);
        assert_eq!(&buf[..], &[0x00, 0xfc, 0x2c, 0x01, 0x01, 0, 0, 2, 0]);
        assert_eq!(OkPacket::parse(&buf).unwrap(), ok);
        assert!(OkPacket::parse(&buf[..4]).is_err());
        assert!(OkPacket::parse(&[0xff]).is_err());
    }
}
