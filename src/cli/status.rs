//! `instarec status`: the archive's view of the cluster, as a short table
//! or `--json`.

use super::Context;
use crate::exit::{CodedError, LAG_OVER_THRESHOLD};
use crate::status;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON (a stable contract, see README)
    #[arg(long)]
    pub json: bool,
    /// Only read the archive; don't ask the primary and standby
    #[arg(long)]
    pub archive_only: bool,
    /// Exit 6 when the archive is more than this many bytes behind the primary
    #[arg(long, value_name = "BYTES")]
    pub max_lag_bytes: Option<u64>,
    /// Exit 6 when the archive lags the primary by more than this (e.g. "5s")
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub max_lag: Option<std::time::Duration>,
}

pub async fn run(ctx: &Context, args: Args) -> anyhow::Result<()> {
    let config = ctx.config()?;
    let archive = ctx.open_archive(&config)?;
    let mut report = status::gather(&archive).await?;
    if !args.archive_only {
        report = status::with_live(report, &config).await;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&report);
    }
    check_thresholds(&report, &args)
}

/// Monitoring hook: exit 6 when the lag is over a threshold, or unknown.
fn check_thresholds(report: &status::StatusReport, args: &Args) -> anyhow::Result<()> {
    if let Some(max) = args.max_lag_bytes {
        match report.archive_lag_bytes {
            Some(lag) if lag <= max => {}
            Some(lag) => return Err(lag_error(format!("archive lag {lag} bytes exceeds --max-lag-bytes {max}"))),
            None => return Err(lag_error("archive lag unknown (primary unreachable or nothing archived); cannot check --max-lag-bytes".into())),
        }
    }
    if let Some(max) = args.max_lag {
        let lag = report
            .live
            .as_ref()
            .and_then(|l| l.archive_lag_seconds)
            .or(report.archive_lag_bytes.filter(|b| *b == 0).map(|_| 0.0));
        match lag {
            Some(s) if s <= max.as_secs_f64() => {}
            Some(s) => {
                return Err(lag_error(format!(
                    "archive lag {s:.3} s exceeds --max-lag {max:?}"
                )))
            }
            None => {
                return Err(lag_error(
                    "archive lag unknown (is `instarec ship` connected?); cannot check --max-lag"
                        .into(),
                ))
            }
        }
    }
    Ok(())
}

fn lag_error(message: String) -> anyhow::Error {
    CodedError::new(LAG_OVER_THRESHOLD, message).into()
}

fn print_text(report: &status::StatusReport) {
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
    let Some(live) = &report.live else {
        return;
    };
    match (&live.primary_position, &live.primary_error) {
        (Some(p), _) => println!(
            "primary        at {p}; archive {} bytes, {} s behind",
            or_none(report.archive_lag_bytes.map(|b| b.to_string())),
            or_none(live.archive_lag_seconds.map(|s| format!("{s:.3}")))
        ),
        (None, Some(e)) => println!("primary        unreachable: {e}"),
        _ => {}
    }
    match (&live.standby_replay_position, &live.standby_error) {
        (Some(p), _) => println!(
            "standby        replayed {p}; {} bytes behind the archive, last commit replayed {} s ago",
            or_none(report.standby_lag_bytes.map(|b| b.to_string())),
            or_none(live.standby_replay_delay_seconds.map(|s| format!("{s:.1}")))
        ),
        (None, Some(e)) => println!("standby        unreachable: {e}"),
        _ => {}
    }
    println!(
        "promote now    would lose ~{} bytes / {} s, take ~{} s",
        or_none(report.estimated_rpo_bytes.map(|b| b.to_string())),
        or_none(report.estimated_rpo_seconds.map(|s| format!("{s:.3}"))),
        or_none(report.estimated_rto_seconds.map(|s| format!("{s:.1}")))
    );
}
