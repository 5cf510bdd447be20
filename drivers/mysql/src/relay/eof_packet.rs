//! The EOF packet (protocol 4.1, without CLIENT_DEPRECATE_EOF, which the
//! relay does not offer): it closes a result set's column list and rows,
//! and it ends a binlog dump that asked for BINLOG_DUMP_NON_BLOCK.
//!
//! ```text
//! 0xfe | warnings u16le | status u16le
//! ```

use bytes::{BufMut, BytesMut};

use super::handshake::STATUS_AUTOCOMMIT;
use super::wire::{Reader, Truncated};

pub const EOF_HEADER: u8 = 0xfe;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EofPacket {
    pub warnings: u16,
    pub status: u16,
}

impl Default for EofPacket {
    fn default() -> Self {
        EofPacket {
            warnings: 0,
            status: STATUS_AUTOCOMMIT,
        }
    }
}

impl EofPacket {
    pub fn encode(&self, buf: &mut BytesMut) {
        buf.put_u8(EOF_HEADER);
        buf.put_u16_le(self.warnings);
        buf.put_u16_le(self.status);
    }

    /// An EOF is shorter than 9 bytes: a longer 0xfe packet is a row or an
    /// event that happens to start with 0xfe.
    pub fn parse(packet: &[u8]) -> Result<Self, Truncated> {
        if packet.len() >= 9 {
            return Err(Truncated("an EOF packet is shorter than 9 bytes"));
        }
        let mut r = Reader::new(packet);
        if r.u8("header")? != EOF_HEADER {
            return Err(Truncated("EOF header 0xfe"));
        }
        Ok(EofPacket {
            warnings: r.u16("warnings")?,
            status: r.u16("status")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eof_literal_bytes() {
        let mut buf = BytesMut::new();
        EofPacket::default().encode(&mut buf);
        assert_eq!(&buf[..], &[0xfe, 0x00, 0x00, 0x02, 0x00]);
        assert_eq!(EofPacket::parse(&buf).unwrap(), EofPacket::default());
        assert!(EofPacket::parse(&buf[..3]).is_err());
        assert!(EofPacket::parse(&[0x00, 0, 0, 2, 0]).is_err());
        assert!(EofPacket::parse(&[0xfe; 9]).is_err());
    }
}
