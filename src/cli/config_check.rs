//! `instarec config check`: validate and print the resolved config.

use super::Context;
use crate::archive::{Archive, ArchiveError};
use crate::config::DEFAULT_CONFIG_PATH;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON instead of TOML
    #[arg(long)]
    pub json: bool,
}

pub async fn run(ctx: &Context, args: Args) -> anyhow::Result<()> {
    let config = ctx.config()?;
    // Loading the key and parsing the URL catch what serde alone cannot;
    // checking changes nothing, so a missing archive is only noted.
    let settings = config.archive.settings()?;
    match Archive::open_existing(&settings) {
        Ok(_) => {}
        Err(e @ ArchiveError::Missing { .. }) => eprintln!("note: {e}"),
        Err(e) => return Err(e.into()),
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&config)?);
    } else {
        match ctx.sources.file_found() {
            Some(file) => println!("# resolved from {} (secrets masked)", file.display()),
            None => println!(
                "# no config file: ./{DEFAULT_CONFIG_PATH} was not found; resolved from defaults, INSTAREC_* variables and flags (secrets masked)"
            ),
        }
        print!("{}", toml::to_string(&config)?);
    }
    Ok(())
}
