//! Which archived events a replica still needs, given where it said it is.
//! Chunks start on transaction edges, so whole event groups are skipped:
//! by GTID (MariaDB's @slave_connect_state, MySQL's executed set from
//! COM_BINLOG_DUMP_GTID) or by file offset.
//!
//! MySQL: a group starts with GTID_LOG_EVENT (33) and is skipped when the
//! replica's executed set contains its GTID, as a MySQL source does. A
//! group that starts with ANONYMOUS_GTID_LOG_EVENT (34) has no GTID to
//! compare, so it is always sent (a MySQL source would have refused the
//! dump with gtid_mode OFF; an auto-position replica stops on it with its
//! own error). Events outside groups (FORMAT_DESCRIPTION, PREVIOUS_GTIDS,
//! ROTATE, STOP) are the file's bookkeeping: always sent, and they end a
//! skipped group.

use instarec_mysql::mariadb_gtid_event::MariadbGtidEvent;
use instarec_mysql::mysql_gtid_event::MysqlGtidEvent;
use instarec_mysql::{
    BinlogChecksum, BinlogPosition, EventError, EventType, MariadbGtidPos, MysqlGtidSet, RawEvent,
};

#[derive(Debug, Clone)]
pub enum StartFilter {
    /// Skip the groups whose GTID is at or before `applied` in its domain.
    Gtid {
        applied: MariadbGtidPos,
        skipping: bool,
    },
    /// Skip the groups whose GTID the replica has executed.
    MysqlGtid {
        executed: MysqlGtidSet,
        skipping: bool,
    },
    /// Skip the events of `at.file` that end at or before `at.pos`.
    File { at: BinlogPosition },
}

impl StartFilter {
    pub fn gtid(applied: MariadbGtidPos) -> Self {
        StartFilter::Gtid {
            applied,
            skipping: false,
        }
    }

    pub fn mysql_gtid(executed: MysqlGtidSet) -> Self {
        StartFilter::MysqlGtid {
            executed,
            skipping: false,
        }
    }

