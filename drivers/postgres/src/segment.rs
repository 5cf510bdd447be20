//! WAL segment arithmetic. The segment size is chosen at initdb time
//! (`--wal-segsize`), so it is always a runtime value here, never 16 MiB by assumption.

use std::fmt;

use crate::lsn::Lsn;

const MIN_SEGMENT_SIZE: u64 = 1 << 20;
const MAX_SEGMENT_SIZE: u64 = 1 << 30;

/// A validated WAL segment size: a power of two from 1 MiB to 1 GiB.
#[derive(Copy, Clone, Eq, PartialEq, Hash, Debug)]
pub struct WalSegmentSize(u64);

/// The number of a segment counted from LSN 0 (`XLogSegNo`).
#[derive(Copy, Clone, Eq, PartialEq, Ord, PartialOrd, Hash, Debug)]
pub struct SegmentNo(pub u64);

impl fmt::Display for SegmentNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SegmentSizeError {
    #[error(
        "invalid WAL segment size {bytes} bytes: it must be a power of two between 1MB and 1GB"
    )]
    OutOfRange { bytes: u64 },
    #[error(
        "cannot read WAL segment size {input:?}: expected a number with kB, MB or GB, like 16MB"
    )]
    Unparsable { input: String },
}

impl WalSegmentSize {
    pub fn new(bytes: u64) -> Result<Self, SegmentSizeError> {
        if bytes.is_power_of_two() && (MIN_SEGMENT_SIZE..=MAX_SEGMENT_SIZE).contains(&bytes) {
            Ok(WalSegmentSize(bytes))
        } else {
            Err(SegmentSizeError::OutOfRange { bytes })
        }
    }

    /// Parses the value of `SHOW wal_segment_size`: "16MB", "1GB", "64MB" (or a plain byte count).
    pub fn from_show_value(value: &str) -> Result<Self, SegmentSizeError> {
        let unparsable = || SegmentSizeError::Unparsable {
            input: value.to_string(),
        };
        let v = value.trim();
        let digits_end = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
        let number: u64 = v[..digits_end].parse().map_err(|_| unparsable())?;
        let multiplier: u64 = match v[digits_end..].trim() {
            "" | "B" => 1,
            "kB" => 1 << 10,
            "MB" => 1 << 20,
            "GB" => 1 << 30,
            _ => return Err(unparsable()),
        };
        let bytes = number.checked_mul(multiplier).ok_or_else(unparsable)?;
        Self::new(bytes)
    }

    pub fn bytes(&self) -> u64 {
        self.0
    }

    /// How many segments share one "xlogid" (the middle 8 hex digits of a file name).
    pub fn segments_per_xlog_id(&self) -> u64 {
        0x1_0000_0000 / self.0
    }

    pub fn segment_of(&self, lsn: Lsn) -> SegmentNo {
        SegmentNo(lsn.0 / self.0)
    }

    pub fn segment_start(&self, seg: SegmentNo) -> Lsn {
        Lsn(seg.0.saturating_mul(self.0))
    }

    pub fn offset_in_segment(&self, lsn: Lsn) -> u64 {
        lsn.0 % self.0
    }
}

impl fmt::Display for WalSegmentSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 >= 1 << 30 {
            write!(f, "{}GB", self.0 >> 30)
        } else {
            write!(f, "{}MB", self.0 >> 20)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn validates_sizes() {
        assert!(WalSegmentSize::new(16 * MIB).is_ok());
        assert!(WalSegmentSize::new(MIB).is_ok());
        assert!(WalSegmentSize::new(1 << 30).is_ok());
        for bad in [0, MIB / 2, 3 * MIB, 2 << 30, 16 * MIB + 1] {
            assert!(WalSegmentSize::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_show_output() {
        assert_eq!(
            WalSegmentSize::from_show_value("16MB").unwrap().bytes(),
            16 * MIB
        );
        assert_eq!(
            WalSegmentSize::from_show_value("64MB").unwrap().bytes(),
            64 * MIB
        );
        assert_eq!(
            WalSegmentSize::from_show_value("1GB").unwrap().bytes(),
            1 << 30
        );
        assert_eq!(
            WalSegmentSize::from_show_value("1024kB").unwrap().bytes(),
            MIB
        );
        assert_eq!(
            WalSegmentSize::from_show_value("16777216").unwrap().bytes(),
            16 * MIB
        );
        assert!(WalSegmentSize::from_show_value("16 MiB").is_err());
        assert!(WalSegmentSize::from_show_value("MB").is_err());
        assert!(WalSegmentSize::from_show_value("3MB").is_err());
        assert!(WalSegmentSize::from_show_value("99999999999999999999GB").is_err());
        assert_eq!(
            WalSegmentSize::from_show_value("1GB").unwrap().to_string(),
            "1GB"
        );
        assert_eq!(
            WalSegmentSize::from_show_value("32MB").unwrap().to_string(),
            "32MB"
        );
    }

    #[test]
    fn segment_math_16mib() {
        let size = WalSegmentSize::new(16 * MIB).unwrap();
        let lsn: Lsn = "0/3000060".parse().unwrap();
        assert_eq!(size.segment_of(lsn), SegmentNo(3));
        assert_eq!(size.offset_in_segment(lsn), 0x60);
        assert_eq!(size.segment_start(SegmentNo(3)), Lsn(0x300_0000));
        assert_eq!(size.segments_per_xlog_id(), 256);
        // 1/0 is segment 256: the first segment of xlogid 1.
        assert_eq!(size.segment_of("1/0".parse().unwrap()), SegmentNo(256));
    }

    #[test]
    fn segment_math_1gib() {
        let size = WalSegmentSize::new(1 << 30).unwrap();
        let lsn: Lsn = "2/C0000028".parse().unwrap();
        assert_eq!(size.segments_per_xlog_id(), 4);
        assert_eq!(size.segment_of(lsn), SegmentNo(11));
        assert_eq!(size.offset_in_segment(lsn), 0x28);
        assert_eq!(
            size.segment_start(SegmentNo(11)),
            "2/C0000000".parse().unwrap()
        );
    }
}
