//! `instarec archive init`: bind an empty archive to one database cluster.

use super::Context;
use crate::archive::{ClusterRecord, FORMAT_VERSION};
use crate::engine::Engine;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Engine of the cluster [default: [primary] engine]
    #[arg(long, value_enum)]
    pub engine: Option<Engine>,
    /// The cluster's identity: PostgreSQL system identifier or MySQL server uuid
    #[arg(long, value_name = "ID")]
    pub system_id: String,
}

pub async fn run(ctx: &Context, args: Args) -> anyhow::Result<()> {
    let config = ctx.config()?;
    let engine = match (args.engine, &config.primary) {
        (Some(e), _) => e,
        (None, Some(p)) => p.engine,
        (None, None) => {
            anyhow::bail!("no engine given: pass --engine postgres|mysql or set [primary] engine")
        }
    };
    let archive = ctx.open_archive(&config)?;
    let record = ClusterRecord {
        engine,
        system_id: args.system_id,
        format_version: FORMAT_VERSION,
        created_at: chrono::Utc::now(),
    };
    let stored = archive.init_cluster(&record).await?;
    println!(
        "archive {} belongs to {} system {} (format {}, created {})",
        archive.url(),
        stored.engine,
        stored.system_id,
        stored.format_version,
        stored.created_at.to_rfc3339()
    );
    Ok(())
}
