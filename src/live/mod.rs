//! Live evaluation: segments evaluated against the current data, for the
//! HTTP layer and the CLI alike.
//!
//! Each site's audience is held in memory as columns ([`Columns`]) in a
//! *resident snapshot* that reflects one position of the site's change log
//! ([`crate::storage::changes`]). Before answering, an evaluation learns the
//! site's head ([`Heads`]: no database round trip while nothing was
//! committed anywhere) and, if the snapshot is behind, brings it forward: it
//! reads the log's entries since the snapshot's position together with the
//! current state of just what they name (the subscribers whose row or tags
//! changed, the events appended, the segments saved), in one read
//! transaction, and applies that in place (`site.rs`). The cost is that of
//! the change, not of the audience, and no second copy of the audience is
//! made. Evaluations read the snapshot under a shared lock; applying takes it
//! exclusively for as long as the (already read) changes take to apply.
//!
//! Correctness comes from the log alone, so writes made by any process (this
//! server, `corral import` in another, another server on the same database)
//! are seen, and an answer reflects every write acknowledged before its
//! request began. A snapshot that cannot be brought forward (entries trimmed,
//! an entry that cannot be read, a subscriber that cannot be placed) is read
//! again from scratch, and that is logged.
//!
//! Snapshots are written to checkpoint files ([`checkpoint`]) after a full
//! read, periodically and at shutdown; a server that starts reads the
//! checkpoint and the log since it instead of the whole audience, and still
//! brings it up to the head before any answer. A write to one site never
//! touches another site's snapshot. Detail columns a query needs are added to
//! the snapshot as queries ask for them, and kept current from then on.
//! Relative times are resolved against the `now` the caller passes, the time
//! of the request.
//!
//! Every read of a site runs in a task of the site's own, one at a time,
//! and finishes whatever happens to the requests waiting for it (`site.rs`):
//! work paid for is never thrown away. A request whose time runs out while
//! it waits learns how far the read is ([`wait`]). Sites named to be
//! preloaded are read at start, in the background, and kept resident;
//! `/readyz` waits for them ([`Live::preload_report`]).

pub mod checkpoint;
mod heads;
pub mod journal;
mod lanes;
mod overlap;
mod site;
pub mod wait;

pub use heads::Heads;
pub use overlap::Overlap;
pub use site::{JobReport, Resident, SiteStats};
pub use wait::{Loading, WaitNote};

use crate::storage::{ChangeFeed, Position, StorageError};
use corral_core::audience::AudienceCounts;
use corral_core::columns::Columns;
use corral_core::engine::cost::{self, Budget};
use corral_core::engine::{self, Cancel, EvalError, Explanation};
use corral_core::query::Query;
use corral_core::query::ast::DetailPath;
use fixedbitset::FixedBitSet;
use site::SiteLive;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedRwLockReadGuard, watch};

/// How many sites' snapshots are kept in memory at once, besides the
/// preloaded ones (which are kept whatever else is asked for).
const SNAPSHOTS_KEPT: usize = 4;

/// How long a preload waits before trying a site whose read failed again.
const PRELOAD_RETRY: Duration = Duration::from_secs(5);

/// How long change-log entries are kept: a snapshot (or a checkpoint) older
/// than this is read again from scratch.
pub const LOG_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// How often a resident snapshot that moved is written to its checkpoint.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(15 * 60);

/// Why a live evaluation failed.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    NotEvaluable(#[from] EvalError),
}

/// A resident snapshot, read-locked: current as of the request it was
/// asked for, and unchanged while held.
pub type ResidentGuard = OwnedRwLockReadGuard<Option<Resident>, Resident>;

/// The members of a query, with the snapshot they are indexes into. It holds
/// the snapshot's shared lock: drop it before slow work, so that the
/// snapshot can be brought forward meanwhile.
pub struct Evaluation {
    resident: ResidentGuard,
    pub members: FixedBitSet,
}

impl Evaluation {
    pub fn audience(&self) -> &Columns {
        &self.resident.audience
    }

    /// Bento's three counts over the members.
    pub fn counts(&self) -> AudienceCounts {
        let users = self.members.count_ones(..) as i64;
        let mut subscribed = self.members.clone();
        subscribed.intersect_with(&self.audience().subscribed);
        let subscribed = subscribed.count_ones(..) as i64;
        AudienceCounts {
            user_count: users,
            subscriber_count: subscribed,
            unsubscriber_count: users - subscribed,
        }
    }

