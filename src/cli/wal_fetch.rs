//! `instarec wal-fetch %f %p`: restore_command. Exit 1 means the file is
//! truly absent; every other failure exits 126 so PostgreSQL stops instead
//! of ending recovery early.

use super::Context;
use crate::engines::postgres::wal_transfer::{self, Fetched};
use crate::exit::{CodedError, WAL_FETCH_ABSENT, WAL_FETCH_FATAL};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// File name PostgreSQL asks for (%f)
    pub name: String,
    /// Where to write it (%p)
    pub dest: PathBuf,
    /// Serve a segment that exists only as parts, zero-padded to full size
    #[arg(long)]
    pub partial: bool,
}

pub async fn run(ctx: &Context, args: Args) -> anyhow::Result<()> {
    match fetch(ctx, &args).await {
        Ok(Fetched::Complete) => Ok(()),
        Ok(Fetched::PartialTail { bytes }) => {
            tracing::debug!(name = %args.name, bytes, "served the partial tail");
            Ok(())
        }
        Ok(Fetched::Absent) => {
            // Recovery asks for absent files all the time (the next segment,
            // the next timeline's history); that is not worth a log line.
            tracing::debug!(name = %args.name, "not in the archive");
            Err(CodedError::new(WAL_FETCH_ABSENT, "").into())
        }
        Err(e) => Err(CodedError::new(WAL_FETCH_FATAL, crate::error_text::one_line(&e)).into()),
    }
}

async fn fetch(ctx: &Context, args: &Args) -> anyhow::Result<Fetched> {
    let config = ctx.config()?;
    let (archive, _) = ctx.open_existing_archive(&config).await?;
    Ok(wal_transfer::fetch(&archive, &args.name, &args.dest, args.partial).await?)
}
