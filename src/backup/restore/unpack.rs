//! One tar archive of a backup unpacked on a blocking thread. The parser
//! (the calling thread) reads the tar stream in order and creates
//! directories and symlinks itself, so every file finds its parent; each
//! regular file goes to a pool of writer threads ([`file_writer`]) that
//! check it against backup_manifest as they write and fsync it. Once every
//! file is written, every directory the archive touched is fsynced.
//!
//! Memory is bounded, whatever the file sizes: files go to the writers in
//! [`PIECE_BYTES`] buffers (a larger file streams to one writer piece by
//! piece), at most `2 × writers` jobs wait in the queue, each writer holds
//! one buffer, and a streamed file has at most [`PIECES_AHEAD`] pieces
//! waiting. So about `(3 × writers + PIECES_AHEAD + 1) × PIECE_BYTES`:
//! 15 MiB with 4 writers.

use super::file_writer::{self, BufferPool, Failure, Job, NewFile, PIECE_BYTES};
use crate::backup::manifest::{ManifestError, ManifestIndex};
use std::collections::HashSet;
use std::fs::DirBuilder;
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Component, Path, PathBuf};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Mutex;

/// Pieces of a streamed file read ahead of its writer.
pub const PIECES_AHEAD: usize = 2;

/// Directories the archive implies without listing them get PostgreSQL's mode.
const IMPLIED_DIR_MODE: u32 = 0o700;

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// The stream is not a readable tar archive.
    #[error("{0}")]
    Tar(std::io::Error),
    /// An entry that a PostgreSQL backup never holds.
    #[error("entry {entry}: {reason}")]
    Entry { entry: String, reason: String },
    #[error("cannot write {path}: {source}; check free space and permissions")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
}

/// Where an archive goes and how its entries are named in the manifest.
#[derive(Debug, Clone)]
pub struct Target {
    /// Exists and is empty.
    pub dest: PathBuf,
    /// Prepended to an entry's path to give its manifest path: "" for
    /// base.tar, "pg_tblspc/<oid>/" for a tablespace's archive.
    pub manifest_prefix: String,
    pub writers: usize,
}

/// Unpacks the tar stream in `reader` into `target.dest`, claiming each
/// file's entry in `index`; returns when every file and directory is
/// written, checked and fsynced, with the first error otherwise. Reads
/// `reader` to its end. Blocking: run it off the async runtime.
pub fn unpack_blocking(
    reader: impl Read,
    target: &Target,
    index: &mut ManifestIndex,
) -> Result<(), UnpackError> {
    let writers = target.writers.clamp(1, 64);
    let failure = Failure::default();
    let pool = BufferPool::new(3 * writers + PIECES_AHEAD + 1);
    let (jobs_tx, jobs_rx) = sync_channel::<Job>(2 * writers);
    let jobs_rx = Mutex::new(jobs_rx);
    let mut dirs = Dirs::new(&target.dest);
    let parsed = std::thread::scope(|scope| {
        for _ in 0..writers {
            scope.spawn(|| file_writer::run(&jobs_rx, &failure, &pool));
        }
        // Moves the job sender in: the writers end once it returns.
        parse(reader, target, index, jobs_tx, &failure, &pool, &mut dirs)
    });
    // The parser's error first: a writer's can be its consequence (a file
    // cut short). A writer's failure makes the parser stop without one.
    parsed?;
    if let Some(e) = failure.take() {
        return Err(e);
    }
    dirs.sync_all()
}

