//! The columnar audience: one site's subscribers and events held in memory
//! as columns, the form every segment is evaluated over ([`crate::engine`]).
//!
//! [`Columns`] is a snapshot of a site: subscribers in id order (uuids,
//! emails, subscription, creation time), one bit set per tag, one column per
//! field, and per event type the subscriber and time of every event. Columns of
//! event details are added on demand, one per (type, path) a query reads, so
//! memory holds what queries use rather than every detail ever sent. A
//! loader fills a [`ColumnsBuilder`] with [`SubscriberRecord`]s, tags and
//! events ([`builder`]); the change log then brings the columns forward in
//! place ([`Columns::put_subscriber`], [`Columns::push_event`]), and
//! [`persist`] writes and reads them as a checkpoint.
//!
//! # Design, and why
//!
//! - **Columns, appendable.** Every column grows at its end and changes in
//!   place, so the change log can bring a snapshot forward without a copy;
//!   subscribers keep their index for the snapshot's life (new ones get
//!   higher ids).
//! - **Fields dictionary-encoded** ([`FieldColumn`]): each distinct value
//!   once, a four-byte code per subscriber, so a field test is decided per
//!   distinct value and read off per subscriber from a table; text that
//!   differs only in case is one value.
//! - **Events in time order, in blocks** ([`EventColumn`]): a snapshot read
//!   whole sorts each type's events by time; each block of 4,096 knows its
//!   earliest and latest time, so a window reads only the blocks it meets.
//!   Events brought in later are appended (real events arrive nearly in
//!   time order); detail columns follow through each event's storage rank.

pub mod builder;
mod events;
mod field;
pub mod persist;
mod texts;
mod uuids;

pub use builder::{ColumnsBuilder, SubscriberRecord};
pub use events::EventColumn;
pub use field::FieldColumn;
pub use texts::Texts;
pub use uuids::{MAX_SALTS, Uuids};

use crate::query::ast::DetailPath;
use fixedbitset::FixedBitSet;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// A value as queries see it: a field of a subscriber, or a detail of an event.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Val {
    #[default]
    Missing,
    Null,
    Bool(bool),
    Number(f64),
    /// Lowercase: every text comparison ignores case.
    Text(Box<str>),
    /// An object or a list: there, but no operator but `exists` applies.
    Other,
}

impl Val {
    pub fn from_json(value: &serde_json::Value) -> Self {
        use serde_json::Value as J;
        match value {
            J::Null => Self::Null,
            J::Bool(b) => Self::Bool(*b),
            J::Number(n) => n.as_f64().map_or(Self::Other, Self::Number),
            J::String(s) => Self::Text(s.to_lowercase().into()),
            J::Array(_) | J::Object(_) => Self::Other,
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Self::Missing | Self::Null => J::Null,
            Self::Bool(b) => J::Bool(*b),
            Self::Number(n) => serde_json::Number::from_f64(*n).map_or(J::Null, J::Number),
            Self::Text(t) => J::String(t.to_string()),
            Self::Other => J::String("(object or list)".to_owned()),
        }
    }
}

/// The subscriber index of an event whose subscriber is not in the snapshot.
pub const NOBODY: u32 = u32::MAX;

/// A column of event details: one value per event of a type, in column order.
pub type DetailColumn = Arc<Vec<Val>>;

/// One site's audience, as of one instant.
#[derive(Debug, Default)]
pub struct Columns {
    /// Subscriber ids, ascending: the order of every subscriber column.
    pub ids: Vec<i64>,
    /// Public uuids, and the buckets of stable samples.
    pub(crate) uuids: Uuids,
    /// Lowercase emails, for text tests, end to end in one buffer.
    emails_lower: Texts,
    /// The domain of each lowercase email (the part after the last `@`), as
    /// an index into `domains`; [`NOBODY`] for none.
    domain_of: Vec<u32>,
    domains: HashMap<String, u32>,
    pub subscribed: FixedBitSet,
    pub created_at: Vec<i64>,
    /// Lowercase tag name → its holders.
    tags: HashMap<String, FixedBitSet>,
    /// Field key → value per subscriber.
    pub(crate) fields: HashMap<String, FieldColumn>,
    /// Event type → its events.
    pub(crate) events: HashMap<String, EventColumn>,
    /// (type, path) → the detail of each event of the type, in column order.
    details: RwLock<HashMap<(String, DetailPath), DetailColumn>>,
    /// Field key → the time each of its distinct values names (by code),
    /// if it is text that is a date or time; read when a query first
    /// compares it, and for values added since when one next does.
    instants: RwLock<HashMap<String, Arc<Vec<Option<i64>>>>>,
    /// The highest event id the snapshot has read (0 before any).
    pub events_through: i64,
}

/// A change [`Columns`] cannot take in place: read the site again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NeedsReload(pub String);

impl Columns {
    /// The public uuid of the subscriber at `index` (written into `buf`
    /// when it is in Corral's form, 32 lowercase hex digits).
    pub fn uuid<'a>(&'a self, index: usize, buf: &'a mut [u8; 32]) -> &'a str {
        self.uuids.get(index, buf)
    }

