//! MariaDB GTID_EVENT (162) and GTID_LIST_EVENT (163) bodies.
//!
//! GTID_EVENT starts every event group; the GTID's server_id is the one in
//! the event header.
//!
//! ```text
//! seq_no u64le | domain_id u32le | flags u8 | commit_id u64le if flags & FL_GROUP_COMMIT_ID
//! (otherwise 6 zero bytes) | XA and extra fields in newer servers, not read here
//! ```
//!
//! GTID_LIST_EVENT follows FORMAT_DESCRIPTION in every binlog file and holds
//! the binlog state up to that file: one GTID per (domain, server) pair that
//! ever wrote to the domain.
//!
//! ```text
//! count u32le (low 28 bits; high 4 bits are flags) | count × (domain_id u32le, server_id u32le, seq_no u64le)
//! ```

use bytes::{BufMut, BytesMut};

use crate::checksum::BinlogChecksum;
use crate::event::{require_len, EventError, RawEvent};
use crate::event_type::EventType;
use crate::gtid::{MariadbGtid, MariadbGtidPos};

/// GTID_EVENT flags (flags2 in the server source).
pub const FL_STANDALONE: u8 = 1;
pub const FL_GROUP_COMMIT_ID: u8 = 2;
pub const FL_TRANSACTIONAL: u8 = 4;
pub const FL_ALLOW_PARALLEL: u8 = 8;
pub const FL_WAITED: u8 = 16;
pub const FL_DDL: u8 = 32;
pub const FL_PREPARED_XA: u8 = 64;
pub const FL_COMPLETED_XA: u8 = 128;

const GTID_FIXED_LEN: usize = 8 + 4 + 1;
/// Servers pad the event to this length when there is no commit_id.
const GTID_PADDED_LEN: usize = 19;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MariadbGtidEvent {
    pub seq_no: u64,
    pub domain_id: u32,
    pub flags: u8,
    /// Group commit id: event groups sharing it committed together and may
    /// be applied in parallel.
    pub commit_id: Option<u64>,
}

impl MariadbGtidEvent {
    /// Parses the body (between header and checksum trailer).
    pub fn parse(body: &[u8]) -> Result<Self, EventError> {
        let ty = EventType::MariadbGtid;
        require_len(ty, body, GTID_FIXED_LEN)?;
        let flags = body[12];
        let commit_id = if flags & FL_GROUP_COMMIT_ID != 0 {
            require_len(ty, body, GTID_FIXED_LEN + 8)?;
            Some(u64_at(body, 13))
        } else {
            None
        };
        Ok(MariadbGtidEvent {
            seq_no: u64_at(body, 0),
            domain_id: u32_at(body, 8),
            flags,
            commit_id,
        })
    }

    /// Parses a GTID event, checking its type first.
    pub fn from_event(event: &RawEvent, checksum: BinlogChecksum) -> Result<Self, EventError> {
        expect_type(event, EventType::MariadbGtid)?;
        Self::parse(event.body(checksum)?)
    }

    /// The GTID, given the header's server_id.
    pub fn gtid(&self, server_id: u32) -> MariadbGtid {
        MariadbGtid {
            domain_id: self.domain_id,
            server_id,
            seq_no: self.seq_no,
        }
    }

    /// True for a group that is not a transaction with BEGIN/COMMIT (DDL).
    pub fn is_standalone(&self) -> bool {
        self.flags & FL_STANDALONE != 0
    }

