//! The archive_command / restore_command contract: `wal-push %p` and
//! `wal-fetch %f %p`, drop-in like WAL-G's and pgBackRest's.

use super::layout;
use crate::archive::{Archive, ArchiveError, PutOutcome};
use crate::engine::Engine;
use bytes::{Bytes, BytesMut};
use instarec_postgres::page::XLogPageHeader;
use instarec_postgres::segment::WalSegmentSize;
use instarec_postgres::wal_file::WalFileKind;
use std::io::Write as _;
use std::path::Path;

/// Name → key mapping accepts every valid name with the smallest segment
/// size, since it only validates; keys use the name verbatim.
fn naming_size() -> WalSegmentSize {
    WalSegmentSize::new(1 << 20).expect("1 MiB is a valid segment size")
}

#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("{name:?} is not a WAL, .history, .backup or .partial file name; archive_command must pass %p and restore_command %f %p")]
    BadName { name: String },
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}; check the directory exists and is writable by the server's user")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a PostgreSQL WAL segment: {reason}")]
    NotWal { path: String, reason: String },
    #[error("{path} belongs to system {file}, but archive {archive} belongs to system {archive_system}; point [archive] url at this cluster's archive")]
    OtherCluster {
        path: String,
        file: u64,
        archive: String,
        archive_system: String,
    },
    #[error("archive {0} has no cluster record yet; run `instarec ship` or `instarec archive init` first")]
    Uninitialized(String),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
}

/// Archives the file at `path`. Succeeds only once the file is durable;
/// identical content already there is success, different content a conflict.
pub async fn push(archive: &Archive, path: &Path) -> Result<(String, PutOutcome), TransferError> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| TransferError::BadName {
            name: path.display().to_string(),
        })?;
    let key =
        layout::key_for_file_name(name, naming_size()).ok_or_else(|| TransferError::BadName {
            name: name.to_string(),
        })?;
    let data = tokio::fs::read(path)
        .await
        .map_err(|source| TransferError::Read {
            path: path.display().to_string(),
            source,
        })?;
    let archive = match WalFileKind::parse(name, naming_size()) {
        Ok(WalFileKind::Segment { .. }) | Ok(WalFileKind::Partial { .. }) => {
            let system = segment_system_id(&data, path)?;
            bind_checked(archive, system, path).await?
        }
        _ => bind_recorded(archive).await?,
    };
    let outcome = archive.put(&key, Bytes::from(data)).await?;
    Ok((key, outcome))
}

/// What a fetch found.
#[derive(Debug, PartialEq, Eq)]
pub enum Fetched {
    Complete,
    /// Only parts existed; served zero-padded (with `serve_partial`).
    PartialTail {
        bytes: u64,
    },
    Absent,
}

/// Restores `name` to `dest` atomically (temp file, fsync, rename).
/// A segment that exists only as parts is absent unless `serve_partial`.
pub async fn fetch(
    archive: &Archive,
    name: &str,
    dest: &Path,
    serve_partial: bool,
) -> Result<Fetched, TransferError> {
    let size = naming_size();
    let key = layout::key_for_file_name(name, size).ok_or_else(|| TransferError::BadName {
        name: name.to_string(),
    })?;
    let archive = bind_recorded(archive).await?;
    // The shipper deletes a segment's parts once the whole segment is
    // durable: a part that vanishes between list and get means the
    // segment is complete now, so look again (bounded).
    let mut attempts = 0;
    loop {
        attempts += 1;
        if let Some(bytes) = archive.get_opt(&key).await? {
            write_atomically(dest, &bytes).await?;
            return Ok(Fetched::Complete);
        }
        if !serve_partial {
            return Ok(Fetched::Absent);
        }
        let Ok(WalFileKind::Segment { .. }) = WalFileKind::parse(name, size) else {
            return Ok(Fetched::Absent);
        };
        match assemble_parts(&archive, &key).await {
            Ok(Some((data, received))) => {
                write_atomically(dest, &data).await?;
                return Ok(Fetched::PartialTail { bytes: received });
            }
            Ok(None) => return Ok(Fetched::Absent),
            Err(TransferError::Archive(ArchiveError::NotFound { .. })) if attempts < 3 => continue,
            Err(e) => return Err(e),
        }
    }
}