fn parse(
    reader: impl Read,
    target: &Target,
    index: &mut ManifestIndex,
    jobs: SyncSender<Job>,
    failure: &Failure,
    pool: &BufferPool,
    dirs: &mut Dirs,
) -> Result<(), UnpackError> {
    let mut archive = tar::Archive::new(reader);
    let mut symlinks = HashSet::new();
    for entry in archive.entries().map_err(UnpackError::Tar)? {
        if failure.is_set() {
            return Ok(());
        }
        let mut entry = entry.map_err(UnpackError::Tar)?;
        let raw = entry.path().map_err(UnpackError::Tar)?.into_owned();
        let bad = |reason: &str| UnpackError::Entry {
            entry: raw.display().to_string(),
            reason: reason.to_string(),
        };
        let rel = relative(&raw).ok_or_else(|| bad("its path leaves the target directory"))?;
        if rel.ancestors().skip(1).any(|a| symlinks.contains(a)) {
            return Err(bad("its path goes through a symlink of the same archive"));
        }
        let header = entry.header();
        let kind = header.entry_type();
        if rel.as_os_str().is_empty() {
            if kind.is_dir() {
                // The target itself: already there, with its own mode.
                continue;
            }
            return Err(bad("an entry that is not a directory has no name"));
        }
        let disk = target.dest.join(&rel);
        // Permission bits only: an archive never grants set-id bits.
        let mode = || header.mode().map(|m| m & 0o777).map_err(UnpackError::Tar);
        match kind {
            tar::EntryType::Directory => dirs.create(&disk, mode()?)?,
            tar::EntryType::Symlink => {
                let link = entry
                    .link_name()
                    .map_err(UnpackError::Tar)?
                    .ok_or_else(|| bad("a symlink without a target"))?;
                dirs.create_parent(&disk)?;
                std::os::unix::fs::symlink(&link, &disk).map_err(|source| UnpackError::Write {
                    path: disk.display().to_string(),
                    source,
                })?;
                symlinks.insert(rel);
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                dirs.create_parent(&disk)?;
                let manifest_path = format!("{}{}", target.manifest_prefix, rel.display());
                let file = NewFile {
                    check: index.claim(&manifest_path, &disk)?,
                    mtime: header.mtime().unwrap_or(0),
                    mode: mode()?,
                    path: disk,
                };
                let size = entry.size();
                if !send_file(&mut entry, file, size, &jobs, pool)? {
                    return Ok(());
                }
            }
            // Extended headers the tar crate folds into the next entry.
            tar::EntryType::XGlobalHeader => {}
            other => {
                return Err(bad(&format!(
                    "it is a {other:?}, which a PostgreSQL backup never holds"
                )))
            }
        }
    }
    drop(jobs);
    // The rest is the trailer's padding: read so the downloads can finish.
    std::io::copy(&mut archive.into_inner(), &mut std::io::sink()).map_err(UnpackError::Tar)?;
    Ok(())
}

/// Hands one file's bytes to the writers; false when they stopped taking
/// them (a writer failed: its error is the one to report).
fn send_file(
    entry: &mut impl Read,
    file: NewFile,
    size: u64,
    jobs: &SyncSender<Job>,
    pool: &BufferPool,
) -> Result<bool, UnpackError> {
    let path = file.path.display().to_string();
    let read_piece = |entry: &mut dyn Read, len: u64| -> Result<Vec<u8>, UnpackError> {
        let mut piece = pool.take();
        // len <= PIECE_BYTES; a recycled buffer is zeroed only where it grows.
        piece.resize(len as usize, 0);
        entry.read_exact(&mut piece).map_err(|e| {
            UnpackError::Tar(if e.kind() == std::io::ErrorKind::UnexpectedEof {
                std::io::Error::new(e.kind(), format!("the archive ends inside {path}"))
            } else {
                e
            })
        })?;
        Ok(piece)
    };
    if size <= PIECE_BYTES as u64 {
        let bytes = read_piece(entry, size)?;
        return Ok(jobs.send(Job::Whole { file, bytes }).is_ok());
    }
    let (pieces_tx, pieces) = sync_channel(PIECES_AHEAD);
    if jobs.send(Job::Streamed { file, size, pieces }).is_err() {
        return Ok(false);
    }
    let mut left = size;
    while left > 0 {
        let len = left.min(PIECE_BYTES as u64);
        if pieces_tx.send(read_piece(entry, len)?).is_err() {
            return Ok(false);
        }
        left -= len;
    }
    Ok(true)
}

/// An entry's path as a plain relative path; None if it is absolute or
/// climbs out with "..". "." components are dropped (empty: the root).
fn relative(path: &Path) -> Option<PathBuf> {
    let mut rel = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(part) => rel.push(part),
            Component::CurDir => {}
            Component::RootDir | Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(rel)
}

