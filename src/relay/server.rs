//! The relay's listener: each replica connection is its own task, up to a
//! bound; a connection over the bound is refused with a clear error.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::binlog_archive::BinlogArchive;
use super::error::RelayServeError;
use super::identity;
use super::replica_stream::{self, StreamOptions};
use super::until::UntilTarget;
use crate::archive::Archive;
use instarec_mysql::relay::{accept_replica, refuse_connection, Credentials, RelayError};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

#[derive(Debug, Clone)]
pub struct RelayOptions {
    pub listen: SocketAddr,
    pub credentials: Credentials,
    /// How often a caught-up stream looks for new chunks.
    pub poll_interval: Duration,
    /// Replicas served at once.
    pub max_replicas: usize,
    /// Every stream stops before the first transaction past this and then
    /// idles (point-in-time restore); None: follow the archive forever.
    pub until: Option<UntilTarget>,
    /// How often an idle registered replica that asked for no heartbeat
    /// gets one: well inside the default slave_net_timeout (60 s).
    pub idle_heartbeat: Duration,
}

impl RelayOptions {
    pub fn new(listen: SocketAddr, credentials: Credentials) -> Self {
        RelayOptions {
            listen,
            credentials,
            poll_interval: Duration::from_millis(200),
            max_replicas: 64,
            until: None,
            idle_heartbeat: Duration::from_secs(30),
        }
    }
}

pub struct RelayServer {
    listener: TcpListener,
    options: RelayOptions,
    archive: BinlogArchive,
}

impl RelayServer {
    /// Listens on `options.listen`; `archive` should be bound to its cluster.
    pub async fn bind(options: RelayOptions, archive: Archive) -> Result<Self, RelayServeError> {
        let listener =
            TcpListener::bind(options.listen)
                .await
                .map_err(|source| RelayServeError::Listen {
                    addr: options.listen,
                    source,
                })?;
        Ok(RelayServer {
            listener,
            options,
            archive: BinlogArchive::new(archive),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts replicas until `shutdown`, then waits for their tasks.
    pub async fn serve(self, shutdown: CancellationToken) {
        let slots = Arc::new(Semaphore::new(self.options.max_replicas));
        let next_id = AtomicU32::new(1);
        let mut tasks = JoinSet::new();
        tracing::info!(listen = %self.options.listen, "relay serving the archive's binlog");
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
                a = self.listener.accept() => a,
            };
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let id = next_id.fetch_add(1, Ordering::Relaxed);
            let peer = peer.to_string();
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                tracing::warn!(%peer, "too many replicas; refusing");
                let max = self.options.max_replicas;
                tasks.spawn(async move {
                    let _ = refuse_connection(
                        stream,
                        &peer,
                        &format!("instarec relay serves at most {max} replicas at once; retry later or run another relay"),
                    )
                    .await;
                });
                continue;
            };
            let archive = self.archive.clone();
            let options = self.options.clone();
            let token = shutdown.child_token();
            let span = tracing::info_span!("replica", %peer, connection = id);
            tasks.spawn(
                async move {
                    let _permit = permit;
                    match serve_connection(stream, &peer, id, &archive, &options, token).await {
                        Ok(()) => {}
                        Err(RelayServeError::Replica(RelayError::Closed { .. })) => {
                            tracing::info!("replica disconnected")
                        }
                        Err(e) => tracing::warn!(error = %e, "replica connection ended"),
                    }
                }
                .instrument(span),
            );
        }
        tasks.shutdown().await;
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: &str,
    id: u32,
    archive: &BinlogArchive,
    options: &RelayOptions,
    shutdown: CancellationToken,
) -> Result<(), RelayServeError> {
    let identity = match identity::current(archive).await {
        Ok(Some(identity)) => identity,
        Ok(None) => {
            let reason = "the archive holds no binlog yet; start `instarec ship` for the primary";
            refuse_connection(stream, peer, reason).await?;
            return Err(RelayServeError::Position(reason.into()));
        }
        Err(e) => {
            refuse_connection(
                stream,
                peer,
                &format!("instarec relay cannot read the archive: {e}"),
            )
            .await?;
            return Err(e);
        }
    };
    let dump = accept_replica(stream, peer, id, identity, &options.credentials).await?;
    tracing::info!(
        server_id = dump.replica_server_id,
        start = ?dump.start,
        "replica asked for the binlog"
    );
    replica_stream::serve(
        archive,
        dump,
        StreamOptions {
            poll_interval: options.poll_interval,
            until: options.until.clone(),
            idle_heartbeat: options.idle_heartbeat,
        },
        shutdown,
    )
    .await
}
