//! mysql_native_password from the server's side: a fresh 20-byte scramble
//! per connection, and the check of the client's answer,
//! SHA1(password) XOR SHA1(scramble + SHA1(SHA1(password))).
//!
//! A client that opens with another plugin is asked to switch:
//!
//! ```text
//! AuthSwitchRequest: 0xfe | plugin name NUL | plugin data (scramble NUL)
//! ```

use bytes::{BufMut, BytesMut};
use mysql_common::packets::AuthPlugin;

use super::wire::{put_nul_str, Reader, Truncated};

pub const NATIVE_PASSWORD: &str = "mysql_native_password";
pub const SCRAMBLE_LEN: usize = 20;

/// The configured replication account.
#[derive(Clone)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"****")
            .finish()
    }
}

/// A scramble for one connection: printable bytes without NUL, as servers
/// send them (some clients treat the scramble as a C string).
pub fn new_scramble() -> [u8; SCRAMBLE_LEN] {
    let mut s = [0u8; SCRAMBLE_LEN];
    let seed = std::collections::hash_map::RandomState::new();
    for (i, b) in s.iter_mut().enumerate() {
        use std::hash::{BuildHasher, Hasher};
        let mut h = seed.build_hasher();
        h.write_usize(i);
        // 33..=126: printable ASCII.
        *b = 33 + (h.finish() % 94) as u8;
    }
    s
}

impl Credentials {
    /// True if `response` is what the configured password gives for
    /// `scramble`. An empty password expects an empty response.
    pub fn accepts(&self, user: &str, scramble: &[u8], response: &[u8]) -> bool {
        if user != self.user {
            return false;
        }
        let expected = AuthPlugin::MysqlNativePassword
            .gen_data(Some(&self.password), scramble)
            .map(|d| d.to_vec())
            .unwrap_or_default();
        constant_time_eq(&expected, response)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSwitchRequest {
    pub plugin: String,
    pub data: Vec<u8>,
}

impl AuthSwitchRequest {
    pub fn encode(&self, buf: &mut BytesMut) {
        buf.put_u8(0xfe);
        put_nul_str(buf, self.plugin.as_bytes());
        put_nul_str(buf, &self.data);
    }

    pub fn parse(packet: &[u8]) -> Result<Self, Truncated> {
        let mut r = Reader::new(packet);
        if r.u8("header")? != 0xfe {
            return Err(Truncated("not an auth switch request"));
        }
        let plugin = String::from_utf8_lossy(r.nul_str("plugin")?).into_owned();
        let mut data = r.rest().to_vec();
        if data.last() == Some(&0) {
            data.pop();
        }
        Ok(AuthSwitchRequest { plugin, data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_right_password_only() {
        let creds = Credentials {
            user: "repl".into(),
            password: "pass".into(),
        };
        let scramble = b"0123456789abcdefghij";
        let good = AuthPlugin::MysqlNativePassword
            .gen_data(Some("pass"), scramble)
            .unwrap()
            .to_vec();
        assert_eq!(good.len(), 20);
        assert!(creds.accepts("repl", scramble, &good));
        assert!(!creds.accepts("other", scramble, &good));
        let bad = AuthPlugin::MysqlNativePassword
            .gen_data(Some("wrong"), scramble)
            .unwrap()
            .to_vec();
        assert!(!creds.accepts("repl", scramble, &bad));
        assert!(!creds.accepts("repl", scramble, &[]));
        assert!(!creds.accepts("repl", b"another scramble....", &good));
        let open = Credentials {
            user: "repl".into(),
            password: String::new(),
        };
        assert!(open.accepts("repl", scramble, &[]));
        assert!(!open.accepts("repl", scramble, &good));
        assert!(!format!("{creds:?}").contains("pass\""));
    }

    #[test]
    fn native_scramble_known_answer() {
        // SHA1("pass") XOR SHA1(scramble + SHA1(SHA1("pass"))), zero scramble,
        // computed independently (Python hashlib).
        #[rustfmt::skip]
        let expected = [
            0x65, 0x7c, 0x2d, 0x24, 0x19, 0x17, 0xe8, 0xbb, 0x4c, 0xc0,
            0x90, 0x4c, 0x13, 0x51, 0x67, 0x8e, 0x44, 0x72, 0x9e, 0x71,
        ];
        let creds = Credentials {
            user: "u".into(),
            password: "pass".into(),
        };
        assert!(creds.accepts("u", &[0u8; 20], &expected));
        let mut off_by_one = expected;
        off_by_one[19] ^= 1;
        assert!(!creds.accepts("u", &[0u8; 20], &off_by_one));
    }

    #[test]
    fn scrambles_are_printable_and_differ() {
        let a = new_scramble();
        let b = new_scramble();
        assert!(a.iter().all(|&c| (33..=126).contains(&c)));
        assert_ne!(a, b);
    }

    #[test]
    fn auth_switch_literal_bytes() {
        let req = AuthSwitchRequest {
            plugin: NATIVE_PASSWORD.into(),
            data: b"abcdefghijklmnopqrst".to_vec(),
        };
        let mut buf = BytesMut::new();
        req.encode(&mut buf);
        let mut expected = vec![0xfe];
        expected.extend_from_slice(b"mysql_native_password\0abcdefghijklmnopqrst\0");
        assert_eq!(&buf[..], &expected[..]);
        assert_eq!(AuthSwitchRequest::parse(&buf).unwrap(), req);
        assert!(AuthSwitchRequest::parse(b"\x00x").is_err());
        assert!(AuthSwitchRequest::parse(b"\xfemysql").is_err());
    }
}
