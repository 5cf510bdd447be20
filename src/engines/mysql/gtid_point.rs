//! A MariaDB GTID position as promote compares it: per-domain seq_nos,
//! plus where it sits in the old primary's binlog when that is known (for
//! byte counts only).
//!
//! Promote needs a total order. Positions compare domain by domain in
//! domain order (a missing domain counts as seq_no 0), which agrees with
//! "has every transaction of" whenever one position has every transaction
//! of the other, and is exact for the usual single-domain topology. The
//! server_id and the file offset take no part: in gtid_strict_mode the
//! seq_no alone orders a domain.

use instarec_mysql::{BinlogPosition, GtidError, MariadbGtidPos, MariadbGtidRange};
use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Default)]
pub struct GtidPoint {
    pub gtid: MariadbGtidPos,
    /// The old primary's binlog file and offset of this position, if known.
    pub at: Option<BinlogPosition>,
}

impl GtidPoint {
    pub fn new(gtid: MariadbGtidPos, at: Option<BinlogPosition>) -> GtidPoint {
        GtidPoint { gtid, at }
    }

    fn seq_no(&self, domain_id: u32) -> u64 {
        self.gtid.get(domain_id).map_or(0, |g| g.seq_no)
    }

    /// The transactions `self` has and `earlier` lacks, per domain.
    pub fn missing_from(&self, earlier: &GtidPoint) -> Vec<MariadbGtidRange> {
        self.gtid.missing_from(&earlier.gtid)
    }

    /// Bytes of binlog from `earlier` to `self`, when both offsets are in
    /// the same file.
    pub fn bytes_after(&self, earlier: &GtidPoint) -> Option<u64> {
        match (&self.at, &earlier.at) {
            (Some(later), Some(earlier)) if later.file == earlier.file => {
                Some(later.pos.saturating_sub(earlier.pos))
            }
            _ => None,
        }
    }
}

impl PartialEq for GtidPoint {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for GtidPoint {}

impl PartialOrd for GtidPoint {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for GtidPoint {
    fn cmp(&self, other: &Self) -> Ordering {
        let domains: BTreeSet<u32> = self
            .gtid
            .iter()
            .chain(other.gtid.iter())
            .map(|g| g.domain_id)
            .collect();
        domains
            .into_iter()
            .map(|d| self.seq_no(d).cmp(&other.seq_no(d)))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    }
}

impl fmt::Display for GtidPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.gtid.fmt(f)
    }
}

impl FromStr for GtidPoint {
    type Err = GtidError;

    /// The GTID position alone ("0-1-42,1-2-7"), as position records hold it.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(GtidPoint::new(s.parse()?, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> GtidPoint {
        text.parse().unwrap()
    }

    fn at(text: &str, file: &str, pos: u64) -> GtidPoint {
        GtidPoint::new(
            text.parse().unwrap(),
            Some(BinlogPosition {
                file: file.into(),
                pos,
            }),
        )
    }

    #[test]
    fn orders_by_seq_no_per_domain_ignoring_server_and_offset() {
        assert!(p("0-1-42") < p("0-1-43"));
        assert_eq!(p("0-1-42"), p("0-2-42"));
        assert_eq!(at("0-1-5", "b.000001", 900), p("0-1-5"));
        assert!(p("") < p("0-1-1"));
        assert!(
            p("0-1-9") < p("0-1-9,1-1-1"),
            "a missing domain is seq_no 0"
        );
        assert!(p("0-1-9,1-1-4") > p("0-1-9,1-1-3"));
        assert_eq!(p("0-1-9,1-2-3").to_string(), "0-1-9,1-2-3");
        assert!("0-1".parse::<GtidPoint>().is_err());
    }

    #[test]
    fn a_position_holding_all_of_another_never_sorts_before_it() {
        let cases = [
            "",
            "0-1-3",
            "0-1-3,2-1-1",
            "0-1-4,1-1-1",
            "0-1-4,1-1-2,2-1-1",
        ];
        for a in cases {
            for b in cases {
                let (a, b) = (p(a), p(b));
                if b.missing_from(&a).is_empty() {
                    assert!(a >= b, "{a} holds all of {b}");
                }
            }
        }
    }

    #[test]
    fn bytes_only_within_one_file() {
        let early = at("0-1-5", "b.000001", 400);
        assert_eq!(at("0-1-9", "b.000001", 900).bytes_after(&early), Some(500));
        assert_eq!(at("0-1-9", "b.000002", 900).bytes_after(&early), None);
        assert_eq!(p("0-1-9").bytes_after(&early), None);
    }

    #[test]
    fn missing_from_names_the_lost_ranges() {
        let lost = p("0-1-50").missing_from(&p("0-1-45"));
        assert_eq!(lost.len(), 1);
        assert_eq!(
            (lost[0].to_string(), lost[0].count()),
            ("0-1-[46..50]".into(), 5)
        );
    }
}
