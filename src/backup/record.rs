//! The backup record: what a backup is and what restoring it needs.

use super::layout;
use crate::archive::{Archive, ArchiveError};
use crate::engine::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One tar archive of the backup (base, or one per tablespace).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BackupArchive {
    /// The server's name for it: "base.tar", or "<oid>.tar" for a tablespace.
    pub name: String,
    /// Tablespace location on the primary; None for the base archive.
    pub location: Option<String>,
    pub chunks: u32,
    /// Uncompressed tar bytes.
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BackupRecord {
    pub id: String,
    pub label: String,
    pub engine: Engine,
    pub system_id: String,
    /// Engine notation: "0/2000028" for PostgreSQL.
    pub start_position: String,
    pub stop_position: String,
    pub timeline: u32,
    pub start_time: DateTime<Utc>,
    pub stop_time: DateTime<Utc>,
    /// Uncompressed bytes of all archives.
    pub size_bytes: u64,
    pub archives: Vec<BackupArchive>,
    /// BLAKE3 of the backup_manifest object's payload, hex.
    pub manifest_blake3: String,
    pub server_version: Option<String>,
}

impl BackupRecord {
    /// Written last, with a conditional create: the backup now counts.
    pub async fn commit(&self, archive: &Archive) -> Result<(), ArchiveError> {
        let body = serde_json::to_vec_pretty(self).expect("backup record serializes");
        archive
            .put_metadata(&layout::record_key(&self.id), body.into())
            .await
            .map(|_| ())
    }

    /// Every committed backup, oldest first.
    pub async fn list(archive: &Archive) -> Result<Vec<BackupRecord>, ArchiveError> {
        let mut out = Vec::new();
        for e in archive.list(layout::BACKUPS_PREFIX).await? {
            if !e.key.ends_with("/record") {
                continue;
            }
            out.push(Self::parse(&e.key, &archive.get(&e.key).await?)?);
        }
        out.sort_by(|a, b| a.start_time.cmp(&b.start_time).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    pub async fn load(archive: &Archive, id: &str) -> Result<BackupRecord, ArchiveError> {
        let key = layout::record_key(id);
        Self::parse(&key, &archive.get(&key).await?)
    }

    fn parse(key: &str, bytes: &[u8]) -> Result<BackupRecord, ArchiveError> {
        serde_json::from_slice(bytes).map_err(|e| ArchiveError::Corrupt {
            key: key.to_string(),
            reason: format!("backup record is not valid: {e}"),
        })
    }
}
