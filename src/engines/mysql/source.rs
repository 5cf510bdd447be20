//! `LogSource` for MySQL/MariaDB: the binlog streamed as a replica and
//! archived in chunks of whole transactions, each with an index.

use super::chunk_buffer::{ChunkBuffer, Pushed};
use super::position::{BinlogPoint, GtidState};
use super::primary_status;
use super::resume;
use crate::archive::{Archive, Epoch};
use crate::backoff::Backoff;
use crate::config::PrimarySection;
use crate::engine::Engine;
use crate::engine::{Cut, LogSource, SourceEvent};
use anyhow::{bail, Context as _};
use instarec_mysql::{
    BinlogClient, BinlogPosition, BinlogStream, MysqlError, ServerFlavor, StartPosition,
    StreamedEvent,
};
use std::collections::VecDeque;
use std::time::Duration;
use tokio::sync::watch;

#[derive(Debug, Clone)]
pub struct MysqlSourceOptions {
    /// mysql://user:password@host:port/
    pub url: String,
    /// This replica's server_id on the primary.
    pub server_id: u32,
    /// Zero-loss mode: register as a semi-sync replica and ack only what
    /// the archive holds.
    pub semi_sync: bool,
    /// Names the replication topology (config [primary] cluster_id).
    pub cluster_id: Option<String>,
}

impl MysqlSourceOptions {
    /// From [primary]: the URL (with the password from password_file, if
    /// set), the replica server_id, semi-sync and the topology name.
    pub fn from_primary(primary: &PrimarySection) -> anyhow::Result<MysqlSourceOptions> {
        Ok(MysqlSourceOptions {
            url: primary.mysql_url()?,
            server_id: primary.replica_server_id(),
            semi_sync: primary.synchronous,
            cluster_id: primary.cluster_id.clone(),
        })
    }
}

/// How often the primary's binlog end is read for RPO bookkeeping.
const PRIMARY_POLL: Duration = Duration::from_secs(1);

/// Connected and bound to the topology's archive; nothing written yet.
pub struct MysqlConnected {
    opts: MysqlSourceOptions,
    client: BinlogClient,
    system_id: String,
}

impl MysqlConnected {
    /// host:port of the primary, as epochs record it.
    pub fn primary_addr(&self) -> String {
        self.client.addr()
    }

    /// Finds where the archive ends and streams from there. Call only after
    /// the epoch is checked: the first cut may write.
    pub async fn start(self, archive: &Archive, epoch: Epoch) -> anyhow::Result<MysqlSource> {
        let MysqlConnected {
            opts,
            client,
            system_id,
        } = self;
        let flavor = client.flavor();
        let state = resume::find(archive, epoch).await?;
        let (complete, skip_through) = match &state.resume {
            Some(r) => {
                let last = &r.last;
                let expected = GtidState::empty(flavor).flavor_name();
                if last.flavor != expected {
                    bail!(
                        "archive {} holds {} binlog but the primary {} is {expected}; point [primary] url at this archive's primary",
                        archive.url(), last.flavor, client.addr()
                    );
                }
                let gtid = GtidState::parse(&last.flavor, &last.gtid_pos_after).map_err(|e| {
                    anyhow::anyhow!("binlog index of {}:{} has a bad gtid_pos_after: {e}; run `instarec archive verify`", last.file, last.first_pos)
                })?;
                let at = BinlogPosition {
                    file: last.file.clone(),
                    pos: last.end_pos,
                };
                tracing::info!(gtid = %gtid, position = %at, epoch = %last.epoch, "resuming after the archive's last complete transaction");
                // Offsets only mean something on the server of that epoch.
                let skip = (last.epoch == epoch).then(|| at.clone());
                (BinlogPoint { gtid, at }, skip)
            }
            None => {
                let gtid = first_start_state(&opts, flavor).await?;
                tracing::info!(
                    %gtid,
                    "archive holds no binlog yet: starting at the primary's oldest binlog"
                );
                (
                    BinlogPoint {
                        gtid,
                        at: BinlogPosition {
                            file: String::new(),
                            pos: 0,
                        },
                    },
                    None,
                )
            }
        };
        // On the server that wrote the archive's end, its file offset is
        // exact (events between transactions, like the Stop at the end of a
        // file, are not skipped); elsewhere only the GTID state means anything.
        let by_file = skip_through.is_some();
        let stream = client
            .clone()
            .with_semi_sync(opts.semi_sync)
            .start(start_position(&complete, by_file))
            .await?;
        let (tx, primary_rx) = watch::channel(None);
        let query_opts = mysql_async::Opts::from_url(&opts.url)
            .with_context(|| format!("[primary] url for {}", client.addr()))?;
        tokio::spawn(primary_status::watch_binlog_end(
            query_opts,
            flavor,
            PRIMARY_POLL,
            tx,
        ));
        Ok(MysqlSource {
            opts,
            system_id,
            flavor,
            addr: client.addr(),
            stream: Some(stream),
            buffer: ChunkBuffer::new(epoch, complete.clone(), state.formats, skip_through),
            durable: complete,
            acks: VecDeque::new(),
            primary_rx,
            primary_watch_open: true,
            by_file,
            backoff: Backoff::reconnect(),
        })
    }
}

