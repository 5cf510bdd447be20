//! Turning an archive URL into an object store rooted at the URL's prefix.

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, RetryConfig};
use url::Url;

use super::error::ArchiveError;
use super::settings::S3Settings;

/// A parsed archive location: the store (already rooted at the prefix) and
/// the URL as it may be shown to people.
pub(crate) struct Location {
    pub store: Arc<dyn ObjectStore>,
    pub display_url: String,
}

/// object_store's own HTTP retries stay short; [`super::retry`] adds the
/// longer, policy-driven backoff around each call.
fn http_retry() -> RetryConfig {
    RetryConfig {
        max_retries: 2,
        retry_timeout: Duration::from_secs(15),
        ..RetryConfig::default()
    }
}

/// Whether opening a `file://` archive may create its directory: writers
/// may, readers never change anything (a mistyped URL is an error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Create {
    Yes,
    No,
}

/// Parses `raw` and builds its store. No network I/O; `file://` creates the
/// directory when `create` says so, else a missing one is an error.
pub(crate) fn open_location(
    raw: &str,
    s3: &S3Settings,
    create: Create,
) -> Result<Location, ArchiveError> {
    let bad = |reason: String| ArchiveError::BadUrl {
        url: redact(raw),
        reason,
    };
    let url = Url::parse(raw).map_err(|e| bad(e.to_string()))?;
    let display_url = redact(raw);
    let store: Arc<dyn ObjectStore> = match url.scheme() {
        "memory" => Arc::new(InMemory::new()),
        "file" => {
            if url
                .host_str()
                .is_some_and(|h| !h.is_empty() && h != "localhost")
            {
                return Err(bad(
                    "file URLs need an absolute path: file:///absolute/path".to_string(),
                ));
            }
            let dir = url
                .to_file_path()
                .map_err(|()| bad("not an absolute local path".to_string()))?;
            if create == Create::No && !dir.is_dir() {
                return Err(ArchiveError::Missing { url: display_url });
            }
            std::fs::create_dir_all(&dir)
                .map_err(|e| bad(format!("cannot create directory {}: {e}", dir.display())))?;
            // fsync: an acknowledged put must survive a crash (invariant 1).
            let fs = LocalFileSystem::new_with_prefix(&dir)
                .map_err(|e| bad(format!("cannot use directory {}: {e}", dir.display())))?
                .with_fsync(true);
            Arc::new(fs)
        }
        "s3" | "gs" | "az" => {
            let bucket = url
                .host_str()
                .filter(|h| !h.is_empty())
                .ok_or_else(|| bad("missing bucket or container name".to_string()))?;
            let root = format!("{}://{}", url.scheme(), bucket);
            let built: Result<Arc<dyn ObjectStore>, object_store::Error> = match url.scheme() {
                "s3" => build_s3(&root, s3),
                "gs" => GoogleCloudStorageBuilder::from_env()
                    .with_url(&root)
                    .with_retry(http_retry())
                    .build()
                    .map(|s| Arc::new(s) as Arc<dyn ObjectStore>),
                _ => MicrosoftAzureBuilder::from_env()
                    .with_url(&root)
                    .with_retry(http_retry())
                    .build()
                    .map(|s| Arc::new(s) as Arc<dyn ObjectStore>),
            };
            let store = built.map_err(|e| bad(e.to_string()))?;
            prefixed(store, url.path(), &bad)?
        }
        other => return Err(bad(format!("unsupported scheme {other:?}"))),
    };
    Ok(Location { store, display_url })
}

fn build_s3(root: &str, s3: &S3Settings) -> Result<Arc<dyn ObjectStore>, object_store::Error> {
    let mut builder = AmazonS3Builder::from_env()
        .with_url(root)
        .with_retry(http_retry());
    if let Some(endpoint) = &s3.endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    if let Some(region) = &s3.region {
        builder = builder.with_region(region);
    }
    if let Some(id) = &s3.access_key_id {
        builder = builder.with_access_key_id(id);
    }
    if let Some(secret) = &s3.secret_access_key {
        builder = builder.with_secret_access_key(secret);
    }
    if s3.allow_http {
        builder = builder.with_allow_http(true);
    }
    Ok(Arc::new(builder.build()?))
}

fn prefixed(
    store: Arc<dyn ObjectStore>,
    url_path: &str,
    bad: &dyn Fn(String) -> ArchiveError,
) -> Result<Arc<dyn ObjectStore>, ArchiveError> {
    let prefix = Path::from_url_path(url_path).map_err(|e| bad(format!("bad prefix: {e}")))?;
    if prefix.as_ref().is_empty() {
        return Ok(store);
    }
    Ok(Arc::new(PrefixStore::new(store, prefix)))
}

/// The URL without user info or query (where credentials could hide): an
/// archive URL needs neither to be recognised, so they are dropped rather
/// than masked.
pub(crate) fn redact(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(mut url) => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.set_query(None);
            url.set_fragment(None);
            url.to_string()
        }
        // Unparseable: show only what precedes any '@' or '?' so secrets never leak.
        Err(_) => raw.split(['@', '?']).next().unwrap_or_default().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_credentials_and_queries() {
        assert_eq!(redact("s3://AKIA:secret@bucket/p?token=x"), "s3://bucket/p");
        assert_eq!(redact("not a url@with secret"), "not a url");
    }

    #[test]
    fn rejects_unknown_schemes_and_relative_files() {
        for url in [
            "ftp://x/y",
            "garbage",
            "file://relative/dir",
            "s3:///nobucket",
        ] {
            let err = open_location(url, &S3Settings::default(), Create::Yes)
                .err()
                .unwrap_or_else(|| panic!("{url} accepted"));
            let msg = err.to_string();
            assert!(matches!(err, ArchiveError::BadUrl { .. }), "{url}: {msg}");
            assert!(msg.contains("s3://bucket/prefix"), "{msg}");
        }
    }

    #[test]
    fn a_reader_never_creates_a_file_archive() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("typo");
        let url = format!("file://{}", missing.display());
        let err = open_location(&url, &S3Settings::default(), Create::No)
            .err()
            .expect("a missing archive is an error");
        assert!(matches!(err, ArchiveError::Missing { .. }), "{err}");
        assert!(err.to_string().contains("instarec archive init"), "{err}");
        assert!(!missing.exists());
    }
}
