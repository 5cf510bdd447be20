//! Where the archived WAL ends, from object names alone (no downloads):
//! what backups wait for and what promote drains to.

use super::layout::{self, WalKey};
use crate::archive::{Archive, ArchiveError};
use instarec_postgres::lsn::{Lsn, TimelineId};
use instarec_postgres::segment::{SegmentNo, WalSegmentSize};
use std::collections::BTreeMap;

/// The end of contiguous WAL on the newest timeline: the last complete
/// segment's end, extended by parts of the segments after it that start
/// where the coverage ends. None when the archive holds no WAL.
pub async fn durable_end(
    archive: &Archive,
    size: WalSegmentSize,
) -> Result<Option<(TimelineId, Lsn)>, ArchiveError> {
    let keys: Vec<String> = archive
        .list(layout::WAL_PREFIX)
        .await?
        .into_iter()
        .map(|e| e.key)
        .collect();
    Ok(end_of_keys(&keys, size))
}

/// The pure part of [`durable_end`].
pub fn end_of_keys(keys: &[String], size: WalSegmentSize) -> Option<(TimelineId, Lsn)> {
    let mut complete: BTreeMap<TimelineId, Vec<SegmentNo>> = BTreeMap::new();
    let mut parts: BTreeMap<(TimelineId, SegmentNo), Vec<(u64, u64)>> = BTreeMap::new();
    for key in keys {
        match layout::parse_key(key, size) {
            WalKey::Segment { tli, seg } => complete.entry(tli).or_default().push(seg),
            WalKey::Part {
                tli,
                seg,
                start,
                end,
            } => parts.entry((tli, seg)).or_default().push((start, end)),
            _ => {}
        }
    }
    let tli = complete
        .keys()
        .chain(parts.keys().map(|(t, _)| t))
        .max()
        .copied()?;
    let mut segs = complete.remove(&tli).unwrap_or_default();
    segs.sort();
    // From the first archived segment of this timeline, as far as contiguous.
    let first_part = parts
        .keys()
        .filter(|(t, _)| *t == tli)
        .map(|(_, s)| *s)
        .min();
    let mut seg = match (segs.first(), first_part) {
        (Some(a), Some(b)) => (*a).min(b),
        (Some(a), None) => *a,
        (None, Some(b)) => b,
        (None, None) => return None,
    };
    let mut end = size.segment_start(seg);
    loop {
        if segs.binary_search(&seg).is_ok() {
            seg = SegmentNo(seg.0 + 1);
            end = size.segment_start(seg);
            continue;
        }
        let Some(list) = parts.get_mut(&(tli, seg)) else {
            return Some((tli, end));
        };
        list.sort();
        let mut covered = 0u64;
        for (start, stop) in list.iter() {
            if *start > covered {
                break;
            }
            covered = covered.max(*stop);
        }
        if covered == size.bytes() {
            seg = SegmentNo(seg.0 + 1);
            end = size.segment_start(seg);
            continue;
        }
        return Some((tli, Lsn(size.segment_start(seg).0 + covered)));
    }
}

/// The cluster's WAL segment size, read from the long header of the first
/// object that starts a segment: a part at offset 0 when there is one (a
/// small read), else a complete segment. None when no WAL is archived yet.
pub async fn segment_size(archive: &Archive) -> Result<Option<WalSegmentSize>, ArchiveError> {
    // The smallest size accepts every valid name; keys use names verbatim.
    let naming = WalSegmentSize::new(1 << 20).expect("1 MiB is a valid segment size");
    let entries = archive.list(layout::WAL_PREFIX).await?;
    // Part ranges may exceed the naming size, so parts are found by name.
    let first_part = entries.iter().find(|e| e.key.contains(".part/00000000-"));
    let first_segment = entries
        .iter()
        .find(|e| matches!(layout::parse_key(&e.key, naming), WalKey::Segment { .. }));
    let Some(entry) = first_part.or(first_segment) else {
        return Ok(None);
    };
    let data = archive.get(&entry.key).await?;
    let corrupt = |reason: String| ArchiveError::Corrupt {
        key: entry.key.clone(),
        reason,
    };
    let header = instarec_postgres::page::XLogPageHeader::parse(&data)
        .map_err(|e| corrupt(format!("first WAL page: {e}")))?;
    let long = header
        .long
        .ok_or_else(|| corrupt("the first page has no long header".into()))?;
    WalSegmentSize::new(u64::from(long.seg_size))
        .map(Some)
        .map_err(|e| corrupt(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size() -> WalSegmentSize {
        WalSegmentSize::new(16 << 20).unwrap()
    }

    fn keys(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn complete_segments_then_parts() {
        let k = keys(&[
            "wal/00000001/000000010000000000000001",
            "wal/00000001/000000010000000000000002",
            "wal/00000001/000000010000000000000003.part/00000000-00001000",
            "wal/00000001/000000010000000000000003.part/00001000-00002400",
            "wal/history/00000002.history",
        ]);
        assert_eq!(
            end_of_keys(&k, size()),
            Some((TimelineId(1), Lsn(0x3002400)))
        );
    }

    #[test]
    fn a_missing_segment_ends_the_coverage() {
        let k = keys(&[
            "wal/00000001/000000010000000000000001",
            "wal/00000001/000000010000000000000003",
        ]);
        assert_eq!(
            end_of_keys(&k, size()),
            Some((TimelineId(1), Lsn(0x2000000)))
        );
    }

    #[test]
    fn newest_timeline_wins_and_empty_is_none() {
        let k = keys(&[
            "wal/00000001/000000010000000000000001",
            "wal/00000002/000000020000000000000001.part/00000000-00000100",
        ]);
        assert_eq!(
            end_of_keys(&k, size()),
            Some((TimelineId(2), Lsn(0x1000100)))
        );
        assert_eq!(end_of_keys(&[], size()), None);
    }
}
