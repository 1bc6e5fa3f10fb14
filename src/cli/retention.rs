//! How long `corral serve` keeps the membership journal: forever by
//! default; with `--history-retention-days N` (`CORRAL_HISTORY_RETENTION_DAYS`,
//! `history_retention_days` in `corral.toml`), a task of the server trims, at
//! start and then about hourly, the transitions older than N days through
//! [`JournalStore::trim_journal`](crate::storage::journal::JournalStore::trim_journal),
//! which deletes them a batch a transaction and moves every segment's
//! history to begin N days ago, as `meta.history_begins_at` then says. With
//! several servers on one database each trims; a trim repeated deletes
//! nothing more.

use crate::clock::Clock;
use crate::storage::{StorageError, Store};
use std::sync::Arc;
use std::time::Duration;

/// How often the server trims the journal.
pub const TRIM_EVERY: Duration = Duration::from_secs(3_600);

const DAY_MS: i64 = 86_400_000;

/// Transitions are kept for this many days (at least one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryRetention {
    days: u32,
}

impl HistoryRetention {
    /// `None` for 0: a retention of no days would delete the history as it
    /// is written.
    pub fn days(days: u32) -> Option<Self> {
        (days > 0).then_some(Self { days })
    }

    /// How many days are kept.
    pub fn kept_days(self) -> u32 {
        self.days
    }

    /// Where histories begin once trimmed at `now`.
    pub fn cutoff(self, now: i64) -> i64 {
        now - i64::from(self.days) * DAY_MS
    }

    /// Trims the journal once, as of the clock's now: how many transitions
    /// went.
    pub async fn trim(self, store: &dyn Store, clock: &dyn Clock) -> Result<u64, StorageError> {
        store.trim_journal(self.cutoff(clock.now_ms())).await
    }

    /// Trims at once, then about every [`TRIM_EVERY`], until aborted.
    pub fn spawn(
        self,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut every = tokio::time::interval(TRIM_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                match self.trim(store.as_ref(), clock.as_ref()).await {
                    Ok(0) => {}
                    Ok(deleted) => {
                        tracing::info!(deleted, days = self.days, "membership history trimmed")
                    }
                    Err(error) => {
                        tracing::warn!(%error, "the membership history could not be trimmed")
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retention_is_at_least_a_day_and_counts_back_from_now() {
        assert_eq!(HistoryRetention::days(0), None);
        let week = HistoryRetention::days(7).unwrap();
        assert_eq!(week.kept_days(), 7);
        assert_eq!(week.cutoff(10 * DAY_MS + 5), 3 * DAY_MS + 5);
    }
}
