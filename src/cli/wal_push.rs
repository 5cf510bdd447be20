//! `instarec wal-push %p`: archive_command. Exits 0 only once the file is
//! durable in the archive.

use super::Context;
use crate::archive::PutOutcome;
use crate::engines::postgres::wal_transfer;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Path of the file to archive (PostgreSQL's %p)
    pub path: PathBuf,
}

pub async fn run(ctx: &Context, args: Args) -> anyhow::Result<()> {
    let config = ctx.config()?;
    let archive = ctx.open_archive(&config)?;
    let (key, outcome) = wal_transfer::push(&archive, &args.path).await?;
    match outcome {
        PutOutcome::Created => tracing::info!(%key, "archived"),
        PutOutcome::AlreadyIdentical => {
            tracing::info!(%key, "already archived with identical content")
        }
    }
    Ok(())
}
