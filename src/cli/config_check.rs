//! `instarec config check`: validate and print the resolved config.

use super::Context;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON instead of TOML
    #[arg(long)]
    pub json: bool,
}

pub async fn run(ctx: &Context, args: Args) -> anyhow::Result<()> {
    let config = ctx.config()?;
    // Loading the key and parsing the URL catch what serde alone cannot.
    config.archive.settings()?;
    ctx.open_archive(&config)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&config)?);
    } else {
        println!("# resolved from {} (secrets masked)", ctx.sources.origin());
        print!("{}", toml::to_string(&config)?);
    }
    Ok(())
}
