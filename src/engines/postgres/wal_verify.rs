//! The WAL half of `instarec archive verify`: every timeline's segments are
//! contiguous, and every segment's first page says it is the segment its key
//! names, of this cluster, at the archive's segment size.
//!
//! The segment size comes from the first segment's long page header, never
//! from an assumption: clusters made with `initdb --wal-segsize` differ.

use super::layout::{self, WalKey};
use crate::archive::{Archive, ArchiveError};
use futures::StreamExt;
use instarec_postgres::lsn::{Lsn, TimelineId};
use instarec_postgres::page::{XLogPageHeader, LONG_HEADER_LEN};
use instarec_postgres::segment::{SegmentNo, WalSegmentSize};
use instarec_postgres::version::major_for_wal_page_magic;
use instarec_postgres::wal_file::WalFileKind;
use std::collections::BTreeMap;

/// How many WAL objects are downloaded at once.
const READ_CONCURRENCY: usize = 4;

/// The smallest segment size names every segment of every size (it has the
/// most segments per xlogid), so it recognises names before the size is known.
fn naming_size() -> WalSegmentSize {
    WalSegmentSize::new(1 << 20).expect("1 MiB is a valid segment size")
}

/// One thing wrong with the archived WAL: the key it concerns (for a missing
/// segment, the key it should have) and what is wrong and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalFault {
    pub key: String,
    pub message: String,
}

impl WalFault {
    fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        WalFault {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// What one timeline holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineSummary {
    pub tli: TimelineId,
    /// First and last complete segment.
    pub first: Option<SegmentNo>,
    pub last: Option<SegmentNo>,
    /// Complete segments.
    pub segments: u64,
}

/// The outcome of [`verify_wal`].
#[derive(Debug, Default)]
pub struct WalReport {
    /// None when the archive holds no WAL (or no readable first page).
    pub segment_size: Option<WalSegmentSize>,
    pub timelines: Vec<TimelineSummary>,
    /// Segments, .partial files and first parts whose page header was checked.
    pub headers_checked: u64,
    /// Sorted by key.
    pub faults: Vec<WalFault>,
}

impl WalReport {
    pub fn is_clean(&self) -> bool {
        self.faults.is_empty()
    }
}

/// Checks continuity per timeline and the first page header of every
/// complete segment, .partial file and in-progress segment's first part.
/// Objects are read through `archive`, so their checksums are verified too.
/// Only a failing listing is an error; everything else is a fault.
pub async fn verify_wal(archive: &Archive, system_id: &str) -> Result<WalReport, ArchiveError> {
    let keys: Vec<String> = archive
        .list(layout::WAL_PREFIX)
        .await?
        .into_iter()
        .map(|e| e.key)
        .collect();
    let mut report = WalReport::default();
    let Some(size) = discover_segment_size(archive, &keys, &mut report.faults).await else {
        report.faults.sort_by(|a, b| a.key.cmp(&b.key));
        return Ok(report);
    };
    report.segment_size = Some(size);
    let inventory = WalInventory::from_keys(keys.iter().map(String::as_str), size);
    report.faults.extend(inventory.continuity_faults(size));
    report.timelines = inventory.summaries();

    let expected = Expected { size, system_id };
    let checks: Vec<(String, Lsn, Option<u64>)> = inventory.header_targets(size);
    // Outer None: the object vanished since the listing (superseded parts).
    let results: Vec<Option<Option<WalFault>>> = futures::stream::iter(checks)
        .map(|(key, start, full_len)| {
            let expected = &expected;
            async move {
                match archive.get(&key).await {
                    Ok(data) => Some(expected.check_first_page(&key, start, &data, full_len)),
                    Err(ArchiveError::NotFound { .. }) => None,
                    Err(e) => Some(Some(WalFault::new(
                        &key,
                        format!("cannot check its WAL page header: {e}"),
                    ))),
                }
            }
        })
        .buffered(READ_CONCURRENCY)
        .collect()
        .await;
    for checked in results.into_iter().flatten() {
        report.headers_checked += 1;
        report.faults.extend(checked);
    }
    report.faults.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(report)
}

/// Reads the first readable first page (complete segments first, then
/// .partial files, then first parts) for its long header's segment size.
async fn discover_segment_size(
    archive: &Archive,
    keys: &[String],
    faults: &mut Vec<WalFault>,
) -> Option<WalSegmentSize> {
    let inventory = WalInventory::from_keys(keys.iter().map(String::as_str), naming_size());
    let candidates = inventory.header_targets(naming_size());
    if candidates.is_empty() {
        return None;
    }
    for (key, _, _) in &candidates {
        let Ok(data) = archive.get(key).await else {
            continue;
        };
        let Ok(header) = XLogPageHeader::parse(&data) else {
            continue;
        };
        let Some(long) = header.long else { continue };
        if let Ok(size) = WalSegmentSize::new(u64::from(long.seg_size)) {
            return Some(size);
        }
    }
    faults.push(WalFault::new(
        layout::WAL_PREFIX,
        format!(
            "no WAL object has a readable first page ({} tried), so the segment size is \
             unknown and no WAL check could run; fix the faults reported for the objects \
             under wal/ and verify again",
            candidates.len()
        ),
    ));
    None
}

/// What a first page must say.
struct Expected<'a> {
    size: WalSegmentSize,
    system_id: &'a str,
}

