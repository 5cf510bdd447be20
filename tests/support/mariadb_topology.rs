//! The MariaDB promote topology on 127.0.0.1: a primary shipped into a
//! file:// archive by `instarec ship`, `instarec relay` serving that
//! archive, and a stock read-only replica of the relay (log_slave_updates,
//! MASTER_USE_GTID=slave_pos) as the standby to promote; plus the
//! application: an ordinary account and a client keeping a ledger of every
//! commit it saw acknowledged.

pub use super::instarec::{text, write_config};
pub use super::ledger::{assert_lost_within_rpo, lost_ids, Acked, Ledger};

use super::instarec::{binary, run, write_mysql_config, Shipper};
use super::ledger::{ids_in, LedgerWriter};
use super::process::{wait_for_port, GroupChild};
use super::promote::{epoch_names, promote_json};
use super::{free_port, MariaDb, MariaDbOptions};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub const RELAY_USER: &str = "repl";
pub const RELAY_PASSWORD: &str = "relay-secret";
/// The application's account: an ordinary user, as clients are. (Accounts
/// with READ ONLY ADMIN, such as root here, may write despite read_only.)
pub const APP: &str = "app";

/// A long-running `instarec --config <config> -v <command>` (relay, proxy),
/// logging to a file next to the config.
pub struct Daemon {
    child: GroupChild,
    log: PathBuf,
}

