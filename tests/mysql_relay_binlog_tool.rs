//! `mariadb-binlog --read-from-remote-server`, the stock tool DBAs point at
//! a binlog server, against `instarec relay` and against the real primary
//! for the same files: the decoded output must be the same, event for
//! event and GTID for GTID. The tool declares `@master_binlog_checksum =
//! 'NONE'` (it takes the checksum from each file's FORMAT_DESCRIPTION), asks
//! for EOF at the end of the binlog unless `--stop-never`, and stops at the
//! fake ROTATE to the next file unless `--to-last-log`.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use instarec::relay::BinlogArchive;
use support::instarec::{bound_archive, Shipper};
use support::process::GroupChild;
use support::relay::{relay_config, Relay, RELAY_PASSWORD, RELAY_USER};
use support::{free_port, MariaDb, MariaDbOptions};

/// Transactions written into each of the three binlog files.
const PER_FILE: u32 = 100;
const TOOL_TIMEOUT: Duration = Duration::from_secs(20);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// One client call of `n` transactions: inserts, and every fifth an
/// update and a delete in the same transaction.
fn write_transactions(primary: &MariaDb, from: u32, n: u32) {
    let sql: String = (from..from + n)
        .map(|i| {
            let mut t = format!("BEGIN; INSERT INTO test.t VALUES ({i}, REPEAT('v', {}));", i % 50);
            if i % 5 == 0 && i > 0 {
                t.push_str(&format!(
                    " UPDATE test.t SET v = 'updated' WHERE id = {}; DELETE FROM test.t WHERE id = {};",
                    i - 1,
                    i - 2
                ));
            }
            t.push_str(" COMMIT; ");
            t
        })
        .collect();
    primary.query(&sql);
}

