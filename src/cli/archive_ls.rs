//! `instarec archive ls [PREFIX]`: list objects in key order.

use super::Context;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only keys starting with this prefix, e.g. "wal/" or "epochs/"
    #[arg(default_value = "")]
    pub prefix: String,
    /// Print JSON lines: {"key","size","last_modified"}
    #[arg(long)]
    pub json: bool,
}

pub async fn run(ctx: &Context, args: Args) -> anyhow::Result<()> {
    let config = ctx.config()?;
    let (archive, _) = ctx.open_existing_archive(&config).await?;
    let entries = archive.list(&args.prefix).await?;
    for e in &entries {
        if args.json {
            println!(
                "{}",
                serde_json::json!({
                    "key": e.key,
                    "size": e.size,
                    "last_modified": e.last_modified.to_rfc3339(),
                })
            );
        } else {
            println!(
                "{:>12}  {}  {}",
                e.size,
                e.last_modified.format("%Y-%m-%d %H:%M:%S"),
                e.key
            );
        }
    }
    Ok(())
}
