//! Shared memory that a SIGKILLed PostgreSQL leaves behind.
//!
//! A killed postmaster cannot remove its SysV segment or its POSIX segments
//! in /dev/shm. Restarting on the same data dir cleans them up, so the
//! harness only removes them when a killed server is dropped for good;
//! otherwise every kill -9 test would leak a few MiB of /dev/shm.

use std::path::{Path, PathBuf};

use super::process::descendants_of;

/// What to remove once the processes that used it are dead.
#[derive(Debug, Default)]
pub struct OrphanedShm {
    files: Vec<PathBuf>,
    sysv_shmid: Option<libc::c_int>,
}

impl OrphanedShm {
    /// Notes the segments of the server with postmaster `pid` running on
    /// `data_dir`. Call while it still runs: the list comes from the mappings
    /// of the postmaster and its children.
    pub fn of_running_server(pid: u32, data_dir: &Path) -> OrphanedShm {
        let mut files: Vec<PathBuf> = std::iter::once(pid)
            .chain(descendants_of(pid))
            .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/maps")).ok())
            .flat_map(|maps| {
                maps.lines()
                    .filter_map(|line| line.find("/dev/shm/PostgreSQL.").map(|at| &line[at..]))
                    .map(|path| PathBuf::from(path.trim_end_matches(" (deleted)")))
                    .collect::<Vec<_>>()
            })
            .collect();
        files.sort();
        files.dedup();
        // postmaster.pid line 7 is "<key> <shmid>" of the SysV segment.
        let sysv_shmid = std::fs::read_to_string(data_dir.join("postmaster.pid"))
            .ok()
            .and_then(|pid_file| {
                pid_file
                    .lines()
                    .nth(6)?
                    .split_whitespace()
                    .nth(1)?
                    .parse()
                    .ok()
            });
        OrphanedShm { files, sysv_shmid }
    }

    /// The /dev/shm files the server had mapped.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The id of the server's SysV segment, from postmaster.pid.
    pub fn sysv_shmid(&self) -> Option<libc::c_int> {
        self.sysv_shmid
    }

    /// Removes the segments; call only once no process uses them any more.
    pub fn remove(self) {
        for file in &self.files {
            let _ = std::fs::remove_file(file);
        }
        if let Some(shmid) = self.sysv_shmid {
            // SAFETY: IPC_RMID takes no buffer; a stale id just fails with EINVAL.
            unsafe { libc::shmctl(shmid, libc::IPC_RMID, std::ptr::null_mut()) };
        }
    }
}
