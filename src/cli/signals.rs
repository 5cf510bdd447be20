//! SIGINT and SIGTERM for long-running commands: both cancel one token,
//! and the command decides what stopping means (ship flushes first).

use tokio_util::sync::CancellationToken;

/// A token cancelled on the first SIGINT or SIGTERM; `what` names the
/// command in the log line.
pub fn shutdown_on_signal(what: &'static str) -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM");
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("signal received: stopping {what}");
        cancel.cancel();
    });
    token
}
