//! Taking a MySQL/MariaDB physical backup into the archive.
//!
//! mariabackup (MariaDB) or xtrabackup (MySQL) streams xbstream on its
//! stdout; the stream is cut into chunks that upload in parallel, and we
//! read no faster than the archive takes them, so the tool blocks on its
//! pipe rather than memory growing. Nothing touches local disk. xbstream has
//! no manifest of its own, so we store one (tool, sizes, BLAKE3 of the
//! whole stream). The record is written last, and only once the binlog
//! archive reaches the backup's GTID position: a restore replays the binlog
//! from there, the same rule as PostgreSQL's "WAL up to stop".

mod binlog_info;
mod tool;

pub use binlog_info::{BinlogInfo, BinlogInfoError};
pub use tool::{backup_args, BackupTool, ToolConnection};

use super::chunk_upload::{ChunkUploadError, ChunkUploads};
use super::layout;
use super::progress::BackupProgress;
use super::record::{BackupArchive, BackupRecord};
use crate::archive::{Archive, ArchiveError};
use crate::engine::Engine;
use crate::engines::mysql::index::ChunkIndex;
use crate::engines::mysql::layout::{IndexKey, INDEX_PREFIX};
use crate::engines::mysql::{primary_status, GtidState};
use bytes::{BufMut as _, Bytes, BytesMut};
use chrono::Utc;
use instarec_mysql::ServerFlavor;
use mysql_async::prelude::Queryable as _;
use serde::{Deserialize, Serialize};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt as _};
use tokio_util::sync::CancellationToken;
use tool::{Scratch, ToolReport};

/// The one archive of a MySQL backup: the tool's xbstream, as it came.
pub const XBSTREAM_ARCHIVE: &str = "backup.xbstream";

/// How often the binlog archive's end is checked while waiting for it.
const BINLOG_POLL: Duration = Duration::from_millis(250);

#[derive(Debug, Clone)]
pub struct MysqlTakeOptions {
    /// mysql://user:password@host:port/ (the password already filled in).
    pub url: String,
    /// [primary] cluster_id: names the topology, as `instarec ship` does.
    pub cluster_id: Option<String>,
    /// Default: "instarec <id> binlog <file>:<pos>".
    pub label: Option<String>,
    /// How long to wait for the binlog archive to reach the backup's position.
    pub binlog_timeout: Duration,
    /// Chunk uploads in flight at once; memory is about (this + 1) chunks.
    pub upload_parallelism: usize,
}

impl MysqlTakeOptions {
    pub fn new(url: String, cluster_id: Option<String>) -> MysqlTakeOptions {
        MysqlTakeOptions {
            url,
            cluster_id,
            label: None,
            binlog_timeout: Duration::from_secs(60),
            upload_parallelism: 4,
        }
    }
}

/// A committed backup and how it went.
#[derive(Debug, Clone)]
pub struct MysqlBackupOutcome {
    pub record: BackupRecord,
    pub manifest: XbstreamManifest,
    /// Bytes in the archive under the backup's prefix (compressed, headers).
    pub stored_bytes: u64,
    pub duration: Duration,
}

