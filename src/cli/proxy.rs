//! `instarec proxy`: the embedded cutover proxy (long-running).

use super::Context;
use crate::archive::Engine;
use crate::cutover::{HostPort, ProxyOptions, ProxyServer};
use anyhow::Context as _;
use std::net::SocketAddr;
use tokio_util::sync::CancellationToken;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Overrides [cutover] listen
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: Option<SocketAddr>,
    /// Overrides [cutover] proxy_control (loopback only)
    #[arg(long, value_name = "HOST:PORT")]
    pub control: Option<SocketAddr>,
}

pub async fn run(ctx: &Context, args: Args) -> anyhow::Result<()> {
    let config = ctx.config()?;
    let cutover = config.cutover.as_ref();
    let listen = args
        .listen
        .or_else(|| cutover.and_then(|c| c.listen))
        .context(
        "no address to listen on; set [cutover] listen (e.g. \"0.0.0.0:6432\") or pass --listen",
    )?;
    let mut options = ProxyOptions::new(listen);
    options.control = args
        .control
        .or_else(|| cutover.and_then(|c| c.proxy_control));

    // Before the first promote there is no epoch; [primary] url is the primary.
    let bootstrap = match &config.primary {
        Some(primary) => {
            let default_port = match primary.engine {
                Engine::Postgres => 5432,
                Engine::Mysql => 3306,
            };
            Some(HostPort::from_url(primary.url.expose(), default_port)?)
        }
        None => None,
    };
    let archive = ctx.open_archive(&config)?;
    let server = ProxyServer::bind(options, &archive, bootstrap)
        .await
        .with_context(|| format!("starting the proxy (archive {})", config.archive.url))?;
    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone());
    server.serve(Some(archive), shutdown).await;
    Ok(())
}

/// SIGINT and SIGTERM stop the proxy, closing every proxied connection.
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
        tracing::info!("signal received: stopping the proxy");
        token.cancel();
    });
}
