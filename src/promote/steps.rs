//! The duration of each promote step, logged as it ends and kept for the report.

use serde::Serialize;
use std::future::Future;
use std::time::Instant;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepTime {
    pub name: String,
    pub seconds: f64,
}

#[derive(Debug, Default)]
pub struct Steps {
    list: Vec<StepTime>,
}

impl Steps {
    /// Runs `step`, then logs and records how long it took (also when it failed).
    pub async fn time<T>(&mut self, name: &str, step: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let out = step.await;
        self.record(name, started.elapsed().as_secs_f64());
        out
    }

    pub fn record(&mut self, name: &str, seconds: f64) {
        tracing::info!(step = name, seconds = format!("{seconds:.3}"), "step done");
        self.list.push(StepTime {
            name: name.to_string(),
            seconds,
        });
    }

    pub fn into_list(self) -> Vec<StepTime> {
        self.list
    }
}