    /// Whether to send `event` of `file` to the replica.
    pub fn keep(
        &mut self,
        file: &str,
        event: &RawEvent,
        checksum: BinlogChecksum,
    ) -> Result<bool, EventError> {
        match self {
            StartFilter::Gtid { applied, skipping } => match event.header.event_type {
                EventType::MariadbGtid => {
                    let gtid =
                        MariadbGtidEvent::from_event(event, checksum)?.gtid(event.header.server_id);
                    *skipping = applied.contains(&gtid);
                    Ok(!*skipping)
                }
                // Outside any group: the file's own bookkeeping.
                EventType::GtidList
                | EventType::BinlogCheckpoint
                | EventType::Rotate
                | EventType::Stop
                | EventType::FormatDescription => {
                    *skipping = false;
                    Ok(true)
                }
                _ => Ok(!*skipping),
            },
            StartFilter::MysqlGtid { executed, skipping } => match event.header.event_type {
                EventType::MysqlGtid => {
                    let gtid = MysqlGtidEvent::from_event(event, checksum)?.gtid;
                    *skipping = executed.contains(&gtid);
                    Ok(!*skipping)
                }
                EventType::AnonymousGtid
                | EventType::PreviousGtids
                | EventType::Rotate
                | EventType::Stop
                | EventType::FormatDescription => {
                    *skipping = false;
                    Ok(true)
                }
                _ => Ok(!*skipping),
            },
            StartFilter::File { at } => {
                let log_pos = u64::from(event.header.log_pos);
                Ok(file != at.file || log_pos == 0 || log_pos > at.pos)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::mysql::chunk_buffer::tests::{
        MYSQL_8_0_26, MYSQL_8_0_32_COMPRESSED, SID_8_0_26,
    };
    use bytes::{Bytes, BytesMut};
    use instarec_mysql::{BinlogFile, EventHeader};

    fn event(event_type: EventType, log_pos: u32, body: &[u8]) -> RawEvent {
        RawEvent::build(
            EventHeader {
                timestamp: 1,
                event_type,
                server_id: 1,
                event_size: 0,
                log_pos,
                flags: 0,
            },
            body,
            BinlogChecksum::Crc32,
        )
    }

    fn gtid(seq_no: u64, log_pos: u32) -> RawEvent {
        let mut body = BytesMut::new();
        MariadbGtidEvent {
            seq_no,
            domain_id: 0,
            flags: 0,
            commit_id: None,
        }
        .encode(&mut body);
        event(EventType::MariadbGtid, log_pos, &body)
    }

    #[test]
    fn skips_whole_groups_the_replica_has() {
        let mut f = StartFilter::gtid("0-1-2".parse().unwrap());
        let stream = [
            (event(EventType::GtidList, 300, b"list"), true),
            (gtid(2, 340), false),
            (event(EventType::Query, 400, b"BEGIN"), false),
            (event(EventType::Xid, 431, b"xid"), false),
            (event(EventType::BinlogCheckpoint, 470, b"cp"), true),
            (gtid(3, 510), true),
            (event(EventType::Query, 560, b"BEGIN"), true),
            (event(EventType::Xid, 600, b"xid"), true),
        ];
        for (i, (ev, keep)) in stream.iter().enumerate() {
            assert_eq!(
                f.keep("f.000001", ev, BinlogChecksum::Crc32).unwrap(),
                *keep,
                "event {i}"
            );
        }
    }

    /// The events of the MySQL 8.0.26 fixture (`SID_8_0_26:1-5`) that a
    /// replica with `executed` is sent, and whether each is bookkeeping.
    fn kept_of_mysql_fixture(executed: &str) -> Vec<RawEvent> {
        let file = BinlogFile::parse(Bytes::from_static(MYSQL_8_0_26)).unwrap();
        let checksum = file.checksum();
        let mut f = StartFilter::mysql_gtid(executed.parse().unwrap());
        file.events
            .iter()
            .filter(|e| f.keep("binlog.000001", e, checksum).unwrap())
            .cloned()
            .collect()
    }

    fn is_bookkeeping(e: &RawEvent) -> bool {
        matches!(
            e.header.event_type,
            EventType::FormatDescription | EventType::PreviousGtids | EventType::Stop
        )
    }

    #[test]
    fn a_mysql_replica_with_gtids_1_to_3_gets_exactly_groups_4_and_5() {
        let kept = kept_of_mysql_fixture(&format!("{SID_8_0_26}:1-3"));
        let groups: Vec<u8> = kept
            .iter()
            .filter(|e| !is_bookkeeping(e))
            .flat_map(|e| e.bytes.to_vec())
            .collect();
        // Transactions :4 and :5 are bytes [1120, 1787) of the file.
        assert_eq!(&groups[..], &MYSQL_8_0_26[1120..1787]);
        let types: Vec<EventType> = kept.iter().map(|e| e.header.event_type).collect();
        assert_eq!(
            (types[0], types[1], types[2], *types.last().unwrap()),
            (
                EventType::FormatDescription,
                EventType::PreviousGtids,
                EventType::MysqlGtid,
                EventType::Stop
            )
        );
        // With a hole: :2 and :4 are the ones missing.
        let kept = kept_of_mysql_fixture(&format!("{SID_8_0_26}:1:3:5"));
        let groups: Vec<u8> = kept
            .iter()
            .filter(|e| !is_bookkeeping(e))
            .flat_map(|e| e.bytes.to_vec())
            .collect();
        let mut expected = MYSQL_8_0_26[491..787].to_vec();
        expected.extend_from_slice(&MYSQL_8_0_26[1120..1438]);
        assert_eq!(groups, expected);
    }

    #[test]
    fn a_mysql_replica_with_nothing_gets_everything_and_with_everything_only_bookkeeping() {
        let all = kept_of_mysql_fixture("");
        let bytes: Vec<u8> = all.iter().flat_map(|e| e.bytes.to_vec()).collect();
        assert_eq!(&bytes[..], &MYSQL_8_0_26[4..]);
        // Another server's GTIDs do not hide this one's.
        let other = kept_of_mysql_fixture("b9b88c66-0755-11f1-9899-4a9da94c4d71:1-9");
        assert_eq!(other.len(), all.len());
        let none = kept_of_mysql_fixture(&format!("{SID_8_0_26}:1-5"));
        assert!(none.iter().all(is_bookkeeping), "{none:?}");
        assert_eq!(none.len(), 3);
    }

    #[test]
    fn an_anonymous_mysql_group_is_always_sent() {
        let file = BinlogFile::parse(Bytes::from_static(MYSQL_8_0_32_COMPRESSED)).unwrap();
        let checksum = file.checksum();
        let mut f = StartFilter::mysql_gtid(format!("{SID_8_0_26}:1-5").parse().unwrap());
        for e in &file.events {
            assert!(f.keep("binlog.000002", e, checksum).unwrap(), "{e:?}");
        }
        assert!(file
            .events
            .iter()
            .any(|e| e.header.event_type == EventType::TransactionPayload));
    }

    #[test]
    fn an_empty_position_keeps_everything_and_file_start_skips_by_offset() {
        let mut f = StartFilter::gtid(MariadbGtidPos::new());
        assert!(f.keep("f", &gtid(1, 100), BinlogChecksum::Crc32).unwrap());
        let mut f = StartFilter::File {
            at: BinlogPosition::new("f.000002", 431).unwrap(),
        };
        let crc = BinlogChecksum::Crc32;
        assert!(!f
            .keep("f.000002", &event(EventType::Xid, 431, b""), crc)
            .unwrap());
        assert!(f
            .keep("f.000002", &event(EventType::Query, 500, b""), crc)
            .unwrap());
        assert!(f
            .keep("f.000003", &event(EventType::Query, 300, b""), crc)
            .unwrap());
    }
}
