//! The harness itself: servers start, answer, survive what tests do to them,
//! and leave nothing behind — after a normal drop, a panic, or the test
//! process being SIGKILLed.

mod support;

use std::io::{BufRead, BufReader};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::http;
use support::postgres_shm::OrphanedShm;
use support::process::{descendants_of, pid_alive, port_open};
use support::{MariaDb, MariaDbOptions, Moto, PgOptions, Postgres};

/// Waits up to 10 s for all of `pids` to be gone; a SIGKILLed process
/// takes a moment to die, and orphaned PostgreSQL children poll for
/// postmaster death.
fn all_gone_soon(pids: &[u32]) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if !pids.iter().any(|pid| pid_alive(*pid)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn postgres_mariadb_and_moto_answer_then_vanish_on_drop() {
    let pg = Postgres::start();
    let maria = MariaDb::start();
    let moto = Moto::start();

    assert_eq!(pg.psql("SELECT 1"), "1");
    let major = support::postgres::server_major().to_string();
    assert_eq!(pg.psql("SHOW server_version_num").get(..2), Some(&*major));
    assert_eq!(pg.psql("SHOW wal_level"), "replica");
    assert_eq!(pg.psql("SHOW listen_addresses"), "127.0.0.1");
    assert!(pg
        .url()
        .ends_with(&format!("@127.0.0.1:{}/postgres", pg.port())));

    assert_eq!(maria.query("SELECT 1"), "1");
    assert_eq!(
        maria.query("SELECT @@log_bin, @@binlog_format, @@gtid_strict_mode, @@server_id"),
        "1\tROW\t1\t1"
    );
    assert_eq!(maria.query("SELECT CURRENT_USER()"), "root@127.0.0.1");
    // The harness's own root@127.0.0.1 setup must not leave GTIDs behind.
    assert_eq!(maria.query("SELECT @@gtid_binlog_pos"), "");
    assert_eq!(
        maria.url(),
        format!("mysql://root@127.0.0.1:{}/", maria.port())
    );

    let key = format!("/{}/smoke/hello.txt", moto.bucket());
    let put = moto.request("PUT", &key, b"hello archive");
    assert_eq!(put.status, 200, "PUT {key}: {}", put.body_text());
    let get = moto.request("GET", &key, b"");
    assert_eq!(get.status, 200, "GET {key}: {}", get.body_text());
    assert_eq!(get.body, b"hello archive");
    assert_eq!(moto.get_object("nope"), None);
    moto.put_object("smoke/chunk", &[7u8; 100_000]);
    assert_eq!(moto.get_object("smoke/chunk"), Some(vec![7u8; 100_000]));
    // Plain HTTP with no Authorization at all is anonymous to moto: refused.
    let anonymous = http::request(moto.port(), "GET", &key, &[], b"").expect("anonymous GET");
    assert_eq!(anonymous.status, 403);

    let servers = [
        (
            "postgres",
            pg.pid().expect("postgres running"),
            pg.port(),
            pg.scratch_dir().to_path_buf(),
        ),
        (
            "mariadbd",
            maria.pid().expect("mariadbd running"),
            maria.port(),
            maria.scratch_dir().to_path_buf(),
        ),
        ("moto_server", moto.pid(), moto.port(), PathBuf::new()),
    ];
    for (name, pid, port, _) in &servers {
        assert!(pid_alive(*pid), "{name} pid {pid} should be running");
        assert!(port_open(*port), "{name} port {port} should be open");
    }
    let pg_children = pg.child_pids();
    assert!(!pg_children.is_empty(), "postmaster without children?");

    drop(pg);
    drop(maria);
    drop(moto);

    assert!(
        all_gone_soon(&pg_children),
        "postgres children {pg_children:?} outlived the drop"
    );
    for (name, pid, port, dir) in &servers {
        assert!(!pid_alive(*pid), "{name} pid {pid} still alive after drop");
        assert!(
            !port_open(*port),
            "{name} port {port} still open after drop"
        );
        if !dir.as_os_str().is_empty() {
            assert!(
                !dir.exists(),
                "{name} scratch dir {} left behind",
                dir.display()
            );
        }
    }
}

#[test]
fn a_panicking_test_still_tears_down_its_postgres() {
    let mut seen: Option<(u32, Vec<u32>, u16, PathBuf)> = None;
    let result = catch_unwind(AssertUnwindSafe(|| {
        let pg = Postgres::start();
        assert_eq!(pg.psql("SELECT 1"), "1");
        seen = Some((
            pg.pid().expect("running"),
            pg.child_pids(),
            pg.port(),
            pg.scratch_dir().to_path_buf(),
        ));
        panic!("deliberate panic with a live Postgres");
    }));
    assert!(result.is_err(), "the closure must have panicked");
    let (pid, children, port, dir) = seen.expect("postgres started before the panic");
    assert!(!pid_alive(pid), "postmaster {pid} survived the panic");
    assert!(!children.is_empty(), "postmaster without children?");
    assert!(
        all_gone_soon(&children),
        "postgres children {children:?} survived the panic"
    );
    assert!(!port_open(port), "port {port} still open after the panic");
    assert!(
        !dir.exists(),
        "scratch dir {} survived the panic",
        dir.display()
    );
}

#[test]
fn postgres_keeps_committed_rows_across_kill9_and_stop() {
    let mut pg = Postgres::start();
    pg.psql("CREATE TABLE t (id int primary key); INSERT INTO t SELECT generate_series(1, 100);");
    let old_pid = pg.pid().expect("running");
    let old_children = pg.child_pids();
    assert!(!old_children.is_empty(), "postmaster without children?");

    pg.kill9();
    assert!(!pid_alive(old_pid), "postmaster {old_pid} survived kill9");
    assert!(
        all_gone_soon(&old_children),
        "postgres children {old_children:?} survived kill9"
    );
    assert!(
        pg.try_psql("SELECT 1").is_err(),
        "killed server still answers"
    );

    pg.restart();
    assert_eq!(pg.psql("SELECT count(*) FROM t"), "100");
    assert!(
        pg.log_tail(200).contains("not properly shut down"),
        "no crash recovery in log"
    );

    pg.stop();
    assert!(!port_open(pg.port()));
    pg.restart();
    pg.psql("INSERT INTO t VALUES (101)");
    assert_eq!(pg.psql("SELECT count(*) FROM t"), "101");

    let bench = pg.pgbench(&["-i", "-s", "1", "-q"]);
    assert!(
        bench.status.success(),
        "pgbench -i: {}",
        String::from_utf8_lossy(&bench.stderr)
    );
    assert_eq!(pg.psql("SELECT count(*) FROM pgbench_branches"), "1");

    // Killed and never restarted: dropping it must still free its shared memory.
    let shm = OrphanedShm::of_running_server(pg.pid().expect("running"), pg.data_dir());
    assert!(!shm.files().is_empty(), "no /dev/shm segments seen");
    let shmid = shm.sysv_shmid().expect("SysV shmid in postmaster.pid");
    pg.kill9();
    assert!(
        shm.files().iter().all(|f| f.exists()),
        "kill -9 cleaned up by itself?"
    );
    drop(pg);
    for file in shm.files() {
        assert!(!file.exists(), "{} left behind", file.display());
    }
    // SAFETY: IPC_STAT into a zeroed, correctly sized buffer.
    let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::shmctl(shmid, libc::IPC_STAT, &mut ds) };
    assert_eq!(rc, -1, "SysV segment {shmid} left behind");
}

