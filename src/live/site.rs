//! One site's resident snapshot: read whole (from its checkpoint or the
//! database), brought forward from the change log in place, given the
//! detail columns queries ask for, and written to its checkpoint.
//!
//! Every read of the site (the whole read, a checkpoint with the log since
//! it, a catch-up, a column of event details) is a *job* that runs in a task
//! of the site's own, one at a time. A request that needs one starts it, or
//! joins the one in flight, and waits for its outcome; the job belongs to no
//! request. A request that times out or goes away only stops waiting: the
//! read goes on, its snapshot is installed, and after a whole read the
//! checkpoint is written, whoever still waits. A job that fails hands the
//! same error to every request that waited for it, and the next request
//! starts another. When the server stops, a job in flight ends at its next
//! statement (or, in a checkpoint file, its next block) and installs
//! nothing.
//!
//! Three locks, each for one thing:
//! - `state` (shared/exclusive): evaluations hold it shared for as long as
//!   they read the snapshot; applying changes holds it exclusively, only
//!   while the changes (already read from the database) are applied;
//! - `job`: the job in flight, which later requests join;
//! - `writing`: one checkpoint at a time. A checkpoint reads the snapshot
//!   under the shared lock a piece at a time, so it never holds up a
//!   catch-up for long: the subscriber columns in one go, then the
//!   append-only event and detail columns a chunk at a time, up to the
//!   lengths they had when the subscribers were written.

use super::checkpoint::{CheckpointError, CheckpointWriter, Checkpoints};
use super::{Loader, ResidentGuard, wait};
use crate::segment::Segment;
use crate::storage::changes::Changes;
use crate::storage::progress::{ProgressReport, ReadProgress, Stage};
use crate::storage::{Position, StorageError};
use corral_core::columns::{Columns, NeedsReload};
use corral_core::query::Query;
use corral_core::query::ast::DetailPath;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, OwnedRwLockReadGuard, RwLock, watch};

/// Events (or detail values) written per hold of the shared lock.
const CHUNK: usize = 1 << 20;

/// A site's audience and kept segments at one position of its change log.
#[derive(Debug)]
pub struct Resident {
    pub site_id: i64,
    pub position: Position,
    pub audience: Columns,
    /// The parsed queries of the site's kept segments that fit the grammar.
    pub segments: HashMap<i64, Arc<Query>>,
    /// Which whole read this snapshot descends from: a checkpoint being
    /// written stops when the snapshot it began with was replaced.
    generation: u64,
    /// Deliberately broken: changes to subscribers already held are
    /// dropped, so tests can show that the property notices.
    #[cfg(test)]
    broken: bool,
}

fn parse_segments(segments: Vec<Segment>) -> HashMap<i64, Arc<Query>> {
    segments
        .into_iter()
        .filter_map(|s| {
            Some((
                s.id.0,
                Arc::new(corral_core::query::manual::parse_saved(s.query.as_str(), s.id.0).ok()?),
            ))
        })
        .collect()
}

impl Resident {
    /// Applies the changes read since `self.position`. On an error the
    /// snapshot may be half changed: it must be dropped.
    fn apply(&mut self, changes: Changes) -> Result<(), NeedsReload> {
        let audience = &mut self.audience;
        for s in &changes.subscribers {
            #[cfg(test)]
            if self.broken && audience.index_of(s.row.id).is_some() {
                continue;
            }
            audience.put_subscriber(&s.row, &s.tags)?;
        }
        let mut through = self.position.events_through;
        for e in &changes.events {
            if e.id <= through {
                return Err(NeedsReload(format!(
                    "event {} is not after the snapshot's last event {through}",
                    e.id
                )));
            }
            audience.push_event(e.subscriber_id, &e.kind, e.at);
            through = e.id;
        }
        for ((kind, path), values) in changes.details {
            audience.extend_details(&kind, &path, values);
        }
        audience.drop_unaligned_details();
        audience.events_through = through;
        if let Some(segments) = changes.segments {
            self.segments = parse_segments(segments);
        }
        self.position = Position {
            seq: changes.seq,
            events_through: through,
        };
        Ok(())
    }
}

