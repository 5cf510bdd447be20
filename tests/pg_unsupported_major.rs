//! A PostgreSQL major older than instarec supports (a real 14 server, which
//! scripts/test fetches) is refused with exit 2, a message naming its
//! version and the supported range, and nothing written to the archive.

mod support;

use std::path::PathBuf;
use support::instarec::{run as instarec, text};
use support::{PgOptions, Postgres};

/// Names the bin dir of a PostgreSQL 14 build; scripts/test sets it.
const UNSUPPORTED_BIN_ENV: &str = "INSTAREC_TEST_PG_UNSUPPORTED_BIN";

fn unsupported_bin_dir() -> PathBuf {
    let dir = std::env::var_os(UNSUPPORTED_BIN_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/instarec-pg/14/bin"));
    assert!(
        dir.join("postgres").is_file(),
        "no PostgreSQL 14 in {}: run scripts/test (it fetches one) or set {UNSUPPORTED_BIN_ENV}",
        dir.display()
    );
    dir
}

#[test]
fn ship_and_backup_refuse_postgres_14_naming_it_and_the_range_and_write_nothing() {
    let pg = Postgres::start_with(PgOptions {
        bin_dir: Some(unsupported_bin_dir()),
        ..Default::default()
    });
    assert_eq!(pg.psql("SHOW server_version_num").get(..2), Some("14"));
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive");
    let config = dir.path().join("instarec.toml");
    std::fs::write(
        &config,
        format!(
            "[archive]\nurl = \"file://{}\"\n\n[primary]\nurl = \"{}\"\n",
            archive.display(),
            pg.url()
        ),
    )
    .unwrap();
    for args in [&["backup"][..], &["ship"][..]] {
        let out = instarec(&config, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(
            err.contains("is version 14.") && err.contains("PostgreSQL 15 to 18"),
            "{args:?} names the version and the range: {err}"
        );
        let written: Vec<_> = walk(&archive);
        assert!(written.is_empty(), "{args:?} wrote {written:?}");
    }
    assert_eq!(
        pg.psql("SELECT count(*) FROM pg_replication_slots"),
        "0",
        "no slot was created"
    );
}

/// Every file under `dir` (none if it does not exist).
fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .flat_map(|e| {
            let path = e.path();
            if path.is_dir() {
                walk(&path)
            } else {
                vec![path]
            }
        })
        .collect()
}
