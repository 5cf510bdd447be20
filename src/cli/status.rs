//! `instarec status`: the archive's view of the cluster, as a short table
//! or `--json`.

use super::Context;
use crate::engines::mysql::live_status as mysql_live;
use crate::engines::postgres::live_status as pg_live;
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
    /// MySQL/MariaDB: exit 6 when the archive lacks more than this many of
    /// the primary's transactions
    #[arg(long, value_name = "N")]
    pub max_lag_transactions: Option<u64>,
    /// Answer within this (e.g. "5s"): what the archive or a server has not
    /// answered by then is reported as unknown, with exit 6
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
}

pub async fn run(ctx: &Context, args: Args) -> anyhow::Result<()> {
    let config = ctx.config()?;
    // Never created, and its cluster record is checked inside the deadline
    // (a stalled store must not hold the command past --timeout).
    let archive = ctx.open_existing_archive_unchecked(&config)?;
    let report = status::gather_within(&archive, &config, !args.archive_only, args.timeout).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&report);
    }
    if let Some(what) = &report.timed_out {
        return Err(lag_error(format!(
            "status is incomplete: {what}; the lag cannot be measured (raise --timeout, or check the store)"
        )));
    }
    check_thresholds(&report, &args)?;
    check_reached(&report)
}

/// Exit 6 as well when a server the config asks about could not be reached:
/// what a promote would lose or take is then unknown.
fn check_reached(report: &status::StatusReport) -> anyhow::Result<()> {
    let (primary, standby) = match &report.live {
        Some(status::Live::Postgres(l)) => (&l.primary_error, &l.standby_error),
        Some(status::Live::Mysql(l)) => (&l.primary_error, &l.standby_error),
        None => return Ok(()),
    };
    let unreached: Vec<String> = [("primary", primary), ("standby", standby)]
        .into_iter()
        .filter_map(|(what, e)| e.as_ref().map(|e| format!("the {what} ({e})")))
        .collect();
    if unreached.is_empty() {
        return Ok(());
    }
    Err(lag_error(format!(
        "could not reach {}; start it or fix its url, or use --archive-only to read the archive alone",
        unreached.join(" and ")
    )))
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
    if let Some(max) = args.max_lag_transactions {
        match report.archive_lag_transactions {
            Some(lag) if lag <= max => {}
            Some(lag) => return Err(lag_error(format!("archive lag {lag} transactions exceeds --max-lag-transactions {max}"))),
            None => return Err(lag_error("archive lag in transactions unknown (primary unreachable, nothing archived, or not MySQL/MariaDB); cannot check --max-lag-transactions".into())),
        }
    }
    if let Some(max) = args.max_lag {
        let lag = report
            .live
            .as_ref()
            .and_then(|l| l.archive_lag_seconds())
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
    println!("archive        {}", report.archive);
    if let Some(what) = &report.timed_out {
        println!("timed out      {what}");
    }
    println!(
        "cluster        {} {}",
        or_none(report.engine.map(|e| e.to_string())),
        or_none(report.system_id.clone())
    );
    println!(
        "epoch          {} (primary {}, claimed by {} at {})",
        or_none(report.epoch.map(|e| e.to_string())),
        or_none(report.epoch_primary.clone()),
        or_none(report.epoch_holder.clone()),
        or_none(report.epoch_claimed_at.map(|t| t.to_rfc3339()))
    );
    match &report.archive_end_binlog {
        Some(binlog) => println!(
            "archive end    {} ({binlog}, last event at {})",
            or_none(report.archive_end.clone()),
            or_none(report.archive_end_time.map(|t| t.to_rfc3339()))
        ),
        None => println!(
            "archive end    {} on timeline {}",
            or_none(report.archive_end.clone()),
            or_none(report.timeline.map(|t| t.to_string()))
        ),
    }
    match &report.last_primary_position {
        Some(p) => println!(
            "primary seen   {} at {} (archive then at {}, {} behind)",
            p.primary,
            p.at.to_rfc3339(),
            p.durable,
            match report.last_known_lag_transactions {
                Some(n) => format!("{n} transactions"),
                None => format!(
                    "{} bytes",
                    or_none(report.last_known_lag_bytes.map(|b| b.to_string()))
                ),
            }
        ),
        None => println!("primary seen   -"),
    }
    println!(
        "backups        {} (newest {}, stopped {})",
        report.backups,
        or_none(report.newest_backup.clone()),
        or_none(report.newest_backup_stop_time.map(|t| t.to_rfc3339()))
    );
    let (primary_error, standby_error, standby_answered) = match &report.live {
        Some(status::Live::Postgres(live)) => {
            print_postgres_live(report, live);
            (
                &live.primary_error,
                &live.standby_error,
                live.standby_replay_position.is_some(),
            )
        }
        Some(status::Live::Mysql(live)) => {
            print_mysql_live(report, live);
            (
                &live.primary_error,
                &live.standby_error,
                live.standby_replay_position.is_some(),
            )
        }
        None => return,
    };
    println!(
        "promote now    {}",
        promote_estimate(report, primary_error, standby_error, standby_answered)
    );
}

/// What a promote would lose and take, or in words why that is unknown.
fn promote_estimate(
    report: &status::StatusReport,
    primary_error: &Option<String>,
    standby_error: &Option<String>,
    standby_answered: bool,
) -> String {
    let lost = match (
        report.estimated_rpo_transactions,
        report.estimated_rpo_bytes,
        report.estimated_rpo_seconds,
    ) {
        (Some(n), _, Some(s)) => format!("would lose {n} transactions / {s:.3} s"),
        (Some(n), _, None) => format!("would lose {n} transactions"),
        (None, Some(b), Some(s)) => format!("would lose ~{b} bytes / {s:.3} s"),
        (None, Some(b), None) => format!("would lose ~{b} bytes"),
        (None, None, _) => format!(
            "loss unknown: {}",
            match (primary_error, &report.archive_end) {
                (Some(_), _) => "the primary is unreachable (above)",
                (None, None) => "the archive holds no log yet",
                (None, Some(_)) => "the primary's position was not measured",
            }
        ),
    };
    let takes = match (report.estimated_rto_seconds, standby_error) {
        (Some(s), _) => format!("take ~{s:.1} s"),
        (None, Some(_)) => "duration unknown: the standby is unreachable (above)".into(),
        (None, None) if standby_answered => {
            "duration unknown: the archive's end is not known".into()
        }
        (None, None) => "duration unknown: no standby to ask ([standby] url)".into(),
    };
    format!("{lost}, {takes}")
}

fn or_none(v: Option<String>) -> String {
    v.unwrap_or_else(|| "-".into())
}

/// One server's line: what it said, or why it could not be asked.
fn print_server(
    label: &str,
    position: &Option<String>,
    error: &Option<String>,
    seen: impl FnOnce(&str) -> String,
) {
    match (position, error) {
        (Some(p), _) => println!("{label:<15}{}", seen(p)),
        (None, Some(e)) => println!("{label:<15}unreachable: {e}"),
        _ => {}
    }
}

fn print_postgres_live(report: &status::StatusReport, live: &pg_live::LiveStatus) {
    print_server(
        "primary",
        &live.primary_position,
        &live.primary_error,
        |p| {
            format!(
                "at {p}; archive {} bytes, {} s behind",
                or_none(report.archive_lag_bytes.map(|b| b.to_string())),
                or_none(live.archive_lag_seconds.map(|s| format!("{s:.3}")))
            )
        },
    );
    print_server(
        "standby",
        &live.standby_replay_position,
        &live.standby_error,
        |p| {
            format!(
                "replayed {p}; {} bytes behind the archive, last commit replayed {} s ago",
                or_none(report.standby_lag_bytes.map(|b| b.to_string())),
                or_none(live.standby_replay_delay_seconds.map(|s| format!("{s:.1}")))
            )
        },
    );
}

fn print_mysql_live(report: &status::StatusReport, live: &mysql_live::LiveStatus) {
    print_server(
        "primary",
        &live.primary_position,
        &live.primary_error,
        |p| {
            format!(
                "at {p} ({}); archive {} transactions, {} bytes, at most {} s behind",
                or_none(live.primary_binlog.clone()),
                or_none(report.archive_lag_transactions.map(|n| n.to_string())),
                or_none(report.archive_lag_bytes.map(|b| b.to_string())),
                or_none(live.archive_lag_seconds.map(|s| format!("{s:.3}")))
            )
        },
    );
    print_server(
        "standby",
        &live.standby_replay_position,
        &live.standby_error,
        |p| {
            format!(
                "applied {p}; {} transactions behind the archive, Seconds_Behind_Master {}",
                or_none(report.standby_lag_transactions.map(|n| n.to_string())),
                or_none(live.standby_replay_delay_seconds.map(|s| format!("{s:.0}")))
            )
        },
    );
}
