//! A client committing in the background until stopped, counting the
//! statements that succeeded (the next one's number is that count).

use super::MariaDb;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Writer {
    stop: Arc<AtomicBool>,
    rows: Arc<AtomicU32>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    /// Runs `sql(i)` over and over, `i` being the number of successes so far.
    pub fn start(db: &Arc<MariaDb>, sql: impl Fn(u32) -> String + Send + 'static) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let rows = Arc::new(AtomicU32::new(0));
        let (db, s, r) = (db.clone(), stop.clone(), rows.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                let i = r.load(Ordering::SeqCst);
                if db.try_query(&sql(i)).is_ok() {
                    r.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        Writer {
            stop,
            rows,
            thread: Some(thread),
        }
    }

    pub fn wait_rows(&self, n: u32) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.rows.load(Ordering::SeqCst) < n {
            assert!(Instant::now() < deadline, "writer stuck");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// How many statements succeeded so far.
    pub fn rows(&self) -> u32 {
        self.rows.load(Ordering::SeqCst)
    }

    /// Stops and returns how many statements succeeded.
    pub fn stop(mut self) -> u32 {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().expect("writer thread");
        }
        self.rows.load(Ordering::SeqCst)
    }
}
