//! Settings that depend on more than one section, with their defaults in
//! one place, so commands do not each spell them out.

use super::sections::{defaults, RelaySection};
use super::Config;
use std::time::Duration;

impl Config {
    /// [promote] failover_settle, by default twice [primary] flush_interval
    /// plus 100 ms (what the old shipper may still be uploading).
    pub fn failover_settle(&self) -> Duration {
        self.promote
            .failover_settle
            .map(|d| d.0)
            .unwrap_or_else(|| {
                let flush = self
                    .primary
                    .as_ref()
                    .map(|p| p.flush_interval)
                    .unwrap_or_else(defaults::flush_interval);
                flush.0 * 2 + Duration::from_millis(100)
            })
    }

    /// How the shipper names itself to a PostgreSQL primary.
    pub fn shipper_application_name(&self) -> String {
        self.primary
            .as_ref()
            .map(|p| p.application_name.clone())
            .unwrap_or_else(defaults::application_name)
    }

    /// How often the relay looks for new binlog; its default without [relay].
    pub fn relay_poll_interval(&self) -> Duration {
        self.relay
            .as_ref()
            .map(|r| r.poll_interval)
            .unwrap_or_else(RelaySection::default_poll_interval)
            .0
    }
}