/// What happened to a site's snapshot so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SiteStats {
    pub position: Option<Position>,
    /// Whole reads from the database.
    pub full_reads: u64,
    /// Reads from a checkpoint (then brought forward from the log).
    pub checkpoint_reads: u64,
    /// Times changes were read and applied.
    pub catch_ups: u64,
    /// Log entries applied by those.
    pub entries_applied: u64,
    /// Times the log could not bring the snapshot forward and it was dropped.
    pub reloads: u64,
    pub checkpoints_written: u64,
    /// Jobs begun (whole reads, catch-ups, detail columns), whether they
    /// ended well or not.
    pub jobs: u64,
    /// Jobs that ended with an error.
    pub failed_jobs: u64,
}

/// What a job does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Work {
    /// Brings the snapshot up to the site's head, reading it whole when
    /// there is none.
    Update,
    /// Reads these detail columns (type, path) into the snapshot.
    Details(Vec<(String, DetailPath)>),
}

/// What a job ended with: the position reached (`None` when the snapshot
/// had to be dropped, so the next job reads it whole), or the error every
/// waiting request gets.
type Outcome = Result<Option<i64>, StorageError>;

/// A job in flight, shared by the requests that wait for it.
pub(super) struct Job {
    /// Jobs of a site are numbered from 1 in the order they began.
    number: u64,
    work: Work,
    progress: Arc<ReadProgress>,
    waiters: AtomicUsize,
    outcome: watch::Receiver<Option<Outcome>>,
}

/// A job in flight, as `/readyz` and the logs show it.
#[derive(Debug, Clone)]
pub struct JobReport {
    /// `"update"` (a whole read or a catch-up) or `"details"`.
    pub work: &'static str,
    pub waiters: usize,
    pub progress: ProgressReport,
}

impl Job {
    /// Waits for the outcome, noted on the request's [`wait::WaitNote`]
    /// meanwhile.
    async fn wait(&self, site_id: i64) -> Outcome {
        wait::note(site_id, &self.progress);
        self.waiters.fetch_add(1, Ordering::Relaxed);
        let _waiting = Waiting(&self.waiters);
        let mut outcome = self.outcome.clone();
        match outcome.wait_for(Option::is_some).await {
            Ok(outcome) => outcome.clone().expect("waited for it"),
            Err(_) => Err(StorageError::ReadFailed(
                "the read of the site ended without an outcome".into(),
            )),
        }
    }

    fn report(&self) -> JobReport {
        JobReport {
            work: match self.work {
                Work::Update => "update",
                Work::Details(_) => "details",
            },
            waiters: self.waiters.load(Ordering::Relaxed),
            progress: self.progress.report(),
        }
    }
}

/// Counts a request out of a job's waiters when it stops waiting, however.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Ends a job however its task ends (an outcome, a panic, the runtime
/// shutting down): the site's slot is freed before the outcome is
/// published, so whoever reads the outcome and asks again starts a new job.
struct Finish {
    site: Arc<SiteLive>,
    number: u64,
    progress: Arc<ReadProgress>,
    sender: Option<watch::Sender<Option<Outcome>>>,
}

impl Finish {
    fn publish(&mut self, outcome: Outcome) {
        {
            let mut slot = self.site.job.lock().unwrap_or_else(|e| e.into_inner());
            if slot.as_ref().is_some_and(|job| job.number == self.number) {
                *slot = None;
            }
        }
        self.progress.finish();
        if let Some(sender) = self.sender.take() {
            sender.send_replace(Some(outcome));
        }
    }
}

impl Drop for Finish {
    fn drop(&mut self) {
        if self.sender.is_some() {
            self.publish(Err(StorageError::ReadFailed(
                "the read of the site was interrupted".into(),
            )));
        }
    }
}

pub(super) struct SiteLive {
    pub(super) site_id: i64,
    state: Arc<RwLock<Option<Resident>>>,
    job: std::sync::Mutex<Option<Arc<Job>>>,
    jobs_begun: AtomicU64,
    writing: Mutex<()>,
    /// Position and time of the last checkpoint written or read, and how
    /// many detail columns it held: columns read since (on first use) make
    /// the next checkpoint worth writing even if no write moved the site.
    last_checkpoint: std::sync::Mutex<Option<(i64, Instant, usize)>>,
    generations: AtomicU64,
    stats: std::sync::Mutex<SiteStats>,
    #[cfg(test)]
    pub(super) broken: std::sync::atomic::AtomicBool,
}

