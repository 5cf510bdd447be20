//! Who the relay says it is: the primary whose binlog the archive holds
//! newest. A replica checks that server_id (MySQL: server_uuid) differs
//! from its own and reads the checksum setting from it.

use super::binlog_archive::BinlogArchive;
use super::error::RelayServeError;
use crate::engines::mysql::index::ChunkIndex;
use crate::engines::mysql::layout::IndexKey;
use instarec_mysql::relay::{MysqlIdentity, ServerIdentity};
use instarec_mysql::{MariadbGtidPos, MysqlGtid, MysqlGtidSet, ServerUuid};

/// None while the archive holds no binlog.
pub async fn current(archive: &BinlogArchive) -> Result<Option<ServerIdentity>, RelayServeError> {
    let keys = archive.chunks().await?;
    let Some(newest) = keys.last() else {
        return Ok(None);
    };
    let format = archive.format(newest.epoch, &newest.file).await?;
    let index = archive.index(newest).await?;
    let server_id = format.event.header.server_id;
    let mysql = if index.flavor == "mysql" {
        let uuid = newest_transaction_uuid(archive, &keys, &index).await?;
        Some(mysql_identity(&index, uuid, server_id))
    } else {
        None
    };
    // The domain the primary writes to: that of its newest transaction.
    let gtid_domain_id = index
        .last_gtid
        .as_deref()
        .and_then(|g| g.parse::<MariadbGtidPos>().ok())
        .and_then(|p| p.iter().next().map(|g| g.domain_id))
        .unwrap_or(0);
    Ok(Some(ServerIdentity {
        server_id,
        version: format.parsed.server_version.clone(),
        binlog_checksum: format.parsed.checksum,
        gtid_domain_id,
        mysql,
    }))
}

/// The uuid of the archive's newest transaction (`newest` is the index of
/// `keys`' last chunk); None when no chunk has one. The newest chunks often
/// hold none (a ROTATE, a STOP, a new file's PREVIOUS_GTIDS), so this walks
/// back to the newest that does: indexes are small and the walk stops at
/// the first hit, or at a chunk with an empty GTID state (the state only
/// grows, so no older chunk has a transaction with a GTID either).
pub async fn newest_transaction_uuid(
    archive: &BinlogArchive,
    keys: &[IndexKey],
    newest: &ChunkIndex,
) -> Result<Option<ServerUuid>, RelayServeError> {
    let older = keys.len().saturating_sub(1);
    let mut index = newest.clone();
    for key in keys[..older].iter().rev() {
        if let Some(uuid) = index.last_gtid.as_deref().and_then(mysql_gtid_uuid) {
            return Ok(Some(uuid));
        }
        if index.gtid_pos_after.is_empty() {
            return Ok(None);
        }
        index = archive.index(key).await?;
    }
    Ok(index.last_gtid.as_deref().and_then(mysql_gtid_uuid))
}

/// The MySQL primary's server_uuid is the uuid of its newest transaction
/// (the one it wrote itself, as the newest chunk was shipped from it; the
/// smallest uuid of the state could be the primary's before a failover).
/// Without any transaction with a GTID, the state's uuid; an archive
/// without GTIDs (gtid_mode OFF) gets a uuid made of the server_id, stable
/// across connections and never a real server's.
fn mysql_identity(
    newest: &ChunkIndex,
    newest_transaction: Option<ServerUuid>,
    server_id: u32,
) -> MysqlIdentity {
    let state: MysqlGtidSet = newest.gtid_pos_after.parse().unwrap_or_default();
    let server_uuid = newest_transaction
        .or_else(|| state.uuids().next().copied())
        .unwrap_or_else(|| uuid_of_server_id(server_id));
    MysqlIdentity {
        server_uuid,
        gtid_mode_on: !state.is_empty(),
    }
}

/// The uuid of "uuid:gno".
pub fn mysql_gtid_uuid(text: &str) -> Option<ServerUuid> {
    parse_mysql_gtid(text).map(|g| g.uuid)
}

