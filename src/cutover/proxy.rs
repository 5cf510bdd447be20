//! `instarec proxy`: a TCP proxy that sends every new client connection to
//! the current primary, and closes connections to a primary the moment a
//! newer epoch names another one, so clients reconnect to the new one.

use super::proxy_control::display_upstream;
use super::{proxy_control, proxy_watch, CutoverError, HostPort, RouteTable};
use crate::archive::Archive;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// How often the archive's epochs are read.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(500);
/// How long a connection attempt to the primary may take.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct ProxyOptions {
    pub listen: SocketAddr,
    /// Loopback address of the control port, if any.
    pub control: Option<SocketAddr>,
    pub poll_interval: Duration,
    pub connect_timeout: Duration,
}

impl ProxyOptions {
    pub fn new(listen: SocketAddr) -> Self {
        ProxyOptions {
            listen,
            control: None,
            poll_interval: DEFAULT_POLL_INTERVAL,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }
}

/// A bound proxy, ready to serve.
pub struct ProxyServer {
    listener: TcpListener,
    control: Option<TcpListener>,
    routes: Arc<RouteTable>,
    options: ProxyOptions,
}

impl ProxyServer {
    /// Reads the newest epoch (falling back to `bootstrap`, the `[primary]
    /// url`, before any exists) and binds the listen and control ports.
    pub async fn bind(
        options: ProxyOptions,
        archive: &Archive,
        bootstrap: Option<HostPort>,
    ) -> anyhow::Result<ProxyServer> {
        let (epoch, upstream) = match proxy_watch::read_current(archive).await? {
            Some(current) => current,
            None => (0, bootstrap),
        };
        tracing::info!(epoch, primary = %display_upstream(&upstream), "proxy: initial primary");
        let routes = Arc::new(RouteTable::new(epoch, upstream));
        Self::bind_with_routes(options, routes).await
    }

    pub async fn bind_with_routes(
        options: ProxyOptions,
        routes: Arc<RouteTable>,
    ) -> anyhow::Result<ProxyServer> {
        use anyhow::Context as _;
        let control = match options.control {
            Some(addr) if !addr.ip().is_loopback() => {
                return Err(CutoverError::ControlNotLoopback { addr }.into())
            }
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding proxy control port {addr}"))?,
            ),
            None => None,
        };
        let listener = TcpListener::bind(options.listen)
            .await
            .with_context(|| format!("binding proxy listen address {}", options.listen))?;
        Ok(ProxyServer {
            listener,
            control,
            routes,
            options,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn routes(&self) -> Arc<RouteTable> {
        self.routes.clone()
    }

    /// Proxies until `shutdown`, following `archive` (if given) and the
    /// control port. On shutdown every proxied connection is closed.
    pub async fn serve(self, archive: Option<Archive>, shutdown: CancellationToken) {
        let stop = shutdown.child_token();
        if let Some(archive) = archive {
            tokio::spawn(proxy_watch::watch(
                archive,
                self.routes.clone(),
                self.options.poll_interval,
                stop.clone(),
            ));
        }
        if let Some(control) = self.control {
            tokio::spawn(proxy_control::serve(
                control,
                self.routes.clone(),
                stop.clone(),
            ));
        }
        tracing::info!(listen = %self.options.listen, control = ?self.options.control, "proxy: serving");
        loop {
            let (client, peer) = tokio::select! {
                _ = stop.cancelled() => break,
                accepted = self.listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "proxy: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let routes = self.routes.clone();
            let stop = stop.clone();
            let connect_timeout = self.options.connect_timeout;
            tokio::spawn(async move {
                forward(client, peer, &routes, connect_timeout, stop).await;
            });
        }
        stop.cancel();
        tracing::info!("proxy: stopped");
    }
}

/// Connects `client` to the current primary and copies both ways until
/// either side closes, the route changes, or shutdown.
async fn forward(
    mut client: TcpStream,
    peer: SocketAddr,
    routes: &RouteTable,
    connect_timeout: Duration,
    stop: CancellationToken,
) {
    let _ = client.set_nodelay(true);
    // A route can change while we connect; then connect again, a few times.
    for _ in 0..3 {
        let route = routes.current();
        let Some(upstream) = route.upstream.clone() else {
            tracing::warn!(%peer, epoch = route.epoch, "proxy: no primary known for this epoch; closing client");
            return;
        };
        let connected = tokio::time::timeout(
            connect_timeout,
            TcpStream::connect((upstream.host.as_str(), upstream.port)),
        )
        .await;
        let mut server = match connected {
            Ok(Ok(server)) => server,
            Ok(Err(e)) => {
                tracing::warn!(%peer, %upstream, error = %e, "proxy: cannot reach the primary; closing client");
                return;
            }
            Err(_) => {
                tracing::warn!(%peer, %upstream, "proxy: connecting to the primary timed out; closing client");
                return;
            }
        };
        if route.generation.is_cancelled() {
            continue;
        }
        let _ = server.set_nodelay(true);
        tracing::debug!(%peer, %upstream, epoch = route.epoch, "proxy: connection opened");
        tokio::select! {
            result = tokio::io::copy_bidirectional(&mut client, &mut server) => match result {
                Ok((up, down)) => tracing::debug!(%peer, %upstream, up, down, "proxy: connection closed"),
                Err(e) => tracing::debug!(%peer, %upstream, error = %e, "proxy: connection ended"),
            },
            _ = route.generation.cancelled() => {
                tracing::debug!(%peer, %upstream, "proxy: closing connection to the old primary");
            }
            _ = stop.cancelled() => {}
        }
        return;
    }
    tracing::warn!(%peer, "proxy: the primary kept changing while connecting; closing client");
}
