//! Uploads that run concurrently but finish in the order they started.
//!
//! The pipeline lets several cuts upload at once (a commit arriving while a
//! cut is in flight does not wait for it to finish before its own upload
//! starts), yet the durable position may only advance over a contiguous
//! prefix of cuts (invariant 1): a later cut that completes first waits
//! here until every earlier one has completed.

use std::collections::VecDeque;
use tokio::sync::oneshot;
use tokio::task::{JoinError, JoinHandle};

/// Upload tasks in the order they were started, each with the bytes it holds.
pub struct InOrder<T> {
    queue: VecDeque<(JoinHandle<T>, u64)>,
    bytes: u64,
}

impl<T> Default for InOrder<T> {
    fn default() -> Self {
        InOrder {
            queue: VecDeque::new(),
            bytes: 0,
        }
    }
}

impl<T> InOrder<T> {
    pub fn push(&mut self, task: JoinHandle<T>, bytes: u64) {
        self.bytes += bytes;
        self.queue.push_back((task, bytes));
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Payload bytes of every upload not yet taken out by `next_done`.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Waits for the oldest upload, however many later ones already
    /// finished. None when nothing is in flight. Cancel-safe: dropped before
    /// it returns, the upload stays first in line.
    pub async fn next_done(&mut self) -> Option<Result<T, JoinError>> {
        let (task, _) = self.queue.front_mut()?;
        let result = task.await;
        let (_, bytes) = self.queue.pop_front().expect("front was just awaited");
        self.bytes -= bytes;
        Some(result)
    }
}

impl<T> Drop for InOrder<T> {
    /// A pipeline that stops on an error must not leave uploads of later
    /// cuts running behind it.
    fn drop(&mut self) {
        for (task, _) in &self.queue {
            task.abort();
        }
    }
}

/// A cut's place in the announcement order: its announcements (e.g. chunk
/// indexes) go out only after every earlier cut's announcements, and so
/// after every earlier cut's objects too. Cuts without announcements pass
/// their turn on at once, keeping the chain unbroken.
pub struct AnnounceTurn {
    previous: Option<oneshot::Receiver<()>>,
    done: oneshot::Sender<()>,
}

/// An earlier cut failed or was abandoned: its announcements never went out.
#[derive(Debug, thiserror::Error)]
#[error(
    "an earlier cut did not finish uploading; its announcements and this cut's are not written"
)]
pub struct EarlierCutFailed;

impl AnnounceTurn {
    /// The turn after `previous` (the receiver a former call handed out, or
    /// None for the first cut), and the receiver for the turn after this one.
    pub fn after(previous: Option<oneshot::Receiver<()>>) -> (AnnounceTurn, oneshot::Receiver<()>) {
        let (done, next) = oneshot::channel();
        (AnnounceTurn { previous, done }, next)
    }

    /// Waits until every earlier cut announced. Cancel-safe.
    pub async fn wait(&mut self) -> Result<(), EarlierCutFailed> {
        if let Some(previous) = self.previous.as_mut() {
            previous.await.map_err(|_| EarlierCutFailed)?;
            self.previous = None;
        }
        Ok(())
    }

    /// This cut announced; the next one may. Dropping the turn instead
    /// (an error) stops every later cut from announcing.
    pub fn pass(self) {
        let _ = self.done.send(());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt as _;

    /// An upload whose completion the test controls.
    fn gated(n: u32) -> (JoinHandle<u32>, oneshot::Sender<()>) {
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = rx.await;
            n
        });
        (task, tx)
    }

    /// Lets spawned tasks run until they block again.
    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn later_uploads_finishing_first_do_not_pass_an_unfinished_one() {
        let mut uploads = InOrder::default();
        let mut gates = Vec::new();
        for n in 1..=3 {
            let (task, gate) = gated(n);
            uploads.push(task, 100 * n as u64);
            gates.push(gate);
        }
        assert_eq!(uploads.bytes(), 600);
        let mut gates = gates.into_iter();
        let (first, second, third) = (
            gates.next().unwrap(),
            gates.next().unwrap(),
            gates.next().unwrap(),
        );
        // Cuts 3 and 2 complete; cut 1 is still uploading.
        third.send(()).unwrap();
        second.send(()).unwrap();
        settle().await;
        assert!(
            uploads.next_done().now_or_never().is_none(),
            "durable position advanced past cut 1, which is not durable"
        );
        assert_eq!(uploads.len(), 3, "a cancelled wait keeps the upload queued");
        first.send(()).unwrap();
        let order: Vec<u32> = [
            uploads.next_done().await,
            uploads.next_done().await,
            uploads.next_done().await,
        ]
        .into_iter()
        .map(|r| r.unwrap().unwrap())
        .collect();
        assert_eq!(order, vec![1, 2, 3]);
        assert_eq!(uploads.bytes(), 0);
        assert!(uploads.next_done().await.is_none());
    }

    #[tokio::test]
    async fn dropping_the_queue_aborts_later_uploads() {
        let mut uploads = InOrder::default();
        let (task, gate) = gated(1);
        uploads.push(task, 1);
        drop(uploads);
        settle().await;
        assert!(gate.is_closed(), "the upload task kept running");
    }

    #[tokio::test]
    async fn announcements_wait_for_every_earlier_cut() {
        let (mut first, rx) = AnnounceTurn::after(None);
        let (mut second, rx) = AnnounceTurn::after(Some(rx));
        let (mut third, _rx) = AnnounceTurn::after(Some(rx));
        first.wait().await.unwrap();
        assert!(third.wait().now_or_never().is_none());
        assert!(second.wait().now_or_never().is_none());
        first.pass();
        second.wait().await.unwrap();
        assert!(third.wait().now_or_never().is_none());
        second.pass();
        third.wait().await.unwrap();
    }

    #[tokio::test]
    async fn a_failed_cut_stops_later_announcements() {
        let (first, rx) = AnnounceTurn::after(None);
        let (mut second, _rx) = AnnounceTurn::after(Some(rx));
        drop(first);
        assert!(second.wait().await.is_err());
    }
}