pub struct MysqlSource {
    opts: MysqlSourceOptions,
    system_id: String,
    flavor: ServerFlavor,
    addr: String,
    stream: Option<BinlogStream>,
    buffer: ChunkBuffer,
    durable: BinlogPoint,
    /// Per cut not yet acknowledged: its upto and the semi-sync ack it releases.
    acks: VecDeque<(BinlogPoint, Option<BinlogPosition>)>,
    primary_rx: watch::Receiver<Option<BinlogPoint>>,
    primary_watch_open: bool,
    /// Resume by file offset (exact, on the server we stream from) rather
    /// than by GTID state.
    by_file: bool,
    backoff: Backoff,
}

impl MysqlSource {
    /// Connects, finds the topology's identity and binds the archive to it
    /// (refusing another topology's archive). Writes nothing else.
    pub async fn connect(
        opts: MysqlSourceOptions,
        archive: &Archive,
    ) -> anyhow::Result<(MysqlConnected, Archive)> {
        let client = BinlogClient::connect(&opts.url, opts.server_id).await?;
        let system_id = query_system_id(&opts, client.flavor()).await?;
        let (archive, _) = archive.open_cluster(Engine::Mysql, &system_id).await?;
        tracing::info!(%system_id, flavor = ?client.flavor(), version = client.server_version(), server_id = opts.server_id, "connected to primary {}", client.addr());
        Ok((
            MysqlConnected {
                opts,
                client,
                system_id,
            },
            archive,
        ))
    }

