//! Clients of a real MariaDB topology (primary, `instarec ship`, relay,
//! relay-fed replica) reach their database through `instarec proxy` or a
//! real haproxy. After `instarec promote` — planned, or after kill -9 —
//! new connections through that path reach the new primary, writes succeed
//! there, and promote's own first write went that way too. When the killed
//! old primary comes back, it stays fenced: its shippers cannot write to
//! the archive, the proxy never routes to it, and promoting again changes
//! nothing.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};
use support::haproxy::Haproxy;
use support::instarec::run;
use support::mariadb_topology::{
    assert_lost_within_rpo, assert_refused_as_not_a_standby, ids_on, lost_ids, text, write_config,
    Cluster, Daemon, APP,
};
use support::process::{free_port, log_tail};
use support::MariaDb;

/// How long the returning old primary is watched for traffic.
const NEVER_BACK_WATCH: Duration = Duration::from_secs(3);

/// (@@server_id, @@port) of a fresh connection through `port`, as `APP`.
fn server_through(db: &MariaDb, port: u16) -> Result<(u32, u16), String> {
    let out = app_client(db, port, "SELECT @@server_id, @@port")?;
    let (id, server_port) = out
        .split_once('\t')
        .ok_or_else(|| format!("unexpected answer {out:?}"))?;
    Ok((
        id.parse().map_err(|e| format!("{id:?}: {e}"))?,
        server_port
            .parse()
            .map_err(|e| format!("{server_port:?}: {e}"))?,
    ))
}

