//! The two waits of promote: until the archive holds a position, and until
//! the standby has replayed what the archive holds. Both are bounded.

use crate::archive::Archive;
use crate::engine::ServerControl;
use std::time::Duration;
use tokio::time::Instant;

const ARCHIVE_POLL: Duration = Duration::from_millis(50);
const REPLAY_POLL: Duration = Duration::from_millis(20);

/// Waits until the archive's end is at or past `target`. Err carries where
/// it ended when `timeout` ran out.
pub async fn archive_reaches<C: ServerControl>(
    control: &C,
    archive: &Archive,
    target: &C::Position,
    timeout: Duration,
) -> anyhow::Result<Result<C::Position, Option<C::Position>>> {
    let deadline = Instant::now() + timeout;
    loop {
        let end = control.archive_end(archive).await?;
        if end.as_ref().is_some_and(|e| e >= target) {
            return Ok(Ok(end.expect("checked")));
        }
        if Instant::now() >= deadline {
            return Ok(Err(end));
        }
        tokio::time::sleep(ARCHIVE_POLL).await;
    }
}

/// Waits until the archive's end has not moved for `quiet`. False when it
/// was still moving at `bound`.
pub async fn archive_settles<C: ServerControl>(
    control: &C,
    archive: &Archive,
    quiet: Duration,
    bound: Duration,
) -> anyhow::Result<bool> {
    let deadline = Instant::now() + bound;
    let mut last = control.archive_end(archive).await?;
    let mut since = Instant::now();
    loop {
        if since.elapsed() >= quiet {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(ARCHIVE_POLL).await;
        let now = control.archive_end(archive).await?;
        if now != last {
            last = now;
            since = Instant::now();
        }
    }
}

/// How a standby drain ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Drained<P> {
    /// Replayed up to the target or past it.
    Reached(P),
    /// Stopped moving for longer than the standby waits between looks at
    /// the archive: it replayed all it can (the archive may end inside a
    /// record that will never be completed).
    Stalled(P),
    /// The deadline passed while it was still moving (or before `floor`).
    TimedOut(P),
}

impl<P> Drained<P> {
    pub fn position(&self) -> &P {
        match self {
            Drained::Reached(p) | Drained::Stalled(p) | Drained::TimedOut(p) => p,
        }
    }
}

/// Waits until the standby replays `target`, or has stalled at or past
/// `floor` for `settle`, or `timeout` passes.
pub async fn standby_replays<C: ServerControl>(
    control: &C,
    target: &C::Position,
    floor: Option<&C::Position>,
    settle: Duration,
    timeout: Duration,
) -> anyhow::Result<Drained<C::Position>> {
    let deadline = Instant::now() + timeout;
    let mut last = control.standby_replayed().await?;
    let mut since = Instant::now();
    loop {
        if last >= *target {
            return Ok(Drained::Reached(last));
        }
        let floor_met = floor.is_none_or(|f| last >= *f);
        if floor_met && since.elapsed() >= settle {
            return Ok(Drained::Stalled(last));
        }
        if Instant::now() >= deadline {
            return Ok(Drained::TimedOut(last));
        }
        tokio::time::sleep(REPLAY_POLL).await;
        let now = control.standby_replayed().await?;
        if now != last {
            last = now;
            since = Instant::now();
        }
    }
}
