//! `Archive`: a cheap, cloneable handle on one archive location.

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{GetOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use super::cluster::ClusterTag;
use super::encryption_key::EncryptionKey;
use super::error::ArchiveError;
use super::location::{open_location, redact, Create};
use super::object::{self, Codec, ObjectHeader, Sealed, Sealing, Unsealing, HEADER_LEN};
use super::retry::with_retries;
use super::settings::{ArchiveSettings, Compression, RetryPolicy};

/// Payloads up to this size are sealed on the calling task: compressing and
/// hashing a few KiB (a synchronous shipper's part per commit group) takes
/// less than handing it to a blocking thread and back.
const INLINE_SEAL_MAX: usize = 64 * 1024;

/// Result of a successful put.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    Created,
    /// The object already held exactly this payload (an idempotent retry).
    AlreadyIdentical,
}

/// One object in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectEntry {
    /// Relative to the archive root, e.g. "wal/000000010000000000000001".
    pub key: String,
    /// Stored size, header included.
    pub size: u64,
    pub last_modified: DateTime<Utc>,
}

/// Result of a raw create, before any content comparison.
pub(crate) enum CreateOutcome {
    Created,
    Exists,
}

struct Shared {
    store: Arc<dyn ObjectStore>,
    url: String,
    codec: Codec,
    zstd_level: i32,
    key: Option<Arc<EncryptionKey>>,
    retry: RetryPolicy,
}

/// A handle on one archive. Clones share the store; [`Archive::bind_cluster`]
/// gives a handle whose writes are stamped with, and whose reads must carry,
/// one cluster's tag.
#[derive(Clone)]
pub struct Archive {
    shared: Arc<Shared>,
    cluster: Option<ClusterTag>,
}

impl std::fmt::Debug for Archive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Archive")
            .field("url", &self.shared.url)
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

impl Archive {
    /// Parses the URL and builds the store. No network I/O.
    pub fn open(settings: &ArchiveSettings) -> Result<Archive, ArchiveError> {
        let location = open_location(&settings.url, &settings.s3, Create::Yes)?;
        Ok(Self::build(location.store, location.display_url, settings))
    }

    /// [`Archive::open`] for readers: a `file://` archive that does not
    /// exist is [`ArchiveError::Missing`], never created.
    pub fn open_existing(settings: &ArchiveSettings) -> Result<Archive, ArchiveError> {
        let location = open_location(&settings.url, &settings.s3, Create::No)?;
        Ok(Self::build(location.store, location.display_url, settings))
    }

    /// An archive over an existing store (tests use this to inject faults).
    pub fn from_store(
        store: Arc<dyn ObjectStore>,
        display_url: &str,
        settings: &ArchiveSettings,
    ) -> Archive {
        Self::build(store, redact(display_url), settings)
    }

    fn build(store: Arc<dyn ObjectStore>, url: String, settings: &ArchiveSettings) -> Archive {
        Archive {
            shared: Arc::new(Shared {
                store,
                url,
                codec: match settings.compression {
                    Compression::None => Codec::None,
                    Compression::Zstd => Codec::Zstd,
                },
                zstd_level: settings.zstd_level,
                key: settings.encryption_key.clone().map(Arc::new),
                retry: settings.retry,
            }),
            cluster: None,
        }
    }

    /// The URL for display; never contains credentials.
    pub fn url(&self) -> &str {
        &self.shared.url
    }

    /// The cluster this handle is bound to, if any.
    pub fn cluster_tag(&self) -> Option<ClusterTag> {
        self.cluster
    }

    /// A handle whose puts stamp `tag` and whose gets require it.
    pub fn bind_cluster(&self, tag: ClusterTag) -> Archive {
        Archive {
            shared: Arc::clone(&self.shared),
            cluster: Some(tag),
        }
    }

    pub(crate) fn unbound(&self) -> Archive {
        Archive {
            shared: Arc::clone(&self.shared),
            cluster: None,
        }
    }

    pub(crate) fn retry_policy(&self) -> &RetryPolicy {
        &self.shared.retry
    }

