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
//!
//! A batch of a request waits no longer than what is left of the request's
//! wait for the database ([`crate::storage::wait`]): for its turn, and then
//! (the earliest end among its group's) for a connection and the site's
//! head row. One whose wait ends while it is still queued leaves the queue
//! and is told the database is unavailable; one already in a group being
//! written has the group's answer, so that a batch told to try again was
//! never stored.

use super::PgStore;
use crate::storage::imports::ImportMark;
use crate::storage::sql::apply::apply_in;

use crate::storage::changes::IdRanges;
use crate::storage::{LogEntry, Result, StorageError, wait};
use corral_core::audience::{Outcome, SubscriberChange};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;
use tokio::time::Instant;

/// Items one group may hold before it is committed.
const MAX_GROUP_ITEMS: usize = 20_000;

struct Job {
    id: u64,
    changes: Vec<SubscriberChange>,
    now: i64,
    /// When the request's wait for the database ends; `None` outside a
    /// request.
    until: Option<Instant>,
    /// The import the changes come from, recorded in the same transaction.
    mark: Option<ImportMark>,
    reply: oneshot::Sender<Result<Vec<Outcome>>>,
}

/// One site's waiting batches, and its writer's turn.
#[derive(Default)]
struct SiteQueue {
    waiting: Mutex<Vec<Job>>,
    turn: tokio::sync::Mutex<()>,
    next_id: AtomicU64,
}

impl SiteQueue {
    /// Takes the job `id` out of the queue; whether it was still there
    /// (else a writer has taken it into its group).
    fn withdraw(&self, id: u64) -> bool {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        let before = waiting.len();
        waiting.retain(|job| job.id != id);
        waiting.len() < before
    }
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
        mark: Option<ImportMark>,
    ) -> Result<Vec<Outcome>> {
        let started = Instant::now();
        let until = wait::deadline();
        let written = self
            .apply_until(store, site_id, changes, now, until, mark)
            .await;
        wait::spend(started.elapsed());
        written
    }

    async fn apply_until(
        &self,
        store: &PgStore,
        site_id: i64,
        changes: Vec<SubscriberChange>,
        now: i64,
        until: Option<Instant>,
        mark: Option<ImportMark>,
    ) -> Result<Vec<Outcome>> {
        let queue = self.queue(site_id);
        let (reply, mut answer) = oneshot::channel();
        let id = queue.next_id.fetch_add(1, Ordering::Relaxed);
        queue
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Job {
                id,
                changes,
                now,
                until,
                mark,
                reply,
            });
        let stopped = || StorageError::WriteFailed("the writer stopped".into());
        // Whoever holds the turn takes what waits, ours perhaps included;
        // until ours is answered, take turns (a group may stop short of it).
        loop {
            let turn = match until {
                None => Some(queue.turn.lock().await),
                Some(until) => tokio::time::timeout_at(until, queue.turn.lock()).await.ok(),
            };
            let Some(turn) = turn else {
                if queue.withdraw(id) {
                    return Err(wait::spent());
                }
                // In a group being written: answered with it.
                return answer.await.unwrap_or_else(|_| Err(stopped()));
            };
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
            drop(turn);
            match answer.try_recv() {
                Ok(result) => return result,
                Err(oneshot::error::TryRecvError::Empty) => continue,
                Err(oneshot::error::TryRecvError::Closed) => return Err(stopped()),
            }
        }
    }
}

/// What a writer takes: the batches waiting, up to [`MAX_GROUP_ITEMS`] items
/// (always at least one). Those whose wait is over are answered so instead.
fn take_group(queue: &SiteQueue) -> Vec<Job> {
    let mut waiting = queue.waiting.lock().unwrap_or_else(|e| e.into_inner());
    let now = Instant::now();
    let (over, still): (Vec<Job>, Vec<Job>) = waiting
        .drain(..)
        .partition(|job| job.until.is_some_and(|until| until <= now));
    *waiting = still;
    for job in over {
        let _ = job.reply.send(Err(wait::spent()));
    }
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
    // No batch of the group waits past its own end.
    let until = jobs.iter().filter_map(|job| job.until).min();
    let mut tx = store.begin_site_write(site_id, until).await?;
    let mut touched = Vec::new();
    let mut entry = LogEntry::default();
    let mut results = Vec::with_capacity(jobs.len());
    let mut now = i64::MIN;
    for job in jobs {
        let from = touched.len();
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
        crate::storage::sql::journal::record_writes(
            &mut *tx,
            &store.journal,
            site_id,
            &touched[from..],
            events,
            job.now,
        )
        .await?;
        if let Some(mark) = &job.mark {
            crate::storage::sql::imports::record(&mut *tx, site_id, mark, &outcomes, job.now)
                .await?;
        }
        results.push(outcomes);
        now = now.max(job.now);
    }
    entry.subscribers = IdRanges::from_ids(touched);
    crate::storage::sql::log::record(&mut *tx, site_id, &entry, now).await?;
    crate::crash_point!("audience.before_commit");
    tx.commit().await?;
    crate::crash_point!("audience.after_commit");
    Ok(results)
}
