//! MariaDB GTIDs ("0-1-42") and GTID positions ("0-1-42,1-2-7").
//!
//! A MariaDB GTID is domain-server-seq_no. A position, as in
//! @@gtid_binlog_pos or @@gtid_slave_pos, holds at most one GTID per
//! replication domain: the last one applied in that domain. Within a domain
//! seq_no only grows (gtid_strict_mode), so "has the standby got everything
//! the primary had" is a per-domain comparison of seq_no.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GtidError {
    #[error(
        "invalid MariaDB GTID {text:?}: {reason}; write it as domain-server-seq_no, e.g. 0-1-42"
    )]
    InvalidGtid { text: String, reason: &'static str },
    #[error(
        "GTID position {text:?} names domain {domain_id} twice; a position holds one GTID per domain, e.g. 0-1-42,1-2-7"
    )]
    DuplicateDomain { text: String, domain_id: u32 },
    #[error(
        "GTID {next} does not come after {current} in domain {domain_id}; with gtid_strict_mode seq_no only grows, so the binlog stream is out of order or from a different history"
    )]
    OutOfOrder {
        domain_id: u32,
        current: MariadbGtid,
        next: MariadbGtid,
    },
}

/// One MariaDB global transaction id, displayed as `domain-server-seq_no`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MariadbGtid {
    pub domain_id: u32,
    pub server_id: u32,
    pub seq_no: u64,
}

impl fmt::Display for MariadbGtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.domain_id, self.server_id, self.seq_no)
    }
}

impl FromStr for MariadbGtid {
    type Err = GtidError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |reason| GtidError::InvalidGtid {
            text: s.to_string(),
            reason,
        };
        let mut parts = s.trim().split('-');
        let (Some(domain), Some(server), Some(seq), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid("expected three numbers separated by '-'"));
        };
        Ok(MariadbGtid {
            domain_id: parse_decimal(domain).ok_or_else(|| invalid("domain_id is not a u32"))?,
            server_id: parse_decimal(server).ok_or_else(|| invalid("server_id is not a u32"))?,
            seq_no: parse_decimal(seq).ok_or_else(|| invalid("seq_no is not a u64"))?,
        })
    }
}

/// Plain ASCII digits only: `u64::from_str` would also take a leading '+'.
fn parse_decimal<T: FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A GTID position: the last GTID of each replication domain.
///
/// Displayed sorted by domain, comma-separated, like @@gtid_binlog_pos. The
/// empty position (a server that never logged a transaction) displays as "".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MariadbGtidPos {
    by_domain: BTreeMap<u32, MariadbGtid>,
}

impl MariadbGtidPos {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.by_domain.is_empty()
    }

    /// The last GTID of `domain_id`, if the position has one.
    pub fn get(&self, domain_id: u32) -> Option<&MariadbGtid> {
        self.by_domain.get(&domain_id)
    }

    /// The GTIDs, one per domain, in domain order.
    pub fn iter(&self) -> impl Iterator<Item = &MariadbGtid> {
        self.by_domain.values()
    }

    /// True if the transaction `gtid` is at or before this position in its
    /// domain. The server_id does not matter: in strict mode seq_no alone
    /// orders a domain's history.
    pub fn contains(&self, gtid: &MariadbGtid) -> bool {
        self.by_domain
            .get(&gtid.domain_id)
            .is_some_and(|last| gtid.seq_no <= last.seq_no)
    }

    /// Moves the position past `gtid`, as a replica does when it applies it.
    ///
    /// Strict mode: `gtid` must have a larger seq_no than the domain's
    /// current entry, otherwise the position is left unchanged and an error
    /// names both GTIDs.
    pub fn advance(&mut self, gtid: MariadbGtid) -> Result<(), GtidError> {
        if let Some(current) = self.by_domain.get(&gtid.domain_id) {
            if gtid.seq_no <= current.seq_no {
                return Err(GtidError::OutOfOrder {
                    domain_id: gtid.domain_id,
                    current: *current,
                    next: gtid,
                });
            }
        }
        self.by_domain.insert(gtid.domain_id, gtid);
        Ok(())
    }

    /// What this position has that `other` lacks: per domain, the seq_no
    /// range after `other`'s entry up to this position's entry.
    ///
    /// `primary.missing_from(&standby)` is what a promote would lose. Domains
    /// where `other` is level or ahead contribute nothing. A range can count
    /// seq_nos that were never used (a session may set gtid_seq_no to skip
    /// ahead), so its count is an upper bound on lost transactions, never less.
    pub fn missing_from(&self, other: &MariadbGtidPos) -> Vec<MariadbGtidRange> {
        self.by_domain
            .values()
            .filter_map(|last| {
                let other_seq = other.get(last.domain_id).map_or(0, |g| g.seq_no);
                (last.seq_no > other_seq).then(|| MariadbGtidRange {
                    domain_id: last.domain_id,
                    first_seq_no: other_seq + 1,
                    last: *last,
                })
            })
            .collect()
    }
}

