//! Turns streamed binlog events into archive chunks that start and end on
//! transaction edges: the pure state machine behind `MysqlSource`.
//!
//! Events of the open transaction wait until the event that ends it; only
//! then do they join the cuttable runs. Events outside any transaction
//! (GTID lists, checkpoints, the Rotate that ends a file) are cuttable at
//! once. Each file's FORMAT_DESCRIPTION becomes its `format` object instead
//! of chunk bytes, and artificial events are never archived.

use super::index::ChunkIndex;
use super::layout;
use super::position::{BinlogPoint, GtidState};
use crate::archive::Epoch;
use bytes::{Bytes, BytesMut};
use instarec_mysql::{BinlogEvent, BinlogPosition, EventGtid, EventType};
use std::collections::HashSet;

/// Contiguous complete events of one file, not yet cut.
#[derive(Debug)]
struct Run {
    file: String,
    first_pos: u64,
    end_pos: u64,
    data: BytesMut,
    first_gtid: Option<EventGtid>,
    last_gtid: Option<EventGtid>,
    gtid_after: GtidState,
    first_ts: u32,
    last_ts: u32,
    events: u64,
}

/// The transaction still being received.
#[derive(Debug)]
struct OpenGroup {
    gtid: Option<EventGtid>,
    events: Vec<BinlogEvent>,
}

/// What `push` did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Complete events became cuttable.
    Completed,
    /// Part of the open transaction.
    Pending,
    /// Not archived (artificial, already archived, a format already known).
    Skipped,
}

/// The primary sent a transaction the archive already holds: its binlog
/// is not the history the archive continues.
#[derive(Debug, thiserror::Error)]
#[error("the primary sent GTID {gtid} at {at} but the archive already holds up to {state}; its binlog diverges from the archive's history. Point [primary] url at this archive's primary, or start a new archive")]
pub struct DuplicateGtid {
    pub gtid: String,
    pub at: String,
    pub state: String,
}

/// One cut: objects plus what the primary may be told afterwards.
#[derive(Debug)]
pub struct ChunkCut {
    /// Format events and chunks.
    pub objects: Vec<(String, Bytes)>,
    /// The chunks' indexes: readers find chunks through them, so they are
    /// written only after `objects` are durable.
    pub indexes: Vec<(String, Bytes)>,
    pub upto: BinlogPoint,
    /// The last semi-sync ack position among the cut's events.
    pub ack: Option<BinlogPosition>,
}

#[cfg(test)]
impl ChunkCut {
    /// Every object of the cut, indexes last, as the shipper writes them.
    pub(crate) fn everything(&self) -> Vec<(String, Bytes)> {
        self.objects.iter().chain(&self.indexes).cloned().collect()
    }
}

#[derive(Debug)]
pub struct ChunkBuffer {
    epoch: Epoch,
    /// After the last complete event.
    complete: BinlogPoint,
    open: Option<OpenGroup>,
    runs: Vec<Run>,
    run_bytes: u64,
    /// Files whose format object is archived or queued.
    formats: HashSet<String>,
    ready: Vec<(String, Bytes)>,
    /// Events of this file up to this offset are archived already (a
    /// resume on the server that wrote them re-sends some).
    skip_through: Option<BinlogPosition>,
    ack: Option<BinlogPosition>,
}

impl ChunkBuffer {
    /// Continues after `complete`; `formats` are the files whose format
    /// object this epoch already holds; `skip_through` is where the archive
    /// ends on this same server, if it does.
    pub fn new(
        epoch: Epoch,
        complete: BinlogPoint,
        formats: HashSet<String>,
        skip_through: Option<BinlogPosition>,
    ) -> Self {
        ChunkBuffer {
            epoch,
            complete,
            open: None,
            runs: Vec::new(),
            run_bytes: 0,
            formats,
            ready: Vec::new(),
            skip_through,
            ack: None,
        }
    }

    /// The position after the last complete event received.
    pub fn complete(&self) -> &BinlogPoint {
        &self.complete
    }

