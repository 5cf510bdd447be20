//! GTID continuity across one epoch's archived binlog, in each flavour's
//! own terms:
//! - MariaDB: each domain's seq_no goes up by exactly one;
//! - MySQL: each server uuid's gnos follow on without a hole (the primary
//!   hands them out in binlog order), so a gno past the uuid's last one + 1
//!   means transactions are missing, and one already held is a repeat.
//!
//! A domain or uuid is first seen either in a chunk or in an index's
//! gtid_pos_after (the history before the archive starts); from then on
//! the stream must continue it.

use instarec_mysql::{
    EventGtid, MariadbGtid, MariadbGtidPos, MariadbGtidRange, MysqlGtid, MysqlGtidSet, ServerUuid,
};

/// Why a GTID does not continue the sequence; `Display` says what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SequenceBreak {
    /// The archive already holds it.
    Repeat { gtid: String, held: String },
    /// GTIDs between the archive's last one and `gtid` are not archived.
    Gap {
        missing: String,
        gtid: String,
        held: String,
    },
}

/// The GTIDs an epoch's chunks have shown so far.
#[derive(Debug, Default)]
pub struct GtidSequence {
    mariadb: MariadbGtidPos,
    mysql: MysqlGtidSet,
}

impl GtidSequence {
    /// Takes `gtid` as the next one in stream order, saying how it breaks
    /// the sequence if it does.
    pub fn follow(&mut self, gtid: &EventGtid) -> Option<SequenceBreak> {
        match gtid {
            EventGtid::Mariadb(g) => self.follow_mariadb(*g),
            EventGtid::Mysql(g) => self.follow_mysql(*g),
        }
    }

    fn follow_mariadb(&mut self, g: MariadbGtid) -> Option<SequenceBreak> {
        let Some(prev) = self.mariadb.get(g.domain_id).copied() else {
            let _ = self.mariadb.advance(g);
            return None;
        };
        if g.seq_no <= prev.seq_no {
            return Some(SequenceBreak::Repeat {
                gtid: g.to_string(),
                held: prev.to_string(),
            });
        }
        let gap = (g.seq_no > prev.seq_no + 1).then(|| SequenceBreak::Gap {
            missing: MariadbGtidRange {
                domain_id: g.domain_id,
                first_seq_no: prev.seq_no + 1,
                last: MariadbGtid {
                    seq_no: g.seq_no - 1,
                    ..g
                },
            }
            .to_string(),
            gtid: g.to_string(),
            held: prev.to_string(),
        });
        let _ = self.mariadb.advance(g);
        gap
    }

    fn follow_mysql(&mut self, g: MysqlGtid) -> Option<SequenceBreak> {
        if self.mysql.contains(&g) {
            return Some(SequenceBreak::Repeat {
                gtid: g.to_string(),
                held: self.mysql_held(&g.uuid),
            });
        }
        // A gno below the uuid's last one fills a hole already reported.
        let next = self.mysql.intervals(&g.uuid).last().map(|iv| iv.end);
        let gap = next
            .filter(|&next| g.gno > next)
            .map(|next| SequenceBreak::Gap {
                missing: gno_range(&g.uuid, next, g.gno - 1),
                gtid: g.to_string(),
                held: self.mysql_held(&g.uuid),
            });
        self.mysql.add(g.uuid, g.gno);
        gap
    }

    /// `uuid:intervals` of what the sequence holds for `uuid`.
    fn mysql_held(&self, uuid: &ServerUuid) -> String {
        let mut text = uuid.to_string();
        for iv in self.mysql.intervals(uuid) {
            text.push_str(&format!(":{iv}"));
        }
        text
    }

    /// Checks an index's gtid_pos_after (in `flavor`'s notation) against
    /// the stream: every domain or uuid the stream has seen must be where
    /// the stream is. If so, it seeds what the stream has not seen yet.
    pub fn agree_with_index(&mut self, flavor: &str, after: &str) -> Result<(), String> {
        match flavor {
            "mariadb" => {
                let after: MariadbGtidPos = after.parse().map_err(|e| {
                    format!("gtid_pos_after {after:?} is not a MariaDB GTID position: {e}")
                })?;
                if let Some(g) = self
                    .mariadb
                    .iter()
                    .find(|g| after.get(g.domain_id).map(|a| a.seq_no) != Some(g.seq_no))
                {
                    return Err(format!(
                        "gtid_pos_after {after} disagrees with the stream, which is at {g}"
                    ));
                }
                let seen: Vec<MariadbGtid> = self.mariadb.iter().copied().collect();
                self.mariadb = after.iter().copied().chain(seen).collect();
                Ok(())
            }
            "mysql" => {
                let after: MysqlGtidSet = after.parse().map_err(|e| {
                    format!("gtid_pos_after {after:?} is not a MySQL GTID set: {e}")
                })?;
                let last = |set: &MysqlGtidSet, uuid| set.intervals(uuid).last().map(|iv| iv.end);
                // A uuid with GTIDs the index lacks, or whose last gno
                // differs from the stream's.
                let lacking = self.mysql.subtract(&after);
                let wrong = lacking.uuids().next().copied().or_else(|| {
                    self.mysql
                        .uuids()
                        .find(|u| last(&after, u) != last(&self.mysql, u))
                        .copied()
                });
                if let Some(uuid) = wrong {
                    return Err(format!(
                        "gtid_pos_after {after} disagrees with the stream, which holds {}",
                        self.mysql_held(&uuid)
                    ));
                }
                self.mysql = self.mysql.union(&after);
                Ok(())
            }
            other => Err(format!(
                "flavor {other:?} is neither \"mariadb\" nor \"mysql\""
            )),
        }
    }
}

