//! `instarec archive verify`: read every object back and check it; for a
//! PostgreSQL archive also check WAL continuity and page headers.

use super::Context;
use crate::archive::ClusterRecord;
use crate::backup::layout::BACKUPS_PREFIX;
use crate::engine::Engine;
use crate::engines::mysql::binlog_verify::{self, BinlogReport};
use crate::engines::mysql::layout as binlog_layout;
use crate::engines::postgres::backup_verify::{self, BackupsVerified};
use crate::engines::postgres::layout::WAL_PREFIX;
use crate::engines::postgres::wal_verify::{self, WalReport};
use crate::exit::{CodedError, ARCHIVE_FAULT};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only verify keys starting with this prefix
    #[arg(default_value = "")]
    pub prefix: String,
    /// Print the summary as JSON
    #[arg(long)]
    pub json: bool,
}

pub async fn run(ctx: &Context, args: Args) -> anyhow::Result<()> {
    let config = ctx.config()?;
    let (archive, cluster) = ctx.open_existing_archive(&config).await?;
    let report = archive.verify_all(&args.prefix).await?;
    let mut faults: Vec<(String, String)> = report
        .faults
        .iter()
        .map(|(key, err)| (key.clone(), err.to_string()))
        .collect();
    let c = &cluster;
    let wal = if c.engine == Engine::Postgres && covers_wal(&args.prefix) {
        let wal = wal_verify::verify_wal(&archive, &c.system_id).await?;
        merge_wal_faults(&mut faults, &wal, &args.prefix);
        Some(wal)
    } else {
        None
    };
    let binlog = if c.engine == Engine::Mysql && covers_binlog(&args.prefix) {
        let binlog = binlog_verify::verify_binlog(&archive).await?;
        merge_binlog_faults(&mut faults, &binlog, &args.prefix);
        Some(binlog)
    } else {
        None
    };
    let backups = if c.engine == Engine::Postgres && covers_backups(&args.prefix) {
        let size = wal.as_ref().and_then(|w| w.segment_size);
        let verified = backup_verify::verify_backups(&archive, size).await?;
        for (key, message) in verified.faults.iter().cloned() {
            if !faults.iter().any(|(k, _)| *k == key) {
                faults.push((key, message));
            }
        }
        faults.sort_by(|a, b| a.0.cmp(&b.0));
        Some(verified)
    } else {
        None
    };
    if args.json {
        print_json(
            &archive,
            &report,
            &faults,
            wal.as_ref(),
            backups.as_ref(),
            binlog.as_ref(),
        );
    } else {
        print_text(&archive, &report, &faults, wal.as_ref(), &cluster);
        if let Some(b) = &binlog {
            println!(
                "binlog: {} chunks, {} events in {} files of {} epoch(s) checked (tiling, CRC32, GTID sequence, indexes)",
                b.chunks, b.events, b.files, b.epochs
            );
        }
        if let Some(b) = &backups {
            println!(
                "backups: {} checked (chunks, manifest, WAL from start to stop){}",
                b.checked,
                majors_in_words(&b.majors)
            );
        }
    }
    if faults.is_empty() {
        Ok(())
    } else {
        Err(CodedError::new(
            ARCHIVE_FAULT,
            format!(
                "archive verify found {} faults; see the FAULT lines above: restore those keys from a replica of the bucket or re-ship them",
                faults.len()
            ),
        )
        .into())
    }
}

/// Whether keys under `prefix` can include backups.
fn covers_backups(prefix: &str) -> bool {
    BACKUPS_PREFIX.starts_with(prefix) || prefix.starts_with(BACKUPS_PREFIX)
}

/// Whether keys under `prefix` can include WAL.
fn covers_wal(prefix: &str) -> bool {
    WAL_PREFIX.starts_with(prefix) || prefix.starts_with(WAL_PREFIX)
}

/// Whether keys under `prefix` can include binlog chunks or their indexes.
fn covers_binlog(prefix: &str) -> bool {
    [binlog_layout::BINLOG_PREFIX, binlog_layout::INDEX_PREFIX]
        .iter()
        .any(|p| p.starts_with(prefix) || prefix.starts_with(p))
}

