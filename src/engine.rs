//! The one seam between the engine-neutral pipeline and each database.
//!
//! A `LogSource` streams the primary's log, cuts what it received into
//! immutable archive objects, and tells the primary what is durable. The
//! pipeline in `ship/` owns timing, fencing, uploads, metrics and shutdown,
//! so each engine adapter stays a thin translation over its driver.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The database engine: what an archive's cluster record names, what
/// `[primary] engine` and every `--engine` flag choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// PostgreSQL (initdb and postgres 15 to 18)
    Postgres,
    /// MySQL / MariaDB, also spelled `mariadb` (the demo runs mariadbd,
    /// mariadb-install-db and mariabackup 10.11 or newer)
    #[value(alias = "mariadb")]
    Mysql,
}

impl Engine {
    /// The server's port when a URL names none.
    pub fn default_port(self) -> u16 {
        match self {
            Engine::Postgres => 5432,
            Engine::Mysql => 3306,
        }
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Engine::Postgres => "postgres",
            Engine::Mysql => "mysql",
        })
    }
}

/// Something that happened on the replication connection.
#[derive(Debug, Clone)]
pub enum SourceEvent<P> {
    /// New log bytes were buffered; `cut` will turn them into objects.
    /// `primary` is the primary's end of log when the message said.
    Received { primary: Option<P> },
    /// The primary told us its own end of log (keepalive or data header).
    PrimaryAt { position: P, reply_requested: bool },
}

/// A batch of objects that together make the archive durable up to `upto`.
#[derive(Debug, Clone)]
pub struct Cut<P> {
    /// (key, payload) pairs; each is written once, with a conditional create.
    pub objects: Vec<(String, Bytes)>,
    /// Objects that name others (e.g. chunk indexes), written only once
    /// every one of `objects` is durable: a reader that finds one finds
    /// what it names (a relay tailing the indexes must never miss a chunk).
    pub announcements: Vec<(String, Bytes)>,
    /// Once every object is durable, the archive holds the log up to here.
    pub upto: P,
    /// Keys made redundant by this cut (e.g. partial segments); deleted only
    /// after the cut is durable.
    pub superseded: Vec<String>,
}

impl<P> Cut<P> {
    pub fn payload_bytes(&self) -> u64 {
        self.all_objects().map(|(_, b)| b.len() as u64).sum()
    }

    pub fn all_objects(&self) -> impl Iterator<Item = &(String, Bytes)> {
        self.objects.iter().chain(&self.announcements)
    }
}

/// An engine's replication stream as the shipping pipeline sees it.
#[async_trait::async_trait]
pub trait LogSource: Send {
    /// A position in the engine's log (an LSN, a GTID position).
    type Position: Clone + PartialEq + fmt::Display + fmt::Debug + Send + Sync + 'static;

    /// Waits for the next event, reconnecting to the primary as needed.
    /// Must be cancel-safe: the pipeline calls it inside `select!`.
    async fn recv(&mut self) -> anyhow::Result<SourceEvent<Self::Position>>;

    /// Log bytes received but not yet handed out by `cut`.
    fn buffered_bytes(&self) -> u64;

    /// Hands out everything received so far as archive objects, or None
    /// when nothing new arrived.
    fn cut(&mut self) -> Option<Cut<Self::Position>>;

    /// Tells the primary that the archive durably holds the log up to
    /// `durable`. Never called with a position that is not durable.
    async fn acknowledge(&mut self, durable: &Self::Position) -> anyhow::Result<()>;

    /// Bytes of log between `durable` and `primary`, when the engine can say.
    fn lag_bytes(&self, primary: &Self::Position, durable: &Self::Position) -> Option<u64>;

    /// The position as one number for the durable-position gauge, if it has one.
    fn position_gauge(&self, position: &Self::Position) -> Option<i64>;

    /// Where the archive's durable log ends right now (for the first ack and
    /// for status after a restart).
    fn durable(&self) -> Self::Position;
}

/// The old primary after fencing: where its log ends for good.
#[derive(Debug, Clone)]
pub struct FencedPrimary<P> {
    pub final_position: P,
    /// Client sessions ended by the fence.
    pub sessions_ended: u64,
    /// Its settings made every commit wait for the shipper (zero-loss mode).
    pub waits_for_shipper: bool,
}

/// Who a server says it is, checked before promote changes anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerIdentity {
    /// The system identity the archive's cluster record names.
    pub system_id: String,
    /// True for a standby (still replaying).
    pub replaying: bool,
}

/// Whether the old primary answered.
#[derive(Debug, Clone)]
pub enum Reach {
    Reached(ServerIdentity),
    /// Why not, for the report (refused, timed out, still in crash recovery).
    Unreachable(String),
}