/// Stored at `layout::manifest_key(id)`; the record holds its BLAKE3.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct XbstreamManifest {
    /// "mariabackup" or "xtrabackup".
    pub tool: String,
    /// The tool's own version line.
    pub tool_version: Option<String>,
    pub archive: String,
    pub chunks: u32,
    pub bytes: u64,
    /// BLAKE3 of the whole xbstream (all chunks concatenated), hex.
    pub blake3: String,
    /// Where the backup is consistent: binlog file and offset on the
    /// primary it was taken from, and the GTID state.
    pub binlog_file: String,
    pub binlog_pos: u64,
    pub gtid: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MysqlBackupError {
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error("connecting to the primary {addr} to read its identity: {source}; check [primary] url and that the server is up")]
    Connect {
        addr: String,
        #[source]
        source: mysql_async::Error,
    },
    #[error(
        "[primary] url is not a MySQL URL: {reason}; write it as mysql://user:password@host:port/"
    )]
    BadUrl { reason: String },
    #[error("the primary {addr} answered {query} with something unreadable: {reason}")]
    Server {
        addr: String,
        query: &'static str,
        reason: String,
    },
    #[error("{tool} is not installed here (tried {tried}); install the {package} package on the server's host and run `instarec backup` there")]
    ToolMissing {
        tool: &'static str,
        tried: String,
        package: &'static str,
    },
    #[error("backup {id}: {what}: {source}")]
    Io {
        id: String,
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("backup {id}: {tool} failed ({status}); no record was written, so the backup does not count. Its last lines:\n{tail}\nfix the cause above and run `instarec backup` again")]
    ToolFailed {
        id: String,
        tool: &'static str,
        status: String,
        tail: String,
    },
    #[error("backup {id}: {tool} finished without reporting a binlog position; is log_bin on at {addr}? a backup without one cannot be rolled forward. Its last lines:\n{tail}")]
    NoBinlogPosition {
        id: String,
        tool: &'static str,
        addr: String,
        tail: String,
    },
    #[error("backup {id}: {source}")]
    BinlogInfo {
        id: String,
        #[source]
        source: BinlogInfoError,
    },
    #[error("backup {id}: {what} {text:?} is not a {flavor} GTID position: {reason}; please report this")]
    BadGtid {
        id: String,
        what: &'static str,
        text: String,
        flavor: &'static str,
        reason: String,
    },
    #[error("backup {id} already has objects in archive {url}; another backup started in the same second: wait a second and retry")]
    IdTaken { id: String, url: String },
    #[error("backup {id} is uploaded but binlog up to {gtid} is not archived yet (the archive ends at {archived}); is `instarec ship` running? the backup does not count until it is")]
    BinlogNotArchived {
        id: String,
        gtid: String,
        archived: String,
    },
    #[error("backup {id}: an internal task failed: {reason}; please report this")]
    Task { id: String, reason: String },
    #[error("backup {id} cancelled; no record was written, so it does not count; run `instarec backup` again")]
    Cancelled { id: String },
}

impl From<ChunkUploadError> for MysqlBackupError {
    fn from(e: ChunkUploadError) -> Self {
        match e {
            ChunkUploadError::Archive(a) => MysqlBackupError::Archive(a),
            ChunkUploadError::Task { id, reason } => MysqlBackupError::Task {
                id,
                reason: format!("chunk upload: {reason}"),
            },
        }
    }
}

/// What the server told us before the tool runs.
struct ServerFacts {
    flavor: ServerFlavor,
    version: String,
    system_id: String,
}

