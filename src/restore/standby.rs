//! `standby init`: a data directory that a stock `postgres -D` runs as a
//! read-only hot standby, replaying the archive as it grows.

use super::backup_source;
use super::error::RestoreError;
use super::extraction;
use super::recovery_conf::{RecoveryConf, RecoveryMode};
use super::target::RecoveryTarget;
use crate::archive::Archive;
use crate::backup::restore::Extracted;
use crate::backup::BackupRecord;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct StandbyOptions {
    pub data_dir: PathBuf,
    /// None: the newest backup.
    pub backup: Option<String>,
    /// Empty a non-empty data directory first.
    pub force: bool,
    /// The full restore_command (see [`super::recovery_conf::restore_command`]);
    /// with `--partial` so the in-progress segment is replayed too.
    pub restore_command: String,
    /// Chunks downloaded ahead of the extractor.
    pub parallelism: usize,
}

#[derive(Debug, Clone)]
pub struct StandbyInit {
    pub backup: BackupRecord,
    pub extracted: Extracted,
    pub data_dir: PathBuf,
}

pub async fn init_standby(
    archive: &Archive,
    opts: &StandbyOptions,
) -> Result<StandbyInit, RestoreError> {
    let archive = backup_source::bind(archive).await?;
    let backups = backup_source::backups(&archive, opts.backup.as_deref()).await?;
    let backup = super::target::choose_backup(&backups, &RecoveryTarget::Latest, None)?.clone();
    tracing::info!(backup = %backup.id, stop = %backup.stop_position, data_dir = %opts.data_dir.display(), "initialising a standby");
    let extracted = extraction::extract_into(
        &archive,
        &backup,
        &opts.data_dir,
        opts.force,
        opts.parallelism,
    )
    .await?;
    let conf = RecoveryConf {
        mode: RecoveryMode::Standby,
        restore_command: opts.restore_command.clone(),
        target: RecoveryTarget::Latest,
        timeline: None,
        pause: false,
    };
    let header = format!("instarec standby init from backup {}", backup.id);
    extraction::write_conf(&conf, &opts.data_dir, &header).await?;
    Ok(StandbyInit {
        backup,
        extracted,
        data_dir: opts.data_dir.clone(),
    })
}
