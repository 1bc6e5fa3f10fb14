//! Live evaluation: segments evaluated against the current data, for the
//! HTTP layer and the CLI alike.
//!
//! Evaluating reads a snapshot of the site's audience ([`Audience`]) held in
//! memory and labelled with the store's [`ChangeMarker`]. Every evaluation
//! first asks the store for its current marker, which any committed write
//! moves (this process's or another's, such as a CLI import), and uses the
//! snapshot only while the labels agree; otherwise it reads a new one, taking
//! over the previous snapshot's events and reading only those stored since
//! (events are only ever appended). So an answer is never staler than the
//! request, and an unchanged audience is read once, not per request. Detail
//! columns a query needs are added to the snapshot as queries ask for them.
//! Relative times are resolved against the `now` the caller passes, the time
//! of the request.

use crate::audience::AudienceCounts;
use crate::query::Query;
use crate::query::eval::{self, Audience, EvalError, Explanation};
use crate::segment::{FieldErrors, Listing, QUERY_FIELD, SegmentId};
use crate::storage::{ChangeMarker, StorageError, Store};
use fixedbitset::FixedBitSet;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How many sites' snapshots are kept in memory at once.
const SNAPSHOTS_KEPT: usize = 4;

/// Why a live evaluation failed.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    NotEvaluable(#[from] EvalError),
}

/// One site's audience and kept segments, as of one marker.
#[derive(Debug)]
pub struct Snapshot {
    pub site_id: i64,
    /// `None` when the data changed while it was read: such a snapshot is
    /// consistent but used only by the request that read it.
    marker: Option<ChangeMarker>,
    pub audience: Audience,
    /// The parsed queries of the site's kept segments that fit the grammar.
    segments: HashMap<i64, Arc<Query>>,
    /// How long reading it took.
    pub read_in: Duration,
}

/// The members of a query, with the snapshot they are indexes into.
#[derive(Debug)]
pub struct Evaluation {
    pub snapshot: Arc<Snapshot>,
    pub members: FixedBitSet,
}

impl Evaluation {
    /// Bento's three counts over the members.
    pub fn counts(&self) -> AudienceCounts {
        let users = self.members.count_ones(..) as i64;
        let mut subscribed = self.members.clone();
        subscribed.intersect_with(&self.snapshot.audience.subscribed);
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
        let ids = &self.snapshot.audience.ids;
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
}

/// Evaluates queries against a store, keeping recent snapshots.
pub struct Live {
    store: Arc<dyn Store>,
    snapshots: Mutex<Vec<Arc<Snapshot>>>,
    /// Reading a snapshot is heavy: one at a time, and a request that waited
    /// for another's read uses it.
    reading: tokio::sync::Mutex<()>,
}

impl Live {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            snapshots: Mutex::new(Vec::new()),
            reading: tokio::sync::Mutex::new(()),
        }
    }

    fn cached(&self, site_id: i64, marker: ChangeMarker) -> Option<Arc<Snapshot>> {
        let snapshots = self.snapshots.lock().unwrap_or_else(|e| e.into_inner());
        snapshots
            .iter()
            .find(|s| s.site_id == site_id && s.marker == Some(marker))
            .cloned()
    }

    /// The site's current snapshot, read now if the data changed since the
    /// last one.
    pub async fn snapshot(&self, site_id: i64) -> Result<Arc<Snapshot>, StorageError> {
        let marker = self.store.change_marker().await?;
        if let Some(s) = self.cached(site_id, marker) {
            return Ok(s);
        }
        let _reading = self.reading.lock().await;
        let marker = self.store.change_marker().await?;
        if let Some(s) = self.cached(site_id, marker) {
            return Ok(s);
        }
        let started = Instant::now();
        // The site's previous snapshot, if any: its events need not be read
        // again, only those stored since.
        let earlier = {
            let snapshots = self.snapshots.lock().unwrap_or_else(|e| e.into_inner());
            snapshots.iter().find(|s| s.site_id == site_id).cloned()
        };
        let audience = self
            .store
            .load_audience(site_id, earlier.as_ref().map(|s| &s.audience))
            .await?;
        drop(earlier);
        let segments = self
            .store
            .list_segments(site_id, Listing::Kept)
            .await?
            .into_iter()
            .filter_map(|s| {
                Some((
                    s.id.0,
                    Arc::new(crate::query::parse(s.query.as_str()).ok()?),
                ))
            })
            .collect();
        let unchanged = self.store.change_marker().await? == marker;
        let snapshot = Arc::new(Snapshot {
            site_id,
            marker: unchanged.then_some(marker),
            audience,
            segments,
            read_in: started.elapsed(),
        });
        tracing::debug!(
            site_id,
            subscribers = snapshot.audience.len(),
            events = snapshot.audience.event_count(),
            ms = snapshot.read_in.as_millis() as u64,
            "audience snapshot read"
        );
        if unchanged {
            let mut snapshots = self.snapshots.lock().unwrap_or_else(|e| e.into_inner());
            snapshots.retain(|s| s.site_id != site_id);
            if snapshots.len() >= SNAPSHOTS_KEPT {
                snapshots.remove(0);
            }
            snapshots.push(Arc::clone(&snapshot));
        }
        Ok(snapshot)
    }

    /// Reads the detail columns `query` and the segments it refers to need.
    async fn prepare(&self, snapshot: &Snapshot, query: &Query) -> Result<(), StorageError> {
        let mut queries = vec![query];
        let mut seen = Vec::new();
        let mut i = 0;
        while i < queries.len() {
            for id in queries[i].segment_refs() {
                if !seen.contains(&id) {
                    seen.push(id);
                    if let Some(q) = snapshot.segments.get(&id) {
                        queries.push(q);
                    }
                }
            }
            i += 1;
        }
        for (kind, path) in snapshot.audience.missing_details(&queries) {
            let mut values = self
                .store
                .load_details(snapshot.site_id, &kind, &path)
                .await?;
            let wanted = snapshot.audience.event_count_of(&kind);
            values.truncate(wanted);
            if !snapshot.audience.add_details(&kind, path, values) {
                return Err(StorageError::ReadFailed(format!(
                    "event details of {kind:?} no longer line up with the snapshot"
                )));
            }
        }
        Ok(())
    }

    /// The members of `query` at `now`.
    pub async fn evaluate(
        &self,
        site_id: i64,
        query: &Query,
        now: i64,
    ) -> Result<Evaluation, LiveError> {
        if matches!(query, Query::Foreign) {
            return Err(EvalError::Foreign.into());
        }
        let snapshot = self.snapshot(site_id).await?;
        self.prepare(&snapshot, query).await?;
        let members = {
            let snapshot = Arc::clone(&snapshot);
            let query = query.clone();
            tokio::task::spawn_blocking(move || {
                eval::members(&snapshot.audience, &query, now, &snapshot.segments)
            })
            .await
            .map_err(|e| StorageError::ReadFailed(format!("evaluation task failed: {e}")))??
        };
        Ok(Evaluation { snapshot, members })
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
        if matches!(query, Query::Foreign) {
            return Err(EvalError::Foreign.into());
        }
        let snapshot = self.snapshot(site_id).await?;
        let Some(index) = snapshot.audience.index_of(subscriber_id) else {
            return Ok(None);
        };
        self.prepare(&snapshot, query).await?;
        Ok(Some(eval::explain(
            &snapshot.audience,
            query,
            now,
            &snapshot.segments,
            index,
        )?))
    }
}

