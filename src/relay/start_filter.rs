//! Which archived events a replica still needs, given where it said it is.
//! Chunks start on transaction edges, so whole event groups are skipped:
//! by GTID (MariaDB's @slave_connect_state) or by file offset.

use instarec_mysql::mariadb_gtid_event::MariadbGtidEvent;
use instarec_mysql::{
    BinlogChecksum, BinlogPosition, EventError, EventType, MariadbGtidPos, RawEvent,
};

#[derive(Debug, Clone)]
pub enum StartFilter {
    /// Skip the groups whose GTID is at or before `applied` in its domain.
    Gtid {
        applied: MariadbGtidPos,
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
    use bytes::BytesMut;
    use instarec_mysql::EventHeader;

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