/// The standby right after promotion.
#[derive(Debug, Clone)]
pub struct Promoted<P> {
    /// The end of the log it replayed: everything up to here survived.
    pub recovered: P,
    /// The commit time the old primary stamped on the last transaction the
    /// standby replayed; every commit it lacks was acknowledged after this.
    pub last_commit_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Transactions a promote may have lost, when the engine names them (GTIDs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostTransactions {
    /// How many; may count ids that were never used, never fewer than lost.
    pub count: u64,
    /// The ids in the engine's notation, e.g. "0-1-[46..50]".
    pub ids: String,
}

/// The new primary's zero-loss setting, switched off right after promotion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuspendedSynchronous {
    /// The value to set again, e.g. "instarec".
    pub value: String,
    /// The setting in the engine's words, for the report, e.g.
    /// "synchronous_standby_names = 'instarec'".
    pub described: String,
}

/// An engine's server control as `promote` sees it: the old primary, the
/// standby, and positions in the archive. The sequence, its timeouts and the
/// RPO arithmetic live once in `promote/`; adapters only translate.
#[async_trait::async_trait]
pub trait ServerControl: Send + Sync {
    type Position: Clone
        + Ord
        + fmt::Display
        + fmt::Debug
        + std::str::FromStr
        + Send
        + Sync
        + 'static;

    /// host:port of the standby being promoted, spelled as `ship` spells
    /// its primary, so the new epoch names the server a shipper will use.
    fn standby_addr(&self) -> String;

    /// host:port of the old primary, when configured.
    fn old_primary_addr(&self) -> Option<String>;

    /// The standby's identity. Read-only.
    async fn standby_identity(&self) -> anyhow::Result<ServerIdentity>;

    /// Connects to the old primary within `within`. Unreachable is a
    /// failover, not an error; wrong credentials are. Changes nothing.
    async fn reach_old_primary(&self, within: std::time::Duration) -> anyhow::Result<Reach>;

    /// Fences the reachable old primary: new transactions are read-only and
    /// client sessions are ended, while the server keeps running so its last
    /// log still reaches the archive. Returns where its log ends for good.
    async fn fence_old_primary(&self) -> anyhow::Result<FencedPrimary<Self::Position>>;

    /// Undoes the fence when a switchover is abandoned before any epoch was claimed.
    async fn unfence_old_primary(&self) -> anyhow::Result<()>;

    /// Where the archive's contiguous log ends, including the in-progress tail.
    async fn archive_end(
        &self,
        archive: &crate::archive::Archive,
    ) -> anyhow::Result<Option<Self::Position>>;

    /// How far the standby has replayed.
    async fn standby_replayed(&self) -> anyhow::Result<Self::Position>;

    /// How long the standby may pause between looks at the archive; a
    /// stall longer than this means it replayed all it can.
    async fn standby_poll_interval(&self) -> anyhow::Result<std::time::Duration>;

    /// Ends recovery on the standby and waits until it accepts writes.
    async fn promote_standby(
        &self,
        wait: std::time::Duration,
    ) -> anyhow::Result<Promoted<Self::Position>>;

    /// Archives what the new primary's log needs to be followed (the new
    /// timeline's history file); returns one line for the log.
    async fn publish_new_history(
        &self,
        archive: &crate::archive::Archive,
    ) -> anyhow::Result<String>;

    /// Commits one probe row through `via` (a proxy) or, when None,
    /// directly on the new primary.
    async fn write_probe(
        &self,
        via: Option<std::net::SocketAddr>,
        note: &str,
    ) -> anyhow::Result<()>;

    /// True when the engine's zero-loss mode can lapse on its own (MySQL
    /// semi-sync falls back to asynchronous after a timeout), so a dead old
    /// primary's `synchronous = true` proves nothing.
    fn synchronous_can_lapse(&self) -> bool {
        false
    }

    /// When the promoted server's commits wait for a synchronous shipper
    /// (the zero-loss mode it inherited), makes them stop waiting and
    /// returns what to restore; None when its commits do not wait. Engines
    /// whose zero-loss mode lapses on its own keep this default.
    async fn suspend_synchronous(&self) -> anyhow::Result<Option<SuspendedSynchronous>> {
        Ok(None)
    }

    /// Restores what [`ServerControl::suspend_synchronous`] suspended.
    async fn restore_synchronous(&self, _suspended: &SuspendedSynchronous) -> anyhow::Result<()> {
        Ok(())
    }

    /// Whether a shipper streams from the new primary now.
    async fn shipper_streaming(&self) -> anyhow::Result<bool> {
        Ok(false)
    }

    /// Log bytes from `earlier` to `later`; 0 when `later` is not after it.
    fn bytes_between(&self, earlier: &Self::Position, later: &Self::Position) -> u64;

    /// The transactions `later` has and `earlier` lacks, for engines whose
    /// positions name transactions; None when they do not (PostgreSQL).
    fn transactions_between(
        &self,
        _earlier: &Self::Position,
        _later: &Self::Position,
    ) -> Option<LostTransactions> {
        None
    }
}