    async fn reconnect(&mut self) -> anyhow::Result<()> {
        loop {
            match self.try_reconnect().await {
                Ok(stream) => {
                    tracing::info!(gtid = %self.buffer.complete().gtid, position = %self.buffer.complete().at, "reconnected to the primary");
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

    async fn try_reconnect(&mut self) -> anyhow::Result<BinlogStream> {
        let client = BinlogClient::connect(&self.opts.url, self.opts.server_id).await?;
        let system_id = query_system_id(&self.opts, client.flavor()).await?;
        if system_id != self.system_id || client.flavor() != self.flavor {
            bail!(SystemChanged {
                addr: client.addr(),
                was: self.system_id.clone(),
                now: format!("{system_id} ({:?})", client.flavor()),
            });
        }
        let from = start_position(self.buffer.complete(), self.by_file);
        Ok(client
            .with_semi_sync(self.opts.semi_sync)
            .start(from)
            .await?)
    }

    fn stream_broke(&mut self, e: Option<MysqlError>) -> anyhow::Result<()> {
        self.stream = None;
        self.buffer.restart_stream();
        match e {
            Some(e) => {
                let e = anyhow::Error::from(e);
                if self.by_file && is_fatal(&e) {
                    // The file offset is gone (a crash cut the binlog short,
                    // or files were purged): the GTID state decides.
                    tracing::warn!(error = %format!("{e:#}"), position = %self.buffer.complete().at, "cannot resume at the file offset; resuming by GTID");
                    self.by_file = false;
                    return Ok(());
                }
                if is_fatal(&e) {
                    return Err(e.context(format!(
                        "the primary {} refused to stream from {}; if its binlog was purged or it is another server, archive a fresh backup and point [primary] url at the right server",
                        self.addr,
                        self.buffer.complete().gtid
                    )));
                }
                tracing::warn!(error = %format!("{e:#}"), "binlog stream lost; reconnecting from the last complete transaction");
            }
            None => tracing::warn!("binlog stream ended; reconnecting"),
        }
        Ok(())
    }
}

async fn query_system_id(
    opts: &MysqlSourceOptions,
    flavor: ServerFlavor,
) -> anyhow::Result<String> {
    let query_opts = mysql_async::Opts::from_url(&opts.url).context("[primary] url")?;
    let mut conn = mysql_async::Conn::new(query_opts)
        .await
        .context("connecting to the primary to read its identity")?;
    let id = primary_status::system_id(&mut conn, flavor, opts.cluster_id.as_deref()).await;
    let _ = conn.disconnect().await;
    id
}

async fn first_start_state(
    opts: &MysqlSourceOptions,
    flavor: ServerFlavor,
) -> anyhow::Result<GtidState> {
    let query_opts = mysql_async::Opts::from_url(&opts.url).context("[primary] url")?;
    let mut conn = mysql_async::Conn::new(query_opts)
        .await
        .context("connecting to the primary to read where its binlog starts")?;
    let state = primary_status::first_start_state(&mut conn, flavor).await;
    let _ = conn.disconnect().await;
    state
}

fn start_position(at: &BinlogPoint, by_file: bool) -> StartPosition {
    if by_file && !at.at.file.is_empty() {
        return StartPosition::File(at.at.clone());
    }
    match &at.gtid {
        GtidState::Mariadb(p) => StartPosition::MariadbGtid(p.clone()),
        GtidState::Mysql(s) => StartPosition::MysqlGtid(s.clone()),
    }
}

#[derive(Debug, thiserror::Error)]
#[error("server at {addr} is now {now}, not {was}: it is another topology; point [primary] url back at this archive's primary")]
struct SystemChanged {
    addr: String,
    was: String,
    now: String,
}

/// Errors a retry cannot fix: credentials, another server, binlog gone.
fn is_fatal(e: &anyhow::Error) -> bool {
    if e.downcast_ref::<SystemChanged>().is_some() {
        return true;
    }
    match e.downcast_ref::<MysqlError>() {
        Some(MysqlError::Auth { .. })
        | Some(MysqlError::InvalidUrl { .. })
        | Some(MysqlError::Unsupported { .. }) => true,
        // 1236: the binlog no longer (or never) holds where we resume.
        Some(MysqlError::Server { code, .. }) => *code == 1236,
        _ => false,
    }
}

#[async_trait::async_trait]
impl LogSource for MysqlSource {
    type Position = BinlogPoint;

    async fn recv(&mut self) -> anyhow::Result<SourceEvent<BinlogPoint>> {
        loop {
            let Some(stream) = self.stream.as_mut() else {
                self.reconnect().await?;
                continue;
            };
            // Cancel-safe: next() and changed() lose nothing when dropped,
            // and each event is pushed as soon as it is read.
            tokio::select! {
                read = stream.next() => match read {
                    Ok(Some(StreamedEvent::Event(ev))) => {
                        let pushed = self.buffer.push(ev)?;
                        if pushed != Pushed::Skipped {
                            // Positioned in this server's files now.
                            self.by_file = true;
                        }
                        if pushed == Pushed::Completed {
                            return Ok(SourceEvent::Received { primary: None });
                        }
                    }
                    Ok(Some(StreamedEvent::Heartbeat { position })) => {
                        // Idle: the primary sent everything, so its GTID
                        // state is what we received.
                        return Ok(SourceEvent::PrimaryAt {
                            position: BinlogPoint {
                                gtid: self.buffer.complete().gtid.clone(),
                                at: position,
                            },
                            reply_requested: false,
                        });
                    }
                    Ok(None) => self.stream_broke(None)?,
                    Err(e) => self.stream_broke(Some(e))?,
                },
                changed = self.primary_rx.changed(), if self.primary_watch_open => {
                    if changed.is_err() {
                        self.primary_watch_open = false;
                        continue;
                    }
                    if let Some(position) = self.primary_rx.borrow_and_update().clone() {
                        return Ok(SourceEvent::PrimaryAt { position, reply_requested: false });
                    }
                }
            }
        }
    }

    fn buffered_bytes(&self) -> u64 {
        self.buffer.cuttable_bytes()
    }

    fn cut(&mut self) -> Option<Cut<BinlogPoint>> {
        let cut = self.buffer.cut()?;
        self.acks.push_back((cut.upto.clone(), cut.ack));
        Some(Cut {
            objects: cut.objects,
            announcements: cut.indexes,
            upto: cut.upto,
            superseded: Vec::new(),
        })
    }

    async fn acknowledge(&mut self, durable: &BinlogPoint) -> anyhow::Result<()> {
        self.durable = durable.clone();
        let Some(i) = self.acks.iter().position(|(upto, _)| upto == durable) else {
            return Ok(());
        };
        // Invariant 1: the primary releases a commit only once its events
        // are in the archive.
        let ack = self.acks.drain(..=i).filter_map(|(_, a)| a).next_back();
        let (Some(ack), Some(stream)) = (ack, self.stream.as_mut()) else {
            return Ok(());
        };
        if let Err(e) = stream.semi_sync_ack(&ack).await {
            tracing::warn!(error = %e, position = %ack, "could not send the semi-sync ack; reconnecting");
            self.stream = None;
            self.buffer.restart_stream();
        } else {
            tracing::debug!(position = %ack, "semi-sync ack sent");
        }
        Ok(())
    }

    fn lag_bytes(&self, primary: &BinlogPoint, durable: &BinlogPoint) -> Option<u64> {
        primary.bytes_after(durable)
    }

    fn position_gauge(&self, position: &BinlogPoint) -> Option<i64> {
        position.gtid.single_seq_no()
    }

    fn durable(&self) -> BinlogPoint {
        self.durable.clone()
    }
}
