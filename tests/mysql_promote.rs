//! `instarec promote` with engine = "mysql" against real MariaDB servers: a
//! primary shipped into a file:// archive, `instarec relay` serving it, and
//! a stock replica (CHANGE MASTER TO ... MASTER_USE_GTID=slave_pos) as the
//! standby. An application client keeps a ledger of every acknowledged
//! commit; after promote the ledger is compared with the new primary, and
//! the reported RPO must cover every acknowledged commit that is missing
//! (invariant 5).

mod support;

use chrono::{DateTime, Utc};
use instarec_mysql::{MariadbGtid, MariadbGtidPos};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::instarec::{binary, write_mysql_config, Shipper};
use support::process::GroupChild;
use support::{free_port, MariaDb, MariaDbOptions};

/// Rounds of kill -9 under load in the failover test.
const FAILOVER_ROUNDS: usize = 10;
const RELAY_USER: &str = "repl";
const RELAY_PASSWORD: &str = "relay-secret";
/// The application's account: an ordinary user, as clients are. (Accounts
/// with READ ONLY ADMIN, such as root here, may write despite read_only.)
const APP: &str = "app";

/// `instarec --config <config> relay`, logging to a file.
struct Relay {
    _child: GroupChild,
    log: PathBuf,
}

impl Relay {
    fn start(config: &Path, port: u16) -> Relay {
        let log = config.with_extension(format!("relay-{port}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(binary());
        cmd.arg("--config")
            .arg(config)
            .arg("relay")
            .stdout(file.try_clone().unwrap())
            .stderr(file);
        let child = GroupChild::spawn(
            "instarec relay",
            cmd,
            libc::SIGTERM,
            Duration::from_secs(10),
        )
        .expect("spawning instarec relay");
        assert!(
            support::process::wait_for_port(port, Duration::from_secs(30)),
            "relay did not listen on {port}:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        Relay { _child: child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

struct Cluster {
    primary: MariaDb,
    standby: MariaDb,
    shipper: Shipper,
    relay: Relay,
    config: PathBuf,
    archive_url: String,
    dir: tempfile::TempDir,
}

impl Cluster {
    fn app_url(&self, db: &MariaDb) -> String {
        format!("mysql://{APP}@127.0.0.1:{}/test", db.port())
    }

    fn diagnostics(&self) -> String {
        format!(
            "shipper log:\n{}\nrelay log:\n{}\nstandby error log:\n{}",
            self.shipper.log(),
            self.relay.log(),
            self.standby.log_tail(20)
        )
    }
}

/// Writes the config atomically (running commands may read it).
fn write_config(path: &Path, text: &str) {
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

fn gtid_binlog_pos(db: &MariaDb) -> String {
    db.query("SELECT @@global.gtid_binlog_pos")
}

/// Primary + shipper + relay + a read-only replica of the relay (with
/// log_slave_updates, as a promotion candidate has), caught up.
fn cluster() -> Cluster {
    let primary = MariaDb::start();
    primary.query(&format!(
        "CREATE DATABASE test; \
         CREATE TABLE test.ledger (id BIGINT PRIMARY KEY) ENGINE=InnoDB; \
         CREATE USER '{APP}'@'127.0.0.1'; \
         GRANT SELECT, INSERT ON test.* TO '{APP}'@'127.0.0.1'"
    ));
    let dir = tempfile::tempdir().unwrap();
    let archive_url = format!("file://{}/archive", dir.path().display());
    let relay_port = free_port();
    let config = write_mysql_config(dir.path(), &archive_url, &primary.url(), "");
    let base = std::fs::read_to_string(&config).unwrap();
    let with_relay = format!(
        "{base}\n[relay]\nlisten = \"127.0.0.1:{relay_port}\"\nuser = \"{RELAY_USER}\"\npassword = \"{RELAY_PASSWORD}\"\n"
    );
    write_config(&config, &with_relay);
    let shipper = Shipper::start(&config);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !dir.path().join("archive/binlog-index").exists() {
        assert!(
            Instant::now() < deadline,
            "nothing archived:\n{}",
            shipper.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let relay = Relay::start(&config, relay_port);
    let standby = MariaDb::start_with(MariaDbOptions {
        server_id: 2,
        extra_args: vec!["--log-slave-updates".into(), "--read-only".into()],
    });
    standby.query(&format!(
        "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={relay_port}, \
         MASTER_USER='{RELAY_USER}', MASTER_PASSWORD='{RELAY_PASSWORD}', \
         MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1, MASTER_HEARTBEAT_PERIOD=1; \
         START SLAVE"
    ));
    let target = gtid_binlog_pos(&primary);
    let waited = standby.query(&format!("SELECT MASTER_GTID_WAIT('{target}', 60)"));
    assert_eq!(
        waited,
        "0",
        "the replica did not reach {target}:\nrelay log:\n{}\nshipper log:\n{}",
        relay.log(),
        shipper.log()
    );
    write_config(
        &config,
        &format!(
            "{with_relay}\n[standby]\nurl = \"{}\"\n\n[promote]\nold_primary_timeout = \"1s\"\ndrain_timeout = \"20s\"\n",
            standby.url()
        ),
    );
    Cluster {
        primary,
        standby,
        shipper,
        relay,
        config,
        archive_url,
        dir,
    }
}

/// Acknowledged ledger ids and when the client saw each acknowledgement.
type Acked = Arc<Mutex<Vec<(i64, DateTime<Utc>)>>>;

/// A client committing ledger rows with increasing ids, one at a time,
/// recording each commit the server acknowledged and when; it reconnects
/// after errors (a killed session, a crashed server).
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
                use mysql_async::prelude::Queryable;
                let opts = mysql_async::Opts::from_url(&url).unwrap();
                let mut id = 0i64;
                while !s.load(Ordering::Relaxed) {
                    let connect = mysql_async::Conn::new(opts.clone());
                    let Ok(Ok(mut conn)) =
                        tokio::time::timeout(Duration::from_secs(2), connect).await
                    else {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    };
                    while !s.load(Ordering::Relaxed) {
                        id += 1;
                        let insert = conn.exec_drop("INSERT INTO ledger(id) VALUES (?)", (id,));
                        match tokio::time::timeout(Duration::from_secs(5), insert).await {
                            Ok(Ok(())) => a.lock().unwrap().push((id, Utc::now())),
                            _ => break,
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

fn ids_on(db: &MariaDb) -> BTreeSet<i64> {
    db.query("SELECT id FROM test.ledger")
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
        "promote: {}\n{}",
        text(&out),
        c.diagnostics()
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
        "rpo_transactions",
        "lost_gtids",
    ] {
        assert!(report.get(key).is_some(), "report lacks {key}: {report}");
    }
    let steps = report["steps"].as_array().unwrap();
    let names: Vec<&str> = steps.iter().map(|s| s["name"].as_str().unwrap()).collect();
    for want in [
        "check",
        "claim_epoch",
        "drain_standby",
        "promote",
        "first_write",
    ] {
        assert!(names.contains(&want), "steps {names:?} lack {want}");
    }
    assert!(steps.iter().all(|s| s["seconds"].as_f64().unwrap() >= 0.0));
    assert!(report["rto_seconds"].as_f64().unwrap() > 0.0, "{report}");
    assert_eq!(report["epoch"], 2, "{report}");
    assert!(report["rpo_transactions"].is_u64(), "{report}");
    assert!(report["lost_gtids"].is_string(), "{report}");
}

/// The new primary accepts writes, replicates from nobody, and continues
/// the old primary's GTID domain past what it replayed.
fn assert_new_primary_continues_the_domain(c: &Cluster, report: &serde_json::Value) {
    assert_eq!(c.standby.query("SELECT @@global.read_only"), "0");
    assert_eq!(c.standby.query("SHOW SLAVE STATUS"), "");
    let recovered: MariadbGtidPos = report["recovered_position"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let replicated = recovered.get(0).expect("domain 0 was replicated").seq_no;
    let gtid: MariadbGtid = c
        .standby
        .query("INSERT INTO test.ledger VALUES (-1); SELECT @@last_gtid")
        .parse()
        .unwrap();
    assert_eq!((gtid.domain_id, gtid.server_id), (0, 2), "{gtid}");
    assert!(
        gtid.seq_no > replicated,
        "new GTID {gtid} does not continue after {recovered}"
    );
}

#[test]
fn planned_switchover_loses_no_acknowledged_commit_and_fences_the_old_primary() {
    let mut c = cluster();
    let ledger = Ledger::start(c.app_url(&c.primary));
    wait_for_commits(&ledger, 200);
    let report = promote(&c, &["--planned"]);
    let acked = ledger.finish();
    println!("planned report: {report:#}");

    assert_report_shape(&report);
    assert_eq!(report["mode"], "planned");
    assert_eq!(report["rpo_bytes"], 0);
    assert_eq!(report["rpo_seconds"].as_f64(), Some(0.0));
    assert_eq!(report["rpo_bytes_exact"], true);
    assert_eq!(report["rpo_transactions"], 0);
    assert_eq!(report["lost_gtids"], "");
    assert_eq!(report["old_primary_fenced"], true);
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
    assert_eq!(
        report["recovered_position"],
        report["last_known_primary_position"]
    );
    assert_new_primary_continues_the_domain(&c, &report);

    // The old primary is read-only for the application.
    assert_eq!(c.primary.query("SELECT @@global.read_only"), "1");
    let refused = c
        .primary
        .client_command()
        .args(["-u", APP, "--protocol=TCP", "-h", "127.0.0.1", "-P"])
        .arg(c.primary.port().to_string())
        .args(["-e", "INSERT INTO test.ledger VALUES (-2)"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("read-only"),
        "{refused:?}"
    );
    // Its shipper is fenced at its next write.
    c.primary.query("FLUSH BINARY LOGS");
    let code = c.shipper.wait_exit(Duration::from_secs(30));
    assert_eq!(code, Some(4), "old shipper; log:\n{}", c.shipper.log());
}

#[test]
fn failover_after_kill9_reports_rpo_covering_every_lost_commit() {
    let mut seed = Utc::now().timestamp_subsec_nanos() as u64;
    let (mut total_lost, mut rtos) = (0, Vec::new());
    for round in 0..FAILOVER_ROUNDS {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let kill_after = Duration::from_millis(300 + (seed >> 33) % 1500);
        let mut c = cluster();
        let ledger = Ledger::start(c.app_url(&c.primary));
        wait_for_commits(&ledger, 50);
        std::thread::sleep(kill_after);
        c.primary.kill9();
        let acked = ledger.finish();
        let report = promote(&c, &[]);
        println!("round {round} (kill after {kill_after:?}): {report}");

        assert_report_shape(&report);
        assert_eq!(report["mode"], "failover");
        assert_eq!(report["rpo_bytes_exact"], false);
        assert_eq!(report["old_primary_fenced"], false);
        let on_new = ids_on(&c.standby);
        let started: DateTime<Utc> = report["started_at"].as_str().unwrap().parse().unwrap();
        let lost: Vec<&(i64, DateTime<Utc>)> = acked
            .iter()
            .filter(|(id, _)| !on_new.contains(id))
            .collect();
        println!(
            "round {round}: {} acknowledged, {} lost, rpo_transactions {} ({}), rpo_seconds {}, rto {} s",
            acked.len(),
            lost.len(),
            report["rpo_transactions"],
            report["lost_gtids"],
            report["rpo_seconds"],
            report["rto_seconds"]
        );
        if !lost.is_empty() {
            let seconds = report["rpo_seconds"]
                .as_f64()
                .expect("commits were lost, so rpo_seconds must bound them");
            let window_start = started - chrono::Duration::microseconds((seconds * 1e6) as i64);
            for (id, at) in &lost {
                assert!(
                    *at >= window_start,
                    "lost commit {id} acknowledged at {at} is older than promote start {started} - rpo {seconds}s"
                );
            }
        }
        // What the new primary holds is what the report says it recovered.
        let replayed: MariadbGtidPos = c
            .standby
            .query("SELECT @@global.gtid_current_pos")
            .parse()
            .unwrap();
        let recovered: MariadbGtidPos = report["recovered_position"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            recovered.missing_from(&replayed).is_empty(),
            "{recovered} vs {replayed}"
        );
        total_lost += lost.len();
        rtos.push(report["rto_seconds"].as_f64().unwrap());
        if round == 0 {
            assert_new_primary_continues_the_domain(&c, &report);
        }
    }
    rtos.sort_by(f64::total_cmp);
    println!(
        "{FAILOVER_ROUNDS} rounds: {total_lost} acknowledged commits lost in all, each within rpo_seconds; RTO median {:.3} s, max {:.3} s",
        rtos[rtos.len() / 2],
        rtos[rtos.len() - 1]
    );
}

#[test]
fn promoting_a_server_that_is_not_a_replica_fails_and_changes_nothing() {
    let c = cluster();
    let before = epochs(&c.archive_url);
    assert_eq!(before.len(), 1, "ship claimed epoch 1: {before:?}");

    // A lone server: never a replica.
    let lone = MariaDb::start_with(MariaDbOptions {
        server_id: 3,
        ..MariaDbOptions::default()
    });
    let other = c.dir.path().join("other.toml");
    let config = std::fs::read_to_string(&c.config).unwrap();
    write_config(&other, &config.replace(&c.standby.url(), &lone.url()));
    let lone_before = gtid_binlog_pos(&lone);
    let out = instarec(&other, &["promote", "--planned"]);
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is not a standby") && err.contains("nothing was changed"),
        "{}",
        text(&out)
    );
    assert_eq!(gtid_binlog_pos(&lone), lone_before);

    // The replica, promoted by hand: no longer a replica.
    c.standby.query("STOP SLAVE; RESET SLAVE ALL");
    let out = instarec(&c.config, &["promote"]);
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("127.0.0.1:{} is not a standby", c.standby.port()))
            && err.contains("nothing was changed"),
        "{}",
        text(&out)
    );

    assert_eq!(epochs(&c.archive_url), before, "no epoch was claimed");
    assert_eq!(c.primary.query("SELECT @@global.read_only"), "0");
    assert_eq!(c.standby.query("SELECT @@global.read_only"), "1");
    let ledger = Ledger::start(c.app_url(&c.primary));
    wait_for_commits(&ledger, 1);
    ledger.finish();
}
