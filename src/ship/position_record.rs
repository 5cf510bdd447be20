//! The primary's last known position, recorded in the archive with the wall
//! clock, so a later promote can say how far the archive was behind.

use crate::archive::{Archive, ArchiveError, Epoch};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub const PREFIX: &str = "positions/";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PositionRecord {
    pub epoch: u64,
    /// The primary's end of log, as the engine writes it ("0/3000060").
    pub primary: String,
    /// What the archive durably held when this was written.
    pub durable: String,
    pub at: DateTime<Utc>,
}

/// `positions/<epoch>/<unix millis>`: zero-padded so listing order is time order.
pub fn key(epoch: Epoch, at: DateTime<Utc>) -> String {
    format!(
        "{PREFIX}{:020}/{:020}",
        epoch.0,
        at.timestamp_millis().max(0)
    )
}

/// Writes a record; the previous one for this epoch is then redundant.
pub async fn write(
    archive: &Archive,
    epoch: Epoch,
    record: &PositionRecord,
    previous: Option<&str>,
) -> Result<String, ArchiveError> {
    // Invariant 4: a fenced shipper (e.g. one whose old primary came back
    // after a failover) must not write, not even a position record.
    archive.ensure_current_epoch(epoch).await?;
    let key = key(epoch, record.at);
    let body = serde_json::to_vec(record).expect("position record serializes");
    archive.put_metadata(&key, body.into()).await?;
    if let Some(prev) = previous.filter(|p| *p != key) {
        archive.delete(prev).await?;
    }
    Ok(key)
}

/// The newest record in the archive, of any epoch.
pub async fn latest(archive: &Archive) -> Result<Option<PositionRecord>, ArchiveError> {
    let entries = archive.list(PREFIX).await?;
    let Some(last) = entries.last() else {
        return Ok(None);
    };
    let bytes = archive.get(&last.key).await?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| ArchiveError::Corrupt {
            key: last.key.clone(),
            reason: format!("position record is not valid JSON: {e}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::{ArchiveSettings, EpochClaim};

    fn claim(holder: &str) -> EpochClaim {
        EpochClaim {
            holder: holder.into(),
            primary: Some("127.0.0.1:5432".into()),
        }
    }

    #[tokio::test]
    async fn a_fenced_shipper_writes_no_position_record() {
        let archive = Archive::open(&ArchiveSettings::new("memory://")).unwrap();
        let mine = archive.claim_epoch(claim("ship")).await.unwrap().epoch;
        let record = PositionRecord {
            epoch: mine.0,
            primary: "0/3000000".into(),
            durable: "0/2000000".into(),
            at: Utc::now(),
        };
        let first = write(&archive, mine, &record, None).await.unwrap();
        archive.claim_epoch(claim("promote")).await.unwrap();
        let err = write(&archive, mine, &record, Some(&first))
            .await
            .unwrap_err();
        assert!(matches!(err, ArchiveError::Fenced { .. }), "{err}");
        assert!(
            archive.exists(&first).await.unwrap(),
            "previous record kept"
        );
        assert_eq!(archive.list(PREFIX).await.unwrap().len(), 1);
    }
}