impl Expected<'_> {
    /// Checks the long page header at the start of `data`, the first bytes of
    /// the segment starting at `start`. `full_len` is Some for whole segments,
    /// whose length must equal the segment size.
    fn check_first_page(
        &self,
        key: &str,
        start: Lsn,
        data: &[u8],
        full_len: Option<u64>,
    ) -> Option<WalFault> {
        let replace = "replace the object with the file from the primary's pg_wal \
                       (delete it, then `instarec wal-push`) or from another copy of the archive";
        let fault = |what: String| Some(WalFault::new(key, format!("{what}; {replace}")));
        if let Some(len) = full_len {
            if len != data.len() as u64 {
                return fault(format!(
                    "holds {} bytes, but segments of this archive are {} ({} bytes)",
                    data.len(),
                    self.size,
                    len
                ));
            }
        }
        if data.len() < LONG_HEADER_LEN {
            // A first part shorter than a header is legal; a segment is caught above.
            return None;
        }
        let header = match XLogPageHeader::parse(data) {
            Ok(h) => h,
            Err(e) => return fault(format!("first page: {e}")),
        };
        if major_for_wal_page_magic(header.magic).is_none() {
            return fault(format!(
                "first page magic {:#06X} is not the WAL page magic of any PostgreSQL major \
                 from 13 to {}: the object does not hold WAL",
                header.magic,
                instarec_postgres::version::newest_supported()
            ));
        }
        let Some(long) = header.long else {
            return fault("first page lacks the long header every segment starts with".into());
        };
        if header.pageaddr != start {
            return fault(format!(
                "first page address is {}, but the key names the segment starting at {start}: \
                 the object holds another segment's bytes",
                header.pageaddr
            ));
        }
        if long.system_id.to_string() != self.system_id {
            return fault(format!(
                "WAL of system {}, but the archive belongs to system {}: the archive mixes \
                 clusters; check every writer's [archive] url",
                long.system_id, self.system_id
            ));
        }
        if u64::from(long.seg_size) != self.size.bytes() {
            return fault(format!(
                "first page says segments are {} bytes, the archive's first segment says {}",
                long.seg_size,
                self.size.bytes()
            ));
        }
        None
    }
}

/// What wal/ holds, per timeline, from the keys alone.
#[derive(Debug, Default)]
pub struct WalInventory {
    timelines: BTreeMap<TimelineId, TimelineKeys>,
    /// Keys under wal/<TLI>/ that name nothing this layout writes.
    unexpected: Vec<String>,
}

#[derive(Debug, Default)]
struct TimelineKeys {
    complete: BTreeMap<SegmentNo, String>,
    partial: BTreeMap<SegmentNo, String>,
    /// Segment → (start, end, key) of each part.
    parts: BTreeMap<SegmentNo, Vec<(u64, u64, String)>>,
}

