//! `instarec demo` runs the whole story on this machine and its ledger
//! check holds: every acknowledged commit lost in the crash is covered by
//! the RPO that promote reported.

mod support;

use std::process::Command;
use support::instarec::binary;

#[test]
fn demo_crash_and_promote_reports_an_rpo_covering_the_ledger() {
    let out = Command::new(binary())
        .args(["demo", "--json", "--write-for", "2s"])
        .output()
        .expect("running instarec demo");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("demo printed no JSON ({e}):\n{stderr}"));
    assert!(v["acknowledged_commits"].as_u64().unwrap() > 50, "{v}");
    assert_eq!(v["lost_commits_covered_by_rpo"], true, "{v}");
    let report = &v["promote_report"];
    assert_eq!(report["mode"], "failover", "{v}");
    assert_eq!(report["epoch"], 2, "{v}");
    assert!(report["rto_seconds"].as_f64().unwrap() > 0.0, "{v}");
    // The demo removes its temp dir.
    let dir = v["dir"].as_str().unwrap();
    assert!(!std::path::Path::new(dir).exists(), "{dir} left behind");
}

#[test]
fn demo_planned_switchover_loses_nothing() {
    let out = Command::new(binary())
        .args(["demo", "--json", "--planned", "--write-for", "2s"])
        .output()
        .expect("running instarec demo");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["lost_commits"], 0, "{v}");
    assert_eq!(v["promote_report"]["mode"], "planned", "{v}");
    assert_eq!(v["promote_report"]["rpo_bytes"], 0, "{v}");
}
