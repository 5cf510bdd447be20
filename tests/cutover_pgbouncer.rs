//! Cutover through a real pgbouncer between clients and two real PostgreSQL
//! servers: a planned switchover moves a busy pooled client to the new
//! primary without a single error; a stuck transaction falls back to KILL.

mod support;

use instarec::config::{
    CutoverMethods, CutoverSection, HumanDuration, PgbouncerSection, SecretUrl,
};
use instarec::cutover::{self, CutoverTarget};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::postgres::server_user;
use support::process::{free_port, log_tail, wait_for_port, GroupChild};
use support::service_user::scratch_dir;
use support::{require_binary, Postgres};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

struct Pgbouncer {
    _process: GroupChild,
    port: u16,
    databases_file: PathBuf,
    log: PathBuf,
    _scratch: tempfile::TempDir,
}

impl Pgbouncer {
    /// pgbouncer in transaction pooling with database `app` → 127.0.0.1:`upstream`.
    fn start(upstream: u16) -> Pgbouncer {
        let binary = require_binary("pgbouncer", "pgbouncer");
        let user = server_user();
        let scratch = scratch_dir("instarec-pgbouncer-", user.as_ref());
        let dir = scratch.path();
        let port = free_port();
        let databases_file = dir.join("databases.ini");
        std::fs::write(
            &databases_file,
            format!(
                "[databases]\napp = host=127.0.0.1 port={upstream} dbname=postgres user=postgres\n"
            ),
        )
        .unwrap();
        std::fs::write(
            dir.join("userlist.txt"),
            "\"postgres\" \"\"\n\"pgbouncer\" \"\"\n",
        )
        .unwrap();
        let ini = dir.join("pgbouncer.ini");
        std::fs::write(
            &ini,
            format!(
                "[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
                 auth_type = trust\nauth_file = {}\nadmin_users = pgbouncer\n\
                 pool_mode = transaction\nserver_reset_query =\nlogfile =\npidfile =\n\
                 %include {}\n",
                dir.join("userlist.txt").display(),
                databases_file.display()
            ),
        )
        .unwrap();
        if let Some(user) = &user {
            user.chown_tree(dir);
        }
        let log = dir.join("pgbouncer.log");
        let file = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(binary);
        cmd.arg(&ini)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file);
        if let Some(user) = &user {
            user.apply(&mut cmd);
        }
        let process = GroupChild::spawn("pgbouncer", cmd, libc::SIGINT, Duration::from_secs(5))
            .expect("spawning pgbouncer");
        assert!(
            wait_for_port(port, Duration::from_secs(20)),
            "pgbouncer did not listen on {port}:\n{}",
            log_tail(&log, 30)
        );
        Pgbouncer {
            _process: process,
            port,
            databases_file,
            log,
            _scratch: scratch,
        }
    }

    fn section(&self, pause_timeout: Duration) -> CutoverSection {
        CutoverSection {
            method: CutoverMethods::Many(vec!["pgbouncer".into()]),
            listen: None,
            proxy_control: None,
            pgbouncer: Some(PgbouncerSection {
                admin_url: SecretUrl::new(format!(
                    "postgres://pgbouncer@127.0.0.1:{}/pgbouncer",
                    self.port
                )),
                database: "app".into(),
                databases_file: self.databases_file.clone(),
                pause_timeout: HumanDuration(pause_timeout),
            }),
            haproxy: None,
            hook: None,
        }
    }

    async fn client(&self) -> Client {
        let (client, connection) = tokio_postgres::connect(
            &format!(
                "host=127.0.0.1 port={} user=postgres dbname=app connect_timeout=5",
                self.port
            ),
            NoTls,
        )
        .await
        .unwrap_or_else(|e| {
            panic!(
                "connecting through pgbouncer: {e}\n{}",
                log_tail(&self.log, 30)
            )
        });
        tokio::spawn(connection);
        client
    }
}

/// The port of the server that ran the last statement of `sql`.
async fn port_of(client: &Client, sql: &str) -> Result<u16, String> {
    let messages = client.simple_query(sql).await.map_err(|e| e.to_string())?;
    let port = messages.iter().rev().find_map(|m| match m {
        SimpleQueryMessage::Row(row) => row.get(0).and_then(|v| v.parse().ok()),
        _ => None,
    });
    port.ok_or_else(|| "no row".to_string())
}

