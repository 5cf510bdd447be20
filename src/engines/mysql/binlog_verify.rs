//! The binlog half of `instarec archive verify`: per epoch and file, the
//! chunks tile the file from its FORMAT_DESCRIPTION on without gap or
//! overlap; every chunk is whole events whose log_pos chain and CRC32 hold;
//! GTIDs continue without a gap or a repeat in stream order (MariaDB per
//! domain, MySQL per server uuid: gtid_sequence.rs); and each chunk's index
//! says what the chunk holds.
//!
//! A file's first archived offset may lie past its FORMAT_DESCRIPTION only
//! in the first file of an epoch: a shipper may start mid-file there.

mod gtid_sequence;

use super::index::ChunkIndex;
use super::layout::{self, BinlogKey, IndexKey};
use crate::archive::{Archive, ArchiveError, Epoch};
use bytes::Bytes;
use gtid_sequence::{GtidSequence, SequenceBreak};
use instarec_mysql::format_description_event::FormatDescriptionEvent;
use instarec_mysql::mariadb_gtid_event::MariadbGtidEvent;
use instarec_mysql::mysql_gtid_event::MysqlGtidEvent;
use instarec_mysql::{
    BinlogChecksum, EventGtid, EventHeader, EventType, RawEvent, EVENT_HEADER_LEN,
};
use std::collections::{BTreeMap, HashMap, HashSet};

/// What to do about a chunk whose bytes are wrong or missing.
const RESHIP: &str = "restore the key from a replica of the bucket, or re-ship the file from a server that still has it";

/// One thing wrong with the archived binlog: the key it concerns (for a
/// missing range, the chunk key it would have) and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinlogFault {
    pub key: String,
    pub message: String,
}

