//! The commands a replica sends to start a binlog stream:
//!
//! ```text
//! COM_REGISTER_SLAVE    0x15 | server_id u32le | hostname lenstr1 | user lenstr1
//!                       | password lenstr1 | port u16le | rank u32le | master_id u32le
//! COM_BINLOG_DUMP       0x12 | pos u32le | flags u16le | server_id u32le | file name (rest)
//! COM_BINLOG_DUMP_GTID  0x1e | flags u16le | server_id u32le | name_len u32le | name
//!                       | pos u64le | sid_block_len u32le | sid block   (MySQL only)
//! ```
//!
//! MariaDB has no COM_BINLOG_DUMP_GTID: a MariaDB replica sets its GTID
//! position in the `@slave_connect_state` user variable and sends a plain
//! COM_BINLOG_DUMP (see binlog_client.rs).

use bytes::{BufMut, BytesMut};

use crate::gtid_mysql::MysqlGtidSet;

pub const COM_QUERY: u8 = 0x03;
pub const COM_BINLOG_DUMP: u8 = 0x12;
pub const COM_REGISTER_SLAVE: u8 = 0x15;
pub const COM_BINLOG_DUMP_GTID: u8 = 0x1e;

/// COM_BINLOG_DUMP_GTID flag: the SID block follows.
const BINLOG_THROUGH_GTID: u16 = 0x04;

/// Announces this replica to the primary (it shows in SHOW SLAVE HOSTS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterReplica {
    pub server_id: u32,
    pub hostname: String,
    pub port: u16,
}

impl RegisterReplica {
    pub fn encode(&self, buf: &mut BytesMut) {
        buf.put_u8(COM_REGISTER_SLAVE);
        buf.put_u32_le(self.server_id);
        put_lenstr1(buf, self.hostname.as_bytes());
        put_lenstr1(buf, b""); // user: unused by the primary
        put_lenstr1(buf, b""); // password: unused by the primary
        buf.put_u16_le(self.port);
        buf.put_u32_le(0); // replication rank: ignored
        buf.put_u32_le(0); // master_id: filled in by the primary
    }
}

/// A string with a one-byte length, cut at 255 bytes.
fn put_lenstr1(buf: &mut BytesMut, s: &[u8]) {
    let s = &s[..s.len().min(u8::MAX as usize)];
    buf.put_u8(s.len() as u8);
    buf.put_slice(s);
}

/// COM_BINLOG_DUMP: stream from `file` at `pos` (file "" and pos 4 with
/// MariaDB's `@slave_connect_state` set means "from that GTID position").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinlogDump {
    pub server_id: u32,
    pub file: String,
    /// Offsets past 4 GiB cannot be asked for with this command (u32 on the wire).
    pub pos: u32,
    /// BINLOG_SEND_ANNOTATE_ROWS_EVENT (MariaDB): without it the primary
    /// leaves its ANNOTATE_ROWS events out and the stream is not the file.
    pub send_annotate_rows: bool,
}

/// COM_BINLOG_DUMP flag (MariaDB): send ANNOTATE_ROWS events too.
const BINLOG_SEND_ANNOTATE_ROWS_EVENT: u16 = 0x02;

impl BinlogDump {
    pub fn encode(&self, buf: &mut BytesMut) {
        buf.put_u8(COM_BINLOG_DUMP);
        buf.put_u32_le(self.pos);
        // No BINLOG_DUMP_NON_BLOCK: at the end, wait for more.
        buf.put_u16_le(if self.send_annotate_rows {
            BINLOG_SEND_ANNOTATE_ROWS_EVENT
        } else {
            0
        });
        buf.put_u32_le(self.server_id);
        buf.put_slice(self.file.as_bytes());
    }
}

/// COM_BINLOG_DUMP_GTID (MySQL): stream every transaction not in `executed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinlogDumpGtid {
    pub server_id: u32,
    pub executed: MysqlGtidSet,
}

impl BinlogDumpGtid {
    pub fn encode(&self, buf: &mut BytesMut) {
        buf.put_u8(COM_BINLOG_DUMP_GTID);
        buf.put_u16_le(BINLOG_THROUGH_GTID);
        buf.put_u32_le(self.server_id);
        buf.put_u32_le(0); // no file name: the GTID set decides
        buf.put_u64_le(4);
        buf.put_u32_le(self.executed.encoded_len() as u32);
        self.executed.encode(buf);
    }
}

