//! The cluster record: which database system an archive belongs to.
//!
//! Written once at key [`CLUSTER_KEY`] as plain JSON metadata, so the owner of
//! an archive is readable without the encryption key. Every other object is
//! stamped with the [`ClusterTag`] derived from it and checked on read.

use crate::engine::Engine;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::error::ArchiveError;
use super::handle::{Archive, CreateOutcome};

/// Where the cluster record lives, relative to the archive root.
pub const CLUSTER_KEY: &str = "cluster";

/// The archive layout version this instarec writes and understands.
pub const FORMAT_VERSION: u32 = 1;

/// Identity of the database system that owns an archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterRecord {
    pub engine: Engine,
    /// PostgreSQL's system identifier, or MySQL's server_uuid.
    pub system_id: String,
    pub format_version: u32,
    pub created_at: DateTime<Utc>,
}

impl ClusterRecord {
    /// A record for a new archive, created now at the current format version.
    pub fn new(engine: Engine, system_id: &str) -> Self {
        ClusterRecord {
            engine,
            system_id: system_id.to_string(),
            format_version: FORMAT_VERSION,
            created_at: Utc::now(),
        }
    }

    pub fn tag(&self) -> ClusterTag {
        ClusterTag::of(self.engine, &self.system_id)
    }

    fn same_system(&self, engine: Engine, system_id: &str) -> bool {
        self.engine == engine && self.system_id == system_id
    }

    fn describe(&self) -> String {
        format!("{} system {}", self.engine, self.system_id)
    }
}

/// The 8-byte cluster identity stamped into every object header. 0 means
/// "unbound" (written by an archive handle not bound to a cluster).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClusterTag(pub u64);

impl ClusterTag {
    /// First 8 bytes (little-endian) of BLAKE3 over "<engine>:<system_id>".
    pub fn of(engine: Engine, system_id: &str) -> Self {
        let hash = blake3::hash(format!("{engine}:{system_id}").as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&hash.as_bytes()[..8]);
        // 0 is reserved for "unbound"; a real system hashing to it gets 1 instead.
        ClusterTag(u64::from_le_bytes(first).max(1))
    }
}

impl fmt::Display for ClusterTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl Archive {
    /// The archive's cluster record, if it has one.
    pub async fn read_cluster(&self) -> Result<Option<ClusterRecord>, ArchiveError> {
        // Read unbound: a record of another cluster must surface as ClusterMismatch
        // from the caller's comparison, not as a foreign-object fault.
        let Some(body) = self.unbound().get_opt(CLUSTER_KEY).await? else {
            return Ok(None);
        };
        let record: ClusterRecord =
            serde_json::from_slice(&body).map_err(|e| ArchiveError::Corrupt {
                key: CLUSTER_KEY.to_string(),
                reason: format!("cluster record is not valid JSON: {e}"),
            })?;
        if record.format_version > FORMAT_VERSION {
            return Err(ArchiveError::NewerFormat {
                what: format!("archive {}", self.url()),
                found: record.format_version,
                supported: FORMAT_VERSION,
            });
        }
        Ok(Some(record))
    }

    /// Writes the cluster record once. Re-initialising for the same system is a
    /// no-op returning the stored record; another system gets ClusterMismatch.
    pub async fn init_cluster(
        &self,
        record: &ClusterRecord,
    ) -> Result<ClusterRecord, ArchiveError> {
        if record.format_version > FORMAT_VERSION {
            return Err(ArchiveError::NewerFormat {
                what: "the cluster record to write".to_string(),
                found: record.format_version,
                supported: FORMAT_VERSION,
            });
        }
        let body = serde_json::to_vec_pretty(record).map_err(|e| ArchiveError::Task {
            key: CLUSTER_KEY.to_string(),
            reason: format!("cannot serialise cluster record: {e}"),
        })?;
        let stamped = self.bind_cluster(record.tag());
        match stamped.create_metadata(CLUSTER_KEY, body.into()).await? {
            CreateOutcome::Created => Ok(record.clone()),
            CreateOutcome::Exists => {
                let existing = self
                    .read_cluster()
                    .await?
                    .ok_or_else(|| ArchiveError::Corrupt {
                        key: CLUSTER_KEY.to_string(),
                        reason:
                            "the store reported the cluster record exists, then that it does not"
                                .to_string(),
                    })?;
                self.check_same_system(&existing, record.engine, &record.system_id)?;
                Ok(existing)
            }
        }
    }

    /// Reads the cluster record and binds to it, so every object read
    /// afterwards is checked to be that cluster's. An archive without one
    /// is `NoClusterRecord`.
    pub async fn bound(&self) -> Result<(Archive, ClusterRecord), ArchiveError> {
        let record = self
            .read_cluster()
            .await?
            .ok_or_else(|| ArchiveError::NoClusterRecord {
                url: self.url().to_string(),
            })?;
        Ok((self.bind_cluster(record.tag()), record))
    }

    /// Binds this handle to the archive of `engine`/`system_id`, creating the
    /// cluster record if the archive has none.
    pub async fn open_cluster(
        &self,
        engine: Engine,
        system_id: &str,
    ) -> Result<(Archive, ClusterRecord), ArchiveError> {
        let record = match self.read_cluster().await? {
            Some(existing) => {
                self.check_same_system(&existing, engine, system_id)?;
                existing
            }
            None => {
                self.init_cluster(&ClusterRecord::new(engine, system_id))
                    .await?
            }
        };
        Ok((self.bind_cluster(record.tag()), record))
    }

    fn check_same_system(
        &self,
        existing: &ClusterRecord,
        engine: Engine,
        system_id: &str,
    ) -> Result<(), ArchiveError> {
        if existing.same_system(engine, system_id) {
            return Ok(());
        }
        Err(ArchiveError::ClusterMismatch {
            url: self.url().to_string(),
            archive: existing.describe(),
            ours: format!("{engine} system {system_id}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_depends_on_engine_and_system() {
        let a = ClusterTag::of(Engine::Postgres, "7263");
        assert_eq!(a, ClusterTag::of(Engine::Postgres, "7263"));
        assert_ne!(a, ClusterTag::of(Engine::Mysql, "7263"));
        assert_ne!(a, ClusterTag::of(Engine::Postgres, "7301"));
        assert_ne!(a.0, 0);
    }

    #[test]
    fn record_json_uses_lowercase_engine() {
        let record = ClusterRecord {
            engine: Engine::Mysql,
            system_id: "3e11fa47-71ca-11e1-9e33-c80aa9429562".to_string(),
            format_version: 1,
            created_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        };
        let json = serde_json::to_string(&record).unwrap();
        assert_eq!(
            json,
            r#"{"engine":"mysql","system_id":"3e11fa47-71ca-11e1-9e33-c80aa9429562","format_version":1,"created_at":"2023-11-14T22:13:20Z"}"#
        );
        assert_eq!(
            serde_json::from_str::<ClusterRecord>(&json).unwrap(),
            record
        );
    }
}
