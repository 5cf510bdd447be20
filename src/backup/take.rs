//! Taking a PostgreSQL base backup into the archive.
//!
//! BASE_BACKUP's tar stream is cut into chunks that upload in parallel while
//! a tar reader lists the same bytes; nothing touches local disk. The server's
//! manifest is checked against that listing and stored. The record that makes
//! the backup count is written last, and only once the archive's WAL reaches
//! the backup's stop position: without that WAL the backup cannot be made
//! consistent.

use super::chunk_upload::{ChunkUploadError, ChunkUploads};
use super::layout;
use super::manifest::{BackupManifest, ManifestError};
use super::manifest_check::{self, ManifestCheckError};
use super::progress::BackupProgress;
use super::record::{BackupArchive, BackupRecord};
use super::tar_listing::{TarError, TarFile, TarLister};
use crate::archive::{Archive, ArchiveError};
use crate::engine::Engine;
use crate::engines::postgres::archive_end;
use bytes::{Bytes, BytesMut};
use chrono::Utc;
use instarec_postgres::{
    BackupLabel, BackupMessage, BaseBackupOptions, CheckpointMode, ConnConfig, InvalidBackupLabel,
    Lsn, PgError, ReplicationClient, TimelineId, WalSegmentSize,
};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How often the archive's end is checked while waiting for WAL.
const WAL_POLL: Duration = Duration::from_millis(200);

#[derive(Debug, Clone)]
pub struct TakeOptions {
    pub conn: ConnConfig,
    /// Default: "instarec <id>".
    pub label: Option<String>,
    pub checkpoint: CheckpointMode,
    /// How long to wait for the archive's WAL to reach the stop position.
    pub wal_timeout: Duration,
    /// Chunk uploads in flight at once; memory is about (this + 1) chunks.
    pub upload_parallelism: usize,
}

impl TakeOptions {
    pub fn new(conn: ConnConfig) -> TakeOptions {
        TakeOptions {
            conn,
            label: None,
            checkpoint: CheckpointMode::Fast,
            wal_timeout: Duration::from_secs(60),
            upload_parallelism: 4,
        }
    }
}

