//! The promote sequence, once for every engine: check, fence the old
//! primary, claim the next epoch, drain the standby, promote it, cut
//! clients over, prove a write, report. Engine specifics go through
//! [`ServerControl`]; nothing here knows PostgreSQL from MySQL.

use super::drain::{self, Drained};
use super::error::PromoteError;
use super::new_primary_sync;
use super::report::{CutoverStepReport, PromoteReport};
use super::rpo::{self, RpoInputs};
use super::steps::Steps;
use crate::archive::{Archive, ArchiveError, ClusterRecord, EpochClaim};
use crate::config::{CutoverSection, PromoteSection};
use crate::cutover::{self, CutoverTarget};
use crate::engine::{FencedPrimary, Reach, ServerControl};
use crate::host_port::HostPort;
use crate::ship::{epoch_claim, position_record};
use anyhow::Context as _;
use chrono::Utc;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// What the operator asked for.
#[derive(Debug, Clone)]
pub struct PromoteOptions {
    /// A switchover: the old primary must be reachable; clients are paused first.
    pub planned: bool,
    /// Run through `sh -c` to stop the old primary once it is fenced and
    /// drained, with INSTAREC_OLD_PRIMARY_HOST/_PORT set.
    pub stop_old: Option<String>,
    /// How long `pg_promote`-style promotion may take.
    pub promote_wait: Duration,
    /// How long to keep trying the first write after cutover.
    pub write_timeout: Duration,
}

impl Default for PromoteOptions {
    fn default() -> Self {
        PromoteOptions {
            planned: false,
            stop_old: None,
            promote_wait: Duration::from_secs(60),
            write_timeout: Duration::from_secs(30),
        }
    }
}

/// How much longer than `failover_settle` a failover waits for a still-
/// growing archive before it claims the epoch anyway.
const FAILOVER_SETTLE_BOUND: Duration = Duration::from_secs(2);

/// The configuration promote works from.
pub struct Plan<'a> {
    /// The archive, not yet bound to a cluster.
    pub archive: &'a Archive,
    pub promote: &'a PromoteSection,
    pub cutover: Option<&'a CutoverSection>,
    /// [primary] synchronous: the shipper acknowledged only durable log.
    pub synchronous: bool,
    /// How long the archive must stay still before a failover claims the
    /// epoch ([promote] failover_settle).
    pub failover_settle: Duration,
}

