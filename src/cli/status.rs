//! `instarec status`: the archive's view of the cluster, as a short table
//! or `--json`.

use super::Context;
use crate::status;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON (a stable contract, see README)
    #[arg(long)]
    pub json: bool,
}

pub async fn run(ctx: &Context, args: Args) -> anyhow::Result<()> {
    let config = ctx.config()?;
    let archive = ctx.open_archive(&config)?;
    let report = status::gather(&archive).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let or_none = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    println!("archive        {}", report.archive);
    println!(
        "cluster        {} {}",
        or_none(report.engine.clone()),
        or_none(report.system_id.clone())
    );
    println!(
        "epoch          {} (primary {}, claimed by {} at {})",
        or_none(report.epoch.map(|e| e.to_string())),
        or_none(report.epoch_primary.clone()),
        or_none(report.epoch_holder.clone()),
        or_none(report.epoch_claimed_at.map(|t| t.to_rfc3339()))
    );
    println!(
        "archive end    {} on timeline {}",
        or_none(report.archive_end.clone()),
        or_none(report.timeline.map(|t| t.to_string()))
    );
    match &report.last_primary_position {
        Some(p) => println!(
            "primary seen   {} at {} (archive then at {}, {} bytes behind)",
            p.primary,
            p.at.to_rfc3339(),
            p.durable,
            or_none(report.last_known_lag_bytes.map(|b| b.to_string()))
        ),
        None => println!("primary seen   -"),
    }
    println!(
        "backups        {} (newest {}, stopped {})",
        report.backups,
        or_none(report.newest_backup.clone()),
        or_none(report.newest_backup_stop_time.map(|t| t.to_rfc3339()))
    );
    Ok(())
}
