//! The real binlog files of drivers/mysql/testdata (where each comes from:
//! its README), and the packets a primary would stream them as.
//!
//! No MySQL server runs where the tests run, so the MySQL 8 files are ones
//! MySQL servers wrote for rust_mysql_common's test suite.

use bytes::{BufMut, Bytes, BytesMut};

use crate::binlog_file::BinlogFile;
use crate::binlog_position::BinlogPosition;
use crate::event::RawEvent;
use crate::event_type::EventType;
use crate::relay::fake_rotate;

/// MariaDB 10.11: six event groups in two domains, closed by a ROTATE.
pub const MARIADB_10_11: &[u8] = include_bytes!("../testdata/mariadb-10.11-small.bin");
/// MySQL 8.0.26, gtid_mode=ON: 97c7af02-4c50-11ec-acd8-681842034964:1-5
/// (two DDLs, three row transactions), closed by a STOP.
pub const MYSQL_8_0_26: &[u8] = include_bytes!("../testdata/mysql-8.0.26-gtid.bin");
/// MySQL 8.0.28, gtid_mode=ON: 93e95066-a2f4-11ec-9b69-9657f0ae95e2:1-5, the
/// file still open (BINLOG_IN_USE set on its FORMAT_DESCRIPTION).
pub const MYSQL_8_0_28: &[u8] = include_bytes!("../testdata/mysql-8.0.28-gtid-in-use.bin");
/// MySQL 8.0.32, binlog_transaction_compression=ON: one anonymous
/// transaction as a zstd TRANSACTION_PAYLOAD, then a ROTATE.
pub const MYSQL_8_0_32_COMPRESSED: &[u8] =
    include_bytes!("../testdata/mysql-8.0.32-transaction-compression.bin");
/// MySQL 8.0.40: PREVIOUS_GTIDS b9b88c66-0755-11f1-9899-4a9da94c4d71:1-2, ROTATE.
pub const MYSQL_8_0_40_PREVIOUS_GTIDS: &[u8] =
    include_bytes!("../testdata/mysql-8.0.40-previous-gtids.bin");
/// MySQL 9.6.0: a tagged GTID (GTID_TAGGED_LOG_EVENT) and a tagged
/// PREVIOUS_GTIDS.
pub const MYSQL_9_6_TAGGED: &[u8] = include_bytes!("../testdata/mysql-9.6.0-tagged-gtid.bin");
/// 14 bytes: the magic and 10 bytes of a FORMAT_DESCRIPTION header.
pub const TRUNCATED: &[u8] = include_bytes!("../testdata/mysql-truncated-event.bin");

/// The MySQL 8 files whose every event frames, chains and checksums.
pub const MYSQL_8: [(&str, &[u8]); 5] = [
    ("mysql-8.0.26-gtid.bin", MYSQL_8_0_26),
    ("mysql-8.0.28-gtid-in-use.bin", MYSQL_8_0_28),
    (
        "mysql-8.0.32-transaction-compression.bin",
        MYSQL_8_0_32_COMPRESSED,
    ),
    (
        "mysql-8.0.40-previous-gtids.bin",
        MYSQL_8_0_40_PREVIOUS_GTIDS,
    ),
    ("mysql-9.6.0-tagged-gtid.bin", MYSQL_9_6_TAGGED),
];

pub fn parse(bytes: &'static [u8]) -> BinlogFile {
    BinlogFile::parse(Bytes::from_static(bytes)).expect("fixture parses")
}

/// The events of `file` of type `ty`.
pub fn events_of(file: &BinlogFile, ty: EventType) -> Vec<&RawEvent> {
    file.events
        .iter()
        .filter(|e| e.header.event_type == ty)
        .collect()
}

/// What a MySQL primary sends after COM_BINLOG_DUMP_GTID when the stream
/// starts at the beginning of `file`, named `name`: the artificial ROTATE,
/// then every event of the file, each after the OK byte.
pub fn dump_packets(file: &BinlogFile, name: &str) -> Vec<Bytes> {
    let start = BinlogPosition::new(name, 4).expect("a valid file name");
    let rotate = fake_rotate(file.events[0].header.server_id, &start, file.checksum());
    std::iter::once(&rotate)
        .chain(&file.events)
        .map(|e| {
            let mut p = BytesMut::with_capacity(1 + e.bytes.len());
            p.put_u8(0x00);
            p.put_slice(&e.bytes);
            p.freeze()
        })
        .collect()
}
