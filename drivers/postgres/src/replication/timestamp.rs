//! The replication protocol's clock: microseconds since 2000-01-01 00:00:00 UTC.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds from the Unix epoch to PostgreSQL's epoch (2000-01-01).
const PG_EPOCH_UNIX_SECS: u64 = 946_684_800;

#[derive(Copy, Clone, Eq, PartialEq, Ord, PartialOrd, Hash, Debug, Default)]
pub struct PgTimestamp(pub i64);

impl PgTimestamp {
    pub fn now() -> PgTimestamp {
        PgTimestamp::from_system_time(SystemTime::now())
    }

    pub fn from_system_time(t: SystemTime) -> PgTimestamp {
        let pg_epoch = UNIX_EPOCH + Duration::from_secs(PG_EPOCH_UNIX_SECS);
        match t.duration_since(pg_epoch) {
            Ok(d) => PgTimestamp(i64::try_from(d.as_micros()).unwrap_or(i64::MAX)),
            Err(e) => PgTimestamp(
                i64::try_from(e.duration().as_micros())
                    .map(|m| -m)
                    .unwrap_or(i64::MIN),
            ),
        }
    }

    pub fn to_system_time(self) -> SystemTime {
        let pg_epoch = UNIX_EPOCH + Duration::from_secs(PG_EPOCH_UNIX_SECS);
        let d = Duration::from_micros(self.0.unsigned_abs());
        if self.0 >= 0 {
            pg_epoch + d
        } else {
            pg_epoch - d
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_to_and_from_system_time() {
        let pg_epoch = UNIX_EPOCH + Duration::from_secs(946_684_800);
        assert_eq!(PgTimestamp::from_system_time(pg_epoch), PgTimestamp(0));
        assert_eq!(
            PgTimestamp(1_500_000).to_system_time(),
            pg_epoch + Duration::from_micros(1_500_000)
        );
        assert_eq!(
            PgTimestamp::from_system_time(UNIX_EPOCH),
            PgTimestamp(-946_684_800_000_000)
        );
        assert_eq!(
            PgTimestamp(-5).to_system_time(),
            pg_epoch - Duration::from_micros(5)
        );
        let now = PgTimestamp::now();
        assert_eq!(PgTimestamp::from_system_time(now.to_system_time()), now);
    }
}
