//! A MySQL backup's xbstream, from the archive into a directory: chunks
//! download in parallel (bounded) and are fed in order into `mbstream -x`,
//! hashed on the way and checked against the backup's manifest. Each chunk
//! object is checked by the archive itself (a damaged one is refused, by
//! key, before its bytes reach mbstream).

use super::error::MysqlRestoreError;
use super::tool::{self, Tool};
use crate::archive::Archive;
use crate::backup::layout;
use crate::backup::mysql_take::{XbstreamManifest, XBSTREAM_ARCHIVE};
use crate::backup::BackupRecord;
use crate::restore::progress::Progress;
use futures::{StreamExt as _, TryStreamExt as _};
use std::path::Path;
use std::process::Stdio;
use tokio::io::AsyncWriteExt as _;

/// The backup's manifest, checked against its record.
pub async fn manifest(
    archive: &Archive,
    record: &BackupRecord,
) -> Result<XbstreamManifest, MysqlRestoreError> {
    let bad = |reason: String| MysqlRestoreError::BadBackup {
        backup: record.id.clone(),
        reason,
    };
    let key = layout::manifest_key(&record.id);
    let body = archive.get(&key).await?;
    let actual = blake3::hash(&body).to_hex().to_string();
    if actual != record.manifest_blake3 {
        return Err(bad(format!(
            "{key} has BLAKE3 {actual}, the record says {}",
            record.manifest_blake3
        )));
    }
    let manifest: XbstreamManifest = serde_json::from_slice(&body)
        .map_err(|e| bad(format!("{key} is not an xbstream manifest: {e}")))?;
    match record.archives.as_slice() {
        [a] if a.name == XBSTREAM_ARCHIVE && a.chunks == manifest.chunks => Ok(manifest),
        other => Err(bad(format!(
            "the record lists {:?}, the manifest one {XBSTREAM_ARCHIVE} of {} chunks",
            other.iter().map(|a| &a.name).collect::<Vec<_>>(),
            manifest.chunks
        ))),
    }
}

/// Unpacks the backup into `dir` (which must exist); returns the bytes fed.
pub async fn unpack(
    archive: &Archive,
    record: &BackupRecord,
    manifest: &XbstreamManifest,
    dir: &Path,
    parallelism: usize,
    progress: &Progress,
) -> Result<u64, MysqlRestoreError> {
    let program = tool::find(Tool::Mbstream)?;
    let mut child = tokio::process::Command::new(&program)
        .arg("-x")
        .arg("-C")
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| MysqlRestoreError::Io {
            what: "run",
            path: program.display().to_string(),
            source,
        })?;
    let stderr = child.stderr.take();
    let stderr_task = tokio::spawn(tool::read_tail(stderr));
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| MysqlRestoreError::Task("mbstream has no stdin".into()))?;

    let id = record.id.clone();
    let mut chunks = futures::stream::iter(0..manifest.chunks)
        .map(|n| {
            let key = layout::chunk_key(&id, XBSTREAM_ARCHIVE, n);
            async move { archive.get(&key).await }
        })
        .buffered(parallelism.max(1));
    let mut hasher = blake3::Hasher::new();
    let mut bytes = 0u64;
    let mut broken_pipe = None;
    while let Some(chunk) = chunks.try_next().await? {
        bytes += chunk.len() as u64;
        progress.advance(chunk.len() as u64);
        let chunk_for_hash = chunk.clone();
        hasher = tokio::task::spawn_blocking(move || {
            hasher.update(&chunk_for_hash);
            hasher
        })
        .await
        .map_err(|e| MysqlRestoreError::Task(format!("hashing: {e}")))?;
        if let Err(e) = stdin.write_all(&chunk).await {
            // mbstream died: its status and stderr say why.
            broken_pipe = Some(e);
            break;
        }
    }
    drop(chunks);
    drop(stdin);
    let status = child.wait().await.map_err(|source| MysqlRestoreError::Io {
        what: "wait for",
        path: program.display().to_string(),
        source,
    })?;
    let tail = stderr_task.await.unwrap_or_default();
    if !status.success() || broken_pipe.is_some() {
        return Err(MysqlRestoreError::ToolFailed {
            what: format!("mbstream -x -C {}", dir.display()),
            status: status.to_string(),
            tail,
            advice: "check free space and permissions in the data directory, then retry",
        });
    }
    let actual = hasher.finalize().to_hex().to_string();
    if bytes != manifest.bytes || actual != manifest.blake3 {
        return Err(MysqlRestoreError::BadBackup {
            backup: record.id.clone(),
            reason: format!(
                "its xbstream under {} is {bytes} bytes with BLAKE3 {actual}, the manifest says {} bytes with {}",
                layout::backup_prefix(&record.id),
                manifest.bytes,
                manifest.blake3
            ),
        });
    }
    Ok(bytes)
}
