//! The clock every timestamp comes from, behind a trait so tests can fix and
//! advance time, and the one place timestamps are turned into Bento's wire form.
//!
//! Time is kept as integer Unix milliseconds everywhere (in both databases and in
//! memory) and formatted only at the edge, as `2024-08-06T05:44:04.444Z`.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// A source of the current time in Unix milliseconds.
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> i64;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        chrono::Utc::now().timestamp_millis()
    }
}

/// A clock that stands still until told to move: for tests, and for work
/// done as of one moment (a webhook's baselines, at the time of its request).
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(start_ms: i64) -> Arc<Self> {
        Arc::new(Self(AtomicI64::new(start_ms)))
    }

    pub fn advance_ms(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }

    pub fn set_ms(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Formats Unix milliseconds as UTC ISO 8601 with milliseconds and `Z`
/// (the core's, so that the engine's explanations and the API agree).
pub use corral_core::time::format_ms;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(1_000);
        assert_eq!(clock.now_ms(), 1_000);
        clock.advance_ms(5);
        assert_eq!(clock.now_ms(), 1_005);
        clock.set_ms(7);
        assert_eq!(clock.now_ms(), 7);
    }
}