/// Waits until the newest archived chunk ends at the primary's GTID position.
fn wait_archived(primary: &MariaDb, url: &str, shipper: &Shipper) {
    let want = primary.query("SELECT @@global.gtid_binlog_pos");
    let binlog = BinlogArchive::new(bound_archive(url));
    let rt = runtime();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let keys = rt.block_on(binlog.chunks()).unwrap();
        if let Some(last) = keys.last() {
            if rt.block_on(binlog.index(last)).unwrap().gtid_pos_after == want {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "archive did not reach {want}:\n{}",
            shipper.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// How many archived chunks hold `file`.
fn chunks_of_file(url: &str, file: &str) -> usize {
    let binlog = BinlogArchive::new(bound_archive(url));
    let keys = runtime().block_on(binlog.chunks()).unwrap();
    keys.iter().filter(|k| k.file == file).count()
}

/// Where the tool reads from: a server's port and login.
#[derive(Clone, Copy)]
struct Server<'a> {
    name: &'a str,
    port: u16,
    user: &'a str,
    password: &'a str,
}

/// A running `mariadb-binlog --read-from-remote-server -v ...`, its
/// stdout and stderr in files.
struct Tool {
    child: GroupChild,
    out: PathBuf,
    err: PathBuf,
    what: String,
}

impl Tool {
    fn start(dir: &Path, server: Server<'_>, args: &[&str]) -> Tool {
        static RUNS: AtomicU32 = AtomicU32::new(0);
        let run = RUNS.fetch_add(1, Ordering::Relaxed);
        let out = dir.join(format!("binlog-{}-{run}.out", server.name));
        let err = out.with_extension("err");
        let mut cmd = Command::new(support::require_binary("mariadb-binlog", "mariadb-client"));
        cmd.arg("--no-defaults")
            .arg("--read-from-remote-server")
            .arg("--host=127.0.0.1")
            .arg(format!("--port={}", server.port))
            .arg(format!("--user={}", server.user))
            .arg(format!("--password={}", server.password))
            .arg("-v")
            .args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap());
        let what = format!("mariadb-binlog against {} {args:?}", server.name);
        let child = GroupChild::spawn(&what, cmd, libc::SIGKILL, Duration::from_secs(2))
            .expect("spawning mariadb-binlog");
        Tool {
            child,
            out,
            err,
            what,
        }
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// Waits for the tool to exit by itself; panics unless it exits 0.
    fn finish(mut self, rig: &Rig) -> String {
        let status = self.child.wait_timeout(TOOL_TIMEOUT);
        assert!(
            status.is_some_and(|s| s.success()),
            "{} ended {status:?} within {TOOL_TIMEOUT:?}\nstderr:\n{}\nstdout tail:\n{}\n{}",
            self.what,
            self.stderr(),
            tail(&self.stdout()),
            rig.logs()
        );
        self.stdout()
    }

    /// Waits until `gtid` appears in the output (the tool keeps running:
    /// `--stop-never`), then kills it.
    fn kill_after(mut self, gtid: &str, rig: &Rig) -> String {
        let deadline = Instant::now() + TOOL_TIMEOUT;
        while !gtids(&self.stdout()).iter().any(|g| g == gtid) {
            assert!(
                Instant::now() < deadline && self.child.is_running(),
                "{} did not print GTID {gtid} within {TOOL_TIMEOUT:?} (running: {})\nstderr:\n{}\nstdout tail:\n{}\n{}",
                self.what,
                self.child.is_running(),
                self.stderr(),
                tail(&self.stdout()),
                rig.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child.kill9();
        self.stdout()
    }
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// The GTIDs of the event groups, in output order: `... GTID 0-1-7 trans`.
fn gtids(output: &str) -> Vec<String> {
    output
        .lines()
        .filter(|l| l.starts_with('#'))
        .filter_map(|l| {
            let (_, rest) = l.split_once("\tGTID ")?;
            rest.split_whitespace().next().map(str::to_string)
        })
        .collect()
}

/// The output without the GTID_LIST a server makes up for a GTID stream
/// (`#700101  0:00:00 ... Gtid list [...]`) and without the `# at` lines,
/// which count the bytes received and so move by that event's size.
fn without_fake_gtid_list(output: &str) -> String {
    output
        .lines()
        .filter(|l| !(l.starts_with("#700101") && l.contains("\tGtid list [")))
        .filter(|l| !l.starts_with("# at "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The `# at` offset of the event group with `gtid` in `output`.
fn offset_of(output: &str, gtid: &str) -> u64 {
    let mut at = None;
    for line in output.lines() {
        if let Some(n) = line.strip_prefix("# at ") {
            at = n.trim().parse().ok();
        } else if line.contains(&format!("\tGTID {gtid} ")) {
            return at.expect("a # at line before the GTID");
        }
    }
    panic!("no GTID {gtid} in the output")
}

/// Panics showing the first differing lines of two decoded outputs.
fn assert_same(args: &[&str], want: &str, got: &str) {
    if want != got {
        let first = want
            .lines()
            .zip(got.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(want.lines().count().min(got.lines().count()));
        let around = |t: &str| {
            t.lines()
                .skip(first.saturating_sub(5))
                .take(12)
                .collect::<Vec<_>>()
                .join("\n")
        };
        panic!(
            "{args:?}: decoded output differs at line {}:\nprimary:\n{}\nrelay:\n{}",
            first + 1,
            around(want),
            around(got)
        );
    }
}

/// A primary with three binlog files of `per_file` transactions each,
/// all of it archived, and the relay serving the archive.
struct Rig {
    primary: MariaDb,
    shipper: Shipper,
    relay: Relay,
    relay_port: u16,
    dir: tempfile::TempDir,
}

impl Rig {
    fn start(options: MariaDbOptions, per_file: u32) -> Rig {
        let primary = MariaDb::start_with(options);
        primary.query(
            "CREATE DATABASE test; \
             CREATE TABLE test.t (id INT PRIMARY KEY, v TEXT) ENGINE=InnoDB",
        );
        let dir = tempfile::tempdir().unwrap();
        let relay_port = free_port();
        let config = relay_config(dir.path(), &primary, relay_port);
        let url = format!("file://{}/archive", dir.path().display());
        let shipper = Shipper::start(&config);
        write_transactions(&primary, 0, per_file);
        primary.query("FLUSH BINARY LOGS");
        // The second file in two halves a few flush intervals apart, so it
        // spans several archive chunks.
        write_transactions(&primary, per_file, per_file / 2);
        std::thread::sleep(Duration::from_millis(800));
        write_transactions(&primary, per_file + per_file / 2, per_file - per_file / 2);
        primary.query("FLUSH BINARY LOGS");
        write_transactions(&primary, 2 * per_file, per_file);
        wait_archived(&primary, &url, &shipper);
        let second = chunks_of_file(&url, "mysql-bin.000002");
        assert!(second >= 2, "mysql-bin.000002 is in {second} chunk(s)");
        let relay = Relay::start(&config, relay_port);
        Rig {
            primary,
            shipper,
            relay,
            relay_port,
            dir,
        }
    }

    fn at_primary(&self) -> Server<'static> {
        Server {
            name: "primary",
            port: self.primary.port(),
            user: "root",
            password: "",
        }
    }

    fn at_relay(&self) -> Server<'static> {
        Server {
            name: "relay",
            port: self.relay_port,
            user: RELAY_USER,
            password: RELAY_PASSWORD,
        }
    }

    /// The tool with `args` against the primary and the relay: the same
    /// GTIDs and the same decoded output, line for line (returned). Nothing
    /// is masked: events go out with their exact bytes, and the made-up
    /// ones (fake ROTATE, re-stamped FORMAT_DESCRIPTION) are made as the
    /// primary makes them.
    fn same_through_both(&self, args: &[&str]) -> String {
        let dir = self.dir.path();
        let want = Tool::start(dir, self.at_primary(), args).finish(self);
        let got = Tool::start(dir, self.at_relay(), args).finish(self);
        let (want_gtids, got_gtids) = (gtids(&want), gtids(&got));
        assert!(
            !want_gtids.is_empty(),
            "{args:?}: no GTID from the primary:\n{want}"
        );
        assert_eq!(got_gtids, want_gtids, "{args:?}: the GTIDs differ");
        assert_same(args, &want, &got);
        want
    }

    /// As `same_through_both` for a GTID start, where a primary sends a
    /// made-up GTID_LIST once the stream passes the position and the relay
    /// does not: the same events, GTIDs and decoded statements, but for
    /// that event and the `# at` byte counts after it.
    fn same_events_through_both(&self, args: &[&str]) -> String {
        let dir = self.dir.path();
        let want = Tool::start(dir, self.at_primary(), args).finish(self);
        let got = Tool::start(dir, self.at_relay(), args).finish(self);
        assert_eq!(gtids(&got), gtids(&want), "{args:?}: the GTIDs differ");
        let (want, got) = (without_fake_gtid_list(&want), without_fake_gtid_list(&got));
        assert_same(args, &want, &got);
        want
    }

    /// The relay's and the shipper's logs, for failure messages.
    fn logs(&self) -> String {
        format!(
            "relay log:\n{}\nshipper log:\n{}",
            self.relay.log(),
            self.shipper.log()
        )
    }
}

#[test]
fn mariadb_binlog_reads_the_same_events_and_gtids_from_the_relay_as_from_the_primary() {
    let started = Instant::now();
    let rig = Rig::start(MariaDbOptions::default(), PER_FILE);

    // One file at a time, as a DBA reads one: the tool stops at the fake
    // ROTATE to the next file, or at the EOF after the last one.
    let mut all = Vec::new();
    let mut second = String::new();
    for file in ["mysql-bin.000001", "mysql-bin.000002", "mysql-bin.000003"] {
        let output = rig.same_through_both(&[file]);
        assert!(output.contains(" CRC32 0x"), "the files have checksums");
        all.extend(gtids(&output));
        if file.ends_with('2') {
            second = output;
        }
    }
    let last = rig.primary.query("SELECT @@global.gtid_binlog_pos");
    assert_eq!(all.last(), Some(&last));
    assert_eq!(all.len() as u32, 3 * PER_FILE + 2, "two DDL and the rows");

    // Every file from the first to the end of the binlog, then EOF.
    let to_last = rig.same_through_both(&["--to-last-log", "mysql-bin.000001"]);
    assert_eq!(gtids(&to_last), all);

    // From an offset inside a file: the FORMAT_DESCRIPTION comes re-stamped
    // (log_pos 0, no creation time) and the stream joins at that event.
    let middle = format!("0-1-{}", PER_FILE + 50);
    let start = format!("--start-position={}", offset_of(&second, &middle));
    let joined = rig.same_through_both(&[&start, "mysql-bin.000002"]);
    assert_eq!(gtids(&joined).first(), Some(&middle));

    // From a GTID position (the tool sets @slave_connect_state): it reads
    // the file the position is in from its start, as from a primary, and
    // checks that file's GTID_LIST covers the position.
    let after = format!("0-1-{}", PER_FILE + 70);
    let by_gtid = rig.same_events_through_both(&[
        &format!("--start-position={after}"),
        "--to-last-log",
        "mysql-bin.000001",
    ]);
    assert_eq!(
        gtids(&by_gtid).len() as u32,
        3 * PER_FILE + 2 - (PER_FILE + 70)
    );

    // Without ANNOTATE_ROWS (the tool does not ask for them): a primary
    // leaves them out for a client that tolerates holes, so does the relay.
    let plain = rig.same_through_both(&["--skip-annotate-row-events", "mysql-bin.000002"]);
    assert!(!plain.contains("Annotate_rows"), "{}", tail(&plain));
    assert_eq!(gtids(&plain), gtids(&second));

    // --stop-never: the tool waits for more; it gets what is written after
    // it started, through the shipper and the relay.
    let d = rig.dir.path();
    let args = ["--stop-never", "mysql-bin.000002"];
    let following = Tool::start(d, rig.at_relay(), &args);
    let reference = Tool::start(d, rig.at_primary(), &args);
    write_transactions(&rig.primary, 3 * PER_FILE, 10);
    let newest = rig.primary.query("SELECT @@global.gtid_binlog_pos");
    let got = gtids(&following.kill_after(&newest, &rig));
    let want = gtids(&reference.kill_after(&newest, &rig));
    assert_eq!(got, want, "--stop-never: the GTIDs differ");
    assert_eq!(got.len() as u32, 2 * PER_FILE + 10);
    // A tool that leaves once it has what it asked for is no failure.
    let warnings: Vec<String> = rig
        .relay
        .log()
        .lines()
        .filter(|l| l.contains(" WARN "))
        .map(str::to_string)
        .collect();
    assert!(warnings.is_empty(), "{warnings:#?}");
    println!("mariadb-binlog through the relay: {:?}", started.elapsed());
}

/// A primary with binlog_checksum = NONE: no event has a CRC32, and the
/// relay serves the tool the same (the tool reads the checksum from each
/// file's FORMAT_DESCRIPTION; nothing is added or stripped).
#[test]
fn mariadb_binlog_reads_a_binlog_without_checksums_through_the_relay() {
    let rig = Rig::start(
        MariaDbOptions {
            extra_args: vec!["--binlog-checksum=NONE".into()],
            ..MariaDbOptions::default()
        },
        20,
    );
    let output = rig.same_through_both(&["--to-last-log", "mysql-bin.000001"]);
    assert!(!output.contains(" CRC32 0x"), "no event has a checksum");
    assert_eq!(gtids(&output).len(), 3 * 20 + 2);
    let first_file = rig.same_through_both(&["mysql-bin.000001"]);
    assert_eq!(gtids(&first_file).len(), 20 + 2);
}
