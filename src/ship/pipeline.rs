//! The engine-neutral shipping loop: receive, cut, fence-check, upload,
//! acknowledge. It owns all timing so engines only translate.
//!
//! Durability rule (invariant 1): the source is acknowledged only with the
//! `upto` of a cut whose every object the archive confirmed, and whose
//! earlier cuts all did too. Several cuts may upload at once; they are
//! finished (acknowledged, superseded objects deleted) strictly in order.

use super::archive_watch::ArchiveWatch;
use super::in_order::{AnnounceTurn, InOrder};
use super::metrics::ShipMetrics;
use super::position_record::PositionRecord;
use super::superseded::SupersededDeleter;
use crate::archive::{Archive, Epoch};
use crate::engine::{Cut, LogSource, SourceEvent};
use anyhow::Context as _;
use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
pub struct PipelineOptions {
    pub flush_interval: Duration,
    pub flush_bytes: u64,
    /// Zero-loss: upload as soon as anything arrives (group commit).
    pub synchronous: bool,
    /// How often the primary's position is recorded in the archive, at most.
    pub position_interval: Duration,
    /// Stop reading from the primary while this much is buffered.
    pub max_buffered_bytes: u64,
    /// Status messages go out at least this often, even when idle.
    pub status_interval: Duration,
    /// Cuts uploading at once; they are acknowledged in order whatever
    /// order they finish in. More than one lets a commit that arrives while
    /// a cut is in flight start its own upload at once instead of waiting
    /// for that one, at the price of smaller cuts: more objects, requests and
    /// CPU per commit.
    pub max_uploads_in_flight: usize,
    /// An upload slower than this is logged (WARN, once per cut) and
    /// counted in `instarec_ship_upload_stalls_total` ([archive] stall_warning).
    pub stall_warning: Duration,
}

impl PipelineOptions {
    pub fn new(flush_interval: Duration, flush_bytes: u64, synchronous: bool) -> Self {
        PipelineOptions {
            flush_interval,
            flush_bytes,
            synchronous,
            position_interval: Duration::from_secs(1),
            // Two 16 MiB segments: keeps ship's memory bounded while catching up.
            max_buffered_bytes: 32 * 1024 * 1024,
            status_interval: Duration::from_secs(10),
            max_uploads_in_flight: DEFAULT_UPLOADS_IN_FLIGHT,
            stall_warning: Duration::from_secs(5),
        }
    }
}

/// What a pipeline run achieved; returned on clean shutdown.
#[derive(Debug, Clone)]
pub struct ShipSummary {
    pub durable: String,
    pub uploaded_objects: u64,
    pub uploaded_bytes: u64,
}

/// How often an idle shipper checks whether it was fenced (one HEAD).
const FENCE_CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// One: on a local disk and on moto (bench/ship.sh, 2 cores shared with the
/// primary) overlapping cuts cost 1.5-2x the shipper CPU per commit (each
/// commit becomes its own object) and gave no more TPS; one upload in flight
/// lets every commit that arrives meanwhile share the next cut.
const DEFAULT_UPLOADS_IN_FLIGHT: usize = 1;

/// Uploads in flight, finished in the order they started.
type Uploads<P> = InOrder<anyhow::Result<(Cut<P>, Duration)>>;

/// What starting an upload needs besides the cut.
struct Uploader {
    archive: Archive,
    epoch: Epoch,
    metrics: Arc<ShipMetrics>,
    stall_warning: Duration,
    /// Passed on by the last cut started; the next one announces after it.
    last_turn: Option<oneshot::Receiver<()>>,
}

struct State<P> {
    durable: P,
    primary: Option<P>,
    /// When the oldest byte of each cut in flight arrived, in cut order:
    /// with `uncut_since`, what the archive's lag in seconds is measured from.
    in_flight_since: std::collections::VecDeque<Instant>,
    last_status: Instant,
    last_position_write: Instant,
    recorded_primary: Option<P>,
    uploaded_objects: u64,
    uploaded_bytes: u64,
}

