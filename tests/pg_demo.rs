//! `instarec demo --pg-bin DIR` runs the story on the PostgreSQL major in
//! DIR (scripts/test runs this file on 15 and 18) and says which; a major
//! instarec does not support is refused before anything starts.

mod support;

use std::path::PathBuf;
use std::process::{Command, Output};
use support::instarec::{binary, text};
use support::postgres::{server_bin_dir, server_major};

fn demo(args: &[&str]) -> Output {
    Command::new(binary())
        .arg("demo")
        .args(args)
        .output()
        .expect("running instarec demo")
}

#[test]
fn demo_with_pg_bin_runs_that_major_and_names_it() {
    let bin = server_bin_dir();
    let major = server_major();
    let out = demo(&[
        "--pg-bin",
        bin.to_str().unwrap(),
        "--planned",
        "--write-for",
        "1s",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "demo failed: {}", text(&out));
    assert!(
        stdout.contains(&format!(
            "starting a PostgreSQL {major} primary ({})",
            bin.display()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("on PostgreSQL {major}: epoch 2")),
        "{stdout}"
    );
}

#[test]
fn demo_refuses_a_pg_bin_of_an_unsupported_major_or_without_postgres() {
    let old = std::env::var_os("INSTAREC_TEST_PG_UNSUPPORTED_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/instarec-pg/14/bin"));
    assert!(
        old.join("postgres").is_file(),
        "no PostgreSQL 14 in {}: run scripts/test (it fetches one) or set INSTAREC_TEST_PG_UNSUPPORTED_BIN",
        old.display()
    );
    let out = demo(&["--pg-bin", old.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        err.contains("is version 14.") && err.contains("PostgreSQL 15 to 18"),
        "{err}"
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("1/8"),
        "{}",
        text(&out)
    );

    let empty = tempfile::tempdir().unwrap();
    let out = demo(&["--pg-bin", empty.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no initdb and postgres there"),
        "{}",
        text(&out)
    );
}
