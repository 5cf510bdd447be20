//! One epoch's binlog as the archive holds it, for promote: where it
//! ends, and which chunk a replica's GTID position reached.
//!
//! Promote pins the old primary's epoch: chunks a shipper of the new
//! primary writes later are a different server's binlog and must not be
//! mistaken for what the old primary lost.

use super::index::ChunkIndex;
use super::layout::{self, BinlogKey, IndexKey};
use crate::archive::{Archive, ArchiveError, Epoch};
use instarec_mysql::{MariadbGtid, MariadbGtidPos};
use std::collections::HashSet;

/// The newest epoch with any binlog index in the archive.
pub async fn newest_epoch(archive: &Archive) -> Result<Option<Epoch>, ArchiveError> {
    Ok(archive
        .list(layout::INDEX_PREFIX)
        .await?
        .iter()
        .filter_map(|e| IndexKey::parse(&e.key))
        .map(|k| k.epoch)
        .max())
}

/// Index keys of `epoch` in stream order, up to the first whose chunk is
/// missing (a kill mid-upload): the contiguous log the archive holds.
pub async fn complete_indexes(
    archive: &Archive,
    epoch: Epoch,
) -> Result<Vec<String>, ArchiveError> {
    let mut chunks = HashSet::new();
    for e in archive.list(&layout::epoch_prefix(epoch)).await? {
        if let BinlogKey::Chunk { file, first, .. } = layout::parse_key(&e.key) {
            chunks.insert((file, first));
        }
    }
    let prefix = format!("{}{:020}/", layout::INDEX_PREFIX, epoch.0);
    let mut keys: Vec<(IndexKey, String)> = archive
        .list(&prefix)
        .await?
        .into_iter()
        .filter_map(|e| IndexKey::parse(&e.key).map(|k| (k, e.key)))
        .collect();
    keys.sort_by(|a, b| a.0.stream_order(&b.0));
    Ok(keys
        .into_iter()
        .take_while(|(k, _)| chunks.contains(&(k.file.clone(), k.first)))
        .map(|(_, key)| key)
        .collect())
}

/// The newest complete chunk of `epoch`.
pub async fn last_chunk(
    archive: &Archive,
    epoch: Epoch,
) -> Result<Option<ChunkIndex>, ArchiveError> {
    match complete_indexes(archive, epoch).await?.last() {
        Some(key) => Ok(Some(ChunkIndex::read(archive, key).await?)),
        None => Ok(None),
    }
}

/// Where a replica at `pos` stands in `epoch`'s chunks.
#[derive(Debug, Clone, PartialEq)]
pub enum Reached {
    /// `pos` holds every transaction of this chunk (its newest such chunk).
    Whole(ChunkIndex),
    /// `pos` holds this chunk's first transaction but not all of them.
    Part(ChunkIndex),
}

/// The newest chunk of `epoch` whose first transaction `pos` holds, read
/// newest first (a drained replica stops in the last chunk or so).
pub async fn reached(
    archive: &Archive,
    epoch: Epoch,
    pos: &MariadbGtidPos,
) -> Result<Option<Reached>, ArchiveError> {
    for key in complete_indexes(archive, epoch).await?.iter().rev() {
        let index = ChunkIndex::read(archive, key).await?;
        let Some(first) = index.first_gtid.as_deref() else {
            continue;
        };
        let first: MariadbGtid = first.parse().map_err(|e| corrupt(key, "first_gtid", e))?;
        if !pos.contains(&first) {
            continue;
        }
        let after: MariadbGtidPos = index
            .gtid_pos_after
            .parse()
            .map_err(|e| corrupt(key, "gtid_pos_after", e))?;
        let whole = after.iter().all(|g| pos.contains(g));
        return Ok(Some(if whole {
            Reached::Whole(index)
        } else {
            Reached::Part(index)
        }));
    }
    Ok(None)
}

fn corrupt(key: &str, field: &str, e: impl std::fmt::Display) -> ArchiveError {
    ArchiveError::Corrupt {
        key: key.to_string(),
        reason: format!("binlog index {field} is not a MariaDB GTID: {e}"),
    }
}
