//! Where a replica's stream starts in the archive's chunk list: the first
//! chunk that holds something the replica lacks. Each index carries the
//! GTID state after its chunk and that state only grows, so a binary
//! search reads O(log n) indexes, never the chunks.
//!
//! A MySQL replica (COM_BINLOG_DUMP_GTID) is refused as a MySQL source
//! refuses it: when it lacks transactions from before the archive's first
//! chunk (the source "purged binary logs containing GTIDs that the replica
//! requires") and when it has transactions of the primary's server_uuid
//! that the archive never had ("replica has more GTIDs than the source").

use super::binlog_archive::BinlogArchive;
use super::error::RelayServeError;
use super::identity;
use crate::engines::mysql::index::ChunkIndex;
use crate::engines::mysql::layout::IndexKey;
use instarec_mysql::mariadb_gtid_event::MariadbGtidListEvent;
use instarec_mysql::mysql_gtid_event::MysqlGtidEvent;
use instarec_mysql::{BinlogPosition, EventType, MariadbGtidPos, MysqlGtidSet, ServerUuid};

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

/// The first chunk (index into `keys`) a MySQL replica that executed
/// `executed` needs; `keys.len()` when it has everything. Groups it has
/// inside that chunk and later ones are the start filter's to skip.
pub async fn after_mysql_gtid(
    archive: &BinlogArchive,
    keys: &[IndexKey],
    executed: &MysqlGtidSet,
) -> Result<usize, RelayServeError> {
    let (Some(first), Some(newest)) = (keys.first(), keys.last()) else {
        return Ok(0);
    };
    let newest = archive.index(newest).await?;
    let primary = identity::newest_transaction_uuid(archive, keys, &newest).await?;
    check_not_diverged(&newest, primary, executed)?;
    let before = archive_start_state(archive, first).await?;
    check_not_purged(&before, executed)?;
    let (mut lo, mut hi) = (0, keys.len());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let after = mysql_state(&archive.index(&keys[mid]).await?)?;
        if after.is_subset(executed) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    // A file's opening chunk without transactions (its PREVIOUS_GTIDS) is
    // sent too, so a stream that needs the file's first transaction reads
    // the whole file, as from a MySQL source.
    if lo > 0
        && lo < keys.len()
        && opens_its_file(keys, lo - 1)
        && same_file(&keys[lo - 1], &keys[lo])
    {
        let opening = archive.index(&keys[lo - 1]).await?;
        if opening.first_gtid.is_none() {
            lo -= 1;
        }
    }
    Ok(lo)
}

fn same_file(a: &IndexKey, b: &IndexKey) -> bool {
    a.epoch == b.epoch && a.file == b.file
}

fn opens_its_file(keys: &[IndexKey], i: usize) -> bool {
    i == 0 || !same_file(&keys[i - 1], &keys[i])
}

/// The @@gtid_executed notation of a MySQL chunk index.
fn mysql_state(index: &ChunkIndex) -> Result<MysqlGtidSet, RelayServeError> {
    index.gtid_pos_after.parse().map_err(|e| {
        RelayServeError::Position(format!(
            "chunk index {} has a GTID state that is not MySQL's ({e}); a MySQL replica needs an archive shipped from MySQL",
            index.chunk
        ))
    })
}

/// The GTIDs the primary had before the archive's first chunk: the
/// chunk's state minus the transactions in it, plus its PREVIOUS_GTIDS
/// when the chunk opens its file (the primary's own purged history).
async fn archive_start_state(
    archive: &BinlogArchive,
    first: &IndexKey,
) -> Result<MysqlGtidSet, RelayServeError> {
    let index = archive.index(first).await?;
    let format = archive.format(first.epoch, &first.file).await?;
    let checksum = format.parsed.checksum;
    let bad = |reason: String| RelayServeError::BadEvent {
        key: index.chunk.clone(),
        offset: 0,
        reason,
    };
    let mut inside = MysqlGtidSet::new();
    let mut previous = MysqlGtidSet::new();
    for event in archive.events(&index, checksum).await? {
        match event.header.event_type {
            EventType::MysqlGtid => {
                let gtid = MysqlGtidEvent::from_event(&event, checksum)
                    .map_err(|e| bad(e.to_string()))?
                    .gtid;
                inside.add(gtid.uuid, gtid.gno);
            }
            EventType::PreviousGtids if inside.is_empty() => {
                let body = event.body(checksum).map_err(|e| bad(e.to_string()))?;
                previous = MysqlGtidSet::parse(body).map_err(|e| bad(e.to_string()))?;
            }
            _ => {}
        }
    }
    Ok(mysql_state(&index)?.subtract(&inside).union(&previous))
}

