//! The application under test: a client committing ledger rows with
//! increasing ids, one at a time, recording each commit the server
//! acknowledged and when. After a promote the ledger is compared with the
//! new primary, and the reported RPO must cover every acknowledged commit
//! that is missing (invariant 5). How a row is written is the engine's
//! (`LedgerWriter`); the bookkeeping is here, once.

use chrono::{DateTime, Utc};
use std::collections::BTreeSet;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Acknowledged ledger ids and when the client saw each acknowledgement.
pub type Acked = Vec<(i64, DateTime<Utc>)>;

/// How the ledger client reaches one engine. Both run on the client's own
/// single-threaded runtime.
pub trait LedgerWriter: Send + 'static {
    type Session;

    /// A new session, or None when the server cannot be reached yet.
    fn connect(&self) -> impl Future<Output = Option<Self::Session>>;

    /// Commits row `id`; true once the server acknowledged it, false when
    /// the session is unusable (the client reconnects).
    fn insert(&self, session: &mut Self::Session, id: i64) -> impl Future<Output = bool>;
}

/// The client: it reconnects after errors (a killed session, a crashed
/// server, a proxy switching) until finished.
pub struct Ledger {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Acked>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Ledger {
    pub fn start(writer: impl LedgerWriter) -> Ledger {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let (s, a) = (stop.clone(), acked.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut id = 0i64;
                while !s.load(Ordering::Relaxed) {
                    let Some(mut session) = writer.connect().await else {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    };
                    while !s.load(Ordering::Relaxed) {
                        id += 1;
                        if writer.insert(&mut session, id).await {
                            a.lock().unwrap().push((id, Utc::now()));
                        } else {
                            break;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            });
        });
        Ledger {
            stop,
            acked,
            thread: Some(thread),
        }
    }

    pub fn count(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    /// Waits until at least `n` commits were acknowledged in all.
    pub fn wait_for(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.count() < n {
            assert!(
                Instant::now() < deadline,
                "the ledger client committed only {}",
                self.count()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn finish(mut self) -> Acked {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        std::mem::take(&mut *self.acked.lock().unwrap())
    }
}

/// The acknowledged ids missing from `on_new`.
pub fn lost_ids(acked: &Acked, on_new: &BTreeSet<i64>) -> Vec<i64> {
    acked
        .iter()
        .map(|(id, _)| *id)
        .filter(|id| !on_new.contains(id))
        .collect()
}

/// Invariant 5: every acknowledged commit missing from `on_new` was
/// acknowledged within the report's rpo_seconds before promote started.
/// Returns the lost ids.
pub fn assert_lost_within_rpo(
    report: &serde_json::Value,
    acked: &Acked,
    on_new: &BTreeSet<i64>,
) -> Vec<i64> {
    let lost: Vec<&(i64, DateTime<Utc>)> = acked
        .iter()
        .filter(|(id, _)| !on_new.contains(id))
        .collect();
    if !lost.is_empty() {
        let started: DateTime<Utc> = report["started_at"].as_str().unwrap().parse().unwrap();
        let seconds = report["rpo_seconds"]
            .as_f64()
            .expect("commits were lost, so rpo_seconds must bound them");
        let window_start = started - chrono::Duration::microseconds((seconds * 1e6) as i64);
        for (id, at) in &lost {
            assert!(
                *at >= window_start,
                "lost commit {id} acknowledged at {at} is older than promote start {started} - rpo {seconds}s"
            );
        }
    }
    lost.into_iter().map(|(id, _)| *id).collect()
}

/// The ledger ids in `rows`, one per line (a client's plain output).
pub fn ids_in(rows: &str) -> BTreeSet<i64> {
    rows.lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.parse().unwrap())
        .collect()
}
