//! A shipper started before its primary is up (a service manager starting
//! both at boot) waits for it with backoff, as a running shipper does after
//! losing its connection, and says so in the log on every attempt.

use instarec_mysql::MysqlError;
use instarec_postgres::PgError;
use std::time::Duration;

const FIRST_DELAY: Duration = Duration::from_millis(500);
const MAX_DELAY: Duration = Duration::from_secs(30);

/// What `ship` does when the primary cannot be reached at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartPolicy {
    /// Retry with backoff until it answers (or shutdown).
    #[default]
    WaitForPrimary,
    /// Fail at once (`ship --fail-fast`), for scripts that check reachability.
    FailFast,
}

/// Doubling delays from 0.5 s up to 30 s.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
    pub attempt: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: FIRST_DELAY,
            attempt: 0,
        }
    }
}

impl Backoff {
    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.attempt += 1;
        self.next = (self.next * 2).min(MAX_DELAY);
        delay
    }
}

/// Whether `err` says only that the primary could not be reached (which
/// waiting may fix), not that it refused us (credentials, another cluster).
pub fn is_unreachable(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<PgError>(),
            Some(
                PgError::Connect { .. }
                    | PgError::ConnectTimeout { .. }
                    | PgError::Io { .. }
                    | PgError::Closed { .. }
            )
        ) || matches!(
            cause.downcast_ref::<MysqlError>(),
            Some(MysqlError::Connect { .. } | MysqlError::Io { .. } | MysqlError::Closed { .. })
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap() {
        let mut b = Backoff::default();
        let delays: Vec<u64> = (0..9).map(|_| b.next_delay().as_millis() as u64).collect();
        assert_eq!(
            delays,
            [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
        assert_eq!(b.attempt, 9);
    }
}
