//! One replica's binlog stream: from its start position through the
//! archive's chunks, then following the archive as the shipper adds
//! chunks, with heartbeats while idle. Memory: one chunk at a time.

use std::time::{Duration, Instant};

use super::binlog_archive::{BinlogArchive, FileFormat};
use super::error::RelayServeError;
use super::start_filter::StartFilter;
use super::start_point;
use super::until::UntilTarget;
use crate::archive::Epoch;
use crate::engines::mysql::layout::IndexKey;
use instarec_mysql::mariadb_gtid_event::MariadbGtidEvent;
use instarec_mysql::relay::{DumpRequest, DumpStart, ErrPacket, FATAL_READING_BINLOG};
use instarec_mysql::{EventType, MariadbGtidPos};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

/// A replica gets a heartbeat at least this often when it asked for none:
/// well inside the default slave_net_timeout (60 s).
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(30);
/// While idle, the whole index listing is re-read this often (new epochs,
/// a new file after a primary crash); otherwise only the current file's.
const FULL_SCAN_EVERY: u32 = 10;

#[derive(Debug, Clone)]
pub struct StreamOptions {
    /// How often to look for new chunks when caught up.
    pub poll_interval: Duration,
    /// Stop before the first transaction past this; None: follow forever.
    pub until: Option<UntilTarget>,
}

/// Streams until the replica leaves, `shutdown`, or an error (which the
/// replica is told about, as ER_MASTER_FATAL_ERROR_READING_BINLOG).
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    archive: &BinlogArchive,
    dump: DumpRequest<S>,
    options: StreamOptions,
    shutdown: CancellationToken,
) -> Result<(), RelayServeError> {
    let DumpRequest {
        start,
        session,
        sender,
        ..
    } = dump;
    let heartbeat = session.heartbeat_period().unwrap_or(DEFAULT_HEARTBEAT);
    let mut stream = ReplicaStream {
        archive,
        sender,
        filter: StartFilter::gtid(MariadbGtidPos::new()),
        current: None,
        last: None,
        file_ended: false,
        until: options.until.clone(),
        reached: false,
    };
    match stream.run(start, options, heartbeat, shutdown).await {
        Err(RelayServeError::Replica(e)) => Err(RelayServeError::Replica(e)),
        Err(e) => {
            let message = format!("instarec relay: {e}");
            let _ = stream
                .sender
                .fail(ErrPacket::new(FATAL_READING_BINLOG, "HY000", message))
                .await;
            Err(e)
        }
        Ok(()) => Ok(()),
    }
}

