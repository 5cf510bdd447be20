//! Cutover through a real haproxy (TCP mode) in front of two real PostgreSQL
//! servers, driven over its runtime API.

mod support;

use instarec::config::{CutoverMethods, CutoverSection, HaproxySection};
use instarec::cutover::{self, CutoverTarget};
use support::haproxy::Haproxy;
use support::Postgres;
use tokio_postgres::{Client, NoTls};

fn section(runtime_api: &str, server: &str) -> CutoverSection {
    CutoverSection {
        method: CutoverMethods::One("haproxy".into()),
        listen: None,
        proxy_control: None,
        pgbouncer: None,
        haproxy: Some(HaproxySection {
            runtime_api: runtime_api.to_string(),
            backend: "pg".into(),
            server: server.into(),
        }),
        hook: None,
    }
}

async fn connect(port: u16) -> Client {
    let (client, connection) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} user=postgres dbname=postgres connect_timeout=5"),
        NoTls,
    )
    .await
    .unwrap_or_else(|e| panic!("connecting through haproxy on {port}: {e}"));
    tokio::spawn(connection);
    client
}

async fn server_port(client: &Client) -> Result<u16, String> {
    let row = client
        .query_one("SELECT inet_server_port()", &[])
        .await
        .map_err(|e| e.to_string())?;
    Ok(row.get::<_, i32>(0) as u16)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_is_repointed_and_sessions_to_the_old_primary_are_closed() {
    let a = Postgres::start();
    let b = Postgres::start();
    let haproxy = Haproxy::start("pg", a.port());
    let on_a = connect(haproxy.port).await;
    assert_eq!(server_port(&on_a).await, Ok(a.port()));

    let target = CutoverTarget {
        host: "127.0.0.1".into(),
        port: b.port(),
        epoch: 2,
    };
    let steps = cutover::run(&section(&haproxy.socket, "primary"), &target)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(steps[0].method, "haproxy");

    assert!(
        server_port(&on_a).await.is_err(),
        "session to A survived the cutover"
    );
    let on_b = connect(haproxy.port).await;
    assert_eq!(server_port(&on_b).await, Ok(b.port()));

    // Again over the TCP runtime API, back to A in a later epoch.
    let target = CutoverTarget {
        host: "127.0.0.1".into(),
        port: a.port(),
        epoch: 3,
    };
    cutover::run(&section(&haproxy.tcp_api, "primary"), &target)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let again = connect(haproxy.port).await;
    assert_eq!(server_port(&again).await, Ok(a.port()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_server_is_an_error_naming_it() {
    let a = Postgres::start();
    let haproxy = Haproxy::start("pg", a.port());
    let target = CutoverTarget {
        host: "127.0.0.1".into(),
        port: a.port(),
        epoch: 2,
    };
    let err = cutover::run(&section(&haproxy.socket, "nosuch"), &target)
        .await
        .unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains("pg/nosuch") && text.contains("No such server"),
        "{text}"
    );

    let err = cutover::run(&section("127.0.0.1:1", "primary"), &target)
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("stats socket"), "{err:#}");
}
