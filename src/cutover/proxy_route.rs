//! The proxy's routing state: which primary new connections go to, and the
//! epoch that made it the primary. Epochs only move forward, so an old
//! primary that comes back never gets traffic again.

use super::HostPort;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// Where new connections go. Every connection made under a route watches its
/// `generation`; switching routes cancels it, which closes them all.
#[derive(Debug)]
pub struct Route {
    /// 0 before any epoch exists (the `[primary] url` bootstrap route).
    pub epoch: u64,
    /// None when the epoch record names no primary: then nothing is routed.
    pub upstream: Option<HostPort>,
    pub generation: CancellationToken,
}

/// What an offered route did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteUpdate {
    /// New connections now go to `to`; connections to `from` were closed.
    Switched {
        from: Option<HostPort>,
        to: Option<HostPort>,
    },
    /// A newer epoch with the same primary; connections stay open.
    EpochAdvanced,
    /// Nothing new (the same epoch and primary again).
    Unchanged,
    /// Refused; the text says why.
    Refused(String),
}

#[derive(Debug)]
pub struct RouteTable {
    current: Mutex<Arc<Route>>,
}

impl RouteTable {
    pub fn new(epoch: u64, upstream: Option<HostPort>) -> RouteTable {
        RouteTable {
            current: Mutex::new(Arc::new(Route {
                epoch,
                upstream,
                generation: CancellationToken::new(),
            })),
        }
    }

    pub fn current(&self) -> Arc<Route> {
        self.lock().clone()
    }

    /// Applies `upstream` as the primary of `epoch` if that moves forward.
    pub fn offer(&self, epoch: u64, upstream: Option<HostPort>) -> RouteUpdate {
        let mut current = self.lock();
        if epoch < current.epoch {
            return RouteUpdate::Refused(format!(
                "epoch {epoch} is older than the current epoch {}",
                current.epoch
            ));
        }
        if epoch == current.epoch {
            match (&current.upstream, &upstream) {
                (_, None) => return RouteUpdate::Unchanged,
                (Some(have), Some(new)) if have == new => return RouteUpdate::Unchanged,
                (Some(have), Some(_)) => {
                    return RouteUpdate::Refused(format!(
                        "epoch {epoch} already has primary {have}"
                    ))
                }
                // The epoch record named no primary; the control port may fill it in.
                (None, Some(_)) => {}
            }
        } else if current.upstream == upstream {
            *current = Arc::new(Route {
                epoch,
                upstream,
                generation: current.generation.clone(),
            });
            return RouteUpdate::EpochAdvanced;
        }
        let from = current.upstream.clone();
        current.generation.cancel();
        *current = Arc::new(Route {
            epoch,
            upstream: upstream.clone(),
            generation: CancellationToken::new(),
        });
        RouteUpdate::Switched { from, to: upstream }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Arc<Route>> {
        // A panic while holding the lock cannot leave a half-written Arc.
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a() -> Option<HostPort> {
        Some(HostPort::new("10.0.0.1", 5432))
    }
    fn b() -> Option<HostPort> {
        Some(HostPort::new("10.0.0.2", 5432))
    }

    #[test]
    fn a_newer_epoch_switches_and_closes_the_old_generation() {
        let table = RouteTable::new(1, a());
        let old = table.current();
        assert_eq!(
            table.offer(2, b()),
            RouteUpdate::Switched { from: a(), to: b() }
        );
        assert!(old.generation.is_cancelled());
        let new = table.current();
        assert_eq!((new.epoch, new.upstream.clone()), (2, b()));
        assert!(!new.generation.is_cancelled());
    }

    #[test]
    fn older_epochs_and_conflicting_primaries_are_refused() {
        let table = RouteTable::new(2, b());
        assert!(matches!(table.offer(1, a()), RouteUpdate::Refused(_)));
        assert!(matches!(table.offer(2, a()), RouteUpdate::Refused(_)));
        assert_eq!(table.offer(2, b()), RouteUpdate::Unchanged);
        assert_eq!(table.current().upstream, b());
    }

    #[test]
    fn same_primary_in_a_newer_epoch_keeps_connections() {
        let table = RouteTable::new(0, a());
        let before = table.current();
        assert_eq!(table.offer(1, a()), RouteUpdate::EpochAdvanced);
        assert!(!before.generation.is_cancelled());
        assert_eq!(table.current().epoch, 1);
    }

    #[test]
    fn an_epoch_without_primary_stops_routing_until_one_is_named() {
        let table = RouteTable::new(1, a());
        assert_eq!(
            table.offer(2, None),
            RouteUpdate::Switched {
                from: a(),
                to: None
            }
        );
        assert_eq!(table.current().upstream, None);
        assert_eq!(
            table.offer(2, b()),
            RouteUpdate::Switched {
                from: None,
                to: b()
            }
        );
    }
}
