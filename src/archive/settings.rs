//! How to reach and write an archive: URL, codec, key, S3 overrides, retries.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::encryption_key::EncryptionKey;

/// The codec applied to payloads before they are (optionally) encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    #[default]
    Zstd,
}

/// Overrides for `s3://` URLs. `None` means "take it from the AWS_* environment
/// variables or object_store's defaults".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S3Settings {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Allow plain-HTTP endpoints (local MinIO/moto servers).
    pub allow_http: bool,
}

/// Bounded exponential backoff with full jitter around each store call
/// (see [`super::retry`] for what counts as transient).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts, including the first; 1 disables retries.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
        }
    }
}

/// Default zstd level: fast enough to keep up with a busy primary on one core.
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

/// Everything [`super::Archive::open`] needs.
#[derive(Debug, Clone)]
pub struct ArchiveSettings {
    pub url: String,
    pub compression: Compression,
    pub zstd_level: i32,
    /// When set, [`super::Archive::put`] encrypts payloads; metadata stays plain.
    pub encryption_key: Option<EncryptionKey>,
    pub s3: S3Settings,
    pub retry: RetryPolicy,
}

impl ArchiveSettings {
    /// Settings for `url` with every other field at its default.
    pub fn new(url: impl Into<String>) -> Self {
        ArchiveSettings {
            url: url.into(),
            compression: Compression::default(),
            zstd_level: DEFAULT_ZSTD_LEVEL,
            encryption_key: None,
            s3: S3Settings::default(),
            retry: RetryPolicy::default(),
        }
    }
}

impl Default for ArchiveSettings {
    fn default() -> Self {
        ArchiveSettings::new("")
    }
}
