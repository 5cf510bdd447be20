//! `ServerControl` for MariaDB: promote's steps as SQL on the old primary
//! and on the replica that `instarec relay` feeds from the archive.
//!
//! - fence: `read_only = ON`, then every client session is killed; the
//!   shipper's binlog dump stays, so the final @@gtid_binlog_pos still
//!   reaches the archive.
//! - drain: the replica's @@gtid_slave_pos against the archive's newest
//!   chunk index (the old primary's epoch, pinned on first look).
//! - promote: STOP SLAVE, RESET SLAVE ALL, read_only = OFF. New GTIDs
//!   continue in the same domain, so no history needs archiving.
//! - first write: a probe row, through the proxy when clients use one,
//!   only after @@server_id shows the connection reached the new primary.
//! - the time bound: the event timestamp of the archived chunk the replica
//!   reached (see [`MysqlControl::locate`]).

use super::epoch_chunks::{self, Reached};
use super::gtid_point::GtidPoint;
use super::primary_status;
use super::server_addr::server_addr as addr;
use crate::archive::{Archive, Epoch};
use crate::engine::{
    FencedPrimary, LostTransactions, Promoted, Reach, ServerControl, ServerIdentity,
};
use anyhow::Context as _;
use chrono::{DateTime, Utc};
use instarec_mysql::{BinlogPosition, MariadbGtidPos, ServerFlavor};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Row};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard, OnceCell};

/// How long each fence statement may wait on the old primary.
const FENCE_STEP_WAIT: Duration = Duration::from_secs(5);
/// ER_ACCESS_DENIED_ERROR, ER_DBACCESS_DENIED_ERROR: a configuration fault, not an outage.
const ACCESS_DENIED: [u16; 2] = [1045, 1044];
/// ER_NO_SUCH_THREAD: the session ended on its own before KILL reached it.
const NO_SUCH_THREAD: u16 = 1094;

/// Why the MariaDB adapter refused; each names the server and what to do.
#[derive(Debug, thiserror::Error)]
pub enum MysqlControlError {
    #[error("{addr} runs {version}, but promote supports MariaDB replicas only; nothing was changed. Promote it with your MySQL tooling")]
    NotMariadb { addr: String, version: String },
    #[error("{addr} stopped being a replica (SHOW SLAVE STATUS is empty) after promote claimed the new epoch; the server was not changed. Check who reset its replication, then run `instarec promote` again")]
    NoLongerReplica { addr: String },
    #[error("the probe write through {path} reached the server with server_id {reached}, not the new primary (server_id {want}); the cutover has not taken effect there yet")]
    ProbeReachedAnother {
        path: String,
        reached: u32,
        want: u32,
    },
    #[error("STOP SLAVE / RESET SLAVE ALL on {addr} did not finish within {wait:?}; check its error log, then run `instarec promote` again")]
    PromoteTimeout { addr: String, wait: Duration },
}

pub struct MysqlControl {
    primary: Option<Opts>,
    standby: Opts,
    /// [primary] cluster_id: how the archive names the topology.
    cluster_id: Option<String>,
    /// How often the relay looks for new chunks ([relay] poll_interval).
    relay_poll: Duration,
    standby_conn: Mutex<Option<Conn>>,
    old_conn: Mutex<Option<Conn>>,
    /// The old primary's epoch: the newest with chunks when first asked.
    old_epoch: OnceCell<Epoch>,
    /// The cluster-bound archive `archive_end` was given, for `locate`.
    archive: OnceCell<Archive>,
}

impl MysqlControl {
    pub fn new(
        primary: Option<Opts>,
        standby: Opts,
        cluster_id: Option<String>,
        relay_poll: Duration,
    ) -> Self {
        MysqlControl {
            primary,
            standby,
            cluster_id,
            relay_poll,
            standby_conn: Mutex::new(None),
            old_conn: Mutex::new(None),
            old_epoch: OnceCell::new(),
            archive: OnceCell::new(),
        }
    }

