//! Restoring a backup's files: download its tar chunks in parallel and
//! feed them, in order, to a tar parser on a blocking thread whose writer
//! threads check every file against the backup's manifest as they write it
//! and fsync it ([`unpack`]). Success means every file and directory is
//! durable and matches the manifest. Shared by `standby init` and `restore`.
//!
//! Memory: up to `parallelism` chunks downloading plus two waiting
//! (≤ 16 MiB each, [`layout::CHUNK_BYTES`]), plus the extraction's bound
//! (about `(3 × parallelism + 3)` MiB, see [`unpack`]).

mod chunk_reader;
mod file_writer;
mod unpack;

use super::layout;
use super::manifest::{BackupManifest, ManifestError, ManifestIndex, Verified};
use super::record::{BackupArchive, BackupRecord};
use crate::archive::{Archive, ArchiveError};
use crate::restore::progress::Progress;
use bytes::Bytes;
use chunk_reader::ChunkReader;
use futures::{StreamExt as _, TryStreamExt as _};
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use unpack::{Target, UnpackError};

/// Downloaded chunks waiting for the parser beyond the one it reads.
const CHUNKS_QUEUED: usize = 1;

#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error("cannot extract {archive} of backup {backup} into {dest}: {source}; check free space and permissions, then restore into an empty directory")]
    Tar {
        backup: String,
        archive: String,
        dest: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{archive} of backup {backup} holds {actual} bytes, the backup record says {expected}; the backup is incomplete: restore from another backup")]
    Size {
        backup: String,
        archive: String,
        expected: u64,
        actual: u64,
    },
    #[error("tablespace {archive} of backup {backup} has location {location:?}, which is not an absolute path; the backup record is damaged: restore from another backup")]
    BadLocation {
        backup: String,
        archive: String,
        location: String,
    },
    #[error("entry {entry} of {archive} of backup {backup} cannot be restored: {reason}; the backup is damaged: restore from another backup")]
    Entry {
        backup: String,
        archive: String,
        entry: String,
        reason: String,
    },
    #[error("backup_manifest of backup {backup} has BLAKE3 {actual}, the backup record says {expected}; restore from another backup")]
    ManifestChecksum {
        backup: String,
        expected: String,
        actual: String,
    },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("cannot write {path}: {source}; check free space and permissions")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// What an extraction produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    /// Uncompressed tar bytes downloaded.
    pub tar_bytes: u64,
    /// Files checked against backup_manifest.
    pub verified: Verified,
    /// Tablespace oid → where it was extracted.
    pub tablespaces: HashMap<String, PathBuf>,
}

/// Where an archive of the backup goes: base.tar into the data dir, a
/// tablespace archive to its recorded location.
pub fn destination(
    record: &BackupRecord,
    archive: &BackupArchive,
    data_dir: &Path,
) -> Result<PathBuf, ExtractError> {
    match &archive.location {
        None => Ok(data_dir.to_path_buf()),
        Some(loc) if Path::new(loc).is_absolute() => Ok(PathBuf::from(loc)),
        Some(loc) => Err(ExtractError::BadLocation {
            backup: record.id.clone(),
            archive: archive.name.clone(),
            location: loc.clone(),
        }),
    }
}

/// Downloads, extracts and verifies backup `record` into `data_dir` (mode
/// 0700, created if missing). `archive` must be bound to the backup's
/// cluster. Ownership is left to the caller. The first archive error (a
/// corrupt chunk, named by key) stops everything.
pub async fn extract(
    archive: &Archive,
    record: &BackupRecord,
    data_dir: &Path,
    parallelism: usize,
    progress: &Progress,
) -> Result<Extracted, ExtractError> {
    // The manifest first: a damaged one fails before gigabytes move.
    let manifest_bytes = archive.get(&layout::manifest_key(&record.id)).await?;
    let actual = blake3::hash(&manifest_bytes).to_hex().to_string();
    if !actual.eq_ignore_ascii_case(&record.manifest_blake3) {
        return Err(ExtractError::ManifestChecksum {
            backup: record.id.clone(),
            expected: record.manifest_blake3.clone(),
            actual,
        });
    }
    let manifest = BackupManifest::parse(&record.id, &manifest_bytes)?;
    manifest.check_system(&record.system_id)?;
    let mut index = ManifestIndex::new(manifest);

    create_private_dir(data_dir).await?;
    let mut tar_bytes = 0;
    let mut tablespaces = HashMap::new();
    for tar in &record.archives {
        let dest = destination(record, tar, data_dir)?;
        let manifest_prefix = if tar.location.is_some() {
            create_private_dir(&dest).await?;
            let oid = tar.name.trim_end_matches(".tar").to_string();
            tablespaces.insert(oid.clone(), dest.clone());
            format!("pg_tblspc/{oid}/")
        } else {
            String::new()
        };
        let target = Target {
            dest,
            manifest_prefix,
            writers: parallelism,
        };
        let (bytes, returned) =
            extract_one(archive, record, tar, target, index, parallelism, progress).await?;
        tar_bytes += bytes;
        index = returned;
    }
    let verified = index.finish(|path| resolve(path, data_dir, &tablespaces))?;
    write_manifest_durably(data_dir, manifest_bytes, &tablespaces).await?;
    tracing::info!(
        backup = %record.id,
        files = verified.files,
        bytes = verified.bytes,
        "restored files match backup_manifest and are fsynced"
    );
    Ok(Extracted {
        tar_bytes,
        verified,
        tablespaces,
    })
}

