//! `instarec demo` runs the whole story on this machine and its ledger
//! check holds: every acknowledged commit lost in the crash is covered by
//! the RPO that promote reported.

mod support;

use std::process::{Command, Output};
use support::instarec::binary;

/// `instarec <args>`, to completion.
fn demo(args: &[&str]) -> Output {
    Command::new(binary())
        .args(args)
        .output()
        .expect("running instarec demo")
}

#[test]
fn demo_crash_and_promote_reports_an_rpo_covering_the_ledger() {
    let out = demo(&["demo", "--json", "--write-for", "2s"]);
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
    let out = demo(&["demo", "--json", "--planned", "--write-for", "2s"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["lost_commits"], 0, "{v}");
    assert_eq!(v["promote_report"]["mode"], "planned", "{v}");
    assert_eq!(v["promote_report"]["rpo_bytes"], 0, "{v}");
}

/// The numbers in the demo's line
/// "ledger: A commits acknowledged, P present on the new primary, M missing, all within the reported RPO (S s)".
fn ledger_line(stdout: &str) -> (u64, u64, u64, &str) {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("ledger: "))
        .unwrap_or_else(|| panic!("no ledger line in:\n{stdout}"));
    let numbers: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|w| !w.is_empty())
        .take(3)
        .map(|w| w.parse().unwrap())
        .collect();
    let verdict = line.rsplit(", ").next().unwrap();
    (numbers[0], numbers[1], numbers[2], verdict)
}

/// The demo's directory, from its first line "working in DIR".
fn work_dir(stdout: &str) -> std::path::PathBuf {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("working in "))
        .unwrap_or_else(|| panic!("no `working in` line in:\n{stdout}"))
        .into()
}

/// Processes whose command line mentions `dir` (servers, instarec children).
fn processes_under(dir: &std::path::Path) -> Vec<String> {
    let needle = dir.display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&needle))
        .collect()
}

#[test]
fn demo_on_mariadb_crash_and_promote_verifies_every_acknowledged_commit_against_the_rpo() {
    let out = demo(&["demo", "--engine", "mysql", "--write-for", "2s"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "demo failed:\n{stdout}\n{stderr}"
    );
    let (acknowledged, present, missing, verdict) = ledger_line(&stdout);
    assert!(acknowledged > 50, "{stdout}");
    assert_eq!(present, acknowledged - missing, "{stdout}");
    assert!(
        verdict.starts_with("all within the reported RPO"),
        "{stdout}"
    );
    assert!(stdout.contains("promote (failover): epoch 2"), "{stdout}");
    // MariaDB's RPO also counts transactions.
    assert!(
        stdout.contains(" transactions were not in the archive"),
        "{stdout}"
    );
    // The RPO in plain words, no stray spacing.
    let rpo = stdout
        .lines()
        .find(|l| l.starts_with("  RPO  "))
        .unwrap_or_else(|| panic!("no RPO line:\n{stdout}"));
    assert!(
        rpo.contains("acknowledged commit") && rpo.contains("before the crash could have been"),
        "{rpo}"
    );
    for line in stdout.lines() {
        assert_eq!(line, line.trim_end(), "trailing space: {line:?}");
    }
    let tx = stdout
        .lines()
        .find(|l| l.contains(" transactions were not in the archive"))
        .unwrap();
    assert!(!tx.trim_start().contains("  "), "stray spacing: {tx:?}");
    for step in ["claim_epoch", "drain_standby", "promote", "first_write"] {
        assert!(
            stdout.contains(&format!("       {step} ")),
            "{step}: {stdout}"
        );
    }
    // Every server and child is gone, and so is the temp dir.
    let dir = work_dir(&stdout);
    assert_eq!(processes_under(&dir), Vec::<String>::new());
    assert!(!dir.exists(), "{} left behind", dir.display());
}

#[test]
fn demo_on_mariadb_planned_switchover_loses_nothing_and_keep_leaves_the_dir() {
    let out = demo(&[
        "demo",
        "--engine",
        "mariadb",
        "--planned",
        "--keep",
        "--json",
        "--write-for",
        "1s",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("demo printed no JSON ({e}):\n{stderr}"));
    assert_eq!(v["engine"], "mysql", "{v}");
    assert!(v["acknowledged_commits"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(v["lost_commits"], 0, "{v}");
    assert_eq!(v["present_commits"], v["acknowledged_commits"], "{v}");
    let report = &v["promote_report"];
    assert_eq!(report["mode"], "planned", "{v}");
    assert_eq!(report["rpo_transactions"], 0, "{v}");
    assert_eq!(report["lost_gtids"], "", "{v}");
    // --keep: the servers are stopped, their data dirs and the archive stay.
    let dir = std::path::PathBuf::from(v["dir"].as_str().unwrap());
    let _cleanup = RemoveOnDrop(dir.clone());
    assert_eq!(v["dir_kept"], true, "{v}");
    assert_eq!(processes_under(&dir), Vec::<String>::new());
    for kept in [
        "archive",
        "primary",
        "standby",
        "instarec.toml",
        "promote.log",
    ] {
        assert!(
            dir.join(kept).exists(),
            "{kept} not kept in {}",
            dir.display()
        );
    }
    // The kept config names the promoted standby as [primary].
    let config: toml::Table = std::fs::read_to_string(dir.join("instarec.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let new_primary = report["new_primary"].as_str().unwrap();
    let url = config["primary"]["url"].as_str().unwrap();
    assert!(
        url.contains(new_primary),
        "[primary] url {url} is not {new_primary}"
    );
    assert!(config.get("standby").is_none(), "{config}");
}

/// Removes a directory the demo kept, also when the test panics.
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn demo_into_a_non_empty_dir_is_a_usage_error_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("precious"), "keep").unwrap();
    let out = demo(&["demo", "--dir", dir.path().to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("is not empty"), "{stderr}");
    let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(
        entries.len(),
        1,
        "the demo wrote into {}",
        dir.path().display()
    );
}

#[test]
fn demo_with_an_unknown_engine_is_a_usage_error_naming_the_choices() {
    let out = demo(&["demo", "--engine", "oracle"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("'oracle'") && stderr.contains("postgres") && stderr.contains("mysql"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "started anyway");
}
