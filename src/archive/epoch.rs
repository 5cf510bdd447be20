//! Fencing epochs: `epochs/<n>`, one write-once object per promotion.
//!
//! Whoever creates `epochs/<n>` first (PutMode::Create) owns epoch n; any
//! AlreadyExists means someone else won, even with an identical body, so two
//! claimers can never both win. Writers check that `epochs/<mine+1>` is absent
//! before acknowledging anything (invariant 4).

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::error::ArchiveError;
use super::handle::{Archive, CreateOutcome};

/// Folder of the epoch objects, relative to the archive root.
pub const EPOCHS_PREFIX: &str = "epochs/";

/// A fencing epoch; higher is newer. The first claim is epoch 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Epoch(pub u64);

impl Epoch {
    /// The object key of this epoch; zero-padded so listing order is numeric order.
    pub fn key(self) -> String {
        format!("{EPOCHS_PREFIX}{:020}", self.0)
    }

    pub fn next(self) -> Epoch {
        Epoch(self.0.saturating_add(1))
    }

    fn from_key(key: &str) -> Option<Epoch> {
        let digits = key.strip_prefix(EPOCHS_PREFIX)?;
        if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok().map(Epoch)
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "epoch {}", self.0)
    }
}

/// What a claimer says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochClaim {
    /// Who claimed, e.g. "promote@host pid 123".
    pub holder: String,
    /// host:port of the primary of this epoch, when known.
    pub primary: Option<String>,
}

/// The body of `epochs/<n>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: Epoch,
    pub holder: String,
    pub primary: Option<String>,
    pub claimed_at: DateTime<Utc>,
}

impl Archive {
    /// The highest claimed epoch, if any.
    pub async fn current_epoch(&self) -> Result<Option<EpochRecord>, ArchiveError> {
        let entries = self.list(EPOCHS_PREFIX).await?;
        let Some(last) = entries.last() else {
            return Ok(None);
        };
        let epoch = Epoch::from_key(&last.key).ok_or_else(|| ArchiveError::Corrupt {
            key: last.key.clone(),
            reason: "not an epoch object name (expected epochs/ and 20 digits)".to_string(),
        })?;
        let body = self.get(&last.key).await?;
        let record: EpochRecord =
            serde_json::from_slice(&body).map_err(|e| ArchiveError::Corrupt {
                key: last.key.clone(),
                reason: format!("epoch record is not valid JSON: {e}"),
            })?;
        if record.epoch != epoch {
            return Err(ArchiveError::Corrupt {
                key: last.key.clone(),
                reason: format!("the record inside says {}", record.epoch),
            });
        }
        Ok(Some(record))
    }

    /// Claims the epoch after the current one. Losing the race (or a lost ack
    /// on our own create: safe, the epoch is just skipped) is EpochTaken.
    pub async fn claim_epoch(&self, claim: EpochClaim) -> Result<EpochRecord, ArchiveError> {
        let epoch = match self.current_epoch().await? {
            Some(current) => current.epoch.next(),
            None => Epoch(1),
        };
        let record = EpochRecord {
            epoch,
            holder: claim.holder,
            primary: claim.primary,
            claimed_at: Utc::now(),
        };
        let key = epoch.key();
        let body = serde_json::to_vec_pretty(&record).map_err(|e| ArchiveError::Task {
            key: key.clone(),
            reason: format!("cannot serialise epoch record: {e}"),
        })?;
        match self.create_metadata(&key, body.into()).await? {
            CreateOutcome::Created => {
                tracing::info!(epoch = record.epoch.0, holder = %record.holder, "claimed epoch");
                Ok(record)
            }
            CreateOutcome::Exists => Err(ArchiveError::EpochTaken { epoch }),
        }
    }

    /// Fails with Fenced when an epoch newer than `mine` exists. One HEAD in the
    /// common case; epochs are consecutive, so `mine+1` absent means none newer.
    pub async fn ensure_current_epoch(&self, mine: Epoch) -> Result<(), ArchiveError> {
        if !self.exists(&mine.next().key()).await? {
            return Ok(());
        }
        // Fenced: report the newest epoch if we can read it, else the one we saw.
        let newer = match self.current_epoch().await {
            Ok(Some(record)) if record.epoch > mine => record.epoch,
            _ => mine.next(),
        };
        Err(ArchiveError::Fenced { mine, newer })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_numerically_and_round_trip() {
        assert_eq!(Epoch(3).key(), "epochs/00000000000000000003");
        assert!(Epoch(9).key() < Epoch(10).key());
        assert_eq!(
            Epoch::from_key(&Epoch(u64::MAX).key()),
            Some(Epoch(u64::MAX))
        );
        assert_eq!(Epoch::from_key("epochs/3"), None);
        assert_eq!(Epoch(3).to_string(), "epoch 3");
    }

    #[test]
    fn record_json_shape() {
        let record = EpochRecord {
            epoch: Epoch(2),
            holder: "promote@db2 pid 77".to_string(),
            primary: Some("db2:5432".to_string()),
            claimed_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        };
        assert_eq!(
            serde_json::to_string(&record).unwrap(),
            r#"{"epoch":2,"holder":"promote@db2 pid 77","primary":"db2:5432","claimed_at":"2023-11-14T22:13:20Z"}"#
        );
    }
}
