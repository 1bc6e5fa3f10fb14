//! What membership-change webhooks keep in the database, as every backend
//! keeps it: the webhooks, how far each watched segment's membership
//! journal has been turned into notifications ([`Watch`]), and the outbox
//! of notifications waiting to be delivered ([`Delivery`]).
//!
//! The notifications of a run of transitions and the watch's move past them
//! are written in one transaction ([`WebhookStore::commit_transition`]),
//! and only if the watch is still where the caller read it: of several
//! servers following the same journal, one writes them and the others find
//! them written. So a crash can neither lose a notification nor send one
//! twice from the outbox's side.

use async_trait::async_trait;

use super::Result;
use super::actor::Actor;

/// What a webhook is told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WebhookEvent {
    MemberAdded,
    MemberRemoved,
}

impl WebhookEvent {
    pub const ALL: [Self; 2] = [Self::MemberAdded, Self::MemberRemoved];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::MemberAdded => "segment.member_added",
            Self::MemberRemoved => "segment.member_removed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == text)
    }
}

/// A webhook as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    pub id: i64,
    pub site_id: i64,
    pub url: String,
    /// Ascending, once each.
    pub segment_ids: Vec<i64>,
    /// Ascending, once each.
    pub events: Vec<WebhookEvent>,
    pub secret: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub disabled_at: Option<i64>,
    pub failing_since: Option<i64>,
}

impl Webhook {
    pub fn wants(&self, event: WebhookEvent) -> bool {
        self.events.contains(&event)
    }
}

/// What a new webhook is made of (checked by the service first).
#[derive(Debug, Clone)]
pub struct NewWebhook {
    pub url: String,
    pub segment_ids: Vec<i64>,
    pub events: Vec<WebhookEvent>,
    pub secret: String,
}

/// A change to a webhook: each `Some` replaces what is stored.
#[derive(Debug, Clone, Default)]
pub struct WebhookPatch {
    pub url: Option<String>,
    pub segment_ids: Option<Vec<i64>>,
    pub events: Option<Vec<WebhookEvent>>,
    /// `Some(false)` enables a webhook disabled after failing, `Some(true)`
    /// disables it.
    pub disabled: Option<bool>,
}

/// How far a watched segment's journal has been turned into
/// notifications: the instant and id of the last transition done (0 and 0
/// before any).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watch {
    pub segment_id: i64,
    pub after_at: i64,
    pub after_id: i64,
}

/// One notification for the outbox.
#[derive(Debug, Clone)]
pub struct Notification {
    pub webhook_id: i64,
    pub event_id: String,
    /// The JSON object sent.
    pub body: String,
}

/// A run of a watched segment's transitions turned into notifications, to
/// be written at once.
#[derive(Debug, Clone)]
pub struct Transition {
    /// The watch as read before the transitions were.
    pub from: Watch,
    /// The watch past the last of them.
    pub to: Watch,
    pub notifications: Vec<Notification>,
    /// When the notifications were made (they are due then).
    pub at: i64,
}

/// One notification in the outbox, with its delivery's state.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub id: i64,
    pub webhook_id: i64,
    pub event_id: String,
    pub body: String,
    pub created_at: i64,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub delivered_at: Option<i64>,
}

/// How one attempt to deliver a batch ended.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub at: i64,
    /// The receiver's status code, if it answered.
    pub status: Option<i64>,
    /// What went wrong, when it was not a 2xx.
    pub error: Option<String>,
    /// The batch was delivered (a 2xx in time).
    pub delivered: bool,
    /// When to try again, when not delivered.
    pub next_attempt_at: i64,
    /// Disable the webhook when it has been failing since before this.
    pub disable_if_failing_since: i64,
}

#[async_trait]
pub trait WebhookStore: Send + Sync + 'static {
    /// Creates a webhook, as `by`, and the watches of its segments that are
    /// not watched yet, from their journal's latest transition.
    async fn create_webhook(
        &self,
        site_id: i64,
        new: &NewWebhook,
        now: i64,
        by: &Actor,
    ) -> Result<Webhook>;
    async fn list_webhooks(&self, site_id: i64) -> Result<Vec<Webhook>>;
    async fn get_webhook(&self, site_id: i64, id: i64) -> Result<Option<Webhook>>;
    /// Changes a webhook, as `by`, watching newly named segments from their
    /// journal's latest transition and forgetting segments no webhook
    /// watches any more.
    async fn update_webhook(
        &self,
        site_id: i64,
        id: i64,
        patch: &WebhookPatch,
        now: i64,
        by: &Actor,
    ) -> Result<Webhook>;
    /// Deletes a webhook and its undelivered notifications, as `by`.
    async fn delete_webhook(&self, site_id: i64, id: i64, now: i64, by: &Actor) -> Result<Webhook>;

    /// Every site's watches.
    async fn watches(&self) -> Result<Vec<(i64, Watch)>>;
    /// Writes the notifications of a run of transitions, if the watch is
    /// still at `transition.from`; `false` (and nothing written) if not.
    async fn commit_transition(&self, site_id: i64, transition: &Transition) -> Result<bool>;

    /// Enabled webhooks whose oldest undelivered notification is due at
    /// `now` and that no server holds: (site, webhook).
    async fn due_webhooks(&self, now: i64) -> Result<Vec<(i64, i64)>>;
    /// Holds a webhook for delivery until `until`, if no one holds it.
    async fn lease_webhook(&self, site_id: i64, id: i64, now: i64, until: i64) -> Result<bool>;
    /// Up to `limit` undelivered notifications of a webhook, oldest first.
    async fn pending_deliveries(
        &self,
        site_id: i64,
        webhook_id: i64,
        limit: usize,
    ) -> Result<Vec<Delivery>>;
    /// Records an attempt at delivering `ids`, and releases the webhook.
    async fn record_attempt(
        &self,
        site_id: i64,
        webhook_id: i64,
        ids: &[i64],
        attempt: &Attempt,
    ) -> Result<()>;
    /// The newest `limit` notifications of a webhook, newest first.
    async fn recent_deliveries(
        &self,
        site_id: i64,
        webhook_id: i64,
        limit: usize,
    ) -> Result<Vec<Delivery>>;
    /// Makes an undelivered notification (and the ones after it) due now.
    async fn retry_delivery(
        &self,
        site_id: i64,
        webhook_id: i64,
        delivery_id: i64,
        now: i64,
    ) -> Result<Delivery>;
}

/// The ids in a JSON array of ids, as stored.
pub(super) fn ids_from_json(text: &str) -> Vec<i64> {
    serde_json::from_str(text).unwrap_or_default()
}

pub(super) fn events_from_json(text: &str) -> Vec<WebhookEvent> {
    let names: Vec<String> = serde_json::from_str(text).unwrap_or_default();
    names
        .iter()
        .filter_map(|n| WebhookEvent::parse(n))
        .collect()
}

pub(super) fn events_to_json(events: &[WebhookEvent]) -> String {
    serde_json::to_string(&events.iter().map(|e| e.as_str()).collect::<Vec<_>>())
        .expect("names serialise")
}

pub(super) fn ids_to_json(ids: &[i64]) -> String {
    serde_json::to_string(ids).expect("ids serialise")
}
