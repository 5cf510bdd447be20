//! The in-progress WAL segment: bytes from its start to what was received,
//! and how much of it has already been handed out as parts.

use super::layout;
use bytes::{Bytes, BytesMut};
use instarec_postgres::lsn::{Lsn, TimelineId};
use instarec_postgres::segment::{SegmentNo, WalSegmentSize};

/// A finished segment ready to become one archive object.
#[derive(Debug, Clone)]
pub struct CompletedSegment {
    pub key: String,
    pub data: Bytes,
    /// Part keys of this segment, now redundant.
    pub parts: Vec<String>,
}

#[derive(Debug)]
pub struct SegmentBuffer {
    tli: TimelineId,
    seg: SegmentNo,
    size: WalSegmentSize,
    data: BytesMut,
    /// Offset up to which parts were already cut.
    cut_upto: u64,
    /// Every part key known for this segment (cut here, or found at resume).
    parts: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("WAL arrived at {got} but the stream was at {expected} on timeline {tli}: the primary skipped WAL; restart the shipper, and if this repeats report it")]
pub struct GapError {
    pub got: Lsn,
    pub expected: Lsn,
    pub tli: TimelineId,
}

impl SegmentBuffer {
    /// An empty buffer for the segment holding `lsn`; `prefix` holds the
    /// segment's bytes before `lsn` (from the archive, or a parent timeline).
    pub fn starting_at(
        tli: TimelineId,
        lsn: Lsn,
        size: WalSegmentSize,
        prefix: Bytes,
        known_parts: Vec<String>,
        already_cut: bool,
    ) -> Self {
        let seg = size.segment_of(lsn);
        debug_assert_eq!(prefix.len() as u64, size.offset_in_segment(lsn));
        let mut data = BytesMut::with_capacity(size.bytes() as usize);
        data.extend_from_slice(&prefix);
        SegmentBuffer {
            tli,
            seg,
            size,
            cut_upto: if already_cut { prefix.len() as u64 } else { 0 },
            data,
            parts: known_parts,
        }
    }

    pub fn timeline(&self) -> TimelineId {
        self.tli
    }

    /// The LSN right after the last received byte.
    pub fn end(&self) -> Lsn {
        Lsn(self.size.segment_start(self.seg).0 + self.data.len() as u64)
    }

    pub fn uncut_bytes(&self) -> u64 {
        self.data.len() as u64 - self.cut_upto
    }

    /// Appends WAL starting at `start`; returns the segments this completed.
    pub fn push(&mut self, start: Lsn, mut wal: &[u8]) -> Result<Vec<CompletedSegment>, GapError> {
        if start != self.end() {
            return Err(GapError {
                got: start,
                expected: self.end(),
                tli: self.tli,
            });
        }
        let mut done = Vec::new();
        while !wal.is_empty() {
            let room = (self.size.bytes() - self.data.len() as u64) as usize;
            let take = room.min(wal.len());
            self.data.extend_from_slice(&wal[..take]);
            wal = &wal[take..];
            if self.data.len() as u64 == self.size.bytes() {
                done.push(self.complete());
            }
        }
        Ok(done)
    }

    fn complete(&mut self) -> CompletedSegment {
        let next = SegmentNo(self.seg.0 + 1);
        let data = std::mem::replace(
            &mut self.data,
            BytesMut::with_capacity(self.size.bytes() as usize),
        )
        .freeze();
        let done = CompletedSegment {
            key: layout::segment_key(self.tli, self.seg, self.size),
            data,
            parts: std::mem::take(&mut self.parts),
        };
        self.seg = next;
        self.cut_upto = 0;
        done
    }

    /// Hands out the uncut bytes as one part object, if there are any.
    pub fn cut_part(&mut self) -> Option<(String, Bytes)> {
        let end = self.data.len() as u64;
        if end == self.cut_upto {
            return None;
        }
        let key = layout::part_key(self.tli, self.seg, self.size, self.cut_upto, end);
        let bytes = Bytes::copy_from_slice(&self.data[self.cut_upto as usize..]);
        self.cut_upto = end;
        self.parts.push(key.clone());
        Some((key, bytes))
    }

    /// Continues on timeline `next` from `switch`: WAL before the switch
    /// point stays as the new timeline's segment prefix, exactly as
    /// PostgreSQL copies it into the new timeline's first segment.
    pub fn switch_timeline(&mut self, next: TimelineId, switch: Lsn) -> Result<(), GapError> {
        if switch > self.end() || self.size.segment_of(switch) != self.seg {
            return Err(GapError {
                got: switch,
                expected: self.end(),
                tli: next,
            });
        }
        let keep = self.size.offset_in_segment(switch) as usize;
        self.data.truncate(keep);
        self.tli = next;
        self.cut_upto = 0;
        self.parts.clear();
        Ok(())
    }

    /// The bytes received so far in this segment (for zero-padded serving).
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size() -> WalSegmentSize {
        WalSegmentSize::new(1 << 20).unwrap()
    }

    #[test]
    fn parts_then_completion_across_a_boundary() {
        let size = size();
        let mut b = SegmentBuffer::starting_at(
            TimelineId(1),
            Lsn(1 << 20),
            size,
            Bytes::new(),
            vec![],
            false,
        );
        assert!(b.push(Lsn(1 << 20), &[1; 1000]).unwrap().is_empty());
        let (k, p) = b.cut_part().unwrap();
        assert!(k.ends_with(".part/00000000-000003E8"), "{k}");
        assert_eq!(p.len(), 1000);
        assert!(b.cut_part().is_none(), "nothing new, nothing cut");
        let rest = vec![2u8; (1 << 20) - 1000 + 10];
        let done = b.push(Lsn((1 << 20) + 1000), &rest).unwrap();
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].data.len(), 1 << 20);
        assert_eq!(done[0].parts, vec![k]);
        assert_eq!(done[0].key, "wal/00000001/000000010000000000000001");
        assert_eq!(b.end(), Lsn((2 << 20) + 10));
        let (k2, p2) = b.cut_part().unwrap();
        assert!(
            k2.contains("000000010000000000000002.part/00000000-0000000A"),
            "{k2}"
        );
        assert_eq!(&p2[..], &[2u8; 10]);
    }

    #[test]
    fn a_gap_is_refused() {
        let mut b = SegmentBuffer::starting_at(
            TimelineId(1),
            Lsn(0x100000),
            size(),
            Bytes::new(),
            vec![],
            false,
        );
        let err = b.push(Lsn(0x100010), &[0; 4]).unwrap_err();
        assert_eq!(err.expected, Lsn(0x100000));
    }

    #[test]
    fn timeline_switch_keeps_the_prefix() {
        let size = size();
        let mut b = SegmentBuffer::starting_at(
            TimelineId(1),
            Lsn(1 << 20),
            size,
            Bytes::new(),
            vec![],
            false,
        );
        b.push(Lsn(1 << 20), &[7; 500]).unwrap();
        b.cut_part().unwrap();
        b.switch_timeline(TimelineId(2), Lsn((1 << 20) + 400))
            .unwrap();
        b.push(Lsn((1 << 20) + 400), &[8; 50]).unwrap();
        let (k, p) = b.cut_part().unwrap();
        assert!(
            k.starts_with("wal/00000002/000000020000000000000001.part/00000000-000001C2"),
            "{k}"
        );
        assert_eq!(&p[..400], &[7u8; 400][..]);
        assert_eq!(&p[400..], &[8u8; 50][..]);
    }
}
