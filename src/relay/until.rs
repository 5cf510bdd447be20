//! Where a relay stream stops: at the first transaction past a GTID
//! position or a point in time. Whole transactions only, decided on each
//! group's GTID event; after it nothing more is sent, so a replica that
//! caught up sits exactly at the target (point-in-time restore).

use chrono::{DateTime, Utc};
use instarec_mysql::{MariadbGtid, MariadbGtidPos};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UntilTarget {
    /// Send the transactions this position contains; stop at the first
    /// one it does not (a domain it does not name stops the stream too).
    Gtid(MariadbGtidPos),
    /// Send the transactions whose GTID event is stamped at or before this
    /// time (binlog timestamps are whole seconds); stop at the first later.
    Time(DateTime<Utc>),
}

impl UntilTarget {
    /// True if the transaction that `gtid` starts, its GTID event stamped
    /// `timestamp` (seconds since the Unix epoch), lies past the target.
    pub fn is_past(&self, gtid: &MariadbGtid, timestamp: u32) -> bool {
        match self {
            UntilTarget::Gtid(pos) => !pos.contains(gtid),
            UntilTarget::Time(_) => self.is_past_time(timestamp),
        }
    }

    /// For a transaction whose GTID event is stamped `timestamp`: past a
    /// time target (never past a GTID target, which is MariaDB's).
    pub fn is_past_time(&self, timestamp: u32) -> bool {
        match self {
            UntilTarget::Gtid(_) => false,
            // Whole seconds: stamped at or before T means at or before its second.
            UntilTarget::Time(t) => i64::from(timestamp) > t.timestamp(),
        }
    }
}

impl std::fmt::Display for UntilTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UntilTarget::Gtid(p) => write!(f, "GTID {p}"),
            UntilTarget::Time(t) => write!(f, "time {}", t.to_rfc3339()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gtid(domain_id: u32, seq_no: u64) -> MariadbGtid {
        MariadbGtid {
            domain_id,
            server_id: 1,
            seq_no,
        }
    }

    #[test]
    fn a_gtid_target_keeps_what_its_position_contains() {
        let until = UntilTarget::Gtid("0-1-10".parse().unwrap());
        assert!(!until.is_past(&gtid(0, 10), 0));
        assert!(until.is_past(&gtid(0, 11), 0));
        assert!(until.is_past(&gtid(1, 1), 0), "an unnamed domain stops");
        assert!(!until.is_past_time(u32::MAX), "a GTID target has no time");
    }

    #[test]
    fn a_time_target_keeps_its_whole_second() {
        let t = DateTime::parse_from_rfc3339("2026-11-27T10:00:05.700Z")
            .unwrap()
            .with_timezone(&Utc);
        let at = t.timestamp() as u32;
        let until = UntilTarget::Time(t);
        assert!(!until.is_past(&gtid(0, 1), at - 1));
        assert!(!until.is_past(&gtid(0, 1), at));
        assert!(until.is_past(&gtid(0, 1), at + 1));
    }
}