/// Takes a physical backup of the server at `opts.url` into `archive` and
/// commits its record. The archive is bound to the server's topology first
/// (another topology's archive is refused before anything is written).
pub async fn take_mysql_backup(
    opts: &MysqlTakeOptions,
    archive: &Archive,
    progress: &mut BackupProgress,
    cancel: &CancellationToken,
) -> Result<MysqlBackupOutcome, MysqlBackupError> {
    let began = Instant::now();
    let query_opts =
        mysql_async::Opts::from_url(&opts.url).map_err(|e| MysqlBackupError::BadUrl {
            reason: e.to_string(),
        })?;
    let conn = ToolConnection {
        host: query_opts.ip_or_hostname().to_string(),
        port: query_opts.tcp_port(),
        user: query_opts.user().map(str::to_string),
        password: query_opts.pass().map(str::to_string),
    };
    let facts = server_facts(query_opts, &conn.addr(), opts.cluster_id.as_deref()).await?;
    let (archive, _) = archive
        .open_cluster(Engine::Mysql, &facts.system_id)
        .await?;
    let tool = match facts.flavor {
        ServerFlavor::Mariadb => BackupTool::Mariabackup,
        ServerFlavor::Mysql => BackupTool::Xtrabackup,
    };

    let start_time = Utc::now();
    let id = layout::new_id(start_time);
    if !archive.list(&layout::backup_prefix(&id)).await?.is_empty() {
        return Err(MysqlBackupError::IdTaken {
            id,
            url: archive.url().to_string(),
        });
    }
    let io = |what: &str| {
        let (id, what) = (id.clone(), what.to_string());
        move |source| MysqlBackupError::Io { id, what, source }
    };
    let scratch = Scratch::create(&id)
        .await
        .map_err(io("creating a scratch directory"))?;
    let defaults_file = match conn.defaults_file_text() {
        Some(text) => Some(
            scratch
                .write_defaults_file(&text)
                .await
                .map_err(io("writing the option file"))?,
        ),
        None => None,
    };
    let args = backup_args(&conn, defaults_file.as_deref(), &scratch.target_dir());
    let mut child = spawn_tool(tool, &args, &id)?;
    tracing::info!(%id, addr = %conn.addr(), tool = tool.name(), system_id = %facts.system_id, "starting backup");
    progress.start(None);

    let stderr = child
        .stderr
        .take()
        .ok_or_else(|| task_error(&id, "no stderr pipe"))?;
    let stderr_task = tokio::spawn(tool::watch_stderr(stderr, tool));
    let mut stdout = child
        .stdout
        .take()
        .ok_or_else(|| task_error(&id, "no stdout pipe"))?;

    let mut uploads = ChunkUploads::new(&archive, &id, opts.upload_parallelism);
    let mut hasher = blake3::Hasher::new();
    let (mut chunks, mut bytes) = (0u32, 0u64);
    loop {
        let (chunk, eof) = read_chunk(&mut stdout, progress, cancel, &id).await?;
        if !chunk.is_empty() {
            bytes += chunk.len() as u64;
            let (h, chunk) = hash_more(hasher, chunk, &id).await?;
            hasher = h;
            let key = layout::chunk_key(&id, XBSTREAM_ARCHIVE, chunks);
            chunks += 1;
            uploads.spawn(key, chunk).await?;
        }
        if eof {
            break;
        }
    }
    let status = tokio::select! {
        s = child.wait() => s.map_err(io("waiting for the backup tool"))?,
        _ = cancel.cancelled() => return Err(MysqlBackupError::Cancelled { id }),
    };
    let report: ToolReport = stderr_task
        .await
        .map_err(|e| task_error(&id, &format!("stderr reader: {e}")))?;
    drop(scratch);
    if !status.success() {
        return Err(MysqlBackupError::ToolFailed {
            id,
            tool: tool.name(),
            status: status.to_string(),
            tail: report.tail_text(),
        });
    }
    let Some(info_text) = report.binlog_info.as_deref() else {
        return Err(MysqlBackupError::NoBinlogPosition {
            id,
            tool: tool.name(),
            addr: conn.addr(),
            tail: report.tail_text(),
        });
    };
    let info = BinlogInfo::parse(info_text).map_err(|source| MysqlBackupError::BinlogInfo {
        id: id.clone(),
        source,
    })?;
    let gtid = parse_gtid(facts.flavor, &info.gtid, "the backup's GTID position", &id)?;
    uploads.drain().await?;
    let stop_time = Utc::now();
    tracing::info!(%gtid, binlog = %format!("{}:{}", info.file, info.pos), bytes, chunks, "backup data uploaded");

    let manifest = XbstreamManifest {
        tool: tool.name().to_string(),
        tool_version: report.version.clone(),
        archive: XBSTREAM_ARCHIVE.to_string(),
        chunks,
        bytes,
        blake3: hasher.finalize().to_hex().to_string(),
        binlog_file: info.file.clone(),
        binlog_pos: info.pos,
        gtid: gtid.to_string(),
    };
    let manifest_body = Bytes::from(serde_json::to_vec_pretty(&manifest).unwrap_or_default());
    let manifest_blake3 = blake3::hash(&manifest_body).to_hex().to_string();
    archive
        .put(&layout::manifest_key(&id), manifest_body)
        .await?;

    progress.phase(&format!("waiting for the binlog archive to reach {gtid}"));
    wait_for_binlog(&archive, &gtid, opts.binlog_timeout, &id, cancel).await?;

    let record = BackupRecord {
        id: id.clone(),
        label: opts
            .label
            .clone()
            .unwrap_or_else(|| format!("instarec {id} binlog {}:{}", info.file, info.pos)),
        engine: Engine::Mysql,
        system_id: facts.system_id,
        start_position: gtid.to_string(),
        stop_position: gtid.to_string(),
        // MySQL has no timelines; the GTID state says everything.
        timeline: 0,
        start_time,
        stop_time,
        size_bytes: bytes,
        archives: vec![BackupArchive {
            name: XBSTREAM_ARCHIVE.to_string(),
            location: None,
            chunks,
            bytes,
        }],
        manifest_blake3,
        server_version: Some(facts.version),
    };
    record.commit(&archive).await?;
    progress.finish();
    let stored_bytes = archive
        .list(&layout::backup_prefix(&id))
        .await?
        .iter()
        .map(|e| e.size)
        .sum();
    tracing::info!(%gtid, bytes, stored_bytes, "backup committed");
    Ok(MysqlBackupOutcome {
        record,
        manifest,
        stored_bytes,
        duration: began.elapsed(),
    })
}