/// Where a manifest path was restored: `pg_tblspc/<oid>/…` in its
/// tablespace's location, everything else under the data directory.
fn resolve(
    manifest_path: &str,
    data_dir: &Path,
    tablespaces: &HashMap<String, PathBuf>,
) -> PathBuf {
    if let Some((oid, inner)) = manifest_path
        .strip_prefix("pg_tblspc/")
        .and_then(|rest| rest.split_once('/'))
    {
        if let Some(location) = tablespaces.get(oid) {
            return location.join(inner);
        }
    }
    data_dir.join(manifest_path)
}

/// One tar archive: its chunks download `parallelism` ahead and reach the
/// blocking unpacker in order; returns the tar bytes and `index` back.
async fn extract_one(
    archive: &Archive,
    record: &BackupRecord,
    tar: &BackupArchive,
    target: Target,
    index: ManifestIndex,
    parallelism: usize,
    progress: &Progress,
) -> Result<(u64, ManifestIndex), ExtractError> {
    let (chunks_tx, chunks_rx) = tokio::sync::mpsc::channel::<Bytes>(CHUNKS_QUEUED);
    let keys: Vec<String> = (0..tar.chunks)
        .map(|n| layout::chunk_key(&record.id, &tar.name, n))
        .collect();
    let produce = async move {
        let mut chunks = futures::stream::iter(keys)
            .map(|key| async move { archive.get(&key).await.map(|bytes| (key, bytes)) })
            .buffered(parallelism.max(1));
        let mut written = 0u64;
        while let Some((key, bytes)) = chunks.try_next().await? {
            tracing::debug!(%key, bytes = bytes.len(), "chunk downloaded");
            written += bytes.len() as u64;
            progress.advance(bytes.len() as u64);
            if chunks_tx.send(bytes).await.is_err() {
                // The unpacker stopped; its error is the one to report.
                break;
            }
        }
        Ok::<u64, ArchiveError>(written)
    };
    let dest = target.dest.clone();
    let consume = tokio::task::spawn_blocking(move || {
        let mut index = index;
        let unpacked = unpack::unpack_blocking(ChunkReader::new(chunks_rx), &target, &mut index);
        (unpacked, index)
    });
    let (produced, consumed) = tokio::join!(produce, consume);
    // A download failure ends the stream early, which the parser may see
    // as a clean end or a truncated file: the archive error decides.
    let written = produced?;
    let (unpacked, index) = consumed.map_err(|e| ExtractError::Write {
        path: dest.display().to_string(),
        source: std::io::Error::other(e),
    })?;
    unpacked.map_err(|e| match e {
        UnpackError::Tar(source) => ExtractError::Tar {
            backup: record.id.clone(),
            archive: tar.name.clone(),
            dest: dest.display().to_string(),
            source,
        },
        UnpackError::Entry { entry, reason } => ExtractError::Entry {
            backup: record.id.clone(),
            archive: tar.name.clone(),
            entry,
            reason,
        },
        UnpackError::Write { path, source } => ExtractError::Write { path, source },
        UnpackError::Manifest(m) => ExtractError::Manifest(m),
    })?;
    if written != tar.bytes {
        return Err(ExtractError::Size {
            backup: record.id.clone(),
            archive: tar.name.clone(),
            expected: tar.bytes,
            actual: written,
        });
    }
    Ok((written, index))
}

/// backup_manifest into the data dir, then the fsyncs that make the
/// restored trees' own names durable: the data dir (which gained
/// backup_manifest) and the parents of it and of every tablespace.
async fn write_manifest_durably(
    data_dir: &Path,
    manifest_bytes: Bytes,
    tablespaces: &HashMap<String, PathBuf>,
) -> Result<(), ExtractError> {
    let data_dir = data_dir.to_path_buf();
    let roots: Vec<PathBuf> = std::iter::once(data_dir.clone())
        .chain(tablespaces.values().cloned())
        .collect();
    tokio::task::spawn_blocking(move || {
        let manifest_path = data_dir.join("backup_manifest");
        let write_err = |source| ExtractError::Write {
            path: manifest_path.display().to_string(),
            source,
        };
        let file = std::fs::File::create(&manifest_path).map_err(write_err)?;
        std::io::Write::write_all(&mut &file, &manifest_bytes).map_err(write_err)?;
        file.sync_all().map_err(write_err)?;
        let mut dirs = vec![data_dir.clone()];
        dirs.extend(
            roots
                .iter()
                .filter_map(|r| r.parent().map(Path::to_path_buf)),
        );
        for dir in dirs {
            unpack::sync_dir(&dir).map_err(|source| ExtractError::Write {
                path: dir.display().to_string(),
                source,
            })?;
        }
        Ok(())
    })
    .await
    .map_err(|e| ExtractError::Write {
        path: "(blocking task)".into(),
        source: std::io::Error::other(e),
    })?
}

async fn create_private_dir(dir: &Path) -> Result<(), ExtractError> {
    let err = |source| ExtractError::Write {
        path: dir.display().to_string(),
        source,
    };
    tokio::fs::create_dir_all(dir).await.map_err(err)?;
    // PostgreSQL refuses a data directory others can read.
    tokio::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .await
        .map_err(err)
}
