//! Turns the [archive] section into what `Archive::open` needs.

use super::error::ConfigError;
use super::sections::ArchiveSection;
use crate::archive::{ArchiveSettings, EncryptionKey, RetryPolicy, S3Settings};

impl ArchiveSection {
    pub fn settings(&self) -> Result<ArchiveSettings, ConfigError> {
        if !(1..=22).contains(&self.zstd_level) {
            return Err(ConfigError::Invalid {
                origin: "[archive] zstd_level".into(),
                message: format!("{} is outside 1..=22", self.zstd_level),
            });
        }
        let encryption_key = match (&self.encryption_key_file, &self.encryption_key) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Key(
                    "both encryption_key_file and encryption_key are set; keep one".into(),
                ))
            }
            (Some(path), None) => {
                Some(EncryptionKey::from_file(path).map_err(|e| ConfigError::Key(e.to_string()))?)
            }
            (None, Some(text)) => Some(
                EncryptionKey::from_text(text.expose())
                    .map_err(|e| ConfigError::Key(e.to_string()))?,
            ),
            (None, None) => None,
        };
        Ok(ArchiveSettings {
            url: self.url.clone(),
            compression: self.compression,
            zstd_level: self.zstd_level,
            encryption_key,
            s3: S3Settings {
                endpoint: self.s3.endpoint.clone(),
                region: self.s3.region.clone(),
                access_key_id: self.s3.access_key_id.clone(),
                secret_access_key: self
                    .s3
                    .secret_access_key
                    .as_ref()
                    .map(|s| s.expose().to_string()),
                allow_http: self.s3.allow_http,
            },
            retry: RetryPolicy::default(),
        })
    }
}
