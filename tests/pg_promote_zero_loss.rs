//! Zero-loss mode survives losing the primary's host. With
//! `synchronous = true`, `synchronous_standby_names = 'instarec'` and
//! `follow_promotions = true`, the primary and its shipper are killed -9
//! together under a ledger writing through `instarec proxy`, and the
//! shipper is restarted with the same config, as a service manager would.
//! `instarec promote` must complete (the promoted standby inherited
//! synchronous_standby_names, and no shipper streams from it yet), the
//! first write through the proxy must land within the RTO bound, the
//! restarted shipper must ship from the primary the epoch names, promote
//! must restore zero-loss mode once it does, and no acknowledged commit may
//! be lost.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::instarec::{binary, write_config, Shipper};
use support::ledger::{ids_in, lost_ids};
use support::pg_archive_standby::backup_and_standby;
use support::pg_ledger::pg_ledger;
use support::postgres::new_scratch_dir;
use support::process::{wait_for_port, GroupChild};
use support::promote::promote_json;
use support::{free_port, PgOptions, Postgres};

/// Well above what a failover takes here (about 2 s), well below the 30 s
/// a first write waited for a shipper that never came.
const RTO_BOUND_SECONDS: f64 = 12.0;

/// `instarec ship` under a service manager: restarted 300 ms after it
/// exits, whatever the reason, until the test ends.
struct ShipperService {
    current: Arc<Mutex<Option<Shipper>>>,
    logs: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ShipperService {
    fn start(config: &Path) -> ShipperService {
        let current = Arc::new(Mutex::new(Some(Shipper::start(config))));
        let logs = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, l, s, config) = (
            current.clone(),
            logs.clone(),
            stop.clone(),
            config.to_path_buf(),
        );
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                let mut guard = c.lock().unwrap();
                let exited = guard
                    .as_mut()
                    .is_none_or(|sh| sh.wait_exit(Duration::ZERO).is_some());
                if exited {
                    if let Some(old) = guard.take() {
                        l.lock().unwrap().push(old.log());
                    }
                    drop(guard);
                    std::thread::sleep(Duration::from_millis(300));
                    if !s.load(Ordering::Relaxed) {
                        *c.lock().unwrap() = Some(Shipper::start(&config));
                    }
                }
            }
        });
        ShipperService {
            current,
            logs,
            stop,
            thread: Some(thread),
        }
    }

    /// kill -9 of the running shipper, as when its host dies.
    fn kill9(&self) {
        if let Some(mut sh) = self.current.lock().unwrap().take() {
            sh.child.kill9();
            self.logs.lock().unwrap().push(sh.log());
        }
    }

    fn logs(&self) -> String {
        let mut all = self.logs.lock().unwrap().join("\n--- restarted ---\n");
        if let Some(sh) = self.current.lock().unwrap().as_ref() {
            all.push_str("\n--- running ---\n");
            all.push_str(&sh.log());
        }
        all
    }
}

impl Drop for ShipperService {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(sh) = self.current.lock().unwrap().take() {
            sh.stop();
        }
    }
}

fn config_text(archive_url: &str, primary_url: &str, rest: &str) -> String {
    format!(
        "[archive]\nurl = \"{archive_url}\"\n\n[primary]\nengine = \"postgres\"\nurl = \"{primary_url}\"\nflush_interval = \"200ms\"\nsynchronous = true\nfollow_promotions = true\n{rest}"
    )
}

fn start_proxy(config: &Path, dir: &Path, listen: u16) -> GroupChild {
    let log = std::fs::File::create(dir.join("proxy.log")).unwrap();
    let mut cmd = Command::new(binary());
    cmd.arg("--config")
        .arg(config)
        .arg("proxy")
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    let proxy = GroupChild::spawn(
        "instarec proxy",
        cmd,
        libc::SIGTERM,
        Duration::from_secs(10),
    )
    .unwrap();
    assert!(wait_for_port(listen, Duration::from_secs(30)));
    proxy
}

#[test]
fn zero_loss_failover_after_losing_the_primary_host_completes_and_loses_nothing() {
    let mut primary = Postgres::start_with(PgOptions {
        synchronous_standby_names: Some("instarec".into()),
        ..Default::default()
    });
    primary.psql("SET synchronous_commit = local; CREATE TABLE ledger(id bigint PRIMARY KEY)");
    let dir = new_scratch_dir();
    let archive_url = format!("file://{}/archive", dir.path().display());
    let config: PathBuf = dir.path().join("instarec.toml");
    write_config(&config, &config_text(&archive_url, &primary.url(), ""));
    let service = ShipperService::start(&config);
    let standby = backup_and_standby(&config, || service.logs());
    let (listen, control) = (free_port(), free_port());
    write_config(
        &config,
        &config_text(
            &archive_url,
            &primary.url(),
            &format!(
                "\n[standby]\nurl = \"{}\"\n\n[promote]\nold_primary_timeout = \"1s\"\ndrain_timeout = \"20s\"\n\n[cutover]\nmethod = \"proxy\"\nlisten = \"127.0.0.1:{listen}\"\nproxy_control = \"127.0.0.1:{control}\"\n",
                standby.url()
            ),
        ),
    );
    let _proxy = start_proxy(&config, dir.path(), listen);

    let ledger = pg_ledger(format!("postgres://postgres@127.0.0.1:{listen}/postgres"));
    ledger.wait_for(100);
    // The primary's host dies: the primary and its shipper together.
    service.kill9();
    primary.kill9();
    let at_kill = ledger.count();

    let report = promote_json(&config, &[], || {
        format!(
            "standby log:\n{}\nship logs:\n{}",
            standby.log_tail(30),
            service.logs()
        )
    });
    println!("zero-loss failover report: {report:#}");
    // Clients keep committing through the proxy, to the new primary.
    ledger.wait_for(at_kill + 100);
    let acked = ledger.finish();

    assert_eq!(report["mode"], "synchronous", "{report}");
    let rto = report["rto_seconds"].as_f64().unwrap();
    assert!(
        rto < RTO_BOUND_SECONDS,
        "first write through the proxy after {rto} s: {report}"
    );
    let sync = report["synchronous_after_promote"].as_str().unwrap_or("");
    assert!(
        sync.starts_with("restored after"),
        "zero-loss mode was not restored: {report}\nship logs:\n{}",
        service.logs()
    );
    assert_eq!(
        standby.psql("SHOW synchronous_standby_names"),
        "instarec",
        "the new primary waits for the shipper again"
    );
    let logs = service.logs();
    assert!(
        logs.contains("the archive's current epoch names another primary"),
        "the restarted shipper followed the epoch:\n{logs}"
    );
    let on_new = ids_in(&standby.psql("SELECT id FROM ledger"));
    let lost = lost_ids(&acked, &on_new);
    assert!(acked.len() >= 200, "{} acknowledged", acked.len());
    assert!(
        lost.is_empty(),
        "zero-loss mode lost acknowledged commits {lost:?}"
    );
}