/// A committed backup and how it went.
#[derive(Debug, Clone)]
pub struct BackupOutcome {
    pub record: BackupRecord,
    /// Bytes in the archive under the backup's prefix (compressed, headers).
    pub stored_bytes: u64,
    pub files: u64,
    pub duration: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// Boxed: PgError is large and this error travels through every `?`.
    #[error(transparent)]
    Pg(Box<PgError>),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error(transparent)]
    Label(#[from] InvalidBackupLabel),
    #[error(transparent)]
    Tar(#[from] TarError),
    #[error(transparent)]
    ManifestInvalid(#[from] ManifestError),
    #[error("backup {id}: {source}")]
    Manifest {
        id: String,
        #[source]
        source: ManifestCheckError,
    },
    #[error("PostgreSQL at {addr} sent {what} during BASE_BACKUP; the server speaks a protocol instarec does not understand, please report this")]
    Stream { addr: String, what: String },
    #[error("backup {id} already has objects in archive {url}; another backup started in the same second: wait a second and retry")]
    IdTaken { id: String, url: String },
    #[error("backup {id} is uploaded but WAL up to {stop} (timeline {timeline}) is not archived yet (the archive ends at {archived}); is `instarec ship` running? the backup does not count until it is")]
    WalNotArchived {
        id: String,
        stop: Lsn,
        timeline: TimelineId,
        archived: String,
    },
    #[error("backup {id}: an internal task failed: {reason}; please report this")]
    Task { id: String, reason: String },
    #[error("backup {id} cancelled; no record was written, so it does not count; run `instarec backup` again")]
    Cancelled { id: String },
}

impl From<PgError> for BackupError {
    fn from(e: PgError) -> Self {
        BackupError::Pg(Box::new(e))
    }
}

impl From<ChunkUploadError> for BackupError {
    fn from(e: ChunkUploadError) -> Self {
        match e {
            ChunkUploadError::Archive(a) => BackupError::Archive(a),
            ChunkUploadError::Task { id, reason } => BackupError::Task {
                id,
                reason: format!("chunk upload: {reason}"),
            },
        }
    }
}

/// Takes a base backup of the primary at `opts.conn` into `archive` and
/// commits its record. The archive is bound to the primary's cluster first
/// (another cluster's archive is refused before anything is written).
pub async fn take_backup(
    opts: &TakeOptions,
    archive: &Archive,
    progress: &mut BackupProgress,
    cancel: &CancellationToken,
) -> Result<BackupOutcome, BackupError> {
    let began = Instant::now();
    // Bad input is refused before anything is written.
    let custom_label = opts.label.as_deref().map(BackupLabel::new).transpose()?;
    let mut conn = opts.conn.clone();
    conn.application_name = Some(match &conn.application_name {
        Some(name) => format!("{name}-backup"),
        None => "instarec-backup".to_string(),
    });
    let mut client = ReplicationClient::connect(&conn).await?;
    let addr = client.addr().to_string();
    // connect refused a major instarec does not support.
    let server_version = client.server_version().map(str::to_string);
    let identity = client.identify_system().await?;
    let segment_size = client.wal_segment_size().await?;
    let system_id = identity.system_id.to_string();
    let (archive, _) = archive.open_cluster(Engine::Postgres, &system_id).await?;

    let start_time = Utc::now();
    let id = layout::new_id(start_time);
    if !archive.list(&layout::backup_prefix(&id)).await?.is_empty() {
        return Err(BackupError::IdTaken {
            id,
            url: archive.url().to_string(),
        });
    }
    let label = match custom_label {
        Some(l) => l,
        None => BackupLabel::new(&format!("instarec {id}"))?,
    };
    tracing::info!(%id, %addr, system_id = %system_id, label = label.as_str(), "starting base backup");

    let mut stream = client
        .base_backup(&BaseBackupOptions {
            label: label.clone(),
            checkpoint: opts.checkpoint,
            estimate_size: true,
        })
        .await?;
    let (start, timeline) = (stream.start, stream.timeline);
    tracing::info!(%start, %timeline, estimated_bytes = stream.estimated_bytes(), "backup started");
    progress.start(stream.estimated_bytes());

    let mut uploads = ChunkUploads::new(&archive, &id, opts.upload_parallelism);
    let mut current: Option<ArchiveInProgress> = None;
    let mut done_archives: Vec<BackupArchive> = Vec::new();
    let mut tar_files: Vec<TarFile> = Vec::new();
    let mut manifest: Option<BytesMut> = None;
    loop {
        let message = tokio::select! {
            m = stream.next() => m?,
            _ = cancel.cancelled() => return Err(BackupError::Cancelled { id }),
        };
        let Some(message) = message else { break };
        match message {
            BackupMessage::NewArchive { name, location } => {
                if manifest.is_some() {
                    return Err(stream_error(&addr, "a new archive after the manifest"));
                }
                if let Some(done) = current.take() {
                    done.finish(&mut uploads, &mut done_archives, &mut tar_files)
                        .await?;
                }
                current = Some(ArchiveInProgress::start(name, location, &addr)?);
            }
            BackupMessage::Data(data) => {
                progress.advance(data.len() as u64);
                if let Some(m) = &mut manifest {
                    m.extend_from_slice(&data);
                } else if let Some(a) = &mut current {
                    a.push(data, &mut uploads).await?;
                } else {
                    return Err(stream_error(&addr, "data before the first archive"));
                }
            }
            BackupMessage::ManifestStart => {
                if let Some(done) = current.take() {
                    done.finish(&mut uploads, &mut done_archives, &mut tar_files)
                        .await?;
                }
                manifest = Some(BytesMut::new());
            }
            BackupMessage::Progress(server_done) => {
                tracing::trace!(server_done, "server progress");
            }
        }
    }
    if let Some(done) = current.take() {
        done.finish(&mut uploads, &mut done_archives, &mut tar_files)
            .await?;
    }
    let (stop, stop_timeline) = stream.finish().await?;
    uploads.drain().await?;
    let stop_time = Utc::now();
    let manifest = manifest
        .ok_or_else(|| stream_error(&addr, "no backup manifest"))?
        .freeze();
    tracing::info!(%stop, timeline = %stop_timeline, archives = done_archives.len(), files = tar_files.len(), "backup data uploaded");

    check_manifest(&id, &system_id, manifest.clone(), tar_files.clone()).await?;
    let manifest_blake3 = blake3::hash(&manifest).to_hex().to_string();
    archive.put(&layout::manifest_key(&id), manifest).await?;

    progress.phase(&format!("waiting for the archive's WAL to reach {stop}"));
    wait_for_wal(
        &archive,
        segment_size,
        stop,
        stop_timeline,
        opts.wal_timeout,
        &id,
        cancel,
    )
    .await?;

    let record = BackupRecord {
        id: id.clone(),
        label: label.as_str().to_string(),
        engine: Engine::Postgres,
        system_id,
        start_position: start.to_string(),
        stop_position: stop.to_string(),
        timeline: stop_timeline.0,
        start_time,
        stop_time,
        size_bytes: done_archives.iter().map(|a| a.bytes).sum(),
        archives: done_archives,
        manifest_blake3,
        server_version,
    };
    record.commit(&archive).await?;
    progress.finish();
    let stored_bytes = archive
        .list(&layout::backup_prefix(&id))
        .await?
        .iter()
        .map(|e| e.size)
        .sum();
    tracing::info!(%start, %stop, bytes = record.size_bytes, stored_bytes, "backup committed");
    Ok(BackupOutcome {
        record,
        stored_bytes,
        files: tar_files.len() as u64,
        duration: began.elapsed(),
    })
}

fn stream_error(addr: &str, what: &str) -> BackupError {
    BackupError::Stream {
        addr: addr.to_string(),
        what: what.to_string(),
    }
}

/// Parsing and checking thousands of entries is CPU work: off the runtime.
/// A version 2 manifest must also name the cluster IDENTIFY_SYSTEM named.
async fn check_manifest(
    id: &str,
    system_id: &str,
    manifest: Bytes,
    files: Vec<TarFile>,
) -> Result<(), BackupError> {
    let owned_id = id.to_string();
    let system_id = system_id.to_string();
    let checked = tokio::task::spawn_blocking(move || {
        let parsed = BackupManifest::parse(&owned_id, &manifest)?;
        parsed.check_system(&system_id)?;
        Ok::<_, BackupError>(manifest_check::check(&parsed, &files).map_err(|source| {
            BackupError::Manifest {
                id: owned_id,
                source,
            }
        }))
    })
    .await
    .map_err(|e| BackupError::Task {
        id: id.to_string(),
        reason: format!("manifest check task: {e}"),
    })?;
    checked?
}

/// Polls the archive's end until it covers `stop` on `timeline` (or the
/// archive moved on to a newer timeline, which branched after it).
async fn wait_for_wal(
    archive: &Archive,
    size: WalSegmentSize,
    stop: Lsn,
    timeline: TimelineId,
    timeout: Duration,
    id: &str,
    cancel: &CancellationToken,
) -> Result<(), BackupError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let end = archive_end::durable_end(archive, size).await?;
        if covers(end, stop, timeline) {
            tracing::info!(%stop, archived = ?end.map(|(t, l)| format!("{l} on timeline {t}")), "WAL needed by the backup is archived");
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(BackupError::WalNotArchived {
                id: id.to_string(),
                stop,
                timeline,
                archived: match end {
                    Some((t, l)) => format!("{l} on timeline {t}"),
                    None => "nowhere: it holds no WAL".to_string(),
                },
            });
        }
        tokio::select! {
            _ = tokio::time::sleep(WAL_POLL) => {}
            _ = cancel.cancelled() => return Err(BackupError::Cancelled { id: id.to_string() }),
        }
    }
}

