//! A whole binlog file: the magic b"\xfebin", then events back to back, the
//! first a FORMAT_DESCRIPTION that says which checksum the rest carry.
//!
//! Parsing checks every byte it can: the magic, each event's framing, each
//! event's CRC32 (when the file uses CRC32), and that each event's log_pos
//! is the offset just past it. A file cut anywhere but an event boundary is
//! an error naming the offset.

use bytes::Bytes;

use crate::checksum::BinlogChecksum;
use crate::event::{EventError, EventHeader, RawEvent, EVENT_HEADER_LEN};
use crate::event_type::EventType;
use crate::format_description_event::FormatDescriptionEvent;

pub const BINLOG_MAGIC: [u8; 4] = [0xfe, b'b', b'i', b'n'];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BinlogFileError {
    #[error("not a binlog file: it does not start with the magic bytes fe 62 69 6e (\\xfebin)")]
    BadMagic,
    #[error("binlog file has no FORMAT_DESCRIPTION event after its magic; it was cut short or is not a binlog")]
    NoFormatDescription,
    #[error("binlog file starts with a {found:?} event, not FORMAT_DESCRIPTION")]
    FirstEventNotFormatDescription { found: EventType },
    #[error("binlog file is cut short at offset {offset}: the event there needs {needed} bytes, {available} remain")]
    Truncated {
        offset: u64,
        needed: u64,
        available: u64,
    },
    #[error("binlog event at offset {offset}: {source}")]
    Event {
        offset: u64,
        #[source]
        source: EventError,
    },
    #[error("binlog event {event_type:?} at offset {offset} says log_pos {log_pos}, but it ends at {expected}; the file is not one server's binlog as written")]
    PositionMismatch {
        offset: u64,
        event_type: EventType,
        log_pos: u32,
        expected: u64,
    },
    #[error("binlog file is encrypted (START_ENCRYPTION event at offset {offset}); instarec reads unencrypted binlogs only, set encrypt_binlog=OFF on the primary")]
    Encrypted { offset: u64 },
}

/// A parsed binlog file. `events[0]` is the FORMAT_DESCRIPTION event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinlogFile {
    pub format: FormatDescriptionEvent,
    pub events: Vec<RawEvent>,
}

impl BinlogFile {
    pub fn parse(bytes: Bytes) -> Result<Self, BinlogFileError> {
        if bytes.get(..BINLOG_MAGIC.len()) != Some(&BINLOG_MAGIC[..]) {
            return Err(BinlogFileError::BadMagic);
        }
        let mut offset = BINLOG_MAGIC.len();
        if offset == bytes.len() {
            return Err(BinlogFileError::NoFormatDescription);
        }
        let mut events = Vec::new();
        let mut format: Option<FormatDescriptionEvent> = None;
        while offset < bytes.len() {
            let event = split_event(&bytes, offset)?;
            let at = offset as u64;
            let end = at + event.bytes.len() as u64;
            let event_type = event.header.event_type;
            let as_event_error = |source| BinlogFileError::Event { offset: at, source };
            match &format {
                Some(f) => event.verify(f.checksum).map_err(as_event_error)?,
                // from_event checks the event's own CRC32, which a file the
                // server still writes covers with BINLOG_IN_USE cleared.
                None if event_type == EventType::FormatDescription => {
                    format =
                        Some(FormatDescriptionEvent::from_event(&event).map_err(as_event_error)?);
                }
                None => {
                    return Err(BinlogFileError::FirstEventNotFormatDescription {
                        found: event_type,
                    })
                }
            }
            if event.header.log_pos != 0 && u64::from(event.header.log_pos) != end {
                return Err(BinlogFileError::PositionMismatch {
                    offset: at,
                    event_type,
                    log_pos: event.header.log_pos,
                    expected: end,
                });
            }
            if event_type == EventType::StartEncryption {
                return Err(BinlogFileError::Encrypted { offset: at });
            }
            offset = end as usize;
            events.push(event);
        }
        let format = format.ok_or(BinlogFileError::NoFormatDescription)?;
        Ok(BinlogFile { format, events })
    }

    pub fn checksum(&self) -> BinlogChecksum {
        self.format.checksum
    }

    /// True if the server finished the file: its last event is a ROTATE
    /// (to the next file) or a STOP (clean shutdown).
    pub fn is_closed(&self) -> bool {
        self.events
            .last()
            .is_some_and(|e| matches!(e.header.event_type, EventType::Rotate | EventType::Stop))
    }

