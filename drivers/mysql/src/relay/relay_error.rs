//! What can go wrong while serving one replica connection.

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("replica {peer} closed the connection")]
    Closed { peer: String },
    #[error("connection to replica {peer} failed: {source}")]
    Io {
        peer: String,
        #[source]
        source: std::io::Error,
    },
    #[error("replica {peer} sent a malformed packet: {reason}")]
    Protocol { peer: String, reason: String },
    #[error("replica {peer} failed to log in as {user:?}: {reason}; check MASTER_USER and MASTER_PASSWORD against [relay] user and password")]
    Auth {
        peer: String,
        user: String,
        reason: String,
    },
    #[error("replica {peer}: {reason}")]
    Refused { peer: String, reason: String },
}
