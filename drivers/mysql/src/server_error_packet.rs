//! The ERR packet a server sends instead of a reply or an event:
//!
//! ```text
//! 0xff | error_code u16le | ['#' sql_state[5]] | message (rest of the packet)
//! ```
//!
//! The `#`+state part is there with CLIENT_PROTOCOL_41, which we always ask
//! for, but a server may refuse a connection before the handshake with a
//! plain one.

pub const ERR_HEADER: u8 = 0xff;
pub const OK_HEADER: u8 = 0x00;
/// EOF packet header; also the auth-switch request during login.
pub const EOF_HEADER: u8 = 0xfe;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerErrorPacket {
    pub code: u16,
    pub state: String,
    pub message: String,
}

impl ServerErrorPacket {
    /// None unless `packet` is a well-formed ERR packet.
    pub fn parse(packet: &[u8]) -> Option<Self> {
        let (&header, rest) = packet.split_first()?;
        if header != ERR_HEADER || rest.len() < 2 {
            return None;
        }
        let code = u16::from_le_bytes([rest[0], rest[1]]);
        let rest = &rest[2..];
        let (state, message) = match rest {
            [b'#', state @ ..] if state.len() >= 5 => (&state[..5], &state[5..]),
            _ => (&b"HY000"[..], rest),
        };
        Some(ServerErrorPacket {
            code,
            state: String::from_utf8_lossy(state).into_owned(),
            message: String::from_utf8_lossy(message).into_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_protocol_41_error() {
        // ER_MASTER_FATAL_ERROR_READING_BINLOG (1236), as MariaDB sends it.
        let mut packet = vec![0xff, 0xd4, 0x04, b'#'];
        packet.extend_from_slice(b"HY000");
        packet.extend_from_slice(b"Could not find GTID state");
        let err = ServerErrorPacket::parse(&packet).unwrap();
        assert_eq!(err.code, 1236);
        assert_eq!(err.state, "HY000");
        assert_eq!(err.message, "Could not find GTID state");
    }

    #[test]
    fn parses_pre_handshake_error_and_rejects_others() {
        let err = ServerErrorPacket::parse(b"\xff\x10\x04Too many connections").unwrap();
        assert_eq!(err.code, 1040);
        assert_eq!(err.message, "Too many connections");
        assert_eq!(
            ServerErrorPacket::parse(b"\xff\x10\x04").unwrap().message,
            ""
        );
        assert_eq!(ServerErrorPacket::parse(b"\xff\x10"), None);
        assert_eq!(ServerErrorPacket::parse(b"\x00\x00\x00"), None);
        assert_eq!(ServerErrorPacket::parse(b""), None);
    }
}