/// Every directory the archive created or wrote into, for the final fsync.
struct Dirs {
    known: HashSet<PathBuf>,
}

impl Dirs {
    fn new(dest: &Path) -> Dirs {
        Dirs {
            known: HashSet::from([dest.to_path_buf()]),
        }
    }

    fn create(&mut self, dir: &Path, mode: u32) -> Result<(), UnpackError> {
        let err = |source| UnpackError::Write {
            path: dir.display().to_string(),
            source,
        };
        if !self.known.contains(dir) {
            self.create_parent(dir)?;
            match DirBuilder::new().mode(mode).create(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => {}
                Err(e) => return Err(err(e)),
            }
            self.known.insert(dir.to_path_buf());
        }
        // Listed after being implied, or cut by the umask: the archive's mode.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).map_err(err)
    }

    fn create_parent(&mut self, path: &Path) -> Result<(), UnpackError> {
        match path.parent() {
            Some(parent) if !self.known.contains(parent) => self.create(parent, IMPLIED_DIR_MODE),
            _ => Ok(()),
        }
    }

    fn sync_all(&self) -> Result<(), UnpackError> {
        for dir in &self.known {
            sync_dir(dir).map_err(|source| UnpackError::Write {
                path: dir.display().to_string(),
                source,
            })?;
        }
        Ok(())
    }
}