impl fmt::Display for MariadbGtidPos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, gtid) in self.by_domain.values().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{gtid}")?;
        }
        Ok(())
    }
}

impl FromStr for MariadbGtidPos {
    type Err = GtidError;

    /// Accepts what the server prints: comma-separated GTIDs in any domain
    /// order, optional spaces, the empty string for the empty position.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut pos = MariadbGtidPos::new();
        if s.trim().is_empty() {
            return Ok(pos);
        }
        for part in s.split(',') {
            let gtid: MariadbGtid = part.parse()?;
            if pos.by_domain.insert(gtid.domain_id, gtid).is_some() {
                return Err(GtidError::DuplicateDomain {
                    text: s.to_string(),
                    domain_id: gtid.domain_id,
                });
            }
        }
        Ok(pos)
    }
}

impl FromIterator<MariadbGtid> for MariadbGtidPos {
    /// Later GTIDs of a domain replace earlier ones, as when a binlog
    /// state is replayed in order.
    fn from_iter<I: IntoIterator<Item = MariadbGtid>>(iter: I) -> Self {
        let mut pos = MariadbGtidPos::new();
        for gtid in iter {
            pos.by_domain.insert(gtid.domain_id, gtid);
        }
        pos
    }
}

/// The transactions of one domain from `first_seq_no` up to and including
/// `last`, displayed as "0-1-[3..7]" (the server_id is that of `last`; the
/// earlier transactions may have come from other servers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MariadbGtidRange {
    pub domain_id: u32,
    pub first_seq_no: u64,
    pub last: MariadbGtid,
}

impl MariadbGtidRange {
    /// How many seq_nos the range spans (an upper bound on transactions).
    pub fn count(&self) -> u64 {
        self.last.seq_no - self.first_seq_no + 1
    }
}

