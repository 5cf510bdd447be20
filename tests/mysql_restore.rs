//! `instarec restore` with engine = "mysql" against a real MariaDB running
//! gtid_strict_mode: a backup from the archive, replayed through the
//! in-process relay up to a time, a GTID or the archive's end; targets
//! outside the archive and a damaged backup chunk are refused before a
//! server starts, leaving the data directory as it was.

mod support;

use support::instarec::text;

use support::instarec::run as instarec;

use instarec::archive::{Archive, ArchiveSettings, ClusterTag};
use instarec::backup::BackupRecord;
use instarec::relay::BinlogArchive;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};
use support::instarec::{write_mysql_config, Shipper};
use support::service_user::scratch_dir;
use support::{free_port, MariaDb};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A primary shipping into a file:// archive, with one backup taken
/// before any test row: every restore replays the rows from the binlog.
struct Archived {
    primary: MariaDb,
    shipper: Shipper,
    // Reachable by the mysql user that runs the restored servers.
    dir: tempfile::TempDir,
    config: PathBuf,
    backup: BackupRecord,
}

impl Archived {
    fn new() -> Archived {
        let primary = MariaDb::start();
        primary.query(
            "CREATE DATABASE test; \
             CREATE TABLE test.t (id INT PRIMARY KEY, batch CHAR(1)) ENGINE=InnoDB",
        );
        let dir = scratch_dir("instarec-mysql-restore-", None);
        let url = format!("file://{}/archive", dir.path().display());
        let config = write_mysql_config(dir.path(), &url, &primary.url(), "");
        let shipper = Shipper::start(&config);
        let out = instarec(&config, &["backup", "--json", "--wal-timeout", "60s"]);
        assert!(out.status.success(), "{}\n{}", text(&out), shipper.log());
        let backup: BackupRecord = serde_json::from_slice(&out.stdout).expect("a backup record");
        Archived {
            primary,
            shipper,
            dir,
            config,
            backup,
        }
    }

    fn insert(&self, ids: std::ops::RangeInclusive<u32>, batch: &str) {
        for id in ids {
            self.primary
                .query(&format!("INSERT INTO test.t VALUES ({id}, '{batch}')"));
        }
    }

    fn archive(&self) -> Archive {
        let url = format!("file://{}/archive", self.dir.path().display());
        let archive = Archive::open(&ArchiveSettings::new(&url)).unwrap();
        let cluster = runtime()
            .block_on(archive.read_cluster())
            .unwrap()
            .expect("a cluster record");
        archive.bind_cluster(ClusterTag::of(cluster.engine, &cluster.system_id))
    }

