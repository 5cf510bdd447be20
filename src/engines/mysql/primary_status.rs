//! What the shipper asks the primary on an ordinary connection: which
//! topology it belongs to, and where its binlog ends right now.

use super::position::{BinlogPoint, GtidState};
use anyhow::Context as _;
use instarec_mysql::{BinlogPosition, ServerFlavor};
use mysql_async::prelude::Queryable;
use std::time::Duration;
use tokio::sync::watch;

/// The archive's system id for this primary. `cluster_id` (from config)
/// names the replication topology; without it MariaDB falls back to its
/// GTID domain, which a promoted replica of the same topology shares, and
/// MySQL to its server_uuid.
pub async fn system_id(
    conn: &mut mysql_async::Conn,
    flavor: ServerFlavor,
    cluster_id: Option<&str>,
) -> anyhow::Result<String> {
    if let Some(id) = cluster_id {
        return Ok(format!("cluster-{id}"));
    }
    Ok(match flavor {
        ServerFlavor::Mariadb => {
            let d: Option<u32> = conn
                .query_first("SELECT @@global.gtid_domain_id")
                .await
                .context("reading @@gtid_domain_id")?;
            format!("gtid-domain-{}", d.unwrap_or(0))
        }
        ServerFlavor::Mysql => {
            let u: Option<String> = conn
                .query_first("SELECT @@server_uuid")
                .await
                .context("reading @@server_uuid")?;
            format!("server-uuid-{}", u.unwrap_or_default())
        }
    })
}

/// Where a first start streams from: the GTID state at the start of the
/// primary's oldest binlog. Asking for an older state (even the empty one)
/// is error 1236 once binlogs were purged. MariaDB: BINLOG_GTID_POS of the
/// oldest file's first event. MySQL: @@gtid_purged; the archive's GTID
/// state then includes the purged set, as @@gtid_executed does.
pub async fn first_start_state(
    conn: &mut mysql_async::Conn,
    flavor: ServerFlavor,
) -> anyhow::Result<GtidState> {
    let text = match flavor {
        ServerFlavor::Mariadb => {
            let oldest: Option<mysql_async::Row> = conn
                .query_first("SHOW BINARY LOGS")
                .await
                .context("SHOW BINARY LOGS (is log_bin on?)")?;
            match oldest
                .and_then(|r| r.get_opt::<String, _>(0))
                .and_then(Result::ok)
            {
                Some(file) => conn
                    .exec_first::<Option<String>, _, _>(
                        "SELECT BINLOG_GTID_POS(?, 4)",
                        (file.as_str(),),
                    )
                    .await
                    .with_context(|| format!("BINLOG_GTID_POS('{file}', 4)"))?
                    .flatten()
                    .unwrap_or_default(),
                None => String::new(),
            }
        }
        ServerFlavor::Mysql => conn
            .query_first::<Option<String>, _>("SELECT @@global.gtid_purged")
            .await
            .context("reading @@gtid_purged")?
            .flatten()
            .unwrap_or_default(),
    };
    GtidState::parse_from(flavor, &text)
        .map_err(|e| anyhow::anyhow!("the primary's oldest GTID state {text:?} is unreadable: {e}"))
}

/// The primary's binlog end: GTID state, then file:pos (read after it, so
/// the pair never claims less than the GTID state says).
pub async fn binlog_end(
    conn: &mut mysql_async::Conn,
    flavor: ServerFlavor,
) -> anyhow::Result<BinlogPoint> {
    let sql = match flavor {
        ServerFlavor::Mariadb => "SELECT @@global.gtid_binlog_pos",
        ServerFlavor::Mysql => "SELECT @@global.gtid_executed",
    };
    let text: Option<String> = conn
        .query_first(sql)
        .await
        .with_context(|| sql.to_string())?;
    let gtid = GtidState::parse_from(flavor, &text.unwrap_or_default())
        .map_err(|e| anyhow::anyhow!("{sql} answered something unreadable: {e}"))?;
    // MySQL 8.4 renamed it; MariaDB and older MySQL know the old name.
    let row: Option<mysql_async::Row> = match conn.query_first("SHOW MASTER STATUS").await {
        Ok(r) => r,
        Err(_) => conn
            .query_first("SHOW BINARY LOG STATUS")
            .await
            .context("SHOW BINARY LOG STATUS")?,
    };
    let row = row.context("SHOW MASTER STATUS returned no row: is log_bin on?")?;
    let file: String = row.get(0).context("SHOW MASTER STATUS: no File")?;
    let pos: u64 = row.get(1).context("SHOW MASTER STATUS: no Position")?;
    Ok(BinlogPoint {
        gtid,
        at: BinlogPosition { file, pos },
    })
}

/// Polls the primary's binlog end every `every` into `tx` until every
/// receiver is gone. Errors are logged and retried; they never stop shipping.
pub async fn watch_binlog_end(
    opts: mysql_async::Opts,
    flavor: ServerFlavor,
    every: Duration,
    tx: watch::Sender<Option<BinlogPoint>>,
) {
    let mut conn: Option<mysql_async::Conn> = None;
    loop {
        let polled = async {
            if conn.is_none() {
                conn = Some(mysql_async::Conn::new(opts.clone()).await?);
            }
            let c = conn.as_mut().expect("connected above");
            binlog_end(c, flavor).await
        };
        let result = tokio::select! {
            _ = tx.closed() => return,
            r = polled => r,
        };
        match result {
            Ok(point) => {
                tx.send_replace(Some(point));
            }
            Err(e) => {
                tracing::debug!(error = %format!("{e:#}"), "could not read the primary's binlog position");
                conn = None;
            }
        }
        tokio::select! {
            _ = tx.closed() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
