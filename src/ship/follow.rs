//! `follow_promotions`: which primary a shipper ships from once a promote
//! has named a new one in the archive's epoch.

use crate::archive::Archive;
use crate::config::PrimarySection;
use crate::host_port::HostPort;

/// The primary (host:port) the archive's current epoch names, if any. An
/// archive that cannot be read now leaves the choice to [primary] url: the
/// epoch check before the first write still fences a wrong choice.
pub async fn epoch_primary(archive: &Archive) -> Option<String> {
    match archive.current_epoch().await {
        Ok(record) => record.and_then(|r| r.primary),
        Err(e) => {
            tracing::warn!(error = %e, "could not read the archive's current epoch; shipping from [primary] url");
            None
        }
    }
}

/// host:port of [primary] url, spelled as epochs spell a primary (no
/// brackets around an IPv6 host, as the sources record it).
pub fn configured_addr(primary: &PrimarySection) -> Option<String> {
    let addr = HostPort::from_url(primary.url.expose(), primary.engine.default_port()).ok()?;
    Some(format!("{}:{}", addr.host, addr.port))
}

/// The server an epoch names is still a standby: the promote that named it
/// has not finished, so a following shipper waits for it.
#[derive(Debug, thiserror::Error)]
#[error("{addr}, the primary the archive's epoch names, is still in recovery (a promote is under way); waiting for it to accept writes")]
pub struct NotYetPrimary {
    pub addr: String,
}

pub fn is_not_yet_primary(err: &anyhow::Error) -> bool {
    err.chain()
        .any(|c| c.downcast_ref::<NotYetPrimary>().is_some())
}
