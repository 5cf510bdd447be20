//! `ServerControl` for PostgreSQL: a thin translation of promote's steps
//! into SQL on the old primary and the standby (driver `ControlConnection`)
//! and one replication command for the new timeline's history file.

use super::archive_end::{durable_end, end_of_keys};
use super::history_sync;
use super::layout;
use crate::archive::Archive;
use crate::engine::{
    FencedPrimary, Promoted, Reach, ServerControl, ServerIdentity, SuspendedSynchronous,
};
use anyhow::Context as _;
use instarec_postgres::control::names_standby;
use instarec_postgres::{ConnConfig, ControlConnection, Lsn, PgError, ReplicationClient};
use instarec_postgres::{TimelineId, WalSegmentSize};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::{Mutex, OnceCell};

/// How long the fence waits for each step on the old primary.
const FENCE_STEP_WAIT: Duration = Duration::from_secs(5);
/// How long the old primary may take to flush what it already wrote.
const FLUSH_SETTLE: Duration = Duration::from_secs(1);

pub struct PgControl {
    primary: Option<ConnConfig>,
    standby: ConnConfig,
    /// How the shipper names itself to the primary ([primary] application_name).
    application_name: String,
    standby_conn: OnceCell<ControlConnection>,
    old_conn: Mutex<Option<ControlConnection>>,
    segment_size: OnceCell<WalSegmentSize>,
    /// The timeline the archive's log ended on when first asked: the old
    /// primary's. Later ends are read on it alone, so WAL a follower ships
    /// from the new primary is not mistaken for the old primary's.
    old_timeline: OnceCell<TimelineId>,
}

impl PgControl {
    pub fn new(primary: Option<ConnConfig>, standby: ConnConfig, application_name: String) -> Self {
        PgControl {
            primary,
            standby,
            application_name,
            standby_conn: OnceCell::new(),
            old_conn: Mutex::new(None),
            segment_size: OnceCell::new(),
            old_timeline: OnceCell::new(),
        }
    }

    async fn standby(&self) -> anyhow::Result<&ControlConnection> {
        self.standby_conn
            .get_or_try_init(|| async {
                ControlConnection::connect(&self.standby)
                    .await
                    .with_context(|| {
                        format!(
                            "connecting to the standby ([standby] url {})",
                            self.standby.masked_url()
                        )
                    })
            })
            .await
    }

    async fn segment_size(&self) -> anyhow::Result<WalSegmentSize> {
        let size = self
            .segment_size
            .get_or_try_init(|| async {
                let mut client = ReplicationClient::connect(&self.standby).await?;
                client.wal_segment_size().await
            })
            .await
            .with_context(|| {
                format!(
                    "reading wal_segment_size from the standby {}",
                    self.standby.addr()
                )
            })?;
        Ok(*size)
    }
}

fn host_port(conn: &ConnConfig) -> String {
    // The spelling `ship` records in epochs (PgConnected::primary_addr).
    format!("{}:{}", conn.host, conn.port)
}

#[async_trait::async_trait]
impl ServerControl for PgControl {
    type Position = Lsn;

    fn standby_addr(&self) -> String {
        host_port(&self.standby)
    }

    fn old_primary_addr(&self) -> Option<String> {
        self.primary.as_ref().map(host_port)
    }

    async fn standby_identity(&self) -> anyhow::Result<ServerIdentity> {
        let state = self.standby().await?.state().await?;
        Ok(ServerIdentity {
            system_id: state.system_id,
            replaying: state.in_recovery,
        })
    }

    async fn reach_old_primary(&self, within: Duration) -> anyhow::Result<Reach> {
        let Some(conf) = &self.primary else {
            return Ok(Reach::Unreachable("no [primary] url configured".into()));
        };
        let mut conf = conf.clone();
        conf.connect_timeout = Some(within);
        let attempt = async {
            let conn = ControlConnection::connect(&conf).await?;
            let state = conn.state().await?;
            Ok::<_, PgError>((conn, state))
        };
        match tokio::time::timeout(within, attempt).await {
            Err(_) => Ok(Reach::Unreachable(format!(
                "no answer from {} within {within:?}",
                conf.addr()
            ))),
            // Wrong credentials are a configuration fault, not an outage.
            Ok(Err(e @ PgError::Auth { .. })) => Err(e.into()),
            Ok(Err(e)) => Ok(Reach::Unreachable(e.to_string())),
            Ok(Ok((conn, state))) => {
                *self.old_conn.lock().await = Some(conn);
                Ok(Reach::Reached(ServerIdentity {
                    system_id: state.system_id,
                    replaying: state.in_recovery,
                }))
            }
        }
    }

