//! `instarec promote`: fence the old primary, claim the next epoch, drain
//! and promote the standby, cut clients over, and report the RPO and RTO
//! achieved. The sequence lives once in [`sequence`]; each engine plugs in
//! through [`crate::engine::ServerControl`].

pub mod drain;
pub mod error;
pub mod new_primary_sync;
pub mod report;
pub mod rpo;
pub mod sequence;
pub mod steps;

pub use error::PromoteError;
pub use report::PromoteReport;
pub use rpo::Mode;
pub use sequence::{Plan, PromoteOptions};

use crate::archive::Archive;
use crate::config::PrimarySection;
use crate::config::{Config, ConfigError};
use crate::engine::Engine;
use crate::engines::mysql::MysqlControl;
use crate::engines::mysql::MysqlSourceOptions;
use crate::engines::postgres::PgControl;
use anyhow::Context as _;
use instarec_postgres::ConnConfig;

/// Promotes [standby] per `config`; the report says what it achieved.
pub async fn promote(config: &Config, options: &PromoteOptions) -> anyhow::Result<PromoteReport> {
    let standby_url = config.standby.as_ref().and_then(|s| s.url.as_ref()).ok_or(
        ConfigError::MissingSection {
            section: "standby",
            origin: "the configuration (promote needs [standby] url)".into(),
        },
    )?;
    let archive = Archive::open(&config.archive.settings()?)?;
    let plan = Plan {
        archive: &archive,
        promote: &config.promote,
        cutover: config.cutover.as_ref(),
        synchronous: config.primary.as_ref().is_some_and(|p| p.synchronous),
        failover_settle: config.failover_settle(),
    };
    // The archive's cluster record says which engine; [primary] engine
    // only where the archive has none yet (the check step then refuses).
    let engine = match archive.read_cluster().await? {
        Some(record) => record.engine,
        None => config
            .primary
            .as_ref()
            .map(|p| p.engine)
            .unwrap_or(Engine::Postgres),
    };
    match engine {
        Engine::Postgres => {
            let standby = ConnConfig::from_url(standby_url.expose())
                .with_context(|| format!("[standby] url {standby_url}"))?;
            let primary = config
                .primary
                .as_ref()
                .map(PrimarySection::postgres_conn)
                .transpose()?;
            let control = PgControl::new(primary, standby, config.shipper_application_name());
            sequence::run(&control, plan, options).await
        }
        Engine::Mysql => {
            let standby = mysql_async::Opts::from_url(standby_url.expose()).with_context(|| {
                format!("[standby] url {standby_url} is not a mysql:// URL; write it as mysql://user:password@host:port/")
            })?;
            let primary = match config.primary.as_ref() {
                Some(p) => {
                    let url = MysqlSourceOptions::from_primary(p)?.url;
                    Some(mysql_async::Opts::from_url(&url).with_context(|| {
                        format!("[primary] url {} is not a mysql:// URL", p.url)
                    })?)
                }
                None => None,
            };
            let cluster_id = config.primary.as_ref().and_then(|p| p.cluster_id.clone());
            // The relay feeds the replica.
            let control =
                MysqlControl::new(primary, standby, cluster_id, config.relay_poll_interval());
            sequence::run(&control, plan, options).await
        }
    }
}
