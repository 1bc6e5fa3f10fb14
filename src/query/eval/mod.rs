//! Evaluation: a query tree against one site's audience, held in memory as
//! columns.
//!
//! [`Audience`] is a snapshot of a site: subscribers in id order (emails,
//! subscription, creation time), one bit set per tag, one column per field,
//! and per event type the subscriber and time of every event. Columns of event
//! details are added on demand, one per (type, path) a query reads, so memory
//! holds what queries use rather than every detail ever sent. The engine
//! ([`members`]) turns each condition into a bit set over the subscribers;
//! [`explain`] answers for one subscriber with the outcome of every
//! condition. Both are pure functions of the snapshot, the query and `now`:
//! keeping the snapshot current is the caller's job (see [`crate::live`]).

mod engine;
mod explain;
#[cfg(test)]
mod naive;
#[cfg(test)]
mod tests;

use super::ast::{DetailPath, Query};
use fixedbitset::FixedBitSet;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

pub use engine::{EvalError, Resolver, members};
pub use explain::{Explanation, Node, explain};

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

/// The events of one type, in the order they were stored.
#[derive(Debug, Default, Clone)]
pub struct EventColumn {
    /// Index of the subscriber (into the audience's subscriber columns).
    pub subscriber: Vec<u32>,
    /// When each happened, Unix ms.
    pub at: Vec<i64>,
}

/// A column of event details: one value per event of a type, in column order.
pub type DetailColumn = Arc<Vec<Val>>;

/// One site's audience, as of one instant.
#[derive(Debug, Default)]
pub struct Audience {
    /// Subscriber ids, ascending: the order of every subscriber column.
    pub ids: Vec<i64>,
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
    fields: HashMap<String, Vec<Val>>,
    /// Event type → its events.
    events: HashMap<String, EventColumn>,
    /// (type, path) → the detail of each event of the type, in column order.
    details: RwLock<HashMap<(String, DetailPath), DetailColumn>>,
    /// Field key → the time each subscriber's value names, if it is text
    /// that is a date or time; read once, when a query first compares it.
    instants: RwLock<HashMap<String, Arc<Vec<Option<i64>>>>>,
    /// The highest event id the snapshot has read (0 before any).
    pub events_through: i64,
}

/// Many strings in one buffer: fewer allocations, and a scan reads memory in
/// order.
#[derive(Debug, Default)]
pub struct Texts {
    bytes: String,
    ends: Vec<u32>,
}

impl Texts {
    fn push(&mut self, text: &str) {
        self.bytes.push_str(text);
        self.ends.push(self.bytes.len() as u32);
    }

    pub fn get(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.bytes[start..self.ends[i] as usize]
    }
}

impl Audience {
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

    fn tag(&self, name: &str) -> Option<&FixedBitSet> {
        self.tags.get(name)
    }

    fn field(&self, key: &str, index: usize) -> &Val {
        self.fields
            .get(key)
            .map_or(&Val::Missing, |column| &column[index])
    }

