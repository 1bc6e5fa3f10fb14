//! Group commit for audience writes.
//!
//! Every call of `apply_changes` becomes a job for one writer task. The task
//! takes the first job waiting, then every other job already waiting (up to
//! [`MAX_GROUP_ITEMS`] items), applies them one after the other in a single
//! transaction and commits once, then answers each caller. Concurrent batch
//! requests so share the cost of a commit (every commit rewrites the index
//! pages it touched), while each caller's changes keep their own outcomes and
//! order, and nobody is answered before the commit that holds their changes.
//! A database error fails every job of its group: nothing of the group is
//! stored. The group's transaction also records one change-log entry per
//! site it touched: the subscribers each job created or changed and the
//! range of event ids it appended.

use super::log;
use crate::storage::changes::IdRanges;
use crate::storage::imports::ImportMark;
use crate::storage::journal::Journal;
use crate::storage::sql::apply::apply_in;
use crate::storage::sql::{imports, journal};
use crate::storage::{LogEntry, Result, StorageError};
use corral_core::audience::{Limits, Outcome, SubscriberChange};
use sqlx::SqlitePool;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Items one group may hold before it is committed.
const MAX_GROUP_ITEMS: usize = 50_000;

struct Job {
    site_id: i64,
    changes: Vec<SubscriberChange>,
    now: i64,
    /// The import the changes come from, recorded in the same transaction.
    mark: Option<ImportMark>,
    reply: oneshot::Sender<Result<Vec<Outcome>>>,
}

pub(super) struct GroupWriter {
    jobs: mpsc::Sender<Job>,
}

impl GroupWriter {
    /// Starts the writer task on the current runtime; every change it
    /// applies is held to `limits`.
    pub(super) fn start(writer: SqlitePool, limits: Limits, journal: Arc<Journal>) -> Self {
        let (jobs, receiver) = mpsc::channel(256);
        tokio::spawn(run(writer, limits, journal, receiver));
        Self { jobs }
    }

    pub(super) async fn apply(
        &self,
        site_id: i64,
        changes: Vec<SubscriberChange>,
        now: i64,
        mark: Option<ImportMark>,
    ) -> Result<Vec<Outcome>> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            site_id,
            changes,
            now,
            mark,
            reply,
        };
        let stopped = || StorageError::WriteFailed("the writer has stopped".into());
        self.jobs.send(job).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn run(
    writer: SqlitePool,
    limits: Limits,
    journal: Arc<Journal>,
    mut receiver: mpsc::Receiver<Job>,
) {
    while let Some(first) = receiver.recv().await {
        let mut items = first.changes.len();
        let mut jobs = vec![first];
        while items < MAX_GROUP_ITEMS {
            match receiver.try_recv() {
                Ok(job) => {
                    items += job.changes.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        match apply_group(&writer, &limits, &journal, &jobs).await {
            Ok(results) => {
                for (job, outcomes) in jobs.into_iter().zip(results) {
                    let _ = job.reply.send(Ok(outcomes));
                }
            }
            Err(error) => {
                tracing::error!(%error, jobs = jobs.len(), "a group of audience writes failed");
                let shared = error.shared_by_group();
                for job in jobs {
                    let _ = job.reply.send(Err(shared.clone()));
                }
            }
        }
    }
}

async fn apply_group(
    writer: &SqlitePool,
    limits: &Limits,
    journal: &Journal,
    jobs: &[Job],
) -> Result<Vec<Vec<Outcome>>> {
    let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
    let mut results = Vec::with_capacity(jobs.len());
    // Per site: the subscribers touched, the entry, and the latest clock.
    let mut sites: BTreeMap<i64, (Vec<i64>, LogEntry, i64)> = BTreeMap::new();
    for job in jobs {
        let before = log::events_high(&mut tx).await?;
        let (touched, entry, now) = sites
            .entry(job.site_id)
            .or_insert_with(|| (Vec::new(), LogEntry::default(), job.now));
        let from = touched.len();
        let (outcomes, _) =
            apply_in(&mut tx, job.site_id, &job.changes, job.now, limits, touched).await?;
        if let Some(mark) = &job.mark {
            imports::record(&mut *tx, job.site_id, mark, &outcomes, job.now).await?;
        }
        results.push(outcomes);
        let after = log::events_high(&mut tx).await?;
        entry.add_events(before + 1, after);
        let events = (after > before).then_some((before + 1, after));
        let ids = touched[from..].to_vec();
        journal::record_writes(&mut *tx, journal, job.site_id, &ids, events, job.now).await?;
        *now = (*now).max(job.now);
    }
    for (site_id, (touched, mut entry, now)) in sites {
        entry.subscribers = IdRanges::from_ids(touched);
        crate::storage::sql::log::record(&mut *tx, site_id, &entry, now).await?;
    }
    crate::crash_point!("audience.before_commit");
    tx.commit().await?;
    crate::crash_point!("audience.after_commit");
    Ok(results)
}