fn target(pg: &Postgres, epoch: u64) -> CutoverTarget {
    CutoverTarget {
        host: "127.0.0.1".into(),
        port: pg.port(),
        epoch,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planned_switchover_moves_a_busy_pooled_client_without_errors() {
    let a = Postgres::start();
    let b = Postgres::start();
    let bouncer = Pgbouncer::start(a.port());
    let section = bouncer.section(Duration::from_secs(10));

    let client = bouncer.client().await;
    assert_eq!(
        port_of(&client, "SELECT inet_server_port()").await,
        Ok(a.port())
    );

    // A client that keeps running short transactions through the cutover.
    let stop = Arc::new(AtomicBool::new(false));
    let busy = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut ports = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let sql = "BEGIN; SELECT pg_sleep(0.02); SELECT inet_server_port(); COMMIT";
                match port_of(&client, sql).await {
                    Ok(port) => ports.push(port),
                    Err(e) => return Err(format!("after {} transactions: {e}", ports.len())),
                }
            }
            Ok(ports)
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    // What promote does in a planned switchover: pause, fence and promote, cut over.
    cutover::pause(&section).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let steps = cutover::run(&section, &target(&b, 2))
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", log_tail(&bouncer.log, 30)));
    assert_eq!(steps[0].method, "pgbouncer");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);

    let ports = busy.await.unwrap().expect("the pooled client saw an error");
    let (first, last) = (ports[0], *ports.last().unwrap());
    assert_eq!((first, last), (a.port(), b.port()), "ports seen: {ports:?}");
    // Once on B, never back to A.
    let switched_at = ports.iter().position(|p| *p == b.port()).unwrap();
    assert!(
        ports[switched_at..].iter().all(|p| *p == b.port()),
        "{ports:?}"
    );

    let fresh = bouncer.client().await;
    assert_eq!(
        port_of(&fresh, "SELECT inet_server_port()").await,
        Ok(b.port())
    );
    let file = std::fs::read_to_string(&bouncer.databases_file).unwrap();
    assert_eq!(
        file,
        format!(
            "[databases]\napp = host=127.0.0.1 port={} dbname=postgres user=postgres\n",
            b.port()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_that_never_ends_is_killed_after_pause_timeout() {
    let a = Postgres::start();
    let b = Postgres::start();
    let bouncer = Pgbouncer::start(a.port());
    let section = bouncer.section(Duration::from_secs(1));

    // As if the old primary died mid-transaction: the transaction never ends.
    let stuck = bouncer.client().await;
    stuck.simple_query("BEGIN; SELECT 1").await.unwrap();

    let steps = cutover::run(&section, &target(&b, 2))
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", log_tail(&bouncer.log, 30)));
    assert!(steps[0].detail.contains("killed"), "{}", steps[0].detail);
    assert!(
        stuck.simple_query("SELECT 1").await.is_err(),
        "the stuck client survived KILL"
    );
    let fresh = bouncer.client().await;
    assert_eq!(
        port_of(&fresh, "SELECT inet_server_port()").await,
        Ok(b.port())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_databases_file_without_the_database_fails_and_leaves_clients_running() {
    let a = Postgres::start();
    let bouncer = Pgbouncer::start(a.port());
    let mut section = bouncer.section(Duration::from_secs(5));
    section.pgbouncer.as_mut().unwrap().databases_file = bouncer._scratch.path().join("other.ini");
    std::fs::write(
        section.pgbouncer.as_ref().unwrap().databases_file.clone(),
        "[databases]\n",
    )
    .unwrap();

    let err = cutover::run(&section, &target(&a, 2)).await.unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains("no `app = host=... dbname=...` line"),
        "{text}"
    );
    // Resumed after the failure: clients are not left waiting.
    let client = bouncer.client().await;
    let answered = tokio::time::timeout(
        Duration::from_secs(5),
        port_of(&client, "SELECT inet_server_port()"),
    )
    .await;
    assert_eq!(answered, Ok(Ok(a.port())));
}
