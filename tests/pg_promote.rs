//! `instarec promote` against real PostgreSQL 15 servers: a primary shipping
//! into a file:// archive and a hot standby replaying it (`standby init`).
//! A client keeps a ledger of every acknowledged commit; after promote the
//! ledger is compared with the new primary, and the reported RPO must cover
//! every acknowledged commit that is missing (invariant 5).

mod support;

use chrono::Utc;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::instarec::{binary, run, text, write_config, Shipper};
use support::ledger::{assert_lost_within_rpo, ids_in, lost_ids};
use support::pg_archive_standby::backup_and_standby;
use support::pg_ledger::pg_ledger;
use support::postgres::new_scratch_dir;
use support::promote::{assert_planned_report, epoch_names, promote_json};
use support::{PgOptions, Postgres};

/// Rounds of kill -9 under load in the failover test.
const FAILOVER_ROUNDS: usize = 10;

struct Cluster {
    primary: Postgres,
    standby: Postgres,
    shipper: Shipper,
    config: PathBuf,
    archive_url: String,
    dir: tempfile::TempDir,
}

/// Writes the config atomically: the standby's restore_command reads it
/// while we rewrite it.
fn write_primary_config(path: &Path, archive_url: &str, primary_url: &str, rest: &str) {
    write_config(
        path,
        &format!(
            "[archive]\nurl = \"{archive_url}\"\n\n[primary]\nengine = \"postgres\"\nurl = \"{primary_url}\"\nflush_interval = \"200ms\"\n{rest}\n"
        ),
    );
}

/// Primary + shipper + backup + hot standby from it. `primary_extra` goes
/// into [primary]; `rest` holds further sections.
fn cluster(opts: PgOptions, primary_extra: &str, rest: &str) -> Cluster {
    let primary = Postgres::start_with(opts);
    primary.psql("SET synchronous_commit = local; CREATE TABLE ledger(id bigint PRIMARY KEY)");
    let dir = new_scratch_dir();
    let archive_url = format!("file://{}/archive", dir.path().display());
    let config = dir.path().join("instarec.toml");
    write_primary_config(&config, &archive_url, &primary.url(), primary_extra);
    let shipper = Shipper::start(&config);
    let standby = backup_and_standby(&config, || shipper.log());
    write_primary_config(
        &config,
        &archive_url,
        &primary.url(),
        &format!(
            "{primary_extra}\n\n[standby]\nurl = \"{}\"\n\n[promote]\nold_primary_timeout = \"1s\"\ndrain_timeout = \"20s\"\n{rest}",
            standby.url()
        ),
    );
    Cluster {
        primary,
        standby,
        shipper,
        config,
        archive_url,
        dir,
    }
}

fn ids_on(pg: &Postgres) -> BTreeSet<i64> {
    ids_in(&pg.psql("SELECT id FROM ledger"))
}

fn promote(c: &Cluster, args: &[&str]) -> serde_json::Value {
    promote_json(&c.config, args, || {
        format!("standby log:\n{}", c.standby.log_tail(30))
    })
}

fn epochs(archive_url: &str) -> Vec<String> {
    epoch_names(Path::new(archive_url.trim_start_matches("file://")))
}

fn assert_report_shape(report: &serde_json::Value) {
    support::promote::assert_report_shape(report, &[], &[]);
}

/// `ship` from the new primary under the new epoch: starts, archives the
/// new timeline, stops cleanly.
fn ship_from_new_primary(c: &Cluster) {
    let config = c.dir.path().join("after.toml");
    write_primary_config(&config, &c.archive_url, &c.standby.url(), "");
    let shipper = Shipper::start(&config);
    c.standby
        .psql("INSERT INTO ledger(id) VALUES (-1); SELECT pg_switch_wal()");
    let target = c
        .standby
        .psql("SELECT pg_current_wal_flush_lsn()")
        .parse()
        .unwrap();
    shipper.wait_flushed(&c.standby, target, Duration::from_secs(60));
    let log = shipper.log();
    assert_eq!(shipper.stop(), 0, "ship from the new primary; log:\n{log}");
    let tli2 = PathBuf::from(c.archive_url.trim_start_matches("file://")).join("wal/00000002");
    assert!(
        std::fs::read_dir(&tli2)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false),
        "no timeline 2 WAL in the archive; log:\n{log}"
    );
}

