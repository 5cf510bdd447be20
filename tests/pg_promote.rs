//! `instarec promote` against real PostgreSQL 15 servers: a primary shipping
//! into a file:// archive and a hot standby replaying it (`standby init`).
//! A client keeps a ledger of every acknowledged commit; after promote the
//! ledger is compared with the new primary, and the reported RPO must cover
//! every acknowledged commit that is missing (invariant 5).

mod support;

use chrono::{DateTime, Utc};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::instarec::{binary, Shipper};
use support::postgres::new_scratch_dir;
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
fn write_config(path: &Path, archive_url: &str, primary_url: &str, rest: &str) {
    let text = format!(
        "[archive]\nurl = \"{archive_url}\"\n\n[primary]\nengine = \"postgres\"\nurl = \"{primary_url}\"\nflush_interval = \"200ms\"\n{rest}\n"
    );
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn instarec(config: &Path, args: &[&str]) -> Output {
    Command::new(binary())
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("running instarec")
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Primary + shipper + backup + hot standby from it. `primary_extra` goes
/// into [primary]; `rest` holds further sections.
fn cluster(opts: PgOptions, primary_extra: &str, rest: &str) -> Cluster {
    let primary = Postgres::start_with(opts);
    primary.psql("SET synchronous_commit = local; CREATE TABLE ledger(id bigint PRIMARY KEY)");
    let dir = new_scratch_dir();
    let archive_url = format!("file://{}/archive", dir.path().display());
    let config = dir.path().join("instarec.toml");
    write_config(&config, &archive_url, &primary.url(), primary_extra);
    let shipper = Shipper::start(&config);
    let out = instarec(&config, &["backup", "--json", "--wal-timeout", "60s"]);
    assert!(
        out.status.success(),
        "backup: {}\nship log:\n{}",
        text(&out),
        shipper.log()
    );
    let scratch = new_scratch_dir();
    let data = scratch.path().join("data");
    let out = instarec(
        &config,
        &["standby", "init", "--data-dir", data.to_str().unwrap()],
    );
    assert!(out.status.success(), "standby init: {}", text(&out));
    let standby = Postgres::start_existing(scratch, data, None);
    write_config(
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

/// Acknowledged ledger ids and when the client saw each acknowledgement.
type Acked = Arc<Mutex<Vec<(i64, DateTime<Utc>)>>>;

/// A client committing ledger rows with increasing ids, one at a time,
/// recording each commit the server acknowledged and when.
struct Ledger {
    stop: Arc<AtomicBool>,
    acked: Acked,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Ledger {
    fn start(url: String) -> Ledger {
        let stop = Arc::new(AtomicBool::new(false));
        let acked: Acked = Arc::new(Mutex::new(Vec::new()));
        let (s, a) = (stop.clone(), acked.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut id = 0i64;
                while !s.load(Ordering::Relaxed) {
                    let Ok((client, conn)) =
                        tokio_postgres::connect(&url, tokio_postgres::NoTls).await
                    else {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    };
                    tokio::spawn(conn);
                    while !s.load(Ordering::Relaxed) {
                        id += 1;
                        match client
                            .execute("INSERT INTO ledger(id) VALUES ($1)", &[&id])
                            .await
                        {
                            Ok(_) => a.lock().unwrap().push((id, Utc::now())),
                            Err(_) => break,
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            });
        });
        Ledger {
            stop,
            acked,
            thread: Some(thread),
        }
    }

    fn count(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    fn finish(mut self) -> Vec<(i64, DateTime<Utc>)> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        std::mem::take(&mut *self.acked.lock().unwrap())
    }
}

fn wait_for_commits(ledger: &Ledger, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while ledger.count() < n {
        assert!(
            Instant::now() < deadline,
            "the ledger client committed only {}",
            ledger.count()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn ids_on(pg: &Postgres) -> BTreeSet<i64> {
    pg.psql("SELECT id FROM ledger")
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.parse().unwrap())
        .collect()
}

fn promote(c: &Cluster, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["promote", "--json"];
    all.extend_from_slice(args);
    let out = instarec(&c.config, &all);
    assert!(
        out.status.success(),
        "promote: {}\nstandby log:\n{}",
        text(&out),
        c.standby.log_tail(30)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("JSON: {e}\n{}", text(&out)))
}

fn epochs(archive_url: &str) -> Vec<String> {
    let dir = PathBuf::from(archive_url.trim_start_matches("file://")).join("epochs");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn assert_report_shape(report: &serde_json::Value) {
    for key in [
        "rpo_bytes",
        "rpo_seconds",
        "rto_seconds",
        "recovered_position",
        "last_known_primary_position",
        "epoch",
        "mode",
        "steps",
    ] {
        assert!(report.get(key).is_some(), "report lacks {key}: {report}");
    }
    let steps = report["steps"].as_array().unwrap();
    let names: Vec<&str> = steps.iter().map(|s| s["name"].as_str().unwrap()).collect();
    for want in ["check", "claim_epoch", "promote", "first_write"] {
        assert!(names.contains(&want), "steps {names:?} lack {want}");
    }
    assert!(steps.iter().all(|s| s["seconds"].as_f64().unwrap() >= 0.0));
    assert!(report["rto_seconds"].as_f64().unwrap() > 0.0, "{report}");
    assert_eq!(report["epoch"], 2, "{report}");
}

/// `ship` from the new primary under the new epoch: starts, archives the
/// new timeline, stops cleanly.
fn ship_from_new_primary(c: &Cluster) {
    let config = c.dir.path().join("after.toml");
    write_config(&config, &c.archive_url, &c.standby.url(), "");
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
    let ledger = Ledger::start(c.primary.url());
    wait_for_commits(&ledger, 200);
    let report = promote(&c, &["--planned"]);
    let acked = ledger.finish();
    println!("planned report: {report:#}");

    assert_report_shape(&report);
    assert_eq!(report["mode"], "planned");
    assert_eq!(report["rpo_bytes"], 0);
    assert_eq!(report["rpo_seconds"].as_f64(), Some(0.0));
    assert_eq!(report["rpo_bytes_exact"], true);
    let names: Vec<&str> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"fence_old_primary") && names.contains(&"drain_archive"));

    let on_new = ids_on(&c.standby);
    let lost: Vec<i64> = acked
        .iter()
        .map(|(id, _)| *id)
        .filter(|id| !on_new.contains(id))
        .collect();
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
        let ledger = Ledger::start(c.primary.url());
        wait_for_commits(&ledger, 50);
        std::thread::sleep(kill_after);
        c.primary.kill9();
        let acked = ledger.finish();
        let report = promote(&c, &[]);
        println!("round {round} (kill after {kill_after:?}): {report}");

        assert_report_shape(&report);
        assert_eq!(report["mode"], "failover");
        assert_eq!(report["rpo_bytes_exact"], false);
        let on_new = ids_on(&c.standby);
        let started: DateTime<Utc> = report["started_at"].as_str().unwrap().parse().unwrap();
        let rpo_seconds = report["rpo_seconds"].as_f64();
        let lost: Vec<&(i64, DateTime<Utc>)> = acked
            .iter()
            .filter(|(id, _)| !on_new.contains(id))
            .collect();
        println!(
            "round {round}: {} acknowledged, {} lost",
            acked.len(),
            lost.len()
        );
        if !lost.is_empty() {
            let seconds = rpo_seconds.expect("commits were lost, so rpo_seconds must bound them");
            let window_start = started - chrono::Duration::microseconds((seconds * 1e6) as i64);
            for (id, at) in &lost {
                assert!(
                    *at >= window_start,
                    "lost commit {id} acknowledged at {at} is older than promote start {started} - rpo {seconds}s"
                );
            }
        }
        if round == 0 {
            // The old primary comes back: its shipper, old or new, is fenced.
            ship_from_new_primary(&c);
            c.primary.restart();
            c.primary.psql("SELECT pg_switch_wal()");
            let code = c.shipper.wait_exit(Duration::from_secs(60));
            assert_eq!(code, Some(4), "old shipper; log:\n{}", c.shipper.log());
            let out = instarec(&c.config, &["ship"]);
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
    let ledger = Ledger::start(c.primary.url());
    wait_for_commits(&ledger, 100);
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
    write_config(
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
    let lost: Vec<i64> = acked
        .iter()
        .map(|(id, _)| *id)
        .filter(|id| !on_new.contains(id))
        .collect();
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
    write_config(
        &other,
        &c.archive_url,
        &c.primary.url(),
        &format!("\n[standby]\nurl = \"{}\"\n", stranger.url()),
    );
    let out = instarec(&other, &["promote"]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is system"),
        "{}",
        text(&out)
    );

    // The standby, promoted by hand: no longer a standby.
    c.standby.psql("SELECT pg_promote(true, 60)");
    let out = instarec(&c.config, &["promote", "--planned"]);
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

    let ledger = Ledger::start(format!("postgres://postgres@127.0.0.1:{listen}/postgres"));
    wait_for_commits(&ledger, 200);
    let report = promote(&c, &["--planned"]);
    // Clients keep writing through the proxy, now to the new primary.
    let before = ledger.count();
    wait_for_commits(&ledger, before + 100);
    let acked = ledger.finish();
    println!("planned via proxy: {report:#}");

    assert_report_shape(&report);
    assert_eq!(report["mode"], "planned");
    assert_eq!(report["rpo_bytes"], 0);
    assert_eq!(report["write_path"], format!("127.0.0.1:{listen}"));
    assert_eq!(report["cutover"][0]["method"], "proxy");
    let on_new = ids_on(&c.standby);
    let lost: Vec<i64> = acked
        .iter()
        .map(|(id, _)| *id)
        .filter(|id| !on_new.contains(id))
        .collect();
    assert!(lost.is_empty(), "lost acknowledged commits {lost:?}");
    let probes: i64 = c
        .standby
        .psql("SELECT count(*) FROM instarec_promote_probe")
        .parse()
        .unwrap();
    assert_eq!(probes, 1);
}
