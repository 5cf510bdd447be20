//! Test archives: what the shipper's ChunkBuffer makes of
//! real MySQL binlog files (drivers/mysql/testdata), cut after every
//! event, in a memory:// archive.

use crate::archive::{Archive, ArchiveSettings, Engine};
use crate::engines::mysql::chunk_buffer::tests::{mysql_start, streamed};

pub(crate) const MYSQL_8_0_40_PREVIOUS_GTIDS: &[u8] =
    include_bytes!("../../../drivers/mysql/testdata/mysql-8.0.40-previous-gtids.bin");

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