/// Adds the binlog faults under `prefix`, except for keys already reported.
fn merge_binlog_faults(faults: &mut Vec<(String, String)>, binlog: &BinlogReport, prefix: &str) {
    for f in &binlog.faults {
        let seen = faults.iter().any(|(key, _)| *key == f.key);
        if !seen && f.key.starts_with(prefix) {
            faults.push((f.key.clone(), f.message.clone()));
        }
    }
    faults.sort_by(|a, b| a.0.cmp(&b.0));
}

/// Adds the WAL faults under `prefix`, except for keys the object walk
/// already reported (a corrupt object's header can't be checked either).
fn merge_wal_faults(faults: &mut Vec<(String, String)>, wal: &WalReport, prefix: &str) {
    for f in &wal.faults {
        let seen = faults.iter().any(|(key, _)| *key == f.key);
        if !seen && (f.key.starts_with(prefix) || prefix.starts_with(&f.key)) {
            faults.push((f.key.clone(), f.message.clone()));
        }
    }
    faults.sort_by(|a, b| a.0.cmp(&b.0));
}

/// "; taken on PostgreSQL 17 (2), 18 (1)", or "" without backups.
fn majors_in_words(majors: &[(String, Option<u32>)]) -> String {
    let mut counts: std::collections::BTreeMap<Option<u32>, usize> = Default::default();
    for (_, major) in majors {
        *counts.entry(*major).or_default() += 1;
    }
    if counts.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = counts
        .iter()
        .map(|(major, n)| match major {
            Some(m) => format!("{m} ({n})"),
            None => format!("an unrecorded major ({n})"),
        })
        .collect();
    format!("; taken on PostgreSQL {}", parts.join(", "))
}

fn print_json(
    archive: &crate::archive::Archive,
    report: &crate::archive::VerifyReport,
    faults: &[(String, String)],
    wal: Option<&WalReport>,
    backups: Option<&BackupsVerified>,
    binlog: Option<&BinlogReport>,
) {
    let backup_majors = backups.map(|b| {
        b.majors
            .iter()
            .map(|(id, major)| (id.clone(), serde_json::json!(major)))
            .collect::<serde_json::Map<_, _>>()
    });
    let faults: Vec<_> = faults
        .iter()
        .map(|(key, error)| serde_json::json!({ "key": key, "error": error }))
        .collect();
    let wal = wal.map(|w| {
        serde_json::json!({
            "segment_size": w.segment_size.map(|s| s.bytes()),
            "headers_checked": w.headers_checked,
            "timelines": w.timelines.iter().map(|t| serde_json::json!({
                "timeline": t.tli.0,
                "segments": t.segments,
                "first_segment": t.first.map(|s| s.0),
                "last_segment": t.last.map(|s| s.0),
            })).collect::<Vec<_>>(),
        })
    });
    println!(
        "{}",
        serde_json::json!({
            "archive": archive.url(),
            "objects": report.objects,
            "bytes": report.bytes,
            "faults": faults,
            "wal": wal,
            "backups_checked": backups.map(|b| b.checked),
            "backup_majors": backup_majors,
            "binlog": binlog.map(|b| serde_json::json!({
                "epochs": b.epochs,
                "files": b.files,
                "chunks": b.chunks,
                "events": b.events,
            })),
        })
    );
}

fn print_text(
    archive: &crate::archive::Archive,
    report: &crate::archive::VerifyReport,
    faults: &[(String, String)],
    wal: Option<&WalReport>,
    cluster: &ClusterRecord,
) {
    for (key, error) in faults {
        println!("FAULT {key}: {error}");
    }
    let owner = format!("{} system {}", cluster.engine, cluster.system_id);
    println!(
        "{}: {} objects, {} bytes, {} faults ({owner})",
        archive.url(),
        report.objects,
        report.bytes,
        faults.len()
    );
    if let Some(w) = wal {
        let segments: u64 = w.timelines.iter().map(|t| t.segments).sum();
        match w.segment_size {
            Some(size) => println!(
                "WAL: {segments} segments of {size} on {} timeline(s), {} page headers checked",
                w.timelines.len(),
                w.headers_checked
            ),
            None => println!("WAL: none archived"),
        }
    }
}
