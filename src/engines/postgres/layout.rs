//! Where PostgreSQL WAL lives in the archive.
//!
//! ```text
//! wal/<TLI>/<SEGMENT>                     a complete segment, e.g. wal/00000001/000000010000000000000003
//! wal/<TLI>/<SEGMENT>.part/<START>-<END>  bytes [START, END) of an in-progress segment (hex offsets)
//! wal/<TLI>/<SEGMENT>.partial             a .partial file handed to wal-push by PostgreSQL
//! wal/history/<TLI>.history               timeline history files
//! wal/backup/<NAME>.backup                backup history files
//! ```
//! Fixed-width hex makes key order equal LSN order within a timeline.

use instarec_postgres::lsn::TimelineId;
use instarec_postgres::segment::{SegmentNo, WalSegmentSize};
use instarec_postgres::wal_file::WalFileKind;

pub const WAL_PREFIX: &str = "wal/";

pub fn timeline_prefix(tli: TimelineId) -> String {
    format!("{WAL_PREFIX}{:08X}/", tli.0)
}

pub fn segment_key(tli: TimelineId, seg: SegmentNo, size: WalSegmentSize) -> String {
    let name = WalFileKind::Segment { tli, seg }.file_name(size);
    format!("{}{name}", timeline_prefix(tli))
}

pub fn part_prefix(tli: TimelineId, seg: SegmentNo, size: WalSegmentSize) -> String {
    format!("{}.part/", segment_key(tli, seg, size))
}

pub fn part_key(
    tli: TimelineId,
    seg: SegmentNo,
    size: WalSegmentSize,
    start: u64,
    end: u64,
) -> String {
    format!("{}{start:08X}-{end:08X}", part_prefix(tli, seg, size))
}

pub fn history_key(tli: TimelineId) -> String {
    format!("{WAL_PREFIX}history/{:08X}.history", tli.0)
}

/// The key for a file PostgreSQL names in archive_command/restore_command.
pub fn key_for_file_name(name: &str, size: WalSegmentSize) -> Option<String> {
    let kind = WalFileKind::parse(name, size).ok()?;
    Some(match kind {
        WalFileKind::Segment { tli, .. } | WalFileKind::Partial { tli, .. } => {
            format!("{}{name}", timeline_prefix(tli))
        }
        WalFileKind::History { tli } => history_key(tli),
        WalFileKind::BackupLabel { .. } => format!("{WAL_PREFIX}backup/{name}"),
    })
}

/// What an archive key under wal/ denotes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalKey {
    Segment {
        tli: TimelineId,
        seg: SegmentNo,
    },
    Part {
        tli: TimelineId,
        seg: SegmentNo,
        start: u64,
        end: u64,
    },
    History {
        tli: TimelineId,
    },
    Other,
}

pub fn parse_key(key: &str, size: WalSegmentSize) -> WalKey {
    let Some(rest) = key.strip_prefix(WAL_PREFIX) else {
        return WalKey::Other;
    };
    if let Some(name) = rest.strip_prefix("history/") {
        return match WalFileKind::parse(name, size) {
            Ok(WalFileKind::History { tli }) => WalKey::History { tli },
            _ => WalKey::Other,
        };
    }
    let Some((_, file)) = rest.split_once('/') else {
        return WalKey::Other;
    };
    if let Some((seg_name, range)) = file.split_once(".part/") {
        let Ok(WalFileKind::Segment { tli, seg }) = WalFileKind::parse(seg_name, size) else {
            return WalKey::Other;
        };
        let Some((a, b)) = range.split_once('-') else {
            return WalKey::Other;
        };
        return match (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) {
            (Ok(start), Ok(end)) if start < end && end <= size.bytes() => WalKey::Part {
                tli,
                seg,
                start,
                end,
            },
            _ => WalKey::Other,
        };
    }
    match WalFileKind::parse(file, size) {
        Ok(WalFileKind::Segment { tli, seg }) => WalKey::Segment { tli, seg },
        _ => WalKey::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mib16() -> WalSegmentSize {
        WalSegmentSize::new(16 << 20).unwrap()
    }

    #[test]
    fn keys_round_trip() {
        let size = mib16();
        let tli = TimelineId(1);
        let seg = SegmentNo(3);
        assert_eq!(
            segment_key(tli, seg, size),
            "wal/00000001/000000010000000000000003"
        );
        let part = part_key(tli, seg, size, 0, 0x2000);
        assert_eq!(
            part,
            "wal/00000001/000000010000000000000003.part/00000000-00002000"
        );
        assert_eq!(
            parse_key(&part, size),
            WalKey::Part {
                tli,
                seg,
                start: 0,
                end: 0x2000
            }
        );
        assert_eq!(
            parse_key("wal/00000001/000000010000000000000003", size),
            WalKey::Segment { tli, seg }
        );
        assert_eq!(
            parse_key("wal/history/00000002.history", size),
            WalKey::History { tli: TimelineId(2) }
        );
        assert_eq!(parse_key("epochs/1", size), WalKey::Other);
    }

    #[test]
    fn file_names_map_to_keys() {
        let size = mib16();
        assert_eq!(
            key_for_file_name("000000020000000100000004", size).unwrap(),
            "wal/00000002/000000020000000100000004"
        );
        assert_eq!(
            key_for_file_name("00000002.history", size).unwrap(),
            "wal/history/00000002.history"
        );
        assert_eq!(
            key_for_file_name("000000010000000000000002.00000028.backup", size).unwrap(),
            "wal/backup/000000010000000000000002.00000028.backup"
        );
        assert_eq!(
            key_for_file_name("000000010000000000000003.partial", size).unwrap(),
            "wal/00000001/000000010000000000000003.partial"
        );
        assert!(key_for_file_name("pg_control", size).is_none());
    }

    #[test]
    fn part_ranges_beyond_the_segment_are_not_parts() {
        let size = mib16();
        assert_eq!(
            parse_key(
                "wal/00000001/000000010000000000000003.part/00000000-01000001",
                size
            ),
            WalKey::Other
        );
    }
}
