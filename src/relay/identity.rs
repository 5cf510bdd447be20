//! Who the relay says it is: the primary whose binlog the archive holds
//! newest. A replica checks that server_id differs from its own and reads
//! the checksum setting from it.

use super::binlog_archive::BinlogArchive;
use super::error::RelayServeError;
use instarec_mysql::relay::ServerIdentity;
use instarec_mysql::MariadbGtidPos;

/// None while the archive holds no binlog.
pub async fn current(archive: &BinlogArchive) -> Result<Option<ServerIdentity>, RelayServeError> {
    let keys = archive.chunks().await?;
    let Some(newest) = keys.last() else {
        return Ok(None);
    };
    let format = archive.format(newest.epoch, &newest.file).await?;
    let index = archive.index(newest).await?;
    // The domain the primary writes to: that of its newest transaction.
    let gtid_domain_id = index
        .last_gtid
        .as_deref()
        .and_then(|g| g.parse::<MariadbGtidPos>().ok())
        .and_then(|p| p.iter().next().map(|g| g.domain_id))
        .unwrap_or(0);
    Ok(Some(ServerIdentity {
        server_id: format.event.header.server_id,
        version: format.parsed.server_version.clone(),
        binlog_checksum: format.parsed.checksum,
        gtid_domain_id,
    }))
}
