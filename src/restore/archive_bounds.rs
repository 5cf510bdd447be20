//! How far the archive reaches: the end of its contiguous WAL, and the last
//! time the shipper saw the primary move. Checked before a restore writes
//! anything, so an unreachable target fails fast.

use crate::archive::{Archive, ArchiveError};
use crate::engines::postgres::archive_end;
use crate::ship::position_record;
use chrono::{DateTime, Utc};
use instarec_postgres::lsn::{Lsn, TimelineId};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveBounds {
    /// End of contiguous WAL on the newest timeline; None without WAL.
    pub wal_end: Option<(TimelineId, Lsn)>,
    /// When the shipper last recorded the primary's position.
    pub last_seen: Option<DateTime<Utc>>,
}

/// Reads the bounds from `archive` (bound to its cluster).
pub async fn read(archive: &Archive) -> Result<ArchiveBounds, ArchiveError> {
    let wal_end = match archive_end::segment_size(archive).await? {
        Some(size) => archive_end::durable_end(archive, size).await?,
        None => None,
    };
    let last_seen = position_record::latest(archive).await?.map(|r| r.at);
    Ok(ArchiveBounds { wal_end, last_seen })
}
