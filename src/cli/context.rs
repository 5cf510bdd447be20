//! What every command gets: the config sources and a way to open the archive.

use super::Cli;
use crate::archive::{Archive, ClusterRecord};
use crate::config::{Config, ConfigSources};
use anyhow::Context as _;

pub struct Context {
    pub sources: ConfigSources,
}

impl Context {
    pub fn new(cli: &Cli) -> Self {
        let mut flags = Vec::new();
        if let Some(url) = &cli.archive_url {
            flags.push(("archive.url".to_string(), toml::Value::String(url.clone())));
        }
        if let Some(url) = &cli.primary_url {
            flags.push(("primary.url".to_string(), toml::Value::String(url.clone())));
        }
        Context {
            sources: ConfigSources::from_process(cli.config.clone(), flags),
        }
    }

    pub fn config(&self) -> anyhow::Result<Config> {
        Ok(self.sources.resolve()?)
    }

    pub fn open_archive(&self, config: &Config) -> anyhow::Result<Archive> {
        let settings = config.archive.settings()?;
        Archive::open(&settings).with_context(|| format!("opening archive {}", config.archive.url))
    }

    /// [`Context::open_existing_archive`] without reading the cluster record,
    /// for a command that checks it itself within a deadline.
    pub fn open_existing_archive_unchecked(&self, config: &Config) -> anyhow::Result<Archive> {
        let settings = config.archive.settings()?;
        Ok(Archive::open_existing(&settings)?)
    }

    /// The archive for a command that reads it: it must exist and hold a
    /// cluster record (a mistyped URL is an error, and nothing is created).
    /// Bound to that cluster, so every object read is checked to be its.
    pub async fn open_existing_archive(
        &self,
        config: &Config,
    ) -> anyhow::Result<(Archive, ClusterRecord)> {
        let settings = config.archive.settings()?;
        Ok(Archive::open_existing(&settings)?.bound().await?)
    }
}