pub async fn run<C: ServerControl>(
    control: &C,
    plan: Plan<'_>,
    options: &PromoteOptions,
) -> anyhow::Result<PromoteReport> {
    let started = Instant::now();
    let started_at = Utc::now();
    let mut steps = Steps::default();
    let mut notes = Vec::new();
    let new_primary = control.standby_addr();

    // 1. Checks that change nothing.
    let (archive, cluster) = steps.time("check", check(control, plan.archive)).await?;

    // 2. Fence the old primary when it answers, and drain it into the archive.
    let reach_timeout = plan.promote.old_primary_timeout.0;
    let reach = steps
        .time(
            "reach_old_primary",
            control.reach_old_primary(reach_timeout),
        )
        .await?;
    let fenced = match reach {
        Reach::Reached(identity) if identity.replaying => {
            notes.push(format!(
                "the old primary {} is itself replaying (not a primary); it was not fenced",
                control.old_primary_addr().unwrap_or_default()
            ));
            None
        }
        Reach::Reached(identity) => {
            let cluster = &cluster.system_id;
            if identity.system_id != *cluster {
                return Err(ArchiveError::ClusterMismatch {
                    url: plan.archive.url().to_string(),
                    archive: format!("system {cluster}"),
                    ours: format!(
                        "old primary {} is system {}",
                        control.old_primary_addr().unwrap_or_default(),
                        identity.system_id
                    ),
                }
                .into());
            }
            Some(fence_and_drain(control, &archive, &plan, options, &mut steps).await?)
        }
        Reach::Unreachable(reason) => {
            let addr = control
                .old_primary_addr()
                .unwrap_or_else(|| "(none)".into());
            if options.planned {
                return Err(PromoteError::PlannedUnreachable { addr, reason }.into());
            }
            tracing::warn!(old_primary = %addr, %reason, "old primary unreachable: failing over without it");
            notes.push(format!(
                "old primary {addr} unreachable ({reason}): failover"
            ));
            // The old primary's shipper may still hold complete transactions
            // it received before the crash; claiming the epoch would fence
            // them out of the archive. Bounded: a partitioned primary whose
            // shipper keeps shipping must not stall the failover.
            if !plan.failover_settle.is_zero() {
                let bound = plan.failover_settle + FAILOVER_SETTLE_BOUND;
                let settled = steps
                    .time(
                        "archive_settle",
                        drain::archive_settles(control, &archive, plan.failover_settle, bound),
                    )
                    .await?;
                if !settled {
                    notes.push(format!(
                        "the archive was still growing after {bound:?}: the old primary's shipper may still be running; claiming the epoch fences it"
                    ));
                }
            }
            None
        }
    };

    // 3. Claim the next epoch: from here on the old primary's shipper is fenced.
    let claim = EpochClaim {
        holder: epoch_claim::holder("promote"),
        primary: Some(new_primary.clone()),
    };
    let epoch = steps
        .time("claim_epoch", archive.claim_epoch(claim))
        .await
        .context("claiming the next epoch (another promote may have won; check `instarec archive ls epochs/`)")?
        .epoch;
    tracing::info!(%epoch, %new_primary, "claimed epoch");

    // 4. Bring the standby to the archive's end, then promote it.
    let target = control.archive_end(&archive).await?;
    let settle = control.standby_poll_interval().await? * 2 + Duration::from_millis(500);
    let floor = fenced.as_ref().map(|f| &f.final_position);
    let drained = match &target {
        Some(target) => Some(
            steps
                .time(
                    "drain_standby",
                    drain::standby_replays(
                        control,
                        target,
                        floor,
                        settle,
                        plan.promote.drain_timeout.0,
                    ),
                )
                .await?,
        ),
        None => None,
    };
    match &drained {
        Some(Drained::Stalled(at)) => notes.push(format!(
            "the standby stopped at {at}, short of the archive's end {}; the rest is not replayable (an incomplete last record)",
            target.as_ref().map(ToString::to_string).unwrap_or_default()
        )),
        Some(Drained::TimedOut(at)) => notes.push(format!(
            "the standby was still replaying at {at} when [promote] drain_timeout ran out; promoted there"
        )),
        _ => {}
    }
    let promoted = steps
        .time("promote", control.promote_standby(options.promote_wait))
        .await?;
    tracing::info!(recovered = %promoted.recovered, "standby promoted");
    match steps
        .time("archive_history", control.publish_new_history(&archive))
        .await
    {
        Ok(line) => tracing::info!("{line}"),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), new_primary = %new_primary, "SHIPPING FROM THE NEW PRIMARY CANNOT START: the archive lacks the timeline history it needs");
            notes.push(format!("shipping from the new primary {new_primary} cannot start: {e:#}; fix this, then start `instarec ship` against it, or its log is not archived"));
        }
    }
    let promoted_at = Instant::now();
    let suspended = match steps
        .time(
            "synchronous_off",
            new_primary_sync::suspend(control, plan.promote.synchronous_after_promote, &mut notes),
        )
        .await
    {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "could not switch the new primary's inherited zero-loss mode off; its commits may wait for a shipper");
            notes.push(format!("could not switch the new primary's inherited zero-loss mode off ({e:#}); the first write waited for a shipper"));
            None
        }
    };

    // 5. What was lost.
    let archive_end = control.archive_end(&archive).await?;
    let recorded_primary = match position_record::latest(&archive).await {
        Ok(Some(record)) => record.primary.parse::<C::Position>().ok(),
        Ok(None) => None,
        Err(e) => {
            notes.push(format!(
                "could not read the recorded primary positions: {e}"
            ));
            None
        }
    };
    let assessed = rpo::assess(
        &RpoInputs {
            fenced_final: fenced.as_ref().map(|f| f.final_position.clone()),
            synchronous: plan.synchronous,
            synchronous_can_lapse: control.synchronous_can_lapse(),
            recovered: promoted.recovered.clone(),
            archive_end,
            recorded_primary,
            last_commit_at: promoted.last_commit_at,
            started_at,
        },
        |a, b| control.bytes_between(a, b),
    );
    notes.extend(assessed.notes.iter().cloned());
    // Engines whose positions name transactions also say which were lost.
    let gap = control.transactions_between(&promoted.recovered, &assessed.last_known);
    let lost = if assessed.nothing_lost {
        if let Some(g) = gap.as_ref().filter(|g| g.count > 0) {
            notes.push(format!(
                "{} was logged by the old primary but never acknowledged to a client; it is not in the new primary",
                g.ids
            ));
        }
        control.transactions_between(&promoted.recovered, &promoted.recovered)
    } else {
        gap
    };

    // 6. Cut clients over.
    let HostPort { host, port } = HostPort::parse(&new_primary)?;
    let mut cutover_steps = Vec::new();
    if let Some(section) = plan.cutover {
        let target = CutoverTarget {
            host,
            port,
            epoch: epoch.0,
        };
        let applied = steps
            .time("cutover", cutover::run(section, &target))
            .await
            .with_context(|| format!("promoted {new_primary} in {epoch}, but the cutover failed; clients may still go to the old primary"))?;
        cutover_steps = applied
            .into_iter()
            .map(|s| CutoverStepReport {
                method: s.method,
                seconds: s.seconds,
                detail: s.detail,
            })
            .collect();
    }

    // 7. RTO: until a write went through the path clients use.
    let via = write_path(plan.cutover);
    let path = via
        .map(|a| a.to_string())
        .unwrap_or_else(|| new_primary.clone());
    let note = format!("promote to {new_primary} in epoch {}", epoch.0);
    steps
        .time(
            "first_write",
            first_write(control, via, &note, options.write_timeout),
        )
        .await
        .map_err(|reason| PromoteError::NoWrite {
            new_primary: new_primary.clone(),
            epoch: epoch.0,
            path: path.clone(),
            timeout: options.write_timeout,
            reason,
        })?;
    let rto_seconds = started.elapsed().as_secs_f64();

    // 8. Zero-loss mode back on once a shipper streams from the new primary.
    let synchronous_after_promote = match &suspended {
        Some(s) => Some(
            steps
                .time(
                    "restore_synchronous",
                    new_primary_sync::restore(
                        control,
                        s,
                        promoted_at,
                        plan.promote.shipper_timeout.0,
                        &mut notes,
                    ),
                )
                .await
                .unwrap_or_else(|e| {
                    tracing::error!(error = %format!("{e:#}"), setting = %s.described, "could not restore zero-loss mode on the new primary");
                    notes.push(format!("could not restore {} on the new primary ({e:#}); it runs asynchronously until you set it again and reload", s.described));
                    "asynchronous: restoring it failed".into()
                }),
        ),
        None => None,
    };

    Ok(PromoteReport {
        rpo_bytes: assessed.bytes,
        rpo_seconds: assessed.seconds,
        rto_seconds,
        recovered_position: promoted.recovered.to_string(),
        last_known_primary_position: assessed.last_known.to_string(),
        epoch: epoch.0,
        mode: assessed.mode,
        steps: steps.into_list(),
        rpo_bytes_exact: assessed.bytes_exact,
        rpo_transactions: lost.as_ref().map(|l| l.count),
        lost_gtids: lost.map(|l| l.ids),
        known_gap_bytes: assessed.known_gap_bytes,
        started_at,
        last_replayed_commit_at: promoted.last_commit_at,
        new_primary,
        old_primary: control.old_primary_addr(),
        old_primary_fenced: fenced.is_some(),
        cutover: cutover_steps,
        write_path: path,
        synchronous_after_promote,
        notes,
    })
}

