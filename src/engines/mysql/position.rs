//! Where the shipper is in a MySQL/MariaDB binlog: the GTID state after the
//! last complete transaction, plus the file offset the stream was at.
//!
//! Displayed as the GTID state ("0-1-42,1-2-7" or "uuid:1-42"), which is
//! what survives a promotion; the file offset only means something on the
//! server that wrote it.

use instarec_mysql::{BinlogPosition, EventGtid, MariadbGtidPos, MysqlGtidSet, ServerFlavor};
use std::fmt;

/// The GTID state in the server's own flavour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GtidState {
    /// @@gtid_binlog_pos: the last GTID of each domain.
    Mariadb(MariadbGtidPos),
    /// @@gtid_executed: every transaction.
    Mysql(MysqlGtidSet),
}

impl GtidState {
    /// Moves past `gtid`. A MariaDB domain takes the GTID as its latest even
    /// when its seq_no does not grow: the primary's binlog order is the truth.
    pub fn apply(&mut self, gtid: &EventGtid) {
        match (self, gtid) {
            (GtidState::Mariadb(pos), EventGtid::Mariadb(g)) => {
                *pos = pos.iter().copied().chain([*g]).collect();
            }
            (GtidState::Mysql(set), EventGtid::Mysql(g)) => {
                set.add(g.uuid, g.gno);
            }
            // A flavour change mid-stream cannot happen on one connection;
            // the GTID is still in the index's first/last fields.
            (state, gtid) => tracing::warn!(%state, %gtid, "GTID of the other flavour ignored"),
        }
    }

    /// True if the transaction `gtid` is already at or before this state.
    pub fn contains(&self, gtid: &EventGtid) -> bool {
        match (self, gtid) {
            (GtidState::Mariadb(pos), EventGtid::Mariadb(g)) => pos.contains(g),
            (GtidState::Mysql(set), EventGtid::Mysql(g)) => set.contains(g),
            _ => false,
        }
    }

    /// The single-domain MariaDB seq_no, as a gauge value.
    pub fn single_seq_no(&self) -> Option<i64> {
        match self {
            GtidState::Mariadb(pos) => {
                let mut it = pos.iter();
                match (it.next(), it.next()) {
                    (Some(g), None) => i64::try_from(g.seq_no).ok(),
                    _ => None,
                }
            }
            GtidState::Mysql(_) => None,
        }
    }

    /// No transactions yet, in `flavor`'s notation.
    pub fn empty(flavor: ServerFlavor) -> GtidState {
        match flavor {
            ServerFlavor::Mariadb => GtidState::Mariadb(MariadbGtidPos::new()),
            ServerFlavor::Mysql => GtidState::Mysql(MysqlGtidSet::new()),
        }
    }

    /// Parses what a `flavor` server says (@@gtid_binlog_pos, @@gtid_executed…).
    pub fn parse_from(flavor: ServerFlavor, text: &str) -> Result<GtidState, String> {
        GtidState::parse(GtidState::empty(flavor).flavor_name(), text)
    }

    pub fn flavor_name(&self) -> &'static str {
        match self {
            GtidState::Mariadb(_) => "mariadb",
            GtidState::Mysql(_) => "mysql",
        }
    }

    /// Parses the text of `flavor_name()`'s flavour.
    pub fn parse(flavor: &str, text: &str) -> Result<GtidState, String> {
        match flavor {
            "mariadb" => text
                .parse()
                .map(GtidState::Mariadb)
                .map_err(|e| e.to_string()),
            "mysql" => text
                .parse()
                .map(GtidState::Mysql)
                .map_err(|e| e.to_string()),
            other => Err(format!("unknown GTID flavour {other:?}")),
        }
    }
}

impl fmt::Display for GtidState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GtidState::Mariadb(p) => p.fmt(f),
            GtidState::Mysql(s) => s.fmt(f),
        }
    }
}

/// The `LogSource` position: GTID state and the file offset it was reached at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinlogPoint {
    pub gtid: GtidState,
    /// Offset just past the last event taken into account (file "" and 0
    /// before the first event).
    pub at: BinlogPosition,
}

impl BinlogPoint {
    /// Bytes from `earlier` to `self` when both are in the same file.
    pub fn bytes_after(&self, earlier: &BinlogPoint) -> Option<u64> {
        (self.at.file == earlier.at.file).then(|| self.at.pos.saturating_sub(earlier.at.pos))
    }
}

impl fmt::Display for BinlogPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.gtid.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use instarec_mysql::MariadbGtid;

    fn gtid(domain_id: u32, server_id: u32, seq_no: u64) -> EventGtid {
        EventGtid::Mariadb(MariadbGtid {
            domain_id,
            server_id,
            seq_no,
        })
    }

    #[test]
    fn mariadb_state_moves_per_domain_and_prints_like_the_server() {
        let mut s = GtidState::Mariadb(MariadbGtidPos::new());
        assert_eq!(s.to_string(), "");
        s.apply(&gtid(0, 1, 41));
        s.apply(&gtid(0, 1, 42));
        assert_eq!(s.single_seq_no(), Some(42));
        s.apply(&gtid(1, 2, 7));
        assert_eq!(s.to_string(), "0-1-42,1-2-7");
        assert_eq!(s.single_seq_no(), None);
        assert_eq!(GtidState::parse("mariadb", "0-1-42,1-2-7").unwrap(), s);
        assert!(GtidState::parse("mariadb", "0-1").is_err());
        assert!(GtidState::parse("oracle", "").is_err());
    }

    #[test]
    fn mysql_state_is_a_set() {
        let uuid = "3e11fa47-71ca-11e1-9e33-c80aa9429562".parse().unwrap();
        let mut s = GtidState::Mysql(MysqlGtidSet::new());
        for gno in 1..=3 {
            s.apply(&EventGtid::Mysql(instarec_mysql::MysqlGtid { uuid, gno }));
        }
        assert_eq!(s.to_string(), "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-3");
        assert_eq!(GtidState::parse("mysql", &s.to_string()).unwrap(), s);
    }

    #[test]
    fn byte_distance_only_within_one_file() {
        let at = |file: &str, pos| BinlogPoint {
            gtid: GtidState::Mariadb(MariadbGtidPos::new()),
            at: BinlogPosition {
                file: file.into(),
                pos,
            },
        };
        assert_eq!(
            at("b.000001", 900).bytes_after(&at("b.000001", 400)),
            Some(500)
        );
        assert_eq!(at("b.000002", 900).bytes_after(&at("b.000001", 400)), None);
    }
}