/// MySQL's ER_SOURCE_HAS_PURGED_REQUIRED_GTIDS, for an archive.
fn check_not_purged(before: &MysqlGtidSet, executed: &MysqlGtidSet) -> Result<(), RelayServeError> {
    let missing = before.subtract(executed);
    if missing.is_empty() {
        return Ok(());
    }
    Err(RelayServeError::Position(format!(
        "the replica needs GTIDs '{missing}' from before the archive's first chunk, which the archive does not hold (as a source that purged the binary logs with them; the replica's executed set is '{executed}'); provision the replica from a newer backup (instarec standby init)"
    )))
}

/// MySQL's ER_REPLICA_HAS_MORE_GTIDS_THAN_SOURCE, for an archive: checked
/// for the primary's server_uuid only, as MySQL does; transactions of other
/// servers may have reached the replica another way. The primary is the
/// server of the newest transaction (identity.rs), as the relay says.
fn check_not_diverged(
    newest: &ChunkIndex,
    newest_transaction: Option<ServerUuid>,
    executed: &MysqlGtidSet,
) -> Result<(), RelayServeError> {
    let archived = mysql_state(newest)?;
    let Some(primary) = newest_transaction.or_else(|| archived.uuids().next().copied()) else {
        return Ok(());
    };
    let extra = only(&executed.subtract(&archived), &primary);
    if extra.is_empty() {
        return Ok(());
    }
    Err(RelayServeError::Position(format!(
        "the replica has GTIDs '{extra}' of the primary {primary} that the archive never had (it holds up to '{archived}'): the replica diverged, or was fed past the archive by the primary itself; if the latter, wait for `instarec ship` to archive them and START REPLICA again, otherwise rebuild the replica from a backup (instarec standby init)"
    )))
}