struct ReplicaStream<'a, S> {
    archive: &'a BinlogArchive,
    sender: instarec_mysql::relay::BinlogSender<S>,
    filter: StartFilter,
    /// The file being streamed.
    current: Option<(Epoch, String, FileFormat)>,
    /// The last chunk looked at (sent, or skipped as already applied).
    last: Option<IndexKey>,
    /// The last event sent from the current file was its closing ROTATE.
    file_ended: bool,
    until: Option<UntilTarget>,
    /// A transaction past `until` was met: nothing more is sent.
    reached: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> ReplicaStream<'_, S> {
    async fn run(
        &mut self,
        start: DumpStart,
        options: StreamOptions,
        heartbeat: Duration,
        shutdown: CancellationToken,
    ) -> Result<(), RelayServeError> {
        let keys = self.archive.chunks().await?;
        let Some(newest) = keys.last() else {
            return Err(RelayServeError::Position(
                "the archive holds no binlog yet; start `instarec ship` for the primary".into(),
            ));
        };
        let (first, gtid_state) = match start {
            DumpStart::MariadbGtid(applied) => {
                let first = start_point::after_gtid(self.archive, &keys, &applied).await?;
                self.filter = StartFilter::gtid(applied.clone());
                (first, Some(applied))
            }
            DumpStart::File(at) => {
                let first = start_point::at_file_position(&keys, &at)?;
                self.filter = StartFilter::File { at };
                (first, None)
            }
            DumpStart::MysqlGtid(_) => {
                return Err(RelayServeError::Position(
                    "MySQL GTID replicas (COM_BINLOG_DUMP_GTID) are not served yet; use MariaDB, or connect by file and position".into(),
                ))
            }
        };
        // The stream opens in the file it resumes in (or the newest, when
        // the replica has everything), joined mid-file.
        let anchor = keys.get(first).unwrap_or(newest).clone();
        self.open_file(&anchor, false).await?;
        if let Some(state) = &gtid_state {
            self.sender.send_gtid_list(state).await?;
        }
        tracing::info!(
            peer = self.sender.peer(),
            file = %anchor.file,
            chunks = keys.len() - first,
            "replica stream starts"
        );
        if first == keys.len() {
            self.last = Some(anchor);
        }
        for key in &keys[first..] {
            self.send_chunk(key).await?;
        }

        let mut idle_since = Instant::now();
        let mut idle_polls = 0u32;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                e = self.sender.closed() => {
                    tracing::info!(peer = self.sender.peer(), reason = %e, "replica left");
                    return Ok(());
                }
                _ = tokio::time::sleep(options.poll_interval) => {}
            }
            if self.reached {
                // Idle for good, with heartbeats so the replica stays connected.
                if idle_since.elapsed() >= heartbeat {
                    self.sender.heartbeat().await?;
                    idle_since = Instant::now();
                }
                continue;
            }
            idle_polls += 1;
            let full_scan = idle_polls >= FULL_SCAN_EVERY;
            if full_scan {
                idle_polls = 0;
            }
            let new = self.poll(full_scan).await?;
            if new.is_empty() {
                if idle_since.elapsed() >= heartbeat {
                    self.sender.heartbeat().await?;
                    idle_since = Instant::now();
                }
                continue;
            }
            for key in &new {
                self.send_chunk(key).await?;
            }
            idle_since = Instant::now();
            idle_polls = 0;
        }
    }

    /// Chunks after the last one seen: the current file's, or anyone's on
    /// a full scan (and always once the current file has ended).
    async fn poll(&self, full_scan: bool) -> Result<Vec<IndexKey>, RelayServeError> {
        let Some(last) = &self.last else {
            return Ok(Vec::new());
        };
        let after = |keys: Vec<IndexKey>| -> Vec<IndexKey> {
            keys.into_iter()
                .filter(|k| k.stream_order(last).is_gt())
                .collect()
        };
        let mut new = after(self.archive.chunks_of(last.epoch, &last.file).await?);
        if new.is_empty() && (full_scan || self.file_ended) {
            new = after(self.archive.chunks().await?);
        }
        Ok(new)
    }

    async fn open_file(&mut self, key: &IndexKey, from_start: bool) -> Result<(), RelayServeError> {
        let format = self.archive.format(key.epoch, &key.file).await?;
        self.sender
            .start_file(&key.file, &format.event, from_start)
            .await?;
        self.current = Some((key.epoch, key.file.clone(), format));
        self.file_ended = false;
        Ok(())
    }

    async fn send_chunk(&mut self, key: &IndexKey) -> Result<(), RelayServeError> {
        if self.reached {
            return Ok(());
        }
        let same_file =
            matches!(&self.current, Some((e, f, _)) if *e == key.epoch && *f == key.file);
        if !same_file {
            // A later file read from its first chunk: as the primary would send it.
            let format = self.archive.format(key.epoch, &key.file).await?;
            let fd_end = 4 + format.event.bytes.len() as u64;
            self.open_file(key, key.first <= fd_end).await?;
        }
        let Some((_, file, format)) = &self.current else {
            return Ok(());
        };
        let checksum = format.parsed.checksum;
        let file = file.clone();
        let index = self.archive.index(key).await?;
        let events = self.archive.events(&index, checksum).await?;
        for event in &events {
            let keep = self.filter.keep(&file, event, checksum).map_err(|e| {
                RelayServeError::BadEvent {
                    key: index.chunk.clone(),
                    offset: 0,
                    reason: e.to_string(),
                }
            })?;
            if keep && self.past_until(event, checksum, &index.chunk)? {
                tracing::info!(
                    peer = self.sender.peer(),
                    until = %self.until.as_ref().map(ToString::to_string).unwrap_or_default(),
                    file = %file,
                    log_pos = event.header.log_pos,
                    "until-position reached; sending nothing more"
                );
                self.reached = true;
                break;
            }
            if keep {
                self.sender.send_event(event).await?;
                self.file_ended = event.header.event_type == EventType::Rotate;
            }
        }
        self.sender.flush().await?;
        self.last = Some(key.clone());
        Ok(())
    }

    /// Whether `event` starts a transaction past the until-position.
    fn past_until(
        &self,
        event: &instarec_mysql::RawEvent,
        checksum: instarec_mysql::BinlogChecksum,
        chunk: &str,
    ) -> Result<bool, RelayServeError> {
        let Some(until) = &self.until else {
            return Ok(false);
        };
        if event.header.event_type != EventType::MariadbGtid {
            return Ok(false);
        }
        let gtid = MariadbGtidEvent::from_event(event, checksum)
            .map_err(|e| RelayServeError::BadEvent {
                key: chunk.to_string(),
                offset: 0,
                reason: e.to_string(),
            })?
            .gtid(event.header.server_id);
        Ok(until.is_past(&gtid, event.header.timestamp))
    }
}