#[test]
fn planned_switchover_loses_no_acknowledged_commit_and_fences_the_old_primary() {
    let mut c = cluster(PgOptions::default(), "", "");
    let ledger = pg_ledger(c.primary.url());
    ledger.wait_for(200);
    let report = promote(&c, &["--planned"]);
    let acked = ledger.finish();
    println!("planned report: {report:#}");

    assert_report_shape(&report);
    assert_planned_report(&report);

    let on_new = ids_on(&c.standby);
    let lost = lost_ids(&acked, &on_new);
    assert!(acked.len() >= 200);
    assert!(
        lost.is_empty(),
        "planned switchover lost acknowledged commits {lost:?}"
    );
    assert_eq!(c.standby.psql("SELECT pg_is_in_recovery()"), "f");

    // The old primary is read-only, and its shipper is fenced on its next write.
    assert_eq!(c.primary.psql("SHOW default_transaction_read_only"), "on");
    assert!(c
        .primary
        .try_psql("INSERT INTO ledger(id) VALUES (-2)")
        .unwrap_err()
        .contains("read-only"));
    c.primary.psql("CHECKPOINT");
    c.primary.psql("SELECT pg_switch_wal()");
    let code = c.shipper.wait_exit(Duration::from_secs(30));
    assert_eq!(code, Some(4), "old shipper; log:\n{}", c.shipper.log());

    ship_from_new_primary(&c);
    c.primary.stop();
}

#[test]
fn failover_after_kill9_reports_rpo_covering_every_lost_commit() {
    let mut seed = Utc::now().timestamp_subsec_nanos() as u64;
    for round in 0..FAILOVER_ROUNDS {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let kill_after = Duration::from_millis(300 + (seed >> 33) % 1500);
        let mut c = cluster(PgOptions::default(), "", "");
        let ledger = pg_ledger(c.primary.url());
        ledger.wait_for(50);
        std::thread::sleep(kill_after);
        c.primary.kill9();
        let acked = ledger.finish();
        let report = promote(&c, &[]);
        println!("round {round} (kill after {kill_after:?}): {report}");

        assert_report_shape(&report);
        assert_eq!(report["mode"], "failover");
        assert_eq!(report["rpo_bytes_exact"], false);
        let on_new = ids_on(&c.standby);
        let lost = lost_ids(&acked, &on_new);
        println!(
            "round {round}: {} acknowledged, {} lost",
            acked.len(),
            lost.len()
        );
        assert_lost_within_rpo(&report, &acked, &on_new);
        if round == 0 {
            // The old primary comes back: its shipper, old or new, is fenced.
            ship_from_new_primary(&c);
            c.primary.restart();
            c.primary.psql("SELECT pg_switch_wal()");
            let code = c.shipper.wait_exit(Duration::from_secs(60));
            assert_eq!(code, Some(4), "old shipper; log:\n{}", c.shipper.log());
            let out = run(&c.config, &["ship"]);
            assert_eq!(
                out.status.code(),
                Some(4),
                "a new shipper of the old primary: {}",
                text(&out)
            );
            assert!(
                String::from_utf8_lossy(&out.stderr).contains("fenced"),
                "{}",
                text(&out)
            );
        }
    }
}

