//! The archive as a restore reads it: bound to its cluster (so every chunk
//! and segment is checked to belong to it), and its committed backups.

use super::error::RestoreError;
use crate::archive::{Archive, ArchiveError};
use crate::backup::BackupRecord;

/// `archive` bound to the cluster its record names.
pub async fn bind(archive: &Archive) -> Result<Archive, RestoreError> {
    match archive.read_cluster().await? {
        Some(rec) => Ok(archive.bind_cluster(rec.tag())),
        None => Err(RestoreError::Uninitialized {
            url: archive.url().to_string(),
        }),
    }
}

/// Every committed backup, oldest first; just `id` when given.
pub async fn backups(
    archive: &Archive,
    id: Option<&str>,
) -> Result<Vec<BackupRecord>, RestoreError> {
    match id {
        Some(id) => match BackupRecord::load(archive, id).await {
            Ok(record) => Ok(vec![record]),
            Err(ArchiveError::NotFound { .. }) => {
                Err(RestoreError::UnknownBackup { id: id.into() })
            }
            Err(e) => Err(e.into()),
        },
        None => {
            let all = BackupRecord::list(archive).await?;
            if all.is_empty() {
                return Err(RestoreError::NoBackup);
            }
            Ok(all)
        }
    }
}
