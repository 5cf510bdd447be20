//! `instarec proxy`: the embedded cutover proxy (long-running).

use super::Context;
use crate::cutover::{HostPort, ProxyOptions, ProxyServer};
use crate::engine::Engine;
use anyhow::Context as _;
use std::net::SocketAddr;

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
    let shutdown = super::signals::shutdown_on_signal("the proxy");
    server.serve(Some(archive), shutdown).await;
    Ok(())
}
