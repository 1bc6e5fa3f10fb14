//! Following every watched segment's members, and writing each change with
//! its notifications (the outbox) in one transaction.
//!
//! [`Tracker::tick`] runs about every second on every server. For each
//! watch it reads the site's head and the segment; the members are worked
//! out again when the change log moved past the watch, the segment's
//! version or state changed, or [`RECHECK`] passed (relative time windows
//! move with the clock alone). The difference to the stored members becomes
//! notifications for every webhook watching the segment that wants them,
//! with a reason: `segment_discarded` / `segment_restored` when that is what
//! happened, `definition_changed` when the query was edited (old members
//! against new), `data` for a subscriber a write named since the watch's
//! position, `time_window` for one nobody wrote to. A watch left behind
//! the change log's trimmed entries (every server stopped for longer than
//! [`crate::live::LOG_RETENTION`]) loses nothing: its snapshot is read
//! again, and every difference from the members it last stored is
//! notified, with `data` (the log no longer tells who was written to).
//! The transition is written only if the watch is still where it was read,
//! so of several servers exactly one writes each change.

use super::{WebhookError, watch_of};
use crate::clock::Clock;
use crate::clock::format_ms;
use crate::live::{Live, LiveError};
use crate::segment::{Segment, SegmentId};
use crate::storage::progress::ReadProgress;
use crate::storage::webhooks::{Notification, Transition, Watch, WebhookEvent};
use crate::storage::{Position, StorageError, Store};
use serde_json::json;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// How often a watch is worked out again when nothing was written: the
/// longest a relative time window's move waits to be noticed.
pub const RECHECK: i64 = 60_000;

/// The members `segment_id` has at the time `clock` tells, with the watch
/// they make: the segment's version and state, and the position of the
/// snapshot.
///
/// The time is read once the snapshot holds every write committed before
/// it, and the members are worked out again if the snapshot moved while they
/// were: an event stored "now" by a write that committed after the time was
/// read would lie in the future of it, outside a window that ends at it.
/// `segment` is the segment as just read (`None` when it is gone).
pub async fn work_out(
    store: &Arc<dyn Store>,
    live: &Live,
    site_id: i64,
    segment_id: i64,
    segment: Option<&Segment>,
    clock: &dyn Clock,
) -> Result<(Watch, Vec<i64>), WebhookError> {
    let (version, kept) = state_of(segment);
    let parsed = segment
        .filter(|_| kept)
        .and_then(|s| corral_core::query::parse(s.query.as_str()).ok());
    let Some(query) = parsed else {
        let seq = store.site_head(site_id).await?.seq;
        let now = clock.now_ms();
        return Ok((watch_of(segment_id, seq, now, version, false), Vec::new()));
    };
    let mut tries = 0;
    loop {
        let before = live
            .resident(site_id)
            .await
            .map_err(LiveError::from)?
            .position
            .seq;
        let now = clock.now_ms();
        let evaluation = live.evaluate(site_id, &query, now).await?;
        let seq = evaluation.position().seq;
        tries += 1;
        if seq == before || tries == 5 {
            let members = evaluation.member_ids();
            return Ok((watch_of(segment_id, seq, now, version, true), members));
        }
    }
}

/// A segment's version, and whether it is kept (a segment gone is neither).
fn state_of(segment: Option<&Segment>) -> (i64, bool) {
    segment.map_or((0, false), |s| (s.version, s.is_kept()))
}

/// A watch's members as last read or written: (site, segment) → (the watch
/// they belong to, the members).
type Known = (Watch, Arc<Vec<i64>>);

/// Follows the watched segments of every site, from the live snapshots.
/// It keeps the members of each watch as it last read or wrote them, so
/// that a segment of many members is not read back from the database at
/// every change: they are used while the stored watch is still the one they
/// belong to.
pub struct Tracker {
    store: Arc<dyn Store>,
    members: Mutex<HashMap<(i64, i64), Known>>,
    /// Deliberately broken: leaves are not notified, so tests can show
    /// that the simulation notices.
    #[cfg(test)]
    broken: std::sync::atomic::AtomicBool,
}

