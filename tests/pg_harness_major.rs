//! The PostgreSQL tests run on the major `$INSTAREC_TEST_PG_BIN` names
//! (scripts/test runs them on 15, 16, 17 and 18): a run that silently fell
//! back to Debian's 15 would test nothing new.

mod support;

use support::postgres::{pg_bin, server_bin_dir, server_major, PG_BIN_ENV};
use support::Postgres;

#[test]
fn the_server_under_test_is_the_major_the_bin_dir_holds() {
    let pg = Postgres::start();
    let num: u32 = pg.psql("SHOW server_version_num").parse().unwrap();
    assert_eq!(
        num / 10000,
        server_major(),
        "server_version_num {num} is not the major of {}",
        server_bin_dir().display()
    );
    if let Some(dir) = std::env::var_os(PG_BIN_ENV).filter(|d| !d.is_empty()) {
        assert_eq!(
            pg_bin("postgres").parent(),
            Some(std::path::Path::new(&dir))
        );
    }
    // Client tools stay Debian's 15 and must still talk to the server.
    assert_eq!(pg.psql("SELECT 1"), "1");
}
