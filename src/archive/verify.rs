//! `archive verify`: reading objects back and checking every byte.

use futures::StreamExt;

use super::cluster::ClusterTag;
use super::error::ArchiveError;
use super::handle::Archive;
use super::object::{Cipher, Codec};

/// How many objects [`Archive::verify_all`] downloads at once.
const VERIFY_CONCURRENCY: usize = 4;

/// What a verified object's header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSummary {
    pub key: String,
    /// Bytes in the store, header included.
    pub stored_size: u64,
    /// Bytes of the payload after decryption and decompression.
    pub payload_size: u64,
    pub compressed: bool,
    /// Hex key id when encrypted.
    pub encryption_key_id: Option<String>,
    /// `None` for objects written by an unbound handle.
    pub cluster: Option<ClusterTag>,
    /// Hex of the header checksum (keyed when encrypted).
    pub checksum: String,
}

/// The outcome of verifying every object under a prefix.
#[derive(Debug, Default)]
pub struct VerifyReport {
    /// Objects that verified cleanly.
    pub objects: u64,
    /// Their stored bytes.
    pub bytes: u64,
    /// Objects that failed, sorted by key.
    pub faults: Vec<(String, ArchiveError)>,
}

impl VerifyReport {
    pub fn is_clean(&self) -> bool {
        self.faults.is_empty()
    }
}

impl Archive {
    /// Downloads `key` and checks header, size, cluster tag, cipher and checksum.
    pub async fn verify_object(&self, key: &str) -> Result<ObjectSummary, ArchiveError> {
        let (header, _payload, stored_size) = self.get_verified(key).await?;
        Ok(ObjectSummary {
            key: key.to_string(),
            stored_size,
            payload_size: header.payload_len,
            compressed: header.codec != Codec::None,
            encryption_key_id: (header.cipher != Cipher::None).then(|| hex::encode(header.key_id)),
            cluster: (header.cluster_tag != 0).then_some(ClusterTag(header.cluster_tag)),
            checksum: header.checksum_hex(),
        })
    }

    /// Verifies every object whose key starts with `prefix`. Per-object
    /// failures are collected in the report; only a failing listing is an error.
    pub async fn verify_all(&self, prefix: &str) -> Result<VerifyReport, ArchiveError> {
        let entries = self.list(prefix).await?;
        let results: Vec<(String, Result<ObjectSummary, ArchiveError>)> =
            futures::stream::iter(entries)
                .map(|entry| async move {
                    let result = self.verify_object(&entry.key).await;
                    (entry.key, result)
                })
                .buffered(VERIFY_CONCURRENCY)
                .collect()
                .await;
        let mut report = VerifyReport::default();
        for (key, result) in results {
            match result {
                Ok(summary) => {
                    report.objects += 1;
                    report.bytes += summary.stored_size;
                }
                // Deleted since the listing (a superseded object): not a fault.
                Err(ArchiveError::NotFound { .. }) => {
                    tracing::debug!(key, "object vanished during verify");
                }
                Err(fault) => report.faults.push((key, fault)),
            }
        }
        Ok(report)
    }
}
