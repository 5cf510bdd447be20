//! The typed configuration. Defaults live here, next to their keys, and
//! nowhere else; README's config reference mirrors this file.

use super::secret::{Secret, SecretUrl};
use super::units::{ByteSize, HumanDuration};
use crate::archive::{Compression, Engine};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub archive: ArchiveSection,
    pub primary: Option<PrimarySection>,
    pub standby: Option<StandbySection>,
    pub cutover: Option<CutoverSection>,
    pub metrics: Option<MetricsSection>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArchiveSection {
    /// file:///path (default), s3://bucket/prefix, gs://..., az://..., memory://
    pub url: String,
    /// "zstd" (default) or "none".
    pub compression: Compression,
    /// zstd level, 1..=22; default 3.
    pub zstd_level: i32,
    /// A file holding the 32-byte key (raw, 64 hex chars or base64).
    pub encryption_key_file: Option<PathBuf>,
    /// The key itself as hex or base64; meant for INSTAREC_ARCHIVE_ENCRYPTION_KEY.
    pub encryption_key: Option<Secret>,
    pub s3: S3Section,
}

impl Default for ArchiveSection {
    fn default() -> Self {
        ArchiveSection {
            url: "file:///var/lib/instarec/archive".into(),
            compression: Compression::Zstd,
            zstd_level: 3,
            encryption_key_file: None,
            encryption_key: None,
            s3: S3Section::default(),
        }
    }
}

/// S3-compatible settings; anything unset falls back to the AWS_* variables.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Section {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Secret>,
    /// Allow plain http endpoints (local S3-compatible servers).
    pub allow_http: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PrimarySection {
    /// "postgres" or "mysql".
    pub engine: Engine,
    /// postgres://user[:password]@host:port/db?sslmode=... or mysql://...
    pub url: SecretUrl,
    /// A file whose first line is the password, instead of one in the URL.
    pub password_file: Option<PathBuf>,
    /// PostgreSQL physical replication slot; default "instarec".
    #[serde(default = "defaults::slot")]
    pub slot: String,
    /// How the shipper names itself to the primary; default "instarec".
    #[serde(default = "defaults::application_name")]
    pub application_name: String,
    /// Zero-loss mode: flush is acknowledged only once durable in the archive.
    #[serde(default)]
    pub synchronous: bool,
    /// Upload the in-progress segment at least this often; default "200ms".
    #[serde(default = "defaults::flush_interval")]
    pub flush_interval: HumanDuration,
    /// ...or as soon as this much new WAL is buffered; default "4MiB".
    #[serde(default = "defaults::flush_bytes")]
    pub flush_bytes: ByteSize,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StandbySection {
    pub url: Option<SecretUrl>,
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CutoverSection {
    /// "proxy" (default); later also pgbouncer, haproxy, hook.
    #[serde(default = "defaults::cutover_method")]
    pub method: String,
    /// Where `instarec proxy` listens, e.g. "127.0.0.1:6432".
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// Serve Prometheus metrics on this address, e.g. "127.0.0.1:9187".
    pub listen: Option<SocketAddr>,
}

mod defaults {
    use super::*;

    pub fn slot() -> String {
        "instarec".into()
    }
    pub fn application_name() -> String {
        "instarec".into()
    }
    pub fn flush_interval() -> HumanDuration {
        HumanDuration(Duration::from_millis(200))
    }
    pub fn flush_bytes() -> ByteSize {
        ByteSize(4 * 1024 * 1024)
    }
    pub fn cutover_method() -> String {
        "proxy".into()
    }
}
