//! The greeting a server sends first (HandshakeV10) and the client's answer
//! (HandshakeResponse41).
//!
//! ```text
//! HandshakeV10: 0x0a | server_version NUL | connection_id u32le | scramble[0..8] | 0x00
//!   | capabilities low u16le | charset u8 | status u16le | capabilities high u16le
//!   | scramble length u8 | 10 reserved bytes | scramble[8..] NUL | auth plugin NUL
//! HandshakeResponse41: capabilities u32le | max_packet u32le | charset u8 | 23 zero bytes
//!   | user NUL | auth response (lenenc, or u8 length, by capability)
//!   | [database NUL] | [auth plugin NUL] | [connect attributes]
//! ```

use bytes::{BufMut, BytesMut};

use super::wire::{put_lenenc_str, put_nul_str, Reader, Truncated};

pub const PROTOCOL_VERSION: u8 = 10;

/// Capability flags (the subset the relay speaks or looks at).
pub mod caps {
    pub const LONG_PASSWORD: u32 = 0x1;
    pub const LONG_FLAG: u32 = 0x4;
    pub const CONNECT_WITH_DB: u32 = 0x8;
    pub const PROTOCOL_41: u32 = 0x200;
    pub const SSL: u32 = 0x800;
    pub const TRANSACTIONS: u32 = 0x2000;
    pub const SECURE_CONNECTION: u32 = 0x8000;
    pub const MULTI_RESULTS: u32 = 0x2_0000;
    pub const PLUGIN_AUTH: u32 = 0x8_0000;
    pub const CONNECT_ATTRS: u32 = 0x10_0000;
    pub const PLUGIN_AUTH_LENENC_CLIENT_DATA: u32 = 0x20_0000;

    /// What the relay offers: protocol 4.1 with plugin auth; no TLS, no
    /// compression, and classic EOF packets.
    pub const RELAY: u32 = LONG_PASSWORD
        | LONG_FLAG
        | CONNECT_WITH_DB
        | PROTOCOL_41
        | TRANSACTIONS
        | SECURE_CONNECTION
        | MULTI_RESULTS
        | PLUGIN_AUTH
        | CONNECT_ATTRS
        | PLUGIN_AUTH_LENENC_CLIENT_DATA;
}

/// SERVER_STATUS_AUTOCOMMIT.
pub const STATUS_AUTOCOMMIT: u16 = 0x0002;
/// utf8mb4_general_ci.
pub const CHARSET_UTF8MB4: u8 = 45;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeV10 {
    pub server_version: String,
    pub connection_id: u32,
    /// 20 bytes for mysql_native_password.
    pub scramble: Vec<u8>,
    pub capabilities: u32,
    pub charset: u8,
    pub status: u16,
    pub auth_plugin: String,
}

impl HandshakeV10 {
    pub fn encode(&self, buf: &mut BytesMut) {
        let (first, second) = self.scramble.split_at(self.scramble.len().min(8));
        buf.put_u8(PROTOCOL_VERSION);
        put_nul_str(buf, self.server_version.as_bytes());
        buf.put_u32_le(self.connection_id);
        buf.put_slice(first);
        buf.put_bytes(0, 8 - first.len());
        buf.put_u8(0);
        buf.put_u16_le(self.capabilities as u16);
        buf.put_u8(self.charset);
        buf.put_u16_le(self.status);
        buf.put_u16_le((self.capabilities >> 16) as u16);
        buf.put_u8((self.scramble.len() + 1) as u8);
        buf.put_bytes(0, 10);
        // At least 13 bytes: the rest of the scramble and its NUL.
        put_nul_str(buf, second);
        buf.put_bytes(0, 12usize.saturating_sub(second.len()));
        put_nul_str(buf, self.auth_plugin.as_bytes());
    }