    /// The standby connection, opened on first use.
    async fn standby(&self) -> anyhow::Result<MappedMutexGuard<'_, Conn>> {
        let mut guard = self.standby_conn.lock().await;
        if guard.is_none() {
            let conn = Conn::new(self.standby.clone()).await.with_context(|| {
                format!(
                    "connecting to the standby {} ([standby] url)",
                    addr(&self.standby)
                )
            })?;
            *guard = Some(conn);
        }
        MutexGuard::try_map(guard, Option::as_mut)
            .map_err(|_| anyhow::anyhow!("the standby connection vanished"))
    }

    /// Where the replica at `pos` stands in the old primary's archived
    /// binlog: its offset there, and a commit time no lost transaction
    /// was acknowledged before.
    ///
    /// Every lost transaction comes after `pos` in the old primary's
    /// binlog, and a client hears of its commit only after it is in the
    /// binlog. An event's timestamp is when its statement started (whole
    /// seconds, rounded down), before the event was logged. So the
    /// timestamp of any event logged before every lost transaction bounds
    /// them all: the last event of the newest chunk the replica applied
    /// whole, or, when it stopped inside a chunk, that chunk's first event.
    /// (A session that sets @@timestamp by hand can defeat this bound.)
    async fn locate(
        &self,
        pos: &MariadbGtidPos,
    ) -> anyhow::Result<(Option<BinlogPosition>, Option<DateTime<Utc>>)> {
        let (Some(archive), Some(epoch)) = (self.archive.get(), self.old_epoch.get()) else {
            return Ok((None, None));
        };
        let at_ts = |ts: u32| DateTime::<Utc>::from_timestamp(i64::from(ts), 0);
        Ok(match epoch_chunks::reached(archive, *epoch, pos).await? {
            Some(Reached::Whole(c)) => (
                Some(BinlogPosition {
                    file: c.file,
                    pos: c.end_pos,
                }),
                at_ts(c.last_ts),
            ),
            Some(Reached::Part(c)) => (None, at_ts(c.first_ts)),
            None => (None, None),
        })
    }
}

fn gtid_pos(text: Option<String>, what: &str) -> anyhow::Result<MariadbGtidPos> {
    let text = text.unwrap_or_default();
    text.parse()
        .with_context(|| format!("{what} answered {text:?}, not a MariaDB GTID position"))
}

/// Who a MariaDB server is, as the archive names topologies, and whether
/// it has a replication source configured.
async fn identity(
    conn: &mut Conn,
    server: &str,
    cluster_id: Option<&str>,
) -> anyhow::Result<ServerIdentity> {
    let version: Option<String> = conn.query_first("SELECT VERSION()").await?;
    let version = version.unwrap_or_default();
    if !version.contains("MariaDB") {
        return Err(MysqlControlError::NotMariadb {
            addr: server.to_string(),
            version,
        }
        .into());
    }
    let system_id = primary_status::system_id(conn, ServerFlavor::Mariadb, cluster_id).await?;
    let source: Option<Row> = conn.query_first("SHOW SLAVE STATUS").await?;
    Ok(ServerIdentity {
        system_id,
        replaying: source.is_some(),
    })
}

#[async_trait::async_trait]
impl ServerControl for MysqlControl {
    type Position = GtidPoint;

    fn standby_addr(&self) -> String {
        addr(&self.standby)
    }

    fn old_primary_addr(&self) -> Option<String> {
        self.primary.as_ref().map(addr)
    }

    async fn standby_identity(&self) -> anyhow::Result<ServerIdentity> {
        let server = self.standby_addr();
        let mut conn = self.standby().await?;
        identity(&mut conn, &server, self.cluster_id.as_deref())
            .await
            .with_context(|| format!("reading the identity of the standby {server}"))
    }

    async fn reach_old_primary(&self, within: Duration) -> anyhow::Result<Reach> {
        let Some(opts) = &self.primary else {
            return Ok(Reach::Unreachable("no [primary] url configured".into()));
        };
        let server = addr(opts);
        match tokio::time::timeout(within, Conn::new(opts.clone())).await {
            Err(_) => Ok(Reach::Unreachable(format!(
                "no answer from {server} within {within:?}"
            ))),
            Ok(Err(mysql_async::Error::Server(e))) if ACCESS_DENIED.contains(&e.code) => Err(
                anyhow::Error::new(mysql_async::Error::Server(e)).context(format!(
                    "logging in to the old primary {server}: fix [primary] url's user or password"
                )),
            ),
            Ok(Err(e)) => Ok(Reach::Unreachable(e.to_string())),
            Ok(Ok(mut conn)) => {
                let id = tokio::time::timeout(
                    within,
                    identity(&mut conn, &server, self.cluster_id.as_deref()),
                )
                .await;
                match id {
                    Err(_) => Ok(Reach::Unreachable(format!(
                        "{server} accepted a connection but did not answer within {within:?}"
                    ))),
                    Ok(id) => {
                        let id = id?;
                        *self.old_conn.lock().await = Some(conn);
                        Ok(Reach::Reached(id))
                    }
                }
            }
        }
    }