impl fmt::Display for MariadbGtidRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first_seq_no == self.last.seq_no {
            write!(f, "{}", self.last)
        } else {
            write!(
                f,
                "{}-{}-[{}..{}]",
                self.domain_id, self.last.server_id, self.first_seq_no, self.last.seq_no
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gtid(d: u32, s: u32, n: u64) -> MariadbGtid {
        MariadbGtid {
            domain_id: d,
            server_id: s,
            seq_no: n,
        }
    }

    #[test]
    fn gtid_round_trips_through_text() {
        let g: MariadbGtid = "0-1-42".parse().unwrap();
        assert_eq!(g, gtid(0, 1, 42));
        assert_eq!(g.to_string(), "0-1-42");
        let big: MariadbGtid = "4294967295-4294967295-18446744073709551615"
            .parse()
            .unwrap();
        assert_eq!(big, gtid(u32::MAX, u32::MAX, u64::MAX));
    }

    #[test]
    fn gtid_rejects_malformed_text() {
        for bad in [
            "",
            "0-1",
            "0-1-2-3",
            "a-1-2",
            "0--2",
            "-1-1-2",
            "+0-1-2",
            "0-1-x",
            "4294967296-1-1",
            "0-1-18446744073709551616",
            "0 1 2",
        ] {
            let err = bad.parse::<MariadbGtid>().unwrap_err();
            assert!(err.to_string().contains("e.g. 0-1-42"), "{bad}: {err}");
        }
    }

    #[test]
    fn position_parses_and_displays_sorted_by_domain() {
        let pos: MariadbGtidPos = "1-2-7, 0-1-42".parse().unwrap();
        assert_eq!(pos.to_string(), "0-1-42,1-2-7");
        assert_eq!(pos.get(1), Some(&gtid(1, 2, 7)));
        assert_eq!(pos.iter().count(), 2);
        let empty: MariadbGtidPos = "".parse().unwrap();
        assert!(empty.is_empty());
        assert_eq!(empty.to_string(), "");
    }

    #[test]
    fn position_rejects_two_gtids_in_one_domain() {
        let err = "0-1-5,0-2-6".parse::<MariadbGtidPos>().unwrap_err();
        assert_eq!(
            err,
            GtidError::DuplicateDomain {
                text: "0-1-5,0-2-6".into(),
                domain_id: 0
            }
        );
        assert!("0-1-5,".parse::<MariadbGtidPos>().is_err());
    }

    #[test]
    fn contains_compares_seq_no_within_the_domain() {
        let pos: MariadbGtidPos = "0-1-42,1-2-7".parse().unwrap();
        assert!(pos.contains(&gtid(0, 1, 42)));
        assert!(pos.contains(&gtid(0, 9, 1)));
        assert!(!pos.contains(&gtid(0, 1, 43)));
        assert!(pos.contains(&gtid(1, 2, 7)));
        assert!(!pos.contains(&gtid(2, 1, 1)));
    }

    #[test]
    fn advance_replaces_the_domain_entry_and_refuses_to_go_back() {
        let mut pos: MariadbGtidPos = "0-1-42".parse().unwrap();
        pos.advance(gtid(0, 2, 43)).unwrap();
        pos.advance(gtid(5, 1, 1)).unwrap();
        assert_eq!(pos.to_string(), "0-2-43,5-1-1");

        let err = pos.advance(gtid(0, 1, 43)).unwrap_err();
        assert_eq!(
            err,
            GtidError::OutOfOrder {
                domain_id: 0,
                current: gtid(0, 2, 43),
                next: gtid(0, 1, 43)
            }
        );
        assert!(err
            .to_string()
            .contains("0-1-43 does not come after 0-2-43"));
        assert!(pos.advance(gtid(0, 1, 10)).is_err());
        assert_eq!(
            pos.to_string(),
            "0-2-43,5-1-1",
            "a refused GTID changes nothing"
        );
    }

    #[test]
    fn missing_from_lists_per_domain_ranges_the_other_lacks() {
        let primary: MariadbGtidPos = "0-1-50,1-2-7,2-3-3".parse().unwrap();
        let standby: MariadbGtidPos = "0-1-45,1-2-9".parse().unwrap();
        let lost = primary.missing_from(&standby);
        assert_eq!(
            lost,
            vec![
                MariadbGtidRange {
                    domain_id: 0,
                    first_seq_no: 46,
                    last: gtid(0, 1, 50)
                },
                MariadbGtidRange {
                    domain_id: 2,
                    first_seq_no: 1,
                    last: gtid(2, 3, 3)
                },
            ]
        );
        assert_eq!(lost[0].count(), 5);
        assert_eq!(lost[0].to_string(), "0-1-[46..50]");
        assert_eq!(lost[1].count(), 3);
        assert!(standby.missing_from(&standby).is_empty());
        // The standby is ahead in domain 1 only.
        let ahead = standby.missing_from(&primary);
        assert_eq!(ahead.len(), 1);
        assert_eq!(ahead[0].to_string(), "1-2-[8..9]");
    }

    #[test]
    fn single_seq_no_range_displays_as_a_gtid() {
        let primary: MariadbGtidPos = "0-1-6".parse().unwrap();
        let standby: MariadbGtidPos = "0-1-5".parse().unwrap();
        let lost = primary.missing_from(&standby);
        assert_eq!(lost[0].to_string(), "0-1-6");
        assert_eq!(lost[0].count(), 1);
    }

    #[test]
    fn from_iter_keeps_the_last_gtid_of_each_domain() {
        let pos: MariadbGtidPos = [gtid(0, 1, 9), gtid(0, 2, 4), gtid(1, 1, 1)]
            .into_iter()
            .collect();
        assert_eq!(pos.to_string(), "0-2-4,1-1-1");
    }
}
