//! The end-to-end test harness: real PostgreSQL, MariaDB and S3 (moto)
//! servers on 127.0.0.1, each in its own scratch dir and process group, gone
//! when the handle drops — also when the test panics.
//!
//! Each tests/*.rs file does `mod support;` and uses what it needs, hence
//! the blanket dead_code allowance (and unused_imports for the re-exports).
#![allow(dead_code, unused_imports)]

pub mod haproxy;
pub mod hooked_store;
pub mod http;
pub mod instarec;
pub mod ledger;
pub mod mariadb;
pub mod mariadb_topology;
pub mod mariadb_writer;
pub mod moto;
pub mod pg_archive_standby;
pub mod pg_ledger;
pub mod postgres;
pub mod postgres_shm;
pub mod process;
pub mod promote;
pub mod relay;
pub mod service_user;

use std::path::{Path, PathBuf};

pub use mariadb::{MariaDb, MariaDbOptions};
pub use moto::Moto;
pub use postgres::{PgOptions, Postgres};
pub use process::free_port;

/// Dirs searched after PATH: Debian keeps PostgreSQL and some daemons off PATH.
const EXTRA_BIN_DIRS: &[&str] = &[
    "/usr/lib/postgresql/15/bin",
    "/usr/sbin",
    "/usr/local/sbin",
    "/sbin",
];

/// The full path of executable `name`, or a panic naming the Debian package
/// to install. Tests never skip silently when a tool is missing.
pub fn require_binary(name: &str, package: &str) -> PathBuf {
    find_binary(name).unwrap_or_else(|| {
        panic!("{name} not found: install Debian package {package} (scripts/test does this)")
    })
}

/// The full path of executable `name` on PATH or in the usual sbin dirs.
pub fn find_binary(name: &str) -> Option<PathBuf> {
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    path_dirs
        .into_iter()
        .chain(EXTRA_BIN_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}