/// The standby must be replaying this archive's cluster. Returns the
/// archive bound to that cluster, and its record.
async fn check<C: ServerControl>(
    control: &C,
    archive: &Archive,
) -> anyhow::Result<(Archive, ClusterRecord)> {
    let record = archive
        .read_cluster()
        .await?
        .ok_or_else(|| PromoteError::NoCluster {
            url: archive.url().to_string(),
        })?;
    if control.old_primary_addr().as_deref() == Some(control.standby_addr().as_str()) {
        return Err(PromoteError::SameServer {
            addr: control.standby_addr(),
        }
        .into());
    }
    let standby = control.standby_identity().await?;
    if standby.system_id != record.system_id {
        return Err(ArchiveError::ClusterMismatch {
            url: archive.url().to_string(),
            archive: format!("{} system {}", record.engine, record.system_id),
            ours: format!(
                "standby {} is system {}",
                control.standby_addr(),
                standby.system_id
            ),
        }
        .into());
    }
    if !standby.replaying {
        return Err(PromoteError::NotAStandby {
            addr: control.standby_addr(),
        }
        .into());
    }
    Ok((archive.bind_cluster(record.tag()), record))
}

/// Pauses clients (planned), fences the old primary, waits until the
/// archive and the standby hold its final position, and stops it if asked.
/// Any failure before the epoch claim undoes the fence and the pause.
async fn fence_and_drain<C: ServerControl>(
    control: &C,
    archive: &Archive,
    plan: &Plan<'_>,
    options: &PromoteOptions,
    steps: &mut Steps,
) -> anyhow::Result<FencedPrimary<C::Position>> {
    if options.planned {
        if let Some(section) = plan.cutover {
            steps.time("pause_clients", cutover::pause(section)).await?;
        }
    }
    let result = fence_drain_stop(control, archive, plan, options, steps).await;
    if result.is_err() {
        if let Err(e) = control.unfence_old_primary().await {
            tracing::error!(error = %format!("{e:#}"), "could not make the old primary writable again; run ALTER SYSTEM RESET default_transaction_read_only and reload it");
        }
        if let (true, Some(section)) = (options.planned, plan.cutover) {
            if let Err(e) = cutover::resume(section).await {
                tracing::error!(error = %format!("{e:#}"), "could not resume paused clients");
            }
        }
    }
    result
}