    /// Bytes that a cut would hand out now.
    pub fn cuttable_bytes(&self) -> u64 {
        self.run_bytes + self.ready.iter().map(|(_, b)| b.len() as u64).sum::<u64>()
    }

    /// Forgets the open transaction (the stream broke inside it) and skips
    /// whatever a reconnect to the same server re-sends.
    pub fn restart_stream(&mut self) {
        if let Some(open) = self.open.take() {
            tracing::debug!(
                events = open.events.len(),
                "dropping the unfinished transaction; it is streamed again"
            );
        }
        if !self.complete.at.file.is_empty() {
            self.skip_through = Some(self.complete.at.clone());
        }
    }

    pub fn push(&mut self, ev: BinlogEvent) -> Result<Pushed, DuplicateGtid> {
        let ty = ev.event_type();
        if ty == EventType::FormatDescription {
            // An artificial one (a stream starting mid-file) is the only
            // format we may ever see for that file: keep it too.
            if !ev.file.is_empty() && self.formats.insert(ev.file.clone()) {
                self.ready.push((
                    layout::format_key(self.epoch, &ev.file),
                    ev.raw.bytes.clone(),
                ));
                return Ok(Pushed::Completed);
            }
            return Ok(Pushed::Skipped);
        }
        if ev.artificial || ev.log_pos() == 0 {
            return Ok(Pushed::Skipped);
        }
        if let Some(skip) = &self.skip_through {
            if ev.file == skip.file {
                if u64::from(ev.log_pos()) <= skip.pos {
                    return Ok(Pushed::Skipped);
                }
                self.skip_through = None;
            }
        }
        let opens = ev.gtid.is_some()
            || matches!(ty, EventType::AnonymousGtid | EventType::MysqlGtidTagged);
        if let Some(g) = ev.gtid.as_ref().filter(|g| self.complete.gtid.contains(g)) {
            return Err(DuplicateGtid {
                gtid: g.to_string(),
                at: ev.position().to_string(),
                state: self.complete.gtid.to_string(),
            });
        }
        if opens {
            if let Some(stale) = self.open.take() {
                tracing::warn!(gtid = ?stale.gtid, events = stale.events.len(), "a transaction started before the previous one ended; archiving both");
                for e in stale.events {
                    self.append(e);
                }
            }
            self.open = Some(OpenGroup {
                gtid: ev.gtid,
                events: Vec::new(),
            });
        }
        match self.open.as_mut() {
            Some(open) => {
                let ends = ev.ends_transaction;
                open.events.push(ev);
                if !ends {
                    return Ok(Pushed::Pending);
                }
                let open = self.open.take().expect("just matched");
                if let Some(g) = &open.gtid {
                    self.complete.gtid.apply(g);
                }
                let n = open.events.len();
                for (i, e) in open.events.into_iter().enumerate() {
                    let gtid = if i == 0 { open.gtid } else { None };
                    self.append_with(e, gtid, i + 1 == n);
                }
                Ok(Pushed::Completed)
            }
            None => {
                self.append(ev);
                Ok(Pushed::Completed)
            }
        }
    }

    fn append(&mut self, ev: BinlogEvent) {
        self.append_with(ev, None, true);
    }

    /// Adds a complete event to the runs; `last` marks the end of its group.
    fn append_with(&mut self, ev: BinlogEvent, gtid: Option<EventGtid>, last: bool) {
        let end = u64::from(ev.log_pos());
        let len = ev.raw.bytes.len() as u64;
        let first = end.saturating_sub(len);
        if ev.needs_ack {
            self.ack = Some(ev.position());
        }
        if last {
            self.complete.at = ev.position();
        }
        let extends = self
            .runs
            .last()
            .is_some_and(|r| r.file == ev.file && r.end_pos == first);
        if !extends {
            if let Some(prev) = self.runs.last() {
                if prev.file == ev.file {
                    tracing::warn!(file = %ev.file, from = prev.end_pos, to = first, "binlog offsets jump; starting a new chunk");
                }
            }
            self.runs.push(Run {
                file: ev.file.clone(),
                first_pos: first,
                end_pos: first,
                data: BytesMut::new(),
                first_gtid: None,
                last_gtid: None,
                gtid_after: self.complete.gtid.clone(),
                first_ts: ev.timestamp(),
                last_ts: ev.timestamp(),
                events: 0,
            });
        }
        let run = self.runs.last_mut().expect("pushed above");
        run.data.extend_from_slice(&ev.raw.bytes);
        run.end_pos = end;
        run.events += 1;
        run.last_ts = ev.timestamp();
        if gtid.is_some() {
            run.first_gtid = run.first_gtid.or(gtid);
            run.last_gtid = gtid;
        }
        run.gtid_after = self.complete.gtid.clone();
        self.run_bytes += len;
    }

