//! The proxy's control port: a line protocol on loopback through which
//! promote names the new primary without waiting for the archive poll.
//!
//! ```text
//! → PRIMARY 10.0.0.2:5432 2      ← OK            (or ERR <why>)
//! → STATUS                       ← OK 10.0.0.2:5432 2   ("-" when no primary)
//! ```

use super::{CutoverError, HostPort, RouteTable, RouteUpdate};
use bytes::{BufMut, BytesMut};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Longest request or reply line, newline included; longer input is refused.
const MAX_LINE: usize = 1024;
/// How long promote waits for the proxy to answer.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(5);
/// Control connections idle longer than this are closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlRequest {
    Primary { primary: HostPort, epoch: u64 },
    Status,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlReply {
    Ok,
    Status {
        primary: Option<HostPort>,
        epoch: u64,
    },
    Err(String),
}

impl ControlRequest {
    /// Parses one line, with or without its trailing newline.
    pub fn parse(line: &[u8]) -> Result<ControlRequest, String> {
        let text = std::str::from_utf8(line).map_err(|_| "request is not UTF-8".to_string())?;
        let words: Vec<&str> = text.split_whitespace().collect();
        match words.as_slice() {
            ["PRIMARY", primary, epoch] => Ok(ControlRequest::Primary {
                primary: HostPort::parse(primary).map_err(|e| e.to_string())?,
                epoch: epoch
                    .parse()
                    .map_err(|_| format!("epoch {epoch:?} is not a number"))?,
            }),
            ["STATUS"] => Ok(ControlRequest::Status),
            _ => Err("expected `PRIMARY <host:port> <epoch>` or `STATUS`".to_string()),
        }
    }

    pub fn encode(&self, out: &mut BytesMut) {
        match self {
            ControlRequest::Primary { primary, epoch } => {
                out.put_slice(format!("PRIMARY {primary} {epoch}\n").as_bytes())
            }
            ControlRequest::Status => out.put_slice(b"STATUS\n"),
        }
    }
}

impl ControlReply {
    pub fn parse(line: &[u8]) -> Result<ControlReply, String> {
        let text = std::str::from_utf8(line).map_err(|_| "reply is not UTF-8".to_string())?;
        let text = text.trim_end_matches(['\r', '\n']);
        if let Some(reason) = text.strip_prefix("ERR ") {
            return Ok(ControlReply::Err(reason.to_string()));
        }
        let words: Vec<&str> = text.split_whitespace().collect();
        match words.as_slice() {
            ["OK"] => Ok(ControlReply::Ok),
            ["OK", primary, epoch] => Ok(ControlReply::Status {
                primary: match *primary {
                    "-" => None,
                    p => Some(HostPort::parse(p).map_err(|e| e.to_string())?),
                },
                epoch: epoch
                    .parse()
                    .map_err(|_| format!("epoch {epoch:?} is not a number"))?,
            }),
            _ => Err(format!("unexpected reply {text:?}")),
        }
    }

    pub fn encode(&self, out: &mut BytesMut) {
        let line = match self {
            ControlReply::Ok => "OK\n".to_string(),
            ControlReply::Status { primary, epoch } => match primary {
                Some(p) => format!("OK {p} {epoch}\n"),
                None => format!("OK - {epoch}\n"),
            },
            // One line, whatever the reason says.
            ControlReply::Err(reason) => format!("ERR {}\n", reason.replace(['\r', '\n'], " ")),
        };
        out.put_slice(line.as_bytes());
    }
}

/// Answers control connections until `shutdown`.
pub async fn serve(listener: TcpListener, routes: Arc<RouteTable>, shutdown: CancellationToken) {
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "proxy control: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let routes = routes.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                result = answer(stream, &routes) => if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "proxy control connection ended");
                }
            }
        });
    }
}

async fn answer(stream: TcpStream, routes: &RouteTable) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = tokio::time::timeout(IDLE_TIMEOUT, read_line(&mut lines, &mut line))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "idle"))??;
        if n == 0 {
            return Ok(());
        }
        let reply = match ControlRequest::parse(&line) {
            Ok(request) => apply(request, routes),
            Err(reason) => ControlReply::Err(reason),
        };
        let mut out = BytesMut::new();
        reply.encode(&mut out);
        write.write_all(&out).await?;
        // An overlong line was answered with an error; its rest is not a request.
        if !line.ends_with(b"\n") {
            return Ok(());
        }
    }
}

/// Reads one line of at most MAX_LINE bytes; 0 at end of input.
async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
) -> std::io::Result<usize> {
    let mut limited = reader.take(MAX_LINE as u64);
    limited.read_until(b'\n', line).await
}

fn apply(request: ControlRequest, routes: &RouteTable) -> ControlReply {
    match request {
        ControlRequest::Status => {
            let route = routes.current();
            ControlReply::Status {
                primary: route.upstream.clone(),
                epoch: route.epoch,
            }
        }
        ControlRequest::Primary { primary, epoch } => {
            match routes.offer(epoch, Some(primary.clone())) {
                RouteUpdate::Refused(reason) => {
                    tracing::warn!(epoch, %primary, "proxy control: refused: {reason}");
                    ControlReply::Err(reason)
                }
                update => {
                    log_update("control port", epoch, &update);
                    ControlReply::Ok
                }
            }
        }
    }
}

