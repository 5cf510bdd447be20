//! The index object of one binlog chunk: enough to find where a GTID
//! position or a point in time starts without reading the chunks.
//!
//! Plain JSON written with `put_metadata`, so promote and restore can read
//! it without the encryption key; it reveals GTIDs and times, never data.
//! A chunk counts as archived only once its index exists (both are in the
//! same cut; a kill between them leaves a chunk nobody reads).

use crate::archive::{Archive, ArchiveError, Epoch};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkIndex {
    pub epoch: Epoch,
    /// The binlog file on the primary of `epoch`.
    pub file: String,
    /// Offset of the chunk's first event in `file`.
    pub first_pos: u64,
    /// Offset just past its last event.
    pub end_pos: u64,
    /// "mariadb" or "mysql": how to read the GTID fields.
    pub flavor: String,
    /// The first and last GTID that start a transaction in the chunk.
    pub first_gtid: Option<String>,
    pub last_gtid: Option<String>,
    /// The primary's GTID state after the chunk's last event
    /// (@@gtid_binlog_pos / @@gtid_executed notation): where to resume.
    pub gtid_pos_after: String,
    /// Event timestamps (seconds since the Unix epoch) of the first and last event.
    pub first_ts: u32,
    pub last_ts: u32,
    pub events: u64,
    pub bytes: u64,
    /// The chunk object's key.
    pub chunk: String,
}

impl ChunkIndex {
    pub fn to_json(&self) -> Bytes {
        // Serializing plain fields cannot fail.
        Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }

    pub fn parse(key: &str, bytes: &[u8]) -> Result<ChunkIndex, ArchiveError> {
        let index: ChunkIndex =
            serde_json::from_slice(bytes).map_err(|e| ArchiveError::Corrupt {
                key: key.to_string(),
                reason: format!("not a binlog chunk index: {e}"),
            })?;
        if index.first_pos >= index.end_pos || index.end_pos - index.first_pos != index.bytes {
            return Err(ArchiveError::Corrupt {
                key: key.to_string(),
                reason: format!(
                    "chunk index covers [{}, {}) but says {} bytes",
                    index.first_pos, index.end_pos, index.bytes
                ),
            });
        }
        Ok(index)
    }

    pub async fn read(archive: &Archive, key: &str) -> Result<ChunkIndex, ArchiveError> {
        let bytes = archive.get(key).await?;
        ChunkIndex::parse(key, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ChunkIndex {
        ChunkIndex {
            epoch: Epoch(1),
            file: "mysql-bin.000001".into(),
            first_pos: 256,
            end_pos: 1024,
            flavor: "mariadb".into(),
            first_gtid: Some("0-1-1".into()),
            last_gtid: Some("0-1-5".into()),
            gtid_pos_after: "0-1-5".into(),
            first_ts: 1_700_000_000,
            last_ts: 1_700_000_003,
            events: 20,
            bytes: 768,
            chunk: "binlog/x".into(),
        }
    }

    #[test]
    fn round_trips_as_json() {
        let i = sample();
        assert_eq!(ChunkIndex::parse("k", &i.to_json()).unwrap(), i);
    }

    #[test]
    fn a_range_that_disagrees_with_its_size_is_corrupt() {
        let mut i = sample();
        i.bytes = 767;
        let err = ChunkIndex::parse("binlog-index/k", &i.to_json()).unwrap_err();
        assert!(err.to_string().contains("binlog-index/k"), "{err}");
        assert!(ChunkIndex::parse("k", b"{").is_err());
    }
}
