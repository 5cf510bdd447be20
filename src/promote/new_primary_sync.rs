//! The new primary's zero-loss mode right after promotion ([promote]
//! synchronous_after_promote). A promoted standby inherits the old
//! primary's synchronous settings, but the shipper those name died with the
//! old primary's host or was fenced; until one streams from the new
//! primary, every commit there would wait. Like Patroni's non-strict
//! synchronous mode, the default runs asynchronously until a shipper
//! streams, then restores the setting, and the report says how long commits
//! were not zero-loss.

use crate::config::SynchronousAfterPromote;
use crate::engine::{ServerControl, SuspendedSynchronous};
use std::time::{Duration, Instant};

const POLL: Duration = Duration::from_millis(100);

/// Before the first write: in when-shipper-streams mode, stops the new
/// primary's commits from waiting for a shipper. Returns what was suspended.
pub async fn suspend<C: ServerControl>(
    control: &C,
    mode: SynchronousAfterPromote,
    notes: &mut Vec<String>,
) -> anyhow::Result<Option<SuspendedSynchronous>> {
    if mode != SynchronousAfterPromote::WhenShipperStreams {
        return Ok(None);
    }
    let suspended = control.suspend_synchronous().await?;
    if let Some(s) = &suspended {
        tracing::warn!(setting = %s.described, "the new primary inherited zero-loss mode; it runs asynchronously until a shipper streams from it");
        notes.push(format!(
            "the new primary inherited {}; it ran asynchronously from promotion until a shipper streamed from it ([promote] synchronous_after_promote = \"when-shipper-streams\")",
            s.described
        ));
    }
    Ok(suspended)
}

/// After the first write: waits up to `timeout` for a shipper to stream
/// from the new primary and restores what was suspended. Returns the line
/// for the report's `synchronous_after_promote`.
pub async fn restore<C: ServerControl>(
    control: &C,
    suspended: &SuspendedSynchronous,
    promoted_at: Instant,
    timeout: Duration,
    notes: &mut Vec<String>,
) -> anyhow::Result<String> {
    let deadline = Instant::now() + timeout;
    loop {
        match control.shipper_streaming().await {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => {
                tracing::debug!(error = %format!("{e:#}"), "could not ask whether a shipper streams")
            }
        }
        if Instant::now() >= deadline {
            let new_primary = control.standby_addr();
            tracing::error!(%new_primary, ?timeout, setting = %suspended.described, "NO SHIPPER STREAMS FROM THE NEW PRIMARY: its WAL is not archived and its commits are not zero-loss");
            notes.push(format!(
                "no shipper streamed from the new primary {new_primary} within {timeout:?}: its log is not being archived and it runs asynchronously; start `instarec ship` against it (follow_promotions = true follows on its own), then set {} again and reload",
                suspended.described
            ));
            return Ok(format!(
                "asynchronous: no shipper streamed within {:.0} s",
                timeout.as_secs_f64()
            ));
        }
        tokio::time::sleep(POLL).await;
    }
    control.restore_synchronous(suspended).await?;
    let after = promoted_at.elapsed().as_secs_f64();
    tracing::info!(setting = %suspended.described, seconds = format!("{after:.3}"), "a shipper streams from the new primary: zero-loss mode restored");
    notes.push(format!(
        "zero-loss mode ({}) restored {after:.3} s after promotion, once a shipper streamed; commits acknowledged before that were not zero-loss",
        suspended.described
    ));
    Ok(format!("restored after {after:.3} s"))
}
