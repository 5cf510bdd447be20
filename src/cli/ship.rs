//! `instarec ship`: long-running WAL shipping into the archive.

use super::Context;
use crate::ship;
use tokio_util::sync::CancellationToken;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub async fn run(ctx: &Context, _args: Args) -> anyhow::Result<()> {
    let config = ctx.config()?;
    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone());
    let summary = ship::ship(&config, shutdown).await?;
    println!(
        "stopped: archive durable up to {} ({} objects, {} bytes this run)",
        summary.durable, summary.uploaded_objects, summary.uploaded_bytes
    );
    Ok(())
}

/// SIGINT and SIGTERM both mean: flush what we have, then exit 0.
fn spawn_signal_handler(token: CancellationToken) {
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM");
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("signal received: flushing and stopping");
        token.cancel();
    });
}