/// The contiguous prefix of a segment held as parts, zero-padded to the
/// segment size read from its first page; None when there are no parts.
pub async fn assemble_parts(
    archive: &Archive,
    segment_key: &str,
) -> Result<Option<(Bytes, u64)>, TransferError> {
    let prefix = format!("{segment_key}.part/");
    let mut ranges = Vec::new();
    for e in archive.list(&prefix).await? {
        // Only the range suffix is parsed: reading the segment name needs the
        // real segment size, unknown until the first page is read (a guessed
        // 1 GiB size rejected names like ...0000000000000004).
        if let Some((start, end)) = e.key.strip_prefix(&prefix).and_then(part_range) {
            ranges.push((start, end, e.key));
        }
    }
    ranges.sort();
    let mut data = BytesMut::new();
    for (start, end, key) in &ranges {
        let covered = data.len() as u64;
        if *start > covered {
            break;
        }
        if *end <= covered {
            continue;
        }
        let bytes = archive.get(key).await?;
        if bytes.len() as u64 != end - start {
            return Err(ArchiveError::Corrupt {
                key: key.clone(),
                reason: "part length does not match its range".into(),
            }
            .into());
        }
        data.extend_from_slice(&bytes[(covered - start) as usize..]);
    }
    if data.is_empty() {
        return Ok(None);
    }
    let header = XLogPageHeader::parse(&data).map_err(|e| TransferError::NotWal {
        path: segment_key.to_string(),
        reason: e.to_string(),
    })?;
    let seg_size =
        header
            .long
            .map(|l| l.seg_size as usize)
            .ok_or_else(|| TransferError::NotWal {
                path: segment_key.to_string(),
                reason: "first page has no long header".into(),
            })?;
    let received = data.len() as u64;
    data.resize(seg_size.max(data.len()), 0);
    Ok(Some((data.freeze(), received)))
}

/// `<START>-<END>` in hex, a non-empty range within the largest segment size.
fn part_range(suffix: &str) -> Option<(u64, u64)> {
    let (a, b) = suffix.split_once('-')?;
    let start = u64::from_str_radix(a, 16).ok()?;
    let end = u64::from_str_radix(b, 16).ok()?;
    (start < end && end <= 1 << 30).then_some((start, end))
}

fn segment_system_id(data: &[u8], path: &Path) -> Result<u64, TransferError> {
    let not_wal = |reason: String| TransferError::NotWal {
        path: path.display().to_string(),
        reason,
    };
    let header = XLogPageHeader::parse(data).map_err(|e| not_wal(e.to_string()))?;
    if instarec_postgres::version::major_for_wal_page_magic(header.magic).is_none() {
        return Err(not_wal(format!(
            "page magic {:#06X} is unknown",
            header.magic
        )));
    }
    header
        .long
        .map(|l| l.system_id)
        .ok_or_else(|| not_wal("first page has no long header".into()))
}

async fn bind_checked(
    archive: &Archive,
    system: u64,
    path: &Path,
) -> Result<Archive, TransferError> {
    match archive
        .open_cluster(Engine::Postgres, &system.to_string())
        .await
    {
        Ok((bound, _)) => Ok(bound),
        Err(ArchiveError::ClusterMismatch { .. }) => {
            let recorded = archive.read_cluster().await?;
            Err(TransferError::OtherCluster {
                path: path.display().to_string(),
                file: system,
                archive: archive.url().to_string(),
                archive_system: recorded.map(|r| r.system_id).unwrap_or_default(),
            })
        }
        Err(e) => Err(e.into()),
    }
}

async fn bind_recorded(archive: &Archive) -> Result<Archive, TransferError> {
    match archive.read_cluster().await? {
        Some(rec) => Ok(archive.bind_cluster(rec.tag())),
        None => Err(TransferError::Uninitialized(archive.url().to_string())),
    }
}

async fn write_atomically(dest: &Path, data: &[u8]) -> Result<(), TransferError> {
    let dest = dest.to_path_buf();
    let data = data.to_vec();
    tokio::task::spawn_blocking(move || {
        let err = |source| TransferError::Write {
            path: dest.display().to_string(),
            source,
        };
        let dir = dest
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let tmp = dir.join(format!(
            ".{}.instarec-tmp.{}",
            dest.file_name().and_then(|n| n.to_str()).unwrap_or("wal"),
            std::process::id()
        ));
        let result = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&data)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &dest)?;
            std::fs::File::open(dir)?.sync_all()
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map_err(err)
    })
    .await
    .map_err(|e| TransferError::Write {
        path: "(blocking task)".into(),
        source: std::io::Error::other(e),
    })?
}