#[test]
fn synchronous_failover_loses_no_acknowledged_commit() {
    let mut c = cluster(
        PgOptions {
            synchronous_standby_names: Some("instarec".into()),
            ..Default::default()
        },
        "synchronous = true",
        "",
    );
    let ledger = pg_ledger(c.primary.url());
    ledger.wait_for(100);
    std::thread::sleep(Duration::from_millis(700));
    c.primary.kill9();
    let acked = ledger.finish();
    // The new primary inherited synchronous_standby_names: its first commit
    // waits until a synchronous shipper follows it, which can only start
    // once promote has claimed the epoch naming it.
    let child = Command::new(binary())
        .arg("--config")
        .arg(&c.config)
        .args(["promote", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while epochs(&c.archive_url).len() < 2 {
        assert!(Instant::now() < deadline, "promote claimed no epoch");
        std::thread::sleep(Duration::from_millis(20));
    }
    let after = c.dir.path().join("after.toml");
    write_primary_config(
        &after,
        &c.archive_url,
        &c.standby.url(),
        "synchronous = true",
    );
    let follower = Shipper::start(&after);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promote: {}\nfollower log:\n{}",
        text(&out),
        follower.log()
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    println!("synchronous report: {report:#}");
    assert_report_shape(&report);
    assert_eq!(report["mode"], "synchronous");
    let on_new = ids_on(&c.standby);
    let lost = lost_ids(&acked, &on_new);
    assert!(acked.len() >= 100);
    assert!(
        lost.is_empty(),
        "synchronous mode lost acknowledged commits {lost:?}"
    );
}

#[test]
fn promoting_a_non_standby_or_another_cluster_fails_and_changes_nothing() {
    let c = cluster(PgOptions::default(), "", "");
    let before = epochs(&c.archive_url);
    assert_eq!(before.len(), 1, "ship claimed epoch 1: {before:?}");

    // A server of another cluster.
    let stranger = Postgres::start();
    let other = c.dir.path().join("other.toml");
    write_primary_config(
        &other,
        &c.archive_url,
        &c.primary.url(),
        &format!("\n[standby]\nurl = \"{}\"\n", stranger.url()),
    );
    let out = run(&other, &["promote"]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is system"),
        "{}",
        text(&out)
    );

    // The standby, promoted by hand: no longer a standby.
    c.standby.psql("SELECT pg_promote(true, 60)");
    let out = run(&c.config, &["promote", "--planned"]);
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is not a standby") && err.contains("nothing was changed"),
        "{err}"
    );

    assert_eq!(epochs(&c.archive_url), before, "no epoch was claimed");
    assert_eq!(c.primary.psql("SHOW default_transaction_read_only"), "off");
    c.primary.psql("INSERT INTO ledger(id) VALUES (1)");
}

#[test]
fn planned_switchover_through_the_proxy_moves_clients_and_counts_rto_there() {
    let listen = support::free_port();
    let control = support::free_port();
    let c = cluster(
        PgOptions::default(),
        "",
        &format!(
            "\n[cutover]\nmethod = \"proxy\"\nlisten = \"127.0.0.1:{listen}\"\nproxy_control = \"127.0.0.1:{control}\"\n"
        ),
    );
    let log = std::fs::File::create(c.dir.path().join("proxy.log")).unwrap();
    let mut cmd = Command::new(binary());
    cmd.arg("--config")
        .arg(&c.config)
        .arg("proxy")
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    let _proxy = support::process::GroupChild::spawn(
        "instarec proxy",
        cmd,
        libc::SIGTERM,
        Duration::from_secs(10),
    )
    .unwrap();
    assert!(support::process::wait_for_port(
        listen,
        Duration::from_secs(30)
    ));

    let ledger = pg_ledger(format!("postgres://postgres@127.0.0.1:{listen}/postgres"));
    ledger.wait_for(200);
    let report = promote(&c, &["--planned"]);
    // Clients keep writing through the proxy, now to the new primary.
    let before = ledger.count();
    ledger.wait_for(before + 100);
    let acked = ledger.finish();
    println!("planned via proxy: {report:#}");

    assert_report_shape(&report);
    assert_eq!(report["mode"], "planned");
    assert_eq!(report["rpo_bytes"], 0);
    assert_eq!(report["write_path"], format!("127.0.0.1:{listen}"));
    assert_eq!(report["cutover"][0]["method"], "proxy");
    let on_new = ids_on(&c.standby);
    let lost = lost_ids(&acked, &on_new);
    assert!(lost.is_empty(), "lost acknowledged commits {lost:?}");
    let probes: i64 = c
        .standby
        .psql("SELECT count(*) FROM instarec_promote_probe")
        .parse()
        .unwrap();
    assert_eq!(probes, 1);
}