/// Makes a directory's entries durable: the names of the files in it.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::manifest::{crc32c_bytes, BackupManifest, Checksum, ManifestFile};
    use std::os::unix::fs::MetadataExt as _;

    fn file(path: &str, bytes: &[u8]) -> ManifestFile {
        ManifestFile {
            path: path.into(),
            size: bytes.len() as u64,
            checksum: Checksum::Crc32c(crc32c_bytes(crc32c::crc32c(bytes))),
        }
    }

    fn tar_of(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        build(&mut builder);
        builder.into_inner().unwrap()
    }

    fn append(
        b: &mut tar::Builder<Vec<u8>>,
        kind: tar::EntryType,
        path: &str,
        mode: u32,
        data: &[u8],
    ) {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_mtime(1_700_000_000);
        header.set_size(data.len() as u64);
        b.append_data(&mut header, path, data).unwrap();
    }

    fn target(dest: &Path) -> Target {
        Target {
            dest: dest.to_path_buf(),
            manifest_prefix: String::new(),
            writers: 3,
        }
    }

    /// Bigger than one piece, so it streams to its writer.
    fn big() -> Vec<u8> {
        (0..PIECE_BYTES * 2 + 12345)
            .map(|i| (i % 251) as u8)
            .collect()
    }

    #[test]
    fn unpacks_dirs_files_streamed_files_and_symlinks_and_checks_the_manifest() {
        let big = big();
        let archive = tar_of(|b| {
            append(b, tar::EntryType::Directory, "base", 0o700, b"");
            append(b, tar::EntryType::Regular, "PG_VERSION", 0o600, b"15\n");
            append(b, tar::EntryType::Regular, "base/1/1259", 0o600, &big);
            // Not in the manifest (like PostgreSQL's own exclusions): written unchecked.
            append(b, tar::EntryType::Regular, "global/extra", 0o640, b"x");
            let mut link = tar::Header::new_ustar();
            link.set_entry_type(tar::EntryType::Symlink);
            link.set_size(0);
            b.append_link(&mut link, "pg_tblspc/16384", "/somewhere/else")
                .unwrap();
        });
        let manifest = BackupManifest {
            backup: "b".into(),
            version: 1,
            system_identifier: None,
            files: vec![file("PG_VERSION", b"15\n"), file("base/1/1259", &big)],
        };
        let mut index = ManifestIndex::new(manifest);
        let dir = tempfile::tempdir().unwrap();
        unpack_blocking(&archive[..], &target(dir.path()), &mut index).unwrap();
        let verified = index.finish(|p| dir.path().join(p)).unwrap();
        assert_eq!((verified.files, verified.bytes), (2, 3 + big.len() as u64));

        assert_eq!(
            std::fs::read(dir.path().join("PG_VERSION")).unwrap(),
            b"15\n"
        );
        assert!(std::fs::read(dir.path().join("base/1/1259")).unwrap() == big);
        let meta = std::fs::metadata(dir.path().join("global/extra")).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o640);
        assert_eq!(meta.mtime(), 1_700_000_000);
        let implied = std::fs::metadata(dir.path().join("base/1")).unwrap();
        assert_eq!(implied.mode() & 0o777, 0o700);
        assert_eq!(
            std::fs::read_link(dir.path().join("pg_tblspc/16384")).unwrap(),
            Path::new("/somewhere/else")
        );
    }

    #[test]
    fn a_file_that_differs_from_the_manifest_fails_naming_it() {
        let big = big();
        for (name, bytes) in [("PG_VERSION", &b"15\n"[..]), ("base/1/16384", &big[..])] {
            let archive = tar_of(|b| {
                append(b, tar::EntryType::Regular, "postgresql.conf", 0o600, b"a");
                append(b, tar::EntryType::Regular, name, 0o600, bytes);
                append(b, tar::EntryType::Regular, "zzz", 0o600, b"z");
            });
            let mut flipped = bytes.to_vec();
            *flipped.last_mut().unwrap() ^= 1;
            let mut index = ManifestIndex::new(BackupManifest {
                backup: "b".into(),
                version: 1,
                system_identifier: None,
                files: vec![file(name, &flipped)],
            });
            let dir = tempfile::tempdir().unwrap();
            let err = unpack_blocking(&archive[..], &target(dir.path()), &mut index)
                .unwrap_err()
                .to_string();
            let path = dir.path().join(name).display().to_string();
            assert!(
                err.contains(&path) && err.contains("CRC32C is"),
                "{name}: {err}"
            );
        }
    }

    #[test]
    fn refuses_entries_through_a_symlink_and_device_files() {
        let through = tar_of(|b| {
            let mut link = tar::Header::new_ustar();
            link.set_entry_type(tar::EntryType::Symlink);
            link.set_size(0);
            b.append_link(&mut link, "pg_wal", "/tmp").unwrap();
            append(b, tar::EntryType::Regular, "pg_wal/evil", 0o600, b"x");
        });
        let dir = tempfile::tempdir().unwrap();
        let mut index = ManifestIndex::new(BackupManifest {
            backup: "b".into(),
            version: 1,
            system_identifier: None,
            files: vec![],
        });
        let err = unpack_blocking(&through[..], &target(dir.path()), &mut index).unwrap_err();
        assert!(
            matches!(&err, UnpackError::Entry { entry, .. } if entry == "pg_wal/evil"),
            "{err}"
        );

        let fifo = tar_of(|b| append(b, tar::EntryType::Fifo, "fifo", 0o600, b""));
        let dir = tempfile::tempdir().unwrap();
        let err = unpack_blocking(&fifo[..], &target(dir.path()), &mut index).unwrap_err();
        assert!(err.to_string().contains("never holds"), "{err}");
    }

    #[test]
    fn a_truncated_archive_is_an_error() {
        let big = big();
        let archive = tar_of(|b| append(b, tar::EntryType::Regular, "big", 0o600, &big));
        let dir = tempfile::tempdir().unwrap();
        let mut index = ManifestIndex::new(BackupManifest {
            backup: "b".into(),
            version: 1,
            system_identifier: None,
            files: vec![],
        });
        let cut = &archive[..PIECE_BYTES + 4096];
        let err = unpack_blocking(cut, &target(dir.path()), &mut index).unwrap_err();
        assert!(matches!(err, UnpackError::Tar(_)), "{err}");
    }

    #[test]
    fn relative_paths_stay_inside() {
        assert_eq!(
            relative(Path::new("./base/1")),
            Some(PathBuf::from("base/1"))
        );
        assert_eq!(relative(Path::new("./")), Some(PathBuf::new()));
        assert_eq!(relative(Path::new("base/../../etc")), None);
        assert_eq!(relative(Path::new("/etc/passwd")), None);
    }
}
