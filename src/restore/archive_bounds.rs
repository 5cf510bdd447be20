//! How far the archive reaches: the end of its contiguous WAL, and the last
//! time the shipper saw the primary move. Checked before a restore writes
//! anything, so an unreachable target fails fast.

use crate::archive::{Archive, ArchiveError};
use crate::engines::postgres::archive_end;
use crate::engines::postgres::layout::WAL_PREFIX;
use crate::ship::position_record;
use chrono::{DateTime, Utc};
use instarec_postgres::lsn::{Lsn, TimelineId};
use instarec_postgres::page::XLogPageHeader;
use instarec_postgres::segment::WalSegmentSize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveBounds {
    /// End of contiguous WAL on the newest timeline; None without WAL.
    pub wal_end: Option<(TimelineId, Lsn)>,
    /// When the shipper last recorded the primary's position.
    pub last_seen: Option<DateTime<Utc>>,
}

/// Reads the bounds from `archive` (bound to its cluster).
pub async fn read(archive: &Archive) -> Result<ArchiveBounds, ArchiveError> {
    let wal_end = match segment_size(archive).await? {
        Some(size) => archive_end::durable_end(archive, size).await?,
        None => None,
    };
    let last_seen = position_record::latest(archive).await?.map(|r| r.at);
    Ok(ArchiveBounds { wal_end, last_seen })
}

/// The WAL segment size, from the long header of the first object that
/// starts a segment (a part at offset 0 is small; else a whole segment).
pub async fn segment_size(archive: &Archive) -> Result<Option<WalSegmentSize>, ArchiveError> {
    let entries = archive.list(WAL_PREFIX).await?;
    let first_part = entries.iter().find(|e| e.key.contains(".part/00000000-"));
    let first_segment = entries.iter().find(|e| is_segment_key(&e.key));
    let Some(entry) = first_part.or(first_segment) else {
        return Ok(None);
    };
    let bytes = archive.get(&entry.key).await?;
    let corrupt = |reason: String| ArchiveError::Corrupt {
        key: entry.key.clone(),
        reason,
    };
    let header = XLogPageHeader::parse(&bytes).map_err(|e| corrupt(e.to_string()))?;
    let long = header
        .long
        .ok_or_else(|| corrupt("the first page has no long header".into()))?;
    WalSegmentSize::new(u64::from(long.seg_size))
        .map(Some)
        .map_err(|e| corrupt(e.to_string()))
}

/// `wal/<TLI>/<24 hex digits>`: a complete segment.
fn is_segment_key(key: &str) -> bool {
    let Some(rest) = key.strip_prefix(WAL_PREFIX) else {
        return false;
    };
    match rest.split_once('/') {
        Some((tli, name)) => {
            tli.len() == 8 && name.len() == 24 && name.chars().all(|c| c.is_ascii_hexdigit())
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_keys() {
        assert!(is_segment_key("wal/00000001/000000010000000000000003"));
        assert!(!is_segment_key(
            "wal/00000001/000000010000000000000003.part/00000000-00001000"
        ));
        assert!(!is_segment_key("wal/history/00000002.history"));
        assert!(!is_segment_key(
            "wal/00000001/000000010000000000000003.partial"
        ));
    }
}