impl Daemon {
    /// Starts `command` and waits until it listens on `port`.
    pub fn start(config: &Path, command: &str, port: u16) -> Daemon {
        let log = config.with_extension(format!("{command}-{port}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(binary());
        cmd.arg("--config")
            .arg(config)
            .arg("-v")
            .arg(command)
            .stdout(file.try_clone().unwrap())
            .stderr(file);
        let child = GroupChild::spawn(
            &format!("instarec {command}"),
            cmd,
            libc::SIGTERM,
            Duration::from_secs(10),
        )
        .unwrap_or_else(|e| panic!("spawning instarec {command}: {e}"));
        assert!(
            wait_for_port(port, Duration::from_secs(30)),
            "instarec {command} did not listen on {port}:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        Daemon { child, log }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn is_running(&self) -> bool {
        self.child.is_running()
    }
}

pub struct Cluster {
    pub primary: MariaDb,
    pub standby: MariaDb,
    pub shipper: Shipper,
    pub relay: Daemon,
    pub config: PathBuf,
    pub archive_url: String,
    pub dir: tempfile::TempDir,
}

impl Cluster {
    /// Primary + shipper + relay + a caught-up read-only replica of the
    /// relay (with log_slave_updates, as a promotion candidate has).
    pub fn start() -> Cluster {
        Cluster::start_with("")
    }

    /// As `start`, with the shipper as the primary's semi-sync replica
    /// (`[primary] synchronous = true`) and semi-sync on at the primary,
    /// with a timeout long enough that no commit of the test falls back to
    /// async: every commit returned to a client waited for the shipper.
    pub fn start_semi_sync() -> Cluster {
        let c = Cluster::start_with("synchronous = true");
        c.primary.query(
            "SET GLOBAL rpl_semi_sync_master_timeout = 60000; \
             SET GLOBAL rpl_semi_sync_master_enabled = ON",
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while semi_sync_status(&c.primary, "Rpl_semi_sync_master_clients") != "1" {
            assert!(
                Instant::now() < deadline,
                "the shipper did not become a semi-sync client:\n{}",
                c.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        c
    }

    /// As `start`, with an asynchronous shipper that uploads at most every
    /// `flush_interval` (e.g. "2s"): the primary's newest commits are often
    /// only on the primary, so killing both loses them.
    pub fn start_lagging(flush_interval: &str) -> Cluster {
        Cluster::start_configured("synchronous = false", flush_interval)
    }

    /// As `start`, with `extra_primary` added to the [primary] section.
    fn start_with(extra_primary: &str) -> Cluster {
        Cluster::start_configured(extra_primary, "200ms")
    }

    fn start_configured(extra_primary: &str, flush_interval: &str) -> Cluster {
        let primary = MariaDb::start();
        primary.query(&format!(
            "CREATE DATABASE test; \
             CREATE TABLE test.ledger (id BIGINT PRIMARY KEY) ENGINE=InnoDB; \
             CREATE USER '{APP}'@'127.0.0.1'; \
             GRANT SELECT, INSERT ON test.* TO '{APP}'@'127.0.0.1'"
        ));
        let dir = tempfile::tempdir().unwrap();
        let archive_url = format!("file://{}/archive", dir.path().display());
        let relay_port = free_port();
        let config = write_mysql_config(dir.path(), &archive_url, &primary.url(), extra_primary);
        let written = std::fs::read_to_string(&config).unwrap();
        let default_flush = "flush_interval = \"200ms\"";
        assert!(written.contains(default_flush), "{written}");
        let base = written.replace(
            default_flush,
            &format!("flush_interval = \"{flush_interval}\""),
        );
        let with_relay = format!(
            "{base}\n[relay]\nlisten = \"127.0.0.1:{relay_port}\"\nuser = \"{RELAY_USER}\"\npassword = \"{RELAY_PASSWORD}\"\n"
        );
        write_config(&config, &with_relay);
        let shipper = Shipper::start(&config);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !dir.path().join("archive/binlog-index").exists() {
            assert!(
                Instant::now() < deadline,
                "nothing archived:\n{}",
                shipper.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let relay = Daemon::start(&config, "relay", relay_port);
        let standby = MariaDb::start_with(MariaDbOptions {
            server_id: 2,
            extra_args: vec!["--log-slave-updates".into(), "--read-only".into()],
        });
        standby.query(&format!(
            "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={relay_port}, \
             MASTER_USER='{RELAY_USER}', MASTER_PASSWORD='{RELAY_PASSWORD}', \
             MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1, MASTER_HEARTBEAT_PERIOD=1; \
             START SLAVE"
        ));
        let target = gtid_binlog_pos(&primary);
        let waited = standby.query(&format!("SELECT MASTER_GTID_WAIT('{target}', 60)"));
        assert_eq!(
            waited,
            "0",
            "the replica did not reach {target}:\nrelay log:\n{}\nshipper log:\n{}",
            relay.log(),
            shipper.log()
        );
        write_config(
            &config,
            &format!(
                "{with_relay}\n[standby]\nurl = \"{}\"\n\n[promote]\nold_primary_timeout = \"1s\"\ndrain_timeout = \"20s\"\n",
                standby.url()
            ),
        );
        Cluster {
            primary,
            standby,
            shipper,
            relay,
            config,
            archive_url,
            dir,
        }
    }

    /// Appends `sections` (e.g. [cutover]) to the config.
    pub fn add_config(&self, sections: &str) {
        let text = std::fs::read_to_string(&self.config).unwrap();
        write_config(&self.config, &format!("{text}\n{sections}\n"));
    }

    /// The application's URL for a server (or a proxy) listening on `port`.
    pub fn app_url(&self, port: u16) -> String {
        format!("mysql://{APP}@127.0.0.1:{port}/test")
    }

    /// The application's ledger client, through `port`.
    pub fn ledger_through(&self, port: u16) -> Ledger {
        Ledger::start(MariaDbLedger::new(&self.app_url(port)))
    }

    pub fn archive_dir(&self) -> PathBuf {
        PathBuf::from(self.archive_url.trim_start_matches("file://"))
    }

    pub fn diagnostics(&self) -> String {
        format!(
            "shipper log:\n{}\nrelay log:\n{}\nstandby error log:\n{}",
            self.shipper.log(),
            self.relay.log(),
            self.standby.log_tail(20)
        )
    }

    /// `instarec promote --json <args>`, which must succeed; its report.
    pub fn promote(&self, args: &[&str]) -> serde_json::Value {
        promote_json(&self.config, args, || self.diagnostics())
    }

    /// The names under the archive's epochs/ prefix, sorted.
    pub fn epochs(&self) -> Vec<String> {
        epoch_names(&self.archive_dir())
    }
}

pub fn gtid_binlog_pos(db: &MariaDb) -> String {
    db.query("SELECT @@global.gtid_binlog_pos")
}

/// A semi-sync status variable of `db` (e.g. Rpl_semi_sync_master_no_tx).
pub fn semi_sync_status(db: &MariaDb, name: &str) -> String {
    db.query(&format!(
        "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS \
         WHERE VARIABLE_NAME = '{name}'"
    ))
}

pub fn ids_on(db: &MariaDb) -> BTreeSet<i64> {
    ids_in(&db.query("SELECT id FROM test.ledger"))
}

/// Ledger rows written over mysql_async, with timeouts: a server behind a
/// switching proxy may neither answer nor close.
pub struct MariaDbLedger {
    opts: mysql_async::Opts,
}

impl MariaDbLedger {
    pub fn new(url: &str) -> MariaDbLedger {
        MariaDbLedger {
            opts: mysql_async::Opts::from_url(url).unwrap(),
        }
    }
}

impl LedgerWriter for MariaDbLedger {
    type Session = mysql_async::Conn;

    async fn connect(&self) -> Option<mysql_async::Conn> {
        let connect = mysql_async::Conn::new(self.opts.clone());
        tokio::time::timeout(Duration::from_secs(2), connect)
            .await
            .ok()?
            .ok()
    }

    async fn insert(&self, conn: &mut mysql_async::Conn, id: i64) -> bool {
        use mysql_async::prelude::Queryable;
        let insert = conn.exec_drop("INSERT INTO ledger(id) VALUES (?)", (id,));
        matches!(
            tokio::time::timeout(Duration::from_secs(5), insert).await,
            Ok(Ok(()))
        )
    }
}

/// A promote refused because `addr` is not a standby, saying nothing changed.
pub fn assert_refused_as_not_a_standby(out: &Output, addr: &str) {
    assert!(!out.status.success(), "{}", text(out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{addr} is not a standby")) && err.contains("nothing was changed"),
        "{}",
        text(out)
    );
}
