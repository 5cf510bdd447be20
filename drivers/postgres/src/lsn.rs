//! Write-ahead log positions and timeline ids, with PostgreSQL's own notation.

use std::fmt;
use std::str::FromStr;

/// A WAL position (`pg_lsn`), written by PostgreSQL as two hex halves: `16/B374D848`.
#[derive(Copy, Clone, Eq, PartialEq, Ord, PartialOrd, Hash, Debug, Default)]
pub struct Lsn(pub u64);

impl Lsn {
    pub const ZERO: Lsn = Lsn(0);

    pub fn checked_add(self, bytes: u64) -> Option<Lsn> {
        self.0.checked_add(bytes).map(Lsn)
    }

    pub fn checked_sub(self, bytes: u64) -> Option<Lsn> {
        self.0.checked_sub(bytes).map(Lsn)
    }

    /// Bytes from `earlier` to `self`, or None when `earlier` is ahead.
    pub fn bytes_since(self, earlier: Lsn) -> Option<u64> {
        self.0.checked_sub(earlier.0)
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid LSN {input:?}: expected two hex numbers separated by '/', like 16/B374D848")]
pub struct ParseLsnError {
    pub input: String,
}

impl FromStr for Lsn {
    type Err = ParseLsnError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseLsnError {
            input: s.to_string(),
        };
        let (hi, lo) = s.split_once('/').ok_or_else(err)?;
        let half = |h: &str| {
            if h.is_empty() || h.len() > 8 {
                return Err(err());
            }
            u32::from_str_radix(h, 16).map_err(|_| err())
        };
        Ok(Lsn((u64::from(half(hi)?) << 32) | u64::from(half(lo)?)))
    }
}

/// A timeline id; PostgreSQL writes it in decimal (and in hex inside file names).
#[derive(Copy, Clone, Eq, PartialEq, Ord, PartialOrd, Hash, Debug)]
pub struct TimelineId(pub u32);

impl fmt::Display for TimelineId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_displays_postgres_notation() {
        let lsn: Lsn = "16/B374D848".parse().unwrap();
        assert_eq!(lsn, Lsn(0x16_B374_D848));
        assert_eq!(lsn.to_string(), "16/B374D848");
        assert_eq!(Lsn(0x300_0060).to_string(), "0/3000060");
        assert_eq!("0/3000060".parse::<Lsn>().unwrap(), Lsn(0x300_0060));
        assert_eq!(Lsn::ZERO.to_string(), "0/0");
        assert_eq!(Lsn(u64::MAX).to_string(), "FFFFFFFF/FFFFFFFF");
        assert_eq!("ffffffff/ffffffff".parse::<Lsn>().unwrap(), Lsn(u64::MAX));
    }

    #[test]
    fn rejects_malformed_lsns() {
        for bad in [
            "",
            "/",
            "0/",
            "/0",
            "1",
            "0x1/0",
            "1/2/3",
            "123456789/0",
            "G/0",
            "-1/0",
            " 1/0",
        ] {
            assert!(bad.parse::<Lsn>().is_err(), "{bad:?} should not parse");
        }
        let msg = "zz".parse::<Lsn>().unwrap_err().to_string();
        assert!(msg.contains("\"zz\""), "{msg}");
    }

    #[test]
    fn arithmetic_is_checked() {
        assert_eq!(Lsn(10).checked_add(5), Some(Lsn(15)));
        assert_eq!(Lsn(u64::MAX).checked_add(1), None);
        assert_eq!(Lsn(10).checked_sub(10), Some(Lsn::ZERO));
        assert_eq!(Lsn(10).checked_sub(11), None);
        assert_eq!(Lsn(0x1_0000_0000).bytes_since(Lsn(0xFFFF_FFFF)), Some(1));
        assert_eq!(Lsn(1).bytes_since(Lsn(2)), None);
        assert!(Lsn(0x1_0000_0000) > Lsn(0xFFFF_FFFF));
    }

    #[test]
    fn timeline_displays_decimal() {
        assert_eq!(TimelineId(12).to_string(), "12");
    }
}
