//! A shipper started before its primary is up (a service manager starting
//! both at boot) waits for it with backoff, as a running shipper does after
//! losing its connection, and says so in the log on every attempt.

use crate::backoff::Backoff;
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
pub fn start_backoff() -> Backoff {
    Backoff::new(FIRST_DELAY, MAX_DELAY)
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
