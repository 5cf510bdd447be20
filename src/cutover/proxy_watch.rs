//! Follows the archive's fencing epochs: the primary of the newest epoch is
//! the one the proxy routes to.

use super::proxy_control::log_update;
use super::{HostPort, RouteTable, RouteUpdate};
use crate::archive::{Archive, ArchiveError, EpochRecord};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The newest epoch and its primary; None before the first claim. A record
/// whose primary is not host:port routes nowhere rather than to an old primary.
pub async fn read_current(
    archive: &Archive,
) -> Result<Option<(u64, Option<HostPort>)>, ArchiveError> {
    Ok(archive.current_epoch().await?.map(|record| {
        let upstream = primary_of(&record);
        (record.epoch.0, upstream)
    }))
}

/// Polls the archive every `interval` until `shutdown`, applying newer epochs.
pub async fn watch(
    archive: Archive,
    routes: Arc<RouteTable>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut failing = false;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        match read_current(&archive).await {
            Ok(Some((epoch, upstream))) => {
                if failing {
                    tracing::info!("proxy: reading epochs from the archive works again");
                    failing = false;
                }
                let update = routes.offer(epoch, upstream);
                if let RouteUpdate::Refused(reason) = &update {
                    // Normal when the control port already told us about a newer epoch.
                    tracing::debug!(epoch, "proxy: archive epoch not applied: {reason}");
                }
                log_update("archive", epoch, &update);
            }
            Ok(None) => {}
            Err(e) => {
                // Keep routing as we are: promote fences the old primary itself.
                if !failing {
                    tracing::warn!(error = %e, "proxy: cannot read epochs from the archive; keeping the current primary");
                    failing = true;
                }
            }
        }
    }
}

fn primary_of(record: &EpochRecord) -> Option<HostPort> {
    let text = record.primary.as_deref()?;
    match HostPort::parse(text) {
        Ok(p) => Some(p),
        Err(e) => {
            tracing::error!(epoch = record.epoch.0, error = %e, "proxy: epoch record names an unusable primary; routing nowhere");
            None
        }
    }
}