    async fn fence_old_primary(&self) -> anyhow::Result<FencedPrimary<Lsn>> {
        let guard = self.old_conn.lock().await;
        let conn = guard
            .as_ref()
            .context("the old primary was not reached before fencing (a bug in promote)")?;
        conn.fence_read_only(FENCE_STEP_WAIT).await?;
        let sessions_ended = conn.terminate_client_sessions(FENCE_STEP_WAIT).await?;
        let final_position = conn.settled_flush_position(FLUSH_SETTLE).await?;
        let (names, commit) = conn.synchronous_settings().await?;
        let waits = names_standby(&names, &self.application_name)
            && matches!(commit.as_str(), "on" | "remote_write" | "remote_apply");
        Ok(FencedPrimary {
            final_position,
            sessions_ended,
            waits_for_shipper: waits,
        })
    }

    async fn unfence_old_primary(&self) -> anyhow::Result<()> {
        let guard = self.old_conn.lock().await;
        if let Some(conn) = guard.as_ref() {
            conn.lift_read_only(FENCE_STEP_WAIT).await?;
        }
        Ok(())
    }

    async fn archive_end(&self, archive: &Archive) -> anyhow::Result<Option<Lsn>> {
        let size = self.segment_size().await?;
        if let Some(tli) = self.old_timeline.get() {
            let keys: Vec<String> = archive
                .list(&layout::timeline_prefix(*tli))
                .await?
                .into_iter()
                .map(|e| e.key)
                .collect();
            return Ok(end_of_keys(&keys, size).map(|(_, lsn)| lsn));
        }
        let end = durable_end(archive, size).await?;
        if let Some((tli, _)) = end {
            let _ = self.old_timeline.set(tli);
        }
        Ok(end.map(|(_, lsn)| lsn))
    }

    async fn standby_replayed(&self) -> anyhow::Result<Lsn> {
        self.standby()
            .await?
            .replay_position()
            .await?
            .with_context(|| {
                format!(
                    "{} reports no replay position: it is not a standby",
                    self.standby.addr()
                )
            })
    }

    async fn standby_poll_interval(&self) -> anyhow::Result<Duration> {
        Ok(self.standby().await?.wal_retrieve_retry_interval().await?)
    }

    async fn promote_standby(&self, wait: Duration) -> anyhow::Result<Promoted<Lsn>> {
        let conn = self.standby().await?;
        if !conn.promote(wait).await? {
            anyhow::bail!(
                "pg_promote on {} did not finish within {wait:?}; check its server log, then run `instarec promote` again",
                self.standby.addr()
            );
        }
        let recovered = conn
            .replay_position()
            .await?
            .context("the promoted server reports no replay position")?;
        let last_commit_at = conn
            .last_replayed_commit_time()
            .await?
            .map(chrono::DateTime::<chrono::Utc>::from);
        Ok(Promoted {
            recovered,
            last_commit_at,
        })
    }

    async fn publish_new_history(&self, archive: &Archive) -> anyhow::Result<String> {
        // What a shipper from the new primary needs before it can start:
        // done here too, so a promote that leaves shipping unable to start
        // says so at once.
        let mut client = ReplicationClient::connect(&self.standby).await?;
        let identity = client.identify_system().await?;
        let tli = identity.timeline;
        let history = history_sync::archive_history(&mut client, archive, tli).await?;
        Ok(format!(
            "the archive holds the history of timeline {tli} and of the {} before it",
            history.len()
        ))
    }

    async fn write_probe(&self, via: Option<SocketAddr>, note: &str) -> anyhow::Result<()> {
        let mut conf = self.standby.clone();
        if let Some(addr) = via {
            conf.host = addr.ip().to_string();
            conf.port = addr.port();
        }
        conf.connect_timeout = Some(Duration::from_secs(2));
        let conn = ControlConnection::connect(&conf).await?;
        conn.write_probe(note).await?;
        Ok(())
    }

    async fn suspend_synchronous(&self) -> anyhow::Result<Option<SuspendedSynchronous>> {
        let conn = self.standby().await?;
        let (names, commit) = conn.synchronous_settings().await?;
        // Only the zero-loss mode that waits for our shipper: other
        // synchronous standbys are the operator's to manage.
        let waits = names_standby(&names, &self.application_name)
            && matches!(commit.as_str(), "on" | "remote_write" | "remote_apply");
        if !waits {
            return Ok(None);
        }
        conn.set_synchronous_standby_names("", FENCE_STEP_WAIT)
            .await?;
        Ok(Some(SuspendedSynchronous {
            described: format!("synchronous_standby_names = '{names}'"),
            value: names,
        }))
    }

    async fn restore_synchronous(&self, suspended: &SuspendedSynchronous) -> anyhow::Result<()> {
        self.standby()
            .await?
            .set_synchronous_standby_names(&suspended.value, FENCE_STEP_WAIT)
            .await?;
        Ok(())
    }

    async fn shipper_streaming(&self) -> anyhow::Result<bool> {
        let n = self
            .standby()
            .await?
            .streaming_replicas(&self.application_name)
            .await?;
        Ok(n > 0)
    }

    fn bytes_between(&self, earlier: &Lsn, later: &Lsn) -> u64 {
        later.bytes_since(*earlier).unwrap_or(0)
    }
}