    /// Waits until the archive holds everything the primary logged.
    fn wait_archived(&self) {
        let want = self.primary.query("SELECT @@global.gtid_binlog_pos");
        let binlog = BinlogArchive::new(self.archive());
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
                self.shipper.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn data_dir(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `instarec restore --json --start --keep-running` into `name`.
    fn restore(&self, name: &str, target: &[&str]) -> Restored {
        let dir = self.data_dir(name);
        let port = free_port().to_string();
        let mut args = vec!["restore", "--json", "--data-dir"];
        let dir_text = dir.display().to_string();
        args.push(&dir_text);
        args.extend(target);
        args.extend(["--start", "--keep-running", "--port", &port]);
        let out = instarec(&self.config, &args);
        assert!(out.status.success(), "{}", text(&out));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        Restored {
            pid: json["pid"].as_u64().expect("a pid") as i32,
            port: json["port"].as_u64().expect("a port") as u16,
            json,
        }
    }
}

/// A restored server left running; stopped (SIGTERM) on drop.
struct Restored {
    pid: i32,
    port: u16,
    json: serde_json::Value,
}

impl Restored {
    fn query(&self, primary: &MariaDb, sql: &str) -> String {
        let mut cmd = primary.client_command();
        cmd.args([
            "--protocol=TCP",
            "-h",
            "127.0.0.1",
            "-P",
            &self.port.to_string(),
            "-e",
            sql,
        ]);
        let out = cmd.output().expect("running the mariadb client");
        assert!(out.status.success(), "{sql}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Restored {
    fn drop(&mut self) {
        // SAFETY: signalling the mariadbd this test's restore started.
        unsafe { libc::kill(self.pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(60);
        // SAFETY: signal 0 only probes for the process.
        while unsafe { libc::kill(self.pid, 0) } == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn pitr_to_a_time_a_gtid_and_the_latest_on_a_strict_mode_server() {
    let a = Archived::new();
    a.insert(1..=10, "A");
    let tenth = a.primary.query("SELECT @@global.gtid_binlog_pos");
    a.insert(11..=20, "A");
    let after_a = a.primary.query("SELECT @@global.gtid_binlog_pos");
    std::thread::sleep(Duration::from_millis(1500));
    let between = chrono::Utc::now().to_rfc3339();
    std::thread::sleep(Duration::from_millis(1500));
    a.insert(101..=120, "B");
    a.wait_archived();
    let end = a.primary.query("SELECT @@global.gtid_binlog_pos");

    let t0 = Instant::now();
    let at_time = a.restore("to-time", &["--to-time", &between]);
    println!("PITR to a time: {:?} ({})", t0.elapsed(), at_time.json);
    assert_eq!(at_time.json["backup"], a.backup.id.as_str());
    assert_eq!(
        at_time.query(
            &a.primary,
            "SELECT batch, COUNT(*) FROM test.t GROUP BY batch"
        ),
        "A\t20",
        "batch A is there, batch B is not"
    );
    assert_eq!(at_time.json["gtid_slave_pos"], after_a.as_str());
    assert_eq!(
        at_time.query(&a.primary, "SELECT @@global.gtid_strict_mode"),
        "1"
    );
    assert_eq!(
        at_time.query(&a.primary, "SHOW SLAVE STATUS"),
        "",
        "detached from the relay"
    );
    drop(at_time);

    let at_gtid = a.restore("to-gtid", &["--to-gtid", &tenth]);
    assert_eq!(
        at_gtid.query(&a.primary, "SELECT COUNT(*), MAX(id) FROM test.t"),
        "10\t10"
    );
    assert_eq!(at_gtid.json["gtid_slave_pos"], tenth.as_str());
    drop(at_gtid);

    let latest = a.restore("latest", &["--latest"]);
    assert_eq!(
        latest.query(
            &a.primary,
            "SELECT batch, COUNT(*) FROM test.t GROUP BY batch"
        ),
        "A\t20\nB\t20"
    );
    assert_eq!(latest.json["gtid_slave_pos"], end.as_str());
    assert!(latest.json["last_commit"].is_string(), "{}", latest.json);
}

#[test]
fn targets_outside_the_archive_and_a_damaged_chunk_are_refused_before_anything_runs() {
    let a = Archived::new();
    a.insert(1..=5, "A");
    a.wait_archived();
    let end = a.primary.query("SELECT @@global.gtid_binlog_pos");
    let (domain_server, seq) = end.rsplit_once('-').unwrap();
    let past_end = format!("{domain_server}-{}", seq.parse::<u64>().unwrap() + 100);

    // An existing directory with a file in it, and --force: refusing the
    // target must come before emptying it.
    let dir = a.data_dir("untouched");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("keep"), "x").unwrap();
    let dir_text = dir.display().to_string();
    let refused = |target: &[&str], expect: &str| {
        let mut args = vec!["restore", "--force", "--data-dir", &dir_text];
        args.extend(target);
        let out = instarec(&a.config, &args);
        assert!(!out.status.success(), "{}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(err.contains(expect), "wanted {expect:?}: {err}");
        assert!(dir.join("keep").exists(), "the data dir was touched");
        err
    };
    refused(&["--to-gtid", &past_end], "after the end of the archive");
    refused(
        &["--to-time", "2999-01-01T00:00:00Z"],
        "after the end of the archive",
    );
    refused(
        &["--to-time", "2001-01-01T00:00:00Z"],
        "before the oldest backup",
    );
    refused(&["--to-lsn", "0/3000060"], "--to-lsn is for PostgreSQL");

    // A flipped byte in the backup's first chunk: named, nothing started,
    // and the new data directory is left empty.
    let chunk = a.dir.path().join(format!(
        "archive/backups/{}/data/backup.xbstream/00000000",
        a.backup.id
    ));
    let mut bytes = std::fs::read(&chunk).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&chunk, bytes).unwrap();
    let fresh = a.data_dir("damaged");
    let out = instarec(
        &a.config,
        &[
            "restore",
            "--latest",
            "--data-dir",
            &fresh.display().to_string(),
        ],
    );
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "backups/{}/data/backup.xbstream/00000000",
            a.backup.id
        )),
        "{err}"
    );
    assert!(
        !fresh.join("instarec-mariadbd.err").exists(),
        "a server ran"
    );
    assert_eq!(std::fs::read_dir(&fresh).map(|d| d.count()).unwrap_or(0), 0);
}

#[test]
fn standby_init_start_follows_the_primary_through_the_relay() {
    let a = Archived::new();
    a.insert(1..=5, "A");
    let relay_port = free_port();
    let mut text_config = std::fs::read_to_string(&a.config).unwrap();
    text_config.push_str(&format!(
        "\n[relay]\nlisten = \"127.0.0.1:{relay_port}\"\nuser = \"repl\"\npassword = \"relay-secret\"\n"
    ));
    std::fs::write(&a.config, text_config).unwrap();
    let relay_log = a.dir.path().join("relay.log");
    let log_file = std::fs::File::create(&relay_log).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_instarec"));
    cmd.arg("--config")
        .arg(&a.config)
        .arg("relay")
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file);
    let _relay = support::process::GroupChild::spawn(
        "instarec relay",
        cmd,
        libc::SIGTERM,
        Duration::from_secs(10),
    )
    .expect("spawning instarec relay");

    let dir = a.data_dir("standby");
    let port = free_port().to_string();
    let out = instarec(
        &a.config,
        &[
            "standby",
            "init",
            "--json",
            "--start",
            "--port",
            &port,
            "--data-dir",
            &dir.display().to_string(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(json["backup_gtid"], a.backup.stop_position.as_str());
    let standby = Restored {
        pid: json["pid"].as_u64().expect("a pid") as i32,
        port: json["port"].as_u64().expect("a port") as u16,
        json,
    };
    a.insert(6..=10, "B");
    let want = a.primary.query("SELECT @@global.gtid_binlog_pos");
    let waited = standby.query(
        &a.primary,
        &format!("SELECT MASTER_GTID_WAIT('{want}', 30)"),
    );
    assert_eq!(
        waited,
        "0",
        "standby did not reach {want}; relay log:\n{}",
        std::fs::read_to_string(&relay_log).unwrap_or_default()
    );
    assert_eq!(
        standby.query(&a.primary, "SELECT COUNT(*) FROM test.t"),
        "10"
    );
    // The standby built from the backup matches the primary table by table.
    let tables = a.primary.query(
        "SELECT GROUP_CONCAT(CONCAT(table_schema, '.', table_name) ORDER BY 1) \
         FROM information_schema.tables WHERE table_schema = 'test'",
    );
    assert!(!tables.is_empty(), "no tables in test");
    let checksums = format!("CHECKSUM TABLE {tables}");
    assert_eq!(
        standby.query(&a.primary, &checksums),
        a.primary.query(&checksums),
        "CHECKSUM TABLE differs between primary and standby"
    );
    assert_eq!(
        standby.query(
            &a.primary,
            "SELECT @@global.gtid_strict_mode, @@global.log_bin"
        ),
        "1\t1"
    );
}

/// Timing, not a check: PITR of a backup plus N MB of binlog through
/// `instarec restore --to-time`, against the same backup restored by
/// `standby init` and `mariadb-binlog --stop-datetime | mariadb` over the
/// primary's own binlog files (no download: favours the baseline).
/// `cargo test --test mysql_restore timing -- --ignored --nocapture`
#[test]
#[ignore]
fn timing_pitr_against_mariadb_binlog_piped_into_mariadb() {
    let a = Archived::new();
    a.primary
        .query("CREATE TABLE test.big (id INT PRIMARY KEY, v VARCHAR(300)) ENGINE=InnoDB");
    // 100 transactions of 2,000 rows (~50 MB of row events), then 2,000
    // single-row transactions.
    for batch in 0..100u32 {
        a.primary.query(&format!(
            "INSERT INTO test.big SELECT seq + {}, REPEAT('x', 250) FROM test.seq_1_to_2000",
            batch * 2000
        ));
    }
    let singles: String = (1..=2000)
        .map(|i| format!("INSERT INTO test.t VALUES ({i}, 'A');"))
        .collect();
    a.primary.query(&singles);
    std::thread::sleep(Duration::from_millis(1500));
    let target = chrono::Utc::now();
    std::thread::sleep(Duration::from_millis(1500));
    a.insert(5001..=5010, "B");
    a.wait_archived();
    let binlog_bytes: u64 = std::fs::read_dir(a.primary.data_dir())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("mysql-bin.0"))
        .map(|e| e.metadata().unwrap().len())
        .sum();

    let t0 = Instant::now();
    let dir = a.data_dir("instarec");
    let out = instarec(
        &a.config,
        &[
            "restore",
            "--json",
            "--to-time",
            &target.to_rfc3339(),
            "--data-dir",
            &dir.display().to_string(),
        ],
    );
    let instarec_total = t0.elapsed();
    assert!(out.status.success(), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    // Baseline: the same backup, prepared by standby init, then replayed by
    // mariadb-binlog | mariadb on a server with gtid_strict_mode on.
    let t1 = Instant::now();
    let base = a.data_dir("baseline");
    let out = instarec(
        &a.config,
        &[
            "standby",
            "init",
            "--json",
            "--data-dir",
            &base.display().to_string(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let restore_time = t1.elapsed();
    let port = free_port();
    let socket = base.join("baseline.sock");
    let mut cmd = Command::new(support::require_binary("mariadbd", "mariadb-server"));
    cmd.arg("--no-defaults")
        .arg(format!("--datadir={}", base.display()))
        .arg(format!("--port={port}"))
        .arg("--bind-address=127.0.0.1")
        .arg(format!("--socket={}", socket.display()))
        .arg(format!(
            "--log-error={}",
            base.join("baseline.err").display()
        ))
        .arg("--server-id=77")
        .arg("--gtid-strict-mode=1")
        .arg("--skip-name-resolve");
    if let Some(user) = support::mariadb::server_user() {
        user.apply(&mut cmd);
    }
    let _server = support::process::GroupChild::spawn(
        "mariadbd",
        cmd,
        libc::SIGTERM,
        Duration::from_secs(60),
    )
    .unwrap();
    let client = |sql: &str| {
        let mut c = a.primary.client_command();
        c.arg(format!("--socket={}", socket.display()))
            .arg("-e")
            .arg(sql);
        c.output().unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !client("SELECT 1").status.success() {
        assert!(Instant::now() < deadline, "baseline mariadbd did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let started = t1.elapsed();
    let mut files: Vec<PathBuf> = std::fs::read_dir(a.primary.data_dir())
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("mysql-bin.0")
        })
        .collect();
    files.sort();
    // From the backup's binlog position on, as a manual PITR would.
    let manifest: instarec::backup::mysql_take::XbstreamManifest = serde_json::from_slice(
        &runtime()
            .block_on(
                a.archive()
                    .get(&instarec::backup::layout::manifest_key(&a.backup.id)),
            )
            .unwrap(),
    )
    .unwrap();
    files.retain(|p| {
        p.file_name().unwrap().to_string_lossy().as_ref() >= manifest.binlog_file.as_str()
    });
    let file_args: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    let pipe = format!(
        "{} --no-defaults --start-position={} --stop-datetime='{}' {} | {} --no-defaults -u root --socket={}",
        support::require_binary("mariadb-binlog", "mariadb-client").display(),
        manifest.binlog_pos,
        target
            .with_timezone(&chrono::Local)
            .format("%Y-%m-%d %H:%M:%S"),
        file_args.join(" "),
        support::require_binary("mariadb", "mariadb-client").display(),
        socket.display()
    );
    let t2 = Instant::now();
    let piped = Command::new("sh").arg("-c").arg(&pipe).output().unwrap();
    let replay_time = t2.elapsed();
    let baseline_total = t1.elapsed();
    let rows = client("SELECT COUNT(*) FROM test.t");
    println!(
        "binlog {:.1} MB; instarec restore --to-time: total {:.2}s (unpack {:.2}s, prepare {:.2}s, replay {:.2}s)",
        binlog_bytes as f64 / 1e6,
        instarec_total.as_secs_f64(),
        json["unpack_seconds"].as_f64().unwrap_or(0.0),
        json["prepare_seconds"].as_f64().unwrap_or(0.0),
        json["replay_seconds"].as_f64().unwrap_or(0.0),
    );
    println!(
        "baseline: total {:.2}s (standby init {:.2}s, server up at {:.2}s, mariadb-binlog|mariadb {:.2}s, exit {:?}: {}; rows in test.t: {})",
        baseline_total.as_secs_f64(),
        restore_time.as_secs_f64(),
        started.as_secs_f64(),
        replay_time.as_secs_f64(),
        piped.status.code(),
        String::from_utf8_lossy(&piped.stderr).lines().next().unwrap_or(""),
        String::from_utf8_lossy(&rows.stdout).trim()
    );
}
