//! Where a replica's stream starts in the archive's chunk list: the first
//! chunk that holds something the replica lacks. Each index carries the
//! GTID state after its chunk and that state only grows, so a binary
//! search reads O(log n) indexes, never the chunks.

use super::binlog_archive::BinlogArchive;
use super::error::RelayServeError;
use crate::engines::mysql::layout::IndexKey;
use instarec_mysql::mariadb_gtid_event::MariadbGtidListEvent;
use instarec_mysql::{BinlogPosition, EventType, MariadbGtidPos};

/// The first chunk (index into `keys`) a replica at `applied` needs;
/// `keys.len()` when it has everything.
pub async fn after_gtid(
    archive: &BinlogArchive,
    keys: &[IndexKey],
    applied: &MariadbGtidPos,
) -> Result<usize, RelayServeError> {
    let (mut lo, mut hi) = (0, keys.len());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let index = archive.index(&keys[mid]).await?;
        let after: MariadbGtidPos = index.gtid_pos_after.parse().map_err(|e| {
            RelayServeError::Position(format!(
                "chunk index {} has a GTID state that is not MariaDB's ({e}); the relay serves MariaDB archives",
                index.chunk
            ))
        })?;
        if after.iter().all(|g| applied.contains(g)) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if lo == 0 && !keys.is_empty() {
        check_not_older_than_archive(archive, &keys[0], applied).await?;
    }
    Ok(lo)
}

/// A replica that lacks transactions from before the archive's first
/// chunk cannot be served: the first file's GTID_LIST says what came before.
async fn check_not_older_than_archive(
    archive: &BinlogArchive,
    first: &IndexKey,
    applied: &MariadbGtidPos,
) -> Result<(), RelayServeError> {
    let format = archive.format(first.epoch, &first.file).await?;
    let index = archive.index(first).await?;
    let checksum = format.parsed.checksum;
    for event in archive.events(&index, checksum).await? {
        match event.header.event_type {
            EventType::GtidList => {
                let before = MariadbGtidListEvent::from_event(&event, checksum)
                    .map_err(|e| RelayServeError::BadEvent {
                        key: index.chunk.clone(),
                        offset: 0,
                        reason: e.to_string(),
                    })?
                    .position();
                if let Some(missing) = before.iter().find(|g| !applied.contains(g)) {
                    return Err(RelayServeError::Position(format!(
                        "the replica's GTID position '{applied}' is older than the archive, which starts after '{before}' (it lacks {missing}); restore a newer backup onto the replica (instarec standby init)"
                    )));
                }
                return Ok(());
            }
            EventType::MariadbGtid => return Ok(()),
            _ => {}
        }
    }
    Ok(())
}

/// The chunk that holds `at` (a replica connecting by file and offset),
/// in the newest epoch that has the file.
pub fn at_file_position(keys: &[IndexKey], at: &BinlogPosition) -> Result<usize, RelayServeError> {
    let newest_epoch = keys
        .iter()
        .filter(|k| k.file == at.file)
        .map(|k| k.epoch)
        .max()
        .ok_or_else(|| {
            RelayServeError::Position(format!(
                "binlog file {} is not in the archive; point the replica at a GTID position (MASTER_USE_GTID=slave_pos) or a file the archive has",
                at.file
            ))
        })?;
    let of_file = |k: &&IndexKey| k.epoch == newest_epoch && k.file == at.file;
    let last_at_or_before = keys
        .iter()
        .enumerate()
        .filter(|(_, k)| of_file(k) && k.first <= at.pos)
        .map(|(i, _)| i)
        .next_back();
    let first_of_file = keys.iter().position(|k| of_file(&k));
    last_at_or_before
        .or(first_of_file)
        .ok_or_else(|| RelayServeError::Position(format!("no chunk of {} holds {at}", at.file)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::Epoch;

    fn key(epoch: u64, file: &str, first: u64) -> IndexKey {
        IndexKey {
            epoch: Epoch(epoch),
            file: file.into(),
            first,
        }
    }

    #[test]
    fn file_positions_find_their_chunk() {
        let keys = vec![
            key(1, "b.000001", 256),
            key(1, "b.000001", 900),
            key(1, "b.000002", 256),
            key(2, "b.000001", 256),
        ];
        let at = |f: &str, p| BinlogPosition::new(f, p).unwrap();
        assert_eq!(at_file_position(&keys, &at("b.000002", 4)).unwrap(), 2);
        assert_eq!(at_file_position(&keys, &at("b.000002", 700)).unwrap(), 2);
        // The newest epoch's b.000001 wins.
        assert_eq!(at_file_position(&keys, &at("b.000001", 1000)).unwrap(), 3);
        let err = at_file_position(&keys, &at("b.000009", 4)).unwrap_err();
        assert!(err.to_string().contains("b.000009"), "{err}");
    }
}