    /// Up to `limit` member ids after the subscriber id `after`, ascending,
    /// and whether more follow. Ids are stable, so a page boundary stays put
    /// whatever changes between pages.
    pub fn page(&self, after: Option<i64>, limit: usize) -> (Vec<i64>, bool) {
        let ids = &self.audience().ids;
        let start = after.map_or(0, |after| ids.partition_point(|&id| id <= after));
        let mut page = Vec::with_capacity(limit.min(1024));
        let mut more = false;
        for index in self.members.ones().skip_while(|&i| i < start) {
            if page.len() == limit {
                more = true;
                break;
            }
            page.push(ids[index]);
        }
        (page, more)
    }

    /// The change-log position of the snapshot the members were worked out
    /// from.
    pub fn position(&self) -> Position {
        self.resident.position
    }

    /// Every member's id, ascending.
    pub fn member_ids(&self) -> Vec<i64> {
        let ids = &self.audience().ids;
        self.members.ones().map(|i| ids[i]).collect()
    }
}

/// Where checkpoints go, and whether this process writes them.
#[derive(Debug, Clone)]
pub struct CheckpointSettings {
    pub dir: PathBuf,
    /// Servers write checkpoints; one-off commands only read them.
    pub write: bool,
}

/// What a site's reads read from, and when to stop: shared by the jobs of
/// every site.
#[derive(Clone)]
pub(crate) struct Loader {
    feed: Arc<dyn ChangeFeed>,
    checkpoints: Option<checkpoint::Checkpoints>,
    /// True once the server stops.
    stopping: watch::Receiver<bool>,
}

impl Loader {
    /// Resolves once the server stops.
    async fn stopped(&self) {
        let mut stopping = self.stopping.clone();
        if stopping.wait_for(|&s| s).await.is_err() {
            // Nobody can stop it any more: never.
            std::future::pending::<()>().await;
        }
    }

    fn is_stopping(&self) -> bool {
        *self.stopping.borrow()
    }
}

/// A site named to be read at start and kept resident.
#[derive(Debug, Clone)]
struct Preloaded {
    site_id: i64,
    uuid: String,
    /// Why its last read failed, while it has not succeeded since.
    error: Option<String>,
}

/// Where one preloaded site stands, for `/readyz`.
#[derive(Debug, Clone)]
pub struct PreloadReport {
    pub site_id: i64,
    pub site_uuid: String,
    pub resident: bool,
    /// The read in flight, if any.
    pub job: Option<JobReport>,
    /// Why the last read failed (it is tried again).
    pub error: Option<String>,
}

/// Evaluates queries against a store, keeping recent sites' snapshots
/// resident and current.
pub struct Live {
    heads: Arc<Heads>,
    /// Most recently used last.
    sites: Mutex<Vec<Arc<SiteLive>>>,
    loader: Loader,
    stop: watch::Sender<bool>,
    /// Sites read at start and never dropped, in the order named.
    preloaded: Mutex<Vec<Preloaded>>,
    limits: Budget,
    lanes: lanes::Lanes,
}

/// Sets the flag of a running evaluation when the future waiting for it is
/// dropped: its request timed out, or its client went away.
struct CancelOnDrop(Cancel);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

impl Live {
    pub fn new(feed: Arc<dyn ChangeFeed>) -> Self {
        let heads = Arc::new(Heads::new(Arc::clone(&feed)));
        Self::with_heads(feed, heads, None)
    }

    /// A `Live` sharing `heads` with other users of the store (the HTTP
    /// caches), keeping checkpoints as `checkpoints` says.
    pub fn with_heads(
        feed: Arc<dyn ChangeFeed>,
        heads: Arc<Heads>,
        checkpoints: Option<CheckpointSettings>,
    ) -> Self {
        let (stop, stopping) = watch::channel(false);
        Self {
            loader: Loader {
                checkpoints: checkpoints
                    .map(|c| checkpoint::Checkpoints::new(Arc::clone(&feed), c)),
                feed,
                stopping,
            },
            stop,
            heads,
            sites: Mutex::new(Vec::new()),
            preloaded: Mutex::new(Vec::new()),
            limits: Budget::default(),
            lanes: lanes::Lanes::new(),
        }
    }

    /// The same, with other evaluation limits.
    pub fn with_limits(mut self, limits: Budget) -> Self {
        self.limits = limits;
        self
    }

    pub fn heads(&self) -> &Arc<Heads> {
        &self.heads
    }

