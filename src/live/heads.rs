//! Knowing whether a site changed without asking the database on every
//! request.
//!
//! A site's [`SiteHead`] (the positions of its newest change-log entry, and
//! of the newest that changed its segments and its keys) is remembered with
//! the store's [`Signal`] read just before the head was: while the signal is
//! unchanged, no commit happened anywhere, so the remembered head is still
//! the site's head and no round trip is needed. Any commit, by this process
//! or another (the CLI, another server on the same database file), changes
//! the signal, and the next request asks the database once. A backend
//! without a signal (PostgreSQL, shared by several servers) is asked for
//! every request, but requests of a site that arrive together share one
//! read: a request joins the next read of its site that has not begun yet
//! (so it begins after the request arrived), and one read of a site is in
//! flight at a time. Either way, a head answered here reflects every commit
//! completed before the call began.

use crate::storage::{ChangeFeed, Signal, SiteHead, StorageError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

/// Sites whose heads are remembered before the map is emptied and refilled.
const MAX_SITES: usize = 100_000;

pub struct Heads {
    store: Arc<dyn ChangeFeed>,
    known: RwLock<HashMap<i64, (Signal, SiteHead)>>,
    /// Without a signal: each site's shared reads.
    reads: Mutex<HashMap<i64, Arc<SiteReads>>>,
}

/// One read of a site's head, shared by the requests that joined it before
/// it began.
#[derive(Default)]
struct Round {
    head: OnceLock<SiteHead>,
}

/// A site's next read (not begun yet), and the turn of the one in flight.
#[derive(Default)]
struct SiteReads {
    next: Mutex<Option<Arc<Round>>>,
    turn: tokio::sync::Mutex<()>,
}

impl Heads {
    pub fn new(store: Arc<dyn ChangeFeed>) -> Self {
        Self {
            store,
            known: RwLock::new(HashMap::new()),
            reads: Mutex::new(HashMap::new()),
        }
    }

    /// The site's head read after this call began, shared with the other
    /// requests that join the same read.
    async fn shared_read(&self, site_id: i64) -> Result<SiteHead, StorageError> {
        let site = {
            let mut reads = self.reads.lock().unwrap_or_else(|e| e.into_inner());
            if reads.len() >= MAX_SITES {
                reads.clear();
            }
            Arc::clone(reads.entry(site_id).or_default())
        };
        let round = {
            let mut next = site.next.lock().unwrap_or_else(|e| e.into_inner());
            Arc::clone(next.get_or_insert_with(Arc::default))
        };
        // Behind a read that waits for the database, the wait counts as the
        // request's own (one budget, not one a place in the queue).
        let Some(_turn) = crate::storage::wait::waiting(site.turn.lock()).await else {
            return Err(crate::storage::wait::spent());
        };
        if let Some(head) = round.head.get() {
            return Ok(*head);
        }
        // This read begins now: whoever arrives from here on waits for the
        // next one.
        {
            let mut next = site.next.lock().unwrap_or_else(|e| e.into_inner());
            if next.as_ref().is_some_and(|n| Arc::ptr_eq(n, &round)) {
                *next = None;
            }
        }
        let head = self.store.site_head(site_id).await?;
        let _ = round.head.set(head);
        Ok(head)
    }

    /// The site's current head.
    pub async fn current(&self, site_id: i64) -> Result<SiteHead, StorageError> {
        // Read before the head: a commit after this read changes the signal,
        // so a head remembered under it is never used past that commit.
        let signal = self.store.change_signal();
        if let Some(signal) = signal
            && let Some((at, head)) = self
                .known
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .get(&site_id)
            && *at == signal
        {
            return Ok(*head);
        }
        let Some(signal) = signal else {
            return self.shared_read(site_id).await;
        };
        let head = self.store.site_head(site_id).await?;
        {
            let mut known = self.known.write().unwrap_or_else(|e| e.into_inner());
            if known.len() >= MAX_SITES {
                known.clear();
            }
            known.insert(site_id, (signal, head));
        }
        Ok(head)
    }
}