fn covers(end: Option<(TimelineId, Lsn)>, stop: Lsn, timeline: TimelineId) -> bool {
    match end {
        Some((t, l)) => t > timeline || (t == timeline && l >= stop),
        None => false,
    }
}

/// One tar archive being received: its current chunk and its tar reader.
struct ArchiveInProgress {
    name: String,
    location: Option<String>,
    buffer: BytesMut,
    chunks: u32,
    bytes: u64,
    lister: TarLister,
}

impl ArchiveInProgress {
    fn start(name: String, location: Option<String>, addr: &str) -> Result<Self, BackupError> {
        // The name becomes part of an object key and the manifest's paths.
        let prefix = match name.strip_suffix(".tar") {
            Some("base") => String::new(),
            Some(oid) if !oid.is_empty() && oid.bytes().all(|b| b.is_ascii_digit()) => {
                format!("pg_tblspc/{oid}/")
            }
            _ => {
                return Err(stream_error(
                    addr,
                    &format!("an archive named {name:?} (expected base.tar or <oid>.tar; is server-side compression configured?)"),
                ))
            }
        };
        tracing::info!(archive = %name, location = ?location, "receiving archive");
        Ok(ArchiveInProgress {
            lister: TarLister::start(&name, &prefix),
            name,
            location,
            buffer: BytesMut::with_capacity(layout::CHUNK_BYTES),
            chunks: 0,
            bytes: 0,
        })
    }

