//! Restoring a backup's files: download its tar chunks in parallel, feed
//! them in order into a tar extractor, then check every file against the
//! backup's manifest. Shared by `standby init` and `restore`.

use super::layout;
use super::manifest::{self, BackupManifest, ManifestError, PathMap, Verified};
use super::record::{BackupArchive, BackupRecord};
use crate::archive::{Archive, ArchiveError};
use crate::restore::progress::Progress;
use futures::{StreamExt as _, TryStreamExt as _};
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt as _;

/// The in-memory pipe between downloads and the tar reader; downloaded
/// chunks wait in the `buffered` stream, this only smooths the hand-over.
const PIPE_BYTES: usize = 1 << 20;

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

    create_private_dir(data_dir).await?;
    let mut tar_bytes = 0;
    let mut tablespaces = HashMap::new();
    for tar in &record.archives {
        let dest = destination(record, tar, data_dir)?;
        if tar.location.is_some() {
            create_private_dir(&dest).await?;
            let oid = tar.name.trim_end_matches(".tar").to_string();
            tablespaces.insert(oid, dest.clone());
        }
        tar_bytes += extract_one(archive, record, tar, &dest, parallelism, progress).await?;
    }
    let manifest_path = data_dir.join("backup_manifest");
    tokio::fs::write(&manifest_path, &manifest_bytes)
        .await
        .map_err(|source| ExtractError::Write {
            path: manifest_path.display().to_string(),
            source,
        })?;

    let paths = PathMap {
        data_dir: data_dir.to_path_buf(),
        tablespaces: tablespaces.clone(),
    };
    let verified =
        tokio::task::spawn_blocking(move || manifest::verify_blocking(&manifest, &paths))
            .await
            .map_err(|e| ExtractError::Write {
                path: data_dir.display().to_string(),
                source: std::io::Error::other(e),
            })??;
    tracing::info!(
        backup = %record.id,
        files = verified.files,
        bytes = verified.bytes,
        "restored files match backup_manifest"
    );
    Ok(Extracted {
        tar_bytes,
        verified,
        tablespaces,
    })
}

/// One tar archive: a producer streams its chunks (downloaded `parallelism`
/// ahead, consumed in order) into a pipe the tar reader unpacks from.
async fn extract_one(
    archive: &Archive,
    record: &BackupRecord,
    tar: &BackupArchive,
    dest: &Path,
    parallelism: usize,
    progress: &Progress,
) -> Result<u64, ExtractError> {
    let (reader, mut writer) = tokio::io::duplex(PIPE_BYTES);
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
            if writer.write_all(&bytes).await.is_err() {
                // The extractor stopped; its error is the one to report.
                break;
            }
        }
        let _ = writer.shutdown().await;
        Ok::<u64, ArchiveError>(written)
    };
    let consume = async {
        let mut unpacker = tokio_tar::ArchiveBuilder::new(reader)
            .set_preserve_permissions(true)
            .set_preserve_mtime(true)
            .build();
        let result = unpacker.unpack(dest).await;
        // Drain what is left (the tar trailer) so the producer never blocks.
        if let Ok(mut rest) = unpacker.into_inner() {
            let _ = tokio::io::copy(&mut rest, &mut tokio::io::sink()).await;
        }
        result
    };
    let (produced, consumed) = tokio::join!(produce, consume);
    // A download failure ends the pipe early, which the tar reader may see
    // as a clean end: the archive error decides.
    let written = produced?;
    consumed.map_err(|source| ExtractError::Tar {
        backup: record.id.clone(),
        archive: tar.name.clone(),
        dest: dest.display().to_string(),
        source,
    })?;
    if written != tar.bytes {
        return Err(ExtractError::Size {
            backup: record.id.clone(),
            archive: tar.name.clone(),
            expected: tar.bytes,
            actual: written,
        });
    }
    Ok(written)
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
