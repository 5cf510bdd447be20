//! `instarec demo`: ship, back up, stand by, crash, promote, report — on
//! this machine, in a temp dir, in well under a minute.

use super::signals::shutdown_on_signal;
use super::Context;
use crate::demo::{self, DemoOptions, DemoOutcome};
use crate::engine::Engine;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which database to run the story on
    #[arg(long, value_enum, default_value = "postgres")]
    pub engine: Engine,
    /// PostgreSQL's bin dir (initdb, postgres; 15 to 18); default: the
    /// first on PATH, then /usr/lib/postgresql/*/bin, newest first
    #[arg(long, value_name = "DIR")]
    pub pg_bin: Option<PathBuf>,
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
    let opts = DemoOptions {
        engine: args.engine,
        pg_bin: args.pg_bin,
        dir: args.dir,
        keep: args.keep,
        write_for: args.write_for,
        planned: args.planned,
    };
    let say = |line: &str| {
        if !json {
            println!("{line}");
        }
    };
    let keep_dir = args.keep || opts.dir.is_some();
    let interrupted = shutdown_on_signal("demo");
    // Dropping the demo on a signal stops its servers and children and
    // removes its temp dir (unless kept).
    let outcome = tokio::select! {
        outcome = demo::run(opts, say) => outcome.map_err(|e| {
            if keep_dir {
                e
            } else {
                e.context("the demo failed and removed its temp dir; rerun with --keep to read its logs")
            }
        })?,
        _ = interrupted.cancelled() => {
            anyhow::bail!("interrupted; the demo stopped its servers and cleaned up")
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
    } else {
        print_summary(&outcome, args.keep);
    }
    if !outcome.lost_commits_covered_by_rpo {
        anyhow::bail!("the reported RPO did not cover the lost commits");
    }
    Ok(())
}

/// The RPO in words: what the ledger saw lost, and the window promote
/// reports as possibly lost (its bound, which a failover only knows from
/// below in bytes).
fn rpo_sentence(outcome: &DemoOutcome) -> String {
    let r = &outcome.promote_report;
    let event = if r["mode"] == "planned" {
        "the switchover"
    } else {
        "the crash"
    };
    let lost = match outcome.lost_commits {
        0 => "no acknowledged commit lost".to_string(),
        1 => "1 acknowledged commit lost".to_string(),
        n => format!("{n} acknowledged commits lost"),
    };
    let window = match r["rpo_seconds"].as_f64() {
        Some(s) if s > 0.0 => {
            format!("anything committed in the last {s:.3} s before {event} could have been")
        }
        Some(_) => format!("nothing committed before {event} could have been"),
        None => "how much could have been is unknown".to_string(),
    };
    let bytes = match (r["rpo_bytes"].as_u64(), r["rpo_bytes_exact"] == false) {
        (Some(b), true) => format!(" (at least {b} bytes of log were not in the archive)"),
        (Some(b), false) => format!(" ({b} bytes of log were not in the archive)"),
        (None, _) => String::new(),
    };
    format!("{lost}; {window}{bytes}")
}

fn print_summary(outcome: &DemoOutcome, keep: bool) {
    let r = &outcome.promote_report;
    println!();
    let on = outcome
        .postgres_major
        .map_or(String::new(), |m| format!(" on PostgreSQL {m}"));
    println!(
        "promote ({}){on}: epoch {}, new primary {}",
        r["mode"].as_str().unwrap_or("?"),
        r["epoch"],
        r["new_primary"].as_str().unwrap_or("?")
    );
    println!(
        "  RTO  {:.2} s (until the new primary took a write through {})",
        r["rto_seconds"].as_f64().unwrap_or(f64::NAN),
        r["write_path"].as_str().unwrap_or("?")
    );
    println!("  RPO  {}", rpo_sentence(outcome));
    if let Some(n) = r["rpo_transactions"].as_u64() {
        let gtids = r["lost_gtids"].as_str().unwrap_or_default().trim();
        let at_least = if r["rpo_bytes_exact"] == false {
            "at least "
        } else {
            ""
        };
        if gtids.is_empty() {
            println!("       {at_least}{n} transactions were not in the archive");
        } else {
            println!("       {at_least}{n} transactions were not in the archive: {gtids}");
        }
    }
    if let Some(steps) = r["steps"].as_array() {
        for s in steps {
            println!(
                "       {:<24} {:.3} s",
                s["name"].as_str().unwrap_or("?"),
                s["seconds"].as_f64().unwrap_or(0.0)
            );
        }
    }
    let seconds = match r["rpo_seconds"].as_f64() {
        Some(s) => format!("{s:.3} s"),
        None => "unknown".into(),
    };
    println!(
        "ledger: {} commits acknowledged, {} present on the new primary, {} missing, {}",
        outcome.acknowledged_commits,
        outcome.present_commits,
        outcome.lost_commits,
        if outcome.lost_commits_covered_by_rpo {
            format!("all within the reported RPO ({seconds})")
        } else {
            format!("NOT covered by the reported RPO ({seconds}): please report this")
        }
    );
    if keep || outcome.dir_kept {
        println!("everything is kept in {}", outcome.dir);
    }
}