    /// The lowercase email of the subscriber at `index`.
    pub fn email_lower(&self, index: usize) -> &str {
        self.emails_lower.get(index)
    }

    /// The index of an email domain (lowercase), if any subscriber has it.
    pub fn domain_id(&self, domain: &str) -> Option<u32> {
        self.domains.get(domain).copied()
    }

    pub fn domain_of(&self, index: usize) -> u32 {
        self.domain_of[index]
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The index of a subscriber id, if the subscriber is in the snapshot.
    pub fn index_of(&self, id: i64) -> Option<usize> {
        self.ids.binary_search(&id).ok()
    }

    pub fn event_types(&self) -> impl Iterator<Item = &str> {
        self.events.keys().map(String::as_str)
    }

    /// How many events of one type the snapshot holds.
    pub fn event_count_of(&self, kind: &str) -> usize {
        self.events.get(kind).map_or(0, |c| c.at.len())
    }

    pub fn event_count(&self) -> usize {
        self.events.values().map(|c| c.at.len()).sum()
    }

    pub(crate) fn tag(&self, name: &str) -> Option<&FixedBitSet> {
        self.tags.get(name)
    }

    pub(crate) fn field(&self, key: &str, index: usize) -> &Val {
        self.fields
            .get(key)
            .map_or(&Val::Missing, |column| column.get(index))
    }

    /// The times a field's distinct values name, by code (each parsed once
    /// per snapshot).
    pub(crate) fn field_instants(&self, key: &str) -> Arc<Vec<Option<i64>>> {
        let Some(column) = self.fields.get(key) else {
            return Arc::new(vec![None]);
        };
        let values = column.values();
        if let Some(known) = self
            .instants
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            && known.len() == values.len()
        {
            return Arc::clone(known);
        }
        let mut instants = self.instants.write().unwrap_or_else(|e| e.into_inner());
        let known = instants
            .entry(key.to_owned())
            .or_insert_with(|| Arc::new(Vec::new()));
        if known.len() < values.len() {
            let from = known.len();
            Arc::make_mut(known).extend(values[from..].iter().map(|v| match v {
                Val::Text(t) => crate::query::parse::parse_instant(t),
                _ => None,
            }));
        }
        Arc::clone(known)
    }

    /// Adds a detail column: one value per event of `kind`, in storage
    /// order (the order the database gives them), kept in the event
    /// column's order. A column of the wrong length is refused (the data it
    /// came from is not this snapshot's).
    pub fn add_details(&self, kind: &str, path: DetailPath, values: Vec<Val>) -> bool {
        let Some(column) = self.events.get(kind) else {
            return values.is_empty();
        };
        if values.len() != column.len() {
            return false;
        }
        let values = column.in_column_order(values);
        self.details
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert((kind.to_owned(), path), Arc::new(values));
        true
    }

    /// The (type, path) of every detail column loaded.
    pub fn detail_columns(&self) -> Vec<(String, DetailPath)> {
        self.details
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    /// The index of an email domain, added if new.
    fn domain_index(&mut self, email_lower: &str) -> u32 {
        match email_lower.rsplit_once('@') {
            Some((_, domain)) => match self.domains.get(domain) {
                Some(&id) => id,
                None => {
                    let id = self.domains.len() as u32;
                    self.domains.insert(domain.to_owned(), id);
                    id
                }
            },
            None => NOBODY,
        }
    }

    /// Sets a subscriber's state as it is now: the subscriber with this id,
    /// or a new one when the id is above every id held (ids are handed out
    /// in ascending order, so new subscribers always come last and every
    /// index stays put). A new id below the highest held cannot be placed
    /// without moving every index after it.
    pub fn put_subscriber(
        &mut self,
        row: &SubscriberRecord,
        tags: &[String],
    ) -> Result<(), NeedsReload> {
        let index = match self.index_of(row.id) {
            Some(index) => index,
            None if self.ids.last().is_none_or(|&last| last < row.id) => self.push_subscriber(row),
            None => {
                return Err(NeedsReload(format!(
                    "subscriber {} is new but not the newest ({} is held)",
                    row.id,
                    self.ids.last().copied().unwrap_or_default()
                )));
            }
        };
        self.uuids.set(index, &row.uuid);
        let lower = row.email.to_lowercase();
        self.domain_of[index] = self.domain_index(&lower);
        self.emails_lower.replace(index, &lower);
        self.subscribed.set(index, row.subscribed);
        self.created_at[index] = row.created_at;
        for column in self.fields.values_mut() {
            column.set(index, Val::Missing);
        }
        let n = self.len();
        for (key, value) in &row.fields {
            self.fields
                .entry(key.clone())
                .or_insert_with(|| FieldColumn::missing(n))
                .set(index, Val::from_json(value));
        }
        for holders in self.tags.values_mut() {
            holders.set(index, false);
        }
        for name in tags {
            self.tags
                .entry(name.clone())
                .or_insert_with(|| FixedBitSet::with_capacity(n))
                .insert(index);
        }
        Ok(())
    }

    /// Appends a subscriber with nothing set yet; returns its index.
    fn push_subscriber(&mut self, row: &SubscriberRecord) -> usize {
        let index = self.ids.len();
        self.ids.push(row.id);
        self.uuids.push(&row.uuid);
        self.emails_lower.push("");
        self.domain_of.push(NOBODY);
        self.created_at.push(row.created_at);
        let n = index + 1;
        self.subscribed.grow(n);
        for column in self.fields.values_mut() {
            column.push(Val::Missing);
        }
        for column in self
            .instants
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .values_mut()
        {
            Arc::make_mut(column).push(None);
        }
        for holders in self.tags.values_mut() {
            holders.grow(n);
        }
        index
    }

    /// Appends an event (events come in the order they were stored). An
    /// event of a subscriber not held counts for nobody.
    pub fn push_event(&mut self, subscriber_id: i64, kind: &str, at: i64) {
        let index = self.index_of(subscriber_id).map_or(NOBODY, |i| i as u32);
        if !self.events.contains_key(kind) {
            self.events.insert(kind.to_owned(), EventColumn::default());
        }
        if let Some(column) = self.events.get_mut(kind) {
            column.push(index, at);
        }
    }

    /// Appends values to a loaded detail column (one per event of its type
    /// appended since it last lined up with them).
    pub fn extend_details(&mut self, kind: &str, path: &DetailPath, values: Vec<Val>) {
        let details = self.details.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(column) = details.get_mut(&(kind.to_owned(), path.clone())) {
            Arc::make_mut(column).extend(values);
        }
    }

    /// Drops the detail columns that no longer have one value per event of
    /// their type (they are read again when a query needs them).
    pub fn drop_unaligned_details(&mut self) -> usize {
        let events = &self.events;
        let details = self.details.get_mut().unwrap_or_else(|e| e.into_inner());
        let before = details.len();
        details
            .retain(|(kind, _), column| column.len() == events.get(kind).map_or(0, |c| c.at.len()));
        before - details.len()
    }

    pub(crate) fn details(&self, kind: &str, path: &DetailPath) -> Option<DetailColumn> {
        self.details
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(kind.to_owned(), path.clone()))
            .cloned()
    }
}

/// Everything an audience holds, in a form two audiences compare by: what a
/// snapshot brought forward by the change log must equal, against one read
/// from scratch.
#[cfg(any(test, feature = "testing"))]
pub type CanonicalSubscriber = (
    i64,
    String,
    String,
    Option<String>,
    bool,
    i64,
    std::collections::BTreeMap<String, Val>,
    Vec<String>,
);

#[cfg(any(test, feature = "testing"))]
#[derive(Debug, PartialEq)]
pub struct Canonical {
    /// Per subscriber: id, uuid, lowercase email, domain, subscribed, created,
    /// fields (present ones), tags.
    pub subscribers: Vec<CanonicalSubscriber>,
    /// Per type: (subscriber id, time) of each event, in stored order.
    pub events: std::collections::BTreeMap<String, Vec<(Option<i64>, i64)>>,
    pub details: std::collections::BTreeMap<(String, String), Vec<Val>>,
    pub events_through: i64,
}

#[cfg(any(test, feature = "testing"))]
impl Columns {
    pub fn canonical(&self) -> Canonical {
        let domains: HashMap<u32, &String> = self.domains.iter().map(|(d, i)| (*i, d)).collect();
        let subscribers = (0..self.len())
            .map(|i| {
                let fields = self
                    .fields
                    .iter()
                    .filter(|(_, c)| *c.get(i) != Val::Missing)
                    .map(|(k, c)| (k.clone(), c.get(i).clone()))
                    .collect();
                let mut tags: Vec<String> = self
                    .tags
                    .iter()
                    .filter(|(_, set)| set.contains(i))
                    .map(|(t, _)| t.clone())
                    .collect();
                tags.sort();
                (
                    self.ids[i],
                    self.uuid(i, &mut [0; 32]).to_owned(),
                    self.email_lower(i).to_owned(),
                    domains.get(&self.domain_of[i]).map(|d| (*d).clone()),
                    self.subscribed.contains(i),
                    self.created_at[i],
                    fields,
                    tags,
                )
            })
            .collect();
        // In storage order: a snapshot brought forward and one read whole
        // may keep their events in different orders.
        let events = self
            .events
            .iter()
            .map(|(kind, c)| {
                let rows = c
                    .storage_order()
                    .into_iter()
                    .map(|p| {
                        let s = c.subscriber[p];
                        ((s != NOBODY).then(|| self.ids[s as usize]), c.at[p])
                    })
                    .collect();
                (kind.clone(), rows)
            })
            .collect();
        let details = self
            .details
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|((kind, path), c)| {
                let order = self.events.get(kind).map(EventColumn::storage_order);
                let values = order.map_or_else(Vec::new, |order| {
                    order.into_iter().map(|p| c[p].clone()).collect()
                });
                ((kind.clone(), path.dotted()), values)
            })
            .collect();
        Canonical {
            subscribers,
            events,
            details,
            events_through: self.events_through,
        }
    }
}