/// The part of `set` with `uuid`.
fn only(set: &MysqlGtidSet, uuid: &ServerUuid) -> MysqlGtidSet {
    let intervals: Vec<String> = set
        .intervals(uuid)
        .iter()
        .map(ToString::to_string)
        .collect();
    if intervals.is_empty() {
        return MysqlGtidSet::new();
    }
    format!("{uuid}:{}", intervals.join(":"))
        .parse()
        .unwrap_or_default()
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

/// The first chunk of the file that chunk `i` is in (of the newest file
/// when `i` is past the end): where a primary starts a GTID stream, which
/// reads the file holding the position from its start.
pub fn first_of_its_file(keys: &[IndexKey], i: usize) -> usize {
    if keys.is_empty() {
        return 0;
    }
    let mut at = i.min(keys.len() - 1);
    while at > 0 && same_file(&keys[at - 1], &keys[at]) {
        at -= 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::Epoch;
    use crate::engines::mysql::chunk_buffer::tests::{
        MYSQL_8_0_26, MYSQL_8_0_32_COMPRESSED, SID_8_0_26,
    };
    use crate::engines::mysql::fixture_archive::{
        failed_over_mysql, shipped_mysql, MYSQL_8_0_40_PREVIOUS_GTIDS, SID_8_0_28,
    };
    use crate::engines::mysql::layout;

    fn set(text: &str) -> MysqlGtidSet {
        text.parse().unwrap()
    }

    /// The 8.0.26 file (SID_8_0_26:1-5, a chunk per event group) then the
    /// 8.0.32 one (an anonymous transaction).
    async fn two_files() -> (BinlogArchive, Vec<IndexKey>) {
        let archive = BinlogArchive::new(
            shipped_mysql(&[
                (MYSQL_8_0_26, "binlog.000001"),
                (MYSQL_8_0_32_COMPRESSED, "binlog.000002"),
            ])
            .await,
        );
        let keys = archive.chunks().await.unwrap();
        (archive, keys)
    }

    #[tokio::test]
    async fn a_mysql_replica_starts_at_the_first_chunk_it_lacks() {
        let (archive, keys) = two_files().await;
        let start = |executed: String| {
            let (archive, keys) = (&archive, &keys);
            async move {
                after_mysql_gtid(archive, keys, &set(&executed))
                    .await
                    .unwrap()
            }
        };
        assert_eq!(start(String::new()).await, 0);
        let at = start(format!("{SID_8_0_26}:1-3")).await;
        assert_eq!(
            (keys[at].file.as_str(), keys[at].first),
            ("binlog.000001", 1120)
        );
        // A hole at :2: that transaction's chunk.
        let at = start(format!("{SID_8_0_26}:1:3-5")).await;
        assert_eq!(keys[at].first, 491);
        // Everything: only the anonymous file after it, which has no
        // GTID to tell; the stream opens at the end.
        assert_eq!(start(format!("{SID_8_0_26}:1-5")).await, keys.len());
        // Other servers' transactions change nothing.
        let at = start(format!(
            "{SID_8_0_26}:1-3,b9b88c66-0755-11f1-9899-4a9da94c4d71:1-100"
        ))
        .await;
        assert_eq!(keys[at].first, 1120);
    }

    #[tokio::test]
    async fn a_mysql_replica_lacking_what_the_archive_purged_is_refused() {
        let (archive, keys) = two_files().await;
        // The archive starts at transaction :3, as if :1-2 were purged.
        let raw = shipped_mysql(&[(MYSQL_8_0_26, "binlog.000001")]).await;
        for key in keys
            .iter()
            .filter(|k| k.file == "binlog.000001" && k.first < 787)
        {
            raw.delete(&layout::index_key(Epoch(1), &key.file, key.first))
                .await
                .unwrap();
        }
        let late = BinlogArchive::new(raw);
        let late_keys = late.chunks().await.unwrap();
        assert_eq!(late_keys[0].first, 787);
        let err = after_mysql_gtid(&late, &late_keys, &MysqlGtidSet::new())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(&format!("GTIDs '{SID_8_0_26}:1-2'")), "{err}");
        assert!(err.contains("instarec standby init"), "{err}");
        let at = after_mysql_gtid(&late, &late_keys, &set(&format!("{SID_8_0_26}:1-2")))
            .await
            .unwrap();
        assert_eq!(at, 0);
        // Not only at the start: a hole before the archive is refused too.
        let err = after_mysql_gtid(&late, &late_keys, &set(&format!("{SID_8_0_26}:1:4")))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains(&format!("'{SID_8_0_26}:2'")),
            "{err}"
        );
        // The full archive has it all.
        assert_eq!(
            after_mysql_gtid(&archive, &keys, &set(&format!("{SID_8_0_26}:1:4")))
                .await
                .unwrap(),
            2
        );
    }

    #[tokio::test]
    async fn previous_gtids_of_the_first_file_count_as_purged() {
        let archive = BinlogArchive::new(
            shipped_mysql(&[(MYSQL_8_0_40_PREVIOUS_GTIDS, "binlog.000007")]).await,
        );
        let keys = archive.chunks().await.unwrap();
        let before = "b9b88c66-0755-11f1-9899-4a9da94c4d71:1-2";
        let err = after_mysql_gtid(
            &archive,
            &keys,
            &set("b9b88c66-0755-11f1-9899-4a9da94c4d71:1"),
        )
        .await
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("'b9b88c66-0755-11f1-9899-4a9da94c4d71:2'"),
            "{err}"
        );
        after_mysql_gtid(&archive, &keys, &set(before))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn after_a_failover_divergence_is_checked_for_the_new_primary() {
        let archive = BinlogArchive::new(failed_over_mysql().await);
        let keys = archive.chunks().await.unwrap();
        // Ahead of the archive on the new primary, in step on the old one.
        let executed = set(&format!("{SID_8_0_28}:1-5,{SID_8_0_26}:1-7"));
        let err = after_mysql_gtid(&archive, &keys, &executed)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(&format!("GTIDs '{SID_8_0_26}:6-7'")), "{err}");
        assert!(err.contains(&format!("primary {SID_8_0_26}")), "{err}");
        // Transactions of the old primary only its replicas saw are not ours to refuse.
        let executed = set(&format!("{SID_8_0_28}:1-9,{SID_8_0_26}:1-5"));
        assert_eq!(
            after_mysql_gtid(&archive, &keys, &executed).await.unwrap(),
            keys.len()
        );
    }

    #[tokio::test]
    async fn a_mysql_replica_ahead_of_the_archive_is_refused() {
        let (archive, keys) = two_files().await;
        let err = after_mysql_gtid(&archive, &keys, &set(&format!("{SID_8_0_26}:1-7")))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(&format!("GTIDs '{SID_8_0_26}:6-7'")), "{err}");
        assert!(err.contains("never had"), "{err}");
    }

    fn key(epoch: u64, file: &str, first: u64) -> IndexKey {
        IndexKey {
            epoch: Epoch(epoch),
            file: file.into(),
            first,
        }
    }

    #[test]
    fn the_first_chunk_of_a_file() {
        let keys = vec![
            key(1, "b.000001", 256),
            key(1, "b.000001", 900),
            key(1, "b.000002", 256),
            key(1, "b.000002", 700),
            key(2, "b.000002", 256),
            key(2, "b.000002", 800),
        ];
        let firsts: Vec<usize> = (0..=keys.len())
            .map(|i| first_of_its_file(&keys, i))
            .collect();
        // A new epoch starts a new file, even under the same name.
        assert_eq!(firsts, vec![0, 0, 2, 2, 4, 4, 4]);
        assert_eq!(first_of_its_file(&[], 0), 0);
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
