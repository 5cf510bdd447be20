//! A chunk index is an announcement: the relay, restore and promote find
//! chunks through it. The shipper must write it only once the chunk it
//! names is durable, or a reader can follow an index to a missing chunk
//! (seen as a relay stopping its replica with error 1236).
//!
//! Real MariaDB and the real shipping pipeline; the object store is an
//! in-memory store that makes chunk writes slow and records when each
//! write finished.

mod support;

use async_trait::async_trait;
use instarec::archive::{Archive, ArchiveSettings};
use instarec::config::Config;
use instarec::engines::mysql::index::ChunkIndex;
use instarec::engines::mysql::layout;
use object_store::path::Path;
use object_store::{ObjectStore, PutOptions, PutPayload, PutResult};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::hooked_store::{HookedStore, StoreHooks};
use support::MariaDb;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Hooks making chunk writes take `chunk_delay`, recording when each write
/// became visible.
#[derive(Debug)]
struct SlowChunks {
    chunk_delay: Duration,
    written: Mutex<HashMap<String, Instant>>,
}

#[async_trait]
impl StoreHooks for SlowChunks {
    async fn put(
        &self,
        inner: &dyn ObjectStore,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        if location.as_ref().starts_with(layout::BINLOG_PREFIX) {
            tokio::time::sleep(self.chunk_delay).await;
        }
        let result = inner.put_opts(location, payload, opts).await?;
        self.written
            .lock()
            .unwrap()
            .insert(location.to_string(), Instant::now());
        Ok(result)
    }
}

#[test]
fn every_chunk_is_durable_before_its_index_is_written() {
    let db = MariaDb::start();
    db.query("CREATE DATABASE shop; CREATE TABLE shop.item (id INT PRIMARY KEY, note TEXT)");
    let config = Config::from_toml(&format!(
        "[archive]\nurl = \"memory://\"\n\n[primary]\nengine = \"mysql\"\nurl = \"{}\"\nserver_id = 4200000001\nflush_interval = \"50ms\"\n",
        db.url()
    ))
    .expect("config");
    let store = HookedStore::in_memory(SlowChunks {
        chunk_delay: Duration::from_millis(150),
        written: Mutex::new(HashMap::new()),
    });
    let archive = Archive::from_store(
        Arc::clone(&store) as Arc<dyn ObjectStore>,
        "memory://slow-chunks",
        &ArchiveSettings::new("memory://"),
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let shutdown = CancellationToken::new();
    let shipper = {
        let (archive, shutdown) = (archive.clone(), shutdown.clone());
        runtime.spawn(async move { instarec::ship::ship_into(&config, &archive, shutdown).await })
    };
    // Several cuts, each with chunks and indexes.
    for batch in 0..8 {
        db.query(&format!(
            "INSERT INTO shop.item VALUES ({}, 'a'), ({}, 'b')",
            batch * 2,
            batch * 2 + 1
        ));
        std::thread::sleep(Duration::from_millis(120));
    }
    std::thread::sleep(Duration::from_millis(600));
    shutdown.cancel();
    runtime
        .block_on(shipper)
        .expect("shipper task")
        .expect("shipper stopped cleanly");

    let written = store.hooks.written.lock().unwrap().clone();
    let bound = runtime.block_on(async {
        let record = archive
            .read_cluster()
            .await
            .unwrap()
            .expect("a cluster record");
        archive.bind_cluster(record.tag())
    });
    let indexes: Vec<(&String, &Instant)> = written
        .iter()
        .filter(|(k, _)| k.starts_with(layout::INDEX_PREFIX))
        .collect();
    assert!(
        indexes.len() >= 4,
        "expected several chunk indexes, the archive holds: {:?}",
        written.keys().collect::<Vec<_>>()
    );
    for (key, index_at) in indexes {
        let bytes = runtime.block_on(bound.get(key)).expect("reading the index");
        let index = ChunkIndex::parse(key, &bytes).expect("a chunk index");
        let chunk_at = written
            .get(&index.chunk)
            .unwrap_or_else(|| panic!("index {key} names {}, never written", index.chunk));
        assert!(
            chunk_at <= index_at,
            "index {key} was written before its chunk {}",
            index.chunk
        );
    }
}
