//! How long a request waits for the database: [`DATABASE_WAIT`] in all,
//! however many places it waits in (for a connection of the pool, for its
//! turn behind the other writes of its site, for the site's head row, for a
//! head read other requests share). The HTTP layer runs each request in a
//! [`scope`] that holds what is left of that budget; every such wait is run
//! through [`waiting`], which gives up when the budget is spent and takes
//! what it waited from it, so that the request is answered 503 (the database
//! is unavailable, try again) once it has waited its time, not once per
//! place in a queue. Work outside a request (the CLI, background tasks) has
//! no scope and waits as each place allows on its own.

use std::cell::Cell;
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// What a request may wait for the database in all.
pub const DATABASE_WAIT: Duration = Duration::from_secs(5);

tokio::task_local! {
    /// What is left of the current request's wait.
    static LEFT: Cell<Duration>;
}

/// Runs `work` as one request: its waits for the database share one budget
/// of [`DATABASE_WAIT`].
pub async fn scope<F: Future>(work: F) -> F::Output {
    scope_with(DATABASE_WAIT, work).await
}

async fn scope_with<F: Future>(budget: Duration, work: F) -> F::Output {
    LEFT.scope(Cell::new(budget), work).await
}

/// What is left of the current request's wait; `None` outside a request.
pub fn left() -> Option<Duration> {
    LEFT.try_with(Cell::get).ok()
}

/// When the current request's wait ends if it starts now; `None` outside a
/// request.
pub fn deadline() -> Option<Instant> {
    left().map(|left| Instant::now() + left)
}

/// Takes `waited` from the current request's budget.
pub fn spend(waited: Duration) {
    let _ = LEFT.try_with(|left| left.set(left.get().saturating_sub(waited)));
}

/// Runs `wait` for at most what is left of the request's budget and takes
/// the time it took from it; `None` when the budget ran out first. Outside a
/// request, `wait` runs to its end.
pub async fn waiting<F: Future>(wait: F) -> Option<F::Output> {
    let Some(left) = left() else {
        return Some(wait.await);
    };
    let started = Instant::now();
    let waited = tokio::time::timeout(left, wait).await.ok();
    spend(started.elapsed());
    waited
}

/// What a request that waited its time is told.
pub fn spent() -> super::StorageError {
    super::StorageError::Unavailable(format!(
        "no answer from the database within {} s",
        DATABASE_WAIT.as_secs()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_share_one_budget() {
        let ms = Duration::from_millis;
        scope_with(ms(400), async {
            assert_eq!(waiting(tokio::time::sleep(ms(100))).await, Some(()));
            assert!(left().unwrap() <= ms(300));
            // The next wait gets what is left, not a budget of its own.
            assert_eq!(waiting(tokio::time::sleep(ms(350))).await, None);
            assert_eq!(left(), Some(Duration::ZERO));
            // Spent: a wait that would end at once still ends.
            assert_eq!(waiting(std::future::ready(7)).await, Some(7));
        })
        .await;
        assert_eq!(left(), None);
        assert_eq!(waiting(tokio::time::sleep(ms(500))).await, Some(()));
    }
}
