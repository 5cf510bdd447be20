//! Test archives: what the shipper's ChunkBuffer makes of
//! real MySQL binlog files (drivers/mysql/testdata), cut after every
//! event, in a memory:// archive.

use crate::archive::{Archive, ArchiveSettings};
use crate::engine::Engine;
use crate::engines::mysql::chunk_buffer::tests::{mysql_start, streamed, MYSQL_8_0_26};

pub(crate) const MYSQL_8_0_40_PREVIOUS_GTIDS: &[u8] =
    include_bytes!("../../../drivers/mysql/testdata/mysql-8.0.40-previous-gtids.bin");
pub(crate) const MYSQL_8_0_28: &[u8] =
    include_bytes!("../../../drivers/mysql/testdata/mysql-8.0.28-gtid-in-use.bin");
pub(crate) const SID_8_0_28: &str = "93e95066-a2f4-11ec-9b69-9657f0ae95e2";

/// `files` (bytes, binlog name) shipped in order by one primary.
pub(crate) async fn shipped_mysql(files: &[(&'static [u8], &str)]) -> Archive {
    let archive = Archive::open(&ArchiveSettings::new("memory://")).unwrap();
    let (archive, _) = archive
        .open_cluster(Engine::Mysql, "mysql8-fixture")
        .await
        .unwrap();
    let mut buffer = mysql_start();
    for (bytes, name) in files {
        for event in streamed(bytes, name) {
            buffer.push(event).unwrap();
            if let Some(cut) = buffer.cut() {
                for (key, payload) in cut.everything() {
                    archive.put(&key, payload).await.unwrap();
                }
            }
        }
    }
    archive
}

/// A failover: 93e95066-…:1-5 (8.0.28), then 97c7af02-…:1-5 (8.0.26) of
/// the new primary, whose file ends in a STOP. The newest chunk has no
/// GTID, and the new primary's uuid sorts after the old one's.
pub(crate) async fn failed_over_mysql() -> Archive {
    shipped_mysql(&[
        (MYSQL_8_0_28, "binlog.000001"),
        (MYSQL_8_0_26, "binlog.000002"),
    ])
    .await
}
