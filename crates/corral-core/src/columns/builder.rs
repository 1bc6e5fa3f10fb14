//! Building [`Columns`] from what a loader reads: subscribers first, in
//! ascending id order, then tags and events in any order.

use super::{Columns, EventColumn, FieldColumn, NOBODY, Val};
use fixedbitset::FixedBitSet;
use std::collections::HashMap;

/// One subscriber as a loader hands it over.
#[derive(Debug, Clone)]
pub struct SubscriberRecord {
    pub id: i64,
    /// The public uuid, as stored.
    pub uuid: String,
    pub email: String,
    pub subscribed: bool,
    pub created_at: i64,
    pub fields: serde_json::Map<String, serde_json::Value>,
}

/// Builds an [`Columns`]: subscribers first (in ascending id order), then
/// tags and events in any order.
#[derive(Debug, Default)]
pub struct ColumnsBuilder {
    audience: Columns,
    subscribed: Vec<bool>,
    /// Subscriber index by `id - first id`, built once the subscribers are
    /// in: tags and events look their subscriber up millions of times. Empty
    /// when the site's ids are spread too thinly for a table (other sites
    /// wrote in between): then a binary search over the ids.
    dense: Option<(i64, Vec<u32>)>,
    tag_keys: HashMap<String, u32>,
    tag_members: Vec<(u32, u32)>,
}

impl ColumnsBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// A subscribed subscriber `id@x.io` whose uuid is its id in 32 hex
    /// digits, created at 0, without fields: the audience of tests about
    /// events.
    #[cfg(any(test, feature = "testing"))]
    pub fn plain_subscriber(&mut self, id: i64) {
        self.subscriber(SubscriberRecord {
            id,
            uuid: format!("{id:032x}"),
            email: format!("{id}@x.io"),
            subscribed: true,
            created_at: 0,
            fields: Default::default(),
        });
    }

    /// Adds a subscriber; ids must come in ascending order.
    pub fn subscriber(&mut self, row: SubscriberRecord) {
        self.dense = None;
        let a = &mut self.audience;
        debug_assert!(a.ids.last().is_none_or(|&last| last < row.id));
        let index = a.ids.len() as u32;
        a.ids.push(row.id);
        a.uuids.push(&row.uuid);
        let lower = row.email.to_lowercase();
        let domain = a.domain_index(&lower);
        a.domain_of.push(domain);
        a.emails_lower.push(&lower);
        a.created_at.push(row.created_at);
        self.subscribed.push(row.subscribed);
        for (key, value) in &row.fields {
            let column = match a.fields.get_mut(key.as_str()) {
                Some(column) => column,
                None => a
                    .fields
                    .entry(key.clone())
                    .or_insert_with(|| FieldColumn::missing(0)),
            };
            column.set_growing(index as usize, Val::from_json(value));
        }
    }

    /// The index of a subscriber id, or [`NOBODY`].
    fn lookup(&mut self, id: i64) -> u32 {
        let ids = &self.audience.ids;
        let (first, table) = self.dense.get_or_insert_with(|| {
            let first = ids.first().copied().unwrap_or(0);
            let span = ids.last().map_or(0, |&last| (last - first + 1) as usize);
            // A table costs 4 bytes an id of the span: not for 100
            // subscribers among another site's 10 million.
            if span > 4 * ids.len() + 4096 {
                return (first, Vec::new());
            }
            let mut table = vec![NOBODY; span];
            for (index, id) in ids.iter().enumerate() {
                table[(id - first) as usize] = index as u32;
            }
            (first, table)
        });
        if table.is_empty() {
            return ids.binary_search(&id).map_or(NOBODY, |index| index as u32);
        }
        usize::try_from(id - *first)
            .ok()
            .and_then(|offset| table.get(offset).copied())
            .unwrap_or(NOBODY)
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
        column.push(index, at);
    }

    pub fn build(mut self) -> Columns {
        let n = self.audience.ids.len();
        let mut subscribed = FixedBitSet::with_capacity(n);
        for (i, s) in self.subscribed.iter().enumerate() {
            subscribed.set(i, *s);
        }
        self.audience.subscribed = subscribed;
        for column in self.audience.fields.values_mut() {
            column.pad(n);
        }
        // Time order, so that windows skip whole blocks.
        for column in self.audience.events.values_mut() {
            column.sort_by_time();
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
