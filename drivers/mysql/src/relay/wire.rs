//! The protocol's integer and string encodings that several messages share:
//! length-encoded integers and strings, NUL-terminated strings.

use bytes::{BufMut, BytesMut};

/// A reader over a packet that fails, rather than panics, past its end.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

/// The packet ended early or held an impossible value; the String says what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncated(pub &'static str);

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The next byte, not consumed.
    pub fn peek(&self) -> Option<u8> {
        self.buf.first().copied()
    }

    pub fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Truncated> {
        if self.buf.len() < n {
            return Err(Truncated(what));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    pub fn u8(&mut self, what: &'static str) -> Result<u8, Truncated> {
        Ok(self.bytes(1, what)?[0])
    }

    pub fn u16(&mut self, what: &'static str) -> Result<u16, Truncated> {
        let b = self.bytes(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    pub fn u32(&mut self, what: &'static str) -> Result<u32, Truncated> {
        let b = self.bytes(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u64(&mut self, what: &'static str) -> Result<u64, Truncated> {
        let b = self.bytes(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// Up to the next NUL, which is consumed.
    pub fn nul_str(&mut self, what: &'static str) -> Result<&'a [u8], Truncated> {
        let end = self
            .buf
            .iter()
            .position(|&b| b == 0)
            .ok_or(Truncated(what))?;
        let s = &self.buf[..end];
        self.buf = &self.buf[end + 1..];
        Ok(s)
    }

    pub fn lenenc_int(&mut self, what: &'static str) -> Result<u64, Truncated> {
        match self.u8(what)? {
            n @ 0..=0xfa => Ok(u64::from(n)),
            0xfc => Ok(u64::from(self.u16(what)?)),
            0xfd => {
                let b = self.bytes(3, what)?;
                Ok(u64::from(u32::from_le_bytes([b[0], b[1], b[2], 0])))
            }
            0xfe => self.u64(what),
            _ => Err(Truncated(what)),
        }
    }

    pub fn lenenc_str(&mut self, what: &'static str) -> Result<&'a [u8], Truncated> {
        let n = self.lenenc_int(what)?;
        let n = usize::try_from(n).map_err(|_| Truncated(what))?;
        self.bytes(n, what)
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }
}

pub fn put_lenenc_int(buf: &mut BytesMut, n: u64) {
    match n {
        0..=0xfa => buf.put_u8(n as u8),
        0xfb..=0xffff => {
            buf.put_u8(0xfc);
            buf.put_u16_le(n as u16);
        }
        0x1_0000..=0xff_ffff => {
            buf.put_u8(0xfd);
            buf.put_slice(&(n as u32).to_le_bytes()[..3]);
        }
        _ => {
            buf.put_u8(0xfe);
            buf.put_u64_le(n);
        }
    }
}

pub fn put_lenenc_str(buf: &mut BytesMut, s: &[u8]) {
    put_lenenc_int(buf, s.len() as u64);
    buf.put_slice(s);
}

pub fn put_nul_str(buf: &mut BytesMut, s: &[u8]) {
    buf.put_slice(s);
    buf.put_u8(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenenc_ints_literal_bytes() {
        let cases: &[(u64, &[u8])] = &[
            (0, &[0x00]),
            (250, &[0xfa]),
            (251, &[0xfc, 0xfb, 0x00]),
            (0xffff, &[0xfc, 0xff, 0xff]),
            (0x1_0000, &[0xfd, 0x00, 0x00, 0x01]),
            (0x100_0000, &[0xfe, 0, 0, 0, 1, 0, 0, 0, 0]),
        ];
        for &(n, bytes) in cases {
            let mut buf = BytesMut::new();
            put_lenenc_int(&mut buf, n);
            assert_eq!(&buf[..], bytes, "{n}");
            assert_eq!(Reader::new(bytes).lenenc_int("n"), Ok(n));
        }
        assert!(Reader::new(&[0xfb]).lenenc_int("n").is_err());
        assert!(Reader::new(&[0xfc, 1]).lenenc_int("n").is_err());
    }

    #[test]
    fn strings_and_truncation() {
        let mut buf = BytesMut::new();
        put_lenenc_str(&mut buf, b"def");
        put_nul_str(&mut buf, b"root");
        assert_eq!(&buf[..], b"\x03defroot\0");
        let mut r = Reader::new(&buf);
        assert_eq!(r.lenenc_str("a").unwrap(), b"def");
        assert_eq!(r.nul_str("b").unwrap(), b"root");
        assert!(r.is_empty());
        assert_eq!(Reader::new(b"abc").nul_str("x"), Err(Truncated("x")));
        assert!(
            Reader::new(&[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
                .lenenc_str("huge")
                .is_err()
        );
    }
}
