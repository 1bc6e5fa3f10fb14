//! How far a long read has got: what it is reading now, how much it has
//! read, and of how much when that is known. A backend adds to it a chunk
//! at a time while it reads a site's audience (or its changes, or a column
//! of event details); whoever waits for the read (a request about to time
//! out, `/readyz`, the log) looks at it without holding anything up. All
//! counts are atomics: a reader sees each number current, not all of them
//! at one instant.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What a read is doing now, and in what it counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Not begun yet.
    Waiting,
    /// Reading a checkpoint file (counted in bytes).
    Checkpoint,
    /// Reading subscribers (rows).
    Subscribers,
    /// Reading which subscriber holds which tag (rows).
    Tags,
    /// Reading events (rows).
    Events,
    /// Reading the change log and what its entries name (rows).
    Changes,
    /// Reading a column of event details (rows).
    Details,
    /// Putting the audience together from what was read.
    Building,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::Checkpoint => "checkpoint",
            Self::Subscribers => "subscribers",
            Self::Tags => "tags",
            Self::Events => "events",
            Self::Changes => "changes",
            Self::Details => "details",
            Self::Building => "building",
        }
    }

    /// What `read` and `expected` count in this stage.
    pub fn unit(self) -> &'static str {
        match self {
            Self::Checkpoint => "bytes",
            _ => "rows",
        }
    }
}

/// How far one read has got. The totals run over the whole read: every stage
/// adds what it expects to `expected` when it learns it, and what it reads
/// to `read`, so `read / expected` is the share done.
#[derive(Debug)]
pub struct ReadProgress {
    started: Instant,
    stage: Mutex<Stage>,
    read: AtomicU64,
    /// 0 while nothing is known.
    expected: AtomicU64,
    finished: AtomicBool,
}

impl Default for ReadProgress {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            stage: Mutex::new(Stage::Waiting),
            read: AtomicU64::new(0),
            expected: AtomicU64::new(0),
            finished: AtomicBool::new(false),
        }
    }
}

/// A read's progress at one look.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgressReport {
    pub stage: Stage,
    pub elapsed: Duration,
    pub read: u64,
    /// `None` while unknown. An estimate: a stage may read fewer rows than
    /// it expected (never more than it says it reads, though the total of a
    /// later stage may still be added).
    pub expected: Option<u64>,
}

impl ProgressReport {
    /// The share read, when the total is known.
    pub fn share(&self) -> Option<f64> {
        let expected = self.expected.filter(|&e| e > 0)?;
        Some((self.read as f64 / expected as f64).min(1.0))
    }

    /// How long the rest should take at the pace so far: `None` before
    /// anything is read or while the total is unknown.
    pub fn remaining(&self) -> Option<Duration> {
        let share = self.share().filter(|&s| s > 0.0)?;
        Some(self.elapsed.mul_f64((1.0 - share) / share))
    }
}

impl ReadProgress {
    pub fn new() -> Self {
        Self::default()
    }

    /// The read moves on to `stage`.
    pub fn stage(&self, stage: Stage) {
        *self.stage.lock().unwrap_or_else(|e| e.into_inner()) = stage;
    }

    /// The read learns that `more` will be read.
    pub fn expect(&self, more: u64) {
        self.expected.fetch_add(more, Ordering::Relaxed);
    }

    /// The read learns that it will read a table's rows with ids from
    /// `low` to `high` (`None`s: no rows): at most that many.
    pub fn expect_span(&self, (low, high): (Option<i64>, Option<i64>)) {
        if let (Some(low), Some(high)) = (low, high) {
            self.expect((high - low + 1).max(0) as u64);
        }
    }

    /// `n` more were read.
    pub fn advance(&self, n: u64) {
        self.read.fetch_add(n, Ordering::Relaxed);
    }

    /// The read ended, well or not.
    pub fn finish(&self) {
        self.finished.store(true, Ordering::Release);
    }

    pub fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }

    pub fn report(&self) -> ProgressReport {
        let expected = self.expected.load(Ordering::Relaxed);
        ProgressReport {
            stage: *self.stage.lock().unwrap_or_else(|e| e.into_inner()),
            elapsed: self.started.elapsed(),
            read: self.read.load(Ordering::Relaxed),
            expected: (expected > 0).then_some(expected),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(read: u64, expected: Option<u64>, secs: u64) -> ProgressReport {
        ProgressReport {
            stage: Stage::Events,
            elapsed: Duration::from_secs(secs),
            read,
            expected,
        }
    }

    #[test]
    fn the_rest_takes_what_the_pace_so_far_says() {
        assert_eq!(
            report(250, Some(1000), 10).remaining(),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            report(1000, Some(1000), 10).remaining(),
            Some(Duration::ZERO)
        );
        // More read than expected is done, not negative.
        assert_eq!(
            report(1500, Some(1000), 10).remaining(),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn nothing_is_estimated_without_a_total_or_a_start() {
        assert_eq!(report(0, Some(1000), 10).remaining(), None);
        assert_eq!(report(10, None, 10).remaining(), None);
        assert_eq!(report(10, Some(0), 10).share(), None);
    }

    #[test]
    fn totals_add_up_over_stages() {
        let progress = ReadProgress::new();
        assert_eq!(progress.report().stage, Stage::Waiting);
        progress.stage(Stage::Subscribers);
        progress.expect(100);
        progress.advance(60);
        progress.stage(Stage::Events);
        progress.expect(900);
        progress.advance(40);
        let report = progress.report();
        assert_eq!(report.stage, Stage::Events);
        assert_eq!((report.read, report.expected), (100, Some(1000)));
        assert_eq!(report.share(), Some(0.1));
    }
}
