//! `instarec ship`: long-running WAL shipping into the archive.

use super::Context;
use crate::ship::{self, StartPolicy};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Exit 1 at once if the primary is unreachable at start, instead of
    /// retrying with backoff (0.5 s doubling to 30 s) until it answers
    #[arg(long)]
    pub fail_fast: bool,
}

pub async fn run(ctx: &Context, args: Args) -> anyhow::Result<()> {
    let config = ctx.config()?;
    let shutdown = super::signals::shutdown_on_signal("the shipper after flushing");
    let start = if args.fail_fast {
        StartPolicy::FailFast
    } else {
        StartPolicy::WaitForPrimary
    };
    let summary = ship::ship(&config, shutdown, start).await?;
    println!(
        "stopped: archive durable up to {} ({} objects, {} bytes this run)",
        summary.durable, summary.uploaded_objects, summary.uploaded_bytes
    );
    Ok(())
}