/// Runs until `shutdown` fires (then flushes and returns) or an error
/// (fenced, archive conflict, unrecoverable source error) stops it.
pub async fn run<S: LogSource>(
    mut source: S,
    archive: Archive,
    epoch: Epoch,
    options: PipelineOptions,
    metrics: Arc<ShipMetrics>,
    shutdown: CancellationToken,
) -> anyhow::Result<ShipSummary> {
    let now = Instant::now();
    let mut st = State {
        durable: source.durable(),
        primary: None,
        in_flight_since: Default::default(),
        last_status: now,
        last_position_write: now,
        recorded_primary: None,
        uploaded_objects: 0,
        uploaded_bytes: 0,
    };
    let mut uploads: Uploads<S::Position> = InOrder::default();
    let mut uploader = Uploader {
        archive: archive.clone(),
        epoch,
        metrics: Arc::clone(&metrics),
        stall_warning: options.stall_warning,
        last_turn: None,
    };
    let deleter = SupersededDeleter::start(archive.clone(), Arc::clone(&metrics));
    let max_in_flight = options.max_uploads_in_flight.max(1);
    // Status, position records and lag metrics; flushes have their own deadline.
    let mut ticker =
        tokio::time::interval(Duration::from_millis(200).min(options.position_interval));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // When the oldest byte not yet cut arrived: it must be uploading within
    // flush_interval, which bounds the archive's lag.
    let mut uncut_since: Option<Instant> = None;
    let mut watch = ArchiveWatch::start(archive.clone(), epoch, FENCE_CHECK_INTERVAL);
    source.acknowledge(&st.durable).await?;

    loop {
        // Uploads in flight hold their bytes too: both count toward the bound.
        let held = source.buffered_bytes() + uploads.bytes();
        let can_read = held < options.max_buffered_bytes;
        let room = uploads.len() < max_in_flight;
        let flush_at = uncut_since
            .filter(|_| room)
            .map(|t| tokio::time::Instant::from_std(t + options.flush_interval));
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            // Idle shippers (or ones whose primary died) learn of a promote
            // here; busy ones also check before every upload.
            fenced = watch.fenced() => return Err(fenced.into()),
            Some(done) = uploads.next_done(), if !uploads.is_empty() => {
                let (cut, took) = done.context("upload task panicked")??;
                finish_cut(&mut source, &deleter, &metrics, &mut st, cut, took).await?;
                if options.synchronous && source.buffered_bytes() > 0 {
                    start_upload(&mut source, &mut uploader, &mut uploads, &mut st, &mut uncut_since);
                }
            }
            event = source.recv(), if can_read => {
                match event? {
                    SourceEvent::Received { primary } => {
                        uncut_since.get_or_insert_with(Instant::now);
                        if primary.is_some() {
                            st.primary = primary;
                        }
                        // Synchronous: the primary is waiting for these bytes.
                        let due = options.synchronous || source.buffered_bytes() >= options.flush_bytes;
                        if due && uploads.len() < max_in_flight {
                            start_upload(&mut source, &mut uploader, &mut uploads, &mut st, &mut uncut_since);
                        }
                    }
                    SourceEvent::PrimaryAt { position, reply_requested } => {
                        st.primary = Some(position);
                        if reply_requested {
                            source.acknowledge(&st.durable).await?;
                            st.last_status = Instant::now();
                        }
                    }
                }
            }
            _ = async { tokio::time::sleep_until(flush_at.expect("guarded")).await }, if flush_at.is_some() => {
                start_upload(&mut source, &mut uploader, &mut uploads, &mut st, &mut uncut_since);
            }
            _ = ticker.tick() => {
                if st.last_status.elapsed() >= options.status_interval {
                    source.acknowledge(&st.durable).await?;
                    st.last_status = Instant::now();
                }
                record_primary_position::<S>(&watch, epoch, &options, &mut st);
            }
        }
        update_lag(&source, &metrics, &st, uncut_since);
    }

    // Shutdown: whatever was received goes to the archive before we exit.
    start_upload(
        &mut source,
        &mut uploader,
        &mut uploads,
        &mut st,
        &mut uncut_since,
    );
    while let Some(done) = uploads.next_done().await {
        let (cut, took) = done.context("upload task panicked")??;
        finish_cut(&mut source, &deleter, &metrics, &mut st, cut, took).await?;
    }
    deleter.finish().await;
    watch.stop();
    tracing::info!(durable = %st.durable, "shipper stopped after flushing");
    Ok(ShipSummary {
        durable: st.durable.to_string(),
        uploaded_objects: st.uploaded_objects,
        uploaded_bytes: st.uploaded_bytes,
    })
}

/// Cuts the buffer and starts a task that checks the fence and uploads the
/// cut's objects concurrently. Does nothing when there was nothing to cut.
/// The cut takes the arrival time of its oldest byte (`uncut_since`) along.
fn start_upload<S: LogSource>(
    source: &mut S,
    uploader: &mut Uploader,
    uploads: &mut Uploads<S::Position>,
    st: &mut State<S::Position>,
    uncut_since: &mut Option<Instant>,
) {
    let Some(cut) = source.cut() else {
        return;
    };
    st.in_flight_since
        .push_back(uncut_since.take().unwrap_or_else(Instant::now));
    let bytes = cut.payload_bytes();
    let (mut turn, next) = AnnounceTurn::after(uploader.last_turn.take());
    uploader.last_turn = Some(next);
    let (archive, epoch) = (uploader.archive.clone(), uploader.epoch);
    let (metrics, stall_warning) = (Arc::clone(&uploader.metrics), uploader.stall_warning);
    let task = tokio::spawn(async move {
        let started = Instant::now();
        let upload = async {
            // Invariant 4: a fenced writer must not write. Checked before every
            // cut's first write; the HEAD may overlap an earlier cut's PUTs, but
            // it completes before any PUT of this cut starts.
            archive.ensure_current_epoch(epoch).await?;
            put_all(&archive, &cut.objects).await?;
            // A reader that finds an announcement finds what every earlier one names.
            turn.wait().await?;
            put_all(&archive, &cut.announcements).await?;
            turn.pass();
            anyhow::Ok(())
        };
        stall_watched(upload, &cut, stall_warning, &metrics).await?;
        Ok((cut, started.elapsed()))
    });
    uploads.push(task, bytes);
}

