//! Prometheus metrics of the shipper, served on `[metrics] listen`.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub struct ShipMetrics {
    pub lag_bytes: Gauge,
    pub lag_seconds: Gauge<f64, AtomicU64>,
    pub uploaded_bytes: Counter,
    pub uploaded_objects: Counter,
    pub upload_seconds: Histogram,
    pub errors: Counter,
    pub upload_stalls: Counter,
    pub durable_position: Gauge,
    registry: Registry,
}

impl ShipMetrics {
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("instarec_ship");
        let lag_bytes = Gauge::default();
        let lag_seconds = Gauge::<f64, AtomicU64>::default();
        let uploaded_bytes = Counter::default();
        let uploaded_objects = Counter::default();
        let upload_seconds = Histogram::new([
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ]);
        let errors = Counter::default();
        let upload_stalls = Counter::default();
        let durable_position = Gauge::default();
        registry.register(
            "archive_lag_bytes",
            "Size of the log not yet durable in the archive: the primary's end of log as last seen minus the durable position",
            lag_bytes.clone(),
        );
        registry.register(
            "archive_lag_seconds",
            "Age of the oldest log not yet durable in the archive, since the shipper received it; 0 when everything received is durable",
            lag_seconds.clone(),
        );
        registry.register(
            "uploaded_bytes",
            "Payload bytes written to the archive",
            uploaded_bytes.clone(),
        );
        registry.register(
            "uploaded_objects",
            "Objects written to the archive",
            uploaded_objects.clone(),
        );
        registry.register(
            "upload_seconds",
            "Latency of one durable upload batch",
            upload_seconds.clone(),
        );
        registry.register(
            "errors",
            "Errors (uploads, connections) seen by the shipper",
            errors.clone(),
        );
        registry.register(
            "upload_stalls",
            "Uploads still not durable after [archive] stall_warning",
            upload_stalls.clone(),
        );
        registry.register(
            "durable_position",
            "Last durable position in the archive (PostgreSQL: LSN as an integer)",
            durable_position.clone(),
        );
        Arc::new(ShipMetrics {
            lag_bytes,
            lag_seconds,
            uploaded_bytes,
            uploaded_objects,
            upload_seconds,
            errors,
            upload_stalls,
            durable_position,
            registry,
        })
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// Serves `GET /metrics` until cancelled. Any path answers the metrics: a
/// scraper never needs anything else from this port.
pub async fn serve(
    listen: SocketAddr,
    metrics: Arc<ShipMetrics>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    tracing::info!(%listen, "serving metrics");
    loop {
        let (mut sock, _) = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            accepted = listener.accept() => accepted?,
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            // The request itself is irrelevant; read what arrived and answer.
            let _ = sock.read(&mut buf).await;
            let body = metrics.render();
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                body.len(),
                body
            );
            let _ = sock.write_all(response.as_bytes()).await;
            let _ = sock.shutdown().await;
        });
    }
}
