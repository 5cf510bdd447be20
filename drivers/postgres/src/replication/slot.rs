//! Physical replication slots: names and what READ_REPLICATION_SLOT reports.

use crate::error::PgError;
use crate::lsn::{Lsn, TimelineId};

#[derive(Clone, Eq, PartialEq, Debug)]
pub struct SlotInfo {
    /// "physical" (READ_REPLICATION_SLOT refuses logical slots).
    pub slot_type: String,
    /// Oldest WAL the slot keeps; None until the slot has reserved WAL.
    pub restart_lsn: Option<Lsn>,
    pub restart_tli: Option<TimelineId>,
}

/// Slot names go into replication commands unquoted, so they are checked against the
/// server's own rule (lower-case letters, digits, underscore; at most 63 bytes).
pub fn validate_slot_name(slot: &str) -> Result<(), PgError> {
    let ok = !slot.is_empty()
        && slot.len() <= 63
        && slot
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(PgError::InvalidSlotName {
            slot: slot.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_names_follow_server_rules() {
        assert!(validate_slot_name("instarec_1").is_ok());
        assert!(validate_slot_name(&"a".repeat(63)).is_ok());
        for bad in ["", "Upper", "has-dash", "x; DROP", "é", &"a".repeat(64)] {
            assert!(
                matches!(
                    validate_slot_name(bad),
                    Err(PgError::InvalidSlotName { .. })
                ),
                "{bad}"
            );
        }
    }
}
