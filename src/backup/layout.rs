//! Where a backup lives in the archive.
//!
//! ```text
//! backups/<ID>/data/<ARCHIVE>/<CHUNK>   the server's tar stream, cut into chunks (8 digits)
//! backups/<ID>/backup_manifest          the server's backup manifest (JSON)
//! backups/<ID>/record                   written last: the backup counts only once it exists
//! ```
//! IDs sort by start time (`20261127T165000Z`), so listing order is age order.

pub const BACKUPS_PREFIX: &str = "backups/";

/// Uncompressed size of one tar chunk. Chunks upload in parallel; memory
/// is bounded by chunk size × parallelism.
pub const CHUNK_BYTES: usize = 16 << 20;

pub fn backup_prefix(id: &str) -> String {
    format!("{BACKUPS_PREFIX}{id}/")
}

pub fn record_key(id: &str) -> String {
    format!("{BACKUPS_PREFIX}{id}/record")
}

pub fn manifest_key(id: &str) -> String {
    format!("{BACKUPS_PREFIX}{id}/backup_manifest")
}

/// `archive` is the server's archive name, e.g. "base.tar" or "16384.tar".
pub fn chunk_key(id: &str, archive: &str, chunk: u32) -> String {
    format!("{BACKUPS_PREFIX}{id}/data/{archive}/{chunk:08}")
}

/// A new backup id from its start time.
pub fn new_id(start: chrono::DateTime<chrono::Utc>) -> String {
    start.format("%Y%m%dT%H%M%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert_eq!(
            chunk_key("20261127T165000Z", "base.tar", 3),
            "backups/20261127T165000Z/data/base.tar/00000003"
        );
        assert_eq!(
            record_key("20261127T165000Z"),
            "backups/20261127T165000Z/record"
        );
        let t = chrono::DateTime::parse_from_rfc3339("2026-11-27T16:50:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(new_id(t), "20261127T165000Z");
    }
}
