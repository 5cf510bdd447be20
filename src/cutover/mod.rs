//! Client cutover: after promote, move clients to the new primary.
//!
//! Each method is one file: the embedded TCP proxy (`instarec proxy`,
//! told through the archive's epochs or its control port), pgbouncer's admin
//! console, haproxy's runtime API, or a user hook. [`run`] applies the
//! configured methods in order and stops at the first failure.

mod error;
pub mod haproxy;
pub mod hook;
pub mod pgbouncer;
mod pgbouncer_databases;
pub mod proxy;
pub mod proxy_control;
mod proxy_route;
mod proxy_watch;

pub use crate::host_port::HostPort;
pub use error::CutoverError;
pub use proxy::{ProxyOptions, ProxyServer};
pub use proxy_route::{Route, RouteTable, RouteUpdate};

use crate::config::CutoverSection;
use std::time::Instant;

/// Where clients must go: the new primary and the epoch it was promoted in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CutoverTarget {
    pub host: String,
    pub port: u16,
    pub epoch: u64,
}

impl CutoverTarget {
    pub fn address(&self) -> HostPort {
        HostPort::new(self.host.clone(), self.port)
    }
}

/// One applied method, for promote's report.
#[derive(Debug, Clone, PartialEq)]
pub struct CutoverStep {
    pub method: String,
    pub seconds: f64,
    /// One line on what was done, e.g. "proxy 127.0.0.1:6433 acknowledged epoch 2".
    pub detail: String,
}

/// The method names `[cutover] method` accepts.
pub const METHODS: &[&str] = &["proxy", "pgbouncer", "haproxy", "hook"];

/// Applies each configured method in order; stops at the first failure with
/// an error naming the method and what to do.
pub async fn run(
    config: &CutoverSection,
    target: &CutoverTarget,
) -> anyhow::Result<Vec<CutoverStep>> {
    let methods = checked_methods(config)?;
    let mut steps = Vec::with_capacity(methods.len());
    for method in methods {
        let started = Instant::now();
        let span = tracing::info_span!("cutover", method = %method, epoch = target.epoch);
        let _enter = span.enter();
        let detail = apply(config, &method, target).await?;
        let seconds = started.elapsed().as_secs_f64();
        tracing::info!(seconds, "{detail}");
        steps.push(CutoverStep {
            method,
            seconds,
            detail,
        });
    }
    Ok(steps)
}

/// Planned switchover: stops new traffic before the old primary is fenced
/// (pgbouncer PAUSE). No-op for methods without a pause; [`run`] resumes.
pub async fn pause(config: &CutoverSection) -> anyhow::Result<()> {
    for method in checked_methods(config)? {
        if method == "pgbouncer" {
            pgbouncer::pause(pgbouncer_section(config)?).await?;
        }
    }
    Ok(())
}

/// Undoes [`pause`] without moving anything: for a switchover that is
/// abandoned after pausing, so clients go back to the old primary.
pub async fn resume(config: &CutoverSection) -> anyhow::Result<()> {
    for method in checked_methods(config)? {
        if method == "pgbouncer" {
            pgbouncer::resume(pgbouncer_section(config)?).await?;
        }
    }
    Ok(())
}

async fn apply(
    config: &CutoverSection,
    method: &str,
    target: &CutoverTarget,
) -> Result<String, CutoverError> {
    match method {
        "proxy" => match config.proxy_control {
            Some(control) => {
                proxy_control::notify(control, &target.address(), target.epoch).await?;
                Ok(format!(
                    "proxy control {control} acknowledged epoch {} → {}",
                    target.epoch,
                    target.address()
                ))
            }
            // Promote wrote epochs/<n> before cutting over; every proxy polls it.
            None => Ok(format!(
                "no [cutover] proxy_control: proxies follow epoch {} → {} from the archive within a second",
                target.epoch,
                target.address()
            )),
        },
        "pgbouncer" => pgbouncer::cut_over(pgbouncer_section(config)?, target).await,
        "haproxy" => {
            let section = config.haproxy.as_ref().ok_or(CutoverError::MissingSection {
                method: "haproxy",
                keys: "runtime_api, backend, server",
            })?;
            haproxy::cut_over(section, target).await
        }
        "hook" => {
            let section = config.hook.as_ref().ok_or(CutoverError::MissingSection {
                method: "hook",
                keys: "command",
            })?;
            hook::cut_over(section, target).await
        }
        other => Err(CutoverError::UnknownMethod(other.to_string())),
    }
}

/// The configured methods, rejecting unknown names and missing sections
/// before anything is touched.
fn checked_methods(config: &CutoverSection) -> Result<Vec<String>, CutoverError> {
    let methods = config.method.list();
    for method in &methods {
        match method.as_str() {
            "proxy" | "hook" | "haproxy" | "pgbouncer" => {}
            other => return Err(CutoverError::UnknownMethod(other.to_string())),
        }
        let missing = match method.as_str() {
            "pgbouncer" if config.pgbouncer.is_none() => {
                Some(("pgbouncer", "admin_url, database, databases_file"))
            }
            "haproxy" if config.haproxy.is_none() => {
                Some(("haproxy", "runtime_api, backend, server"))
            }
            "hook" if config.hook.is_none() => Some(("hook", "command")),
            _ => None,
        };
        if let Some((method, keys)) = missing {
            return Err(CutoverError::MissingSection { method, keys });
        }
    }
    Ok(methods)
}

fn pgbouncer_section(
    config: &CutoverSection,
) -> Result<&crate::config::PgbouncerSection, CutoverError> {
    config
        .pgbouncer
        .as_ref()
        .ok_or(CutoverError::MissingSection {
            method: "pgbouncer",
            keys: "admin_url, database, databases_file",
        })
}
