//! Download progress: an indicatif bar on a terminal, a tracing line per
//! tenth otherwise (logs and CI stay readable).

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicU64, Ordering};

pub struct Progress {
    what: String,
    bar: Option<ProgressBar>,
    total: u64,
    done: AtomicU64,
    logged_tenths: AtomicU64,
}

impl Progress {
    /// A bar when stderr is a terminal, tracing lines otherwise.
    pub fn new(what: &str, total: u64) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            let style = ProgressStyle::with_template(
                "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_message(what.to_string());
            bar
        });
        Progress {
            what: what.to_string(),
            bar,
            total,
            done: AtomicU64::new(0),
            logged_tenths: AtomicU64::new(0),
        }
    }

    pub fn advance(&self, bytes: u64) {
        let done = self.done.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if let Some(bar) = &self.bar {
            bar.set_position(done);
            return;
        }
        let tenths = (done.saturating_mul(10)) / self.total.max(1);
        let before = self.logged_tenths.fetch_max(tenths, Ordering::Relaxed);
        if tenths > before {
            tracing::info!(
                bytes = done,
                total = self.total,
                "{}: {}%",
                self.what,
                (tenths * 10).min(100)
            );
        }
    }

    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