/// COM_QUERY with `sql` as its text.
pub fn encode_query(sql: &str, buf: &mut BytesMut) {
    buf.put_u8(COM_QUERY);
    buf.put_slice(sql.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_replica_literal_bytes() {
        let mut buf = BytesMut::new();
        RegisterReplica {
            server_id: 0x0102_0304,
            hostname: "ab".into(),
            port: 3306,
        }
        .encode(&mut buf);
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0x15,
            0x04, 0x03, 0x02, 0x01, // server_id
            0x02, b'a', b'b',       // hostname
            0x00,                   // user
            0x00,                   // password
            0xea, 0x0c,             // port 3306
            0, 0, 0, 0,             // rank
            0, 0, 0, 0,             // master_id
        ];
        assert_eq!(&buf[..], expected);
    }

    #[test]
    fn binlog_dump_literal_bytes() {
        let mut buf = BytesMut::new();
        BinlogDump {
            server_id: 7,
            file: "mysql-bin.000002".into(),
            pos: 4,
            send_annotate_rows: true,
        }
        .encode(&mut buf);
        let mut expected = vec![0x12, 4, 0, 0, 0, 2, 0, 7, 0, 0, 0];
        expected.extend_from_slice(b"mysql-bin.000002");
        assert_eq!(&buf[..], &expected[..]);
    }

    #[test]
    fn binlog_dump_gtid_literal_bytes() {
        let executed: MysqlGtidSet = "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5".parse().unwrap();
        let mut buf = BytesMut::new();
        BinlogDumpGtid {
            server_id: 2,
            executed,
        }
        .encode(&mut buf);
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0x1e,
            0x04, 0x00,             // flags: BINLOG_THROUGH_GTID
            0x02, 0x00, 0x00, 0x00, // server_id
            0x00, 0x00, 0x00, 0x00, // name length
            0x04, 0, 0, 0, 0, 0, 0, 0, // pos
            48, 0, 0, 0,            // sid block length
            1, 0, 0, 0, 0, 0, 0, 0, // one sid
            0x3e, 0x11, 0xfa, 0x47, 0x71, 0xca, 0x11, 0xe1,
            0x9e, 0x33, 0xc8, 0x0a, 0xa9, 0x42, 0x95, 0x62,
            1, 0, 0, 0, 0, 0, 0, 0, // one interval
            1, 0, 0, 0, 0, 0, 0, 0, // start 1
            6, 0, 0, 0, 0, 0, 0, 0, // end 6 (exclusive)
        ];
        assert_eq!(&buf[..], expected);
    }

    #[test]
    fn query_literal_bytes() {
        let mut buf = BytesMut::new();
        encode_query("SET @a=1", &mut buf);
        assert_eq!(&buf[..], b"\x03SET @a=1");
    }

    /// The SID block is the encoding MySQL itself writes in
    /// PREVIOUS_GTIDS_LOG_EVENT: asking for everything after the set a
    /// MySQL 8.0.40 file starts with sends that event's body back verbatim.
    #[test]
    fn binlog_dump_gtid_sid_block_is_what_mysql_writes() {
        use crate::event_type::EventType;
        use crate::testdata;
        let file = testdata::parse(testdata::MYSQL_8_0_40_PREVIOUS_GTIDS);
        let previous = testdata::events_of(&file, EventType::PreviousGtids)[0];
        let body = previous.body(file.checksum()).unwrap();
        let executed = MysqlGtidSet::parse(body).unwrap();
        let mut buf = BytesMut::new();
        BinlogDumpGtid {
            server_id: 2,
            executed,
        }
        .encode(&mut buf);
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0x1e,
            0x04, 0x00,             // flags: BINLOG_THROUGH_GTID
            0x02, 0x00, 0x00, 0x00, // server_id
            0x00, 0x00, 0x00, 0x00, // name length
            0x04, 0, 0, 0, 0, 0, 0, 0, // pos
            48, 0, 0, 0,            // sid block length
            1, 0, 0, 0, 0, 0, 0, 0, // one sid
            0xb9, 0xb8, 0x8c, 0x66, 0x07, 0x55, 0x11, 0xf1,
            0x98, 0x99, 0x4a, 0x9d, 0xa9, 0x4c, 0x4d, 0x71, // b9b88c66-0755-11f1-9899-4a9da94c4d71
            1, 0, 0, 0, 0, 0, 0, 0, // one interval
            1, 0, 0, 0, 0, 0, 0, 0, // start 1
            3, 0, 0, 0, 0, 0, 0, 0, // end 3 (exclusive): 1-2
        ];
        assert_eq!(&buf[..], expected);
        assert_eq!(&buf[23..], body);
    }
}