    pub(crate) fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.shared.store
    }

    /// The underlying store, rooted at the archive's prefix. Writing through it
    /// bypasses every archive guarantee: for tests (fault injection, throttling)
    /// and low-level tooling only.
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.shared.store)
    }

    pub(crate) fn path(key: &str) -> Result<Path, ArchiveError> {
        let bad = |reason: &str| ArchiveError::BadKey {
            key: key.to_string(),
            reason: reason.to_string(),
        };
        if key.is_empty() || key.starts_with('/') || key.ends_with('/') {
            return Err(bad(
                "must be a non-empty relative path without a trailing '/'",
            ));
        }
        let path = Path::parse(key).map_err(|e| bad(&e.to_string()))?;
        if path.as_ref() != key {
            return Err(bad("not in canonical form"));
        }
        Ok(path)
    }

    /// Stores `payload` under `key`, compressed and encrypted per the settings.
    pub async fn put(&self, key: &str, payload: Bytes) -> Result<PutOutcome, ArchiveError> {
        self.put_sealed(key, payload, true).await
    }

    /// Stores `payload` under `key` without encryption (cluster, epochs and
    /// positions stay readable without the key); compressed per the settings.
    pub async fn put_metadata(
        &self,
        key: &str,
        payload: Bytes,
    ) -> Result<PutOutcome, ArchiveError> {
        self.put_sealed(key, payload, false).await
    }

    async fn put_sealed(
        &self,
        key: &str,
        payload: Bytes,
        encrypt: bool,
    ) -> Result<PutOutcome, ArchiveError> {
        let key_for_encrypt = if encrypt {
            self.shared.key.clone()
        } else {
            None
        };
        let sealed = self.seal(key, payload, key_for_encrypt.clone()).await?;
        let header = sealed.header.clone();
        match self.create(key, sealed.object).await? {
            CreateOutcome::Created => Ok(PutOutcome::Created),
            CreateOutcome::Exists => {
                self.compare_existing(key, &header, key_for_encrypt.as_deref())
                    .await
            }
        }
    }

    /// Creates a plain (never encrypted) object, reporting AlreadyExists as
    /// [`CreateOutcome::Exists`] without comparing contents (epochs need this).
    pub(crate) async fn create_metadata(
        &self,
        key: &str,
        payload: Bytes,
    ) -> Result<CreateOutcome, ArchiveError> {
        let sealed = self.seal(key, payload, None).await?;
        self.create(key, sealed.object).await
    }

    async fn seal(
        &self,
        key: &str,
        payload: Bytes,
        encryption: Option<Arc<EncryptionKey>>,
    ) -> Result<Sealed, ArchiveError> {
        let payload_len = payload.len();
        let codec = self.shared.codec;
        let zstd_level = self.shared.zstd_level;
        let cluster_tag = self.cluster;
        let task_error = |reason: String| ArchiveError::Task {
            key: key.to_string(),
            reason,
        };
        let seal = move || {
            object::seal(
                payload,
                &Sealing {
                    codec,
                    zstd_level,
                    key: encryption.as_deref(),
                    cluster_tag,
                },
            )
        };
        if payload_len <= INLINE_SEAL_MAX {
            return seal().map_err(task_error);
        }
        let task = tokio::task::spawn_blocking(seal);
        task.await
            .map_err(|e| task_error(e.to_string()))?
            .map_err(task_error)
    }

    async fn create(&self, key: &str, object: PutPayload) -> Result<CreateOutcome, ArchiveError> {
        let path = Self::path(key)?;
        let store = self.store();
        let result = with_retries(self.retry_policy(), "put", key, || {
            let options = PutOptions::from(PutMode::Create);
            store.put_opts(&path, object.clone(), options)
        })
        .await;
        match result {
            Ok(_) => Ok(CreateOutcome::Created),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(CreateOutcome::Exists),
            Err(e) => Err(ArchiveError::from_store(key, e)),
        }
    }

    /// An object already sits at `key`: identical payload → AlreadyIdentical,
    /// anything else → Conflict naming both checksums. Never overwrites.
    async fn compare_existing(
        &self,
        key: &str,
        new: &ObjectHeader,
        encryption: Option<&EncryptionKey>,
    ) -> Result<PutOutcome, ArchiveError> {
        let existing = self.read_header(key).await?;
        if existing.cluster_tag != new.cluster_tag {
            return Err(ArchiveError::ForeignObject {
                key: key.to_string(),
                found: ClusterTag(existing.cluster_tag),
                expected: ClusterTag(new.cluster_tag),
            });
        }
        // Same checksum domain (both plain, or both keyed with the same key):
        // the headers alone decide.
        let existing_checksum = if existing.cipher == new.cipher && existing.key_id == new.key_id {
            existing.checksum
        } else {
            // Written with another cipher or key: read it and checksum its payload
            // the way the new object did.
            let payload = self.get(key).await?;
            object::payload_checksum(&payload, encryption)
        };
        if existing_checksum == new.checksum && existing.payload_len == new.payload_len {
            tracing::debug!(key, "object already present with identical content");
            Ok(PutOutcome::AlreadyIdentical)
        } else {
            Err(ArchiveError::Conflict {
                key: key.to_string(),
                existing: hex::encode(existing_checksum),
                new: new.checksum_hex(),
            })
        }
    }

    /// Fetches and parses just the header of `key` (the whole object if a
    /// ranged read fails, e.g. because it is shorter than a header).
    pub(crate) async fn read_header(&self, key: &str) -> Result<ObjectHeader, ArchiveError> {
        let path = Self::path(key)?;
        let store = self.store();
        let ranged = store.get_range(&path, 0..HEADER_LEN as u64).await;
        let head = match ranged {
            Ok(head) => head,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(ArchiveError::NotFound {
                    key: key.to_string(),
                })
            }
            Err(_) => with_retries(self.retry_policy(), "get", key, || async {
                store
                    .get_opts(&path, GetOptions::default())
                    .await?
                    .bytes()
                    .await
            })
            .await
            .map_err(|e| ArchiveError::from_store(key, e))?,
        };
        ObjectHeader::parse(&head).map_err(|e| object::header_fault(key, head.len(), e))
    }

    /// The verified payload of `key`; [`ArchiveError::NotFound`] when absent.
    pub async fn get(&self, key: &str) -> Result<Bytes, ArchiveError> {
        self.get_verified(key).await.map(|(_, payload, _)| payload)
    }

    /// Like [`Archive::get`], but `None` when the object is absent.
    pub async fn get_opt(&self, key: &str) -> Result<Option<Bytes>, ArchiveError> {
        match self.get(key).await {
            Ok(payload) => Ok(Some(payload)),
            Err(ArchiveError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Downloads and fully verifies `key`: header, stored size, cipher,
    /// payload. Returns header, payload and stored size.
    pub(crate) async fn get_verified(
        &self,
        key: &str,
    ) -> Result<(ObjectHeader, Bytes, u64), ArchiveError> {
        let path = Self::path(key)?;
        let store = self.store();
        let stored = with_retries(self.retry_policy(), "get", key, || async {
            store
                .get_opts(&path, GetOptions::default())
                .await?
                .bytes()
                .await
        })
        .await
        .map_err(|e| ArchiveError::from_store(key, e))?;
        let stored_len = stored.len() as u64;
        let owned_key = key.to_string();
        let encryption = self.shared.key.clone();
        let expected_tag = self.cluster;
        let task = tokio::task::spawn_blocking(move || {
            object::unseal(
                &owned_key,
                stored,
                &Unsealing {
                    key: encryption.as_deref(),
                    expected_tag,
                },
            )
        });
        let (header, payload) = task.await.map_err(|e| ArchiveError::Task {
            key: key.to_string(),
            reason: e.to_string(),
        })??;
        Ok((header, payload, stored_len))
    }

    /// Whether `key` exists (one HEAD request).
    pub async fn exists(&self, key: &str) -> Result<bool, ArchiveError> {
        let path = Self::path(key)?;
        let store = self.store();
        match with_retries(self.retry_policy(), "head", key, || store.head(&path)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(ArchiveError::from_store(key, e)),
        }
    }

    /// Every object whose key starts with `prefix` (plain string prefix, e.g.
    /// "wal/00000001"), sorted by key.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectEntry>, ArchiveError> {
        // object_store lists whole path segments: list the enclosing folder,
        // then filter on the full string prefix.
        let folder = match prefix.rfind('/') {
            Some(at) => Some(Self::path(&prefix[..at])?),
            None => None,
        };
        let store = self.store();
        let metas = with_retries(self.retry_policy(), "list", prefix, || {
            store.list(folder.as_ref()).try_collect::<Vec<_>>()
        })
        .await
        .map_err(|e| ArchiveError::from_store(prefix, e))?;
        let mut entries: Vec<ObjectEntry> = metas
            .into_iter()
            .map(|meta| ObjectEntry {
                key: meta.location.to_string(),
                size: meta.size,
                last_modified: meta.last_modified,
            })
            .filter(|entry| entry.key.starts_with(prefix))
            .collect();
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(entries)
    }

    /// Deletes `key`; absent is fine. Only for superseded objects (e.g. a
    /// partial WAL file replaced by the complete segment).
    pub async fn delete(&self, key: &str) -> Result<(), ArchiveError> {
        let path = Self::path(key)?;
        let store = self.store();
        match with_retries(self.retry_policy(), "delete", key, || store.delete(&path)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(ArchiveError::from_store(key, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_must_be_canonical_relative_paths() {
        assert!(Archive::path("wal/000000010000000000000001").is_ok());
        for bad in ["", "/abs", "dir/", "a//b", "a/../b", "."] {
            assert!(
                matches!(Archive::path(bad), Err(ArchiveError::BadKey { .. })),
                "{bad:?} accepted"
            );
        }
    }
}
