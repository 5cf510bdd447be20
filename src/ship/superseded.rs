//! Deletes objects that durable cuts made redundant (a segment's parts once
//! the whole segment is durable), off the shipping loop.
//!
//! A synchronous shipper writes a part per commit group, so one completed
//! segment can supersede thousands of parts. Deleting them inline would stall
//! every commit waiting on the primary for that long.

use super::metrics::ShipMetrics;
use crate::archive::Archive;
use futures::StreamExt as _;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Deletes issued at once; a part delete is one request.
const CONCURRENT_DELETES: usize = 16;
/// Batches waiting; a full queue makes the pipeline wait (backpressure).
const QUEUED_BATCHES: usize = 16;

pub struct SupersededDeleter {
    batches: mpsc::Sender<Vec<String>>,
    task: JoinHandle<()>,
}

impl SupersededDeleter {
    pub fn start(archive: Archive, metrics: Arc<ShipMetrics>) -> Self {
        let (batches, mut rx) = mpsc::channel::<Vec<String>>(QUEUED_BATCHES);
        let task = tokio::spawn(async move {
            while let Some(keys) = rx.recv().await {
                futures::stream::iter(keys)
                    .for_each_concurrent(CONCURRENT_DELETES, |key| {
                        let (archive, metrics) = (&archive, &metrics);
                        async move {
                            if let Err(e) = archive.delete(&key).await {
                                // Harmless: a later start cleans superseded partials again.
                                metrics.errors.inc();
                                tracing::warn!(%key, error = %e, "could not delete a superseded object");
                            }
                        }
                    })
                    .await;
            }
        });
        SupersededDeleter { batches, task }
    }

    /// Queues `keys` for deletion. Call only once what superseded them, and
    /// every cut before it, is durable.
    pub async fn delete(&self, keys: Vec<String>) {
        if keys.is_empty() {
            return;
        }
        // The task only ends when the sender is dropped (in `finish`).
        let _ = self.batches.send(keys).await;
    }

    /// Waits until every queued delete was attempted.
    pub async fn finish(self) {
        drop(self.batches);
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "superseded-object deleter stopped");
        }
    }
}
