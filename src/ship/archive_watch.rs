//! The shipper's periodic archive work, off the shipping loop: the fence
//! check every few seconds (how an idle shipper, or one whose primary died,
//! learns of a promote) and the primary position records promote's RPO
//! report reads. Each is one or more object-store round trips; done inline
//! they would delay every synchronous commit waiting behind them.

use super::position_record::{self, PositionRecord};
use crate::archive::{Archive, ArchiveError, Epoch};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct ArchiveWatch {
    records: watch::Sender<Option<PositionRecord>>,
    fenced: watch::Receiver<Option<(Epoch, Epoch)>>,
    task: JoinHandle<()>,
}

impl ArchiveWatch {
    pub fn start(archive: Archive, epoch: Epoch, fence_check: Duration) -> Self {
        let (records, mut record_rx) = watch::channel::<Option<PositionRecord>>(None);
        let (fenced_tx, fenced) = watch::channel::<Option<(Epoch, Epoch)>>(None);
        let task = tokio::spawn(async move {
            let mut check = tokio::time::interval(fence_check);
            check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut previous: Option<String> = None;
            loop {
                let result = tokio::select! {
                    _ = check.tick() => archive.ensure_current_epoch(epoch).await.map(|_| ()),
                    changed = record_rx.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        let record = record_rx.borrow_and_update().clone();
                        match record {
                            Some(r) => {
                                position_record::write(&archive, epoch, &r, previous.as_deref())
                                    .await
                                    .map(|key| previous = Some(key))
                            }
                            None => Ok(()),
                        }
                    }
                };
                match result {
                    Ok(()) => {}
                    Err(ArchiveError::Fenced { mine, newer }) => {
                        let _ = fenced_tx.send(Some((mine, newer)));
                        return;
                    }
                    // Transient: the next tick or record tries again; uploads
                    // check the fence on their own.
                    Err(e) => {
                        tracing::warn!(error = %e, "periodic archive check or position record failed")
                    }
                }
            }
        });
        ArchiveWatch {
            records,
            fenced,
            task,
        }
    }

    /// Queues a position record; only the newest unwritten one is kept.
    pub fn record(&self, record: PositionRecord) {
        let _ = self.records.send(Some(record));
    }

    /// Resolves once a newer epoch is seen; never otherwise.
    pub async fn fenced(&mut self) -> ArchiveError {
        loop {
            if self.fenced.changed().await.is_err() {
                // The task ended without fencing (the pipeline is stopping).
                std::future::pending::<()>().await;
            }
            if let Some((mine, newer)) = *self.fenced.borrow_and_update() {
                return ArchiveError::Fenced { mine, newer };
            }
        }
    }

    pub fn stop(self) {
        self.task.abort();
    }
}
