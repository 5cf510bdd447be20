//! What can go wrong while moving clients, each naming the method and the
//! thing it talked to, and ending with what to do.

use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum CutoverError {
    #[error("unknown [cutover] method {0:?}; use one or more of proxy, pgbouncer, haproxy, hook")]
    UnknownMethod(String),

    #[error("[cutover] method {method:?} needs a [cutover.{method}] section with {keys}; add it or remove the method")]
    MissingSection {
        method: &'static str,
        keys: &'static str,
    },

    #[error(transparent)]
    BadAddress(#[from] crate::host_port::BadHostPort),

    #[error("cannot resolve {host}: {reason}; check the new primary's host name")]
    Resolve { host: String, reason: String },

    #[error("proxy control {addr}: {reason}; check that `instarec proxy` runs with [cutover] proxy_control = \"{addr}\"")]
    ProxyControl { addr: SocketAddr, reason: String },

    #[error("proxy control {addr} refused epoch {epoch} → {primary}: {reply}; a proxy never goes back to an older epoch, check which epoch promote claimed")]
    ProxyRefused {
        addr: SocketAddr,
        epoch: u64,
        primary: String,
        reply: String,
    },

    #[error("proxy: [cutover] proxy_control {addr} is not a loopback address; the control port has no authentication, bind it to 127.0.0.1 or ::1")]
    ControlNotLoopback { addr: SocketAddr },

    #[error("pgbouncer {command:?} at {admin}: {reason}; check [cutover.pgbouncer] admin_url and that its user is in pgbouncer's admin_users")]
    Pgbouncer {
        admin: String,
        command: String,
        reason: String,
    },

    #[error("pgbouncer databases file {}: {reason}", path.display())]
    DatabasesFile { path: PathBuf, reason: String },

    #[error("haproxy runtime API {api}: {reason}; check [cutover.haproxy] runtime_api and the `stats socket ... level admin` line in haproxy.cfg")]
    HaproxyConnect { api: String, reason: String },

    #[error("haproxy runtime API {api} rejected {command:?}: {reply}; check [cutover.haproxy] backend and server")]
    HaproxyRejected {
        api: String,
        command: String,
        reply: String,
    },

    #[error("haproxy {backend}/{server} still points at {actual} after the change, expected {expected}; inspect `show servers state {backend}`")]
    HaproxyNotApplied {
        backend: String,
        server: String,
        expected: String,
        actual: String,
    },

    #[error("cutover hook {command:?} could not start: {reason}")]
    HookSpawn { command: String, reason: String },

    #[error("cutover hook {command:?} ran longer than {timeout} and was killed; make it faster or raise [cutover.hook] timeout. Its stderr ended with:\n{stderr}")]
    HookTimeout {
        command: String,
        timeout: String,
        stderr: String,
    },

    #[error("cutover hook {command:?} failed ({status}); fix the hook and move clients by hand. Its stderr ended with:\n{stderr}")]
    HookFailed {
        command: String,
        status: String,
        stderr: String,
    },
}