impl Tracker {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            members: Mutex::default(),
            #[cfg(test)]
            broken: Default::default(),
        }
    }

    /// Makes this tracker forget to notify leaves.
    #[cfg(test)]
    pub(crate) fn break_leaves(&self) {
        self.broken
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Works out every watch that is due; returns how many transitions this
    /// server wrote.
    pub async fn tick(&self, live: &Live, clock: &dyn Clock) -> Result<usize, WebhookError> {
        let mut written = 0;
        let watches = self.store.watches().await?;
        self.members
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|key, _| watches.iter().any(|(s, w)| (*s, w.segment_id) == *key));
        for (site_id, watch) in watches {
            match self.follow(live, site_id, watch, clock).await {
                Ok(true) => written += 1,
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(site_id, segment_id = watch.segment_id, %error,
                        "a watched segment could not be worked out");
                }
            }
        }
        Ok(written)
    }

    /// The stored members of a watch: kept ones if they belong to it.
    async fn stored_members(
        &self,
        site_id: i64,
        watch: Watch,
    ) -> Result<Arc<Vec<i64>>, WebhookError> {
        let key = (site_id, watch.segment_id);
        if let Some((kept, members)) = self
            .members
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            && *kept == watch
        {
            return Ok(Arc::clone(members));
        }
        let members = Arc::new(self.store.watch_members(site_id, watch.segment_id).await?);
        self.remember(site_id, watch, Arc::clone(&members));
        Ok(members)
    }

    fn remember(&self, site_id: i64, watch: Watch, members: Arc<Vec<i64>>) {
        self.members
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((site_id, watch.segment_id), (watch, members));
    }

    async fn follow(
        &self,
        live: &Live,
        site_id: i64,
        from: Watch,
        clock: &dyn Clock,
    ) -> Result<bool, WebhookError> {
        let head = live.heads().current(site_id).await?;
        let segment = self
            .store
            .get_segment(site_id, SegmentId(from.segment_id))
            .await?;
        let (version, kept) = state_of(segment.as_ref());
        let due = from.seq < head.seq
            || from.version != version
            || from.kept != kept
            || clock.now_ms() - from.checked_at >= RECHECK;
        if !due {
            return Ok(false);
        }
        let (to, members) = work_out(
            &self.store,
            live,
            site_id,
            from.segment_id,
            segment.as_ref(),
            clock,
        )
        .await?;
        let now = to.checked_at;
        let before = self.stored_members(site_id, from).await?;
        #[allow(unused_mut)]
        let (added, mut removed) = difference(&before, &members);
        #[cfg(test)]
        if self.broken.load(std::sync::atomic::Ordering::Relaxed) {
            removed.clear();
        }
        let reason = |id: i64, written: &Option<HashSet<i64>>| -> &'static str {
            if from.kept && !to.kept {
                "segment_discarded"
            } else if !from.kept && to.kept {
                "segment_restored"
            } else if from.version != to.version {
                "definition_changed"
            } else if written.as_ref().is_none_or(|w| w.contains(&id)) {
                "data"
            } else {
                "time_window"
            }
        };
        let mut notifications = Vec::new();
        if !added.is_empty() || !removed.is_empty() {
            let written = self.written_since(site_id, from.seq, to.seq).await;
            let webhooks: Vec<_> = self
                .store
                .list_webhooks(site_id)
                .await?
                .into_iter()
                .filter(|w| w.segment_ids.contains(&from.segment_id))
                .collect();
            let name = segment.as_ref().map_or(String::new(), |s| s.name.clone());
            let changed: Vec<i64> = added.iter().chain(&removed).copied().collect();
            let people: BTreeMap<i64, (String, String)> = self
                .store
                .subscribers_by_ids(site_id, &changed)
                .await?
                .into_iter()
                .map(|s| (s.id, (s.uuid, s.email)))
                .collect();
            for webhook in &webhooks {
                for (event, ids) in [
                    (WebhookEvent::MemberAdded, &added),
                    (WebhookEvent::MemberRemoved, &removed),
                ] {
                    if !webhook.wants(event) {
                        continue;
                    }
                    for id in ids {
                        let Some((uuid, email)) = people.get(id) else {
                            continue;
                        };
                        let event_id = format!("evt_{}", crate::credentials::random_hex_id());
                        let body = json!({
                            "event_id": event_id,
                            "type": event.as_str(),
                            "occurred_at": format_ms(now),
                            "reason": reason(*id, &written),
                            "segment": {"id": from.segment_id.to_string(), "name": name},
                            "subscriber": {"uuid": uuid, "email": email},
                        });
                        notifications.push(Notification {
                            webhook_id: webhook.id,
                            event_id,
                            body: body.to_string(),
                        });
                    }
                }
            }
        }
        let transition = Transition {
            from,
            to,
            added,
            removed,
            notifications,
        };
        crate::crash_point!("tracker.before_transition");
        let written = self.store.commit_transition(site_id, &transition).await?;
        if written {
            self.remember(site_id, to, Arc::new(members));
        }
        Ok(written)
    }

    /// The subscribers a write named between two positions (their rows,
    /// tags or events); `None` when the log no longer tells.
    async fn written_since(&self, site_id: i64, from: i64, to: i64) -> Option<HashSet<i64>> {
        if from >= to {
            return Some(HashSet::new());
        }
        let since = Position {
            seq: from,
            events_through: 0,
        };
        match self
            .store
            .read_changes(site_id, since, &[], false, &ReadProgress::new())
            .await
        {
            Ok(changes) => Some(
                changes
                    .subscribers
                    .iter()
                    .map(|s| s.row.id)
                    .chain(changes.events.iter().map(|e| e.subscriber_id))
                    .collect(),
            ),
            Err(StorageError::Stale(_)) => None,
            Err(error) => {
                tracing::warn!(site_id, %error, "the change log could not be read for reasons");
                None
            }
        }
    }
}

/// (in `after` only, in `before` only), both ascending, from two ascending
/// lists.
fn difference(before: &[i64], after: &[i64]) -> (Vec<i64>, Vec<i64>) {
    let (mut added, mut removed) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < before.len() || j < after.len() {
        match (before.get(i), after.get(j)) {
            (Some(b), Some(a)) if b == a => {
                i += 1;
                j += 1;
            }
            (Some(b), Some(a)) if b < a => {
                removed.push(*b);
                i += 1;
            }
            (Some(_), Some(a)) => {
                added.push(*a);
                j += 1;
            }
            (Some(b), None) => {
                removed.push(*b);
                i += 1;
            }
            (None, Some(a)) => {
                added.push(*a);
                j += 1;
            }
            (None, None) => break,
        }
    }
    (added, removed)
}

#[cfg(test)]
mod tests {
    use super::difference;

    #[test]
    fn the_difference_of_two_sorted_lists() {
        assert_eq!(
            difference(&[1, 3, 5, 7], &[2, 3, 7, 8, 9]),
            (vec![2, 8, 9], vec![1, 5])
        );
        assert_eq!(difference(&[], &[1]), (vec![1], vec![]));
        assert_eq!(difference(&[4], &[]), (vec![], vec![4]));
    }
}
