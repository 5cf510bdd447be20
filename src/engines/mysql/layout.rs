//! Where MySQL/MariaDB binlog lives in the archive.
//!
//! ```text
//! binlog/<EPOCH>/<FILE>/format                 the file's FORMAT_DESCRIPTION event
//! binlog/<EPOCH>/<FILE>/<FIRST>-<END>          events at [FIRST, END) of FILE, whole transactions only
//! binlog-index/<EPOCH>/<FILE>/<FIRST>          the chunk's index (plain JSON, see index.rs)
//! ```
//! EPOCH is the fencing epoch the shipper wrote under: each epoch has one
//! primary, and a promoted replica's binlog files have their own names and
//! offsets, which would otherwise collide with the old primary's. Offsets
//! and epochs are zero-padded decimal (20 digits) so key order is numeric.

use crate::archive::Epoch;
use std::cmp::Ordering;

pub const BINLOG_PREFIX: &str = "binlog/";
pub const INDEX_PREFIX: &str = "binlog-index/";

pub fn epoch_prefix(epoch: Epoch) -> String {
    format!("{BINLOG_PREFIX}{:020}/", epoch.0)
}

pub fn format_key(epoch: Epoch, file: &str) -> String {
    format!("{}{file}/format", epoch_prefix(epoch))
}

pub fn chunk_key(epoch: Epoch, file: &str, first: u64, end: u64) -> String {
    format!("{}{file}/{first:020}-{end:020}", epoch_prefix(epoch))
}

pub fn index_key(epoch: Epoch, file: &str, first: u64) -> String {
    format!("{INDEX_PREFIX}{:020}/{file}/{first:020}", epoch.0)
}

/// A chunk's place, as its index key names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexKey {
    pub epoch: Epoch,
    pub file: String,
    pub first: u64,
}

impl IndexKey {
    pub fn parse(key: &str) -> Option<IndexKey> {
        let mut parts = key.strip_prefix(INDEX_PREFIX)?.split('/');
        let (Some(epoch), Some(file), Some(first), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        Some(IndexKey {
            epoch: Epoch(padded(epoch)?),
            file: file.to_string(),
            first: padded(first)?,
        })
    }

    /// Stream order: epoch, then the file's sequence number, then offset.
    pub fn stream_order(&self, other: &IndexKey) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| compare_files(&self.file, &other.file))
            .then(self.first.cmp(&other.first))
    }
}

/// What a key under binlog/ denotes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BinlogKey {
    Format {
        epoch: Epoch,
        file: String,
    },
    Chunk {
        epoch: Epoch,
        file: String,
        first: u64,
        end: u64,
    },
    Other,
}

pub fn parse_key(key: &str) -> BinlogKey {
    let parsed = (|| {
        let mut parts = key.strip_prefix(BINLOG_PREFIX)?.split('/');
        let (Some(epoch), Some(file), Some(name), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let epoch = Epoch(padded(epoch)?);
        let file = file.to_string();
        if name == "format" {
            return Some(BinlogKey::Format { epoch, file });
        }
        let (first, end) = name.split_once('-')?;
        let (first, end) = (padded(first)?, padded(end)?);
        (first < end).then_some(BinlogKey::Chunk {
            epoch,
            file,
            first,
            end,
        })
    })();
    parsed.unwrap_or(BinlogKey::Other)
}

/// Binlog files of one server: "mysql-bin.000009" before "mysql-bin.000010"
/// and before "mysql-bin.1000000" (the suffix grows past six digits).
pub fn compare_files(a: &str, b: &str) -> Ordering {
    let split = |f: &str| -> (String, Option<u64>) {
        match f.rsplit_once('.') {
            Some((base, n)) => (base.to_string(), n.parse().ok()),
            None => (f.to_string(), None),
        }
    };
    let (base_a, n_a) = split(a);
    let (base_b, n_b) = split(b);
    base_a.cmp(&base_b).then(n_a.cmp(&n_b)).then(a.cmp(b))
}

fn padded(s: &str) -> Option<u64> {
    if s.len() != 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let e = Epoch(3);
        let chunk = chunk_key(e, "mysql-bin.000002", 256, 1024);
        assert_eq!(
            chunk,
            "binlog/00000000000000000003/mysql-bin.000002/00000000000000000256-00000000000000001024"
        );
        assert_eq!(
            parse_key(&chunk),
            BinlogKey::Chunk {
                epoch: e,
                file: "mysql-bin.000002".into(),
                first: 256,
                end: 1024
            }
        );
        assert_eq!(
            parse_key(&format_key(e, "mysql-bin.000002")),
            BinlogKey::Format {
                epoch: e,
                file: "mysql-bin.000002".into()
            }
        );
        let index = index_key(e, "mysql-bin.000002", 256);
        assert_eq!(
            index,
            "binlog-index/00000000000000000003/mysql-bin.000002/00000000000000000256"
        );
        assert_eq!(
            IndexKey::parse(&index),
            Some(IndexKey {
                epoch: e,
                file: "mysql-bin.000002".into(),
                first: 256
            })
        );
    }

    #[test]
    fn malformed_keys_are_other() {
        assert_eq!(
            parse_key("binlog/3/mysql-bin.000002/format"),
            BinlogKey::Other
        );
        assert_eq!(
            parse_key("binlog/00000000000000000003/f/00000000000000000009-00000000000000000009"),
            BinlogKey::Other,
            "empty range"
        );
        assert_eq!(IndexKey::parse("binlog-index/00000000000000000003/f"), None);
        assert_eq!(parse_key("wal/00000001/x"), BinlogKey::Other);
    }

    #[test]
    fn files_order_by_sequence_number() {
        assert_eq!(
            compare_files("mysql-bin.000009", "mysql-bin.000010"),
            Ordering::Less
        );
        assert_eq!(
            compare_files("mysql-bin.999999", "mysql-bin.1000000"),
            Ordering::Less
        );
        let at = |epoch, file: &str, first| IndexKey {
            epoch: Epoch(epoch),
            file: file.into(),
            first,
        };
        assert_eq!(
            at(2, "b.000001", 4).stream_order(&at(1, "b.000009", 900)),
            Ordering::Greater,
            "a newer epoch comes later whatever its file names"
        );
        assert_eq!(
            at(1, "b.000001", 900).stream_order(&at(1, "b.000002", 4)),
            Ordering::Less
        );
    }
}