/// Flavour, version and topology id, on an ordinary connection.
async fn server_facts(
    opts: mysql_async::Opts,
    addr: &str,
    cluster_id: Option<&str>,
) -> Result<ServerFacts, MysqlBackupError> {
    let connect_error = |source| MysqlBackupError::Connect {
        addr: addr.to_string(),
        source,
    };
    let mut conn = mysql_async::Conn::new(opts).await.map_err(connect_error)?;
    let row: Option<(String, String)> = conn
        .query_first("SELECT @@version, @@version_comment")
        .await
        .map_err(connect_error)?;
    let (version, comment) = row.ok_or_else(|| MysqlBackupError::Server {
        addr: addr.to_string(),
        query: "SELECT @@version",
        reason: "no row".into(),
    })?;
    let is_mariadb = |s: &str| s.to_ascii_lowercase().contains("mariadb");
    let flavor = if is_mariadb(&version) || is_mariadb(&comment) {
        ServerFlavor::Mariadb
    } else {
        ServerFlavor::Mysql
    };
    let system_id = primary_status::system_id(&mut conn, flavor, cluster_id)
        .await
        .map_err(|e| MysqlBackupError::Server {
            addr: addr.to_string(),
            query: "its identity",
            reason: format!("{e:#}"),
        })?;
    let _ = conn.disconnect().await;
    Ok(ServerFacts {
        flavor,
        version,
        system_id,
    })
}

/// Starts the tool, trying each of its program names.
fn spawn_tool(
    tool: BackupTool,
    args: &[std::ffi::OsString],
    id: &str,
) -> Result<tokio::process::Child, MysqlBackupError> {
    for program in tool.programs() {
        let spawned = tokio::process::Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // A cancelled or failed backup must not leave the tool running.
            .kill_on_drop(true)
            .spawn();
        match spawned {
            Ok(child) => return Ok(child),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(MysqlBackupError::Io {
                    id: id.to_string(),
                    what: format!("starting {program}"),
                    source: e,
                })
            }
        }
    }
    Err(MysqlBackupError::ToolMissing {
        tool: tool.name(),
        tried: tool.programs().join(", "),
        package: tool.package(),
    })
}

/// Reads up to one chunk from the tool's stdout; true once it ended.
async fn read_chunk(
    stdout: &mut (impl AsyncRead + Unpin),
    progress: &mut BackupProgress,
    cancel: &CancellationToken,
    id: &str,
) -> Result<(Bytes, bool), MysqlBackupError> {
    let mut buf = BytesMut::with_capacity(layout::CHUNK_BYTES);
    while buf.len() < layout::CHUNK_BYTES {
        let room = layout::CHUNK_BYTES - buf.len();
        let mut limited = (&mut buf).limit(room);
        let n = tokio::select! {
            r = stdout.read_buf(&mut limited) => r.map_err(|source| MysqlBackupError::Io {
                id: id.to_string(),
                what: "reading the backup tool's output".into(),
                source,
            })?,
            _ = cancel.cancelled() => return Err(MysqlBackupError::Cancelled { id: id.to_string() }),
        };
        if n == 0 {
            return Ok((buf.freeze(), true));
        }
        progress.advance(n as u64);
    }
    Ok((buf.freeze(), false))
}

/// Hashing 16 MiB is CPU work: off the runtime, in stream order.
async fn hash_more(
    mut hasher: blake3::Hasher,
    chunk: Bytes,
    id: &str,
) -> Result<(blake3::Hasher, Bytes), MysqlBackupError> {
    tokio::task::spawn_blocking(move || {
        hasher.update(&chunk);
        (hasher, chunk)
    })
    .await
    .map_err(|e| task_error(id, &format!("hashing: {e}")))
}

fn task_error(id: &str, reason: &str) -> MysqlBackupError {
    MysqlBackupError::Task {
        id: id.to_string(),
        reason: reason.to_string(),
    }
}

fn parse_gtid(
    flavor: ServerFlavor,
    text: &str,
    what: &'static str,
    id: &str,
) -> Result<GtidState, MysqlBackupError> {
    GtidState::parse_from(flavor, text).map_err(|reason| MysqlBackupError::BadGtid {
        id: id.to_string(),
        what,
        text: text.to_string(),
        flavor: GtidState::empty(flavor).flavor_name(),
        reason,
    })
}

