//! One site's resident snapshot: read whole (from its checkpoint or the
//! database), brought forward from the change log in place, and written to
//! its checkpoint.
//!
//! Three locks, each for one thing:
//! - `state` (shared/exclusive): evaluations hold it shared for as long as
//!   they read the snapshot; applying changes holds it exclusively, only
//!   while the changes (already read from the database) are applied;
//! - `updating`: one task at a time reads and applies changes or reads the
//!   snapshot whole; others wait and then find it current;
//! - `writing`: one checkpoint at a time. A checkpoint reads the snapshot
//!   under the shared lock a piece at a time, so it never holds up a
//!   catch-up for long: the subscriber columns in one go, then the
//!   append-only event and detail columns a chunk at a time, up to the
//!   lengths they had when the subscribers were written.

use super::ResidentGuard;
use super::checkpoint::{CheckpointWriter, Checkpoints};
use crate::query::Query;
use crate::query::eval::{Audience, NeedsReload};
use crate::segment::Segment;
use crate::storage::changes::Changes;
use crate::storage::{Position, StorageError, Store};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, OwnedRwLockReadGuard, RwLock};

/// Events (or detail values) written per hold of the shared lock.
const CHUNK: usize = 1 << 20;

/// A site's audience and kept segments at one position of its change log.
#[derive(Debug)]
pub struct Resident {
    pub site_id: i64,
    pub position: Position,
    pub audience: Audience,
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
                Arc::new(crate::query::parse(s.query.as_str()).ok()?),
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
}

pub(super) struct SiteLive {
    pub(super) site_id: i64,
    state: Arc<RwLock<Option<Resident>>>,
    updating: Mutex<()>,
    writing: Mutex<()>,
    /// Position and time of the last checkpoint written or read, and how
    /// many detail columns it held: columns read since (on first use) make
    /// the next checkpoint worth writing even if no write moved the site.
    last_checkpoint: std::sync::Mutex<Option<(i64, Instant, usize)>>,
    generations: std::sync::atomic::AtomicU64,
    stats: std::sync::Mutex<SiteStats>,
    #[cfg(test)]
    pub(super) broken: std::sync::atomic::AtomicBool,
}

impl SiteLive {
    pub(super) fn new(site_id: i64) -> Self {
        Self {
            site_id,
            state: Arc::new(RwLock::new(None)),
            updating: Mutex::new(()),
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

    pub(super) fn stats(&self) -> SiteStats {
        let mut stats = *self.stats.lock().unwrap_or_else(|e| e.into_inner());
        stats.position = self
            .state
            .try_read()
            .ok()
            .and_then(|s| s.as_ref().map(|r| r.position));
        stats
    }

    fn count(&self, f: impl FnOnce(&mut SiteStats)) {
        f(&mut self.stats.lock().unwrap_or_else(|e| e.into_inner()));
    }

    fn install(&self, state: &mut Option<Resident>, position: Position, audience: Audience) -> u64 {
        let generation = self
            .generations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        *state = Some(Resident {
            site_id: self.site_id,
            position,
            audience,
            segments: HashMap::new(),
            generation,
            #[cfg(test)]
            broken: self.broken.load(std::sync::atomic::Ordering::Relaxed),
        });
        generation
    }

    /// The snapshot, at position `head` or later.
    pub(super) async fn current(
        self: &Arc<Self>,
        store: &Arc<dyn Store>,
        checkpoints: Option<&Checkpoints>,
        mut head: i64,
    ) -> Result<ResidentGuard, StorageError> {
        loop {
            let guard = Arc::clone(&self.state).read_owned().await;
            match OwnedRwLockReadGuard::try_map(guard, |state| {
                state.as_ref().filter(|r| r.position.seq >= head)
            }) {
                Ok(current) => return Ok(current),
                Err(behind) => drop(behind),
            }
            let _updating = self.updating.lock().await;
            let standing = self
                .state
                .read()
                .await
                .as_ref()
                .map(|r| (r.position, r.audience.detail_columns()));
            let reached = match standing {
                Some((position, _)) if position.seq >= head => continue,
                Some((position, columns)) => self.catch_up(store, position, columns).await?,
                None => self.load(store, checkpoints).await?,
            };
            // Whatever was read was read after the request began: never
            // ask for more than that (a database restored to an earlier
            // state may now be behind the head remembered).
            if let Some(reached) = reached {
                head = head.min(reached);
            }
        }
    }

    /// Reads and applies the changes since `position`; the position reached,
    /// or `None` when the snapshot had to be dropped.
    async fn catch_up(
        &self,
        store: &Arc<dyn Store>,
        position: Position,
        columns: Vec<(String, crate::query::ast::DetailPath)>,
    ) -> Result<Option<i64>, StorageError> {
        let why = match store
            .read_changes(self.site_id, position, &columns, false)
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

    /// Reads the snapshot whole: from its checkpoint and the log since, or
    /// from the database. Returns the position reached.
    async fn load(
        self: &Arc<Self>,
        store: &Arc<dyn Store>,
        checkpoints: Option<&Checkpoints>,
    ) -> Result<Option<i64>, StorageError> {
        if let Some(checkpoints) = checkpoints {
            match self.load_checkpoint(store, checkpoints).await {
                Ok(Some(reached)) => return Ok(Some(reached)),
                Ok(None) => {}
                Err(super::checkpoint::CheckpointError::Storage(error)) => return Err(error),
                Err(error) => tracing::warn!(
                    site_id = self.site_id,
                    %error,
                    "checkpoint not used; reading the site from the database"
                ),
            }
        }
        let started = Instant::now();
        let loaded = store.load_snapshot(self.site_id).await?;
        let position = Position {
            seq: loaded.seq,
            events_through: loaded.audience.events_through,
        };
        let (subscribers, events) = (loaded.audience.len(), loaded.audience.event_count());
        {
            let mut state = self.state.write().await;
            self.install(&mut state, position, loaded.audience);
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
        if let Some(checkpoints) = checkpoints.filter(|c| c.settings.write) {
            let site = Arc::clone(self);
            let checkpoints = checkpoints.clone();
            tokio::spawn(async move { site.write_checkpoint(&checkpoints, None).await });
        }
        Ok(Some(position.seq))
    }

    async fn load_checkpoint(
        &self,
        store: &Arc<dyn Store>,
        checkpoints: &Checkpoints,
    ) -> Result<Option<i64>, super::checkpoint::CheckpointError> {
        let started = Instant::now();
        let Some((position, audience)) = checkpoints.read(self.site_id).await? else {
            return Ok(None);
        };
        let read_ms = started.elapsed().as_millis() as u64;
        let columns = audience.detail_columns();
        let changes = match store
            .read_changes(self.site_id, position, &columns, true)
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
            return Err(super::checkpoint::CheckpointError::Unusable(why));
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
    ) -> Result<Option<(i64, usize)>, super::checkpoint::CheckpointError> {
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
            &Audience,
            &mut crate::query::eval::persist::Encoder<
                std::io::BufWriter<super::checkpoint::Checked<std::fs::File>>,
            >,
        ) -> std::io::Result<bool>
        + Send
        + 'static,
    ) -> Result<CheckpointWriter, super::checkpoint::CheckpointError> {
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
                Err(super::checkpoint::CheckpointError::Unusable(
                    "the snapshot was read again while it was being written".into(),
                ))
            }
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, super::checkpoint::CheckpointError> + Send + 'static,
) -> Result<T, super::checkpoint::CheckpointError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| super::checkpoint::CheckpointError::Unusable(format!("task failed: {e}")))?
}
