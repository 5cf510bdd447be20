//! `instarec relay`: serve the archive's binlog to MySQL 8 / MariaDB replicas over
//! the replication protocol (long-running).

use super::Context;
use crate::relay::{RelayOptions, RelayServer};
use anyhow::Context as _;
use instarec_mysql::relay::Credentials;
use std::net::SocketAddr;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Overrides [relay] listen
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: Option<SocketAddr>,
}

pub async fn run(ctx: &Context, args: Args) -> anyhow::Result<()> {
    let config = ctx.config()?;
    let relay = config.relay.as_ref().context(
        "no [relay] section; add listen, user and password (the replicas' MASTER_PORT, MASTER_USER, MASTER_PASSWORD)",
    )?;
    let mut options = RelayOptions::new(
        args.listen.unwrap_or(relay.listen),
        Credentials {
            user: relay.user.clone(),
            password: relay.password.expose().to_string(),
        },
    );
    options.poll_interval = relay.poll_interval.0;
    let (archive, _) = ctx.open_existing_archive(&config).await?;
    let server = RelayServer::bind(options, archive).await?;
    let shutdown = super::signals::shutdown_on_signal("the relay");
    server.serve(shutdown).await;
    Ok(())
}