    /// Everything complete as chunk, index and format objects; None when
    /// nothing new is complete.
    pub fn cut(&mut self) -> Option<ChunkCut> {
        if self.runs.is_empty() && self.ready.is_empty() {
            return None;
        }
        let mut objects = std::mem::take(&mut self.ready);
        let mut indexes = Vec::new();
        for run in self.runs.drain(..) {
            let chunk = layout::chunk_key(self.epoch, &run.file, run.first_pos, run.end_pos);
            let index = ChunkIndex {
                epoch: self.epoch,
                file: run.file.clone(),
                first_pos: run.first_pos,
                end_pos: run.end_pos,
                flavor: run.gtid_after.flavor_name().into(),
                first_gtid: run.first_gtid.map(|g| g.to_string()),
                last_gtid: run.last_gtid.map(|g| g.to_string()),
                gtid_pos_after: run.gtid_after.to_string(),
                first_ts: run.first_ts,
                last_ts: run.last_ts,
                events: run.events,
                bytes: run.data.len() as u64,
                chunk: chunk.clone(),
            };
            indexes.push((
                layout::index_key(self.epoch, &run.file, run.first_pos),
                index.to_json(),
            ));
            objects.push((chunk, run.data.freeze()));
        }
        self.run_bytes = 0;
        Some(ChunkCut {
            objects,
            indexes,
            upto: self.complete.clone(),
            ack: self.ack.take(),
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use instarec_mysql::relay::fake_rotate;
    use instarec_mysql::stream_decoder::{Decoded, StreamDecoder};
    use instarec_mysql::{
        BinlogChecksum, BinlogFile, EventHeader, MariadbGtid, MariadbGtidPos, MysqlGtidSet,
        RawEvent, StreamedEvent,
    };

    const FILE: &str = "mysql-bin.000001";

    /// An event of `len` bytes ending at `end` in `file`.
    fn ev(file: &str, ty: EventType, end: u32, len: u32) -> BinlogEvent {
        let body = vec![0xab; len as usize - 19 - 4];
        let raw = RawEvent::build(
            EventHeader {
                timestamp: 1_700_000_000 + end,
                event_type: ty,
                server_id: 1,
                event_size: 0,
                log_pos: end,
                flags: 0,
            },
            &body,
            BinlogChecksum::Crc32,
        );
        BinlogEvent {
            raw,
            file: file.into(),
            gtid: None,
            ends_transaction: false,
            artificial: false,
            needs_ack: false,
        }
    }

    fn gtid_ev(end: u32, seq_no: u64) -> BinlogEvent {
        let mut e = ev(FILE, EventType::MariadbGtid, end, 40);
        e.gtid = Some(EventGtid::Mariadb(MariadbGtid {
            domain_id: 0,
            server_id: 1,
            seq_no,
        }));
        e
    }

    fn xid(end: u32) -> BinlogEvent {
        let mut e = ev(FILE, EventType::Xid, end, 31);
        e.ends_transaction = true;
        e
    }

    /// A buffer for epoch 1 at the very start, in `gtid`'s flavour.
    fn start_with(gtid: GtidState) -> ChunkBuffer {
        let at = BinlogPosition {
            file: String::new(),
            pos: 0,
        };
        ChunkBuffer::new(Epoch(1), BinlogPoint { gtid, at }, HashSet::new(), None)
    }

    fn start() -> ChunkBuffer {
        start_with(GtidState::Mariadb(MariadbGtidPos::new()))
    }

    #[test]
    fn only_whole_transactions_are_cut_and_tile_the_file() {
        let mut b = start();
        let mut fde = ev(FILE, EventType::FormatDescription, 256, 252);
        assert_eq!(b.push(fde.clone()).unwrap(), Pushed::Completed);
        fde.artificial = true;
        assert_eq!(b.push(fde).unwrap(), Pushed::Skipped, "one format per file");
        assert_eq!(
            b.push(ev(FILE, EventType::GtidList, 300, 44)).unwrap(),
            Pushed::Completed
        );
        assert_eq!(b.push(gtid_ev(340, 1)).unwrap(), Pushed::Pending);
        assert_eq!(
            b.push(ev(FILE, EventType::WriteRowsV1, 400, 60)).unwrap(),
            Pushed::Pending
        );
        let before = b.cut().unwrap();
        assert_eq!(before.upto.at.pos, 300, "the open transaction is not cut");
        assert_eq!(before.objects.len(), 2, "format, chunk");
        assert_eq!(before.indexes.len(), 1);
        assert_eq!(b.push(xid(431)).unwrap(), Pushed::Completed);
        assert_eq!(b.cuttable_bytes(), 131);
        let cut = b.cut().unwrap();
        assert_eq!(cut.upto.to_string(), "0-1-1");
        assert_eq!(cut.upto.at.to_string(), "mysql-bin.000001:431");
        let (index_key, index) = &cut.indexes[0];
        assert_eq!(index_key, &layout::index_key(Epoch(1), FILE, 300));
        let index = ChunkIndex::parse(index_key, index).unwrap();
        assert_eq!(
            (index.first_pos, index.end_pos, index.events),
            (300, 431, 3)
        );
        assert_eq!(index.first_gtid.as_deref(), Some("0-1-1"));
        assert_eq!(index.gtid_pos_after, "0-1-1");
        assert_eq!(
            cut.objects[0].0,
            layout::chunk_key(Epoch(1), FILE, 300, 431)
        );
        assert_eq!(cut.objects[0].1.len(), 131);
        assert!(b.cut().is_none());
    }

    #[test]
    fn a_rotation_cuts_one_chunk_per_file() {
        let mut b = start();
        b.push(gtid_ev(340, 7)).unwrap();
        b.push(xid(371)).unwrap();
        b.push(ev(FILE, EventType::Rotate, 420, 49)).unwrap();
        b.push(ev(
            "mysql-bin.000002",
            EventType::FormatDescription,
            256,
            252,
        ))
        .unwrap();
        b.push(ev("mysql-bin.000002", EventType::GtidList, 300, 44))
            .unwrap();
        let cut = b.cut().unwrap();
        let keys: Vec<&str> = cut.objects.iter().map(|(k, _)| k.as_str()).collect();
        assert!(
            keys.contains(&layout::chunk_key(Epoch(1), FILE, 300, 420).as_str()),
            "{keys:?}"
        );
        assert!(keys.contains(&layout::format_key(Epoch(1), "mysql-bin.000002").as_str()));
        assert!(keys.contains(&layout::chunk_key(Epoch(1), "mysql-bin.000002", 256, 300).as_str()));
        assert_eq!(cut.upto.at.to_string(), "mysql-bin.000002:300");
        assert_eq!(cut.upto.to_string(), "0-1-7");
    }

    #[test]
    fn a_resume_skips_what_the_archive_has_and_a_broken_transaction_is_dropped() {
        let mut b = start();
        b.push(gtid_ev(340, 1)).unwrap();
        b.push(xid(371)).unwrap();
        b.push(gtid_ev(411, 2)).unwrap();
        b.restart_stream();
        // The same server re-sends from its start of file.
        assert_eq!(b.push(gtid_ev(340, 1)).unwrap(), Pushed::Skipped);
        assert_eq!(b.push(xid(371)).unwrap(), Pushed::Skipped);
        assert_eq!(b.push(gtid_ev(411, 2)).unwrap(), Pushed::Pending);
        assert_eq!(b.push(xid(442)).unwrap(), Pushed::Completed);
        // A server that sends an archived transaction again is not ours.
        let err = b.push(gtid_ev(500, 2)).unwrap_err();
        assert!(err.to_string().contains("0-1-2"), "{err}");
        let cut = b.cut().unwrap();
        let chunk = layout::chunk_key(Epoch(1), FILE, 300, 442);
        assert!(cut.objects.iter().any(|(k, _)| *k == chunk));
        assert_eq!(cut.upto.to_string(), "0-1-2");
    }

    #[test]
    fn the_semi_sync_ack_comes_with_the_cut_holding_its_event() {
        let mut b = start();
        b.push(gtid_ev(340, 1)).unwrap();
        let mut x = xid(371);
        x.needs_ack = true;
        b.push(x).unwrap();
        let cut = b.cut().unwrap();
        assert_eq!(cut.ack.unwrap().to_string(), "mysql-bin.000001:371");
        b.push(gtid_ev(411, 2)).unwrap();
        b.push(xid(442)).unwrap();
        assert_eq!(b.cut().unwrap().ack, None);
    }

    /// Real MySQL binlogs (drivers/mysql/testdata/README.md says where
    /// each is from): 8.0.26 with GTIDs 97c7af02-…:1-5, and 8.0.32 with
    /// one compressed anonymous transaction.
    pub(crate) const MYSQL_8_0_26: &[u8] =
        include_bytes!("../../../drivers/mysql/testdata/mysql-8.0.26-gtid.bin");
    pub(crate) const MYSQL_8_0_32_COMPRESSED: &[u8] =
        include_bytes!("../../../drivers/mysql/testdata/mysql-8.0.32-transaction-compression.bin");
    pub(crate) const SID_8_0_26: &str = "97c7af02-4c50-11ec-acd8-681842034964";

    /// `bytes`, a binlog file named `name`, as `MysqlSource` receives it:
    /// the packets a MySQL primary sends after COM_BINLOG_DUMP_GTID (the
    /// artificial Rotate, then each event), through the driver's decoder.
    pub(crate) fn streamed(bytes: &'static [u8], name: &str) -> Vec<BinlogEvent> {
        let file = BinlogFile::parse(Bytes::from_static(bytes)).unwrap();
        let start = BinlogPosition::new(name, 4).unwrap();
        let rotate = fake_rotate(file.events[0].header.server_id, &start, file.checksum());
        let mut decoder = StreamDecoder::new("mysql8:3306", false);
        std::iter::once(&rotate)
            .chain(&file.events)
            .map(|e| {
                let mut packet = BytesMut::from(&[0u8][..]);
                packet.extend_from_slice(&e.bytes);
                match decoder.decode(packet.freeze()).unwrap() {
                    Decoded::Event(StreamedEvent::Event(e)) => e,
                    other => panic!("{other:?}"),
                }
            })
            .collect()
    }

    pub(crate) fn mysql_start() -> ChunkBuffer {
        start_with(GtidState::Mysql(MysqlGtidSet::new()))
    }

    /// The (index, chunk bytes) pairs of `objects`, in file order.
    fn chunks(objects: &[(String, Bytes)]) -> Vec<(ChunkIndex, Bytes)> {
        let mut out: Vec<(ChunkIndex, Bytes)> = objects
            .iter()
            .filter(|(k, _)| k.starts_with(layout::INDEX_PREFIX))
            .map(|(k, b)| {
                let index = ChunkIndex::parse(k, b).unwrap();
                let chunk = objects.iter().find(|(c, _)| *c == index.chunk).unwrap();
                (index, chunk.1.clone())
            })
            .collect();
        out.sort_by_key(|(i, _)| i.first_pos);
        out
    }

    #[test]
    fn a_real_mysql_8_binlog_is_one_chunk_with_its_gtids_times_and_positions() {
        let file = "binlog.000001";
        let mut b = mysql_start();
        for e in streamed(MYSQL_8_0_26, file) {
            b.push(e).unwrap();
        }
        let cut = b.cut().unwrap();
        assert_eq!(
            cut.upto.to_string(),
            format!("{SID_8_0_26}:1-5"),
            "@@gtid_executed notation"
        );
        assert_eq!(cut.upto.at.to_string(), "binlog.000001:1810");
        let format = &cut.objects[0];
        assert_eq!(format.0, layout::format_key(Epoch(1), file));
        assert_eq!(&format.1[..], &MYSQL_8_0_26[4..125]);
        let [(index, chunk)] = &chunks(&cut.everything())[..] else {
            panic!("one chunk expected")
        };
        // PREVIOUS_GTIDS through STOP, byte for byte.
        assert_eq!(&chunk[..], &MYSQL_8_0_26[125..]);
        assert_eq!(
            (index.file.as_str(), index.first_pos, index.end_pos),
            (file, 125, 1810)
        );
        assert_eq!(index.flavor, "mysql");
        assert_eq!(index.first_gtid, Some(format!("{SID_8_0_26}:1")));
        assert_eq!(index.last_gtid, Some(format!("{SID_8_0_26}:5")));
        assert_eq!(index.gtid_pos_after, format!("{SID_8_0_26}:1-5"));
        // PREVIOUS_GTIDS was written at 1637666960, the STOP at 1637667274.
        assert_eq!((index.first_ts, index.last_ts), (1637666960, 1637667274));
        assert_eq!(index.events, 21);
    }

    #[test]
    fn cutting_after_every_event_never_splits_a_mysql_transaction() {
        let events = streamed(MYSQL_8_0_26, "binlog.000001");
        let mut b = mysql_start();
        let mut objects = Vec::new();
        let mut upto = Vec::new();
        for e in events {
            b.push(e).unwrap();
            if let Some(cut) = b.cut() {
                upto.push(cut.upto.to_string());
                objects.extend(cut.everything());
            }
        }
        let chunks = chunks(&objects);
        // Where a transaction (or an event outside one) ends.
        let edges = [125, 156, 491, 787, 1120, 1438, 1787, 1810];
        let mut joined = Vec::new();
        let mut last_gtids = Vec::new();
        for (index, chunk) in &chunks {
            assert!(edges.contains(&index.first_pos), "{index:?}");
            assert!(edges.contains(&index.end_pos), "{index:?}");
            joined.extend_from_slice(chunk);
            last_gtids.extend(index.last_gtid.clone());
        }
        assert_eq!(&joined[..], &MYSQL_8_0_26[125..]);
        let gtids: Vec<String> = (1..=5).map(|n| format!("{SID_8_0_26}:{n}")).collect();
        assert_eq!(last_gtids, gtids);
        assert_eq!(upto.last().unwrap(), &format!("{SID_8_0_26}:1-5"));
        assert!(upto.contains(&format!("{SID_8_0_26}:1-3")));
    }

    #[test]
    fn a_compressed_mysql_transaction_is_archived_whole_and_once() {
        let mut b = mysql_start();
        let mut pending = Vec::new();
        for e in streamed(MYSQL_8_0_32_COMPRESSED, "binlog.000042") {
            let ty = e.event_type();
            pending.push((ty, b.push(e).unwrap()));
        }
        assert_eq!(
            pending,
            [
                (EventType::Rotate, Pushed::Skipped),
                (EventType::FormatDescription, Pushed::Completed),
                (EventType::PreviousGtids, Pushed::Completed),
                (EventType::AnonymousGtid, Pushed::Pending),
                (EventType::TransactionPayload, Pushed::Completed),
                (EventType::Rotate, Pushed::Completed),
            ]
        );
        let cut = b.cut().unwrap();
        let [(index, chunk)] = &chunks(&cut.everything())[..] else {
            panic!("one chunk expected")
        };
        assert_eq!(&chunk[..], &MYSQL_8_0_32_COMPRESSED[126..]);
        assert_eq!(
            (index.first_pos, index.end_pos, index.events),
            (126, 475, 4)
        );
        assert_eq!(
            (index.first_gtid.as_deref(), index.last_gtid.as_deref()),
            (None, None)
        );
        assert_eq!(cut.upto.at.to_string(), "binlog.000042:475");
    }
}
