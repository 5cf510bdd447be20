//! The demo's clients: insert rows, recording every commit the server
//! acknowledged, so the RPO can be checked afterwards. The same client
//! runs against either engine; `LedgerDb` is what differs.

use mysql_async::prelude::Queryable as _;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One connection attempt or insert may take this long before the client
/// gives up on it (a killed server may leave a socket hanging).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct Commit {
    pub id: i64,
    pub acked_at: Instant,
}

/// Where the ledger lives: a URL of either engine, with the table
/// `demo_ledger (id, note)` in its default database.
#[derive(Debug, Clone)]
pub enum LedgerDb {
    Postgres(String),
    Mysql(String),
}

/// An open connection to a `LedgerDb`.
pub enum LedgerConn {
    Postgres(tokio_postgres::Client),
    Mysql(mysql_async::Conn),
}

impl LedgerDb {
    pub async fn connect(&self) -> anyhow::Result<LedgerConn> {
        match self {
            LedgerDb::Postgres(url) => Ok(LedgerConn::Postgres(connect_postgres(url).await?)),
            LedgerDb::Mysql(url) => {
                let opts = mysql_async::Opts::from_url(url)?;
                Ok(LedgerConn::Mysql(mysql_async::Conn::new(opts).await?))
            }
        }
    }
}

impl LedgerConn {
    /// One committed row; Ok means the server acknowledged the commit.
    pub async fn insert(&mut self, id: i64) -> anyhow::Result<()> {
        match self {
            LedgerConn::Postgres(c) => {
                c.execute(
                    "INSERT INTO demo_ledger (id, note) VALUES ($1, 'demo')",
                    &[&id],
                )
                .await?;
            }
            LedgerConn::Mysql(c) => {
                c.exec_drop(
                    "INSERT INTO demo_ledger (id, note) VALUES (?, 'demo')",
                    (id,),
                )
                .await?;
            }
        }
        Ok(())
    }

    /// The ledger's ids (seed rows have negative ids and are left out).
    pub async fn present_ids(&mut self) -> anyhow::Result<HashSet<i64>> {
        const SQL: &str = "SELECT id FROM demo_ledger WHERE id > 0";
        match self {
            LedgerConn::Postgres(c) => {
                let rows = c.query(SQL, &[]).await?;
                Ok(rows.into_iter().map(|r| r.get::<_, i64>(0)).collect())
            }
            LedgerConn::Mysql(c) => Ok(c.query::<i64, _>(SQL).await?.into_iter().collect()),
        }
    }
}

pub struct Ledger {
    stop: Arc<AtomicBool>,
    commits: Arc<Mutex<Vec<Commit>>>,
    task: tokio::task::JoinHandle<()>,
}

pub async fn connect_postgres(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let cfg = instarec_postgres::ConnConfig::from_url(url)?;
    Ok(instarec_postgres::connect_sql(&cfg).await?)
}

impl Ledger {
    /// One client inserting rows with increasing ids; it reconnects after
    /// errors, as an application would.
    pub fn start(db: LedgerDb) -> Ledger {
        let stop = Arc::new(AtomicBool::new(false));
        let commits = Arc::new(Mutex::new(Vec::new()));
        let (s, c) = (stop.clone(), commits.clone());
        let task = tokio::spawn(async move {
            let mut next_id = 1i64;
            while !s.load(Ordering::Relaxed) {
                let Ok(Ok(mut conn)) = tokio::time::timeout(CLIENT_TIMEOUT, db.connect()).await
                else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                while !s.load(Ordering::Relaxed) {
                    let id = next_id;
                    next_id += 1;
                    match tokio::time::timeout(CLIENT_TIMEOUT, conn.insert(id)).await {
                        Ok(Ok(())) => c.lock().expect("ledger lock").push(Commit {
                            id,
                            acked_at: Instant::now(),
                        }),
                        _ => break,
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