impl SiteLive {
    pub(super) fn new(site_id: i64) -> Self {
        Self {
            site_id,
            state: Arc::new(RwLock::new(None)),
            job: std::sync::Mutex::new(None),
            jobs_begun: AtomicU64::new(0),
            writing: Mutex::new(()),
            last_checkpoint: std::sync::Mutex::new(None),
            generations: Default::default(),
            stats: Default::default(),
            #[cfg(test)]
            broken: Default::default(),
        }
    }

    /// The snapshot, if one is held and no update holds it now.
    pub(super) fn try_resident(
        &self,
    ) -> Option<tokio::sync::RwLockReadGuard<'_, Option<Resident>>> {
        self.state.try_read().ok().filter(|s| s.is_some())
    }

    /// Whether a snapshot is held (false while only being read).
    pub(super) fn is_resident(&self) -> bool {
        self.state.try_read().map_or(true, |s| s.is_some())
    }

    pub(super) fn stats(&self) -> SiteStats {
        let mut stats = *self.stats.lock().unwrap_or_else(|e| e.into_inner());
        stats.position = self
            .state
            .try_read()
            .ok()
            .and_then(|s| s.as_ref().map(|r| r.position));
        stats
    }

    /// The job in flight, if any.
    pub(super) fn job_report(&self) -> Option<JobReport> {
        self.job
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|job| job.report())
    }

    fn count(&self, f: impl FnOnce(&mut SiteStats)) {
        f(&mut self.stats.lock().unwrap_or_else(|e| e.into_inner()));
    }

    fn install(&self, state: &mut Option<Resident>, position: Position, audience: Columns) -> u64 {
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        *state = Some(Resident {
            site_id: self.site_id,
            position,
            audience,
            segments: HashMap::new(),
            generation,
            #[cfg(test)]
            broken: self.broken.load(Ordering::Relaxed),
        });
        generation
    }

    /// The snapshot, at position `head` or later.
    pub(super) async fn current(
        self: &Arc<Self>,
        loader: &Loader,
        mut head: i64,
    ) -> Result<ResidentGuard, StorageError> {
        // Jobs numbered after this began after the caller read `head`.
        let arrived = self.jobs_begun.load(Ordering::SeqCst);
        loop {
            let guard = Arc::clone(&self.state).read_owned().await;
            match OwnedRwLockReadGuard::try_map(guard, |state| {
                state.as_ref().filter(|r| r.position.seq >= head)
            }) {
                Ok(current) => return Ok(current),
                Err(behind) => drop(behind),
            }
            let job = self.job(loader, Work::Update);
            let reached = job.wait(self.site_id).await?;
            // Whatever a job that began after the call read was read after
            // the head: never ask for more than that (a database restored
            // to an earlier state may now be behind the head remembered).
            if job.number > arrived
                && job.work == Work::Update
                && let Some(reached) = reached
            {
                head = head.min(reached);
            }
        }
    }

    /// Reads `columns` into the snapshot (those it still lacks), in a job.
    pub(super) async fn read_details(
        self: &Arc<Self>,
        loader: &Loader,
        columns: Vec<(String, DetailPath)>,
    ) -> Result<(), StorageError> {
        let work = Work::Details(columns);
        loop {
            let job = self.job(loader, work.clone());
            job.wait(self.site_id).await?;
            if job.work == work {
                return Ok(());
            }
        }
    }

    /// The job in flight, or a new one doing `work`.
    fn job(self: &Arc<Self>, loader: &Loader, work: Work) -> Arc<Job> {
        let mut slot = self.job.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(job) = slot.as_ref() {
            return Arc::clone(job);
        }
        let number = self.jobs_begun.fetch_add(1, Ordering::SeqCst) + 1;
        let progress = Arc::new(ReadProgress::new());
        let (sender, outcome) = watch::channel(None);
        let job = Arc::new(Job {
            number,
            work: work.clone(),
            progress: Arc::clone(&progress),
            waiters: AtomicUsize::new(0),
            outcome,
        });
        *slot = Some(Arc::clone(&job));
        drop(slot);
        self.count(|s| s.jobs += 1);
        let mut finish = Finish {
            site: Arc::clone(self),
            number,
            progress: Arc::clone(&progress),
            sender: Some(sender),
        };
        let site = Arc::clone(self);
        let loader = loader.clone();
        tokio::spawn(async move {
            let outcome = tokio::select! {
                biased;
                () = loader.stopped() => Err(StorageError::Unavailable(
                    "the server is shutting down".into(),
                )),
                outcome = site.run(&loader, &work, &progress) => outcome,
            };
            if let Err(error) = &outcome {
                site.count(|s| s.failed_jobs += 1);
                let report = progress.report();
                tracing::warn!(
                    site_id = site.site_id,
                    %error,
                    stage = report.stage.name(),
                    read = report.read,
                    seconds = report.elapsed.as_secs_f64(),
                    "reading the site's audience failed"
                );
            }
            finish.publish(outcome);
        });
        job
    }

    async fn run(
        self: &Arc<Self>,
        loader: &Loader,
        work: &Work,
        progress: &Arc<ReadProgress>,
    ) -> Outcome {
        match work {
            Work::Update => {
                let standing = self
                    .state
                    .read()
                    .await
                    .as_ref()
                    .map(|r| (r.position, r.audience.detail_columns()));
                match standing {
                    Some((position, columns)) => {
                        self.catch_up(loader, position, columns, progress).await
                    }
                    None => self.load(loader, progress).await,
                }
            }
            Work::Details(columns) => self.add_details(loader, columns, progress).await,
        }
    }

    /// Reads and applies the changes since `position`; the position reached,
    /// or `None` when the snapshot had to be dropped.
    async fn catch_up(
        &self,
        loader: &Loader,
        position: Position,
        columns: Vec<(String, DetailPath)>,
        progress: &ReadProgress,
    ) -> Outcome {
        let why = match loader
            .feed
            .read_changes(self.site_id, position, &columns, false, progress)
            .await
        {
            Ok(changes) => {
                let entries = changes.entries as u64;
                let mut state = self.state.write().await;
                let Some(resident) = state.as_mut() else {
                    return Ok(None);
                };
                match resident.apply(changes) {
                    Ok(()) => {
                        let reached = resident.position.seq;
                        self.count(|s| {
                            s.catch_ups += 1;
                            s.entries_applied += entries;
                        });
                        return Ok(Some(reached));
                    }
                    Err(NeedsReload(why)) => {
                        *state = None;
                        why
                    }
                }
            }
            Err(StorageError::Stale(why)) => {
                *self.state.write().await = None;
                why
            }
            Err(error) => return Err(error),
        };
        tracing::warn!(
            site_id = self.site_id,
            seq = position.seq,
            reason = %why,
            "the change log cannot bring the snapshot forward; reading the site again"
        );
        self.count(|s| s.reloads += 1);
        Ok(None)
    }

    /// Reads the detail columns the snapshot lacks of `columns`, one at a
    /// time, each cut to the snapshot's events of its type (events are only
    /// appended, and no other job moves the snapshot meanwhile).
    async fn add_details(
        &self,
        loader: &Loader,
        columns: &[(String, DetailPath)],
        progress: &ReadProgress,
    ) -> Outcome {
        for (kind, path) in columns {
            let held = {
                let state = self.state.read().await;
                let Some(resident) = state.as_ref() else {
                    return Ok(None);
                };
                if resident
                    .audience
                    .detail_columns()
                    .iter()
                    .any(|(k, p)| k == kind && p == path)
                {
                    continue;
                }
                resident.audience.event_count_of(kind)
            };
            progress.expect(held as u64);
            let mut values = loader
                .feed
                .load_details(self.site_id, kind, path, progress)
                .await?;
            let state = self.state.read().await;
            let Some(resident) = state.as_ref() else {
                return Ok(None);
            };
            values.truncate(resident.audience.event_count_of(kind));
            if !resident.audience.add_details(kind, path.clone(), values) {
                return Err(StorageError::ReadFailed(format!(
                    "event details of {kind:?} no longer line up with the snapshot"
                )));
            }
        }
        Ok(self.state.read().await.as_ref().map(|r| r.position.seq))
    }

    /// Reads the snapshot whole: from its checkpoint and the log since, or
    /// from the database. Returns the position reached.
    async fn load(self: &Arc<Self>, loader: &Loader, progress: &Arc<ReadProgress>) -> Outcome {
        if let Some(checkpoints) = &loader.checkpoints {
            match self.load_checkpoint(loader, checkpoints, progress).await {
                Ok(Some(reached)) => return Ok(Some(reached)),
                Ok(None) => {}
                Err(CheckpointError::Storage(error)) => return Err(error),
                Err(_) if loader.is_stopping() => {
                    return Err(StorageError::Unavailable(
                        "the server is shutting down".into(),
                    ));
                }
                Err(error) => tracing::warn!(
                    site_id = self.site_id,
                    %error,
                    "checkpoint not used; reading the site from the database"
                ),
            }
        }
        let started = Instant::now();
        let loaded = loader.feed.load_snapshot(self.site_id, progress).await?;
        progress.stage(Stage::Building);
        let builder = loaded.audience;
        let audience = tokio::task::spawn_blocking(move || builder.build())
            .await
            .map_err(|e| StorageError::ReadFailed(format!("building the audience failed: {e}")))?;
        let position = Position {
            seq: loaded.seq,
            events_through: audience.events_through,
        };
        let (subscribers, events) = (audience.len(), audience.event_count());
        {
            let mut state = self.state.write().await;
            self.install(&mut state, position, audience);
            if let Some(resident) = state.as_mut() {
                resident.segments = parse_segments(loaded.segments);
            }
        }
        self.count(|s| s.full_reads += 1);
        tracing::info!(
            site_id = self.site_id,
            seq = position.seq,
            subscribers,
            events,
            ms = started.elapsed().as_millis() as u64,
            "audience snapshot read from the database"
        );
        if let Some(checkpoints) = loader.checkpoints.as_ref().filter(|c| c.settings.write) {
            // A task of its own: the job (and whoever waits) is done now.
            let site = Arc::clone(self);
            let checkpoints = checkpoints.clone();
            tokio::spawn(async move { site.write_checkpoint(&checkpoints, None).await });
        }
        Ok(Some(position.seq))
    }

    async fn load_checkpoint(
        &self,
        loader: &Loader,
        checkpoints: &Checkpoints,
        progress: &Arc<ReadProgress>,
    ) -> Result<Option<i64>, CheckpointError> {
        let started = Instant::now();
        let Some((position, audience)) = checkpoints
            .read(self.site_id, progress, loader.stopping.clone())
            .await?
        else {
            return Ok(None);
        };
        let read_ms = started.elapsed().as_millis() as u64;
        let columns = audience.detail_columns();
        let changes = match loader
            .feed
            .read_changes(self.site_id, position, &columns, true, progress)
            .await
        {
            Ok(changes) => changes,
            Err(StorageError::Stale(why)) => {
                tracing::info!(
                    site_id = self.site_id,
                    seq = position.seq,
                    reason = %why,
                    "the checkpoint is older than the change log reaches; reading the site"
                );
                return Ok(None);
            }
            Err(error) => return Err(error.into()),
        };
        let entries = changes.entries;
        let mut state = self.state.write().await;
        self.install(&mut state, position, audience);
        let resident = state.as_mut().expect("installed above");
        if let Err(NeedsReload(why)) = resident.apply(changes) {
            *state = None;
            return Err(CheckpointError::Unusable(why));
        }
        let reached = resident.position.seq;
        let details = resident.audience.detail_columns().len();
        *self
            .last_checkpoint
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some((position.seq, Instant::now(), details));
        self.count(|s| s.checkpoint_reads += 1);
        tracing::info!(
            site_id = self.site_id,
            from = position.seq,
            to = reached,
            entries,
            read_ms,
            ms = started.elapsed().as_millis() as u64,
            "audience snapshot read from its checkpoint and the change log"
        );
        Ok(Some(reached))
    }

    /// Writes the snapshot's checkpoint if it moved since the last one (and,
    /// with `older_than`, that one is older).
    pub(super) async fn write_checkpoint(
        &self,
        checkpoints: &Checkpoints,
        older_than: Option<Duration>,
    ) {
        if !checkpoints.settings.write {
            return;
        }
        // Periodic upkeep skips a site whose checkpoint is being written;
        // an explicit call (after a read, at shutdown) waits for it.
        let _writing = match older_than {
            Some(_) => match self.writing.try_lock() {
                Ok(writing) => writing,
                Err(_) => return,
            },
            None => self.writing.lock().await,
        };
        let started = Instant::now();
        match self.write_checkpoint_now(checkpoints, older_than).await {
            Ok(Some((seq, details))) => {
                *self
                    .last_checkpoint
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = Some((seq, Instant::now(), details));
                self.count(|s| s.checkpoints_written += 1);
                tracing::info!(
                    site_id = self.site_id,
                    seq,
                    ms = started.elapsed().as_millis() as u64,
                    "checkpoint written"
                );
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(site_id = self.site_id, %error, "checkpoint not written")
            }
        }
    }

    async fn write_checkpoint_now(
        &self,
        checkpoints: &Checkpoints,
        older_than: Option<Duration>,
    ) -> Result<Option<(i64, usize)>, CheckpointError> {
        let last = *self
            .last_checkpoint
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // The subscriber columns change in place: written under one hold of
        // the shared lock, with the lengths of the append-only columns.
        let guard = Arc::clone(&self.state).read_owned().await;
        let Some(resident) = guard.as_ref() else {
            return Ok(None);
        };
        let (position, generation) = (resident.position, resident.generation);
        let unchanged = |(seq, _, details): (i64, Instant, usize)| {
            seq == position.seq && details == resident.audience.detail_columns().len()
        };
        if let Some(last) = last
            && (unchanged(last) || older_than.is_some_and(|interval| last.1.elapsed() < interval))
        {
            return Ok(None);
        }
        let writer = checkpoints.start(self.site_id, position).await?;
        let held = Instant::now();
        let (mut writer, lengths) = blocking(move || {
            let mut writer = writer;
            let audience = &guard.as_ref().expect("checked above").audience;
            audience.write_subscribers(writer.encoder())?;
            Ok((writer, audience.column_lengths()))
        })
        .await?;
        tracing::debug!(
            site_id = self.site_id,
            ms = held.elapsed().as_millis() as u64,
            "subscriber columns written for a checkpoint"
        );
        let (events, details) = lengths;
        writer.encoder().u64(events.len() as u64)?;
        for (kind, len, ranked) in &events {
            writer.encoder().str(kind)?;
            writer.encoder().u64(*len as u64)?;
            let parts: &[u8] = if *ranked { &[0, 1, 2] } else { &[0, 1] };
            for &part in parts {
                if part == 2 {
                    writer.encoder().u8(1)?;
                }
                for from in (0..*len).step_by(CHUNK) {
                    let range = from..(from + CHUNK).min(*len);
                    let kind = kind.clone();
                    writer = self
                        .with_snapshot(writer, generation, move |a, e| {
                            a.write_events(&kind, part, range, e)
                        })
                        .await?;
                }
            }
            if !*ranked {
                writer.encoder().u8(0)?;
            }
        }
        writer.encoder().u64(details.len() as u64)?;
        for (key, len) in &details {
            writer.encoder().str(&key.0)?;
            writer.encoder().path(&key.1)?;
            writer.encoder().u64(*len as u64)?;
            for from in (0..*len).step_by(CHUNK) {
                let range = from..(from + CHUNK).min(*len);
                let key = key.clone();
                writer = self
                    .with_snapshot(writer, generation, move |a, e| {
                        a.write_details(&key, range, e)
                    })
                    .await?;
            }
        }
        blocking(move || Ok(writer.finish()?)).await?;
        Ok(Some((position.seq, details.len())))
    }

    /// Runs one piece of a checkpoint under the shared lock, on a blocking
    /// thread; gives the writer back, or fails (discarding the file) when
    /// the snapshot was replaced or the piece is no longer there.
    async fn with_snapshot(
        &self,
        mut writer: CheckpointWriter,
        generation: u64,
        piece: impl FnOnce(
            &Columns,
            &mut corral_core::columns::persist::Encoder<
                std::io::BufWriter<super::checkpoint::Checked<std::fs::File>>,
            >,
        ) -> std::io::Result<bool>
        + Send
        + 'static,
    ) -> Result<CheckpointWriter, CheckpointError> {
        let guard = Arc::clone(&self.state).read_owned().await;
        let result = blocking(move || {
            let written = match guard.as_ref() {
                Some(r) if r.generation == generation => piece(&r.audience, writer.encoder())?,
                _ => false,
            };
            Ok((writer, written))
        })
        .await?;
        match result {
            (writer, true) => Ok(writer),
            (writer, false) => {
                writer.discard();
                Err(CheckpointError::Unusable(
                    "the snapshot was read again while it was being written".into(),
                ))
            }
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, CheckpointError> + Send + 'static,
) -> Result<T, CheckpointError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| CheckpointError::Unusable(format!("task failed: {e}")))?
}