    /// Encodes the base fields, as a server without XA writes them.
    pub fn encode(&self, buf: &mut BytesMut) {
        buf.put_u64_le(self.seq_no);
        buf.put_u32_le(self.domain_id);
        match self.commit_id {
            Some(id) => {
                buf.put_u8(self.flags | FL_GROUP_COMMIT_ID);
                buf.put_u64_le(id);
            }
            None => {
                buf.put_u8(self.flags & !FL_GROUP_COMMIT_ID);
                buf.put_bytes(0, GTID_PADDED_LEN - GTID_FIXED_LEN);
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MariadbGtidListEvent {
    /// The high 4 bits of the count field (FLAG_UNTIL_REACHED=1,
    /// FLAG_IGN_GTIDS=2); 0 in binlog files.
    pub flags: u8,
    pub gtids: Vec<MariadbGtid>,
}

const GTID_LIST_ENTRY_LEN: usize = 16;

impl MariadbGtidListEvent {
    /// Parses the body (between header and checksum trailer). Bytes after
    /// the last entry are ignored, room for fields newer servers may add.
    pub fn parse(body: &[u8]) -> Result<Self, EventError> {
        let ty = EventType::GtidList;
        require_len(ty, body, 4)?;
        let raw = u32_at(body, 0);
        let count = (raw & 0x0fff_ffff) as usize;
        let needed = count
            .checked_mul(GTID_LIST_ENTRY_LEN)
            .and_then(|n| n.checked_add(4))
            .unwrap_or(usize::MAX);
        require_len(ty, body, needed)?;
        let gtids = body[4..needed]
            .chunks_exact(GTID_LIST_ENTRY_LEN)
            .map(|e| MariadbGtid {
                domain_id: u32_at(e, 0),
                server_id: u32_at(e, 4),
                seq_no: u64_at(e, 8),
            })
            .collect();
        Ok(MariadbGtidListEvent {
            flags: (raw >> 28) as u8,
            gtids,
        })
    }

    /// Parses a GTID_LIST event, checking its type first.
    pub fn from_event(event: &RawEvent, checksum: BinlogChecksum) -> Result<Self, EventError> {
        expect_type(event, EventType::GtidList)?;
        Self::parse(event.body(checksum)?)
    }

    /// The @@gtid_binlog_pos this list stands for. A domain may appear once
    /// per server that wrote to it; the server lists each domain's most
    /// recent GTID last, so the last entry of a domain wins.
    pub fn position(&self) -> MariadbGtidPos {
        self.gtids.iter().copied().collect()
    }

    pub fn encode(&self, buf: &mut BytesMut) {
        buf.put_u32_le((self.gtids.len() as u32 & 0x0fff_ffff) | (u32::from(self.flags) << 28));
        for g in &self.gtids {
            buf.put_u32_le(g.domain_id);
            buf.put_u32_le(g.server_id);
            buf.put_u64_le(g.seq_no);
        }
    }
}

fn expect_type(event: &RawEvent, expected: EventType) -> Result<(), EventError> {
    if event.header.event_type != expected {
        return Err(EventError::InvalidBody {
            event_type: event.header.event_type,
            reason: format!("expected a {expected:?} event"),
        });
    }
    Ok(())
}

/// Callers have checked the length.
fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

fn u64_at(b: &[u8], i: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[i..i + 8]);
    u64::from_le_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    /// GTID 0-1-2 (a DDL) from testdata/mariadb-10.11-small.bin at offset 385.
    #[rustfmt::skip]
    const GTID_EVENT: &[u8] = &[
        0x41, 0xb0, 0x09, 0x6b, 0xa2, 0x01, 0x00, 0x00, 0x00, 0x2a, 0x00, 0x00, 0x00, 0xab, 0x01,
        0x00, 0x00, 0x08, 0x00, // header: type 162, server 1, size 42, log_pos 427, flags 8
        0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // seq_no 2
        0x00, 0x00, 0x00, 0x00, // domain 0
        0x29, // standalone | allow_parallel | ddl
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // padding
        0x92, 0x25, 0x8b, 0x82, // crc32
    ];

    #[test]
    fn gtid_event_from_a_real_binlog() {
        let raw = RawEvent::parse(Bytes::from_static(GTID_EVENT)).unwrap();
        raw.verify_crc32().unwrap();
        let ev = MariadbGtidEvent::from_event(&raw, BinlogChecksum::Crc32).unwrap();
        assert_eq!(
            ev,
            MariadbGtidEvent {
                seq_no: 2,
                domain_id: 0,
                flags: FL_STANDALONE | FL_ALLOW_PARALLEL | FL_DDL,
                commit_id: None,
            }
        );
        assert!(ev.is_standalone());
        assert_eq!(ev.gtid(raw.header.server_id).to_string(), "0-1-2");
        let mut buf = BytesMut::new();
        ev.encode(&mut buf);
        assert_eq!(&buf[..], raw.body(BinlogChecksum::Crc32).unwrap());
    }

    #[test]
    fn gtid_event_with_commit_id() {
        #[rustfmt::skip]
        let body = [
            0x07, 0x01, 0, 0, 0, 0, 0, 0, // seq_no 263
            0x05, 0, 0, 0, // domain 5
            FL_GROUP_COMMIT_ID | FL_TRANSACTIONAL,
            0x2a, 0, 0, 0, 0, 0, 0, 0, // commit_id 42
        ];
        let ev = MariadbGtidEvent::parse(&body).unwrap();
        assert_eq!(ev.commit_id, Some(42));
        assert_eq!(ev.gtid(9).to_string(), "5-9-263");
        assert!(!ev.is_standalone());
        let mut buf = BytesMut::new();
        ev.encode(&mut buf);
        assert_eq!(&buf[..], &body);
        for cut in 0..body.len() {
            assert!(MariadbGtidEvent::parse(&body[..cut]).is_err(), "cut {cut}");
        }
    }

    /// The MariaDB knowledge base's example body: "Gtid list [0-10124-3584]".
    const GTID_LIST_BODY: &[u8] = &[
        0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x8c, 0x27, 0x00, 0x00, 0x00, 0x0e, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00,
    ];

    #[test]
    fn gtid_list_parses_and_encodes_literal_bytes() {
        let ev = MariadbGtidListEvent::parse(GTID_LIST_BODY).unwrap();
        assert_eq!(ev.flags, 0);
        assert_eq!(ev.position().to_string(), "0-10124-3584");
        let mut buf = BytesMut::new();
        ev.encode(&mut buf);
        assert_eq!(&buf[..], GTID_LIST_BODY);
        for cut in 0..GTID_LIST_BODY.len() {
            assert!(MariadbGtidListEvent::parse(&GTID_LIST_BODY[..cut]).is_err());
        }
    }

    #[test]
    fn gtid_list_keeps_the_last_entry_per_domain_and_reads_flags() {
        let ev = MariadbGtidListEvent {
            flags: 2,
            gtids: vec![
                "0-1-100".parse().unwrap(),
                "1-1-7".parse().unwrap(),
                "0-2-105".parse().unwrap(),
            ],
        };
        let mut buf = BytesMut::new();
        ev.encode(&mut buf);
        assert_eq!(&buf[..4], &[3, 0, 0, 0x20]);
        let back = MariadbGtidListEvent::parse(&buf).unwrap();
        assert_eq!(back, ev);
        assert_eq!(back.position().to_string(), "0-2-105,1-1-7");
        // A count of 2^28-1 entries in a 4-byte body is an error, not an allocation.
        assert!(MariadbGtidListEvent::parse(&[0xff, 0xff, 0xff, 0xff]).is_err());
    }

    #[test]
    fn from_event_checks_the_type() {
        let raw = RawEvent::parse(Bytes::from_static(GTID_EVENT)).unwrap();
        assert!(MariadbGtidListEvent::from_event(&raw, BinlogChecksum::Crc32).is_err());
    }
}