    /// The times a field's values name, per subscriber (parsed once).
    fn field_instants(&self, key: &str) -> Arc<Vec<Option<i64>>> {
        if let Some(column) = self
            .instants
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
        {
            return Arc::clone(column);
        }
        let column: Vec<Option<i64>> = match self.fields.get(key) {
            Some(values) => values
                .iter()
                .map(|v| match v {
                    Val::Text(t) => crate::query::parse::parse_instant(t),
                    _ => None,
                })
                .collect(),
            None => vec![None; self.len()],
        };
        let column = Arc::new(column);
        self.instants
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_owned(), Arc::clone(&column));
        column
    }

    /// The (type, path) detail columns a query needs that are not loaded yet.
    /// For an event test without a type, every type's column is needed.
    pub fn missing_details(&self, queries: &[&Query]) -> Vec<(String, DetailPath)> {
        let loaded = self.details.read().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for query in queries {
            let Query::Condition(c) = query else { continue };
            c.walk(&mut |c| {
                let super::Condition::Event(test) = c else {
                    return;
                };
                for path in test.paths() {
                    let kinds: Vec<&str> = match &test.kind {
                        Some(kind) if self.events.contains_key(kind) => vec![kind.as_str()],
                        Some(_) => vec![],
                        None => self.event_types().collect(),
                    };
                    for kind in kinds {
                        let key = (kind.to_owned(), path.clone());
                        if !loaded.contains_key(&key) && !out.contains(&key) {
                            out.push(key);
                        }
                    }
                }
            });
        }
        out
    }

    /// Adds a detail column: one value per event of `kind`, in column order.
    /// A column of the wrong length is refused (the data it came from is not
    /// this snapshot's).
    pub fn add_details(&self, kind: &str, path: DetailPath, values: Vec<Val>) -> bool {
        let expected = self.events.get(kind).map_or(0, |c| c.at.len());
        if values.len() != expected {
            return false;
        }
        self.details
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert((kind.to_owned(), path), Arc::new(values));
        true
    }

    fn details(&self, kind: &str, path: &DetailPath) -> Option<DetailColumn> {
        self.details
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(kind.to_owned(), path.clone()))
            .cloned()
    }
}

/// One subscriber as a loader hands it over.
#[derive(Debug, Clone)]
pub struct SubscriberRow {
    pub id: i64,
    pub email: String,
    pub subscribed: bool,
    pub created_at: i64,
    pub fields: serde_json::Map<String, serde_json::Value>,
}

/// Builds an [`Audience`]: subscribers first (in ascending id order), then
/// tags and events in any order.
#[derive(Debug, Default)]
pub struct AudienceBuilder {
    audience: Audience,
    subscribed: Vec<bool>,
    field_keys: HashMap<String, u32>,
    field_values: Vec<(u32, u32, Val)>,
    /// Subscriber index by `id - first id`, built once the subscribers are
    /// in: tags and events look their subscriber up millions of times.
    dense: Option<(i64, Vec<u32>)>,
    /// Detail columns taken over from an earlier snapshot, kept by
    /// [`AudienceBuilder::build`] only where no event of their type was added.
    carried: Vec<((String, DetailPath), DetailColumn)>,
    tag_keys: HashMap<String, u32>,
    tag_members: Vec<(u32, u32)>,
}

