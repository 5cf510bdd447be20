//! The error of the network side of the driver: connecting to a server,
//! authenticating, and streaming its binlog.

use crate::event::EventError;

#[derive(Debug, thiserror::Error)]
pub enum MysqlError {
    #[error("invalid MySQL URL {url:?}: {reason}; write it as mysql://user:password@host:port/")]
    InvalidUrl { url: String, reason: String },
    #[error("connecting to {addr}: {source}; check that the server runs and listens there")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("connection to {addr} failed: {source}")]
    Io {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{addr} closed the connection{context}; reconnect and resume from the last archived position")]
    Closed { addr: String, context: String },
    #[error("{addr} sent a malformed packet ({reason}): {}", hex_prefix(.packet))]
    Protocol {
        addr: String,
        reason: String,
        packet: Vec<u8>,
    },
    #[error("{addr} refused the login of user {user:?}: {message}; check the user, its password and its host in the URL")]
    Auth {
        addr: String,
        user: String,
        message: String,
    },
    #[error("{addr} answered {what} with error {code} ({state}): {message}")]
    Server {
        addr: String,
        what: String,
        code: u16,
        state: String,
        message: String,
    },
    #[error("query on {addr} failed: {source}")]
    Query {
        addr: String,
        #[source]
        source: mysql_async::Error,
    },
    #[error("{addr} is not usable as a binlog source: {reason}")]
    Unsupported { addr: String, reason: String },
    #[error("binlog event from {addr} at {file}:{log_pos} is bad: {source}")]
    Event {
        addr: String,
        file: String,
        log_pos: u32,
        #[source]
        source: EventError,
    },
}

/// The first bytes of a packet in hex, enough to recognise it in a log.
fn hex_prefix(packet: &[u8]) -> String {
    const SHOWN: usize = 32;
    let mut s: String = packet
        .iter()
        .take(SHOWN)
        .map(|b| format!("{b:02x}"))
        .collect();
    if packet.len() > SHOWN {
        s.push_str(&format!("… ({} bytes)", packet.len()));
    }
    s
}