    async fn push(&mut self, data: Bytes, uploads: &mut ChunkUploads) -> Result<(), BackupError> {
        self.bytes += data.len() as u64;
        self.buffer.extend_from_slice(&data);
        self.lister.feed(data).await?;
        while self.buffer.len() >= layout::CHUNK_BYTES {
            let chunk = self.buffer.split_to(layout::CHUNK_BYTES).freeze();
            self.upload(chunk, uploads).await?;
            self.buffer.reserve(layout::CHUNK_BYTES);
        }
        Ok(())
    }

    async fn upload(
        &mut self,
        chunk: Bytes,
        uploads: &mut ChunkUploads,
    ) -> Result<(), BackupError> {
        let key = layout::chunk_key(uploads.backup_id(), &self.name, self.chunks);
        self.chunks += 1;
        Ok(uploads.spawn(key, chunk).await?)
    }

    async fn finish(
        mut self,
        uploads: &mut ChunkUploads,
        archives: &mut Vec<BackupArchive>,
        files: &mut Vec<TarFile>,
    ) -> Result<(), BackupError> {
        if !self.buffer.is_empty() {
            let chunk = std::mem::take(&mut self.buffer).freeze();
            self.upload(chunk, uploads).await?;
        }
        let listing = self.lister.finish().await?;
        tracing::info!(archive = %self.name, bytes = self.bytes, chunks = self.chunks, files = listing.files.len(), "archive received");
        files.extend(listing.files);
        archives.push(BackupArchive {
            name: self.name,
            location: self.location,
            chunks: self.chunks,
            bytes: self.bytes,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wal_coverage() {
        let t1 = TimelineId(1);
        assert!(!covers(None, Lsn(10), t1));
        assert!(!covers(Some((t1, Lsn(9))), Lsn(10), t1));
        assert!(covers(Some((t1, Lsn(10))), Lsn(10), t1));
        assert!(covers(Some((TimelineId(2), Lsn(1))), Lsn(10), t1));
        assert!(!covers(Some((t1, Lsn(99))), Lsn(10), TimelineId(2)));
    }
}
