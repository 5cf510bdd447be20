//! Cutover through haproxy's runtime API (the `stats socket ... level admin`
//! of haproxy.cfg): take the server out of rotation, close its sessions,
//! point it at the new primary, put it back, and check `show servers state`.

use super::{CutoverError, CutoverTarget};
use crate::config::HaproxySection;
use std::net::IpAddr;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// Replies are a few lines; `show servers state` of a big backend is the longest.
const MAX_REPLY: u64 = 1 << 20;

pub async fn cut_over(
    section: &HaproxySection,
    target: &CutoverTarget,
) -> Result<String, CutoverError> {
    let api = RuntimeApi::new(&section.runtime_api);
    let server = format!("{}/{}", section.backend, section.server);
    let ip = resolve(&target.host, target.port).await?;
    // maint first, so no new session reaches the old primary after the shutdown.
    api.expect_empty(&format!("set server {server} state maint"))
        .await?;
    api.expect_empty(&format!("shutdown sessions server {server}"))
        .await?;
    let command = format!("set server {server} addr {ip} port {}", target.port);
    let reply = api.send(&command).await?;
    if !(reply.contains("changed from") || reply.contains("no need to change")) {
        return Err(api.rejected(&command, &reply));
    }
    api.expect_empty(&format!("set server {server} state ready"))
        .await?;

    let command = format!("show servers state {}", section.backend);
    let reply = api.send(&command).await?;
    let state =
        server_state(&reply, &section.server).ok_or_else(|| api.rejected(&command, &reply))?;
    let expected = format!("{ip}:{} (ready)", target.port);
    let actual = format!(
        "{}:{} ({})",
        state.addr,
        state.port,
        if state.in_maintenance() {
            "maint"
        } else {
            "ready"
        }
    );
    if actual != expected {
        return Err(CutoverError::HaproxyNotApplied {
            backend: section.backend.clone(),
            server: section.server.clone(),
            expected,
            actual,
        });
    }
    Ok(format!(
        "haproxy {}: {server} now {ip}:{}, old sessions closed",
        section.runtime_api, target.port
    ))
}

/// haproxy takes IP literals only (without a resolvers section).
async fn resolve(host: &str, port: u16) -> Result<IpAddr, CutoverError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ip);
    }
    let failed = |reason: String| CutoverError::Resolve {
        host: host.to_string(),
        reason,
    };
    let mut addrs = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| failed(e.to_string()))?;
    addrs
        .next()
        .map(|a| a.ip())
        .ok_or_else(|| failed("no addresses".to_string()))
}

/// `unix:/path`, `/path`, or `host:port`.
struct RuntimeApi {
    address: String,
}

impl RuntimeApi {
    fn new(address: &str) -> Self {
        RuntimeApi {
            address: address.to_string(),
        }
    }

    /// One command per connection: haproxy answers and closes (non-interactive mode).
    async fn send(&self, command: &str) -> Result<String, CutoverError> {
        let failed = |reason: String| CutoverError::HaproxyConnect {
            api: self.address.clone(),
            reason,
        };
        let exchange = async {
            let path = self.address.strip_prefix("unix:").or_else(|| {
                self.address
                    .starts_with('/')
                    .then_some(self.address.as_str())
            });
            match path {
                Some(path) => {
                    let stream = tokio::net::UnixStream::connect(path)
                        .await
                        .map_err(|e| failed(format!("connect: {e}")))?;
                    exchange(stream, command)
                        .await
                        .map_err(|e| failed(e.to_string()))
                }
                None => {
                    let stream = tokio::net::TcpStream::connect(self.address.as_str())
                        .await
                        .map_err(|e| failed(format!("connect: {e}")))?;
                    exchange(stream, command)
                        .await
                        .map_err(|e| failed(e.to_string()))
                }
            }
        };
        let reply = tokio::time::timeout(COMMAND_TIMEOUT, exchange)
            .await
            .map_err(|_| {
                failed(format!(
                    "no answer to {command:?} within {COMMAND_TIMEOUT:?}"
                ))
            })??;
        tracing::debug!(command, reply = reply.trim_end(), "haproxy runtime API");
        Ok(reply)
    }

    /// State changes answer with an empty line; anything else is an error text.
    async fn expect_empty(&self, command: &str) -> Result<(), CutoverError> {
        let reply = self.send(command).await?;
        if reply.trim().is_empty() {
            Ok(())
        } else {
            Err(self.rejected(command, &reply))
        }
    }

    fn rejected(&self, command: &str, reply: &str) -> CutoverError {
        CutoverError::HaproxyRejected {
            api: self.address.clone(),
            command: command.to_string(),
            reply: reply.trim().to_string(),
        }
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    command: &str,
) -> std::io::Result<String> {
    stream.write_all(format!("{command}\n").as_bytes()).await?;
    let mut reply = Vec::new();
    (&mut stream)
        .take(MAX_REPLY)
        .read_to_end(&mut reply)
        .await?;
    Ok(String::from_utf8_lossy(&reply).into_owned())
}

/// One server's line of `show servers state`.
#[derive(Debug, PartialEq, Eq)]
struct ServerState {
    addr: String,
    port: String,
    admin_state: u32,
}

impl ServerState {
    /// SRV_ADMF_FMAINT: put in maintenance by the runtime API.
    fn in_maintenance(&self) -> bool {
        self.admin_state & 0x01 != 0
    }
}

/// Finds `server` in `show servers state` output, by the header's column names.
fn server_state(reply: &str, server: &str) -> Option<ServerState> {
    let mut columns: Vec<&str> = Vec::new();
    for line in reply.lines() {
        if let Some(header) = line.strip_prefix("# ") {
            columns = header.split_whitespace().collect();
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let field = |name: &str| {
            let i = columns.iter().position(|c| *c == name)?;
            fields.get(i).copied()
        };
        if field("srv_name") == Some(server) {
            return Some(ServerState {
                addr: field("srv_addr")?.to_string(),
                port: field("srv_port")?.to_string(),
                admin_state: field("srv_admin_state")?.parse().ok()?,
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured from haproxy 2.6 (columns after srv_port trimmed).
    const SHOW_SERVERS_STATE: &str = "1\n\
# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord\n\
3 pg 1 primary 127.0.0.1 2 0 1 1 12 1 0 0 0 0 0 0 - 5433 -\n\
3 pg 2 spare 10.0.0.7 0 1 1 1 12 1 0 0 0 0 0 0 - 5432 -\n\n";

    #[test]
    fn reads_a_server_line_by_column_names() {
        assert_eq!(
            server_state(SHOW_SERVERS_STATE, "primary"),
            Some(ServerState {
                addr: "127.0.0.1".into(),
                port: "5433".into(),
                admin_state: 0
            })
        );
        assert!(server_state(SHOW_SERVERS_STATE, "spare")
            .unwrap()
            .in_maintenance());
        assert_eq!(server_state(SHOW_SERVERS_STATE, "nope"), None);
        assert_eq!(server_state("No such backend.\n", "primary"), None);
    }
}
