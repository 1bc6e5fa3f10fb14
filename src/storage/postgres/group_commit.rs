//! Group commit for a site's audience writes on PostgreSQL.
//!
//! A site's writes are serialised on its change head anyway (see the
//! backend's documentation), so concurrent batches of one site would each
//! wait for the lock and then pay a transaction of their own. Instead, the
//! batches of a site that arrive while one of this server's writers holds it
//! queue here; the next writer takes every batch waiting (up to
//! [`MAX_GROUP_ITEMS`] items) and applies them one after the other in a
//! single transaction, with one change-log entry, then answers each caller.
//! Each batch keeps its own outcomes and order, nobody is answered before
//! the commit that holds their changes, and a database error fails every
//! batch of its group (nothing of it is stored). Different sites write side
//! by side, each on a connection of its own.

use super::PgStore;
use crate::storage::sql::apply::apply_in;

use crate::storage::changes::IdRanges;
use crate::storage::{LogEntry, Result, StorageError};
use corral_core::audience::{Outcome, SubscriberChange};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// Items one group may hold before it is committed.
const MAX_GROUP_ITEMS: usize = 20_000;

struct Job {
    changes: Vec<SubscriberChange>,
    now: i64,
    reply: oneshot::Sender<Result<Vec<Outcome>>>,
}

/// One site's waiting batches, and its writer's turn.
#[derive(Default)]
struct SiteQueue {
    waiting: Mutex<Vec<Job>>,
    turn: tokio::sync::Mutex<()>,
}

/// The queues of the sites this server writes to.
#[derive(Default)]
pub(super) struct Groups {
    sites: Mutex<HashMap<i64, Arc<SiteQueue>>>,
}

impl Groups {
    fn queue(&self, site_id: i64) -> Arc<SiteQueue> {
        let mut sites = self.sites.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(sites.entry(site_id).or_default())
    }

    /// Applies `changes` in the next group of the site; durable when it
    /// returns.
    pub(super) async fn apply(
        &self,
        store: &PgStore,
        site_id: i64,
        changes: Vec<SubscriberChange>,
        now: i64,
    ) -> Result<Vec<Outcome>> {
        let queue = self.queue(site_id);
        let (reply, answer) = oneshot::channel();
        queue
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Job {
                changes,
                now,
                reply,
            });
        // Whoever holds the turn takes what waits, ours perhaps included;
        // until ours is answered, take turns (a group may stop short of it).
        let mut answer = answer;
        loop {
            {
                let _turn = queue.turn.lock().await;
                let jobs = take_group(&queue);
                if !jobs.is_empty() {
                    match write_group(store, site_id, &jobs).await {
                        Ok(results) => {
                            for (job, outcomes) in jobs.into_iter().zip(results) {
                                let _ = job.reply.send(Ok(outcomes));
                            }
                        }
                        Err(error) => {
                            tracing::error!(%error, site_id, jobs = jobs.len(),
                                "a group of audience writes failed");
                            let shared = error.shared_by_group();
                            for job in jobs {
                                let _ = job.reply.send(Err(shared.clone()));
                            }
                        }
                    }
                }
            }
            match answer.try_recv() {
                Ok(result) => return result,
                Err(oneshot::error::TryRecvError::Empty) => continue,
                Err(oneshot::error::TryRecvError::Closed) => {
                    return Err(StorageError::WriteFailed("the writer stopped".into()));
                }
            }
        }
    }
}

/// What a writer takes: the batches waiting, up to [`MAX_GROUP_ITEMS`] items
/// (always at least one).
fn take_group(queue: &SiteQueue) -> Vec<Job> {
    let mut waiting = queue.waiting.lock().unwrap_or_else(|e| e.into_inner());
    let mut items = 0;
    let mut count = 0;
    for job in waiting.iter() {
        if count > 0 && items + job.changes.len() > MAX_GROUP_ITEMS {
            break;
        }
        items += job.changes.len();
        count += 1;
    }
    waiting.drain(..count).collect()
}

async fn write_group(store: &PgStore, site_id: i64, jobs: &[Job]) -> Result<Vec<Vec<Outcome>>> {
    let mut tx = store.begin_site_write(site_id).await?;
    let mut touched = Vec::new();
    let mut entry = LogEntry::default();
    let mut results = Vec::with_capacity(jobs.len());
    let mut now = i64::MIN;
    for job in jobs {
        let (outcomes, events) = apply_in(
            &mut tx,
            site_id,
            &job.changes,
            job.now,
            &store.limits,
            &mut touched,
        )
        .await?;
        if let Some((first, last)) = events {
            entry.add_events(first, last);
        }
        results.push(outcomes);
        now = now.max(job.now);
    }
    entry.subscribers = IdRanges::from_ids(touched);
    crate::storage::sql::log::record(&mut *tx, site_id, &entry, now).await?;
    tx.commit().await?;
    Ok(results)
}