/// "uuid:gno", as chunk indexes of MySQL archives hold them.
pub fn parse_mysql_gtid(text: &str) -> Option<MysqlGtid> {
    let (uuid, gno) = text.rsplit_once(':')?;
    Some(MysqlGtid {
        uuid: uuid.parse().ok()?,
        gno: gno.parse().ok()?,
    })
}

fn uuid_of_server_id(server_id: u32) -> ServerUuid {
    let mut bytes = [0u8; 16];
    bytes[12..].copy_from_slice(&server_id.to_be_bytes());
    ServerUuid(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::Epoch;
    use crate::engines::mysql::chunk_buffer::tests::{MYSQL_8_0_32_COMPRESSED, SID_8_0_26};
    use crate::engines::mysql::fixture_archive::{failed_over_mysql, shipped_mysql, SID_8_0_28};

    fn index(last_gtid: Option<&str>, after: &str) -> ChunkIndex {
        ChunkIndex {
            epoch: Epoch(1),
            file: "binlog.000001".into(),
            first_pos: 125,
            end_pos: 200,
            flavor: "mysql".into(),
            first_gtid: last_gtid.map(str::to_string),
            last_gtid: last_gtid.map(str::to_string),
            gtid_pos_after: after.into(),
            first_ts: 0,
            last_ts: 0,
            events: 1,
            bytes: 75,
            chunk: "c".into(),
        }
    }

    #[test]
    fn a_mysql_primary_is_the_uuid_of_its_newest_transaction() {
        let a = "97c7af02-4c50-11ec-acd8-681842034964";
        let b = "b9b88c66-0755-11f1-9899-4a9da94c4d71";
        let id = mysql_identity(
            &index(None, &format!("{a}:1-5,{b}:1-3")),
            mysql_gtid_uuid(&format!("{b}:3")),
            7,
        );
        assert_eq!(id.server_uuid.to_string(), b);
        assert!(id.gtid_mode_on);
        // No transaction with a GTID in the archive: the state names it.
        let id = mysql_identity(&index(None, &format!("{a}:1-5")), None, 7);
        assert_eq!(id.server_uuid.to_string(), a);
        let id = mysql_identity(&index(None, ""), None, 7);
        assert_eq!(
            id.server_uuid.to_string(),
            "00000000-0000-0000-0000-000000000007"
        );
        assert!(!id.gtid_mode_on);
        assert_eq!(parse_mysql_gtid("x:1"), None);
    }

    #[tokio::test]
    async fn after_a_failover_the_relay_is_the_new_primary_though_its_newest_chunk_has_no_gtid() {
        let archive = BinlogArchive::new(failed_over_mysql().await);
        let keys = archive.chunks().await.unwrap();
        let newest = archive.index(keys.last().unwrap()).await.unwrap();
        assert_eq!(newest.last_gtid, None);
        let state: MysqlGtidSet = newest.gtid_pos_after.parse().unwrap();
        assert_eq!(
            state.uuids().map(ToString::to_string).collect::<Vec<_>>(),
            [SID_8_0_28, SID_8_0_26],
            "the old primary's uuid sorts first"
        );
        let id = current(&archive).await.unwrap().unwrap();
        assert_eq!(id.mysql.unwrap().server_uuid.to_string(), SID_8_0_26);
    }

    #[tokio::test]
    async fn an_archive_of_anonymous_transactions_has_no_newest_transaction_uuid() {
        let archive =
            BinlogArchive::new(shipped_mysql(&[(MYSQL_8_0_32_COMPRESSED, "binlog.000001")]).await);
        let keys = archive.chunks().await.unwrap();
        let newest = archive.index(keys.last().unwrap()).await.unwrap();
        assert_eq!(
            newest_transaction_uuid(&archive, &keys, &newest)
                .await
                .unwrap(),
            None
        );
    }
}