/// Runs `sql` as the application account through `port` (a proxy).
fn app_client(db: &MariaDb, port: u16, sql: &str) -> Result<String, String> {
    let out = db
        .client_command()
        .args(["-u", APP, "--protocol=TCP", "-h", "127.0.0.1", "-P"])
        .arg(port.to_string())
        .args(["-D", "test", "-e", sql])
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// Who new connections through `port` reach, polled until it is `want`.
fn wait_until_routed_to(port: u16, want: &MariaDb, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let got = server_through(want, port);
        if got == Ok((want.server_id(), want.port())) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "connections through {port} still reach {got:?}, not server_id {} on {}",
            want.server_id(),
            want.port()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every new connection through `port` for `watch` reaches `want`.
fn assert_always_routed_to(port: u16, want: &MariaDb, watch: Duration) {
    let deadline = Instant::now() + watch;
    let mut tries = 0;
    while Instant::now() < deadline {
        assert_eq!(
            server_through(want, port),
            Ok((want.server_id(), want.port())),
            "connection {tries} through {port} did not reach the new primary"
        );
        tries += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(tries >= 5, "only {tries} connections in {watch:?}");
}

/// A write by the application through `port` commits on the new primary.
fn assert_writes_land_on(port: u16, new: &MariaDb, id: i64) {
    let out = app_client(
        new,
        port,
        &format!("INSERT INTO ledger(id) VALUES ({id}); SELECT @@server_id"),
    );
    assert_eq!(out, Ok(new.server_id().to_string()));
    assert!(
        ids_on(new).contains(&id),
        "row {id} is not on the new primary"
    );
}

/// The step names of a report, in order.
fn step_names(report: &serde_json::Value) -> Vec<String> {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect()
}

/// The cutover step ran, and before the first write (RTO ends at a write
/// through the cutover path, which went to the new primary only).
fn assert_cut_over_then_wrote(report: &serde_json::Value, method: &str, path: u16, c: &Cluster) {
    let names = step_names(report);
    let at = |n: &str| names.iter().position(|s| s == n);
    assert!(
        at("cutover").is_some() && at("cutover") < at("first_write"),
        "steps {names:?}"
    );
    assert_eq!(report["cutover"][0]["method"], method, "{report}");
    assert_eq!(
        report["write_path"],
        format!("127.0.0.1:{path}"),
        "{report}"
    );
    assert_eq!(
        report["new_primary"],
        format!("127.0.0.1:{}", c.standby.port())
    );
    let probes = c
        .standby
        .query("SELECT note FROM instarec.instarec_promote_probe");
    assert_eq!(
        probes,
        format!("promote to 127.0.0.1:{} in epoch 2", c.standby.port())
    );
    // The old primary never saw it (root may write despite read_only).
    if c.primary.pid().is_some() {
        assert_eq!(
            c.primary.query(
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = 'instarec_promote_probe'"
            ),
            "0",
            "promote's probe write reached the old primary"
        );
    }
}

/// Every object under the archive, with its size.
fn archive_listing(dir: &Path) -> BTreeMap<String, u64> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, u64>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let name = path.strip_prefix(root).unwrap().display().to_string();
                out.insert(name, std::fs::metadata(&path).unwrap().len());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// After a failover, the killed old primary restarts on its data dir, and
/// a client writes to it directly. Its shippers are fenced and write
/// nothing; `path` (a proxy) keeps sending everyone to the new primary;
/// promote run again, either way round, refuses and changes nothing.
fn old_primary_returns_and_stays_fenced(c: &mut Cluster, path: u16) {
    let before = archive_listing(&c.archive_dir());
    let epochs = c.epochs();
    c.primary.restart();
    c.primary
        .query("INSERT INTO test.ledger VALUES (-100); FLUSH BINARY LOGS");

    // (a) The shipper that ran all along, and a new one, exit 4 (fenced).
    let code = c.shipper.wait_exit(Duration::from_secs(60));
    assert_eq!(code, Some(4), "old shipper; log:\n{}", c.shipper.log());
    let out = run(&c.config, &["ship"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("fenced") && stderr.contains(&format!("127.0.0.1:{}", c.standby.port())),
        "{}",
        text(&out)
    );
    assert_eq!(
        archive_listing(&c.archive_dir()),
        before,
        "a shipper of the fenced old primary wrote to the archive"
    );

    // (b) No new connection reaches it.
    assert_always_routed_to(path, &c.standby, NEVER_BACK_WATCH);

    // (c) Promote again: [standby] is a primary now, so it is refused before
    // anything is touched...
    let out = run(&c.config, &["promote"]);
    assert_refused_as_not_a_standby(&out, &format!("127.0.0.1:{}", c.standby.port()));
    // ...and so is promoting the old primary back over the new one, which
    // is not fenced by the attempt.
    let back = c.dir.path().join("back.toml");
    let config = std::fs::read_to_string(&c.config).unwrap();
    let (old_url, new_url) = (c.primary.url(), c.standby.url());
    write_config(
        &back,
        &config
            .replace(&old_url, "OLD")
            .replace(&new_url, &old_url)
            .replace("OLD", &new_url),
    );
    let out = run(&back, &["promote"]);
    assert_refused_as_not_a_standby(&out, &format!("127.0.0.1:{}", c.primary.port()));
    assert_eq!(c.epochs(), epochs, "no epoch was claimed");
    assert_eq!(c.standby.query("SELECT @@global.read_only"), "0");
    assert_always_routed_to(path, &c.standby, Duration::from_millis(600));
    assert_writes_land_on(path, &c.standby, -101);
    assert_eq!(archive_listing(&c.archive_dir()), before);
}

#[test]
fn planned_switchover_through_the_proxy_moves_clients_and_the_first_write() {
    let c = Cluster::start();
    // No control port: the proxy follows the archive's epochs, so for up to
    // a poll interval after the claim it may still route to the fenced old
    // primary; promote's first write must not count that.
    let listen = free_port();
    c.add_config(&format!(
        "[cutover]\nmethod = \"proxy\"\nlisten = \"127.0.0.1:{listen}\"\n"
    ));
    let proxy = Daemon::start(&c.config, "proxy", listen);
    assert_eq!(
        server_through(&c.primary, listen),
        Ok((1, c.primary.port()))
    );

    let ledger = c.ledger_through(listen);
    ledger.wait_for(200);
    let report = c.promote(&["--planned"]);
    // The client keeps committing through the proxy, now on the new primary.
    ledger.wait_for(ledger.count() + 100);
    let acked = ledger.finish();
    println!("planned via proxy: {report:#}");

    assert_eq!(report["mode"], "planned");
    assert_eq!(report["rpo_transactions"], 0);
    assert_cut_over_then_wrote(&report, "proxy", listen, &c);
    let lost = lost_ids(&acked, &ids_on(&c.standby));
    assert!(
        lost.is_empty(),
        "lost acknowledged commits {lost:?}; proxy log:\n{}",
        proxy.log()
    );
    wait_until_routed_to(listen, &c.standby, Duration::from_secs(2));
    assert_always_routed_to(listen, &c.standby, Duration::from_secs(1));
    assert_writes_land_on(listen, &c.standby, -1);
}

#[test]
fn failover_through_the_proxy_then_the_old_primary_returns_fenced() {
    let mut c = Cluster::start();
    let (listen, control) = (free_port(), free_port());
    c.add_config(&format!(
        "[cutover]\nmethod = \"proxy\"\nlisten = \"127.0.0.1:{listen}\"\nproxy_control = \"127.0.0.1:{control}\"\n"
    ));
    let proxy = Daemon::start(&c.config, "proxy", listen);
    let ledger = c.ledger_through(listen);
    ledger.wait_for(100);
    c.primary.kill9();
    let report = c.promote(&[]);
    ledger.wait_for(ledger.count() + 50);
    let acked = ledger.finish();
    println!("failover via proxy: {report:#}");

    assert_eq!(report["mode"], "failover");
    assert_eq!(report["old_primary_fenced"], false);
    assert_cut_over_then_wrote(&report, "proxy", listen, &c);
    assert!(
        report["cutover"][0]["detail"]
            .as_str()
            .unwrap()
            .contains(&format!(
                "proxy control 127.0.0.1:{control} acknowledged epoch 2"
            )),
        "{report}"
    );
    let lost = assert_lost_within_rpo(&report, &acked, &ids_on(&c.standby));
    println!("{} acknowledged, {} lost", acked.len(), lost.len());
    assert_always_routed_to(listen, &c.standby, Duration::from_millis(500));
    assert_writes_land_on(listen, &c.standby, -1);

    old_primary_returns_and_stays_fenced(&mut c, listen);
    assert!(proxy.is_running(), "proxy log:\n{}", proxy.log());
}

#[test]
fn failover_through_haproxy_repoints_it_and_the_old_primary_stays_out() {
    let mut c = Cluster::start();
    let haproxy = Haproxy::start("mysql", c.primary.port());
    c.add_config(&haproxy.cutover_section());
    assert_eq!(
        server_through(&c.primary, haproxy.port),
        Ok((1, c.primary.port()))
    );
    let ledger = c.ledger_through(haproxy.port);
    ledger.wait_for(100);
    c.primary.kill9();
    let report = c.promote(&[]);
    ledger.wait_for(ledger.count() + 50);
    let acked = ledger.finish();
    println!("failover via haproxy: {report:#}");

    assert_eq!(report["mode"], "failover");
    assert_cut_over_then_wrote(&report, "haproxy", haproxy.port, &c);
    let lost = assert_lost_within_rpo(&report, &acked, &ids_on(&c.standby));
    println!("{} acknowledged, {} lost", acked.len(), lost.len());
    assert_always_routed_to(haproxy.port, &c.standby, Duration::from_millis(500));
    assert_writes_land_on(haproxy.port, &c.standby, -1);

    old_primary_returns_and_stays_fenced(&mut c, haproxy.port);
    println!("haproxy log:\n{}", log_tail(&haproxy.log, 20));
}

#[test]
fn planned_switchover_through_haproxy_moves_clients() {
    let c = Cluster::start();
    let haproxy = Haproxy::start("mysql", c.primary.port());
    c.add_config(&haproxy.cutover_section());
    let ledger = c.ledger_through(haproxy.port);
    ledger.wait_for(200);
    let report = c.promote(&["--planned"]);
    ledger.wait_for(ledger.count() + 100);
    let acked = ledger.finish();
    println!("planned via haproxy: {report:#}");

    assert_eq!(report["mode"], "planned");
    assert_eq!(report["rpo_transactions"], 0);
    assert_cut_over_then_wrote(&report, "haproxy", haproxy.port, &c);
    let lost = lost_ids(&acked, &ids_on(&c.standby));
    assert!(lost.is_empty(), "lost acknowledged commits {lost:?}");
    assert_always_routed_to(haproxy.port, &c.standby, Duration::from_millis(500));
    assert_writes_land_on(haproxy.port, &c.standby, -1);
}
