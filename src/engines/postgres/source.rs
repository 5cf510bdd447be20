//! `LogSource` for PostgreSQL: a physical replication slot streamed into
//! segment objects and ranged parts of the in-progress segment.

use super::history_sync;
use super::layout;
use super::resume;
use super::segment_buffer::SegmentBuffer;
use super::timeline_history;
use crate::archive::Archive;
use crate::backoff::Backoff;
use crate::engine::Engine;
use crate::engine::{Cut, LogSource, SourceEvent};
use anyhow::{bail, Context as _};
use bytes::Bytes;
use instarec_postgres::conn::config::ConnConfig;
use instarec_postgres::error::PgError;
use instarec_postgres::lsn::Lsn;
use instarec_postgres::replication::client::ReplicationClient;
use instarec_postgres::replication::message::ReplicationMessage;
use instarec_postgres::replication::status_update::StandbyStatusUpdate;
use instarec_postgres::replication::stream::WalStream;
use instarec_postgres::replication::system_identity::SystemIdentity;
use instarec_postgres::replication::timestamp::PgTimestamp;
use instarec_postgres::segment::WalSegmentSize;

#[derive(Debug, Clone)]
pub struct PgSourceOptions {
    pub conn: ConnConfig,
    pub slot: String,
}

pub struct PgSource {
    opts: PgSourceOptions,
    system_id: String,
    size: WalSegmentSize,
    stream: Option<WalStream>,
    buffer: SegmentBuffer,
    /// Completed segments and history files waiting for the next cut.
    ready: Vec<(String, Bytes)>,
    ready_bytes: u64,
    superseded: Vec<String>,
    durable: Lsn,
    backoff: Backoff,
}

/// Connected and bound to the cluster, but nothing written yet: the caller
/// checks its fencing epoch before `start` writes anything.
pub struct PgConnected {
    opts: PgSourceOptions,
    client: ReplicationClient,
    identity: SystemIdentity,
    size: WalSegmentSize,
}

impl PgConnected {
    /// host:port of the primary, as epochs record it.
    pub fn primary_addr(&self) -> String {
        format!("{}:{}", self.opts.conn.host, self.opts.conn.port)
    }

    /// True while the server is a standby still in recovery.
    pub async fn in_recovery(&mut self) -> anyhow::Result<bool> {
        Ok(self.client.in_hot_standby().await?)
    }

