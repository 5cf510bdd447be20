//! The steps standby init and restore share: check the target directories,
//! extract the backup into them (put back as found if that fails), append the
//! recovery settings.

use super::data_dir;
use super::error::RestoreError;
use super::progress::Progress;
use super::recovery_conf::RecoveryConf;
use crate::archive::Archive;
use crate::backup::restore::{self, Extracted};
use crate::backup::BackupRecord;
use std::path::{Path, PathBuf};

/// Every directory the backup writes into: the data dir, then tablespaces.
pub fn target_dirs(record: &BackupRecord, data_dir: &Path) -> Result<Vec<PathBuf>, RestoreError> {
    let mut dirs = Vec::new();
    for tar in &record.archives {
        dirs.push(restore::destination(record, tar, data_dir).map_err(RestoreError::from)?);
    }
    if !dirs.iter().any(|d| d == data_dir) {
        dirs.insert(0, data_dir.to_path_buf());
    }
    Ok(dirs)
}

/// Refuses non-empty targets (or empties them with `force`) before anything
/// is downloaded; on a failed extraction, empties them again so a half
/// restored directory is never mistaken for a usable one.
pub async fn extract_into(
    archive: &Archive,
    record: &BackupRecord,
    data_dir: &Path,
    force: bool,
    parallelism: usize,
) -> Result<Extracted, RestoreError> {
    let dirs = target_dirs(record, data_dir)?;
    let found = check_dirs(&dirs, force).await?;
    let progress = Progress::new(
        &format!("restoring backup {}", record.id),
        record.size_bytes,
    );
    let result = restore::extract(archive, record, data_dir, parallelism, &progress).await;
    progress.finish();
    match result {
        Ok(extracted) => Ok(extracted),
        Err(e) => {
            // Each dir was missing or empty before: put it back so.
            let _ = tokio::task::spawn_blocking(move || {
                for (d, f) in dirs.iter().zip(found) {
                    if let Err(e) = data_dir::put_back_blocking(d, f) {
                        tracing::warn!(dir = %d.display(), error = %e, "could not clean up after the failed restore");
                    }
                }
            })
            .await;
            Err(e.into())
        }
    }
}

async fn check_dirs(dirs: &[PathBuf], force: bool) -> Result<Vec<data_dir::Found>, RestoreError> {
    let dirs = dirs.to_vec();
    // All refused before any is emptied: bad input changes nothing.
    tokio::task::spawn_blocking(move || {
        if !force {
            for d in &dirs {
                data_dir::prepare_blocking(d, false)?;
            }
        }
        dirs.iter()
            .map(|d| data_dir::prepare_blocking(d, force))
            .collect()
    })
    .await
    .map_err(|e| RestoreError::Io {
        path: "(blocking task)".into(),
        source: std::io::Error::other(e),
    })?
}

pub async fn write_conf(
    conf: &RecoveryConf,
    data_dir: &Path,
    header: &str,
) -> Result<(), RestoreError> {
    let conf = conf.clone();
    let dir = data_dir.to_path_buf();
    let header = header.to_string();
    tokio::task::spawn_blocking(move || {
        conf.write_blocking(&dir, &header)
            .map_err(|source| RestoreError::Io {
                path: dir.display().to_string(),
                source,
            })
    })
    .await
    .map_err(|e| RestoreError::Io {
        path: "(blocking task)".into(),
        source: std::io::Error::other(e),
    })?
}
