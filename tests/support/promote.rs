//! `instarec promote` as the promote tests of both engines run it and read
//! what it left: its JSON report and the epochs it claimed.

use super::instarec::{run, text};
use std::path::Path;

/// `instarec --config <config> promote --json <args>`, which must succeed;
/// its report. `diagnostics` (server and daemon logs) is added to the
/// failure message.
pub fn promote_json(
    config: &Path,
    args: &[&str],
    diagnostics: impl FnOnce() -> String,
) -> serde_json::Value {
    let mut all = vec!["promote", "--json"];
    all.extend_from_slice(args);
    let out = run(config, &all);
    assert!(
        out.status.success(),
        "promote: {}\n{}",
        text(&out),
        diagnostics()
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("JSON: {e}\n{}", text(&out)))
}

/// The report has every key and step both engines report, plus the
/// engine's own `engine_keys` and `engine_steps`; timings are sane and the
/// promote claimed epoch 2.
pub fn assert_report_shape(
    report: &serde_json::Value,
    engine_keys: &[&str],
    engine_steps: &[&str],
) {
    let keys = [
        "rpo_bytes",
        "rpo_seconds",
        "rto_seconds",
        "recovered_position",
        "last_known_primary_position",
        "epoch",
        "mode",
        "steps",
    ];
    for key in keys.iter().chain(engine_keys) {
        assert!(report.get(key).is_some(), "report lacks {key}: {report}");
    }
    let steps = report["steps"].as_array().unwrap();
    let names: Vec<&str> = steps.iter().map(|s| s["name"].as_str().unwrap()).collect();
    let common_steps = ["check", "claim_epoch", "promote", "first_write"];
    for want in common_steps.iter().chain(engine_steps) {
        assert!(names.contains(want), "steps {names:?} lack {want}");
    }
    assert!(steps.iter().all(|s| s["seconds"].as_f64().unwrap() >= 0.0));
    assert!(report["rto_seconds"].as_f64().unwrap() > 0.0, "{report}");
    assert_eq!(report["epoch"], 2, "{report}");
}

/// A planned switchover's report: nothing lost, exactly, after fencing the
/// old primary and draining the archive.
pub fn assert_planned_report(report: &serde_json::Value) {
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
}

/// The names under a file:// archive's epochs/ prefix, sorted.
pub fn epoch_names(archive_dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(archive_dir.join("epochs"))
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                // Not the store's staging files ("<n>#1") of a claim in flight:
                // that epoch does not exist until the file is renamed.
                .filter(|name| name.len() == 20 && name.bytes().all(|b| b.is_ascii_digit()))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}
