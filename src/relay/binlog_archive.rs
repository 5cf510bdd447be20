//! The relay's read side of the archive: chunk listings in stream order,
//! chunk indexes, each file's FORMAT_DESCRIPTION, and a chunk's events,
//! each checked (size, and CRC32 when the file has checksums) before a
//! replica sees it.

use super::error::RelayServeError;
use crate::archive::{Archive, Epoch};
use crate::engines::mysql::index::ChunkIndex;
use crate::engines::mysql::layout::{self, IndexKey};
use bytes::Bytes;
use instarec_mysql::format_description_event::FormatDescriptionEvent;
use instarec_mysql::{BinlogChecksum, EventHeader, RawEvent, EVENT_HEADER_LEN};

/// A file's FORMAT_DESCRIPTION, checked, with what it says.
#[derive(Debug, Clone)]
pub struct FileFormat {
    pub event: RawEvent,
    pub parsed: FormatDescriptionEvent,
}

#[derive(Debug, Clone)]
pub struct BinlogArchive {
    archive: Archive,
}

impl BinlogArchive {
    pub fn new(archive: Archive) -> Self {
        BinlogArchive { archive }
    }

    /// Every chunk, in stream order.
    pub async fn chunks(&self) -> Result<Vec<IndexKey>, RelayServeError> {
        self.chunks_under(layout::INDEX_PREFIX).await
    }

    /// The chunks of one file, in order.
    pub async fn chunks_of(
        &self,
        epoch: Epoch,
        file: &str,
    ) -> Result<Vec<IndexKey>, RelayServeError> {
        let prefix = format!("{}{:020}/{file}/", layout::INDEX_PREFIX, epoch.0);
        self.chunks_under(&prefix).await
    }

    async fn chunks_under(&self, prefix: &str) -> Result<Vec<IndexKey>, RelayServeError> {
        let mut keys: Vec<IndexKey> = self
            .archive
            .list(prefix)
            .await?
            .iter()
            .filter_map(|e| IndexKey::parse(&e.key))
            .collect();
        keys.sort_by(|a, b| a.stream_order(b));
        Ok(keys)
    }

    pub async fn index(&self, key: &IndexKey) -> Result<ChunkIndex, RelayServeError> {
        let object = layout::index_key(key.epoch, &key.file, key.first);
        Ok(ChunkIndex::read(&self.archive, &object).await?)
    }

    pub async fn format(&self, epoch: Epoch, file: &str) -> Result<FileFormat, RelayServeError> {
        let key = layout::format_key(epoch, file);
        let bytes = self.archive.get(&key).await?;
        let bad = |reason: String| RelayServeError::BadEvent {
            key: key.clone(),
            offset: 0,
            reason,
        };
        let event = RawEvent::parse(bytes).map_err(|e| bad(e.to_string()))?;
        let parsed = FormatDescriptionEvent::from_event(&event).map_err(|e| bad(e.to_string()))?;
        Ok(FileFormat { event, parsed })
    }

    /// The chunk's events, split and checked off the runtime.
    pub async fn events(
        &self,
        index: &ChunkIndex,
        checksum: BinlogChecksum,
    ) -> Result<Vec<RawEvent>, RelayServeError> {
        let bytes = self.archive.get(&index.chunk).await?;
        let key = index.chunk.clone();
        tokio::task::spawn_blocking(move || split_events(&key, bytes, checksum))
            .await
            .map_err(|e| RelayServeError::BadEvent {
                key: index.chunk.clone(),
                offset: 0,
                reason: format!("checking task failed: {e}"),
            })?
    }
}

/// Splits a chunk into its events: each must fit and pass its CRC32.
pub fn split_events(
    key: &str,
    bytes: Bytes,
    checksum: BinlogChecksum,
) -> Result<Vec<RawEvent>, RelayServeError> {
    let mut events = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let bad = |reason: String| RelayServeError::BadEvent {
            key: key.to_string(),
            offset: at,
            reason,
        };
        let header = EventHeader::parse(&bytes[at..]).map_err(|e| bad(e.to_string()))?;
        let size = header.event_size as usize;
        if size < EVENT_HEADER_LEN || at + size > bytes.len() {
            return Err(bad(format!(
                "event_size {size} runs past the chunk's {} bytes",
                bytes.len()
            )));
        }
        let event = RawEvent::parse(bytes.slice(at..at + size)).map_err(|e| bad(e.to_string()))?;
        event.verify(checksum).map_err(|e| bad(e.to_string()))?;
        events.push(event);
        at += size;
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use instarec_mysql::{EventHeader, EventType};

    fn event(log_pos: u32) -> RawEvent {
        RawEvent::build(
            EventHeader {
                timestamp: 1,
                event_type: EventType::Query,
                server_id: 1,
                event_size: 0,
                log_pos,
                flags: 0,
            },
            b"body",
            BinlogChecksum::Crc32,
        )
    }

    #[test]
    fn splits_exact_events_and_refuses_damage() {
        let mut chunk = event(300).bytes.to_vec();
        chunk.extend_from_slice(&event(327).bytes);
        let events = split_events("k", Bytes::from(chunk.clone()), BinlogChecksum::Crc32).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].header.log_pos, 327);
        let mut flipped = chunk.clone();
        flipped[30] ^= 1;
        let err = split_events("k", Bytes::from(flipped), BinlogChecksum::Crc32).unwrap_err();
        assert!(err.to_string().contains("byte 27"), "{err}");
        let cut = Bytes::from(chunk[..40].to_vec());
        assert!(split_events("k", cut, BinlogChecksum::Crc32).is_err());
    }
}
