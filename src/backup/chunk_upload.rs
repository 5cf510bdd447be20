//! Backup chunks uploading in parallel, a bounded number at once.
//!
//! The caller waits for a free slot before it reads more from its source
//! (the server's socket, a backup tool's pipe), so a slow archive pushes
//! back on the source instead of growing memory: about (limit + 1) chunks
//! are in memory at any time. Engine-neutral: PostgreSQL's tar stream and
//! MySQL's xbstream both upload through it.

use crate::archive::{Archive, ArchiveError};
use bytes::Bytes;
use tokio::task::JoinSet;

#[derive(Debug, thiserror::Error)]
pub enum ChunkUploadError {
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error("backup {id}: a chunk upload task failed: {reason}; please report this")]
    Task { id: String, reason: String },
}

/// Chunk uploads of one backup in flight, at most `limit` at once.
pub struct ChunkUploads {
    archive: Archive,
    id: String,
    limit: usize,
    tasks: JoinSet<Result<(), ArchiveError>>,
}

impl ChunkUploads {
    pub fn new(archive: &Archive, id: &str, limit: usize) -> ChunkUploads {
        ChunkUploads {
            archive: archive.clone(),
            id: id.to_string(),
            limit: limit.max(1),
            tasks: JoinSet::new(),
        }
    }

    /// The backup the chunks belong to.
    pub fn backup_id(&self) -> &str {
        &self.id
    }

    /// Starts one upload, first waiting for a free slot: while we wait the
    /// caller does not read from its source, which backs up.
    pub async fn spawn(&mut self, key: String, chunk: Bytes) -> Result<(), ChunkUploadError> {
        while self.tasks.len() >= self.limit {
            self.join_one().await?;
        }
        let archive = self.archive.clone();
        self.tasks.spawn(async move {
            tracing::debug!(%key, bytes = chunk.len(), "uploading chunk");
            archive.put(&key, chunk).await.map(|_| ())
        });
        Ok(())
    }

    /// Waits for every upload started so far; the first failure wins.
    pub async fn drain(&mut self) -> Result<(), ChunkUploadError> {
        while !self.tasks.is_empty() {
            self.join_one().await?;
        }
        Ok(())
    }

    async fn join_one(&mut self) -> Result<(), ChunkUploadError> {
        match self.tasks.join_next().await {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(e))) => Err(e.into()),
            Some(Err(e)) => Err(ChunkUploadError::Task {
                id: self.id.clone(),
                reason: e.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::ArchiveSettings;

    #[tokio::test]
    async fn every_chunk_lands_under_its_key_with_a_limit_of_one() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}/archive", dir.path().display());
        let archive = Archive::open(&ArchiveSettings::new(url)).unwrap();
        let mut uploads = ChunkUploads::new(&archive, "b1", 1);
        for n in 0..3u8 {
            uploads
                .spawn(format!("backups/b1/data/x/{n}"), Bytes::from(vec![n; 10]))
                .await
                .unwrap();
        }
        uploads.drain().await.unwrap();
        for n in 0..3u8 {
            let got = archive
                .get(&format!("backups/b1/data/x/{n}"))
                .await
                .unwrap();
            assert_eq!(got.to_vec(), vec![n; 10]);
        }
    }
}