impl WalInventory {
    /// Sorts `keys` (anything; keys outside wal/<TLI>/ are ignored) by what they denote.
    pub fn from_keys<'a>(keys: impl IntoIterator<Item = &'a str>, size: WalSegmentSize) -> Self {
        let mut inv = WalInventory::default();
        for key in keys {
            let Some(rest) = key.strip_prefix(layout::WAL_PREFIX) else {
                continue;
            };
            if rest.starts_with("history/") || rest.starts_with("backup/") {
                continue;
            }
            match layout::parse_key(key, size) {
                WalKey::Segment { tli, seg } if layout::segment_key(tli, seg, size) == key => {
                    inv.timeline(tli).complete.insert(seg, key.to_string());
                }
                WalKey::Part {
                    tli,
                    seg,
                    start,
                    end,
                } if key.starts_with(&layout::part_prefix(tli, seg, size)) => {
                    inv.timeline(tli).parts.entry(seg).or_default().push((
                        start,
                        end,
                        key.to_string(),
                    ));
                }
                _ => match partial_of(key, size) {
                    Some((tli, seg)) => {
                        inv.timeline(tli).partial.insert(seg, key.to_string());
                    }
                    None => inv.unexpected.push(key.to_string()),
                },
            }
        }
        inv
    }

    fn timeline(&mut self, tli: TimelineId) -> &mut TimelineKeys {
        self.timelines.entry(tli).or_default()
    }

    /// One fault per segment missing between a timeline's first and last
    /// WAL, and per unexpected key. The timeline's last segment may be a
    /// .partial file or in-progress parts; anywhere else they leave a hole.
    pub fn continuity_faults(&self, size: WalSegmentSize) -> Vec<WalFault> {
        let mut faults = Vec::new();
        for (tli, t) in &self.timelines {
            let held = t
                .complete
                .keys()
                .chain(t.partial.keys())
                .chain(t.parts.keys());
            let (Some(first), Some(end)) = (held.clone().min(), held.max()) else {
                continue;
            };
            for n in first.0..=end.0 {
                let seg = SegmentNo(n);
                if t.complete.contains_key(&seg) {
                    continue;
                }
                let is_end = seg == *end;
                if is_end && (t.partial.contains_key(&seg) || t.parts.contains_key(&seg)) {
                    continue;
                }
                faults.push(gap_fault(*tli, seg, size, t));
            }
        }
        for key in &self.unexpected {
            faults.push(WalFault::new(
                key,
                format!(
                    "is not a segment, .partial file or part of a {size} segment under its \
                     timeline's folder, so recovery will never read it; remove it if it was \
                     put there by hand"
                ),
            ));
        }
        faults
    }

    fn summaries(&self) -> Vec<TimelineSummary> {
        self.timelines
            .iter()
            .map(|(tli, t)| TimelineSummary {
                tli: *tli,
                first: t.complete.keys().next().copied(),
                last: t.complete.keys().next_back().copied(),
                segments: t.complete.len() as u64,
            })
            .collect()
    }

    /// (key, segment start, Some(segment size) for whole files) of every
    /// object whose first page is checked: complete segments, .partial
    /// files, and parts starting at offset 0.
    fn header_targets(&self, size: WalSegmentSize) -> Vec<(String, Lsn, Option<u64>)> {
        let mut out = Vec::new();
        for t in self.timelines.values() {
            for (seg, key) in &t.complete {
                out.push((key.clone(), size.segment_start(*seg), Some(size.bytes())));
            }
        }
        for t in self.timelines.values() {
            for (seg, key) in &t.partial {
                out.push((key.clone(), size.segment_start(*seg), Some(size.bytes())));
            }
            for (seg, parts) in &t.parts {
                for (start, _, key) in parts {
                    if *start == 0 {
                        out.push((key.clone(), size.segment_start(*seg), None));
                    }
                }
            }
        }
        out
    }
}

fn gap_fault(tli: TimelineId, seg: SegmentNo, size: WalSegmentSize, t: &TimelineKeys) -> WalFault {
    let key = layout::segment_key(tli, seg, size);
    let start = size.segment_start(seg);
    let end = Lsn(start.0.saturating_add(size.bytes()));
    let what = if t.partial.contains_key(&seg) {
        "exists only as a .partial file, yet later WAL of this timeline is archived"
    } else if t.parts.contains_key(&seg) {
        "exists only as in-progress parts, yet later WAL of this timeline is archived"
    } else {
        "is missing, yet WAL before and after it is archived"
    };
    WalFault::new(
        &key,
        format!(
            "segment {key} (timeline {tli}, WAL {start} to {end}) {what}: recovery and \
             point-in-time restore stop at {start}; archive the segment from the primary's \
             pg_wal with `instarec wal-push` if it is still there, otherwise take a new base \
             backup"
        ),
    )
}

