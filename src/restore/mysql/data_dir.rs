//! A backup turned into a MariaDB data directory: unpacked from the
//! archive, `mariabackup --prepare`d in place (the prepared directory is a
//! data directory mariadbd starts on; no copy-back), owned by the server's
//! OS user. Anything that fails leaves the directory as it was found.

use super::error::MysqlRestoreError;
use super::tool::{self, Tool};
use super::xbstream_unpack;
use crate::archive::Archive;
use crate::backup::mysql_take::XbstreamManifest;
use crate::backup::BackupRecord;
use crate::os_user;
use crate::restore::data_dir as dirs;
use crate::restore::progress::Progress;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// The pid file instarec gives the mariadbd it starts on a data directory.
pub const PID_FILE: &str = "instarec-mariadbd.pid";

#[derive(Debug, Clone)]
pub struct Restored {
    pub manifest: XbstreamManifest,
    /// xbstream bytes downloaded.
    pub bytes: u64,
    pub unpack_time: Duration,
    pub prepare_time: Duration,
}

/// Refuses a non-empty `dir` (or empties it with `force`): nothing is
/// downloaded before this passes.
pub async fn check_empty(dir: &Path, force: bool) -> Result<(), MysqlRestoreError> {
    if force && dir.join(PID_FILE).exists() {
        return Err(MysqlRestoreError::Io {
            what: "empty",
            path: dir.display().to_string(),
            source: std::io::Error::other(format!(
                "{PID_FILE} says a mariadbd may be running on it; stop it before --force"
            )),
        });
    }
    blocking(dir, move |d| {
        dirs::prepare_blocking(d, force)
            .map(|_| ())
            .map_err(Into::into)
    })
    .await
}

/// Unpacks, prepares and chowns `record` into `dir` (checked empty).
pub async fn restore(
    archive: &Archive,
    record: &BackupRecord,
    dir: &Path,
    parallelism: usize,
    owner: Option<(u32, u32)>,
) -> Result<Restored, MysqlRestoreError> {
    // check_empty passed: the dir is missing or empty; put it back so on failure.
    let found = dirs::Found::of(dir);
    let result = restore_inner(archive, record, dir, parallelism, owner).await;
    if result.is_err() {
        let _ = blocking(dir, move |d| {
            dirs::put_back_blocking(d, found).map_err(Into::into)
        })
        .await;
    }
    result
}

async fn restore_inner(
    archive: &Archive,
    record: &BackupRecord,
    dir: &Path,
    parallelism: usize,
    owner: Option<(u32, u32)>,
) -> Result<Restored, MysqlRestoreError> {
    let manifest = xbstream_unpack::manifest(archive, record).await?;
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|source| MysqlRestoreError::Io {
            what: "create",
            path: dir.display().to_string(),
            source,
        })?;
    let progress = Progress::new(&format!("restoring backup {}", record.id), manifest.bytes);
    let began = Instant::now();
    let bytes =
        xbstream_unpack::unpack(archive, record, &manifest, dir, parallelism, &progress).await;
    progress.finish();
    let bytes = bytes?;
    let unpack_time = began.elapsed();
    tracing::info!(backup = %record.id, bytes, secs = unpack_time.as_secs_f64(), "xbstream unpacked and verified");

    let began = Instant::now();
    prepare(dir).await?;
    let prepare_time = began.elapsed();
    tracing::info!(
        secs = prepare_time.as_secs_f64(),
        "mariabackup --prepare done"
    );
    if let Some(owner) = owner {
        blocking(dir, move |d| {
            os_user::chown_tree(d, owner).map_err(|source| MysqlRestoreError::Io {
                what: "chown",
                path: d.display().to_string(),
                source,
            })
        })
        .await?;
    }
    Ok(Restored {
        manifest,
        bytes,
        unpack_time,
        prepare_time,
    })
}

/// `mariabackup --prepare`: applies the redo log the backup copied, so the
/// files are consistent at the backup's GTID position.
async fn prepare(dir: &Path) -> Result<(), MysqlRestoreError> {
    let program = tool::find(Tool::Mariabackup)?;
    let mut target = std::ffi::OsString::from("--target-dir=");
    target.push(dir);
    let out = tokio::process::Command::new(&program)
        .arg("--prepare")
        .arg(target)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|source| MysqlRestoreError::Io {
            what: "run",
            path: program.display().to_string(),
            source,
        })?;
    if !out.status.success() {
        let text = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = text.lines().collect();
        return Err(MysqlRestoreError::ToolFailed {
            what: format!("{} --prepare --target-dir={}", Tool::Mariabackup.name(), dir.display()),
            status: out.status.to_string(),
            tail: lines[lines.len().saturating_sub(25)..].join("\n"),
            advice: "the backup may be damaged or from a newer MariaDB: restore another backup with --backup, or install the mariadb-backup matching the server",
        });
    }
    Ok(())
}

/// The OS user mariadbd runs as: `user` when we are root, else ourselves.
pub fn owner(user: &str) -> Result<Option<(u32, u32)>, MysqlRestoreError> {
    if !os_user::running_as_root() {
        return Ok(None);
    }
    os_user::lookup_user(user)
        .map(Some)
        .ok_or_else(|| MysqlRestoreError::NoOsUser { user: user.into() })
}

async fn blocking<F>(dir: &Path, f: F) -> Result<(), MysqlRestoreError>
where
    F: FnOnce(&Path) -> Result<(), MysqlRestoreError> + Send + 'static,
{
    let dir: PathBuf = dir.to_path_buf();
    tokio::task::spawn_blocking(move || f(&dir))
        .await
        .map_err(|e| MysqlRestoreError::Task(e.to_string()))?
}
