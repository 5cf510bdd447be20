//! How far the archived binlog reaches, and where a replay towards a
//! target stops: the GTID position after the last transaction before the
//! first one past the target, in binlog order (the relay's until rule),
//! and the time of that transaction's last event. Chunks start on
//! transaction edges and each index carries the GTID state after it, so a
//! bisection reads O(log n) indexes and one chunk at most.

use super::error::MysqlRestoreError;
use crate::archive::Archive;
use crate::engines::mysql::index::ChunkIndex;
use crate::engines::mysql::layout::IndexKey;
use crate::relay::{BinlogArchive, UntilTarget};
use crate::ship::position_record;
use chrono::{DateTime, Utc};
use instarec_mysql::mariadb_gtid_event::MariadbGtidEvent;
use instarec_mysql::{EventType, MariadbGtidPos};

/// The end of the archived binlog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveEnd {
    /// The GTID state after the newest chunk.
    pub gtid: MariadbGtidPos,
    /// Until when the archive is known complete: the newest event's time,
    /// or later when the shipper last saw the primary at the archive's end.
    pub complete_until: DateTime<Utc>,
}

/// Where a replay towards a target ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reach {
    /// The GTID state once every transaction before the stop is applied.
    pub position: MariadbGtidPos,
    /// The time of the last event before the stop (whole seconds).
    pub last_event: Option<DateTime<Utc>>,
}

/// Every chunk, in stream order; an error when there are none.
pub async fn chunk_keys(binlog: &BinlogArchive) -> Result<Vec<IndexKey>, MysqlRestoreError> {
    let keys = binlog.chunks().await?;
    if keys.is_empty() {
        return Err(MysqlRestoreError::NoBinlog);
    }
    Ok(keys)
}

pub async fn archive_end(
    archive: &Archive,
    binlog: &BinlogArchive,
    keys: &[IndexKey],
) -> Result<ArchiveEnd, MysqlRestoreError> {
    let newest = keys.last().ok_or(MysqlRestoreError::NoBinlog)?;
    let index = binlog.index(newest).await?;
    let gtid = gtid_after(&index)?;
    let mut complete_until = seconds(index.last_ts);
    // The shipper saw the primary at a position the archive holds: nothing
    // was committed between the newest event and then.
    if let Some(record) = position_record::latest(archive).await? {
        let caught_up = record
            .primary
            .parse::<MariadbGtidPos>()
            .is_ok_and(|p| covers(&gtid, &p));
        if caught_up && record.at > complete_until {
            complete_until = record.at;
        }
    }
    Ok(ArchiveEnd {
        gtid,
        complete_until,
    })
}

/// Where a replica at `applied` (the backup's position) stops when the
/// relay streams with `until`.
pub async fn reach(
    binlog: &BinlogArchive,
    keys: &[IndexKey],
    applied: &MariadbGtidPos,
    until: &UntilTarget,
) -> Result<Reach, MysqlRestoreError> {
    // The first chunk not wholly before the stop.
    let (mut lo, mut hi) = (0, keys.len());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let index = binlog.index(&keys[mid]).await?;
        if wholly_before(&index, applied, until)? {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    let (mut position, mut last_event) = match lo.checked_sub(1) {
        Some(prev) => {
            let index = binlog.index(&keys[prev]).await?;
            (gtid_after(&index)?, Some(seconds(index.last_ts)))
        }
        None => (MariadbGtidPos::new(), None),
    };
    let Some(key) = keys.get(lo) else {
        return Ok(Reach {
            position,
            last_event,
        });
    };
    let index = binlog.index(key).await?;
    let checksum = binlog.format(key.epoch, &key.file).await?.parsed.checksum;
    for event in binlog.events(&index, checksum).await? {
        if event.header.event_type == EventType::MariadbGtid {
            let gtid = MariadbGtidEvent::from_event(&event, checksum)
                .map_err(|e| crate::relay::RelayServeError::BadEvent {
                    key: index.chunk.clone(),
                    offset: 0,
                    reason: e.to_string(),
                })?
                .gtid(event.header.server_id);
            // Groups the replica has are skipped by the relay, never a stop.
            if !applied.contains(&gtid) && until.is_past(&gtid, event.header.timestamp) {
                break;
            }
            position = position.iter().copied().chain([gtid]).collect();
        }
        last_event = Some(seconds(event.header.timestamp));
    }
    Ok(Reach {
        position,
        last_event,
    })
}

/// Whether the whole chunk comes before the stop. For a time, chunks are
/// taken as ordered by time (binlog order is commit order; a transaction
/// stamped out of order inside a chunk is judged when that chunk is read).
fn wholly_before(
    index: &ChunkIndex,
    applied: &MariadbGtidPos,
    until: &UntilTarget,
) -> Result<bool, MysqlRestoreError> {
    Ok(match until {
        UntilTarget::Gtid(target) => gtid_after(index)?
            .iter()
            .all(|g| target.contains(g) || applied.contains(g)),
        UntilTarget::Time(t) => i64::from(index.last_ts) <= t.timestamp(),
    })
}

fn gtid_after(index: &ChunkIndex) -> Result<MariadbGtidPos, MysqlRestoreError> {
    if index.flavor != "mariadb" {
        return Err(MysqlRestoreError::BadGtid {
            what: format!("chunk index of {}", index.chunk),
            text: index.gtid_pos_after.clone(),
            reason: format!(
                "the archive holds {} binlog; restore replays MariaDB archives only",
                index.flavor
            ),
        });
    }
    index
        .gtid_pos_after
        .parse()
        .map_err(|e: instarec_mysql::GtidError| MysqlRestoreError::BadGtid {
            what: format!("gtid_pos_after of {}", index.chunk),
            text: index.gtid_pos_after.clone(),
            reason: e.to_string(),
        })
}

/// True if every transaction up to `needed` is at or before `have`.
pub fn covers(have: &MariadbGtidPos, needed: &MariadbGtidPos) -> bool {
    needed.iter().all(|g| have.contains(g))
}

/// Per domain, the later of the two.
pub fn merge(a: &MariadbGtidPos, b: &MariadbGtidPos) -> MariadbGtidPos {
    let mut out = a.clone();
    for g in b.iter() {
        if !out.contains(g) {
            out = out.iter().copied().chain([*g]).collect();
        }
    }
    out
}

fn seconds(ts: u32) -> DateTime<Utc> {
    DateTime::from_timestamp(i64::from(ts), 0).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coverage_is_per_domain() {
        let p = |s: &str| s.parse::<MariadbGtidPos>().unwrap();
        assert!(covers(&p("0-1-10"), &p("0-1-10")));
        assert!(covers(&p("0-1-10,1-1-3"), &p("0-2-9")));
        assert!(!covers(&p("0-1-10"), &p("0-1-11")));
        assert!(!covers(&p("0-1-10"), &p("1-1-1")));
        assert!(covers(&p("0-1-10"), &p("")));
        assert_eq!(
            merge(&p("0-1-10,1-1-2"), &p("0-1-8,2-1-1")),
            p("0-1-10,1-1-2,2-1-1")
        );
    }
}
