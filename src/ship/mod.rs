//! `instarec ship`: stream the primary's log into the archive, continuously.

pub mod archive_watch;
pub mod epoch_claim;
pub mod follow;
pub mod in_order;
pub mod metrics;
pub mod pipeline;
pub mod position_record;
pub mod start_retry;
pub mod superseded;

use crate::archive::Archive;
use crate::config::{Config, ConfigError, PrimarySection};
use crate::engine::Engine;
use crate::engines::mysql::{MysqlSource, MysqlSourceOptions};
use crate::engines::postgres::{PgSource, PgSourceOptions};
use crate::exit;
use crate::host_port::HostPort;
use pipeline::{PipelineOptions, ShipSummary};
pub use start_retry::StartPolicy;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Ships until `shutdown` fires or an error stops it; waits for a primary
/// that is unreachable at start unless `start` says to fail fast.
pub async fn ship(
    config: &Config,
    shutdown: CancellationToken,
    start: StartPolicy,
) -> anyhow::Result<ShipSummary> {
    let archive = Archive::open(&config.archive.settings()?)?;
    ship_with(config, &archive, shutdown, start).await
}

/// [`ship`] into an archive opened by the caller, waiting for the primary.
pub async fn ship_into(
    config: &Config,
    archive: &Archive,
    shutdown: CancellationToken,
) -> anyhow::Result<ShipSummary> {
    ship_with(config, archive, shutdown, StartPolicy::WaitForPrimary).await
}

async fn ship_with(
    config: &Config,
    archive: &Archive,
    shutdown: CancellationToken,
    start: StartPolicy,
) -> anyhow::Result<ShipSummary> {
    let primary = config.primary.as_ref().ok_or(ConfigError::MissingSection {
        section: "primary",
        origin: "the configuration".into(),
    })?;
    let metrics = metrics::ShipMetrics::new();
    if let Some(listen) = config.metrics.as_ref().and_then(|m| m.listen) {
        let (m, s) = (metrics.clone(), shutdown.clone());
        tokio::spawn(async move {
            if let Err(e) = metrics::serve(listen, m, s).await {
                tracing::error!(%listen, error = %e, "metrics endpoint failed");
            }
        });
    }
    let mut options = PipelineOptions::new(
        primary.flush_interval.0,
        primary.flush_bytes.0,
        primary.synchronous,
    );
    options.stall_warning = config.archive.stall_warning.0;
    let mut redirect: Option<String> = None;
    let mut start_backoff = start_retry::start_backoff();
    loop {
        if primary.follow_promotions {
            // A shipper (re)started after a failover, by hand or by a service
            // manager, ships from the primary the archive's epoch names, not
            // from the dead one its config still names.
            if let Some(addr) = follow::epoch_primary(archive).await {
                let other = (follow::configured_addr(primary).as_deref() != Some(addr.as_str()))
                    .then_some(addr);
                if other.is_some() && other != redirect {
                    tracing::warn!(primary = other.as_deref().unwrap_or_default(), "the archive's current epoch names another primary than [primary] url: shipping from it (follow_promotions)");
                    redirect = other;
                    start_backoff.reset();
                }
            }
        }
        let result = ship_once(
            primary,
            redirect.as_deref(),
            archive,
            options.clone(),
            Arc::clone(&metrics),
            shutdown.clone(),
        )
        .await;
        match result {
            // A running source reconnects by itself: an unreachable primary
            // surfaces here only from the start of a run.
            Err(err)
                if start == StartPolicy::WaitForPrimary
                    && (start_retry::is_unreachable(&err) || follow::is_not_yet_primary(&err))
                    && !shutdown.is_cancelled() =>
            {
                let delay = start_backoff.next_delay();
                tracing::warn!(
                    error = %format!("{err:#}"),
                    attempt = start_backoff.attempt,
                    retry_in_ms = delay.as_millis() as u64,
                    "primary unreachable at start; retrying (ship --fail-fast exits instead)"
                );
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.cancelled() => return Err(err.context("stopped while waiting for the primary")),
                }
            }
            Err(err)
                if primary.follow_promotions
                    && exit::code_for(&err) == exit::FENCED
                    && !shutdown.is_cancelled() =>
            {
                let next = archive.current_epoch().await?.and_then(|r| r.primary);
                match next {
                    Some(addr) if redirect.as_deref() != Some(addr.as_str()) => {
                        tracing::warn!(new_primary = %addr, "fenced by a promote: following the new primary");
                        redirect = Some(addr);
                    }
                    _ => return Err(err),
                }
            }
            other => return other,
        }
    }
}

/// One shipping run against [primary], or against `redirect` (host:port of
/// the primary a newer epoch names) with [primary]'s credentials.
async fn ship_once(
    primary: &PrimarySection,
    redirect: Option<&str>,
    archive: &Archive,
    options: PipelineOptions,
    metrics: Arc<metrics::ShipMetrics>,
    shutdown: CancellationToken,
) -> anyhow::Result<ShipSummary> {
    match primary.engine {
        Engine::Postgres => {
            let mut conn = primary.postgres_conn()?;
            if let Some(to) = redirect.map(HostPort::parse).transpose()? {
                conn.host = to.host;
                conn.port = to.port;
            }
            let opts = PgSourceOptions {
                conn,
                slot: primary.slot.clone(),
            };
            let (mut connected, archive) = PgSource::connect(opts, archive).await?;
            if redirect.is_some() && connected.in_recovery().await? {
                return Err(follow::NotYetPrimary {
                    addr: connected.primary_addr(),
                }
                .into());
            }
            // Invariant 4: the epoch is settled before anything is written.
            let epoch = epoch_claim::epoch_for_primary(&archive, &connected.primary_addr()).await?;
            archive.ensure_current_epoch(epoch).await?;
            let source = connected.start(&archive).await?;
            tracing::info!(%epoch, archive = %archive.url(), synchronous = primary.synchronous, "shipping");
            pipeline::run(source, archive, epoch, options, metrics, shutdown).await
        }
        Engine::Mysql => {
            let mut source_opts = MysqlSourceOptions::from_primary(primary)?;
            if let Some(to) = redirect.map(HostPort::parse).transpose()? {
                let mut url = url::Url::parse(&source_opts.url)?;
                url.set_host(Some(&to.url_host()))?;
                url.set_port(Some(to.port)).map_err(|()| {
                    anyhow::anyhow!("cannot set port {} on the mysql url", to.port)
                })?;
                source_opts.url = url.to_string();
            }
            let (connected, archive) = MysqlSource::connect(source_opts, archive).await?;
            // Invariant 4: the epoch is settled before anything is written.
            let epoch = epoch_claim::epoch_for_primary(&archive, &connected.primary_addr()).await?;
            archive.ensure_current_epoch(epoch).await?;
            let source = connected.start(&archive, epoch).await?;
            tracing::info!(%epoch, archive = %archive.url(), synchronous = primary.synchronous, "shipping binlog");
            pipeline::run(source, archive, epoch, options, metrics, shutdown).await
        }
    }
}