/// One info line per route change, whoever made it.
pub(super) fn log_update(source: &str, epoch: u64, update: &RouteUpdate) {
    match update {
        RouteUpdate::Switched { from, to } => tracing::info!(
            epoch,
            from = %display_upstream(from),
            to = %display_upstream(to),
            "proxy: new primary from the {source}; closed connections to the old one"
        ),
        RouteUpdate::EpochAdvanced => {
            tracing::info!(
                epoch,
                "proxy: {source} names the same primary for a newer epoch"
            )
        }
        RouteUpdate::Unchanged | RouteUpdate::Refused(_) => {}
    }
}

pub(super) fn display_upstream(upstream: &Option<HostPort>) -> String {
    match upstream {
        Some(p) => p.to_string(),
        None => "(no primary)".to_string(),
    }
}

/// Tells the proxy at `addr` that `primary` is the primary of `epoch`, and
/// waits for its OK.
pub async fn notify(addr: SocketAddr, primary: &HostPort, epoch: u64) -> Result<(), CutoverError> {
    let request = ControlRequest::Primary {
        primary: primary.clone(),
        epoch,
    };
    match exchange(addr, &request).await? {
        ControlReply::Ok => Ok(()),
        ControlReply::Err(reply) => Err(CutoverError::ProxyRefused {
            addr,
            epoch,
            primary: primary.to_string(),
            reply,
        }),
        other => Err(CutoverError::ProxyControl {
            addr,
            reason: format!("unexpected reply {other:?}"),
        }),
    }
}

/// The proxy's current primary and epoch.
pub async fn status(addr: SocketAddr) -> Result<(Option<HostPort>, u64), CutoverError> {
    match exchange(addr, &ControlRequest::Status).await? {
        ControlReply::Status { primary, epoch } => Ok((primary, epoch)),
        other => Err(CutoverError::ProxyControl {
            addr,
            reason: format!("unexpected reply {other:?}"),
        }),
    }
}

async fn exchange(
    addr: SocketAddr,
    request: &ControlRequest,
) -> Result<ControlReply, CutoverError> {
    let failed = |reason: String| CutoverError::ProxyControl { addr, reason };
    let work = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|e| failed(format!("connect: {e}")))?;
        let mut out = BytesMut::new();
        request.encode(&mut out);
        stream
            .write_all(&out)
            .await
            .map_err(|e| failed(format!("send: {e}")))?;
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        let n = read_line(&mut reader, &mut line)
            .await
            .map_err(|e| failed(format!("read: {e}")))?;
        if n == 0 {
            return Err(failed("closed without a reply".to_string()));
        }
        ControlReply::parse(&line).map_err(failed)
    };
    tokio::time::timeout(NOTIFY_TIMEOUT, work)
        .await
        .map_err(|_| failed(format!("no reply within {NOTIFY_TIMEOUT:?}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded_request(r: &ControlRequest) -> Vec<u8> {
        let mut out = BytesMut::new();
        r.encode(&mut out);
        out.to_vec()
    }

    fn encoded_reply(r: &ControlReply) -> Vec<u8> {
        let mut out = BytesMut::new();
        r.encode(&mut out);
        out.to_vec()
    }

    #[test]
    fn requests_round_trip_through_literal_lines() {
        let primary = ControlRequest::Primary {
            primary: HostPort::new("10.0.0.2", 5432),
            epoch: 2,
        };
        assert_eq!(encoded_request(&primary), b"PRIMARY 10.0.0.2:5432 2\n");
        assert_eq!(
            ControlRequest::parse(b"PRIMARY 10.0.0.2:5432 2\n").unwrap(),
            primary
        );
        assert_eq!(
            ControlRequest::parse(b"STATUS\r\n").unwrap(),
            ControlRequest::Status
        );
        assert_eq!(encoded_request(&ControlRequest::Status), b"STATUS\n");
    }

    #[test]
    fn bad_requests_are_errors_not_panics() {
        for line in [
            &b"PRIMARY 10.0.0.2 2\n"[..],
            b"PRIMARY 10.0.0.2:5432 two\n",
            b"PRIMARY 10.0.0.2:5432\n",
            b"HELLO\n",
            b"\xff\xfe\n",
            b"",
        ] {
            assert!(ControlRequest::parse(line).is_err(), "{line:?}");
        }
    }

    #[test]
    fn replies_round_trip_through_literal_lines() {
        let cases: Vec<(ControlReply, &[u8])> = vec![
            (ControlReply::Ok, b"OK\n"),
            (
                ControlReply::Status {
                    primary: Some(HostPort::new("::1", 5433)),
                    epoch: 7,
                },
                b"OK [::1]:5433 7\n",
            ),
            (
                ControlReply::Status {
                    primary: None,
                    epoch: 3,
                },
                b"OK - 3\n",
            ),
            (
                ControlReply::Err("epoch 1 is older than the current epoch 2".into()),
                b"ERR epoch 1 is older than the current epoch 2\n",
            ),
        ];
        for (reply, bytes) in cases {
            assert_eq!(encoded_reply(&reply), bytes);
            assert_eq!(ControlReply::parse(bytes).unwrap(), reply);
        }
        assert_eq!(
            encoded_reply(&ControlReply::Err("a\nb".into())),
            b"ERR a b\n"
        );
    }
}
