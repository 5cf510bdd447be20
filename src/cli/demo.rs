//! `instarec demo`: ship, back up, stand by, crash, promote, report — on
//! this machine, in a temp dir, in about a minute.

use super::Context;
use crate::demo::{self, DemoOptions};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Keep everything in this directory instead of a temp dir
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Keep the temp dir (archive, data dirs, logs) and print where it is
    #[arg(long)]
    pub keep: bool,
    /// How long clients write before the crash
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub write_for: Duration,
    /// A planned switchover instead of a crash
    #[arg(long)]
    pub planned: bool,
    /// Print the outcome as JSON
    #[arg(long)]
    pub json: bool,
}

pub async fn run(_ctx: &Context, args: Args) -> anyhow::Result<()> {
    let json = args.json;
    let outcome = demo::run(
        DemoOptions {
            dir: args.dir,
            keep: args.keep,
            write_for: args.write_for,
            planned: args.planned,
        },
        |line| {
            if !json {
                println!("{line}");
            }
        },
    )
    .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
        return Ok(());
    }
    let r = &outcome.promote_report;
    println!();
    println!("promote ({}): epoch {}", r["mode"], r["epoch"]);
    println!(
        "  RTO  {:.2} s (until the new primary took a write through the proxy)",
        r["rto_seconds"].as_f64().unwrap_or(f64::NAN)
    );
    println!("  RPO  {} bytes, {} s", r["rpo_bytes"], r["rpo_seconds"]);
    if let Some(steps) = r["steps"].as_array() {
        for s in steps {
            println!(
                "       {:<24} {:.3} s",
                s["name"].as_str().unwrap_or("?"),
                s["seconds"].as_f64().unwrap_or(0.0)
            );
        }
    }
    println!(
        "ledger: {} commits acknowledged, {} missing on the new primary, {}",
        outcome.acknowledged_commits,
        outcome.lost_commits,
        if outcome.lost_commits_covered_by_rpo {
            "all within the reported RPO"
        } else {
            "NOT covered by the reported RPO: please report this"
        }
    );
    if args.keep || outcome.dir_kept {
        println!("everything is kept in {}", outcome.dir);
    }
    if !outcome.lost_commits_covered_by_rpo {
        anyhow::bail!("the reported RPO did not cover the lost commits");
    }
    Ok(())
}
