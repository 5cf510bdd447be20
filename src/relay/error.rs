//! Errors of `instarec relay`: the listener, and what ends one replica's stream.

use crate::archive::ArchiveError;
use instarec_mysql::relay::RelayError;

#[derive(Debug, thiserror::Error)]
pub enum RelayServeError {
    #[error("cannot listen on {addr}: {source}; pick a free [relay] listen address")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error(transparent)]
    Replica(#[from] RelayError),
    #[error("archive object {key} holds a bad binlog event at byte {offset}: {reason}; run `instarec archive verify`")]
    BadEvent {
        key: String,
        offset: usize,
        reason: String,
    },
    #[error("{0}")]
    Position(String),
}