    pub fn parse(packet: &[u8]) -> Result<Self, Truncated> {
        let mut r = Reader::new(packet);
        if r.u8("protocol version")? != PROTOCOL_VERSION {
            return Err(Truncated("protocol version is not 10"));
        }
        let server_version = String::from_utf8_lossy(r.nul_str("server version")?).into_owned();
        let connection_id = r.u32("connection id")?;
        let mut scramble = r.bytes(8, "scramble")?.to_vec();
        r.u8("filler")?;
        let low = r.u16("capabilities")?;
        let charset = r.u8("charset")?;
        let status = r.u16("status")?;
        let high = r.u16("capabilities")?;
        let scramble_len = r.u8("scramble length")? as usize;
        r.bytes(10, "reserved")?;
        let second_len = scramble_len.saturating_sub(9).max(12);
        scramble.extend_from_slice(r.bytes(second_len, "scramble")?);
        r.u8("scramble NUL")?;
        let auth_plugin = String::from_utf8_lossy(r.nul_str("auth plugin")?).into_owned();
        Ok(HandshakeV10 {
            server_version,
            connection_id,
            scramble,
            capabilities: u32::from(low) | (u32::from(high) << 16),
            charset,
            status,
            auth_plugin,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeResponse41 {
    pub capabilities: u32,
    pub max_packet: u32,
    pub charset: u8,
    pub user: String,
    pub auth_response: Vec<u8>,
    pub database: Option<String>,
    pub auth_plugin: Option<String>,
}

impl HandshakeResponse41 {
    pub fn parse(packet: &[u8]) -> Result<Self, Truncated> {
        let mut r = Reader::new(packet);
        let capabilities = r.u32("capabilities")?;
        if capabilities & caps::PROTOCOL_41 == 0 {
            return Err(Truncated("the client does not speak protocol 4.1"));
        }
        let max_packet = r.u32("max packet")?;
        let charset = r.u8("charset")?;
        r.bytes(23, "filler")?;
        if capabilities & caps::SSL != 0 && r.is_empty() {
            return Err(Truncated(
                "the client asks for TLS, which the relay does not offer",
            ));
        }
        let user = String::from_utf8_lossy(r.nul_str("user")?).into_owned();
        let auth_response = if capabilities & caps::PLUGIN_AUTH_LENENC_CLIENT_DATA != 0 {
            r.lenenc_str("auth response")?.to_vec()
        } else if capabilities & caps::SECURE_CONNECTION != 0 {
            let n = r.u8("auth response length")? as usize;
            r.bytes(n, "auth response")?.to_vec()
        } else {
            r.nul_str("auth response")?.to_vec()
        };
        let database = if capabilities & caps::CONNECT_WITH_DB != 0 && !r.is_empty() {
            Some(String::from_utf8_lossy(r.nul_str("database")?).into_owned())
        } else {
            None
        };
        let auth_plugin = if capabilities & caps::PLUGIN_AUTH != 0 && !r.is_empty() {
            Some(String::from_utf8_lossy(r.nul_str("auth plugin")?).into_owned())
        } else {
            None
        };
        // Connect attributes follow; the relay has no use for them.
        Ok(HandshakeResponse41 {
            capabilities,
            max_packet,
            charset,
            user,
            auth_response,
            database,
            auth_plugin,
        })
    }

    pub fn encode(&self, buf: &mut BytesMut) {
        let mut capabilities = self.capabilities | caps::PLUGIN_AUTH_LENENC_CLIENT_DATA;
        capabilities &= !caps::CONNECT_ATTRS;
        if self.database.is_some() {
            capabilities |= caps::CONNECT_WITH_DB;
        }
        if self.auth_plugin.is_some() {
            capabilities |= caps::PLUGIN_AUTH;
        }
        buf.put_u32_le(capabilities);
        buf.put_u32_le(self.max_packet);
        buf.put_u8(self.charset);
        buf.put_bytes(0, 23);
        put_nul_str(buf, self.user.as_bytes());
        put_lenenc_str(buf, &self.auth_response);
        if let Some(db) = &self.database {
            put_nul_str(buf, db.as_bytes());
        }
        if let Some(plugin) = &self.auth_plugin {
            put_nul_str(buf, plugin.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRAMBLE: &[u8; 20] = b"abcdefghijklmnopqrst";

    #[rustfmt::skip]
    fn greeting_bytes() -> Vec<u8> {
        let mut v = vec![0x0a];
        v.extend_from_slice(b"5.5.5-10.11.6-MariaDB\0");
        v.extend_from_slice(&[0x07, 0, 0, 0]); // connection id 7
        v.extend_from_slice(b"abcdefgh");
        v.push(0);
        v.extend_from_slice(&[0x0d, 0xa2]); // capabilities low: 0xa20d
        v.push(45); // utf8mb4_general_ci
        v.extend_from_slice(&[0x02, 0x00]); // autocommit
        v.extend_from_slice(&[0x3a, 0x00]); // capabilities high: 0x003a
        v.push(21);
        v.extend_from_slice(&[0; 10]);
        v.extend_from_slice(b"ijklmnopqrst\0");
        v.extend_from_slice(b"mysql_native_password\0");
        v
    }

    #[test]
    fn greeting_literal_bytes() {
        let hello = HandshakeV10 {
            server_version: "5.5.5-10.11.6-MariaDB".into(),
            connection_id: 7,
            scramble: SCRAMBLE.to_vec(),
            capabilities: caps::RELAY,
            charset: CHARSET_UTF8MB4,
            status: STATUS_AUTOCOMMIT,
            auth_plugin: "mysql_native_password".into(),
        };
        assert_eq!(caps::RELAY, 0x003a_a20d);
        let mut buf = BytesMut::new();
        hello.encode(&mut buf);
        assert_eq!(&buf[..], &greeting_bytes()[..]);
        assert_eq!(HandshakeV10::parse(&buf).unwrap(), hello);
    }

    #[test]
    fn greeting_is_what_mysql_common_reads() {
        use mysql_common::io::ParseBuf;
        use mysql_common::packets::HandshakePacket;
        let bytes = greeting_bytes();
        let parsed: HandshakePacket<'_> = ParseBuf(&bytes).parse(()).unwrap();
        assert_eq!(parsed.connection_id(), 7);
        assert_eq!(parsed.nonce(), SCRAMBLE.to_vec());
        assert_eq!(
            parsed.auth_plugin().unwrap().as_bytes(),
            b"mysql_native_password"
        );
        for cut in 0..bytes.len() {
            assert!(HandshakeV10::parse(&bytes[..cut]).is_err(), "cut {cut}");
        }
    }

    #[test]
    fn response_literal_bytes() {
        #[rustfmt::skip]
        let mut bytes = vec![
            0x05, 0xa2, 0x2a, 0x00, // capabilities: 0x002aa205
            0x00, 0x00, 0x00, 0x40, // max packet 1 GiB
            0x21,                   // utf8_general_ci
        ];
        bytes.extend_from_slice(&[0; 23]);
        bytes.extend_from_slice(b"repl\0");
        bytes.push(20);
        bytes.extend_from_slice(&[0x11; 20]);
        bytes.extend_from_slice(b"mysql_native_password\0");
        let resp = HandshakeResponse41::parse(&bytes).unwrap();
        assert_eq!(
            resp,
            HandshakeResponse41 {
                capabilities: 0x002a_a205,
                max_packet: 1 << 30,
                charset: 0x21,
                user: "repl".into(),
                auth_response: vec![0x11; 20],
                database: None,
                auth_plugin: Some("mysql_native_password".into()),
            }
        );
        let mut buf = BytesMut::new();
        resp.encode(&mut buf);
        assert_eq!(&buf[..], &bytes[..]);
        for cut in 0..bytes.len() - 1 {
            // Truncated anywhere before the plugin name's NUL.
            let r = HandshakeResponse41::parse(&bytes[..cut]);
            assert!(r.is_err() || r.unwrap().auth_plugin.is_none(), "cut {cut}");
        }
    }

    #[test]
    fn response_with_one_byte_length_and_database() {
        let mut bytes = (caps::PROTOCOL_41 | caps::SECURE_CONNECTION | caps::CONNECT_WITH_DB)
            .to_le_bytes()
            .to_vec();
        bytes.extend_from_slice(&[0, 0, 0, 1, 8]);
        bytes.extend_from_slice(&[0; 23]);
        bytes.extend_from_slice(b"u\0\x02\xaa\xbbdb\0");
        let resp = HandshakeResponse41::parse(&bytes).unwrap();
        assert_eq!(resp.user, "u");
        assert_eq!(resp.auth_response, vec![0xaa, 0xbb]);
        assert_eq!(resp.database.as_deref(), Some("db"));
        assert_eq!(resp.auth_plugin, None);
        // Protocol 3.x clients are refused.
        assert!(HandshakeResponse41::parse(&[0; 40]).is_err());
    }
}