/// Polls the binlog archive until its newest chunk's GTID state covers
/// `needed`.
async fn wait_for_binlog(
    archive: &Archive,
    needed: &GtidState,
    timeout: Duration,
    id: &str,
    cancel: &CancellationToken,
) -> Result<(), MysqlBackupError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let end = archived_binlog_end(archive).await?;
        if end
            .as_ref()
            .is_some_and(|archived| covers(archived, needed))
        {
            tracing::info!(gtid = %needed, archived = ?end.map(|s| s.to_string()), "binlog needed by the backup is archived");
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(MysqlBackupError::BinlogNotArchived {
                id: id.to_string(),
                gtid: needed.to_string(),
                archived: match end {
                    Some(s) => format!("GTID {s}"),
                    None => "nowhere: it holds no binlog".to_string(),
                },
            });
        }
        tokio::select! {
            _ = tokio::time::sleep(BINLOG_POLL) => {}
            _ = cancel.cancelled() => return Err(MysqlBackupError::Cancelled { id: id.to_string() }),
        }
    }
}

/// The GTID state after the newest archived chunk (newest epoch, then
/// file, then offset). A chunk counts once its index exists.
async fn archived_binlog_end(archive: &Archive) -> Result<Option<GtidState>, ArchiveError> {
    let newest = archive
        .list(INDEX_PREFIX)
        .await?
        .into_iter()
        .filter_map(|e| IndexKey::parse(&e.key).map(|k| (k, e.key)))
        .max_by(|a, b| a.0.stream_order(&b.0));
    let Some((_, key)) = newest else {
        return Ok(None);
    };
    let index = ChunkIndex::read(archive, &key).await?;
    GtidState::parse(&index.flavor, &index.gtid_pos_after)
        .map(Some)
        .map_err(|reason| ArchiveError::Corrupt {
            key,
            reason: format!("gtid_pos_after {:?}: {reason}", index.gtid_pos_after),
        })
}

/// True if every transaction up to `needed` is at or before `archived`.
fn covers(archived: &GtidState, needed: &GtidState) -> bool {
    match (archived, needed) {
        (GtidState::Mariadb(a), GtidState::Mariadb(n)) => n.iter().all(|g| a.contains(g)),
        (GtidState::Mysql(a), GtidState::Mysql(n)) => n.is_subset(a),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mariadb(text: &str) -> GtidState {
        GtidState::parse("mariadb", text).unwrap()
    }

    fn mysql(text: &str) -> GtidState {
        GtidState::parse("mysql", text).unwrap()
    }

    #[test]
    fn mariadb_coverage_is_per_domain() {
        assert!(covers(&mariadb("0-1-42"), &mariadb("0-1-42")));
        assert!(covers(&mariadb("0-1-43"), &mariadb("0-1-42")));
        assert!(!covers(&mariadb("0-1-41"), &mariadb("0-1-42")));
        assert!(!covers(&mariadb("0-1-50"), &mariadb("0-1-42,1-2-7")));
        assert!(covers(&mariadb("0-1-50,1-2-7"), &mariadb("0-1-42,1-2-7")));
        assert!(covers(&mariadb("0-1-1"), &mariadb("")), "nothing needed");
    }

    #[test]
    fn mysql_coverage_is_set_inclusion() {
        let u = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
        assert!(covers(
            &mysql(&format!("{u}:1-10")),
            &mysql(&format!("{u}:1-5"))
        ));
        assert!(!covers(
            &mysql(&format!("{u}:1-4")),
            &mysql(&format!("{u}:1-5"))
        ));
        assert!(!covers(&mariadb("0-1-5"), &mysql(&format!("{u}:1-5"))));
    }

    #[test]
    fn manifest_is_plain_json() {
        let m = XbstreamManifest {
            tool: "mariabackup".into(),
            tool_version: Some("mariabackup based on MariaDB server 10.11.19-MariaDB".into()),
            archive: XBSTREAM_ARCHIVE.into(),
            chunks: 2,
            bytes: 20 << 20,
            blake3: "ab".repeat(32),
            binlog_file: "mysql-bin.000001".into(),
            binlog_pos: 1095,
            gtid: "0-1-5".into(),
        };
        let json = serde_json::to_string(&m).unwrap();
        assert!(json.contains("\"gtid\":\"0-1-5\""), "{json}");
        assert_eq!(serde_json::from_str::<XbstreamManifest>(&json).unwrap(), m);
    }
}
