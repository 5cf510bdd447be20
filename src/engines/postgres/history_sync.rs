//! Making sure the archive holds the timeline history a primary's WAL needs
//! before shipping starts.
//!
//! A promoted server keeps only its newest history files (a standby made by
//! a base backup gets just its own timeline's), so after a few promotions in
//! a row the primary cannot serve its ancestors' files. The current
//! timeline's file lists every ancestor, which is what recovery reads; the
//! ancestors' own files come from the archive when the server lacks them.

use super::{layout, timeline_history};
use crate::archive::Archive;
use anyhow::Context as _;
use bytes::Bytes;
use instarec_postgres::lsn::{Lsn, TimelineId};
use instarec_postgres::{PgError, ReplicationClient};

/// SQLSTATE undefined_file: the server has no history file for that timeline.
const UNDEFINED_FILE: &str = "58P01";

/// Archives the history of `current` and of every ancestor it lists that
/// the archive lacks; returns the parsed history of `current`.
pub async fn archive_history(
    client: &mut ReplicationClient,
    archive: &Archive,
    current: TimelineId,
) -> anyhow::Result<Vec<(TimelineId, Lsn)>> {
    if current.0 <= 1 {
        return Ok(Vec::new());
    }
    let key = layout::history_key(current);
    let content = match from_server(client, current).await? {
        Some(content) => content,
        None => archive.get_opt(&key).await?.with_context(|| {
            format!(
                "primary {} has no history file for its timeline {current} and archive {} has none either; the archive cannot follow this primary: take a new backup into a fresh archive prefix",
                client.addr(),
                archive.url()
            )
        })?,
    };
    let history = timeline_history::parse(&content);
    archive
        .put(&key, content)
        .await
        .with_context(|| format!("archiving the history of timeline {current}"))?;

    for (ancestor, _) in &history {
        if ancestor.0 <= 1 {
            continue; // timeline 1 has no history file
        }
        let key = layout::history_key(*ancestor);
        if archive.exists(&key).await? {
            continue;
        }
        match from_server(client, *ancestor).await? {
            Some(content) => {
                archive
                    .put(&key, content)
                    .await
                    .with_context(|| format!("archiving the history of timeline {ancestor}"))?;
            }
            // Recovery reads only the target timeline's file, which lists
            // this one, so its absence does not break a restore.
            None => tracing::warn!(
                timeline = %ancestor,
                current = %current,
                "neither the primary nor the archive has this ancestor's history file; timeline {current}'s history lists it, which is what recovery needs"
            ),
        }
    }
    Ok(history)
}

/// The server's history file for `tli`, or None when it no longer has it.
async fn from_server(
    client: &mut ReplicationClient,
    tli: TimelineId,
) -> anyhow::Result<Option<Bytes>> {
    match client.timeline_history(tli).await {
        Ok((_, content)) => Ok(Some(content)),
        Err(PgError::Server { code, .. }) if code == UNDEFINED_FILE => Ok(None),
        Err(e) => Err(e.into()),
    }
}
