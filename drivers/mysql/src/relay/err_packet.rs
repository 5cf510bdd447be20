//! The ERR packet (protocol 4.1), how the relay refuses a login, a query or
//! a dump; the replica shows the message in Last_IO_Error.
//!
//! ```text
//! 0xff | error_code u16le | '#' | sql_state[5] | message
//! ```

use bytes::{BufMut, BytesMut};

use super::wire::{Reader, Truncated};

/// ER_ACCESS_DENIED_ERROR.
pub const ACCESS_DENIED: u16 = 1045;
/// ER_UNKNOWN_COM_ERROR.
pub const UNKNOWN_COMMAND: u16 = 1047;
/// ER_NOT_SUPPORTED_YET.
pub const NOT_SUPPORTED: u16 = 1235;
/// ER_MASTER_FATAL_ERROR_READING_BINLOG: the replica stops its IO thread.
pub const FATAL_READING_BINLOG: u16 = 1236;
/// ER_UNKNOWN_SYSTEM_VARIABLE.
pub const UNKNOWN_SYSTEM_VARIABLE: u16 = 1193;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrPacket {
    pub code: u16,
    /// Five characters, e.g. "28000".
    pub state: String,
    pub message: String,
}

impl ErrPacket {
    pub fn new(code: u16, state: &str, message: impl Into<String>) -> Self {
        ErrPacket {
            code,
            state: state.to_string(),
            message: message.into(),
        }
    }

    pub fn encode(&self, buf: &mut BytesMut) {
        buf.put_u8(0xff);
        buf.put_u16_le(self.code);
        buf.put_u8(b'#');
        let mut state = [b'0'; 5];
        for (d, s) in state.iter_mut().zip(self.state.bytes()) {
            *d = s;
        }
        buf.put_slice(&state);
        buf.put_slice(self.message.as_bytes());
    }

    pub fn parse(packet: &[u8]) -> Result<Self, Truncated> {
        let mut r = Reader::new(packet);
        if r.u8("header")? != 0xff {
            return Err(Truncated("not an ERR packet"));
        }
        let code = r.u16("error code")?;
        if r.u8("state marker")? != b'#' {
            return Err(Truncated("ERR packet without SQL state"));
        }
        let state = String::from_utf8_lossy(r.bytes(5, "SQL state")?).into_owned();
        let message = String::from_utf8_lossy(r.rest()).into_owned();
        Ok(ErrPacket {
            code,
            state,
            message,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server_error_packet::ServerErrorPacket;

    #[test]
    fn literal_bytes_and_the_client_side_reads_them() {
        let err = ErrPacket::new(ACCESS_DENIED, "28000", "Access denied");
        let mut buf = BytesMut::new();
        err.encode(&mut buf);
        let mut expected = vec![0xff, 0x15, 0x04, b'#'];
        expected.extend_from_slice(b"28000Access denied");
        assert_eq!(&buf[..], &expected[..]);
        assert_eq!(ErrPacket::parse(&buf).unwrap(), err);
        let client = ServerErrorPacket::parse(&buf).unwrap();
        assert_eq!(client.code, 1045);
        assert_eq!(client.state, "28000");
        assert_eq!(client.message, "Access denied");
        for cut in 0..9 {
            assert!(ErrPacket::parse(&buf[..cut]).is_err(), "cut {cut}");
        }
    }
}
