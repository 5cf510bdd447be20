//! The answer to IDENTIFY_SYSTEM.

use std::fmt;

use crate::lsn::{Lsn, TimelineId};

/// The cluster's system identifier, fixed at initdb; every WAL segment's long page
/// header carries it. PostgreSQL prints it in decimal.
#[derive(Copy, Clone, Eq, PartialEq, Ord, PartialOrd, Hash, Debug)]
pub struct SystemId(pub u64);

impl fmt::Display for SystemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[derive(Clone, Eq, PartialEq, Debug)]
pub struct SystemIdentity {
    pub system_id: SystemId,
    /// The server's current timeline.
    pub timeline: TimelineId,
    /// The server's current WAL flush position.
    pub xlogpos: Lsn,
    /// None on a physical replication connection.
    pub dbname: Option<String>,
}
