//! Names of the files PostgreSQL keeps in pg_wal and hands to archive_command:
//! segments, `.partial` segments, timeline `.history` files and `.backup` history files.

use std::fmt;

use crate::lsn::{Lsn, TimelineId};
use crate::segment::{SegmentNo, WalSegmentSize};

/// What a pg_wal file name denotes. Segment numbers need the cluster's segment size to
/// be read or written, because the name splits them into "xlogid" and "segment in xlogid".
#[derive(Copy, Clone, Eq, PartialEq, Hash, Debug)]
pub enum WalFileKind {
    /// `000000010000000000000003`
    Segment { tli: TimelineId, seg: SegmentNo },
    /// `000000010000000000000003.partial`: the last, incomplete segment of a timeline.
    Partial { tli: TimelineId, seg: SegmentNo },
    /// `00000002.history`
    History { tli: TimelineId },
    /// `000000010000000000000002.00000028.backup`: written by pg_backup_stop.
    BackupLabel {
        tli: TimelineId,
        seg: SegmentNo,
        offset: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name:?} is not a WAL file name: {reason}; expected e.g. 000000010000000000000003, 00000002.history, 000000010000000000000002.00000028.backup or a .partial segment")]
pub struct WalFileNameError {
    pub name: String,
    pub reason: &'static str,
}

impl WalFileKind {
    /// The segment file holding `lsn` on timeline `tli`.
    pub fn segment_for(tli: TimelineId, lsn: Lsn, size: WalSegmentSize) -> WalFileKind {
        WalFileKind::Segment {
            tli,
            seg: size.segment_of(lsn),
        }
    }

    pub fn timeline(&self) -> TimelineId {
        match *self {
            WalFileKind::Segment { tli, .. }
            | WalFileKind::Partial { tli, .. }
            | WalFileKind::History { tli }
            | WalFileKind::BackupLabel { tli, .. } => tli,
        }
    }

    pub fn parse(name: &str, size: WalSegmentSize) -> Result<WalFileKind, WalFileNameError> {
        let err = |reason| WalFileNameError {
            name: name.to_string(),
            reason,
        };
        if let Some(tli_hex) = name.strip_suffix(".history") {
            let tli = parse_hex8(tli_hex)
                .ok_or_else(|| err("the timeline is not 8 upper-case hex digits"))?;
            return Ok(WalFileKind::History {
                tli: TimelineId(tli),
            });
        }
        if let Some(base) = name.strip_suffix(".partial") {
            let (tli, seg) = parse_segment_name(base, size).map_err(err)?;
            return Ok(WalFileKind::Partial { tli, seg });
        }
        if let Some(rest) = name.strip_suffix(".backup") {
            let (base, offset_hex) = rest
                .split_once('.')
                .ok_or_else(|| err("a .backup name needs a segment name and an offset"))?;
            let (tli, seg) = parse_segment_name(base, size).map_err(err)?;
            let offset = parse_hex8(offset_hex)
                .ok_or_else(|| err("the backup offset is not 8 upper-case hex digits"))?;
            if u64::from(offset) >= size.bytes() {
                return Err(err("the backup offset is beyond the segment size"));
            }
            return Ok(WalFileKind::BackupLabel { tli, seg, offset });
        }
        let (tli, seg) = parse_segment_name(name, size).map_err(err)?;
        Ok(WalFileKind::Segment { tli, seg })
    }

    /// The file name, e.g. `000000010000000000000003`.
    pub fn file_name(&self, size: WalSegmentSize) -> String {
        WalFileName { kind: *self, size }.to_string()
    }
}

/// A [`WalFileKind`] together with the segment size needed to spell it.
#[derive(Copy, Clone, Eq, PartialEq, Hash, Debug)]
pub struct WalFileName {
    pub kind: WalFileKind,
    pub size: WalSegmentSize,
}

impl WalFileName {
    pub fn parse(name: &str, size: WalSegmentSize) -> Result<WalFileName, WalFileNameError> {
        Ok(WalFileName {
            kind: WalFileKind::parse(name, size)?,
            size,
        })
    }
}

impl fmt::Display for WalFileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let per_id = self.size.segments_per_xlog_id();
        let seg_name = |f: &mut fmt::Formatter<'_>, tli: TimelineId, seg: SegmentNo| {
            write!(
                f,
                "{:08X}{:08X}{:08X}",
                tli.0,
                seg.0 / per_id,
                seg.0 % per_id
            )
        };
        match self.kind {
            WalFileKind::Segment { tli, seg } => seg_name(f, tli, seg),
            WalFileKind::Partial { tli, seg } => {
                seg_name(f, tli, seg)?;
                f.write_str(".partial")
            }
            WalFileKind::History { tli } => write!(f, "{:08X}.history", tli.0),
            WalFileKind::BackupLabel { tli, seg, offset } => {
                seg_name(f, tli, seg)?;
                write!(f, ".{offset:08X}.backup")
            }
        }
    }
}

