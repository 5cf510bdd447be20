//! The first steps of the PostgreSQL promote tests: a backup into the
//! archive a running shipper fills, and a hot standby initialised from it
//! that replays the archive (restore_command = instarec wal-fetch).

use super::instarec::{run, text};
use super::postgres::{new_scratch_dir, Postgres};
use std::path::Path;

/// `instarec backup`, then `instarec standby init` into a fresh scratch
/// dir; returns the standby, started. `shipper_log` goes into a failed
/// backup's message.
pub fn backup_and_standby(config: &Path, shipper_log: impl Fn() -> String) -> Postgres {
    let out = run(config, &["backup", "--json", "--wal-timeout", "60s"]);
    assert!(
        out.status.success(),
        "backup: {}\nship log:\n{}",
        text(&out),
        shipper_log()
    );
    let scratch = new_scratch_dir();
    let data = scratch.path().join("data");
    let out = run(
        config,
        &["standby", "init", "--data-dir", data.to_str().unwrap()],
    );
    assert!(out.status.success(), "standby init: {}", text(&out));
    Postgres::start_existing(scratch, data, None)
}
