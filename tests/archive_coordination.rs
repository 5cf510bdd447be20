//! Cluster records and fencing epochs on file://, memory:// and s3:// (moto).

mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use instarec::archive::{
    Archive, ArchiveError, ArchiveSettings, ClusterRecord, ClusterTag, EncryptionKey, Epoch,
    EpochClaim, S3Settings, FORMAT_VERSION,
};
use instarec::engine::Engine;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore};
use support::hooked_store::{HookedStore, StoreHooks};

fn file_archive(dir: &std::path::Path) -> Archive {
    Archive::open(&ArchiveSettings::new(format!("file://{}", dir.display()))).unwrap()
}

fn claim(holder: &str) -> EpochClaim {
    EpochClaim {
        holder: holder.to_string(),
        primary: Some("db1:5432".to_string()),
    }
}

#[tokio::test]
async fn open_cluster_creates_the_record_then_accepts_only_the_same_system() {
    let dir = tempfile::tempdir().unwrap();
    let archive = file_archive(dir.path());
    assert!(archive.read_cluster().await.unwrap().is_none());

    let (bound, created) = archive
        .open_cluster(Engine::Postgres, "7263011822158036542")
        .await
        .unwrap();
    assert_eq!(created.engine, Engine::Postgres);
    assert_eq!(created.format_version, FORMAT_VERSION);
    assert_eq!(
        bound.cluster_tag(),
        Some(ClusterTag::of(Engine::Postgres, "7263011822158036542"))
    );
    // The record is plain JSON behind the header, readable by any instarec.
    assert_eq!(archive.read_cluster().await.unwrap(), Some(created.clone()));

    let (_, again) = archive
        .open_cluster(Engine::Postgres, "7263011822158036542")
        .await
        .unwrap();
    assert_eq!(again, created, "re-opening must not rewrite the record");
    // Identical re-init is fine even with a different timestamp.
    let reinit = archive
        .init_cluster(&ClusterRecord::new(Engine::Postgres, "7263011822158036542"))
        .await
        .unwrap();
    assert_eq!(reinit, created);

    let err = archive
        .open_cluster(Engine::Postgres, "7301234567890123456")
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ArchiveError::ClusterMismatch { .. }), "{msg}");
    assert!(
        msg.contains("7263011822158036542") && msg.contains("7301234567890123456"),
        "{msg}"
    );
    assert!(msg.contains(archive.url()), "{msg}");
    assert!(msg.contains("instarec archive init"), "{msg}");

    let err = archive
        .init_cluster(&ClusterRecord::new(Engine::Mysql, "7263011822158036542"))
        .await
        .unwrap_err();
    assert!(matches!(err, ArchiveError::ClusterMismatch { .. }), "{err}");
    // Nothing changed.
    assert_eq!(archive.read_cluster().await.unwrap(), Some(created));
}

#[tokio::test]
async fn a_bound_archive_refuses_objects_stamped_by_another_cluster() {
    let archive = Archive::open(&ArchiveSettings::new("memory://")).unwrap();
    let ours = archive.bind_cluster(ClusterTag::of(Engine::Mysql, "uuid-a"));
    let theirs = archive.bind_cluster(ClusterTag::of(Engine::Mysql, "uuid-b"));
    theirs
        .put("binlog/mysql-bin.000001", Bytes::from_static(b"events"))
        .await
        .unwrap();

    let err = ours.get("binlog/mysql-bin.000001").await.unwrap_err();
    assert!(matches!(err, ArchiveError::ForeignObject { .. }), "{err}");
    assert!(err.to_string().contains("binlog/mysql-bin.000001"));
    let report = ours.verify_all("binlog/").await.unwrap();
    assert_eq!(report.faults.len(), 1);
    // Writing the same key from our cluster is refused, not overwritten.
    let err = ours
        .put("binlog/mysql-bin.000001", Bytes::from_static(b"events"))
        .await
        .unwrap_err();
    assert!(matches!(err, ArchiveError::ForeignObject { .. }), "{err}");
    assert_eq!(
        theirs.get("binlog/mysql-bin.000001").await.unwrap(),
        Bytes::from_static(b"events")
    );
}

#[tokio::test]
async fn cluster_and_epochs_are_readable_without_the_encryption_key() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    let mut with_key = ArchiveSettings::new(&url);
    with_key.encryption_key = Some(EncryptionKey::from_bytes([5; 32]));
    let (bound, _) = Archive::open(&with_key)
        .unwrap()
        .open_cluster(Engine::Postgres, "42")
        .await
        .unwrap();
    bound.claim_epoch(claim("promote@a pid 1")).await.unwrap();

    let (keyless, record) = Archive::open(&ArchiveSettings::new(&url))
        .unwrap()
        .open_cluster(Engine::Postgres, "42")
        .await
        .unwrap();
    assert_eq!(record.system_id, "42");
    let current = keyless.current_epoch().await.unwrap().unwrap();
    assert_eq!(current.epoch, Epoch(1));
    assert_eq!(current.holder, "promote@a pid 1");
}

#[tokio::test]
async fn a_newer_archive_format_is_refused() {
    let archive = Archive::open(&ArchiveSettings::new("memory://")).unwrap();
    let future = format!(
        r#"{{"engine":"postgres","system_id":"42","format_version":{},"created_at":"2030-01-01T00:00:00Z"}}"#,
        FORMAT_VERSION + 1
    );
    archive
        .put_metadata("cluster", Bytes::from(future))
        .await
        .unwrap();
    for err in [
        archive.read_cluster().await.unwrap_err(),
        archive
            .open_cluster(Engine::Postgres, "42")
            .await
            .unwrap_err(),
    ] {
        assert!(matches!(err, ArchiveError::NewerFormat { .. }), "{err}");
        assert!(err.to_string().contains("upgrade instarec"), "{err}");
    }
}

