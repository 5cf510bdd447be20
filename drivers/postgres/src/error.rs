//! The driver's error type. Every variant names the server (host:port) and, where the
//! user can act, ends with what to do.

use std::io;
use std::time::Duration;

use crate::conn::config::ConfigError;

#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error(transparent)]
    Config(#[from] ConfigError),

    /// A server older or newer than the majors in [`crate::version::SUPPORTED`].
    #[error(transparent)]
    UnsupportedVersion(#[from] crate::version::UnsupportedVersion),

    #[error("could not connect to PostgreSQL at {addr}: {source}; check that the server is running and listens there (listen_addresses, port) and that no firewall blocks it")]
    Connect {
        addr: String,
        #[source]
        source: io::Error,
    },

    #[error("connecting to PostgreSQL at {addr} timed out after {after:?}; check the host and port, or raise connect_timeout in the URL")]
    ConnectTimeout { addr: String, after: Duration },

    #[error("authentication as user {user:?} at {addr} failed: {reason}; check the password and that pg_hba.conf allows a {kind} connection for user {user} from this host")]
    Auth {
        addr: String,
        user: String,
        /// "replication" or "database": which pg_hba.conf line must match.
        kind: &'static str,
        reason: String,
    },

    #[error("TLS to PostgreSQL at {addr} failed: {reason}")]
    Tls { addr: String, reason: String },

    /// The server answered a command with an ErrorResponse.
    #[error("{}", server_text(.addr, .command, .severity, .code, .message, .detail, .hint))]
    Server {
        addr: String,
        /// The command the server rejected, e.g. "TIMELINE_HISTORY 1".
        command: String,
        severity: String,
        /// SQLSTATE, e.g. "42704".
        code: String,
        message: String,
        detail: Option<String>,
        hint: Option<String>,
    },

    #[error("unexpected message from PostgreSQL at {addr}: {detail}; the server speaks a protocol instarec does not understand, please report this")]
    Protocol { addr: String, detail: String },

    #[error("connection to PostgreSQL at {addr} failed: {source}; check the server log and network, then retry")]
    Io {
        addr: String,
        #[source]
        source: io::Error,
    },

    #[error("PostgreSQL at {addr} closed the connection{context}; check the server log for why")]
    Closed { addr: String, context: String },

    /// Returned by `create_physical_slot` when the slot exists: reuse it or drop it first.
    #[error("replication slot {slot:?} already exists on {addr}; reuse it, or drop it with SELECT pg_drop_replication_slot('{slot}')")]
    SlotExists { addr: String, slot: String },

    #[error("invalid replication slot name {slot:?}: use 1 to 63 lower-case letters, digits and underscores")]
    InvalidSlotName { slot: String },

    #[error("SQL connection to PostgreSQL at {addr} failed: {source}")]
    Sql {
        addr: String,
        #[source]
        source: tokio_postgres::Error,
    },
}

fn server_text(
    addr: &str,
    command: &str,
    severity: &str,
    code: &str,
    message: &str,
    detail: &Option<String>,
    hint: &Option<String>,
) -> String {
    let mut s = format!("PostgreSQL at {addr} rejected {command}: {severity} {code}: {message}");
    if let Some(d) = detail {
        s.push_str(&format!(" (detail: {d})"));
    }
    match hint {
        Some(h) => s.push_str(&format!("; hint: {h}")),
        None => s.push_str("; see the server log for more"),
    }
    s
}

impl PgError {
    /// The SQLSTATE of an error the server sent, if this is one.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            PgError::Server { code, .. } => Some(code),
            PgError::Sql { source, .. } => source.code().map(|c| c.code()),
            _ => None,
        }
    }

    pub(crate) fn io(addr: &str, source: io::Error) -> PgError {
        PgError::Io {
            addr: addr.to_string(),
            source,
        }
    }

    pub(crate) fn protocol(addr: &str, detail: impl Into<String>) -> PgError {
        PgError::Protocol {
            addr: addr.to_string(),
            detail: detail.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_error_names_server_command_and_code() {
        let e = PgError::Server {
            addr: "db:5432".into(),
            command: "TIMELINE_HISTORY 1".into(),
            severity: "ERROR".into(),
            code: "58P01".into(),
            message: "could not open file".into(),
            detail: Some("d".into()),
            hint: None,
        };
        assert_eq!(
            e.to_string(),
            "PostgreSQL at db:5432 rejected TIMELINE_HISTORY 1: ERROR 58P01: could not open file (detail: d); see the server log for more"
        );
        assert_eq!(e.sqlstate(), Some("58P01"));
    }

    #[test]
    fn auth_error_says_what_to_check() {
        let e = PgError::Auth {
            addr: "db:5432".into(),
            user: "rep".into(),
            kind: "replication",
            reason: "password authentication failed".into(),
        };
        let s = e.to_string();
        assert!(
            s.contains("db:5432")
                && s.contains("pg_hba.conf allows a replication connection for user rep"),
            "{s}"
        );
    }
}