    /// Archives history files, makes sure the slot exists, finds where the
    /// archive ends and starts streaming there.
    pub async fn start(self, archive: &Archive) -> anyhow::Result<PgSource> {
        let PgConnected {
            opts,
            mut client,
            identity,
            size,
        } = self;
        let history =
            history_sync::archive_history(&mut client, archive, identity.timeline).await?;

        let slot = match client.read_replication_slot(&opts.slot).await? {
            Some(s) => s,
            None => {
                match client.create_physical_slot(&opts.slot).await {
                    Ok(()) | Err(PgError::SlotExists { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
                tracing::info!(slot = %opts.slot, "created physical replication slot");
                client
                    .read_replication_slot(&opts.slot)
                    .await?
                    .with_context(|| format!("slot {} vanished right after creation", opts.slot))?
            }
        };

        let mut ready = Vec::new();
        let mut superseded = Vec::new();
        let buffer = match resume::find(archive, size).await? {
            Some(point) => {
                if point.tli > identity.timeline {
                    bail!(
                        "archive {} holds WAL of timeline {} but primary {} is on timeline {}; point [primary] url at the current primary of this archive",
                        archive.url(), point.tli, client.addr(), identity.timeline
                    );
                }
                for key in &point.stale_parts {
                    archive.delete(key).await?;
                }
                tracing::info!(lsn = %point.lsn(), timeline = %point.tli, "resuming from the end of the archive");
                if let Some(done) = point.completed {
                    ready.push((done.key, done.data));
                    superseded.extend(done.parts);
                }
                let mut buffer = point.buffer;
                // After a failover the archive may hold WAL of the old
                // timeline past the point where this primary branched off
                // (a partial record the standby could not replay): continue
                // on this primary's timeline from the branch point instead.
                if point.tli < identity.timeline {
                    if let Some((next, switch)) =
                        timeline_history::switch_after(&history, point.tli)
                    {
                        if switch < buffer.end() {
                            tracing::info!(timeline = %next, %switch, archived_to = %buffer.end(), "the archive's timeline ran past this primary's branch point; continuing on its timeline");
                            buffer.switch_timeline(next, switch).with_context(|| {
                                format!(
                                    "archive {} holds timeline {} WAL up to {} but primary {} branched off at {switch} in an earlier segment; take a new backup and start a fresh archive prefix",
                                    archive.url(), point.tli, buffer.end(), client.addr()
                                )
                            })?;
                        }
                    }
                }
                buffer
            }
            None => {
                let from = slot.restart_lsn.unwrap_or(identity.xlogpos);
                let start = size.segment_start(size.segment_of(from));
                tracing::info!(lsn = %start, timeline = %identity.timeline, "archive is empty: starting at the segment holding the slot's restart point");
                SegmentBuffer::starting_at(
                    identity.timeline,
                    start,
                    size,
                    Bytes::new(),
                    vec![],
                    true,
                )
            }
        };
        let durable = buffer.end();
        let stream = client
            .start_physical(Some(&opts.slot), buffer.end(), buffer.timeline())
            .await?;
        let ready_bytes = ready.iter().map(|(_, b)| b.len() as u64).sum();
        Ok(PgSource {
            opts,
            system_id: identity.system_id.to_string(),
            size,
            stream: Some(stream),
            buffer,
            ready,
            ready_bytes,
            superseded,
            durable,
            backoff: Backoff::reconnect(),
        })
    }
}

impl PgSource {
    /// Connects and binds the archive to the primary's cluster (refusing
    /// another cluster's archive). Writes nothing.
    pub async fn connect(
        opts: PgSourceOptions,
        archive: &Archive,
    ) -> anyhow::Result<(PgConnected, Archive)> {
        let mut client = ReplicationClient::connect(&opts.conn).await?;
        let identity = client.identify_system().await?;
        let size = client.wal_segment_size().await?;
        let system_id = identity.system_id.to_string();
        let (archive, _) = archive.open_cluster(Engine::Postgres, &system_id).await?;
        tracing::info!(system_id = %system_id, timeline = %identity.timeline, xlogpos = %identity.xlogpos, segment_size = size.bytes(), "connected to primary {}", client.addr());
        Ok((
            PgConnected {
                opts,
                client,
                identity,
                size,
            },
            archive,
        ))
    }

    pub fn segment_size(&self) -> WalSegmentSize {
        self.size
    }

    async fn reconnect(&mut self) -> anyhow::Result<()> {
        loop {
            match self.try_reconnect().await {
                Ok(stream) => {
                    tracing::info!(lsn = %self.buffer.end(), "reconnected to the primary");
                    self.stream = Some(stream);
                    self.backoff.reset();
                    return Ok(());
                }
                Err(e) if is_fatal(&e) => return Err(e),
                Err(e) => {
                    let wait = self.backoff.next_delay();
                    tracing::warn!(error = %format!("{e:#}"), retry_in_ms = wait.as_millis() as u64, "primary unreachable, reconnecting");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    async fn try_reconnect(&mut self) -> anyhow::Result<WalStream> {
        let mut client = ReplicationClient::connect(&self.opts.conn).await?;
        let identity = client.identify_system().await?;
        if identity.system_id.to_string() != self.system_id {
            bail!(SystemChanged {
                addr: client.addr().to_string(),
                was: self.system_id.clone(),
                now: identity.system_id.to_string(),
            });
        }
        Ok(client
            .start_physical(
                Some(&self.opts.slot),
                self.buffer.end(),
                self.buffer.timeline(),
            )
            .await?)
    }

    /// The server ended this timeline: archive the next one's history and
    /// carry on from the switch point.
    async fn follow_timeline_switch(&mut self, stream: WalStream) -> anyhow::Result<()> {
        let end = stream.finish().await?;
        let Some((next, switch)) = end.next_timeline else {
            bail!(
                "primary ended the WAL stream without naming a next timeline; restart the shipper"
            );
        };
        let mut client = end.client;
        let (name, content) = client.timeline_history(next).await?;
        self.ready_bytes += content.len() as u64;
        self.ready.push((layout::history_key(next), content));
        tracing::info!(timeline = %next, switch = %switch, file = %name, "following timeline switch");
        self.buffer.switch_timeline(next, switch)?;
        self.stream = Some(
            client
                .start_physical(Some(&self.opts.slot), switch, next)
                .await?,
        );
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("server at {addr} is now system {now}, not {was}: it is another cluster; point [primary] url back at this archive's primary")]
struct SystemChanged {
    addr: String,
    was: String,
    now: String,
}

/// Errors a retry cannot fix: bad credentials, another cluster, WAL gone.
fn is_fatal(e: &anyhow::Error) -> bool {
    if e.downcast_ref::<SystemChanged>().is_some() {
        return true;
    }
    match e.downcast_ref::<PgError>() {
        Some(PgError::Auth { .. })
        | Some(PgError::Config(_))
        | Some(PgError::UnsupportedVersion(_))
        | Some(PgError::InvalidSlotName { .. }) => true,
        // 58P01: requested WAL segment has already been removed.
        Some(PgError::Server { code, .. }) => code == "58P01" || code == "42704",
        _ => false,
    }
}

#[async_trait::async_trait]
impl LogSource for PgSource {
    type Position = Lsn;

    async fn recv(&mut self) -> anyhow::Result<SourceEvent<Lsn>> {
        loop {
            let Some(stream) = self.stream.as_mut() else {
                self.reconnect().await?;
                continue;
            };
            match stream.recv().await {
                Ok(Some(ReplicationMessage::XLogData(x))) => {
                    let done = self.buffer.push(x.wal_start, &x.data)?;
                    for seg in done {
                        self.ready_bytes += seg.data.len() as u64;
                        self.ready.push((seg.key, seg.data));
                        self.superseded.extend(seg.parts);
                    }
                    return Ok(SourceEvent::Received {
                        primary: Some(x.wal_end.max(self.buffer.end())),
                    });
                }
                Ok(Some(ReplicationMessage::Keepalive(k))) => {
                    return Ok(SourceEvent::PrimaryAt {
                        position: k.wal_end,
                        reply_requested: k.reply_requested,
                    });
                }
                Ok(Some(ReplicationMessage::EndOfTimeline)) => {
                    let stream = self.stream.take().expect("checked above");
                    if let Err(e) = self.follow_timeline_switch(stream).await {
                        tracing::warn!(error = %format!("{e:#}"), "timeline switch interrupted; reconnecting");
                    }
                }
                Ok(None) => {
                    tracing::warn!("primary closed the replication stream; reconnecting");
                    self.stream = None;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "replication connection lost; reconnecting");
                    self.stream = None;
                }
            }
        }
    }

    fn buffered_bytes(&self) -> u64 {
        self.ready_bytes + self.buffer.uncut_bytes()
    }

    fn cut(&mut self) -> Option<Cut<Lsn>> {
        let mut objects = std::mem::take(&mut self.ready);
        self.ready_bytes = 0;
        if let Some(part) = self.buffer.cut_part() {
            objects.push(part);
        }
        if objects.is_empty() {
            return None;
        }
        Some(Cut {
            objects,
            announcements: Vec::new(),
            upto: self.buffer.end(),
            superseded: std::mem::take(&mut self.superseded),
        })
    }

    async fn acknowledge(&mut self, durable: &Lsn) -> anyhow::Result<()> {
        self.durable = *durable;
        let Some(stream) = self.stream.as_mut() else {
            return Ok(());
        };
        // apply stays 0 like pg_receivewal: we never replay, and claiming
        // otherwise would release synchronous_commit = remote_apply falsely.
        let update = StandbyStatusUpdate {
            write: *durable,
            flush: *durable,
            apply: Lsn(0),
            send_time: PgTimestamp::now(),
            reply_requested: false,
        };
        if let Err(e) = stream.send_status(&update).await {
            tracing::warn!(error = %e, "could not send status to the primary; reconnecting");
            self.stream = None;
        }
        Ok(())
    }

    fn lag_bytes(&self, primary: &Lsn, durable: &Lsn) -> Option<u64> {
        Some(primary.0.saturating_sub(durable.0))
    }

    fn position_gauge(&self, position: &Lsn) -> Option<i64> {
        i64::try_from(position.0).ok()
    }

    fn durable(&self) -> Lsn {
        self.durable
    }
}