/// Checks a query's segment references before it is saved as the query of
/// `saving` (`None` when creating): each must name a kept segment of the site
/// whose query is evaluable, and following them must never lead back to
/// `saving`. Each bad reference is pushed to `errors` at its JSON pointer
/// (`visitor_event_query/…/segment/member_of`).
pub async fn check_references(
    store: &dyn Store,
    site_id: i64,
    saving: Option<SegmentId>,
    query: &Query,
    errors: &mut FieldErrors,
) -> Result<(), StorageError> {
    let refs = query.segment_refs_at();
    if refs.is_empty() {
        return Ok(());
    }
    let kept: HashMap<i64, Option<Query>> = store
        .list_segments(site_id, Listing::Kept)
        .await?
        .into_iter()
        .map(|s| (s.id.0, crate::query::parse(s.query.as_str()).ok()))
        .collect();
    for (at, id) in refs {
        let message = match kept.get(&id) {
            None => format!("refers to segment {id}, which does not exist or is discarded"),
            Some(None | Some(Query::Foreign)) => {
                format!("refers to segment {id}, whose query is foreign and cannot be evaluated")
            }
            Some(Some(_)) if Some(id) == saving.map(|s| s.0) => {
                format!(
                    "refers to segment {id}, the segment being saved: a segment cannot contain itself"
                )
            }
            Some(Some(q)) => {
                let Some(saving) = saving else { continue };
                let Some(path) = path_to(&kept, q, saving.0, &mut vec![id]) else {
                    continue;
                };
                let chain: Vec<String> = std::iter::once(saving.0)
                    .chain(path)
                    .map(|s| s.to_string())
                    .collect();
                format!(
                    "refers to segment {id}, which leads back to this segment (cycle {})",
                    chain.join(" → ")
                )
            }
        };
        errors.push(format!("{QUERY_FIELD}{at}"), message);
    }
    Ok(())
}

/// A chain of references from `query` (reached via `trail`) to `target`.
fn path_to(
    kept: &HashMap<i64, Option<Query>>,
    query: &Query,
    target: i64,
    trail: &mut Vec<i64>,
) -> Option<Vec<i64>> {
    for id in query.segment_refs() {
        if id == target {
            let mut path = trail.clone();
            path.push(id);
            return Some(path);
        }
        if trail.contains(&id) || trail.len() > 64 {
            continue;
        }
        if let Some(Some(next)) = kept.get(&id) {
            trail.push(id);
            let found = path_to(kept, next, target, trail);
            trail.pop();
            if found.is_some() {
                return found;
            }
        }
    }
    None
}

/// The ids of kept segments whose queries refer to `id`.
pub async fn referrers(
    store: &dyn Store,
    site_id: i64,
    id: SegmentId,
) -> Result<Vec<i64>, StorageError> {
    Ok(store
        .list_segments(site_id, Listing::Kept)
        .await?
        .into_iter()
        .filter(|s| s.id != id)
        .filter(|s| {
            crate::query::parse(s.query.as_str())
                .ok()
                .is_some_and(|q| q.segment_refs().contains(&id.0))
        })
        .map(|s| s.id.0)
        .collect())
}
