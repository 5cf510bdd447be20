//! Where a (re)started shipper continues: the end of what the archive
//! durably holds, with the in-progress segment's prefix reassembled from
//! its parts so the complete segment can still be built.

use super::layout::{self, WalKey};
use super::segment_buffer::{CompletedSegment, SegmentBuffer};
use crate::archive::{Archive, ArchiveError};
use bytes::{Bytes, BytesMut};
use instarec_postgres::lsn::{Lsn, TimelineId};
use instarec_postgres::segment::{SegmentNo, WalSegmentSize};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug)]
pub struct ResumePoint {
    pub tli: TimelineId,
    pub buffer: SegmentBuffer,
    /// A segment whose parts already cover it whole but whose complete
    /// object is missing (killed between the two): upload it first.
    pub completed: Option<CompletedSegment>,
    /// Parts made redundant by complete segments; safe to delete now.
    pub stale_parts: Vec<String>,
}

impl ResumePoint {
    pub fn lsn(&self) -> Lsn {
        self.buffer.end()
    }
}

/// A part's [start, end) within its segment, and its key.
type PartRange = (u64, u64, String);

/// Finds the resume point on the newest timeline that has WAL in the archive.
pub async fn find(
    archive: &Archive,
    size: WalSegmentSize,
) -> Result<Option<ResumePoint>, ArchiveError> {
    let entries = archive.list(layout::WAL_PREFIX).await?;
    let mut complete: BTreeMap<TimelineId, BTreeSet<SegmentNo>> = BTreeMap::new();
    let mut parts: BTreeMap<(TimelineId, SegmentNo), Vec<PartRange>> = BTreeMap::new();
    for e in entries {
        match layout::parse_key(&e.key, size) {
            WalKey::Segment { tli, seg } => {
                complete.entry(tli).or_default().insert(seg);
            }
            WalKey::Part {
                tli,
                seg,
                start,
                end,
            } => parts
                .entry((tli, seg))
                .or_default()
                .push((start, end, e.key)),
            WalKey::History { .. } | WalKey::Other => {}
        }
    }
    let newest = complete
        .keys()
        .chain(parts.keys().map(|(t, _)| t))
        .max()
        .copied();
    let Some(tli) = newest else {
        return Ok(None);
    };
    let done = complete.remove(&tli).unwrap_or_default();
    let last_complete = done.iter().next_back().copied();

    let mut stale_parts = Vec::new();
    let mut candidate = None;
    for ((t, seg), list) in &parts {
        if *t != tli {
            continue;
        }
        if done.contains(seg) {
            stale_parts.extend(list.iter().map(|(_, _, k)| k.clone()));
        } else if last_complete.is_none_or(|l| *seg > l) && candidate.is_none() {
            candidate = Some(*seg);
        }
    }

    let Some(seg) = candidate else {
        let next = SegmentNo(last_complete.map(|s| s.0 + 1).unwrap_or(0));
        let buffer = SegmentBuffer::starting_at(
            tli,
            size.segment_start(next),
            size,
            Bytes::new(),
            vec![],
            true,
        );
        return Ok(Some(ResumePoint {
            tli,
            buffer,
            completed: None,
            stale_parts,
        }));
    };

    let mut list = parts.remove(&(tli, seg)).unwrap_or_default();
    list.sort();
    let known: Vec<String> = list.iter().map(|(_, _, k)| k.clone()).collect();
    let mut prefix = BytesMut::new();
    for (start, end, key) in &list {
        let covered = prefix.len() as u64;
        if *start > covered {
            break; // a gap: everything after it is re-streamed
        }
        if *end <= covered {
            continue;
        }
        let bytes = archive.get(key).await?;
        if bytes.len() as u64 != end - start {
            return Err(ArchiveError::Corrupt {
                key: key.clone(),
                reason: format!(
                    "part holds {} bytes but its name says {}",
                    bytes.len(),
                    end - start
                ),
            });
        }
        prefix.extend_from_slice(&bytes[(covered - start) as usize..]);
    }
    let prefix = prefix.freeze();
    let seg_start = size.segment_start(seg);
    if prefix.len() as u64 == size.bytes() {
        let completed = CompletedSegment {
            key: layout::segment_key(tli, seg, size),
            data: prefix,
            parts: known,
        };
        let next = SegmentNo(seg.0 + 1);
        let buffer = SegmentBuffer::starting_at(
            tli,
            size.segment_start(next),
            size,
            Bytes::new(),
            vec![],
            true,
        );
        return Ok(Some(ResumePoint {
            tli,
            buffer,
            completed: Some(completed),
            stale_parts,
        }));
    }
    let lsn = Lsn(seg_start.0 + prefix.len() as u64);
    let buffer = SegmentBuffer::starting_at(tli, lsn, size, prefix, known, true);
    Ok(Some(ResumePoint {
        tli,
        buffer,
        completed: None,
        stale_parts,
    }))
}