/// The timeline and segment of a `wal/<TLI>/<SEGMENT>.partial` key.
fn partial_of(key: &str, size: WalSegmentSize) -> Option<(TimelineId, SegmentNo)> {
    let name = key.rsplit('/').next()?;
    match WalFileKind::parse(name, size) {
        Ok(WalFileKind::Partial { tli, seg })
            if layout::key_for_file_name(name, size).as_deref() == Some(key) =>
        {
            Some((tli, seg))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mib16() -> WalSegmentSize {
        WalSegmentSize::new(16 << 20).unwrap()
    }

    fn faults(keys: &[&str]) -> Vec<String> {
        WalInventory::from_keys(keys.iter().copied(), mib16())
            .continuity_faults(mib16())
            .into_iter()
            .map(|f| f.key)
            .collect()
    }

    #[test]
    fn contiguous_timelines_are_clean() {
        assert!(faults(&[
            "cluster",
            "wal/00000001/000000010000000000000001",
            "wal/00000001/000000010000000000000002",
            "wal/00000001/000000010000000000000003",
            "wal/00000001/000000010000000000000004.partial",
            "wal/00000002/000000020000000000000004",
            "wal/00000002/000000020000000000000005.part/00000000-00002000",
            "wal/00000002/000000020000000000000005.part/00002000-00003000",
            "wal/history/00000002.history",
            "wal/backup/000000010000000000000002.00000028.backup",
        ])
        .is_empty());
    }

    #[test]
    fn every_missing_segment_is_named() {
        assert_eq!(
            faults(&[
                "wal/00000001/000000010000000000000001",
                "wal/00000001/000000010000000000000004",
                "wal/00000001/000000010000000000000005",
            ]),
            [
                "wal/00000001/000000010000000000000002",
                "wal/00000001/000000010000000000000003",
            ]
        );
    }

    #[test]
    fn gaps_across_an_xlogid_boundary_use_the_segment_size() {
        // At 16 MiB, ...0000FF is followed by ...000100000000.
        assert!(faults(&[
            "wal/00000001/0000000100000000000000FF",
            "wal/00000001/000000010000000100000000",
        ])
        .is_empty());
        assert_eq!(
            faults(&[
                "wal/00000001/0000000100000000000000FE",
                "wal/00000001/000000010000000100000000",
            ]),
            ["wal/00000001/0000000100000000000000FF"]
        );
    }

    #[test]
    fn parts_count_only_right_after_the_last_complete_segment() {
        assert!(faults(&[
            "wal/00000001/000000010000000000000001",
            "wal/00000001/000000010000000000000002.part/00000000-00001000",
        ])
        .is_empty());
        // Parts two segments on: the segment between is missing.
        assert_eq!(
            faults(&[
                "wal/00000001/000000010000000000000001",
                "wal/00000001/000000010000000000000003.part/00000000-00001000",
            ]),
            ["wal/00000001/000000010000000000000002"]
        );
        // Parts of a segment followed by complete ones leave a hole.
        let inv = WalInventory::from_keys(
            [
                "wal/00000001/000000010000000000000001",
                "wal/00000001/000000010000000000000002.part/00000000-00001000",
                "wal/00000001/000000010000000000000003",
            ],
            mib16(),
        );
        let f = inv.continuity_faults(mib16());
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].key, "wal/00000001/000000010000000000000002");
        assert!(
            f[0].message.contains("in-progress parts"),
            "{}",
            f[0].message
        );
        // Leftover parts of a complete segment are harmless.
        assert!(faults(&[
            "wal/00000001/000000010000000000000001",
            "wal/00000001/000000010000000000000001.part/00000000-00001000",
            "wal/00000001/000000010000000000000002",
        ])
        .is_empty());
    }

    #[test]
    fn a_partial_file_counts_only_as_the_last_segment() {
        assert!(faults(&[
            "wal/00000001/000000010000000000000001",
            "wal/00000001/000000010000000000000002.partial",
        ])
        .is_empty());
        let f = WalInventory::from_keys(
            [
                "wal/00000001/000000010000000000000001",
                "wal/00000001/000000010000000000000002.partial",
                "wal/00000001/000000010000000000000003",
            ],
            mib16(),
        )
        .continuity_faults(mib16());
        assert_eq!(f.len(), 1);
        assert!(f[0].message.contains(".partial"), "{}", f[0].message);
        assert!(f[0].message.contains("0/2000000"), "{}", f[0].message);
        assert!(f[0].message.contains("wal-push"), "{}", f[0].message);
    }

    #[test]
    fn timelines_are_checked_separately() {
        // Timeline 2 starting later than timeline 1 ends is no gap.
        assert_eq!(
            faults(&[
                "wal/00000001/000000010000000000000001",
                "wal/00000001/000000010000000000000002",
                "wal/00000002/000000020000000000000007",
                "wal/00000002/000000020000000000000009",
            ]),
            ["wal/00000002/000000020000000000000008"]
        );
    }

    #[test]
    fn keys_that_name_nothing_are_faults() {
        assert_eq!(
            faults(&[
                "wal/00000001/000000010000000000000001",
                // 256 segments per xlogid at 16 MiB: cannot exist.
                "wal/00000001/000000010000000000000100",
                // A timeline 1 segment in timeline 2's folder.
                "wal/00000002/000000010000000000000002",
                "wal/00000001/notes.txt",
            ]),
            [
                "wal/00000001/000000010000000000000100",
                "wal/00000002/000000010000000000000002",
                "wal/00000001/notes.txt",
            ]
        );
    }

    fn first_page(pageaddr: u64, system_id: u64, seg_size: u32, magic: u16) -> Vec<u8> {
        let mut page = vec![0u8; 8192];
        page[0..2].copy_from_slice(&magic.to_le_bytes());
        page[2..4].copy_from_slice(&2u16.to_le_bytes()); // XLP_LONG_HEADER
        page[4..8].copy_from_slice(&1u32.to_le_bytes());
        page[8..16].copy_from_slice(&pageaddr.to_le_bytes());
        page[24..32].copy_from_slice(&system_id.to_le_bytes());
        page[32..36].copy_from_slice(&seg_size.to_le_bytes());
        page[36..40].copy_from_slice(&8192u32.to_le_bytes());
        page
    }

    #[test]
    fn first_page_checks_name_what_is_wrong() {
        let size = WalSegmentSize::new(1 << 20).unwrap();
        let expected = Expected {
            size,
            system_id: "7263",
        };
        let start = size.segment_start(SegmentNo(3));
        let check = |page: &[u8]| expected.check_first_page("k", start, page, None);
        assert_eq!(check(&first_page(start.0, 7263, 1 << 20, 0xD110)), None);
        // PostgreSQL 18's magic is WAL too.
        assert_eq!(check(&first_page(start.0, 7263, 1 << 20, 0xD118)), None);
        let bad_magic = check(&first_page(start.0, 7263, 1 << 20, 0x1234)).unwrap();
        assert!(
            bad_magic.message.contains("0x1234"),
            "{}",
            bad_magic.message
        );
        let moved = check(&first_page(start.0 + (1 << 20), 7263, 1 << 20, 0xD110)).unwrap();
        assert!(moved.message.contains("0/400000"), "{}", moved.message);
        let foreign = check(&first_page(start.0, 7301, 1 << 20, 0xD110)).unwrap();
        assert!(
            foreign.message.contains("7301") && foreign.message.contains("7263"),
            "{}",
            foreign.message
        );
        let resized = check(&first_page(start.0, 7263, 2 << 20, 0xD110)).unwrap();
        assert!(resized.message.contains("2097152"), "{}", resized.message);
        let short = expected
            .check_first_page(
                "k",
                start,
                &first_page(start.0, 7263, 1 << 20, 0xD110),
                Some(1 << 20),
            )
            .unwrap();
        assert!(short.message.contains("8192 bytes"), "{}", short.message);
    }
}
