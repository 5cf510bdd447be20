//! `instarec archive verify`: read every object back and check it.

use super::Context;
use crate::archive::ClusterTag;
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
    let mut archive = ctx.open_archive(&config)?;
    // Bind to the recorded cluster so every object's cluster tag is checked.
    let cluster = archive.read_cluster().await?;
    if let Some(c) = &cluster {
        archive = archive.bind_cluster(ClusterTag::of(c.engine, &c.system_id));
    }
    let report = archive.verify_all(&args.prefix).await?;
    if args.json {
        let faults: Vec<_> = report
            .faults
            .iter()
            .map(|(key, err)| serde_json::json!({ "key": key, "error": err.to_string() }))
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "archive": archive.url(),
                "objects": report.objects,
                "bytes": report.bytes,
                "faults": faults,
            })
        );
    } else {
        for (key, err) in &report.faults {
            println!("FAULT {key}: {err}");
        }
        let owner = match &cluster {
            Some(c) => format!("{} system {}", c.engine, c.system_id),
            None => "no cluster record".into(),
        };
        println!(
            "{}: {} objects, {} bytes, {} faults ({owner})",
            archive.url(),
            report.objects,
            report.bytes,
            report.faults.len()
        );
    }
    if report.faults.is_empty() {
        Ok(())
    } else {
        Err(CodedError::new(
            ARCHIVE_FAULT,
            format!(
                "archive verify found {} faulty objects; see the FAULT lines above, restore those keys from a replica of the bucket or re-ship them",
                report.faults.len()
            ),
        )
        .into())
    }
}