    /// The preloaded sites' ids, in the order named.
    fn preloaded_ids(&self) -> Vec<i64> {
        self.preloaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|p| p.site_id)
            .collect()
    }

    fn site(&self, site_id: i64) -> Arc<SiteLive> {
        let mut sites = self.sites.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = sites.iter().position(|s| s.site_id == site_id) {
            let site = sites.remove(i);
            sites.push(Arc::clone(&site));
            return site;
        }
        let preloaded = self.preloaded_ids();
        // The least recently used site that was not preloaded makes room.
        let others = sites
            .iter()
            .filter(|s| !preloaded.contains(&s.site_id))
            .count();
        if others >= SNAPSHOTS_KEPT
            && let Some(i) = sites.iter().position(|s| !preloaded.contains(&s.site_id))
        {
            sites.remove(i);
        }
        let site = Arc::new(SiteLive::new(site_id));
        sites.push(Arc::clone(&site));
        site
    }

    /// The site's entry, if it has one (resident, or being read).
    fn known_site(&self, site_id: i64) -> Option<Arc<SiteLive>> {
        let sites = self.sites.lock().unwrap_or_else(|e| e.into_inner());
        sites.iter().find(|s| s.site_id == site_id).cloned()
    }

    /// Makes the site's catch-ups drop changes to subscribers already held.
    #[cfg(test)]
    pub(crate) fn break_catch_up(&self, site_id: i64) {
        self.site(site_id)
            .broken
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether a snapshot of the site is in memory (it may be behind).
    pub fn holds(&self, site_id: i64) -> bool {
        self.known_site(site_id).is_some_and(|s| s.is_resident())
    }

    /// Counters of one site's snapshot, if it is resident.
    pub fn site_stats(&self, site_id: i64) -> Option<SiteStats> {
        self.known_site(site_id).map(|s| s.stats())
    }

    /// The site's snapshot, brought up to the site's head as of this call.
    pub async fn resident(&self, site_id: i64) -> Result<ResidentGuard, StorageError> {
        let site = self.site(site_id);
        let head = self.heads.current(site_id).await?;
        site.current(&self.loader, head.seq).await
    }

    /// The site's snapshot, current as of this call and holding the detail
    /// columns `query` and the segments it refers to need (read, in a job
    /// of the site's, if it lacked any).
    /// `current` is a snapshot just brought up to date, to start from
    /// without a second freshness check.
    async fn ready(
        &self,
        site_id: i64,
        query: &Query,
        mut current: Option<ResidentGuard>,
    ) -> Result<ResidentGuard, StorageError> {
        loop {
            let resident = match current.take() {
                Some(resident) => resident,
                None => self.resident(site_id).await?,
            };
            let missing = missing_details(&resident, query);
            if missing.is_empty() {
                return Ok(resident);
            }
            // Never wait holding the snapshot: the job could not add to it.
            drop(resident);
            self.site(site_id)
                .read_details(&self.loader, missing)
                .await?;
        }
    }

    /// The site's snapshot, ready for `query` (its detail columns read),
    /// with a place in the lane its cost calls for; a query over budget is
    /// refused before anything runs.
    async fn admitted(
        &self,
        site_id: i64,
        query: &Query,
        current: Option<ResidentGuard>,
    ) -> Result<(ResidentGuard, lanes::Permit), LiveError> {
        let resident = self.ready(site_id, query, current).await?;
        let cost = cost::estimate(&resident.audience, query, &resident.segments);
        cost.check(&resident.audience, &self.limits)
            .map_err(EvalError::TooExpensive)?;
        let heavy = cost.values > self.limits.heavy;
        if let Some(permit) = self.lanes.try_admit(site_id, heavy) {
            return Ok((resident, permit));
        }
        // Never queue holding the snapshot: it could not move meanwhile.
        drop(resident);
        let permit = self.lanes.admit(site_id, heavy).await;
        let resident = self.ready(site_id, query, None).await?;
        Ok((resident, permit))
    }

    /// Whether `query` is within budget over the site's audience, when the
    /// audience is already in memory (saving a segment does not read it).
    pub fn check_cost(&self, site_id: i64, query: &Query) -> Result<(), EvalError> {
        let site = self.known_site(site_id);
        let Some(resident) = site.as_ref().and_then(|s| s.try_resident()) else {
            return Ok(());
        };
        let resident = resident.as_ref().expect("only held snapshots are returned");
        cost::estimate(&resident.audience, query, &resident.segments)
            .check(&resident.audience, &self.limits)
            .map_err(EvalError::TooExpensive)
    }

    /// The query of the kept segment `id` as the site's snapshot holds it,
    /// with that snapshot, brought up to date (one freshness check); `None`
    /// when the snapshot holds no evaluable kept segment of that id.
    pub async fn saved_query(
        &self,
        site_id: i64,
        id: i64,
    ) -> Result<Option<(Arc<Query>, ResidentGuard)>, StorageError> {
        let resident = self.resident(site_id).await?;
        Ok(resident
            .segments
            .get(&id)
            .cloned()
            .map(|query| (query, resident)))
    }

    /// The members of `query` at `now`.
    pub async fn evaluate(
        &self,
        site_id: i64,
        query: &Query,
        now: i64,
    ) -> Result<Evaluation, LiveError> {
        self.evaluate_on(site_id, query, now, None).await
    }

    /// [`Self::evaluate`], starting from `current`, the snapshot just brought
    /// up to date that `query` was taken from ([`Self::saved_query`]).
    pub async fn evaluate_on(
        &self,
        site_id: i64,
        query: &Query,
        now: i64,
        current: Option<ResidentGuard>,
    ) -> Result<Evaluation, LiveError> {
        if matches!(query, Query::Foreign) {
            return Err(EvalError::Foreign.into());
        }
        let (resident, permit) = self.admitted(site_id, query, current).await?;
        let cancel = Cancel::default();
        let _cancel_on_drop = CancelOnDrop(cancel.clone());
        let query = query.clone();
        let (resident, members) = tokio::task::spawn_blocking(move || {
            // A heavy evaluation keeps to one core, leaving one to the rest.
            let split = !permit.heavy();
            let members = engine::members_on(
                &resident.audience,
                &query,
                now,
                &resident.segments,
                &cancel,
                split,
            );
            drop(permit);
            (resident, members)
        })
        .await
        .map_err(|e| StorageError::ReadFailed(format!("evaluation task failed: {e}")))?;
        Ok(Evaluation {
            resident,
            members: members?,
        })
    }

    /// Whether one subscriber (by id) is a member, and why; `None` when the
    /// subscriber is not in the site's audience.
    pub async fn explain(
        &self,
        site_id: i64,
        query: &Query,
        now: i64,
        subscriber_id: i64,
    ) -> Result<Option<Explanation>, LiveError> {
        self.explain_on(site_id, query, now, subscriber_id, None)
            .await
    }

    /// [`Self::explain`], starting from `current`, as [`Self::evaluate_on`].
    pub async fn explain_on(
        &self,
        site_id: i64,
        query: &Query,
        now: i64,
        subscriber_id: i64,
        current: Option<ResidentGuard>,
    ) -> Result<Option<Explanation>, LiveError> {
        if matches!(query, Query::Foreign) {
            return Err(EvalError::Foreign.into());
        }
        let (resident, permit) = self.admitted(site_id, query, current).await?;
        let Some(index) = resident.audience.index_of(subscriber_id) else {
            return Ok(None);
        };
        let cancel = Cancel::default();
        let _cancel_on_drop = CancelOnDrop(cancel.clone());
        let query = query.clone();
        let explanation = tokio::task::spawn_blocking(move || {
            let explanation = engine::explain_unless(
                &resident.audience,
                &query,
                now,
                &resident.segments,
                index,
                &cancel,
            );
            drop(permit);
            explanation
        })
        .await
        .map_err(|e| StorageError::ReadFailed(format!("explanation task failed: {e}")))?;
        Ok(Some(explanation?))
    }

    /// Makes the sites that have checkpoints resident (the most recently
    /// written first, as many as are kept besides the preloaded ones), so
    /// that the first requests after a start do not wait for a whole read.
    pub async fn warm_up(&self) {
        let Some(checkpoints) = &self.loader.checkpoints else {
            return;
        };
        let preloaded = self.preloaded_ids();
        for site_id in checkpoints
            .sites_newest_first()
            .into_iter()
            .filter(|site_id| !preloaded.contains(site_id))
            .take(SNAPSHOTS_KEPT)
        {
            if self.loader.is_stopping() {
                return;
            }
            if let Err(error) = self.resident(site_id).await {
                tracing::warn!(site_id, %error, "could not warm up the site's snapshot");
            }
        }
    }

    /// Names the sites (id and uuid) to read at start and keep resident;
    /// `/readyz` is 503 until all of them are. Then [`Live::preload`] reads
    /// them.
    pub fn set_preload(&self, sites: Vec<(i64, String)>) {
        *self.preloaded.lock().unwrap_or_else(|e| e.into_inner()) = sites
            .into_iter()
            .map(|(site_id, uuid)| Preloaded {
                site_id,
                uuid,
                error: None,
            })
            .collect();
    }

    /// Reads the sites named by [`Live::set_preload`], one after another,
    /// from their checkpoints where they have one; a site whose read fails
    /// is tried again (every [`PRELOAD_RETRY`]) until it is resident or the
    /// server stops.
    pub async fn preload(&self) {
        let mut pending = self.preloaded_ids();
        while !pending.is_empty() && !self.loader.is_stopping() {
            let mut failed = Vec::new();
            for site_id in pending {
                let outcome = tokio::select! {
                    () = self.loader.stopped() => return,
                    outcome = self.resident(site_id) => outcome.map(drop),
                };
                let error = outcome.err().map(|e| e.to_string());
                if let Some(error) = &error {
                    tracing::warn!(site_id, %error, "a preloaded site could not be read; trying again");
                    failed.push(site_id);
                }
                let mut preloaded = self.preloaded.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(p) = preloaded.iter_mut().find(|p| p.site_id == site_id) {
                    p.error = error;
                }
            }
            pending = failed;
            if !pending.is_empty() {
                tokio::select! {
                    () = self.loader.stopped() => return,
                    () = tokio::time::sleep(PRELOAD_RETRY) => {}
                }
            }
        }
        if !self.loader.is_stopping() {
            tracing::info!("every preloaded site is resident");
        }
    }

    /// Where each preloaded site stands; empty when none was named.
    pub fn preload_report(&self) -> Vec<PreloadReport> {
        let preloaded = self
            .preloaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        preloaded
            .into_iter()
            .map(|p| {
                let site = self.known_site(p.site_id);
                PreloadReport {
                    site_id: p.site_id,
                    site_uuid: p.uuid,
                    resident: site.as_ref().is_some_and(|s| s.is_resident()),
                    job: site.as_ref().and_then(|s| s.job_report()),
                    error: p.error,
                }
            })
            .collect()
    }

    /// The reads in flight, by site.
    pub fn jobs(&self) -> HashMap<i64, JobReport> {
        let sites = self.sites.lock().unwrap_or_else(|e| e.into_inner()).clone();
        sites
            .iter()
            .filter_map(|s| Some((s.site_id, s.job_report()?)))
            .collect()
    }

    /// Stops every read in flight at its next step (nothing of it is
    /// installed, and its waiters get [`StorageError::Unavailable`]); reads
    /// asked for from now on fail the same way. Checkpoints can still be
    /// written ([`Live::write_checkpoints`]).
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// Periodic upkeep: trims change-log entries older than
    /// [`LOG_RETENTION`] and writes the checkpoints of resident snapshots
    /// that moved and were last written longer ago than `interval`.
    pub async fn maintain(&self, now: i64, interval: Duration) {
        match self
            .loader
            .feed
            .trim_log(now - LOG_RETENTION.as_millis() as i64)
            .await
        {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "change log trimmed"),
            Err(error) => tracing::warn!(%error, "could not trim the change log"),
        }
        self.write_checkpoints(Some(interval)).await;
    }

    /// Writes the checkpoint of every resident snapshot that moved since its
    /// last one (and, with `older_than`, was last written longer ago).
    pub async fn write_checkpoints(&self, older_than: Option<Duration>) {
        let Some(checkpoints) = &self.loader.checkpoints else {
            return;
        };
        let sites: Vec<Arc<SiteLive>> =
            self.sites.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for site in sites {
            site.write_checkpoint(checkpoints, older_than).await;
        }
    }
}

/// The detail columns `query`, and the segments it refers to, need and the
/// snapshot lacks.
fn missing_details(resident: &Resident, query: &Query) -> Vec<(String, DetailPath)> {
    let mut queries = vec![query];
    let mut seen = Vec::new();
    let mut i = 0;
    while i < queries.len() {
        for id in queries[i].segment_refs() {
            if !seen.contains(&id) {
                seen.push(id);
                if let Some(q) = resident.segments.get(&id) {
                    queries.push(q);
                }
            }
        }
        i += 1;
    }
    engine::missing_details(&resident.audience, &queries)
}

#[cfg(test)]
pub(crate) mod tests;
