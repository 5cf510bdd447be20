//! The demo's clients: insert rows through the proxy, recording every
//! commit the server acknowledged, so the RPO can be checked afterwards.

use instarec_postgres::ConnConfig;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Commit {
    pub id: i64,
    pub acked_at: Instant,
}

pub struct Ledger {
    stop: Arc<AtomicBool>,
    commits: Arc<Mutex<Vec<Commit>>>,
    task: tokio::task::JoinHandle<()>,
}

pub async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let cfg = ConnConfig::from_url(url)?;
    Ok(instarec_postgres::connect_sql(&cfg).await?)
}

impl Ledger {
    /// One client inserting rows with increasing ids; it reconnects after
    /// errors, as an application behind the proxy would.
    pub fn start(url: String) -> Ledger {
        let stop = Arc::new(AtomicBool::new(false));
        let commits = Arc::new(Mutex::new(Vec::new()));
        let (s, c) = (stop.clone(), commits.clone());
        let task = tokio::spawn(async move {
            let mut next_id = 1i64;
            while !s.load(Ordering::Relaxed) {
                let Ok(client) = connect(&url).await else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                while !s.load(Ordering::Relaxed) {
                    let id = next_id;
                    next_id += 1;
                    match client
                        .execute(
                            "INSERT INTO demo_ledger (id, note) VALUES ($1, 'demo')",
                            &[&id],
                        )
                        .await
                    {
                        Ok(_) => c.lock().expect("ledger lock").push(Commit {
                            id,
                            acked_at: Instant::now(),
                        }),
                        Err(_) => break,
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        });
        Ledger {
            stop,
            commits,
            task,
        }
    }

    /// Stops writing and returns every acknowledged commit.
    pub async fn stop(self) -> Vec<Commit> {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        let commits = self.commits.lock().expect("ledger lock").clone();
        commits
    }
}

pub async fn present_ids(client: &tokio_postgres::Client) -> anyhow::Result<HashSet<i64>> {
    let rows = client
        .query("SELECT id FROM demo_ledger WHERE id > 0", &[])
        .await?;
    Ok(rows.into_iter().map(|r| r.get::<_, i64>(0)).collect())
}
