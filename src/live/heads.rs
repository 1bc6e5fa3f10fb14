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
//! without a signal is asked every time. Either way, a head answered here
//! reflects every commit completed before the call began.

use crate::storage::{Signal, SiteHead, StorageError, Store};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Sites whose heads are remembered before the map is emptied and refilled.
const MAX_SITES: usize = 100_000;

pub struct Heads {
    store: Arc<dyn Store>,
    known: RwLock<HashMap<i64, (Signal, SiteHead)>>,
}

impl Heads {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            known: RwLock::new(HashMap::new()),
        }
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
        let head = self.store.site_head(site_id).await?;
        if let Some(signal) = signal {
            let mut known = self.known.write().unwrap_or_else(|e| e.into_inner());
            if known.len() >= MAX_SITES {
                known.clear();
            }
            known.insert(site_id, (signal, head));
        }
        Ok(head)
    }
}
