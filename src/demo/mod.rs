//! `instarec demo`: the whole story on one machine in under a minute — a
//! primary shipping its log into a local archive, a backup, a hot standby
//! fed from the archive, a crash of the primary under writes, a promote,
//! and the RPO/RTO report checked against a ledger of acknowledged
//! commits. PostgreSQL or MariaDB; each engine's story is one file.

mod child;
mod ledger;
mod ledger_check;
pub mod local_mariadb;
pub mod local_postgres;
mod mysql_story;
mod postgres_story;

use crate::engine::Engine;
use crate::exit::CodedError;
use anyhow::{bail, Context as _};
use ledger_check::LedgerCheck;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub struct DemoOptions {
    pub engine: Engine,
    /// PostgreSQL's bin dir (`--pg-bin`); None: PATH, then Debian's dirs.
    pub pg_bin: Option<PathBuf>,
    /// Where everything lives; None: a new temp dir removed afterwards.
    pub dir: Option<PathBuf>,
    /// How long clients write before the crash.
    pub write_for: Duration,
    /// A switchover (`promote --planned`) instead of a crash.
    pub planned: bool,
    /// Keep the temp dir instead of removing it.
    pub keep: bool,
}

/// What the demo showed; printed by the command.
#[derive(Debug, serde::Serialize)]
pub struct DemoOutcome {
    pub engine: Engine,
    pub dir: String,
    /// Whether `dir` is still there for inspection.
    pub dir_kept: bool,
    pub acknowledged_commits: usize,
    /// Acknowledged and found on the new primary.
    pub present_commits: usize,
    pub lost_commits: usize,
    pub lost_commits_covered_by_rpo: bool,
    pub promote_report: serde_json::Value,
    /// The PostgreSQL major the demo ran; null for MariaDB.
    pub postgres_major: Option<u32>,
}

impl DemoOutcome {
    fn new(
        engine: Engine,
        work: &WorkDir,
        check: LedgerCheck,
        promote_report: serde_json::Value,
    ) -> Self {
        DemoOutcome {
            engine,
            dir: work.path.display().to_string(),
            dir_kept: !work.remove_on_drop,
            acknowledged_commits: check.acknowledged,
            present_commits: check.present,
            lost_commits: check.lost,
            lost_commits_covered_by_rpo: check.lost_covered_by_rpo,
            promote_report,
            postgres_major: None,
        }
    }
}

/// Runs the chosen engine's story. Every server and child it starts is
/// stopped when this returns, fails, or is dropped (e.g. on Ctrl-C); the
/// temp dir is removed then too, unless kept.
pub async fn run(opts: DemoOptions, say: impl Fn(&str)) -> anyhow::Result<DemoOutcome> {
    let work = WorkDir::create(&opts)?;
    say(&format!("working in {}", work.path.display()));
    match opts.engine {
        Engine::Postgres => postgres_story::run(&opts, &work, &say).await,
        Engine::Mysql => mysql_story::run(&opts, &work, &say).await,
    }
}

/// After a promote the standby is the primary: the config left in the
/// demo's directory names it in [primary] (and drops [standby]), so
/// `instarec status` on a kept directory tells the true story.
pub(crate) fn name_new_primary(config: &Path, new_primary_url: &str) -> anyhow::Result<()> {
    let mut table: toml::Table = std::fs::read_to_string(config)?.parse()?;
    if let Some(toml::Value::Table(primary)) = table.get_mut("primary") {
        primary.insert("url".into(), toml::Value::String(new_primary_url.into()));
    }
    table.remove("standby");
    let text = format!(
        "# written by `instarec demo`; after the promote, [primary] is the promoted standby\n{}",
        toml::to_string(&table)?
    );
    let tmp = config.with_extension("toml.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, config)?;
    Ok(())
}

/// The demo's directory: archive, data dirs, config and logs.
pub(crate) struct WorkDir {
    pub path: PathBuf,
    remove_on_drop: bool,
}

impl WorkDir {
    fn create(opts: &DemoOptions) -> anyhow::Result<Self> {
        let work = match &opts.dir {
            Some(d) => {
                // A previous run's servers and archive would be in the way.
                if std::fs::read_dir(d).is_ok_and(|mut entries| entries.next().is_some()) {
                    return Err(CodedError::new(
                        crate::exit::USAGE,
                        format!(
                            "{} is not empty; point --dir at a new or empty directory",
                            d.display()
                        ),
                    )
                    .into());
                }
                std::fs::create_dir_all(d)?;
                WorkDir {
                    path: std::path::absolute(d)?,
                    remove_on_drop: false,
                }
            }
            None => {
                let path = std::env::temp_dir().join(format!(
                    "instarec-demo-{}-{}",
                    std::process::id(),
                    chrono::Utc::now().timestamp_millis()
                ));
                std::fs::create_dir_all(&path)?;
                WorkDir {
                    path,
                    remove_on_drop: !opts.keep,
                }
            }
        };
        // The database servers' accounts must reach their data dirs.
        std::fs::set_permissions(
            &work.path,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )?;
        Ok(work)
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.remove_on_drop {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// promote's `--json` output.
fn promote_report(stdout: &str) -> anyhow::Result<serde_json::Value> {
    serde_json::from_str(stdout)
        .with_context(|| format!("promote printed no JSON report: {stdout}"))
}

async fn wait_for_port(port: u16, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if Instant::now() > deadline {
            bail!("nothing listens on 127.0.0.1:{port} after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}
