//! Retries around store calls, with a fault-injecting wrapper over the real
//! in-memory store: transient faults are retried, permanent ones surface at
//! once, and a lost acknowledgement of a create is harmless.

mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use instarec::archive::{Archive, ArchiveError, ArchiveSettings, PutOutcome, RetryPolicy};
use object_store::path::Path;
use object_store::{GetOptions, GetResult, ObjectStore, PutOptions, PutPayload, PutResult};
use support::hooked_store::{HookedStore, StoreHooks};

/// What the next calls of one kind should do.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// Fail before reaching the store, as a dropped connection would.
    ConnectionReset,
    /// Fail with a 503 from the server.
    ServiceUnavailable,
    /// Reach the store, then lose the answer (the write happened).
    LostAck,
    /// Access denied: retrying cannot help.
    PermissionDenied,
}

impl Fault {
    fn error(self, path: &Path) -> object_store::Error {
        match self {
            Fault::ConnectionReset | Fault::LostAck => object_store::Error::Generic {
                store: "faulty",
                source: Box::new(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "connection reset by peer",
                )),
            },
            Fault::ServiceUnavailable => object_store::Error::Generic {
                store: "faulty",
                source: "Server returned non-2xx status code: 503 Service Unavailable: SlowDown"
                    .into(),
            },
            Fault::PermissionDenied => object_store::Error::PermissionDenied {
                path: path.to_string(),
                source: "AccessDenied".into(),
            },
        }
    }
}

/// Hooks with scripted faults on put and get, counting attempts.
#[derive(Debug, Default)]
struct Faults {
    put_faults: Mutex<Vec<Fault>>,
    get_faults: Mutex<Vec<Fault>>,
    puts: AtomicU32,
    gets: AtomicU32,
}

/// InMemory with `Faults` around its put and get.
type FaultyStore = HookedStore<Faults>;

impl Faults {
    fn fail_puts(&self, faults: &[Fault]) {
        *self.put_faults.lock().unwrap() = faults.iter().rev().copied().collect();
    }

    fn fail_gets(&self, faults: &[Fault]) {
        *self.get_faults.lock().unwrap() = faults.iter().rev().copied().collect();
    }

    fn reset_counts(&self) {
        self.puts.store(0, Ordering::SeqCst);
        self.gets.store(0, Ordering::SeqCst);
    }
}

#[async_trait]
impl StoreHooks for Faults {
    async fn put(
        &self,
        inner: &dyn ObjectStore,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.puts.fetch_add(1, Ordering::SeqCst);
        let fault = self.put_faults.lock().unwrap().pop();
        match fault {
            None => inner.put_opts(location, payload, opts).await,
            Some(Fault::LostAck) => {
                inner.put_opts(location, payload, opts).await?;
                Err(Fault::LostAck.error(location))
            }
            Some(fault) => Err(fault.error(location)),
        }
    }

    async fn get(
        &self,
        inner: &dyn ObjectStore,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        let fault = self.get_faults.lock().unwrap().pop();
        match fault {
            None => inner.get_opts(location, options).await,
            Some(fault) => Err(fault.error(location)),
        }
    }
}

fn archive_over(store: &Arc<FaultyStore>, max_attempts: u32) -> Archive {
    let mut settings = ArchiveSettings::new("memory://");
    settings.retry = RetryPolicy {
        max_attempts,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
    };
    Archive::from_store(
        Arc::clone(store) as Arc<dyn ObjectStore>,
        "memory://faulty",
        &settings,
    )
}

#[tokio::test]
async fn transient_faults_are_retried_until_the_call_succeeds() {
    let store = FaultyStore::in_memory(Faults::default());
    let archive = archive_over(&store, 5);
    store.hooks.fail_puts(&[
        Fault::ConnectionReset,
        Fault::ServiceUnavailable,
        Fault::ConnectionReset,
    ]);
    let payload = Bytes::from_static(b"segment bytes");
    assert_eq!(
        archive.put("wal/1", payload.clone()).await.unwrap(),
        PutOutcome::Created
    );
    assert_eq!(store.hooks.puts.load(Ordering::SeqCst), 4);

    store
        .hooks
        .fail_gets(&[Fault::ServiceUnavailable, Fault::ConnectionReset]);
    assert_eq!(archive.get("wal/1").await.unwrap(), payload);
    assert_eq!(store.hooks.gets.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn retries_stop_after_max_attempts_and_surface_the_last_error() {
    let store = FaultyStore::in_memory(Faults::default());
    let archive = archive_over(&store, 3);
    store.hooks.fail_puts(&[Fault::ConnectionReset; 10]);
    let err = archive
        .put("wal/1", Bytes::from_static(b"x"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ArchiveError::Store { key, .. } if key == "wal/1"),
        "{err}"
    );
    assert!(err.to_string().contains("connection reset"), "{err}");
    assert_eq!(store.hooks.puts.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn permanent_errors_surface_at_once() {
    let store = FaultyStore::in_memory(Faults::default());
    let archive = archive_over(&store, 5);
    // One scripted fault: a retry would succeed, and show up as a second put.
    store.hooks.fail_puts(&[Fault::PermissionDenied]);
    let err = archive
        .put("wal/1", Bytes::from_static(b"x"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            ArchiveError::Store {
                source: object_store::Error::PermissionDenied { .. },
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(store.hooks.puts.load(Ordering::SeqCst), 1);

    // NotFound is permanent too, and maps to the archive's own NotFound.
    store.hooks.reset_counts();
    assert!(matches!(
        archive.get("wal/absent").await,
        Err(ArchiveError::NotFound { .. })
    ));
    assert_eq!(store.hooks.gets.load(Ordering::SeqCst), 1);

    // So is AlreadyExists: one create attempt, then the content comparison.
    store.hooks.reset_counts();
    archive
        .put("wal/2", Bytes::from_static(b"same"))
        .await
        .unwrap();
    store.hooks.reset_counts();
    assert!(matches!(
        archive.put("wal/2", Bytes::from_static(b"different")).await,
        Err(ArchiveError::Conflict { .. })
    ));
    assert_eq!(store.hooks.puts.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_lost_acknowledgement_of_a_create_is_harmless() {
    let store = FaultyStore::in_memory(Faults::default());
    let archive = archive_over(&store, 5);
    store.hooks.fail_puts(&[Fault::LostAck]);
    let payload = Bytes::from_static(b"segment that did land");
    // The first attempt wrote the object but reported failure; the retry finds
    // it in place with the same checksum.
    assert_eq!(
        archive.put("wal/1", payload.clone()).await.unwrap(),
        PutOutcome::AlreadyIdentical
    );
    assert_eq!(store.hooks.puts.load(Ordering::SeqCst), 2);
    assert_eq!(archive.get("wal/1").await.unwrap(), payload);
}
