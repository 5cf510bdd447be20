//! `archive verify` for PostgreSQL backups: every chunk and the manifest are
//! there and match the record, and the WAL from start to stop is archived.

use super::layout::{self, WalKey};
use crate::archive::{Archive, ArchiveError};
use crate::backup::manifest::BackupManifest;
use crate::backup::{layout as backup_layout, BackupRecord};
use instarec_postgres::lsn::{Lsn, TimelineId};
use instarec_postgres::segment::{SegmentNo, WalSegmentSize};
use instarec_postgres::version::ServerVersionNum;
use std::collections::{BTreeMap, BTreeSet};

/// What `verify_backups` checked and found.
#[derive(Debug, Default)]
pub struct BackupsVerified {
    pub checked: usize,
    /// (key, message); empty means every backup is restorable.
    pub faults: Vec<(String, String)>,
    /// Each backup's id and the PostgreSQL major it was taken on (None when
    /// its record has no readable server_version).
    pub majors: Vec<(String, Option<u32>)>,
}

pub async fn verify_backups(
    archive: &Archive,
    size: Option<WalSegmentSize>,
) -> Result<BackupsVerified, ArchiveError> {
    let records = BackupRecord::list(archive).await?;
    let majors = records
        .iter()
        .map(|r| {
            let major = r
                .server_version
                .as_deref()
                .and_then(ServerVersionNum::from_server_version)
                .map(ServerVersionNum::major);
            (r.id.clone(), major)
        })
        .collect();
    let mut faults = Vec::new();
    let keys: BTreeSet<String> = archive
        .list(backup_layout::BACKUPS_PREFIX)
        .await?
        .into_iter()
        .map(|e| e.key)
        .collect();
    let wal_keys: Vec<String> = archive
        .list(layout::WAL_PREFIX)
        .await?
        .into_iter()
        .map(|e| e.key)
        .collect();
    for record in &records {
        for a in &record.archives {
            for chunk in 0..a.chunks {
                let key = backup_layout::chunk_key(&record.id, &a.name, chunk);
                if !keys.contains(&key) {
                    faults.push((
                        key,
                        format!(
                            "chunk {chunk} of {} in backup {} is missing; the backup cannot be restored: take a new backup",
                            a.name, record.id
                        ),
                    ));
                }
            }
        }
        let manifest = backup_layout::manifest_key(&record.id);
        match archive.get_opt(&manifest).await {
            Ok(Some(bytes)) => {
                let got = blake3::hash(&bytes).to_hex().to_string();
                if got != record.manifest_blake3 {
                    faults.push((
                        manifest,
                        format!(
                            "manifest checksum {got} does not match the record's {}; take a new backup",
                            record.manifest_blake3
                        ),
                    ));
                } else if let Err(e) = BackupManifest::parse(&record.id, &bytes)
                    .and_then(|m| m.check_system(&record.system_id))
                {
                    faults.push((manifest, e.to_string()));
                }
            }
            Ok(None) => faults.push((
                manifest,
                format!("backup {} has no manifest; take a new backup", record.id),
            )),
            Err(e) => faults.push((manifest, e.to_string())),
        }
        let fault = match size {
            Some(size) => missing_wal(record, &wal_keys, size),
            // No WAL at all, so none of what this backup needs either.
            None => Some(no_wal_archived(record)),
        };
        faults.extend(fault);
    }
    Ok(BackupsVerified {
        checked: records.len(),
        faults,
        majors,
    })
}

/// The fault of a backup in an archive that holds no WAL.
fn no_wal_archived(record: &BackupRecord) -> (String, String) {
    let tli = TimelineId(record.timeline);
    (
        layout::timeline_prefix(tli),
        format!(
            "backup {} needs WAL {}..{} on timeline {tli}, but the archive holds no WAL at all; the backup cannot be restored consistently: check `instarec ship` and take a new backup",
            record.id, record.start_position, record.stop_position
        ),
    )
}

/// The first WAL segment a backup needs that the archive lacks, if any.
fn missing_wal(
    record: &BackupRecord,
    wal_keys: &[String],
    size: WalSegmentSize,
) -> Option<(String, String)> {
    let tli = TimelineId(record.timeline);
    let (Ok(start), Ok(stop)) = (
        record.start_position.parse::<Lsn>(),
        record.stop_position.parse::<Lsn>(),
    ) else {
        return Some((
            backup_layout::record_key(&record.id),
            format!(
                "backup {} has unreadable positions {}..{}",
                record.id, record.start_position, record.stop_position
            ),
        ));
    };
    let mut complete = BTreeSet::new();
    let mut parts: BTreeMap<SegmentNo, Vec<(u64, u64)>> = BTreeMap::new();
    for key in wal_keys {
        match layout::parse_key(key, size) {
            WalKey::Segment { tli: t, seg } if t == tli => {
                complete.insert(seg);
            }
            WalKey::Part {
                tli: t,
                seg,
                start,
                end,
            } if t == tli => parts.entry(seg).or_default().push((start, end)),
            _ => {}
        }
    }
    let last = size.segment_of(stop);
    let mut seg = size.segment_of(start);
    while seg <= last {
        if !complete.contains(&seg) {
            let need = if seg == last {
                size.offset_in_segment(stop)
            } else {
                size.bytes()
            };
            let mut covered = 0;
            let mut ranges = parts.get(&seg).cloned().unwrap_or_default();
            ranges.sort();
            for (a, b) in ranges {
                if a > covered {
                    break;
                }
                covered = covered.max(b);
            }
            if covered < need {
                return Some((
                    layout::segment_key(tli, seg, size),
                    format!(
                        "backup {} needs WAL {start}..{stop} on timeline {tli}, but this segment is not archived; the backup cannot be restored consistently: check `instarec ship` and take a new backup",
                        record.id
                    ),
                ));
            }
        }
        seg = SegmentNo(seg.0 + 1);
    }
    None
}
