//! The MariaDB story: a primary shipping its binlog into the archive, a
//! mariabackup backup, `instarec relay` serving the archive, a standby
//! built from the backup replicating from the relay, a crash (or a
//! switchover) under writes, and promote.

use super::child::InstarecChild;
use super::ledger::{Ledger, LedgerDb};
use super::local_mariadb::{LocalMariadb, MariadbTools};
use super::{ledger_check, promote_report, wait_for_port, DemoOptions, DemoOutcome, WorkDir};
use crate::engine::Engine;
use anyhow::Context as _;
use mysql_async::prelude::Queryable as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The replicas' account on the relay (it only serves the archive).
const RELAY_USER: &str = "repl";
const RELAY_PASSWORD: &str = "demo-relay-secret";
/// The standby's server_id: its own GTIDs after promote carry it.
const STANDBY_SERVER_ID: &str = "2";
/// How long the standby gets to apply the archive's tail before the crash.
const CATCH_UP_TIMEOUT_SECONDS: u32 = 5;

/// The application: an ordinary account, as clients are (root may write
/// despite read_only, which the planned switchover relies on).
const SCHEMA: &str = "CREATE DATABASE demo; \
    CREATE TABLE demo.demo_ledger (id BIGINT PRIMARY KEY, note VARCHAR(16), \
        at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)) ENGINE=InnoDB; \
    INSERT INTO demo.demo_ledger (id, note) SELECT -seq, 'seed' FROM demo.seq_1_to_1000; \
    CREATE USER 'app'@'127.0.0.1'; \
    GRANT SELECT, INSERT ON demo.* TO 'app'@'127.0.0.1'";

pub async fn run(
    opts: &DemoOptions,
    work: &WorkDir,
    say: &dyn Fn(&str),
) -> anyhow::Result<DemoOutcome> {
    let tools = MariadbTools::find()?;
    let dir = &work.path;

    say(&format!(
        "1/8 starting a MariaDB primary ({})",
        tools.mariadbd.display()
    ));
    let mut primary = LocalMariadb::install("primary", &tools, &dir.join("primary")).await?;
    primary.start_primary(&tools).await?;
    let relay_port = crate::os_user::free_port()?;
    let standby_port = crate::os_user::free_port()?;
    let config = write_config(dir, &primary, relay_port, None)?;

    say(&format!(
        "2/8 instarec ship: streaming the binlog from {} into {}",
        primary.addr(),
        dir.join("archive").display()
    ));
    let mut ship = InstarecChild::spawn(&config, &["ship"], &dir.join("ship.log"))?;
    let mut admin = primary.admin().await?;
    admin
        .query_drop(SCHEMA)
        .await
        .context("creating the demo schema on the primary")?;

    say("3/8 instarec backup: mariabackup streamed into the archive");
    InstarecChild::run(&config, &["backup"], &dir.join("backup.log")).await?;

    say(&format!(
        "4/8 instarec relay on 127.0.0.1:{relay_port}: serves the archive's binlog to replicas"
    ));
    let mut relay = InstarecChild::spawn(&config, &["relay"], &dir.join("relay.log"))?;
    wait_for_port(relay_port, Duration::from_secs(10)).await?;

    say("5/8 instarec standby init --start: a standby from the backup, replicating from the relay");
    let standby_dir = dir.join("standby");
    // Adopted before the command runs, so an interruption stops it too.
    let mut standby = LocalMariadb::adopt("standby", &standby_dir, standby_port);
    InstarecChild::run(
        &config,
        &[
            "standby",
            "init",
            "--start",
            "--json",
            "--port",
            &standby_port.to_string(),
            "--server-id",
            STANDBY_SERVER_ID,
            "--data-dir",
            &standby_dir.display().to_string(),
        ],
        &dir.join("standby-init.log"),
    )
    .await?;
    let config = write_config(dir, &primary, relay_port, Some(&standby))?;

    say(&format!(
        "6/8 writing to the primary for {:?}, recording every acknowledged commit",
        opts.write_for
    ));
    let ledger = Ledger::start(LedgerDb::Mysql(format!(
        "mysql://app@127.0.0.1:{}/demo",
        primary.port
    )));
    tokio::time::sleep(opts.write_for).await;
    wait_until_standby_caught_up(&mut admin, &standby).await;
    drop(admin);

    let started = Instant::now();
    let promote_log = dir.join("promote.log");
    let (report, acknowledged) = if opts.planned {
        say("7/8 planned switchover: instarec promote --planned");
        let args = ["promote", "--json", "--planned"];
        let report = InstarecChild::run(&config, &args, &promote_log).await;
        (report, ledger.stop().await)
    } else {
        say("7/8 the primary crashes (kill -9) under writes; instarec promote");
        primary.kill9();
        // Nothing more can be acknowledged: the application's server is gone.
        let acknowledged = ledger.stop().await;
        let args = ["promote", "--json"];
        (
            InstarecChild::run(&config, &args, &promote_log).await,
            acknowledged,
        )
    };
    let report = report?;
    let report = promote_report(&report)?;
    ship.stop();
    relay.stop();
    super::name_new_primary(&config, &standby.url())?;

    say("8/8 checking the ledger against the new primary");
    let new_primary = LedgerDb::Mysql(format!("{}demo", standby.url()));
    let check =
        ledger_check::check_new_primary(&new_primary, &acknowledged, &report, started).await?;
    standby.stop();
    primary.stop();
    Ok(DemoOutcome::new(Engine::Mysql, work, check, report))
}

/// The demo's config; [standby] once the standby runs. Rewritten whole,
/// through a rename: running commands may read it.
fn write_config(
    dir: &Path,
    primary: &LocalMariadb,
    relay_port: u16,
    standby: Option<&LocalMariadb>,
) -> anyhow::Result<PathBuf> {
    let mut text = format!(
        r#"# written by `instarec demo --engine mysql`
[archive]
url = "file://{archive}"

[primary]
engine = "mysql"
url = "{primary}"
flush_interval = "200ms"

[relay]
listen = "127.0.0.1:{relay_port}"
user = "{RELAY_USER}"
password = "{RELAY_PASSWORD}"

[promote]
old_primary_timeout = "2s"
drain_timeout = "20s"
"#,
        archive = dir.join("archive").display(),
        primary = primary.url(),
    );
    if let Some(standby) = standby {
        text.push_str(&format!("\n[standby]\nurl = \"{}\"\n", standby.url()));
    }
    let path = dir.join("instarec.toml");
    let tmp = dir.join("instarec.toml.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

/// Gives the standby a moment to apply the archive's tail, as a real
/// standby would have had before an incident.
async fn wait_until_standby_caught_up(primary: &mut mysql_async::Conn, standby: &LocalMariadb) {
    let caught_up = async {
        let target: Option<String> = primary
            .query_first("SELECT @@global.gtid_binlog_pos")
            .await?;
        let mut s = standby.admin().await?;
        let _: Option<i64> = s
            .exec_first(
                "SELECT MASTER_GTID_WAIT(?, ?)",
                (target.unwrap_or_default(), CATCH_UP_TIMEOUT_SECONDS),
            )
            .await?;
        s.disconnect().await?;
        anyhow::Ok(())
    };
    if let Err(e) = caught_up.await {
        tracing::debug!(error = %format!("{e:#}"), "waiting for the standby to catch up");
    }
}
