//! Which epoch a shipper writes under. The current epoch names its
//! primary; a shipper pointed at any other server is fenced out.

use crate::archive::{Archive, ArchiveError, Epoch, EpochClaim};
use crate::exit::{CodedError, FENCED};

/// The epoch to ship under from `primary` (host:port). Claims epoch 1 on a
/// fresh archive. Refuses when the current epoch belongs to another primary.
pub async fn epoch_for_primary(archive: &Archive, primary: &str) -> anyhow::Result<Epoch> {
    loop {
        match archive.current_epoch().await? {
            Some(rec) => {
                return match rec.primary.as_deref() {
                    Some(p) if p != primary => Err(CodedError::new(
                        FENCED,
                        format!(
                            "archive {} is at {} whose primary is {p} (claimed by {} at {}); this shipper's primary {primary} was fenced. Ship from {p}, or run `instarec promote` to make {primary} the primary",
                            archive.url(),
                            rec.epoch,
                            rec.holder,
                            rec.claimed_at.to_rfc3339()
                        ),
                    )
                    .into()),
                    _ => Ok(rec.epoch),
                };
            }
            None => {
                let claim = EpochClaim {
                    holder: holder("ship"),
                    primary: Some(primary.to_string()),
                };
                match archive.claim_epoch(claim).await {
                    Ok(rec) => {
                        tracing::info!(epoch = %rec.epoch, %primary, "claimed the first epoch");
                        return Ok(rec.epoch);
                    }
                    // Someone else claimed first: read what they claimed.
                    Err(ArchiveError::EpochTaken { .. }) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
}

/// "ship@host pid 123": who holds an epoch, for operators reading the archive.
pub fn holder(role: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown-host".into());
    format!("{role}@{host} pid {}", std::process::id())
}
