//! The audience a segment selects: subscribers (with an email, field values,
//! tags and a subscription state) and the events they perform.
//!
//! Everything that changes a subscriber, whichever Bento endpoint it came
//! through (a tracked event, a command, a batch import, the CLI importer), is
//! turned into one [`SubscriberChange`]. What a change does to a subscriber
//! is decided in one place, [`apply`], for every storage backend and every
//! path through one (in bulk or one change at a time): a backend reads the
//! state it starts from and writes what it returns. So all follow the same
//! rules:
//!
//! - a subscriber is identified by email, unique per site ignoring case, and
//!   keeps a stable `uuid` (also across `change_email`);
//! - tag names are trimmed and compared ignoring case (the first spelling is
//!   kept); field keys are normalised by [`FieldKey::parse`];
//! - field values keep their JSON type; setting a field merges it into the
//!   subscriber's fields;
//! - the special event types (`$subscribe`, `$unsubscribe`, `$tag`,
//!   `$remove_tag`, `$update_fields`, `$purchase`) change the subscriber as
//!   [`event`] describes;
//! - no change may take a subscriber or a site over the caps of [`limits`]
//!   (fields and tags per subscriber, field keys and tags per site, the size
//!   of a field value and of an event's details): such a change is refused
//!   whole, and the other items of its batch are applied.

pub mod apply;
pub mod email;
pub mod event;
pub mod fold;
pub mod limits;
pub mod names;
pub mod text;

pub use email::Email;
pub use limits::Limits;
pub use names::{FieldKey, TagName};

use serde_json::Value;

/// Whether a change may create the subscriber it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    /// Create the subscriber when the email is unknown (events, imports).
    IfMissing,
    /// Fail when the email is unknown (`change_email`).
    Never,
}

/// A subscription state to move to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subscription {
    Subscribe,
    /// Unsubscribed as of this time.
    Unsubscribe(i64),
}

/// An event to record for the subscriber.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub kind: String,
    pub occurred_at: i64,
    /// The details object as compact JSON text, exactly as sent.
    pub details: String,
    /// `details.unique.key` of a `$purchase`: stored once per site.
    pub unique_key: Option<String>,
    /// `details.value.amount` and `currency` of a `$purchase`.
    pub amount: Option<f64>,
    pub currency: Option<String>,
}

/// Everything one request item does to one subscriber, applied all or nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriberChange {
    pub email: Email,
    pub create: Create,
    pub set_fields: Vec<(FieldKey, Value)>,
    pub remove_fields: Vec<FieldKey>,
    pub add_tags: Vec<TagName>,
    pub remove_tags: Vec<TagName>,
    pub subscription: Option<Subscription>,
    pub new_email: Option<Email>,
    pub event: Option<NewEvent>,
}

impl SubscriberChange {
    /// A change that only makes sure the subscriber exists.
    pub fn touch(email: Email) -> Self {
        Self {
            email,
            create: Create::IfMissing,
            set_fields: Vec::new(),
            remove_fields: Vec::new(),
            add_tags: Vec::new(),
            remove_tags: Vec::new(),
            subscription: None,
            new_email: None,
            event: None,
        }
    }

    /// Sets a field (merged into the subscriber's), refusing a value larger
    /// than [`limits::MAX_FIELD_VALUE_BYTES`].
    pub fn set_field(&mut self, key: FieldKey, value: Value) -> Result<(), String> {
        limits::check_field_value(key.as_str(), &value)?;
        self.set_fields.push((key, value));
        Ok(())
    }
}

/// What applying one change came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    /// A `$purchase` whose unique key was already stored: acknowledged, not
    /// stored again.
    Duplicate,
    /// Refused; nothing of this item was stored.
    Failed(String),
}

/// A subscriber as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscriber {
    pub id: i64,
    pub uuid: String,
    pub email: String,
    /// Field values, as a JSON object.
    pub fields: serde_json::Map<String, Value>,
    /// Ids of the subscriber's tags, ascending.
    pub tag_ids: Vec<i64>,
    pub unsubscribed_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub id: i64,
    pub name: String,
    pub created_at: i64,
    pub discarded_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub id: i64,
    pub key: String,
    pub name: String,
    pub created_at: i64,
}

/// Bento's site and segment counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, utoipa::ToSchema)]
pub struct AudienceCounts {
    /// Every subscriber, subscribed or not.
    pub user_count: i64,
    /// Subscribers who are subscribed.
    pub subscriber_count: i64,
    /// Subscribers who unsubscribed.
    pub unsubscriber_count: i64,
}
