//! The typed configuration. Defaults live here, next to their keys, and
//! nowhere else; README's config reference mirrors this file.

use super::secret::{Secret, SecretUrl};
use super::units::{ByteSize, HumanDuration};
use crate::archive::Compression;
use crate::engine::Engine;
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
    #[serde(default)]
    pub promote: PromoteSection,
    pub metrics: Option<MetricsSection>,
    pub relay: Option<RelaySection>,
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
    /// An upload not durable after this is logged as a WARN naming the key
    /// and counted in instarec_ship_upload_stalls_total; default "5s".
    pub stall_warning: HumanDuration,
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
            stall_warning: HumanDuration(Duration::from_secs(5)),
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
    /// MySQL/MariaDB: the replica server_id the shipper registers with;
    /// unique among the primary's replicas. Default: 4_200_000_000 plus the
    /// CRC32C of the host name modulo 1_000_000 (stable per host, see
    /// `PrimarySection::replica_server_id`).
    pub server_id: Option<u32>,
    /// MySQL/MariaDB: names the replication topology the archive belongs
    /// to, so a promoted replica continues the same archive and another
    /// topology's archive is refused. Default: MariaDB "gtid-domain-<@@gtid_domain_id>",
    /// MySQL "server-uuid-<@@server_uuid>".
    pub cluster_id: Option<String>,
    /// When a promote fences this shipper, reconnect to the new primary the
    /// newest epoch names (same credentials) instead of exiting 4.
    #[serde(default)]
    pub follow_promotions: bool,
}

impl PrimarySection {
    /// The replica server_id for MySQL/MariaDB: `server_id`, else a
    /// per-host default far above the ids people give real servers.
    pub fn replica_server_id(&self) -> u32 {
        self.server_id.unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
            4_200_000_000 + crc32c::crc32c(host.trim().as_bytes()) % 1_000_000
        })
    }
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
    /// One method or a list, applied in order: "proxy" (default),
    /// "pgbouncer", "haproxy", "hook".
    #[serde(default = "defaults::cutover_methods")]
    pub method: CutoverMethods,
    /// Where `instarec proxy` listens, e.g. "127.0.0.1:6432".
    pub listen: Option<SocketAddr>,
    /// The proxy's control port, which promote tells about the new primary
    /// (loopback only); default: none, the proxy then polls the archive.
    pub proxy_control: Option<SocketAddr>,
    pub pgbouncer: Option<PgbouncerSection>,
    pub haproxy: Option<HaproxySection>,
    pub hook: Option<HookSection>,
}

/// `method = "proxy"` or `method = ["pgbouncer", "hook"]`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum CutoverMethods {
    One(String),
    Many(Vec<String>),
}

impl CutoverMethods {
    pub fn list(&self) -> Vec<String> {
        match self {
            CutoverMethods::One(m) => vec![m.clone()],
            CutoverMethods::Many(v) => v.clone(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PgbouncerSection {
    /// Admin console, e.g. "postgres://pgbouncer@127.0.0.1:6432/pgbouncer".
    pub admin_url: SecretUrl,
    /// The [databases] entry to repoint.
    pub database: String,
    /// The pgbouncer.ini include file instarec rewrites with the new
    /// primary, e.g. "/etc/pgbouncer/instarec-databases.ini".
    pub databases_file: PathBuf,
    /// How long PAUSE may wait for in-flight transactions before cutover
    /// falls back to KILL (clients then see errors); default "10s".
    #[serde(default = "defaults::pgbouncer_pause_timeout")]
    pub pause_timeout: HumanDuration,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HaproxySection {
    /// Runtime API: "unix:/run/haproxy/admin.sock" or "127.0.0.1:9999".
    pub runtime_api: String,
    pub backend: String,
    pub server: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HookSection {
    /// Run through `sh -c` with INSTAREC_NEW_PRIMARY_HOST, _PORT and
    /// INSTAREC_EPOCH set; non-zero exit fails the cutover.
    pub command: String,
    /// Default "30s".
    #[serde(default = "defaults::hook_timeout")]
    pub timeout: HumanDuration,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PromoteSection {
    /// How long to try reaching the old primary before failing over
    /// without it; default "5s".
    #[serde(default = "defaults::old_primary_timeout")]
    pub old_primary_timeout: HumanDuration,
    /// How long a planned switchover waits for the archive to catch up
    /// with the old primary's final position; default "30s".
    #[serde(default = "defaults::drain_timeout")]
    pub drain_timeout: HumanDuration,
    /// Failover only (old primary unreachable): before claiming the epoch,
    /// wait until the archive has not grown for this long, so the old
    /// primary's shipper can still upload what it had received. Default:
    /// twice [primary] flush_interval plus 100 ms; "0s" claims at once.
    pub failover_settle: Option<HumanDuration>,
    /// What the new primary does when it inherited zero-loss mode (its
    /// commits wait for a synchronous shipper that has not connected yet).
    #[serde(default)]
    pub synchronous_after_promote: SynchronousAfterPromote,
    /// How long promote waits, after the first write, for a shipper to
    /// stream from the new primary; default "30s".
    #[serde(default = "defaults::shipper_timeout")]
    pub shipper_timeout: HumanDuration,
}

/// [promote] synchronous_after_promote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SynchronousAfterPromote {
    /// The new primary runs asynchronously until a shipper streams from it
    /// (at most shipper_timeout), then promote restores zero-loss mode: the
    /// failover does not wait for the shipper, and the report says how long
    /// commits were not zero-loss.
    #[default]
    WhenShipperStreams,
    /// The inherited setting stays: commits, the first write included, wait
    /// until a shipper streams from the new primary, so the RTO includes the
    /// shipper's start.
    AtOnce,
}

impl Default for PromoteSection {
    fn default() -> Self {
        PromoteSection {
            old_primary_timeout: defaults::old_primary_timeout(),
            drain_timeout: defaults::drain_timeout(),
            failover_settle: None,
            synchronous_after_promote: SynchronousAfterPromote::default(),
            shipper_timeout: defaults::shipper_timeout(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// Serve Prometheus metrics on this address, e.g. "127.0.0.1:9187".
    pub listen: Option<SocketAddr>,
}

/// `instarec relay`: the binlog server MariaDB/MySQL replicas connect to.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RelaySection {
    /// Where replicas connect (their MASTER_HOST:MASTER_PORT), e.g. "0.0.0.0:3307".
    pub listen: SocketAddr,
    /// The replicas' MASTER_USER.
    pub user: String,
    /// The replicas' MASTER_PASSWORD (mysql_native_password).
    pub password: Secret,
    /// How often a caught-up stream looks for new chunks; default "200ms".
    #[serde(default = "RelaySection::default_poll_interval")]
    pub poll_interval: HumanDuration,
}

impl RelaySection {
    pub(super) fn default_poll_interval() -> HumanDuration {
        HumanDuration(Duration::from_millis(200))
    }
}

pub(super) mod defaults {
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
    pub fn cutover_methods() -> CutoverMethods {
        CutoverMethods::One("proxy".into())
    }
    pub fn pgbouncer_pause_timeout() -> HumanDuration {
        HumanDuration(Duration::from_secs(10))
    }
    pub fn hook_timeout() -> HumanDuration {
        HumanDuration(Duration::from_secs(30))
    }
    pub fn old_primary_timeout() -> HumanDuration {
        HumanDuration(Duration::from_secs(5))
    }
    pub fn drain_timeout() -> HumanDuration {
        HumanDuration(Duration::from_secs(30))
    }
    pub fn shipper_timeout() -> HumanDuration {
        HumanDuration(Duration::from_secs(30))
    }
}
