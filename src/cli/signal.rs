//! Stopping a long command on request: Ctrl-C (SIGINT) or SIGTERM. `serve`
//! then finishes the requests in flight; `import` finishes the batch it is
//! writing and says how far it got.

use std::future::Future;

/// Resolves on Ctrl-C or SIGTERM. The handlers are registered now, not when
/// the future is first polled: a SIGTERM that arrives as soon as the command
/// has started must not find the default action (exit by the signal) still
/// in place.
pub(super) fn stop_requested() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let interrupt = signal(SignalKind::interrupt()).ok();
    let terminate = signal(SignalKind::terminate()).ok();
    async move {
        let wait = |signal: Option<tokio::signal::unix::Signal>| async move {
            match signal {
                Some(mut signal) => {
                    signal.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = wait(interrupt) => {},
            () = wait(terminate) => {},
        }
    }
}