#[tokio::test]
async fn epochs_are_claimed_in_order_and_fence_older_writers() {
    let dir = tempfile::tempdir().unwrap();
    let archive = file_archive(dir.path());
    assert!(archive.current_epoch().await.unwrap().is_none());
    archive.ensure_current_epoch(Epoch(0)).await.unwrap();

    let first = archive.claim_epoch(claim("ship@db1 pid 10")).await.unwrap();
    assert_eq!(first.epoch, Epoch(1));
    archive.ensure_current_epoch(Epoch(1)).await.unwrap();

    for expected in 2..=11 {
        let record = archive
            .claim_epoch(claim("promote@db2 pid 20"))
            .await
            .unwrap();
        assert_eq!(record.epoch, Epoch(expected));
    }
    // 10 sorts after 9 and 11 after 10: zero padding keeps listing numeric.
    let current = archive.current_epoch().await.unwrap().unwrap();
    assert_eq!(current.epoch, Epoch(11));
    assert_eq!(current.primary.as_deref(), Some("db1:5432"));
    assert!(dir.path().join("epochs/00000000000000000011").is_file());

    let err = archive.ensure_current_epoch(Epoch(1)).await.unwrap_err();
    match err {
        ArchiveError::Fenced { mine, newer } => {
            assert_eq!(mine, Epoch(1));
            assert_eq!(newer, Epoch(11));
        }
        other => panic!("expected Fenced, got {other:?}"),
    }
    archive.ensure_current_epoch(Epoch(11)).await.unwrap();
}

/// Hooks making a real store's listings take a snapshot, then wait before
/// answering. Claimers that start together all see "no epoch yet" and all
/// try to create epoch 1: the race is certain instead of likely, and only
/// the store's create-if-absent can settle it.
#[derive(Debug)]
struct SlowListing {
    delay: Duration,
}

fn racing_store(inner: Arc<dyn ObjectStore>) -> Arc<dyn ObjectStore> {
    HookedStore::new(
        inner,
        SlowListing {
            delay: Duration::from_millis(500),
        },
    )
}

impl StoreHooks for SlowListing {
    fn list(
        &self,
        inner: &dyn ObjectStore,
        prefix: Option<&Path>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let listing = inner.list(prefix);
        let delay = self.delay;
        futures::stream::once(async move {
            let snapshot: Vec<_> = listing.collect().await;
            tokio::time::sleep(delay).await;
            futures::stream::iter(snapshot)
        })
        .flatten()
        .boxed()
    }
}

async fn race_claims(archives: Vec<Archive>) {
    let mut tasks = tokio::task::JoinSet::new();
    for (i, archive) in archives.into_iter().enumerate() {
        tasks.spawn(async move { archive.claim_epoch(claim(&format!("claimer {i}"))).await });
    }
    let mut winners = Vec::new();
    let mut losers = 0;
    while let Some(result) = tasks.join_next().await {
        match result.unwrap() {
            Ok(record) => winners.push(record),
            Err(ArchiveError::EpochTaken { epoch }) => {
                assert_eq!(epoch, Epoch(1));
                losers += 1;
            }
            Err(other) => panic!("unexpected claim error: {other}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one claimer may win: {winners:?}");
    assert_eq!(winners[0].epoch, Epoch(1));
    assert_eq!(losers, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_epoch_claims_on_file_have_exactly_one_winner() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    let settings = ArchiveSettings::new(&url);
    // Eight independent handles (separate LocalFileSystem instances) on one dir.
    let archives: Vec<Archive> = (0..8)
        .map(|_| {
            let store = Archive::open(&settings).unwrap().object_store();
            Archive::from_store(racing_store(store), &url, &settings)
        })
        .collect();
    race_claims(archives).await;
    let check = file_archive(dir.path());
    let winner = check.current_epoch().await.unwrap().unwrap();
    assert_eq!(winner.epoch, Epoch(1));
    assert_eq!(check.list("epochs/").await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_epoch_claims_on_memory_have_exactly_one_winner() {
    let settings = ArchiveSettings::new("memory://");
    let shared = racing_store(Archive::open(&settings).unwrap().object_store());
    let archives: Vec<Archive> = (0..8)
        .map(|_| Archive::from_store(Arc::clone(&shared), "memory://", &settings))
        .collect();
    race_claims(archives).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_epoch_claims_on_s3_have_exactly_one_winner() {
    let moto = support::Moto::start();
    let url = format!("s3://{}/race", moto.bucket());
    let mut settings = ArchiveSettings::new(&url);
    settings.s3 = S3Settings {
        endpoint: Some(moto.endpoint()),
        region: Some(moto.region().to_string()),
        access_key_id: Some(moto.access_key_id().to_string()),
        secret_access_key: Some(moto.secret_access_key().to_string()),
        allow_http: true,
    };
    // Eight separate S3 clients, as eight promoting hosts would have.
    let archives: Vec<Archive> = (0..8)
        .map(|_| {
            let store = Archive::open(&settings).unwrap().object_store();
            Archive::from_store(racing_store(store), &url, &settings)
        })
        .collect();
    race_claims(archives).await;
    let archive = Archive::open(&settings).unwrap();
    assert_eq!(archive.list("epochs/").await.unwrap().len(), 1);
    let err = archive.ensure_current_epoch(Epoch(0)).await.unwrap_err();
    assert!(matches!(err, ArchiveError::Fenced { .. }), "{err}");
}
