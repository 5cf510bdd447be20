//! The one seam between the engine-neutral pipeline and each database.
//!
//! A `LogSource` streams the primary's log, cuts what it received into
//! immutable archive objects, and tells the primary what is durable. The
//! pipeline in `ship/` owns timing, fencing, uploads, metrics and shutdown,
//! so each engine adapter stays a thin translation over its driver.

use bytes::Bytes;
use std::fmt;

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
    /// Once every object is durable, the archive holds the log up to here.
    pub upto: P,
    /// Keys made redundant by this cut (e.g. partial segments); deleted only
    /// after the cut is durable.
    pub superseded: Vec<String>,
}

impl<P> Cut<P> {
    pub fn payload_bytes(&self) -> u64 {
        self.objects.iter().map(|(_, b)| b.len() as u64).sum()
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
