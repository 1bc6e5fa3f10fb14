//! Admission of evaluations, so that no query and no site can take the
//! server: at most two evaluations per core run at once, and those the cost
//! estimate calls heavy ([`corral_core::engine::cost`]) go through a narrow
//! lane of their own, one at a time per site and at most one per core
//! overall. Waiters are served in arrival order; a request that gives up
//! (timed out, client gone) leaves the queue. Nothing waits while holding a
//! snapshot.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub(super) struct Lanes {
    normal: Arc<Semaphore>,
    heavy: Arc<Semaphore>,
    heavysites: Mutex<HashMap<i64, Arc<Semaphore>>>,
    /// Evaluations queued for a place now.
    waiting: AtomicUsize,
}

/// One evaluation counted in [`Lanes::waiting`] until it has its place or
/// gives up.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A place in a lane, held for as long as the evaluation runs.
pub(super) struct Permit {
    /// Held, never read: the place is given back when the permit drops.
    _lane: OwnedSemaphorePermit,
    /// The site's heavy place, for a heavy evaluation.
    site: Option<OwnedSemaphorePermit>,
}

impl Permit {
    /// Whether this is a place in the heavy lane.
    pub(super) fn heavy(&self) -> bool {
        self.site.is_some()
    }
}

impl Lanes {
    pub(super) fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            normal: Arc::new(Semaphore::new(cores * 2)),
            heavy: Arc::new(Semaphore::new((cores / 2).max(1))),
            heavysites: Mutex::new(HashMap::new()),
            waiting: AtomicUsize::new(0),
        }
    }

    fn site(&self, site_id: i64) -> Arc<Semaphore> {
        let mut sites = self.heavysites.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(
            sites
                .entry(site_id)
                .or_insert_with(|| Arc::new(Semaphore::new(1))),
        )
    }

    /// A place now, if one is free.
    pub(super) fn try_admit(&self, site_id: i64, heavy: bool) -> Option<Permit> {
        if !heavy {
            let lane = Arc::clone(&self.normal).try_acquire_owned().ok()?;
            return Some(Permit {
                _lane: lane,
                site: None,
            });
        }
        let site = self.site(site_id).try_acquire_owned().ok()?;
        let lane = Arc::clone(&self.heavy).try_acquire_owned().ok()?;
        Some(Permit {
            _lane: lane,
            site: Some(site),
        })
    }

    /// A place, waiting for one in arrival order: a heavy evaluation first
    /// waits behind its own site's, then for the heavy lane.
    pub(super) async fn admit(&self, site_id: i64, heavy: bool) -> Permit {
        let _waiting = Waiting::new(&self.waiting);
        if !heavy {
            let lane = Arc::clone(&self.normal)
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            return Permit {
                _lane: lane,
                site: None,
            };
        }
        let site = self
            .site(site_id)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let lane = Arc::clone(&self.heavy)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        Permit {
            _lane: lane,
            site: Some(site),
        }
    }

    /// Evaluations queued for a place now, for tests.
    #[cfg(test)]
    pub(super) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Heavy evaluations running now, for tests.
    #[cfg(test)]
    pub(super) fn heavy_running(&self) -> usize {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        (cores / 2).max(1) - self.heavy.available_permits()
    }
}
