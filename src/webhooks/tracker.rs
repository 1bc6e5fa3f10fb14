//! Turning the membership journal into webhook notifications (the outbox).
//!
//! [`Tracker::tick`] runs about every half second on every server. For each
//! watched segment it reads the journal's transitions after the watch's
//! position ([`crate::storage::journal`]: every join and leave, recorded
//! when the write that caused it committed, with its reason), makes one
//! notification per transition for every webhook of the segment that wants
//! its type, and writes them with the watch's move past them in one
//! transaction, only if the watch is still where it was read: of several
//! servers, exactly one writes each run. So webhooks are as exact as the
//! journal: a subscriber who joins and leaves within a millisecond is told
//! of twice, in order, and a notification is the changes feed's object
//! (`GET /fetch/segments/{id}/changes`), with the same `event_id`.

use super::WebhookError;
use super::notification::{ChangeResource, change_event_id};
use crate::clock::Clock;
use crate::segment::SegmentId;
use crate::storage::Store;
use crate::storage::webhooks::{Notification, Transition, Watch, WebhookEvent};
use std::sync::Arc;

/// Transitions turned into notifications per watch and transaction.
pub const BATCH: usize = 1_000;

/// Follows the watched segments of every site, from the journal.
pub struct Tracker {
    store: Arc<dyn Store>,
    /// Deliberately broken: leaves are not notified, so tests can show
    /// that the simulation notices.
    #[cfg(test)]
    broken: std::sync::atomic::AtomicBool,
}

impl Tracker {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
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

    /// Turns every watch's new transitions into notifications; returns how
    /// many runs this server wrote.
    pub async fn tick(&self, clock: &dyn Clock) -> Result<usize, WebhookError> {
        let mut written = 0;
        for (site_id, mut watch) in self.store.watches().await? {
            loop {
                match self.follow(site_id, watch, clock).await {
                    Ok(Some(to)) => {
                        written += 1;
                        watch = to;
                    }
                    // Nothing new, or another server wrote it first (it
                    // goes on from there).
                    Ok(None) => break,
                    Err(error) => {
                        tracing::warn!(site_id, segment_id = watch.segment_id, %error,
                            "a watched segment's journal could not be followed");
                        break;
                    }
                }
            }
        }
        Ok(written)
    }

    /// Writes the notifications of the next run of the watch's transitions:
    /// the watch past them when written (there may be more), `None` when
    /// there was nothing new or another server moved the watch first.
    async fn follow(
        &self,
        site_id: i64,
        from: Watch,
        clock: &dyn Clock,
    ) -> Result<Option<Watch>, WebhookError> {
        let changes = self
            .store
            .journal_changes(
                site_id,
                from.segment_id,
                (from.after_at, from.after_id),
                BATCH,
            )
            .await?;
        let Some(last) = changes.last() else {
            return Ok(None);
        };
        let to = Watch {
            segment_id: from.segment_id,
            after_at: last.change.at,
            after_id: last.change.id,
        };
        let segment = self
            .store
            .get_segment(site_id, SegmentId(from.segment_id))
            .await?;
        let webhooks: Vec<_> = self
            .store
            .list_webhooks(site_id)
            .await?
            .into_iter()
            .filter(|w| w.segment_ids.contains(&from.segment_id))
            .collect();
        let mut notifications = Vec::new();
        if let Some(segment) = &segment {
            for change in &changes {
                let event = if change.change.added {
                    WebhookEvent::MemberAdded
                } else {
                    WebhookEvent::MemberRemoved
                };
                #[cfg(test)]
                if event == WebhookEvent::MemberRemoved
                    && self.broken.load(std::sync::atomic::Ordering::Relaxed)
                {
                    continue;
                }
                let body = serde_json::to_string(&ChangeResource::new(change, segment))
                    .expect("a notification serialises");
                for webhook in webhooks.iter().filter(|w| w.wants(event)) {
                    notifications.push(Notification {
                        webhook_id: webhook.id,
                        event_id: change_event_id(change.change.id),
                        body: body.clone(),
                    });
                }
            }
        }
        let transition = Transition {
            from,
            to,
            notifications,
            at: clock.now_ms(),
        };
        crate::crash_point!("tracker.before_transition");
        let written = self.store.commit_transition(site_id, &transition).await?;
        Ok(written.then_some(to))
    }
}