/// Runs a cut's upload; one slower than `threshold` is logged once, when it
/// crosses it (naming the cut's first key), counted, and logged again when it
/// ends. A hanging store otherwise only shows as a growing lag: its client
/// retries quietly for minutes.
async fn stall_watched<P>(
    upload: impl std::future::Future<Output = anyhow::Result<()>>,
    cut: &Cut<P>,
    threshold: Duration,
    metrics: &ShipMetrics,
) -> anyhow::Result<()> {
    let started = Instant::now();
    tokio::pin!(upload);
    tokio::select! {
        done = &mut upload => return done,
        _ = tokio::time::sleep(threshold) => {}
    }
    metrics.upload_stalls.inc();
    let key = cut
        .all_objects()
        .next()
        .map(|(k, _)| k.as_str())
        .unwrap_or("-");
    let objects = cut.all_objects().count();
    tracing::warn!(
        key,
        objects,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "archive upload of {key} (and {} more) still not durable after {:.1} s ([archive] stall_warning = {}); the store is slow or unreachable",
        objects.saturating_sub(1),
        started.elapsed().as_secs_f64(),
        humantime::format_duration(threshold)
    );
    let done = upload.await;
    tracing::warn!(
        key,
        elapsed_ms = started.elapsed().as_millis() as u64,
        ok = done.is_ok(),
        "stalled archive upload of {key} ended after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    done
}

/// Writes `objects` concurrently; returns once every one is durable.
async fn put_all(archive: &Archive, objects: &[(String, Bytes)]) -> anyhow::Result<()> {
    let puts = objects.iter().map(|(key, payload)| async move {
        archive
            .put(key, payload.clone())
            .await
            .with_context(|| format!("uploading {key}"))
    });
    futures::future::try_join_all(puts).await?;
    Ok(())
}

/// Called in cut order, once the cut and every earlier one are durable.
async fn finish_cut<S: LogSource>(
    source: &mut S,
    deleter: &SupersededDeleter,
    metrics: &ShipMetrics,
    st: &mut State<S::Position>,
    cut: Cut<S::Position>,
    took: Duration,
) -> anyhow::Result<()> {
    metrics.upload_seconds.observe(took.as_secs_f64());
    let objects = cut.all_objects().count() as u64;
    metrics.uploaded_objects.inc_by(objects);
    metrics.uploaded_bytes.inc_by(cut.payload_bytes());
    st.uploaded_objects += objects;
    st.uploaded_bytes += cut.payload_bytes();
    st.durable = cut.upto.clone();
    st.in_flight_since.pop_front();
    if let Some(g) = source.position_gauge(&st.durable) {
        metrics.durable_position.set(g);
    }
    tracing::debug!(durable = %st.durable, objects, ms = took.as_millis() as u64, "durable in archive");
    source.acknowledge(&st.durable).await?;
    st.last_status = Instant::now();
    deleter.delete(cut.superseded).await;
    Ok(())
}

/// Queues a record of the primary's position, at most once per
/// `position_interval` while it moves; the archive watch writes it.
fn record_primary_position<S: LogSource>(
    watch: &ArchiveWatch,
    epoch: Epoch,
    options: &PipelineOptions,
    st: &mut State<S::Position>,
) {
    let Some(primary) = st.primary.clone() else {
        return;
    };
    let moved = st.recorded_primary.as_ref() != Some(&primary);
    if !moved || st.last_position_write.elapsed() < options.position_interval {
        return;
    }
    watch.record(PositionRecord {
        epoch: epoch.0,
        primary: primary.to_string(),
        durable: st.durable.to_string(),
        at: chrono::Utc::now(),
    });
    st.last_position_write = Instant::now();
    st.recorded_primary = Some(primary);
}

/// The archive's lag: the size and the age of the oldest log not yet
/// durable in the archive. Age: since the shipper received its oldest byte
/// (the oldest cut in flight, else the oldest byte not yet cut); 0 when
/// everything received is durable.
fn update_lag<S: LogSource>(
    source: &S,
    metrics: &ShipMetrics,
    st: &State<S::Position>,
    uncut_since: Option<Instant>,
) {
    if let Some(primary) = &st.primary {
        if let Some(bytes) = source.lag_bytes(primary, &st.durable) {
            metrics.lag_bytes.set(bytes as i64);
        }
    }
    let oldest = st.in_flight_since.front().copied().or(uncut_since);
    let secs = oldest.map(|t| t.elapsed().as_secs_f64()).unwrap_or(0.0);
    metrics.lag_seconds.set(secs);
}