/// `uuid:first-last` (or `uuid:first`), MySQL's notation.
fn gno_range(uuid: &ServerUuid, first: u64, last: u64) -> String {
    if first == last {
        format!("{uuid}:{first}")
    } else {
        format!("{uuid}:{first}-{last}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "97c7af02-4c50-11ec-acd8-681842034964";
    const B: &str = "93e95066-a2f4-11ec-9b69-9657f0ae95e2";

    fn mysql(uuid: &str, gno: u64) -> EventGtid {
        EventGtid::Mysql(MysqlGtid {
            uuid: uuid.parse().unwrap(),
            gno,
        })
    }

    fn mariadb(domain_id: u32, seq_no: u64) -> EventGtid {
        EventGtid::Mariadb(MariadbGtid {
            domain_id,
            server_id: 1,
            seq_no,
        })
    }

    #[test]
    fn mysql_gnos_continue_per_uuid_and_a_gap_names_the_missing_range() {
        let mut seq = GtidSequence::default();
        for gno in 1..=3 {
            assert_eq!(seq.follow(&mysql(A, gno)), None);
        }
        // Another uuid has a sequence of its own, starting anywhere.
        assert_eq!(seq.follow(&mysql(B, 40)), None);
        assert_eq!(seq.follow(&mysql(B, 41)), None);
        assert_eq!(
            seq.follow(&mysql(A, 7)),
            Some(SequenceBreak::Gap {
                missing: format!("{A}:4-6"),
                gtid: format!("{A}:7"),
                held: format!("{A}:1-3"),
            })
        );
        assert_eq!(
            seq.follow(&mysql(A, 9)),
            Some(SequenceBreak::Gap {
                missing: format!("{A}:8"),
                gtid: format!("{A}:9"),
                held: format!("{A}:1-3:7"),
            })
        );
        assert_eq!(
            seq.follow(&mysql(B, 41)),
            Some(SequenceBreak::Repeat {
                gtid: format!("{B}:41"),
                held: format!("{B}:40-41"),
            })
        );
        // A late transaction that fills a reported hole is no new fault.
        assert_eq!(seq.follow(&mysql(A, 5)), None);
    }

    #[test]
    fn mariadb_seq_nos_continue_per_domain() {
        let mut seq = GtidSequence::default();
        assert_eq!(seq.follow(&mariadb(0, 1)), None);
        assert_eq!(seq.follow(&mariadb(1, 9)), None);
        assert_eq!(
            seq.follow(&mariadb(0, 5)),
            Some(SequenceBreak::Gap {
                missing: "0-1-[2..4]".into(),
                gtid: "0-1-5".into(),
                held: "0-1-1".into(),
            })
        );
        assert!(matches!(
            seq.follow(&mariadb(0, 5)),
            Some(SequenceBreak::Repeat { .. })
        ));
    }

    #[test]
    fn an_index_seeds_history_and_must_agree_with_the_stream() {
        let mut seq = GtidSequence::default();
        // The archive starts after A:1-10 (history before it), then streams A:11.
        seq.agree_with_index("mysql", &format!("{A}:1-10")).unwrap();
        assert_eq!(seq.follow(&mysql(A, 11)), None);
        seq.agree_with_index("mysql", &format!("{A}:1-11,{B}:1-2"))
            .unwrap();
        // An index that claims more than the chunks hold hides a gap.
        let err = seq
            .agree_with_index("mysql", &format!("{A}:1-15,{B}:1-2"))
            .unwrap_err();
        assert!(err.contains(&format!("which holds {A}:1-11")), "{err}");
        // And one that lacks what the stream holds is wrong too.
        let err = seq
            .agree_with_index("mysql", &format!("{A}:1-11"))
            .unwrap_err();
        assert!(err.contains("disagrees"), "{err}");
        assert!(seq.agree_with_index("mysql", "0-1-5").is_err());
        assert!(seq.agree_with_index("oracle", "").is_err());

        let mut seq = GtidSequence::default();
        seq.follow(&mariadb(0, 3));
        seq.agree_with_index("mariadb", "0-1-3,1-1-7").unwrap();
        assert_eq!(seq.follow(&mariadb(1, 8)), None);
        assert!(seq.agree_with_index("mariadb", "0-1-2,1-1-8").is_err());
    }
}