fn parse_hex8(s: &str) -> Option<u32> {
    if s.len() != 8
        || !s
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
    {
        return None;
    }
    u32::from_str_radix(s, 16).ok()
}

fn parse_segment_name(
    name: &str,
    size: WalSegmentSize,
) -> Result<(TimelineId, SegmentNo), &'static str> {
    if name.len() != 24 || !name.is_ascii() {
        return Err("a segment name is 24 upper-case hex digits");
    }
    let part = |i: usize| {
        parse_hex8(&name[i * 8..i * 8 + 8]).ok_or("a segment name is 24 upper-case hex digits")
    };
    let (tli, log_id, seg_in_id) = (part(0)?, part(1)?, part(2)?);
    if tli == 0 {
        return Err("timeline 0 does not exist");
    }
    let per_id = size.segments_per_xlog_id();
    if u64::from(seg_in_id) >= per_id {
        return Err("the last 8 digits exceed the segments per xlogid for this segment size");
    }
    Ok((
        TimelineId(tli),
        SegmentNo(u64::from(log_id) * per_id + u64::from(seg_in_id)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mib(n: u64) -> WalSegmentSize {
        WalSegmentSize::new(n << 20).unwrap()
    }

    #[test]
    fn segment_name_for_lsn_16mib() {
        let kind = WalFileKind::segment_for(TimelineId(1), "0/3000060".parse().unwrap(), mib(16));
        assert_eq!(kind.file_name(mib(16)), "000000010000000000000003");
        let kind = WalFileKind::segment_for(TimelineId(2), "16/B374D848".parse().unwrap(), mib(16));
        assert_eq!(kind.file_name(mib(16)), "0000000200000016000000B3");
        assert_eq!(
            WalFileKind::parse("0000000200000016000000B3", mib(16)).unwrap(),
            kind
        );
    }

    #[test]
    fn segment_name_for_lsn_1gib() {
        let size = mib(1024);
        let kind = WalFileKind::segment_for(TimelineId(1), "16/B374D848".parse().unwrap(), size);
        assert_eq!(
            kind,
            WalFileKind::Segment {
                tli: TimelineId(1),
                seg: SegmentNo(0x16 * 4 + 2)
            }
        );
        assert_eq!(kind.file_name(size), "000000010000001600000002");
        assert_eq!(
            WalFileKind::parse("000000010000001600000002", size).unwrap(),
            kind
        );
        // Only 4 segments per xlogid at 1 GiB: "...00000004" cannot exist.
        assert!(WalFileKind::parse("000000010000001600000004", size).is_err());
    }

    #[test]
    fn other_kinds_round_trip() {
        let size = mib(16);
        let cases = [
            (
                "00000002.history",
                WalFileKind::History { tli: TimelineId(2) },
            ),
            (
                "000000010000000000000003.partial",
                WalFileKind::Partial {
                    tli: TimelineId(1),
                    seg: SegmentNo(3),
                },
            ),
            (
                "000000010000000000000002.00000028.backup",
                WalFileKind::BackupLabel {
                    tli: TimelineId(1),
                    seg: SegmentNo(2),
                    offset: 0x28,
                },
            ),
            (
                "0000000A00000001000000FF",
                WalFileKind::Segment {
                    tli: TimelineId(10),
                    seg: SegmentNo(511),
                },
            ),
        ];
        for (name, kind) in cases {
            assert_eq!(WalFileKind::parse(name, size).unwrap(), kind, "{name}");
            assert_eq!(WalFileName { kind, size }.to_string(), name);
            assert_eq!(WalFileName::parse(name, size).unwrap().kind, kind);
        }
        assert_eq!(
            WalFileKind::History { tli: TimelineId(3) }.timeline(),
            TimelineId(3)
        );
    }

    #[test]
    fn rejects_non_wal_names() {
        let size = mib(16);
        for bad in [
            "",
            "00000001000000000000003",
            "0000000100000000000000030",
            "000000010000000000000003.partia",
            "00000001000000000000000g",
            "000000010000000000000100", // 256 segments per xlogid at 16 MiB
            "000000000000000000000003",
            "0000002.history",
            "00000002.History",
            "000000010000000000000002.backup",
            "000000010000000000000002.01000000.backup",
            "archive_status",
        ] {
            let err = WalFileKind::parse(bad, size).unwrap_err();
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }
}
