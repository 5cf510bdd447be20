//! `instarec promote`: promote [standby], fencing [primary] when it answers.

use super::Context;
use crate::promote::{self, PromoteOptions};
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A switchover: the old primary must answer; clients are paused, it is
    /// made read-only and drained into the archive first (zero loss)
    #[arg(long)]
    pub planned: bool,
    /// After fencing and draining the old primary, run this command (sh -c,
    /// with INSTAREC_OLD_PRIMARY_HOST/_PORT set) to stop it
    #[arg(long, value_name = "COMMAND")]
    pub stop_old: Option<String>,
    /// How long the standby may take to finish promoting
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    pub promote_timeout: Duration,
    /// Print the report as JSON (the contract in README, "promote --json")
    #[arg(long)]
    pub json: bool,
}

pub async fn run(ctx: &Context, args: Args) -> anyhow::Result<()> {
    let config = ctx.config()?;
    let options = PromoteOptions {
        planned: args.planned,
        stop_old: args.stop_old,
        promote_wait: args.promote_timeout,
        ..PromoteOptions::default()
    };
    let report = promote::promote(&config, &options).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{}", report.to_text());
    }
    Ok(())
}
