//! `instarec proxy` between clients and two real PostgreSQL servers: it
//! follows the archive's epochs and its control port, closes connections to
//! a replaced primary, and never goes back to an older epoch's primary.

mod support;

use instarec::archive::{Archive, ArchiveSettings, EpochClaim};
use instarec::config::{CutoverMethods, CutoverSection};
use instarec::cutover::{self, proxy_control, CutoverTarget, HostPort};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::postgres::pg_bin;
use support::process::{free_port, wait_for_port, GroupChild};
use support::Postgres;

fn spawn_proxy(config: &Path, log: &Path) -> GroupChild {
    let file = std::fs::File::create(log).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_instarec"));
    cmd.arg("--config")
        .arg(config)
        .arg("-v")
        .arg("proxy")
        .stdout(file.try_clone().unwrap())
        .stderr(file);
    GroupChild::spawn("instarec proxy", cmd, libc::SIGTERM, Duration::from_secs(5))
        .expect("spawning instarec proxy")
}

/// `inet_server_port()` of a fresh connection through the proxy.
async fn port_through(proxy: u16) -> Result<u16, String> {
    let client = connect(proxy).await?;
    server_port(&client).await
}

async fn connect(proxy: u16) -> Result<tokio_postgres::Client, String> {
    let (client, connection) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={proxy} user=postgres dbname=postgres connect_timeout=5"),
        tokio_postgres::NoTls,
    )
    .await
    .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    Ok(client)
}

async fn server_port(client: &tokio_postgres::Client) -> Result<u16, String> {
    let row = client
        .query_one("SELECT inet_server_port()", &[])
        .await
        .map_err(|e| e.to_string())?;
    Ok(row.get::<_, i32>(0) as u16)
}

/// Polls until new connections land on `port`; returns how long that took.
async fn wait_until_routed_to(proxy: u16, port: u16, timeout: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let got = port_through(proxy).await;
        if got == Ok(port) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < timeout,
            "new connections through the proxy still reach {got:?}, not {port}, after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn claim(archive_holder: &str, primary: u16) -> EpochClaim {
    EpochClaim {
        holder: archive_holder.to_string(),
        primary: Some(format!("127.0.0.1:{primary}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_follows_epochs_closes_old_connections_and_never_goes_back() {
    let mut a = Postgres::start();
    let b = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let archive_url = format!("file://{}", dir.path().join("archive").display());
    std::fs::create_dir_all(dir.path().join("archive")).unwrap();
    let archive = Archive::open(&ArchiveSettings::new(&archive_url)).unwrap();

    let (listen, control) = (free_port(), free_port());
    let config = dir.path().join("instarec.toml");
    std::fs::write(
        &config,
        format!(
            "[archive]\nurl = \"{archive_url}\"\n\n\
             [primary]\nengine = \"postgres\"\nurl = \"{}\"\n\n\
             [cutover]\nlisten = \"127.0.0.1:{listen}\"\nproxy_control = \"127.0.0.1:{control}\"\n",
            a.url()
        ),
    )
    .unwrap();
    let log = dir.path().join("proxy.log");
    let mut proxy = spawn_proxy(&config, &log);
    let proxy_log = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        wait_for_port(listen, Duration::from_secs(30)),
        "proxy did not listen:\n{}",
        proxy_log()
    );

    // No epoch yet: [primary] url is the primary. psql, as users would.
    let out = Command::new(pg_bin("psql"))
        .args([
            "-X",
            "-A",
            "-t",
            "-h",
            "127.0.0.1",
            "-p",
            &listen.to_string(),
        ])
        .args([
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-c",
            "SELECT inet_server_port()",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        a.port().to_string(),
        "psql through the proxy: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        proxy_log()
    );
    let on_a = connect(listen).await.unwrap();
    assert_eq!(server_port(&on_a).await, Ok(a.port()));

    // Epoch 1 names the same primary: connections stay open.
    archive
        .claim_epoch(claim("test pid 1", a.port()))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(server_port(&on_a).await, Ok(a.port()));

    // Epoch 2 → B: new connections reach B within about a second, and the
    // connection to A is closed.
    archive
        .claim_epoch(claim("test pid 2", b.port()))
        .await
        .unwrap();
    let took = wait_until_routed_to(listen, b.port(), Duration::from_secs(3)).await;
    assert!(took < Duration::from_millis(1500), "switch took {took:?}");
    assert!(
        server_port(&on_a).await.is_err(),
        "the connection to the old primary A is still open"
    );
    let on_b = connect(listen).await.unwrap();
    assert_eq!(server_port(&on_b).await, Ok(b.port()));

    // An epoch-1 notification after epoch 2 is refused.
    let control_addr = format!("127.0.0.1:{control}").parse().unwrap();
    let refused = proxy_control::notify(control_addr, &HostPort::new("127.0.0.1", a.port()), 1)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("older"), "{refused}");

    // The old primary coming back changes nothing.
    a.restart();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    for _ in 0..5 {
        assert_eq!(port_through(listen).await, Ok(b.port()));
    }
    assert_eq!(server_port(&on_b).await, Ok(b.port()));

    // Promote's path: cutover::run with proxy_control. The archive still
    // says epoch 2, so only the control message can route to A now — and it
    // is applied before the OK.
    let section = CutoverSection {
        method: CutoverMethods::One("proxy".into()),
        listen: None,
        proxy_control: Some(control_addr),
        pgbouncer: None,
        haproxy: None,
        hook: None,
    };
    let target = CutoverTarget {
        host: "127.0.0.1".into(),
        port: a.port(),
        epoch: 3,
    };
    let steps = cutover::run(&section, &target).await.unwrap();
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0].method, "proxy");
    assert_eq!(
        proxy_control::status(control_addr).await.unwrap(),
        (Some(HostPort::new("127.0.0.1", a.port())), 3)
    );
    assert_eq!(port_through(listen).await, Ok(a.port()));
    assert!(
        server_port(&on_b).await.is_err(),
        "connection to B survived epoch 3"
    );
    // ...and the archive's older epoch 2 does not pull it back.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(port_through(listen).await, Ok(a.port()));

    // SIGTERM stops it cleanly.
    let status = proxy.stop(libc::SIGTERM, Duration::from_secs(10)).unwrap();
    assert!(status.success(), "proxy exit {status}:\n{}", proxy_log());
    assert!(port_through(listen).await.is_err());
}

#[tokio::test]
async fn proxy_refuses_a_control_port_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("instarec.toml");
    std::fs::write(
        &config,
        format!(
            "[archive]\nurl = \"file://{}\"\n\n[cutover]\nlisten = \"127.0.0.1:{}\"\nproxy_control = \"0.0.0.0:{}\"\n",
            dir.path().display(),
            free_port(),
            free_port()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_instarec"))
        .arg("--config")
        .arg(&config)
        .arg("proxy")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("not a loopback address"), "{stderr}");
}