async fn fence_drain_stop<C: ServerControl>(
    control: &C,
    archive: &Archive,
    plan: &Plan<'_>,
    options: &PromoteOptions,
    steps: &mut Steps,
) -> anyhow::Result<FencedPrimary<C::Position>> {
    let fenced = steps
        .time("fence_old_primary", control.fence_old_primary())
        .await?;
    tracing::info!(final_position = %fenced.final_position, sessions_ended = fenced.sessions_ended, "old primary fenced: read-only");
    let timeout = plan.promote.drain_timeout.0;
    let target = &fenced.final_position;
    match steps
        .time(
            "drain_archive",
            drain::archive_reaches(control, archive, target, timeout),
        )
        .await?
    {
        Ok(_) => {}
        Err(reached) => {
            return Err(PromoteError::ArchiveDrain {
                target: target.to_string(),
                reached: reached
                    .map(|r| r.to_string())
                    .unwrap_or_else(|| "nothing".into()),
                timeout,
            }
            .into())
        }
    }
    // The standby must hold the final position before any epoch is claimed,
    // so giving up here still leaves the old primary in charge.
    match steps
        .time(
            "catch_up_standby",
            drain::standby_replays(control, target, None, timeout, timeout),
        )
        .await?
    {
        Drained::Reached(_) => {}
        other => {
            return Err(PromoteError::StandbyDrain {
                addr: control.standby_addr(),
                target: target.to_string(),
                reached: other.position().to_string(),
                timeout,
            }
            .into())
        }
    }
    if let Some(command) = &options.stop_old {
        steps
            .time("stop_old_primary", stop_old(control, command))
            .await?;
    }
    Ok(fenced)
}

async fn stop_old<C: ServerControl>(control: &C, command: &str) -> anyhow::Result<()> {
    let addr = control.old_primary_addr().unwrap_or_default();
    let (host, port) = HostPort::parse(&addr)
        .map(|a| (a.host, a.port))
        .unwrap_or_default();
    let out = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("INSTAREC_OLD_PRIMARY_HOST", host)
        .env("INSTAREC_OLD_PRIMARY_PORT", port.to_string())
        .output()
        .await
        .map_err(|e| PromoteError::StopOld {
            command: command.to_string(),
            reason: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(PromoteError::StopOld {
            command: command.to_string(),
            reason: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        }
        .into());
    }
    Ok(())
}

/// Where clients connect, when the config says: `[cutover] listen` is the
/// embedded proxy's address, or haproxy's frontend with method "haproxy".
/// Else None (write to the new primary directly).
fn write_path(cutover: Option<&CutoverSection>) -> Option<SocketAddr> {
    let section = cutover?;
    if section
        .method
        .list()
        .iter()
        .any(|m| m == "proxy" || m == "haproxy")
    {
        section.listen
    } else {
        None
    }
}

/// Retries the probe write until it succeeds or `timeout` passes (a proxy
/// may take a moment to follow the new epoch).
async fn first_write<C: ServerControl>(
    control: &C,
    via: Option<SocketAddr>,
    note: &str,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        // One attempt may wait long: a commit on a primary that waits for a
        // synchronous replica finishes only once one (e.g. `instarec ship`) connects.
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, control.write_probe(via, note)).await {
            Ok(Ok(())) => return Ok(()),
            Err(_) => {
                return Err(
                    "the write was still waiting for its commit to be acknowledged; if the new primary waits for a synchronous replica, start it (`instarec ship` with [primary] url pointing at the new primary)".into(),
                )
            }
            Ok(Err(e)) if Instant::now() >= deadline => return Err(format!("{e:#}")),
            Ok(Err(e)) => {
                tracing::debug!(error = %format!("{e:#}"), "probe write failed; retrying")
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
