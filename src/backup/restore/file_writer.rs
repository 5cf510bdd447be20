//! The writer threads of an extraction: each takes one restored file at a
//! time, writes it with plain std::fs, checks it against backup_manifest
//! while writing (no second read), and fsyncs it before taking the next.

use super::unpack::UnpackError;
use crate::backup::manifest::FileCheck;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::os::unix::io::AsRawFd as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

/// Size of every buffer that carries file bytes from the parser to a
/// writer: a whole small file, or one piece of a larger one.
pub const PIECE_BYTES: usize = 1 << 20;

/// A large file's writeback is started every this many bytes, so its final
/// fsync finds little left to flush.
const WRITEBACK_EVERY: u64 = 8 << 20;

/// A regular file of the archive, as the writer creates it.
pub struct NewFile {
    pub path: PathBuf,
    /// Permission bits (no set-id bits: an archive never grants those).
    pub mode: u32,
    /// Seconds since the epoch, as the tar header has it.
    pub mtime: u64,
    /// None when backup_manifest does not list the file.
    pub check: Option<FileCheck>,
}

pub enum Job {
    /// A file of at most [`PIECE_BYTES`], read whole.
    Whole { file: NewFile, bytes: Vec<u8> },
    /// A larger file, arriving as pieces of [`PIECE_BYTES`]; the parser
    /// drops the sender after the last one (or when it fails).
    Streamed {
        file: NewFile,
        size: u64,
        pieces: Receiver<Vec<u8>>,
    },
}

/// The first error of any writer; once set, the parser stops and the
/// remaining writers drop what they are handed.
#[derive(Default)]
pub struct Failure {
    set: AtomicBool,
    first: Mutex<Option<UnpackError>>,
}

impl Failure {
    pub fn is_set(&self) -> bool {
        self.set.load(Ordering::Acquire)
    }

    fn record(&self, error: UnpackError) {
        let mut first = self.first.lock().unwrap_or_else(PoisonError::into_inner);
        if first.is_none() {
            *first = Some(error);
        }
        self.set.store(true, Ordering::Release);
    }

    pub fn take(&self) -> Option<UnpackError> {
        self.first
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

/// Recycled [`PIECE_BYTES`] buffers: fresh ones would be fresh mmaps (the
/// binary lowers the mmap threshold), page-faulted in for every file.
pub struct BufferPool {
    free: Mutex<Vec<Vec<u8>>>,
    keep: usize,
}

impl BufferPool {
    pub fn new(keep: usize) -> BufferPool {
        BufferPool {
            free: Mutex::new(Vec::with_capacity(keep)),
            keep,
        }
    }

    pub fn take(&self) -> Vec<u8> {
        self.free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(PIECE_BYTES))
    }

    /// Kept with their length: bytes already initialized need no zeroing
    /// when the next user resizes.
    pub fn give(&self, buffer: Vec<u8>) {
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        if free.len() < self.keep && buffer.capacity() >= PIECE_BYTES {
            free.push(buffer);
        }
    }
}

/// One writer thread: runs until the parser drops the job sender.
pub fn run(jobs: &Mutex<Receiver<Job>>, failure: &Failure, pool: &BufferPool) {
    loop {
        let job = jobs.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(job) = job else { return };
        if failure.is_set() {
            // Dropped: a parser streaming into it sees its sends fail.
            continue;
        }
        if let Err(e) = write(job, pool) {
            failure.record(e);
        }
    }
}

fn write(job: Job, pool: &BufferPool) -> Result<(), UnpackError> {
    match job {
        Job::Whole { file, bytes } => {
            let mut out = Output::create(file)?;
            out.write(&bytes)?;
            pool.give(bytes);
            out.finish()
        }
        Job::Streamed { file, size, pieces } => {
            let mut out = Output::create(file)?;
            for piece in pieces.iter() {
                out.write(&piece)?;
                pool.give(piece);
            }
            if out.written != size {
                // The parser stopped inside this file; its error is the one reported.
                return Err(out.error(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!(
                        "the archive ended after {} of its {size} bytes",
                        out.written
                    ),
                )));
            }
            out.finish()
        }
    }
}

struct Output {
    file: File,
    new: NewFile,
    written: u64,
    /// Where the writeback not yet started begins.
    flushed: u64,
}

impl Output {
    fn create(new: NewFile) -> Result<Output, UnpackError> {
        // create_new: the target directories were empty, so an existing
        // file means the archive holds it twice.
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(new.mode)
            .open(&new.path)
            .map_err(|source| UnpackError::Write {
                path: new.path.display().to_string(),
                source,
            })?;
        Ok(Output {
            file,
            new,
            written: 0,
            flushed: 0,
        })
    }

    fn error(&self, source: std::io::Error) -> UnpackError {
        UnpackError::Write {
            path: self.new.path.display().to_string(),
            source,
        }
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), UnpackError> {
        self.file.write_all(bytes).map_err(|e| self.error(e))?;
        if let Some(check) = &mut self.new.check {
            check.update(bytes);
        }
        self.written += bytes.len() as u64;
        if self.written - self.flushed >= WRITEBACK_EVERY {
            start_writeback(&self.file, self.flushed, self.written - self.flushed);
            self.flushed = self.written;
        }
        Ok(())
    }

    /// Checked against the manifest, then mode, mtime and fsync.
    fn finish(self) -> Result<(), UnpackError> {
        if let Some(check) = &self.new.check {
            check.finish(&self.new.path)?;
        }
        let file = &self.file;
        // The mode again: the umask may have cut bits from the one at create.
        file.set_permissions(std::fs::Permissions::from_mode(self.new.mode))
            .and_then(|()| {
                file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(self.new.mtime))
            })
            .and_then(|()| file.sync_all())
            .map_err(|e| self.error(e))
    }
}

/// Asks the kernel to start writing a range back now (Linux
/// sync_file_range, SYNC_FILE_RANGE_WRITE): a hint, so a failure is
/// harmless; the file's fsync still decides durability.
fn start_writeback(file: &File, offset: u64, len: u64) {
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    // SAFETY: the fd is open for as long as `file` is borrowed; the call
    // reads no memory of ours.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
    }
}
