//! Where a (re)started shipper continues: after the newest chunk whose
//! index and chunk are both in the archive, with no gap before it.

use super::index::ChunkIndex;
use super::layout::{self, BinlogKey, IndexKey};
use crate::archive::{Archive, ArchiveError, Epoch};
use std::collections::{BTreeMap, HashSet};

#[derive(Debug, Clone)]
pub struct ResumePoint {
    /// The newest complete chunk's index: its gtid_pos_after is where the
    /// stream continues, its file:end_pos what the same server re-sends.
    pub last: ChunkIndex,
}

/// What the archive holds for a shipper of `epoch`.
#[derive(Debug, Clone, Default)]
pub struct ArchiveState {
    pub resume: Option<ResumePoint>,
    /// Files of `epoch` whose format object is archived.
    pub formats: HashSet<String>,
}

pub async fn find(archive: &Archive, epoch: Epoch) -> Result<ArchiveState, ArchiveError> {
    // (epoch, file, first offset) of every chunk: an index names its chunk by these.
    let mut chunks = HashSet::new();
    let mut formats = HashSet::new();
    for e in archive.list(layout::BINLOG_PREFIX).await? {
        match layout::parse_key(&e.key) {
            BinlogKey::Chunk {
                epoch, file, first, ..
            } => {
                chunks.insert((epoch, file, first));
            }
            BinlogKey::Format { epoch: ep, file } if ep == epoch => {
                formats.insert(file);
            }
            _ => {}
        }
    }
    let mut by_epoch: BTreeMap<Epoch, Vec<(IndexKey, String)>> = BTreeMap::new();
    for e in archive.list(layout::INDEX_PREFIX).await? {
        if let Some(k) = IndexKey::parse(&e.key) {
            by_epoch.entry(k.epoch).or_default().push((k, e.key));
        }
    }
    // Newest epoch first; within it, the prefix of chunks that all made it
    // (a kill mid-upload can leave an index whose chunk is missing).
    for (_, mut list) in by_epoch.into_iter().rev() {
        list.sort_by(|a, b| a.0.stream_order(&b.0));
        let mut last = None;
        for (k, key) in &list {
            if !chunks.contains(&(k.epoch, k.file.clone(), k.first)) {
                tracing::warn!(index = %key, "chunk missing (interrupted upload); resuming before it");
                break;
            }
            last = Some(key);
        }
        if let Some(key) = last {
            let last = ChunkIndex::read(archive, key).await?;
            let own_chunk = layout::chunk_key(last.epoch, &last.file, last.first_pos, last.end_pos);
            if layout::index_key(last.epoch, &last.file, last.first_pos) != *key
                || last.chunk != own_chunk
            {
                return Err(ArchiveError::Corrupt {
                    key: key.clone(),
                    reason: format!(
                        "the index describes {} at {}:{}, not the chunk its key names",
                        last.chunk, last.file, last.first_pos
                    ),
                });
            }
            return Ok(ArchiveState {
                resume: Some(ResumePoint { last }),
                formats,
            });
        }
    }
    Ok(ArchiveState {
        resume: None,
        formats,
    })
}