impl BinlogFault {
    fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        BinlogFault {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// The outcome of [`verify_binlog`].
#[derive(Debug, Default)]
pub struct BinlogReport {
    pub epochs: usize,
    pub files: usize,
    pub chunks: u64,
    pub events: u64,
    pub faults: Vec<BinlogFault>,
}

#[derive(Debug, Clone)]
struct ChunkRef {
    key: String,
    first: u64,
    end: u64,
}

/// What walking one chunk's events found.
#[derive(Debug, Default)]
struct ChunkScan {
    events: u64,
    /// The GTIDs that start the chunk's transactions, in order.
    gtids: Vec<EventGtid>,
    /// The first framing, position or checksum error, if any.
    error: Option<String>,
}

pub async fn verify_binlog(archive: &Archive) -> Result<BinlogReport, ArchiveError> {
    // epoch -> file -> chunks; formats by (epoch, file).
    let mut epochs: BTreeMap<Epoch, HashMap<String, Vec<ChunkRef>>> = BTreeMap::new();
    let mut formats: HashMap<(Epoch, String), String> = HashMap::new();
    for e in archive.list(layout::BINLOG_PREFIX).await? {
        match layout::parse_key(&e.key) {
            BinlogKey::Chunk {
                epoch,
                file,
                first,
                end,
            } => epochs
                .entry(epoch)
                .or_default()
                .entry(file)
                .or_default()
                .push(ChunkRef {
                    key: e.key,
                    first,
                    end,
                }),
            BinlogKey::Format { epoch, file } => {
                epochs
                    .entry(epoch)
                    .or_default()
                    .entry(file.clone())
                    .or_default();
                formats.insert((epoch, file), e.key);
            }
            BinlogKey::Other => {}
        }
    }
    let mut indexes: HashMap<(Epoch, String, u64), String> = HashMap::new();
    for e in archive.list(layout::INDEX_PREFIX).await? {
        if let Some(k) = IndexKey::parse(&e.key) {
            indexes.insert((k.epoch, k.file, k.first), e.key);
        }
    }

    let mut report = BinlogReport::default();
    for (epoch, files) in epochs {
        report.epochs += 1;
        let mut names: Vec<String> = files.keys().cloned().collect();
        names.sort_by(|a, b| layout::compare_files(a, b));
        // GTIDs continue across files; each epoch is its own primary's history.
        let mut seq = GtidSequence::default();
        for (n, file) in names.iter().enumerate() {
            report.files += 1;
            let mut chunks = files[file].clone();
            chunks.sort_by_key(|c| (c.first, c.end));
            let format = read_format(archive, &formats, epoch, file, &mut report.faults).await?;
            let checksum = format.as_ref().map(|f| f.1);
            let mut expected = match &format {
                Some((end, _)) if n > 0 => Some(*end),
                _ => None,
            };
            let paired = paired_chunks(archive, &indexes, epoch, file, &chunks).await?;
            let mut previous: Option<&ChunkRef> = None;
            for chunk in &chunks {
                report.chunks += 1;
                let index_key = paired
                    .contains(&chunk.key)
                    .then(|| indexes.remove(&(epoch, file.clone(), chunk.first)))
                    .flatten();
                let Some(index_key) = index_key else {
                    // Not archived (a chunk counts once its index exists):
                    // left out of the tiling, but its bytes are still checked.
                    report.faults.push(BinlogFault::new(
                        &chunk.key,
                        stray_message(epoch, file, chunk),
                    ));
                    scan_chunk(archive, chunk, checksum, &mut report.faults).await?;
                    continue;
                };
                check_tiling(epoch, file, chunk, previous, expected, &mut report.faults);
                expected = Some(expected.map_or(chunk.end, |e| e.max(chunk.end)));
                previous = Some(chunk);
                let scan = scan_chunk(archive, chunk, checksum, &mut report.faults).await?;
                let Some(scan) = scan else { continue };
                report.events += scan.events;
                check_gtids(&chunk.key, &scan.gtids, &mut seq, &mut report.faults);
                report.faults.extend(
                    check_index(archive, &index_key, epoch, file, chunk, &scan, &mut seq).await?,
                );
            }
        }
    }
    let mut orphans: Vec<String> = indexes.into_values().collect();
    orphans.sort();
    for key in orphans {
        report.faults.push(BinlogFault::new(
            key,
            format!("index names a chunk that is not in the archive; {RESHIP}"),
        ));
    }
    report.faults = one_per_key(report.faults);
    Ok(report)
}

/// The chunks of `file` that have an index: for each index, the chunk it
/// names. The shipper writes a cut's chunk before its index, so a crash
/// between the two leaves a chunk without index; the restarted shipper cuts
/// again from the same offset, usually to another end, and only the chunk
/// the index names is archived. An index that names none of the chunks at
/// its offset (or can't be read) pairs with the first, for `check_index`
/// to report.
async fn paired_chunks(
    archive: &Archive,
    indexes: &HashMap<(Epoch, String, u64), String>,
    epoch: Epoch,
    file: &str,
    chunks: &[ChunkRef],
) -> Result<HashSet<String>, ArchiveError> {
    let mut at: BTreeMap<u64, Vec<&ChunkRef>> = BTreeMap::new();
    for chunk in chunks {
        at.entry(chunk.first).or_default().push(chunk);
    }
    let mut paired = HashSet::new();
    for (first, candidates) in at {
        let Some(index_key) = indexes.get(&(epoch, file.to_string(), first)) else {
            continue;
        };
        let named = if candidates.len() > 1 {
            match ChunkIndex::read(archive, index_key).await {
                Ok(index) => candidates.iter().find(|c| c.key == index.chunk).copied(),
                Err(e) if e.is_integrity_fault() => None,
                Err(e) => return Err(e),
            }
        } else {
            None
        };
        if let Some(chunk) = named.or(candidates.first().copied()) {
            paired.insert(chunk.key.clone());
        }
    }
    Ok(paired)
}

/// Restore, relay and promote find chunks through their indexes only, so
/// a chunk without one is never read: harmless, and safe to delete.
fn stray_message(epoch: Epoch, file: &str, chunk: &ChunkRef) -> String {
    format!(
        "chunk has no index ({} is missing or names another chunk), so restore, relay and promote never read it: most likely an upload interrupted between a chunk and its index, cut again after the shipper restarted. It is harmless; delete it with your object store's tools to tidy up (`instarec archive ls {}{file}/` lists the file's chunks)",
        layout::index_key(epoch, file, chunk.first),
        layout::epoch_prefix(epoch),
    )
}

/// Joins the messages of faults on the same key, sorted by key.
fn one_per_key(faults: Vec<BinlogFault>) -> Vec<BinlogFault> {
    let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in faults {
        by_key.entry(f.key).or_default().push(f.message);
    }
    by_key
        .into_iter()
        .map(|(key, messages)| BinlogFault::new(key, messages.join(" | ")))
        .collect()
}

/// The file's format object: where its events start and their checksum.
async fn read_format(
    archive: &Archive,
    formats: &HashMap<(Epoch, String), String>,
    epoch: Epoch,
    file: &str,
    faults: &mut Vec<BinlogFault>,
) -> Result<Option<(u64, BinlogChecksum)>, ArchiveError> {
    let key = layout::format_key(epoch, file);
    if !formats.contains_key(&(epoch, file.to_string())) {
        faults.push(BinlogFault::new(
            &key,
            format!("{file} has chunks but no FORMAT_DESCRIPTION object, so replicas can't read it and checksums can't be checked; {RESHIP}"),
        ));
        return Ok(None);
    }
    let bytes = match archive.get(&key).await {
        Ok(b) => b,
        Err(e) if e.is_integrity_fault() => {
            faults.push(BinlogFault::new(&key, e.to_string()));
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let len = bytes.len() as u64;
    let parsed = RawEvent::parse(bytes).and_then(|ev| {
        let fde = FormatDescriptionEvent::from_event(&ev)?;
        Ok((ev.header.log_pos, fde.checksum))
    });
    match parsed {
        Ok((log_pos, checksum)) => {
            // An artificial format (log_pos 0) still stands for the file's own.
            let end = if log_pos == 0 {
                4 + len
            } else {
                u64::from(log_pos)
            };
            Ok(Some((end, checksum)))
        }
        Err(e) => {
            faults.push(BinlogFault::new(
                &key,
                format!("not a valid FORMAT_DESCRIPTION event: {e}; {RESHIP}"),
            ));
            Ok(None)
        }
    }
}

/// `chunk` must start where the file's archived bytes so far end.
fn check_tiling(
    epoch: Epoch,
    file: &str,
    chunk: &ChunkRef,
    previous: Option<&ChunkRef>,
    expected: Option<u64>,
    faults: &mut Vec<BinlogFault>,
) {
    let Some(expected) = expected else { return };
    if chunk.first > expected {
        faults.push(BinlogFault::new(
            layout::chunk_key(epoch, file, expected, chunk.first),
            format!(
                "bytes [{expected}, {}) of {file} are missing between {} and {}; {RESHIP}",
                chunk.first,
                previous.map_or("the file's format", |p| p.key.as_str()),
                chunk.key
            ),
        ));
    } else if chunk.first < expected {
        faults.push(BinlogFault::new(
            &chunk.key,
            format!(
                "chunk [{}, {}) of {file} overlaps {} (archived up to {expected}): one of them is not this file's binlog, most likely the one without a valid index; delete the stray chunk",
                chunk.first,
                chunk.end,
                previous.map_or("the file's format", |p| p.key.as_str()),
            ),
        ));
    }
}

/// Reads and walks `chunk`; None (with a fault) when it can't be read.
async fn scan_chunk(
    archive: &Archive,
    chunk: &ChunkRef,
    checksum: Option<BinlogChecksum>,
    faults: &mut Vec<BinlogFault>,
) -> Result<Option<ChunkScan>, ArchiveError> {
    let bytes = match archive.get(&chunk.key).await {
        Ok(b) => b,
        Err(e) if e.is_integrity_fault() => {
            faults.push(BinlogFault::new(&chunk.key, e.to_string()));
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let (first, end) = (chunk.first, chunk.end);
    // CRC32 over chunks of many MiB is CPU work: off the runtime.
    let scan = tokio::task::spawn_blocking(move || walk_events(&bytes, first, end, checksum))
        .await
        .map_err(|e| ArchiveError::Corrupt {
            key: chunk.key.clone(),
            reason: format!("checking the chunk's events failed: {e}"),
        })?;
    if let Some(error) = &scan.error {
        faults.push(BinlogFault::new(
            &chunk.key,
            format!("chunk is not whole binlog events of [{first}, {end}): {error}; {RESHIP}"),
        ));
        return Ok(None);
    }
    Ok(Some(scan))
}

/// Walks the events of a chunk said to hold [first, end) of its file.
fn walk_events(bytes: &Bytes, first: u64, end: u64, checksum: Option<BinlogChecksum>) -> ChunkScan {
    let mut scan = ChunkScan::default();
    if bytes.len() as u64 != end - first {
        scan.error = Some(format!(
            "it holds {} bytes, its key says {}",
            bytes.len(),
            end - first
        ));
        return scan;
    }
    let mut at = 0usize;
    while at < bytes.len() {
        let offset = first + at as u64;
        let header = match EventHeader::parse(&bytes[at..]) {
            Ok(h) => h,
            Err(e) => {
                scan.error = Some(format!("at offset {offset}: {e}"));
                return scan;
            }
        };
        let size = header.event_size as usize;
        if size < EVENT_HEADER_LEN || size > bytes.len() - at {
            scan.error = Some(format!(
                "the event at offset {offset} says {size} bytes, {} remain",
                bytes.len() - at
            ));
            return scan;
        }
        let checked = RawEvent::parse(bytes.slice(at..at + size)).and_then(|ev| {
            if let Some(cs) = checksum {
                ev.verify(cs)?;
            }
            Ok(ev)
        });
        let event = match checked {
            Ok(ev) => ev,
            Err(e) => {
                scan.error = Some(format!("at offset {offset}: {e}"));
                return scan;
            }
        };
        let after = offset + size as u64;
        if u64::from(header.log_pos) != after {
            scan.error = Some(format!(
                "the {:?} event at offset {offset} says log_pos {}, but it ends at {after}",
                header.event_type, header.log_pos
            ));
            return scan;
        }
        let cs = checksum.unwrap_or(BinlogChecksum::Off);
        let gtid = match header.event_type {
            EventType::MariadbGtid => Some(
                MariadbGtidEvent::from_event(&event, cs)
                    .map(|g| EventGtid::Mariadb(g.gtid(header.server_id))),
            ),
            EventType::MysqlGtid => {
                Some(MysqlGtidEvent::from_event(&event, cs).map(|g| EventGtid::Mysql(g.gtid)))
            }
            _ => None,
        };
        match gtid {
            Some(Ok(g)) => scan.gtids.push(g),
            Some(Err(e)) => {
                scan.error = Some(format!("GTID event at offset {offset}: {e}"));
                return scan;
            }
            None => {}
        }
        scan.events += 1;
        at += size;
    }
    scan
}

/// The chunk's GTIDs continue `seq` (see gtid_sequence.rs).
fn check_gtids(
    key: &str,
    gtids: &[EventGtid],
    seq: &mut GtidSequence,
    faults: &mut Vec<BinlogFault>,
) {
    for g in gtids {
        let message = match seq.follow(g) {
            None => continue,
            Some(SequenceBreak::Repeat { gtid, held }) => format!(
                "GTID {gtid} is archived twice or out of order (the stream is already at {held}); the chunk repeats transactions: delete the stray chunk or re-ship the file"
            ),
            Some(SequenceBreak::Gap { missing, gtid, held }) => format!(
                "GTIDs {missing} are missing before {gtid} (the archive holds up to {held} before this chunk); {RESHIP}"
            ),
        };
        faults.push(BinlogFault::new(key, message));
    }
}

/// The chunk's index must describe the chunk; its gtid_pos_after also
/// seeds the domains or server uuids the epoch has not logged yet.
async fn check_index(
    archive: &Archive,
    key: &str,
    epoch: Epoch,
    file: &str,
    chunk: &ChunkRef,
    scan: &ChunkScan,
    seq: &mut GtidSequence,
) -> Result<Vec<BinlogFault>, ArchiveError> {
    let fault = |m: String| {
        vec![BinlogFault::new(key, format!("{m}; the index can't be trusted: re-run `instarec ship` to rewrite it, or {RESHIP}"))]
    };
    let index = match ChunkIndex::read(archive, key).await {
        Ok(i) => i,
        Err(e) if e.is_integrity_fault() => return Ok(fault(e.to_string())),
        Err(e) => return Err(e),
    };
    let mut wrong = Vec::new();
    if index.epoch != epoch || index.file != file || index.first_pos != chunk.first {
        wrong.push(format!(
            "it describes {}:{} of epoch {}",
            index.file, index.first_pos, index.epoch.0
        ));
    }
    if index.end_pos != chunk.end || index.chunk != chunk.key {
        wrong.push(format!(
            "it names chunk {} ending at {}",
            index.chunk, index.end_pos
        ));
    }
    if index.events != scan.events {
        wrong.push(format!(
            "it counts {} events, the chunk holds {}",
            index.events, scan.events
        ));
    }
    let first = scan.gtids.first().map(|g| g.to_string());
    let last = scan.gtids.last().map(|g| g.to_string());
    if index.first_gtid != first || index.last_gtid != last {
        wrong.push(format!(
            "it says GTIDs {:?}..{:?}, the chunk holds {first:?}..{last:?}",
            index.first_gtid, index.last_gtid
        ));
    }
    // Seeds the sequence only from an index that is otherwise right.
    if wrong.is_empty() {
        if let Err(e) = seq.agree_with_index(&index.flavor, &index.gtid_pos_after) {
            wrong.push(e);
        }
    }
    if wrong.is_empty() {
        Ok(Vec::new())
    } else {
        Ok(fault(format!(
            "index disagrees with {}: {}",
            chunk.key,
            wrong.join("; ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::mysql::chunk_buffer::tests::{
        MYSQL_8_0_26, MYSQL_8_0_32_COMPRESSED, SID_8_0_26,
    };
    use crate::engines::mysql::fixture_archive::shipped_mysql;
    use instarec_mysql::MariadbGtid;

    fn gtid(seq_no: u64) -> EventGtid {
        EventGtid::Mariadb(MariadbGtid {
            domain_id: 0,
            server_id: 1,
            seq_no,
        })
    }

    #[test]
    fn a_gap_names_the_missing_gtids_and_a_repeat_is_a_fault() {
        let mut seq = GtidSequence::default();
        let mut faults = Vec::new();
        check_gtids("a", &[gtid(1), gtid(2)], &mut seq, &mut faults);
        assert!(faults.is_empty());
        check_gtids("b", &[gtid(6)], &mut seq, &mut faults);
        assert_eq!(faults.len(), 1);
        assert_eq!(faults[0].key, "b");
        assert!(faults[0].message.contains("0-1-[3..5]"), "{:?}", faults[0]);
        check_gtids("c", &[gtid(6)], &mut seq, &mut faults);
        assert_eq!(faults.len(), 2);
        assert!(faults[1].message.contains("twice"), "{:?}", faults[1]);
    }

    #[test]
    fn a_real_mysql_8_chunk_walks_with_its_gtids_and_a_gapped_sequence_is_named() {
        // PREVIOUS_GTIDS through STOP of a MySQL 8.0.26 binlog.
        let chunk = Bytes::from_static(&MYSQL_8_0_26[125..]);
        let scan = walk_events(&chunk, 125, 1810, Some(BinlogChecksum::Crc32));
        assert_eq!((scan.events, scan.error), (21, None));
        let gtids: Vec<String> = scan.gtids.iter().map(|g| g.to_string()).collect();
        let expected: Vec<String> = (1..=5).map(|n| format!("{SID_8_0_26}:{n}")).collect();
        assert_eq!(gtids, expected);

        let mut seq = GtidSequence::default();
        let mut faults = Vec::new();
        check_gtids("whole", &scan.gtids, &mut seq, &mut faults);
        assert!(faults.is_empty(), "{faults:?}");
        // The same transactions with :2 and :3 left out, then :5 again.
        let mut seq = GtidSequence::default();
        let gapped = [scan.gtids[0], scan.gtids[3], scan.gtids[4], scan.gtids[4]];
        check_gtids("gapped", &gapped, &mut seq, &mut faults);
        assert_eq!(faults.len(), 2, "{faults:?}");
        assert!(
            faults[0].message.contains(&format!(
                "GTIDs {SID_8_0_26}:2-3 are missing before {SID_8_0_26}:4"
            )),
            "{faults:?}"
        );
        assert!(faults[1].message.contains("archived twice"), "{faults:?}");
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn a_shipped_mysql_8_archive_verifies_and_a_lost_chunk_names_its_gtids() {
        runtime().block_on(async {
            let archive = shipped_mysql(&[
                (MYSQL_8_0_26, "binlog.000001"),
                (MYSQL_8_0_32_COMPRESSED, "binlog.000002"),
            ])
            .await;
            let report = verify_binlog(&archive).await.unwrap();
            assert!(report.faults.is_empty(), "{:?}", report.faults);
            assert_eq!((report.epochs, report.files), (1, 2));
            assert_eq!(report.events, 21 + 4);

            // Lose the transaction 97c7af02-…:3 (bytes [787, 1120)) for good.
            let file = "binlog.000001";
            archive
                .delete(&layout::chunk_key(Epoch(1), file, 787, 1120))
                .await
                .unwrap();
            archive
                .delete(&layout::index_key(Epoch(1), file, 787))
                .await
                .unwrap();
            let report = verify_binlog(&archive).await.unwrap();
            let messages: Vec<&str> = report.faults.iter().map(|f| f.message.as_str()).collect();
            let after = layout::chunk_key(Epoch(1), file, 1120, 1438);
            let fault = report
                .faults
                .iter()
                .find(|f| f.key == after)
                .unwrap_or_else(|| panic!("no fault on {after}: {messages:?}"));
            assert!(
                fault.message.contains(&format!(
                    "GTIDs {SID_8_0_26}:3 are missing before {SID_8_0_26}:4"
                )),
                "{}",
                fault.message
            );
            let hole = layout::chunk_key(Epoch(1), file, 787, 1120);
            assert!(
                report
                    .faults
                    .iter()
                    .any(|f| f.key == hole && f.message.contains("missing between")),
                "{messages:?}"
            );
        });
    }

    #[test]
    fn a_chunk_left_by_a_crash_before_its_index_is_the_stray_not_the_chunk_cut_again() {
        runtime().block_on(async {
            let archive = shipped_mysql(&[(MYSQL_8_0_26, "binlog.000001")]).await;
            let file = "binlog.000001";
            // Transaction :3 is [787, 1120). The crashed shipper had cut
            // only its GTID event; the index names the chunk cut again.
            let real = layout::chunk_key(Epoch(1), file, 787, 1120);
            let bytes = archive.get(&real).await.unwrap();
            let gtid_end = 787 + u64::from(EventHeader::parse(&bytes).unwrap().event_size);
            let orphan = layout::chunk_key(Epoch(1), file, 787, gtid_end);
            assert!(orphan < real, "the orphan sorts first");
            archive
                .put(&orphan, bytes.slice(..(gtid_end - 787) as usize))
                .await
                .unwrap();

            let report = verify_binlog(&archive).await.unwrap();
            assert_eq!(report.faults.len(), 1, "{:?}", report.faults);
            let stray = &report.faults[0];
            assert_eq!(stray.key, orphan);
            assert!(stray.message.contains("has no index"), "{}", stray.message);
            assert!(stray.message.contains("harmless"), "{}", stray.message);
            assert!(
                stray.message.contains("instarec archive ls"),
                "{}",
                stray.message
            );
            assert!(
                !stray.message.contains("instarec ship"),
                "{}",
                stray.message
            );
            // The orphan's one event is checked, not counted as archived.
            assert_eq!(report.events, 21);
        });
    }

    fn event(end: u32, len: usize) -> Vec<u8> {
        RawEvent::build(
            EventHeader {
                timestamp: 1,
                event_type: EventType::Query,
                server_id: 1,
                event_size: 0,
                log_pos: end,
                flags: 0,
            },
            &vec![7u8; len - EVENT_HEADER_LEN - 4],
            BinlogChecksum::Crc32,
        )
        .bytes
        .to_vec()
    }

    #[test]
    fn events_must_chain_their_log_pos_and_pass_crc32() {
        let mut bytes = event(150, 50);
        bytes.extend(event(200, 50));
        let crc = Some(BinlogChecksum::Crc32);
        let ok = walk_events(&Bytes::from(bytes.clone()), 100, 200, crc);
        assert_eq!((ok.events, ok.error), (2, None));
        let shifted = walk_events(&Bytes::from(bytes.clone()), 90, 190, crc);
        assert!(shifted.error.unwrap().contains("log_pos 150"));
        let mut flipped = bytes.clone();
        flipped[70] ^= 1;
        let bad = walk_events(&Bytes::from(flipped), 100, 200, crc);
        assert!(bad.error.unwrap().contains("CRC32"));
        let short = walk_events(&Bytes::from(bytes[..99].to_vec()), 100, 200, crc);
        assert!(short.error.is_some());
    }
}
