//! `instarec promote` with engine = "mysql" against real MariaDB servers: a
//! primary shipped into a file:// archive, `instarec relay` serving it, and
//! a stock replica (CHANGE MASTER TO ... MASTER_USE_GTID=slave_pos) as the
//! standby. An application client keeps a ledger of every acknowledged
//! commit; after promote the ledger is compared with the new primary, and
//! the reported RPO must cover every acknowledged commit that is missing
//! (invariant 5). With semi-sync on, none may be missing.

mod support;

use chrono::Utc;
use instarec_mysql::{MariadbGtid, MariadbGtidPos};
use std::time::Duration;
use support::instarec::run;
use support::mariadb_topology::{
    assert_lost_within_rpo, assert_refused_as_not_a_standby, gtid_binlog_pos, ids_on, lost_ids,
    semi_sync_status, write_config, Cluster, APP,
};
use support::promote::assert_planned_report;
use support::{MariaDb, MariaDbOptions};

/// Rounds of kill -9 under load in the failover test.
const FAILOVER_ROUNDS: usize = 10;

fn assert_report_shape(report: &serde_json::Value) {
    support::promote::assert_report_shape(
        report,
        &["rpo_transactions", "lost_gtids"],
        &["drain_standby"],
    );
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

/// What the new primary holds is what the report says it recovered.
fn assert_new_primary_holds_what_was_recovered(c: &Cluster, report: &serde_json::Value) {
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
}

/// The next kill -9 delay of a failover round: 300..1800 ms, from `seed`.
fn next_kill_delay(seed: &mut u64) -> Duration {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    Duration::from_millis(300 + (*seed >> 33) % 1500)
}

#[test]
fn planned_switchover_loses_no_acknowledged_commit_and_fences_the_old_primary() {
    let mut c = Cluster::start();
    let ledger = c.ledger_through(c.primary.port());
    ledger.wait_for(200);
    let report = c.promote(&["--planned"]);
    let acked = ledger.finish();
    println!("planned report: {report:#}");

    assert_report_shape(&report);
    assert_planned_report(&report);
    assert_eq!(report["rpo_transactions"], 0);
    assert_eq!(report["lost_gtids"], "");
    assert_eq!(report["old_primary_fenced"], true);

    let lost = lost_ids(&acked, &ids_on(&c.standby));
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
        let kill_after = next_kill_delay(&mut seed);
        let mut c = Cluster::start();
        let ledger = c.ledger_through(c.primary.port());
        ledger.wait_for(50);
        std::thread::sleep(kill_after);
        c.primary.kill9();
        let acked = ledger.finish();
        let report = c.promote(&[]);
        println!("round {round} (kill after {kill_after:?}): {report}");

        assert_report_shape(&report);
        assert_eq!(report["mode"], "failover");
        assert_eq!(report["rpo_bytes_exact"], false);
        assert_eq!(report["old_primary_fenced"], false);
        let on_new = ids_on(&c.standby);
        let lost = assert_lost_within_rpo(&report, &acked, &on_new);
        println!(
            "round {round}: {} acknowledged, {} lost, rpo_transactions {} ({}), rpo_seconds {}, rto {} s",
            acked.len(),
            lost.len(),
            report["rpo_transactions"],
            report["lost_gtids"],
            report["rpo_seconds"],
            report["rto_seconds"]
        );
        assert_new_primary_holds_what_was_recovered(&c, &report);
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

/// Semi-sync: the primary waits for the shipper's ack (the data durable in
/// the archive) before a commit returns, so a failover after kill -9 at a
/// random time loses no acknowledged commit. The report's RPO is not
/// asserted to be 0: a dead primary cannot say whether semi-sync had
/// fallen back to async, so promote reports a bound, which must be sane.
#[test]
fn semi_sync_failover_loses_no_acknowledged_commit() {
    let mut seed = Utc::now().timestamp_subsec_nanos() as u64;
    let (mut total_acked, mut rtos) = (0, Vec::new());
    for round in 0..FAILOVER_ROUNDS {
        let kill_after = next_kill_delay(&mut seed);
        let mut c = Cluster::start_semi_sync();
        let ledger = c.ledger_through(c.primary.port());
        ledger.wait_for(50);
        std::thread::sleep(kill_after);
        // Read just before the kill: semi-sync was on and no commit went
        // without the shipper's ack, so the round tests semi-sync.
        let semi_sync = semi_sync_status(&c.primary, "Rpl_semi_sync_master_status");
        let unacked = semi_sync_status(&c.primary, "Rpl_semi_sync_master_no_tx");
        c.primary.kill9();
        let acked = ledger.finish();
        assert_eq!(semi_sync, "ON", "{}", c.diagnostics());
        assert_eq!(unacked, "0", "commits without the shipper's ack");
        let report = c.promote(&[]);
        println!("round {round} (kill after {kill_after:?}): {report}");

        assert_report_shape(&report);
        assert_eq!(report["old_primary_fenced"], false);
        let rpo = &report["rpo_seconds"];
        assert!(
            rpo.is_null() || rpo.as_f64().is_some_and(|s| s >= 0.0),
            "rpo_seconds {rpo}"
        );
        let lost = lost_ids(&acked, &ids_on(&c.standby));
        assert!(acked.len() >= 50);
        assert!(
            lost.is_empty(),
            "round {round}: semi-sync failover lost acknowledged commits {lost:?} of {}\n{}",
            acked.len(),
            c.diagnostics()
        );
        assert_new_primary_holds_what_was_recovered(&c, &report);
        println!(
            "round {round}: {} acknowledged, 0 lost; mode {}, rpo_seconds {}, rpo_transactions {}, rto {} s",
            acked.len(),
            report["mode"],
            rpo,
            report["rpo_transactions"],
            report["rto_seconds"]
        );
        total_acked += acked.len();
        rtos.push(report["rto_seconds"].as_f64().unwrap());
        if round == 0 {
            assert_new_primary_continues_the_domain(&c, &report);
        }
    }
    rtos.sort_by(f64::total_cmp);
    println!(
        "{FAILOVER_ROUNDS} semi-sync rounds: {total_acked} acknowledged commits, none lost; RTO median {:.3} s, max {:.3} s",
        rtos[rtos.len() / 2],
        rtos[rtos.len() - 1]
    );
}

#[test]
fn promoting_a_server_that_is_not_a_replica_fails_and_changes_nothing() {
    let c = Cluster::start();
    let before = c.epochs();
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
    let out = run(&other, &["promote", "--planned"]);
    assert_refused_as_not_a_standby(&out, &format!("127.0.0.1:{}", lone.port()));
    assert_eq!(gtid_binlog_pos(&lone), lone_before);

    // The replica, promoted by hand: no longer a replica.
    c.standby.query("STOP SLAVE; RESET SLAVE ALL");
    let out = run(&c.config, &["promote"]);
    assert_refused_as_not_a_standby(&out, &format!("127.0.0.1:{}", c.standby.port()));

    assert_eq!(c.epochs(), before, "no epoch was claimed");
    assert_eq!(c.primary.query("SELECT @@global.read_only"), "0");
    assert_eq!(c.standby.query("SELECT @@global.read_only"), "1");
    let ledger = c.ledger_through(c.primary.port());
    ledger.wait_for(1);
    ledger.finish();
}