impl AudienceBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a subscriber; ids must come in ascending order.
    pub fn subscriber(&mut self, row: SubscriberRow) {
        self.dense = None;
        let a = &mut self.audience;
        debug_assert!(a.ids.last().is_none_or(|&last| last < row.id));
        let index = a.ids.len() as u32;
        a.ids.push(row.id);
        let lower = row.email.to_lowercase();
        let domain = match lower.rsplit_once('@') {
            Some((_, domain)) => match a.domains.get(domain) {
                Some(&id) => id,
                None => {
                    let id = a.domains.len() as u32;
                    a.domains.insert(domain.to_owned(), id);
                    id
                }
            },
            None => NOBODY,
        };
        a.domain_of.push(domain);
        a.emails_lower.push(&lower);
        a.created_at.push(row.created_at);
        self.subscribed.push(row.subscribed);
        for (key, value) in &row.fields {
            let key = match self.field_keys.get(key.as_str()) {
                Some(&k) => k,
                None => {
                    let k = self.field_keys.len() as u32;
                    self.field_keys.insert(key.clone(), k);
                    k
                }
            };
            self.field_values.push((key, index, Val::from_json(value)));
        }
    }

    /// The index of a subscriber id, or [`NOBODY`].
    fn lookup(&mut self, id: i64) -> u32 {
        let ids = &self.audience.ids;
        let (first, table) = self.dense.get_or_insert_with(|| {
            let first = ids.first().copied().unwrap_or(0);
            let span = ids.last().map_or(0, |&last| (last - first + 1) as usize);
            let mut table = vec![NOBODY; span];
            for (index, id) in ids.iter().enumerate() {
                table[(id - first) as usize] = index as u32;
            }
            (first, table)
        });
        usize::try_from(id - *first)
            .ok()
            .and_then(|offset| table.get(offset).copied())
            .unwrap_or(NOBODY)
    }

    /// Takes over the events (and detail columns) of an earlier snapshot of
    /// the same site, so that only events stored since need reading. Call
    /// after the subscribers are in. It works when the earlier snapshot's
    /// subscribers are the first ones of this one (subscribers are never
    /// deleted and new ones get higher ids, so their indexes stay put);
    /// otherwise nothing is taken and `false` says to read every event.
    pub fn continue_from(&mut self, earlier: &Audience) -> bool {
        let ids = &self.audience.ids;
        if earlier.ids.len() > ids.len() || earlier.ids[..] != ids[..earlier.ids.len()] {
            return false;
        }
        self.audience.events = earlier.events.clone();
        self.audience.events_through = earlier.events_through;
        self.carried = earlier
            .details
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(key, column)| (key.clone(), Arc::clone(column)))
            .collect();
        true
    }

    /// Records the highest event id read.
    pub fn events_through(&mut self, id: i64) {
        self.audience.events_through = self.audience.events_through.max(id);
    }

    /// Gives a subscriber (by id) a tag (by lowercase name).
    pub fn tag(&mut self, subscriber_id: i64, tag: &str) {
        let index = self.lookup(subscriber_id);
        if index != NOBODY {
            let tag = match self.tag_keys.get(tag) {
                Some(&t) => t,
                None => {
                    let t = self.tag_keys.len() as u32;
                    self.tag_keys.insert(tag.to_owned(), t);
                    t
                }
            };
            self.tag_members.push((tag, index));
        }
    }

    /// Adds an event; call in the order events were stored. An event of a
    /// subscriber not in the snapshot keeps its place in the column (so
    /// detail columns line up) but counts for nobody.
    pub fn event(&mut self, subscriber_id: i64, kind: &str, at: i64) {
        let index = self.lookup(subscriber_id);
        let events = &mut self.audience.events;
        if !events.contains_key(kind) {
            events.insert(kind.to_owned(), EventColumn::default());
        }
        let Some(column) = events.get_mut(kind) else {
            return;
        };
        column.subscriber.push(index);
        column.at.push(at);
    }

    pub fn build(mut self) -> Audience {
        let n = self.audience.ids.len();
        let mut subscribed = FixedBitSet::with_capacity(n);
        for (i, s) in self.subscribed.iter().enumerate() {
            subscribed.set(i, *s);
        }
        self.audience.subscribed = subscribed;
        {
            let mut details = self
                .audience
                .details
                .write()
                .unwrap_or_else(|e| e.into_inner());
            for ((kind, path), column) in self.carried {
                if column.len() == self.audience.event_count_of(&kind) {
                    details.insert((kind, path), column);
                }
            }
        }
        let mut columns: Vec<Vec<Val>> = (0..self.field_keys.len())
            .map(|_| vec![Val::Missing; n])
            .collect();
        for (key, index, value) in self.field_values {
            columns[key as usize][index as usize] = value;
        }
        let mut keys: Vec<(String, u32)> = self.field_keys.into_iter().collect();
        keys.sort_unstable_by_key(|(_, k)| *k);
        for ((key, _), column) in keys.into_iter().zip(columns) {
            self.audience.fields.insert(key, column);
        }
        let mut holders: Vec<FixedBitSet> = (0..self.tag_keys.len())
            .map(|_| FixedBitSet::with_capacity(n))
            .collect();
        for (tag, index) in self.tag_members {
            holders[tag as usize].insert(index as usize);
        }
        let mut names: Vec<(String, u32)> = self.tag_keys.into_iter().collect();
        names.sort_unstable_by_key(|(_, t)| *t);
        for ((name, _), set) in names.into_iter().zip(holders) {
            self.audience.tags.insert(name, set);
        }
        self.audience
    }
}