#[test]
fn postgres_options_take_effect() {
    let pg = Postgres::start_with(PgOptions {
        synchronous_standby_names: Some("instarec".into()),
        extra_conf: vec![("cluster_name".into(), "it's quoted".into())],
        scram_password: Some("s3cret:pw".into()),
        wal_segment_size_mb: Some(1),
        bin_dir: None,
    });
    assert_eq!(pg.psql("SHOW wal_segment_size"), "1MB");
    assert_eq!(pg.psql("SHOW synchronous_standby_names"), "instarec");
    assert_eq!(pg.psql("SHOW password_encryption"), "scram-sha-256");
    assert_eq!(pg.psql("SHOW cluster_name"), "it's quoted");
    assert!(
        pg.url().contains("postgres:s3cret%3Apw@127.0.0.1"),
        "{}",
        pg.url()
    );
    assert_eq!(
        pg.psql(
            "SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid WHERE rolname = 'postgres'"
        ),
        "t"
    );

    // The wrong password is refused: scram really is enforced over TCP.
    let out = pg
        .client_command("psql")
        .env("PGPASSWORD", "wrong")
        .args(["-X", "-c", "SELECT 1", "-d", "postgres"])
        .output()
        .expect("running psql");
    assert!(
        !out.status.success(),
        "psql with a wrong password succeeded"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("password authentication failed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn mariadb_keeps_committed_rows_across_kill9_and_restart() {
    let mut maria = MariaDb::start_with(MariaDbOptions {
        server_id: 7,
        extra_args: vec!["--log-slave-updates".into()],
    });
    assert_eq!(
        maria.query("SELECT @@server_id, @@log_slave_updates"),
        "7\t1"
    );
    maria.query(
        "CREATE DATABASE app; CREATE TABLE app.t (id int primary key) ENGINE=InnoDB; \
         INSERT INTO app.t VALUES (1), (2), (3);",
    );
    let gtid = maria.query("SELECT @@gtid_binlog_pos");
    assert_eq!(gtid, "0-7-3");
    let old_pid = maria.pid().expect("running");

    maria.kill9();
    assert!(!pid_alive(old_pid), "mariadbd {old_pid} survived kill9");
    assert!(
        maria.try_query("SELECT 1").is_err(),
        "killed server still answers"
    );

    maria.restart();
    assert_eq!(maria.query("SELECT count(*) FROM app.t"), "3");
    assert_eq!(maria.query("SELECT @@gtid_binlog_pos"), gtid);

    maria.stop();
    assert!(!port_open(maria.port()));
    maria.restart();
    assert_eq!(maria.query("SELECT count(*) FROM app.t"), "3");
}

/// Not a test on its own: the child half of
/// `servers_die_when_the_test_process_is_sigkilled`.
#[test]
#[ignore = "helper run as a subprocess by servers_die_when_the_test_process_is_sigkilled"]
fn helper_start_postgres_and_hang() {
    let pg = Postgres::start();
    println!(
        "POSTMASTER {} {} {}",
        pg.pid().expect("running"),
        pg.port(),
        pg.scratch_dir().display()
    );
    std::thread::sleep(Duration::from_secs(300));
    panic!("helper was not killed by its parent test");
}

#[test]
fn servers_die_when_the_test_process_is_sigkilled() {
    let exe = std::env::current_exe().expect("path of this test binary");
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "helper_start_postgres_and_hang",
            "--ignored",
            "--nocapture",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawning the helper test process");
    let stdout = child.stdout.take().expect("piped stdout");
    let line = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.starts_with("POSTMASTER "))
        .expect("helper printed no POSTMASTER line");
    let fields: Vec<&str> = line.split_whitespace().collect();
    let pid: u32 = fields[1].parse().expect("postmaster pid");
    let port: u16 = fields[2].parse().expect("port");
    let dir = PathBuf::from(fields[3]);
    assert!(pid_alive(pid));
    let children = descendants_of(pid);
    assert!(!children.is_empty(), "postmaster without children?");
    let shm = OrphanedShm::of_running_server(pid, &dir.join("data"));

    child.kill().expect("SIGKILL the helper");
    child.wait().expect("reaping the helper");

    let died = all_gone_soon(&[pid]);
    let children_died = all_gone_soon(&children);
    // The helper never ran its destructors: clean up what it left, whatever happened.
    for leftover in std::iter::once(pid).chain(children.iter().copied()) {
        if pid_alive(leftover) {
            // SAFETY: plain syscall; the pid was alive a moment ago.
            unsafe { libc::kill(leftover as libc::pid_t, libc::SIGKILL) };
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    shm.remove();
    assert!(died, "postmaster {pid} outlived the SIGKILLed test process");
    assert!(
        children_died,
        "postgres children {children:?} outlived their postmaster"
    );
    assert!(!port_open(port));
}