    /// Each event with the file offset it starts at.
    pub fn events_with_offsets(&self) -> impl Iterator<Item = (u64, &RawEvent)> {
        self.events.iter().scan(BINLOG_MAGIC.len() as u64, |at, e| {
            let start = *at;
            *at += e.bytes.len() as u64;
            Some((start, e))
        })
    }
}

/// The event starting at `offset`, sharing `bytes`' buffer.
fn split_event(bytes: &Bytes, offset: usize) -> Result<RawEvent, BinlogFileError> {
    let rest = &bytes[offset..];
    let truncated = |needed: usize| BinlogFileError::Truncated {
        offset: offset as u64,
        needed: needed as u64,
        available: rest.len() as u64,
    };
    if rest.len() < EVENT_HEADER_LEN {
        return Err(truncated(EVENT_HEADER_LEN));
    }
    let header = EventHeader::parse(rest).map_err(|source| BinlogFileError::Event {
        offset: offset as u64,
        source,
    })?;
    let size = header.event_size as usize;
    if size < EVENT_HEADER_LEN {
        return Err(BinlogFileError::Event {
            offset: offset as u64,
            source: EventError::EventSizeTooSmall {
                event_size: header.event_size,
            },
        });
    }
    if size > rest.len() {
        return Err(truncated(size));
    }
    RawEvent::parse(bytes.slice(offset..offset + size)).map_err(|source| BinlogFileError::Event {
        offset: offset as u64,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binlog_checkpoint_event::BinlogCheckpointEvent;
    use crate::gtid::MariadbGtidPos;
    use crate::mariadb_gtid_event::{MariadbGtidEvent, MariadbGtidListEvent};
    use crate::rotate_event::RotateEvent;
    use crate::testdata;

    /// mysql-bin.000002 of a throwaway MariaDB 10.11 (log-bin, ROW, CRC32,
    /// gtid_strict_mode, server_id 1) after CREATE DATABASE + FLUSH LOGS:
    /// CREATE TABLE, four transactions in domain 0, one in domain 1, FLUSH LOGS.
    const SMALL: &[u8] = testdata::MARIADB_10_11;

    fn small() -> BinlogFile {
        BinlogFile::parse(Bytes::from_static(SMALL)).unwrap()
    }

    #[test]
    fn real_mariadb_binlog_parses_and_every_crc_verifies() {
        let file = small();
        assert_eq!(file.checksum(), BinlogChecksum::Crc32);
        assert!(
            file.format.server_version.starts_with("10.11."),
            "{}",
            file.format.server_version
        );
        assert_eq!(file.events.len(), 35);
        assert!(file.is_closed());
        let total: usize = file.events.iter().map(|e| e.bytes.len()).sum();
        assert_eq!(total + 4, SMALL.len());
        for (offset, event) in file.events_with_offsets() {
            event.verify_crc32().unwrap();
            assert_eq!(
                u64::from(event.header.log_pos),
                offset + event.bytes.len() as u64
            );
            assert_eq!(event.header.server_id, 1);
        }
        let types: Vec<EventType> = file.events.iter().map(|e| e.header.event_type).collect();
        assert_eq!(
            &types[..5],
            &[
                EventType::FormatDescription,
                EventType::GtidList,
                EventType::BinlogCheckpoint,
                EventType::BinlogCheckpoint,
                EventType::MariadbGtid,
            ]
        );
        assert!(types.contains(&EventType::AnnotateRows));
        assert!(types.contains(&EventType::TableMap));
        assert!(types.contains(&EventType::WriteRowsV1));
        assert!(types.contains(&EventType::Xid));
    }

    #[test]
    fn gtids_are_consecutive_per_domain_and_match_the_server() {
        let file = small();
        let cs = file.checksum();
        let list = MariadbGtidListEvent::from_event(&file.events[1], cs).unwrap();
        let mut pos = list.position();
        assert_eq!(pos.to_string(), "0-1-1");
        let mut seen = Vec::new();
        for event in file
            .events
            .iter()
            .filter(|e| e.header.event_type == EventType::MariadbGtid)
        {
            let gtid = MariadbGtidEvent::from_event(event, cs)
                .unwrap()
                .gtid(event.header.server_id);
            let prev = pos.get(gtid.domain_id).map_or(0, |g| g.seq_no);
            assert_eq!(gtid.seq_no, prev + 1, "{gtid} follows {pos}");
            pos.advance(gtid).unwrap();
            seen.push(gtid.to_string());
        }
        assert_eq!(seen, ["0-1-2", "0-1-3", "0-1-4", "0-1-5", "1-1-1", "0-1-6"]);
        // What the server printed as @@gtid_binlog_pos before FLUSH LOGS.
        assert_eq!(pos, "0-1-6,1-1-1".parse::<MariadbGtidPos>().unwrap());
        let start: MariadbGtidPos = "0-1-1".parse().unwrap();
        let added: Vec<String> = pos
            .missing_from(&start)
            .iter()
            .map(|r| r.to_string())
            .collect();
        assert_eq!(added, ["0-1-[2..6]", "1-1-1"]);
    }

    #[test]
    fn checkpoint_and_rotate_events_parse() {
        let file = small();
        let cs = file.checksum();
        let checkpoint = BinlogCheckpointEvent::parse(file.events[2].body(cs).unwrap()).unwrap();
        assert_eq!(checkpoint.file, "mysql-bin.000001");
        let last = file.events.last().unwrap();
        assert_eq!(last.header.event_type, EventType::Rotate);
        let rotate = RotateEvent::parse(last.body(cs).unwrap()).unwrap();
        assert_eq!(rotate.next.to_string(), "mysql-bin.000003:4");
    }

    #[test]
    fn truncation_at_every_offset_is_an_error_or_a_clean_prefix() {
        assert_every_cut_is_an_error_or_a_clean_prefix(SMALL);
        for (_, bytes) in testdata::MYSQL_8 {
            assert_every_cut_is_an_error_or_a_clean_prefix(bytes);
        }
    }

    fn assert_every_cut_is_an_error_or_a_clean_prefix(bytes: &'static [u8]) {
        let whole = testdata::parse(bytes);
        let boundaries: Vec<u64> = whole
            .events_with_offsets()
            .map(|(at, e)| at + e.bytes.len() as u64)
            .collect();
        for cut in 0..bytes.len() {
            match BinlogFile::parse(Bytes::copy_from_slice(&bytes[..cut])) {
                Ok(part) => {
                    assert!(boundaries.contains(&(cut as u64)), "cut {cut} parsed");
                    assert!(part.events.len() < whole.events.len());
                    assert_eq!(part.events[..], whole.events[..part.events.len()]);
                }
                Err(BinlogFileError::Truncated { offset, .. }) => {
                    assert!(offset < cut as u64 || cut < 4);
                }
                Err(BinlogFileError::BadMagic | BinlogFileError::NoFormatDescription) => {
                    assert!(cut <= 4, "cut {cut}");
                }
                Err(other) => panic!("cut {cut}: unexpected {other}"),
            }
        }
    }

    /// Real MySQL 8 files (README in testdata says where each is from):
    /// every event frames, its CRC32 holds and its log_pos is the offset
    /// just past it; the event types are what mysqlbinlog lists.
    #[test]
    fn real_mysql_8_binlogs_parse_and_every_crc_verifies() {
        use EventType::*;
        let expected: [(&[u8], &str, &[EventType], bool); 5] = [
            (
                testdata::MYSQL_8_0_26,
                "8.0.26",
                &[
                    FormatDescription,
                    PreviousGtids,
                    MysqlGtid,
                    Query, // ALTER USER
                    MysqlGtid,
                    Query, // CREATE TABLE
                    MysqlGtid,
                    Query,
                    TableMap,
                    WriteRows,
                    Xid,
                    MysqlGtid,
                    Query,
                    TableMap,
                    WriteRows,
                    Xid,
                    MysqlGtid,
                    Query,
                    TableMap,
                    UpdateRows,
                    Xid,
                    Stop,
                ],
                true,
            ),
            (
                testdata::MYSQL_8_0_28,
                "8.0.28",
                &[
                    FormatDescription,
                    PreviousGtids,
                    MysqlGtid,
                    Query,
                    MysqlGtid,
                    Query,
                    MysqlGtid,
                    Query,
                    TableMap,
                    WriteRows,
                    Xid,
                    MysqlGtid,
                    Query,
                    TableMap,
                    UpdateRows,
                    Xid,
                    MysqlGtid,
                    Query,
                    TableMap,
                    DeleteRows,
                    Xid,
                ],
                false,
            ),
            (
                testdata::MYSQL_8_0_32_COMPRESSED,
                "8.0.32",
                &[
                    FormatDescription,
                    PreviousGtids,
                    AnonymousGtid,
                    TransactionPayload,
                    Rotate,
                ],
                true,
            ),
            (
                testdata::MYSQL_8_0_40_PREVIOUS_GTIDS,
                "8.0.40",
                &[FormatDescription, PreviousGtids, Rotate],
                true,
            ),
            (
                testdata::MYSQL_9_6_TAGGED,
                "9.6.0",
                &[
                    FormatDescription,
                    PreviousGtids,
                    MysqlGtidTagged,
                    Query,
                    TableMap,
                    WriteRows,
                    Xid,
                    Rotate,
                ],
                true,
            ),
        ];
        for (bytes, version, types, closed) in expected {
            let file = testdata::parse(bytes);
            assert_eq!(file.format.server_version, version);
            assert_eq!(file.checksum(), BinlogChecksum::Crc32, "{version}");
            assert_eq!(file.is_closed(), closed, "{version}");
            let found: Vec<EventType> = file.events.iter().map(|e| e.header.event_type).collect();
            assert_eq!(found, types, "{version}");
            let total: usize = file.events.iter().map(|e| e.bytes.len()).sum();
            assert_eq!(total + 4, bytes.len(), "{version}");
            for (offset, event) in file.events_with_offsets().skip(1) {
                event.verify_crc32().unwrap();
                assert_eq!(
                    u64::from(event.header.log_pos),
                    offset + event.bytes.len() as u64
                );
            }
        }
    }

    #[test]
    fn a_file_still_being_written_has_its_in_use_flag_outside_the_crc() {
        // MySQL 8.0.28 had not closed this file: BINLOG_IN_USE is set on its
        // FORMAT_DESCRIPTION, and the CRC32 was computed with it clear.
        let file = testdata::parse(testdata::MYSQL_8_0_28);
        let fde = &file.events[0];
        assert_eq!(fde.header.flags & 1, 1);
        assert!(fde.verify_crc32().is_err());
        let mut closed = fde.bytes.to_vec();
        closed[17] &= !1;
        RawEvent::parse(Bytes::from(closed))
            .unwrap()
            .verify_crc32()
            .unwrap();
    }

    #[test]
    fn the_truncated_fixture_is_a_typed_error() {
        // The magic and 10 bytes of a FORMAT_DESCRIPTION header.
        assert_eq!(testdata::TRUNCATED.len(), 14);
        assert_eq!(
            BinlogFile::parse(Bytes::from_static(testdata::TRUNCATED)),
            Err(BinlogFileError::Truncated {
                offset: 4,
                needed: EVENT_HEADER_LEN as u64,
                available: 10
            })
        );
    }

    #[test]
    fn any_flipped_byte_is_caught() {
        // Flip one bit in every byte past the magic: framing, log_pos or CRC
        // catches each one; nothing panics.
        for bytes in [
            SMALL,
            testdata::MYSQL_8_0_28,
            testdata::MYSQL_8_0_32_COMPRESSED,
        ] {
            for i in 4..bytes.len() {
                let mut bad = bytes.to_vec();
                bad[i] ^= 0x04;
                assert!(
                    BinlogFile::parse(Bytes::from(bad)).is_err(),
                    "flip at byte {i} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn garbage_is_refused() {
        assert_eq!(
            BinlogFile::parse(Bytes::from_static(b"")),
            Err(BinlogFileError::BadMagic)
        );
        assert_eq!(
            BinlogFile::parse(Bytes::from_static(b"\xfebin")),
            Err(BinlogFileError::NoFormatDescription)
        );
        // An event whose size claims less than a header.
        let mut tiny = b"\xfebin".to_vec();
        tiny.extend_from_slice(&[0u8; 19]);
        assert!(matches!(
            BinlogFile::parse(Bytes::from(tiny)),
            Err(BinlogFileError::Event {
                offset: 4,
                source: EventError::EventSizeTooSmall { event_size: 0 }
            })
        ));
        // A GTID_LIST first, with no FORMAT_DESCRIPTION before it.
        let mut no_fde = b"\xfebin".to_vec();
        no_fde.extend_from_slice(&whole_event(1));
        assert_eq!(
            BinlogFile::parse(Bytes::from(no_fde)),
            Err(BinlogFileError::FirstEventNotFormatDescription {
                found: EventType::GtidList
            })
        );
    }

    fn whole_event(index: usize) -> Vec<u8> {
        small().events[index].bytes.to_vec()
    }
}
