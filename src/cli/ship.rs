//! `instarec ship`: long-running WAL shipping into the archive.

use super::Context;
use crate::ship;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub async fn run(ctx: &Context, _args: Args) -> anyhow::Result<()> {
    let config = ctx.config()?;
    let shutdown = super::signals::shutdown_on_signal("the shipper after flushing");
    let summary = ship::ship(&config, shutdown).await?;
    println!(
        "stopped: archive durable up to {} ({} objects, {} bytes this run)",
        summary.durable, summary.uploaded_objects, summary.uploaded_bytes
    );
    Ok(())
}
