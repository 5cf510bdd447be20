//! Retrying store calls: which errors are transient, and the backoff between tries.
//!
//! # The rule
//!
//! object_store already turns the meaningful HTTP answers into typed errors:
//! 404 → NotFound, 409/412 on create → AlreadyExists/Precondition, 401 →
//! Unauthenticated, 403 → PermissionDenied. Those, and InvalidPath,
//! NotSupported, NotImplemented, NotModified and UnknownConfigurationKey, are
//! **permanent**: retrying cannot change the answer, so they surface at once.
//!
//! What is left arrives as `Generic` (or `JoinError`): connection refused or
//! reset, timeouts, 5xx and 429 answers, local I/O errors. These are
//! **transient**, except when the error's source chain shows that it cannot
//! succeed on a retry either:
//! - an `std::io::Error` of kind NotFound, PermissionDenied, InvalidInput,
//!   InvalidData, Unsupported, ReadOnlyFilesystem, StorageFull or QuotaExceeded
//!   (a full disk does not drain in a few seconds; the operator has to act);
//! - an HTTP 4xx status other than 408 (timeout) and 429 (slow down). object_store
//!   keeps its HTTP error type private, so this is recognised by its message
//!   text "status code: 4xx".
//!
//! A failed credentials lookup at the instance metadata service is permanent
//! too: object_store asks it only when nothing else supplied credentials.
//!
//! Transient errors are retried up to [`RetryPolicy::max_attempts`] attempts in
//! all, sleeping a uniformly random time in `[0, min(max_delay, base_delay·2^n)]`
//! between attempts ("full jitter"), so many writers recovering at once don't
//! hammer the store in lockstep. object_store's own HTTP client also retries a
//! request twice within a call (see `location.rs`) to absorb single blips.

use std::error::Error as StdError;
use std::future::Future;
use std::io::ErrorKind;
use std::time::Duration;

use super::settings::RetryPolicy;

/// True when `err` may succeed if the same call is made again (see module docs).
pub fn is_transient(err: &object_store::Error) -> bool {
    // No credentials anywhere: object_store already retried the metadata
    // service; more tries only bury the one useful sentence under warnings.
    if super::error::is_metadata_credentials_failure(err) {
        return false;
    }
    match err {
        object_store::Error::Generic { source, .. } => !chain_is_permanent(source.as_ref()),
        object_store::Error::JoinError { .. } => true,
        _ => false,
    }
}

fn chain_is_permanent(top: &(dyn StdError + 'static)) -> bool {
    let mut current: Option<&(dyn StdError + 'static)> = Some(top);
    while let Some(err) = current {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                ErrorKind::NotFound
                    | ErrorKind::PermissionDenied
                    | ErrorKind::InvalidInput
                    | ErrorKind::InvalidData
                    | ErrorKind::Unsupported
                    | ErrorKind::ReadOnlyFilesystem
                    | ErrorKind::StorageFull
                    | ErrorKind::QuotaExceeded
            ) {
                return true;
            }
        }
        if let Some(status) = http_status_in(&err.to_string()) {
            if (400..500).contains(&status) && status != 408 && status != 429 {
                return true;
            }
        }
        current = err.source();
    }
    false
}

/// Finds "status code: NNN" in object_store's HTTP error text.
fn http_status_in(message: &str) -> Option<u16> {
    let at = message.find("status code: ")? + "status code: ".len();
    message.get(at..at + 3)?.parse().ok()
}

/// The sleep before retry number `retry` (1-based): full jitter over an
/// exponentially growing, capped window.
pub fn backoff_delay(policy: &RetryPolicy, retry: u32) -> Duration {
    let exponent = retry.saturating_sub(1).min(31);
    let window = policy
        .base_delay
        .saturating_mul(1u32 << exponent)
        .min(policy.max_delay);
    window.mul_f64(rand::random::<f64>())
}

/// Runs `call` until it succeeds, fails permanently, or `policy.max_attempts`
/// attempts have been made; returns the last error. `what` and `key` are for logs.
pub async fn with_retries<T, F, Fut>(
    policy: &RetryPolicy,
    what: &str,
    key: &str,
    mut call: F,
) -> Result<T, object_store::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, object_store::Error>>,
{
    let attempts = policy.max_attempts.max(1);
    let mut attempt = 1;
    loop {
        match call().await {
            Ok(value) => return Ok(value),
            Err(err) if attempt < attempts && is_transient(&err) => {
                let delay = backoff_delay(policy, attempt);
                tracing::warn!(
                    op = what,
                    key,
                    attempt,
                    max_attempts = attempts,
                    delay_ms = delay.as_millis() as u64,
                    error = %err,
                    "transient archive error, retrying"
                );
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
            Err(err) => return Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generic(source: Box<dyn StdError + Send + Sync>) -> object_store::Error {
        object_store::Error::Generic {
            store: "test",
            source,
        }
    }

    #[test]
    fn classifies_errors() {
        let reset = std::io::Error::new(ErrorKind::ConnectionReset, "reset by peer");
        assert!(is_transient(&generic(Box::new(reset))));
        assert!(is_transient(&generic(
            "Server returned non-2xx status code: 503 Service Unavailable: slow down".into()
        )));
        assert!(is_transient(&generic(
            "Server returned non-2xx status code: 429 Too Many Requests".into()
        )));
        assert!(!is_transient(&generic(
            "Server returned non-2xx status code: 400 Bad Request: nope".into()
        )));
        let full = std::io::Error::new(ErrorKind::StorageFull, "disk full");
        assert!(!is_transient(&generic(Box::new(full))));
        assert!(!is_transient(&object_store::Error::NotFound {
            path: "x".into(),
            source: "gone".into(),
        }));
        assert!(!is_transient(&object_store::Error::AlreadyExists {
            path: "x".into(),
            source: "there".into(),
        }));
    }

    #[test]
    fn backoff_is_bounded_and_jittered() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        for retry in 1..40 {
            let d = backoff_delay(&policy, retry);
            let window = Duration::from_millis(100 * (1u64 << (retry - 1).min(20)));
            assert!(d <= window.min(policy.max_delay), "retry {retry}: {d:?}");
        }
        let distinct: std::collections::HashSet<Duration> =
            (0..20).map(|_| backoff_delay(&policy, 4)).collect();
        assert!(distinct.len() > 1, "no jitter");
    }
}
