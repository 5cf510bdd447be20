//! How a running backup shows progress: an indicatif bar on a terminal (a
//! spinner when the server gave no size estimate), a tracing line every few
//! seconds otherwise, so logs and CI stay readable.

use indicatif::{ProgressBar, ProgressStyle};
use std::time::{Duration, Instant};

const LOG_EVERY: Duration = Duration::from_secs(5);

pub struct BackupProgress {
    bar: Option<ProgressBar>,
    want_bar: bool,
    total: Option<u64>,
    done: u64,
    started: Instant,
    last_log: Instant,
}

impl BackupProgress {
    /// `bar`: draw on stderr (the caller checks it is a terminal).
    pub fn new(bar: bool) -> BackupProgress {
        let now = Instant::now();
        BackupProgress {
            bar: None,
            want_bar: bar,
            total: None,
            done: 0,
            started: now,
            last_log: now,
        }
    }

    /// The data starts; `total` is the server's estimate, if any.
    pub fn start(&mut self, total: Option<u64>) {
        self.total = total.filter(|t| *t > 0);
        self.started = Instant::now();
        self.last_log = self.started;
        if !self.want_bar {
            return;
        }
        let bar = match self.total {
            Some(t) => {
                let bar = ProgressBar::new(t);
                bar.set_style(style(
                    "{spinner} backup [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta} {msg}",
                ));
                bar
            }
            None => {
                let bar = ProgressBar::new_spinner();
                bar.set_style(style(
                    "{spinner} backup {bytes} {binary_bytes_per_sec} {msg}",
                ));
                bar
            }
        };
        bar.enable_steady_tick(Duration::from_millis(200));
        self.bar = Some(bar);
    }

    /// `bytes` more of the tar stream received.
    pub fn advance(&mut self, bytes: u64) {
        self.done += bytes;
        if let Some(bar) = &self.bar {
            // The estimate leaves out tar headers: grow rather than overflow.
            if bar.length().is_some_and(|l| self.done > l) {
                bar.set_length(self.done);
            }
            bar.set_position(self.done);
            return;
        }
        if self.last_log.elapsed() >= LOG_EVERY {
            self.last_log = Instant::now();
            let secs = self.started.elapsed().as_secs_f64().max(0.001);
            let rate = (self.done as f64 / secs) as u64;
            let percent = self
                .total
                .map(|t| (self.done.saturating_mul(100) / t).min(100));
            tracing::info!(
                bytes = self.done,
                total = self.total,
                percent,
                bytes_per_sec = rate,
                "backup progress: {} received",
                bytesize::ByteSize(self.done)
            );
        }
    }

    /// What happens next, e.g. waiting for WAL.
    pub fn phase(&mut self, message: &str) {
        match &self.bar {
            Some(bar) => bar.set_message(message.to_string()),
            None => tracing::info!("{message}"),
        }
    }

    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
}