    async fn fence_old_primary(&self) -> anyhow::Result<FencedPrimary<GtidPoint>> {
        let mut guard = self.old_conn.lock().await;
        let conn = guard
            .as_mut()
            .context("the old primary was not reached before fencing (a bug in promote)")?;
        let server = self.old_primary_addr().unwrap_or_default();
        // read_only waits for commits in flight, then refuses every new one
        // from accounts without READ ONLY ADMIN.
        tokio::time::timeout(FENCE_STEP_WAIT, conn.query_drop("SET GLOBAL read_only = ON"))
            .await
            .with_context(|| {
                format!("SET GLOBAL read_only = ON on {server} waited {FENCE_STEP_WAIT:?} (a long write statement?)")
            })?
            .with_context(|| format!("SET GLOBAL read_only = ON on {server}"))?;
        // Every client session, but not replication: the shipper's binlog
        // dump must carry the last transactions to the archive.
        let sessions: Vec<u64> = conn
            .query(
                "SELECT id FROM information_schema.processlist \
                 WHERE id <> CONNECTION_ID() AND user <> 'system user' \
                 AND command NOT IN ('Binlog Dump', 'Binlog Dump GTID', 'Daemon')",
            )
            .await
            .with_context(|| format!("listing client sessions on {server}"))?;
        let mut sessions_ended = 0;
        for id in sessions {
            match conn.query_drop(format!("KILL CONNECTION {id}")).await {
                Ok(()) => sessions_ended += 1,
                Err(mysql_async::Error::Server(e)) if e.code == NO_SUCH_THREAD => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("KILL CONNECTION {id} on {server}"))
                }
            }
        }
        let end = primary_status::binlog_end(conn, ServerFlavor::Mariadb).await?;
        let super::GtidState::Mariadb(gtid) = end.gtid else {
            anyhow::bail!("{server} reported a MySQL GTID set; promote supports MariaDB only");
        };
        let semi_sync: Option<i64> = conn
            .query_first("SELECT @@global.rpl_semi_sync_master_enabled")
            .await
            .unwrap_or(None);
        Ok(FencedPrimary {
            final_position: GtidPoint::new(gtid, Some(end.at)),
            sessions_ended,
            waits_for_shipper: semi_sync == Some(1),
        })
    }

    async fn unfence_old_primary(&self) -> anyhow::Result<()> {
        if let Some(conn) = self.old_conn.lock().await.as_mut() {
            conn.query_drop("SET GLOBAL read_only = OFF")
                .await
                .context("SET GLOBAL read_only = OFF on the old primary")?;
        }
        Ok(())
    }

    async fn archive_end(&self, archive: &Archive) -> anyhow::Result<Option<GtidPoint>> {
        let _ = self.archive.set(archive.clone());
        let epoch = match self.old_epoch.get() {
            Some(e) => *e,
            None => match epoch_chunks::newest_epoch(archive).await? {
                Some(e) => *self.old_epoch.get_or_init(|| async { e }).await,
                None => return Ok(None),
            },
        };
        let Some(last) = epoch_chunks::last_chunk(archive, epoch).await? else {
            return Ok(None);
        };
        if last.flavor != "mariadb" {
            anyhow::bail!(
                "archive {} holds {} binlog; promote supports MariaDB only",
                archive.url(),
                last.flavor
            );
        }
        let gtid = gtid_pos(Some(last.gtid_pos_after.clone()), "a binlog index")?;
        Ok(Some(GtidPoint::new(
            gtid,
            Some(BinlogPosition {
                file: last.file,
                pos: last.end_pos,
            }),
        )))
    }

    async fn standby_replayed(&self) -> anyhow::Result<GtidPoint> {
        let text: Option<String> = self
            .standby()
            .await?
            .query_first("SELECT @@global.gtid_slave_pos")
            .await
            .with_context(|| format!("reading @@gtid_slave_pos on {}", self.standby_addr()))?;
        Ok(GtidPoint::new(gtid_pos(text, "@@gtid_slave_pos")?, None))
    }

    async fn standby_poll_interval(&self) -> anyhow::Result<Duration> {
        Ok(self.relay_poll)
    }

    async fn promote_standby(&self, wait: Duration) -> anyhow::Result<Promoted<GtidPoint>> {
        let server = self.standby_addr();
        let mut c = self.standby().await?;
        let steps = async {
            let source: Option<Row> = c.query_first("SHOW SLAVE STATUS").await?;
            if source.is_none() {
                return Ok::<_, mysql_async::Error>(None);
            }
            // STOP SLAVE finishes the event group being applied first.
            c.query_drop("STOP SLAVE").await?;
            let pos: Option<String> = c.query_first("SELECT @@global.gtid_current_pos").await?;
            c.query_drop("RESET SLAVE ALL").await?;
            c.query_drop("SET GLOBAL read_only = OFF").await?;
            Ok(Some(pos))
        };
        let recovered = match tokio::time::timeout(wait, steps).await {
            Err(_) => return Err(MysqlControlError::PromoteTimeout { addr: server, wait }.into()),
            Ok(r) => r
                .with_context(|| format!("promoting the standby {server}"))?
                .ok_or(MysqlControlError::NoLongerReplica {
                    addr: server.clone(),
                })?,
        };
        drop(c);
        let recovered = gtid_pos(recovered, "@@gtid_current_pos")?;
        let (at, last_commit_at) = self.locate(&recovered).await?;
        Ok(Promoted {
            recovered: GtidPoint::new(recovered, at),
            last_commit_at,
        })
    }

    async fn publish_new_history(&self, _archive: &Archive) -> anyhow::Result<String> {
        Ok(format!(
            "MariaDB: {} continues the old primary's GTID domains; no history to archive",
            self.standby_addr()
        ))
    }

    async fn write_probe(&self, via: Option<SocketAddr>, note: &str) -> anyhow::Result<()> {
        let mut opts = OptsBuilder::from_opts(self.standby.clone());
        if let Some(a) = via {
            opts = opts.ip_or_hostname(a.ip().to_string()).tcp_port(a.port());
        }
        let db = self.standby.db_name().unwrap_or("instarec").to_string();
        let want: Option<u32> = self
            .standby()
            .await?
            .query_first("SELECT @@server_id")
            .await
            .with_context(|| {
                format!(
                    "reading @@server_id of the new primary {}",
                    self.standby_addr()
                )
            })?;
        let mut conn = tokio::time::timeout(Duration::from_secs(2), Conn::new(opts))
            .await
            .context("connecting for the probe write timed out")??;
        // Through a proxy that has not switched yet, the probe would reach the
        // fenced old primary, where an account with READ ONLY ADMIN (root)
        // may still write: prove which server this is before writing.
        let reached: Option<u32> = conn.query_first("SELECT @@server_id").await?;
        if reached != want {
            let path = via
                .map(|a| a.to_string())
                .unwrap_or_else(|| self.standby_addr());
            return Err(MysqlControlError::ProbeReachedAnother {
                path,
                reached: reached.unwrap_or_default(),
                want: want.unwrap_or_default(),
            }
            .into());
        }
        conn.query_drop(format!(
            "CREATE DATABASE IF NOT EXISTS `{db}`; \
             CREATE TABLE IF NOT EXISTS `{db}`.instarec_promote_probe \
             (id BIGINT AUTO_INCREMENT PRIMARY KEY, at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), \
              note VARCHAR(255) NOT NULL) ENGINE=InnoDB"
        ))
        .await?;
        conn.exec_drop(
            format!("INSERT INTO `{db}`.instarec_promote_probe (note) VALUES (?)"),
            (note,),
        )
        .await?;
        conn.disconnect().await?;
        Ok(())
    }

    fn synchronous_can_lapse(&self) -> bool {
        true
    }

    fn bytes_between(&self, earlier: &GtidPoint, later: &GtidPoint) -> u64 {
        later.bytes_after(earlier).unwrap_or(0)
    }

    fn transactions_between(
        &self,
        earlier: &GtidPoint,
        later: &GtidPoint,
    ) -> Option<LostTransactions> {
        let ranges = later.missing_from(earlier);
        Some(LostTransactions {
            count: ranges.iter().map(|r| r.count()).sum(),
            ids: ranges
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
        })
    }
}
