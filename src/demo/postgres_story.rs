//! The PostgreSQL story: a primary shipping WAL into the archive, a base
//! backup, a hot standby replaying the archive, the proxy in front, a crash
//! (or a switchover) under writes through the proxy, and promote.

use super::child::InstarecChild;
use super::ledger::{self, Ledger, LedgerDb};
use super::local_postgres::{find_bin_dir, LocalPostgres};
use super::{ledger_check, promote_report, wait_for_port, DemoOptions, DemoOutcome, WorkDir};
use crate::engine::Engine;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub async fn run(
    opts: &DemoOptions,
    work: &WorkDir,
    say: &dyn Fn(&str),
) -> anyhow::Result<DemoOutcome> {
    let binaries = find_bin_dir(opts.pg_bin.as_deref())?;
    let bin_dir = binaries.dir.clone();
    let dir = &work.path;

    say(&format!(
        "1/8 starting a PostgreSQL {} primary ({})",
        binaries.major,
        bin_dir.display()
    ));
    let mut primary = LocalPostgres::init("primary", &bin_dir, &dir.join("primary"))?;
    primary.start(&[])?;
    let proxy_port = crate::os_user::free_port()?;
    let control_port = crate::os_user::free_port()?;
    let standby_port_placeholder = 1; // the standby's port is known once it runs
    let config = write_config(
        dir,
        &primary,
        standby_port_placeholder,
        proxy_port,
        control_port,
    )?;

    say(&format!(
        "2/8 instarec ship: streaming WAL from {} into {}",
        primary.addr(),
        dir.join("archive").display()
    ));
    let mut ship = InstarecChild::spawn(&config, &["ship"], &dir.join("ship.log"))?;
    let admin = ledger::connect_postgres(&primary.url()).await?;
    admin
        .batch_execute(
            "CREATE TABLE demo_ledger (id bigint PRIMARY KEY, note text, at timestamptz DEFAULT now());
             INSERT INTO demo_ledger SELECT -g, 'seed' FROM generate_series(1, 1000) g;",
        )
        .await?;

    say("3/8 instarec backup: base backup streamed into the archive");
    InstarecChild::run(&config, &["backup"], &dir.join("backup.log")).await?;

    say("4/8 instarec standby init: a hot standby replaying the archive");
    let standby_dir = dir.join("standby");
    InstarecChild::run(
        &config,
        &[
            "standby",
            "init",
            "--data-dir",
            &standby_dir.display().to_string(),
        ],
        &dir.join("standby-init.log"),
    )
    .await?;
    let mut standby = LocalPostgres::existing("standby", &bin_dir, &standby_dir, primary.owner());
    standby.start(&[])?;
    let config = write_config(dir, &primary, standby.port, proxy_port, control_port)?;

    say(&format!(
        "5/8 instarec proxy on 127.0.0.1:{proxy_port}: clients connect here"
    ));
    let _proxy = InstarecChild::spawn(&config, &["proxy"], &dir.join("proxy.log"))?;
    wait_for_port(proxy_port, Duration::from_secs(10)).await?;

    say(&format!(
        "6/8 writing through the proxy for {:?}, recording every acknowledged commit",
        opts.write_for
    ));
    let ledger = Ledger::start(LedgerDb::Postgres(format!(
        "postgres://postgres@127.0.0.1:{proxy_port}/postgres"
    )));
    tokio::time::sleep(opts.write_for).await;
    wait_until_standby_caught_up(&primary, &standby).await;

    let started = Instant::now();
    let mut promote_args = vec!["promote", "--json"];
    if opts.planned {
        say("7/8 planned switchover: instarec promote --planned");
        promote_args.push("--planned");
    } else {
        say("7/8 the primary crashes (kill -9) under writes; instarec promote");
        primary.kill9();
    }
    let report = InstarecChild::run(&config, &promote_args, &dir.join("promote.log")).await?;
    let report = promote_report(&report)?;
    // Let clients reconnect through the proxy to the new primary.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let acknowledged = ledger.stop().await;
    ship.stop();
    super::name_new_primary(&config, &standby.url())?;

    say("8/8 checking the ledger against the new primary");
    let new_primary = LedgerDb::Postgres(standby.url());
    let check =
        ledger_check::check_new_primary(&new_primary, &acknowledged, &report, started).await?;
    standby.stop();
    primary.stop();
    let mut outcome = DemoOutcome::new(Engine::Postgres, work, check, report);
    outcome.postgres_major = Some(binaries.major);
    Ok(outcome)
}

fn write_config(
    dir: &Path,
    primary: &LocalPostgres,
    standby_port: u16,
    proxy_port: u16,
    control_port: u16,
) -> anyhow::Result<PathBuf> {
    let path = dir.join("instarec.toml");
    std::fs::write(
        &path,
        format!(
            r#"# written by `instarec demo`
[archive]
url = "file://{archive}"

[primary]
engine = "postgres"
url = "{primary}"
flush_interval = "200ms"

[standby]
url = "postgres://postgres@127.0.0.1:{standby_port}/postgres"

[promote]
old_primary_timeout = "2s"

[cutover]
method = "proxy"
listen = "127.0.0.1:{proxy_port}"
proxy_control = "127.0.0.1:{control_port}"
"#,
            archive = dir.join("archive").display(),
            primary = primary.url(),
        ),
    )?;
    Ok(path)
}

/// Gives the standby a moment to replay the archive's tail, as a real
/// standby would have had before an incident.
async fn wait_until_standby_caught_up(primary: &LocalPostgres, standby: &LocalPostgres) {
    let (Ok(p), Ok(s)) = (
        ledger::connect_postgres(&primary.url()).await,
        ledger::connect_postgres(&standby.url()).await,
    ) else {
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let caught_up = async {
            let target: String = p
                .query_one("SELECT pg_current_wal_flush_lsn()::text", &[])
                .await?
                .get(0);
            let row = s
                .query_one(
                    "SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), $1::text::pg_lsn) >= 0",
                    &[&target],
                )
                .await?;
            Ok::<bool, tokio_postgres::Error>(row.get(0))
        }
        .await
        .unwrap_or(false);
        if caught_up {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
