//! A run of changes folded in memory: how every backend applies a batch in
//! bulk (what every import and every batch of events mostly consists of).
//!
//! Any change that may create its subscriber and changes no email
//! ([`can_bulk`]) can be refused only by the caps, so a backend can apply a
//! whole run of them with a handful of multi-row statements: it reads what
//! [`wanted`] names (each subscriber of the run by email key, its row only if
//! a change touches it, its tags only if one adds or removes tags), the
//! site's [`SiteCounts`] and which of the run's purchases are already stored;
//! then [`Fold::run`] applies every change in order with [`apply::apply`],
//! deciding each outcome; and the backend writes what the fold holds
//! (subscribers to create, rows changed, tags and field keys to register,
//! tag links, events). Order inside the run is kept exactly: two changes to
//! one subscriber apply one after the other, and the last word on a tag in
//! the run wins. A `$purchase` whose unique key is stored (or repeated in
//! the run) changes nothing. A refused change is folded into nothing: it
//! creates no subscriber, tag or field key.

use super::apply::{self, SiteCounts, SubscriberState, touches_row, touches_tags};
use super::{Create, Email, Limits, NewEvent, Outcome, SubscriberChange};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Whether a change can be applied in bulk: it may create its subscriber and
/// changes no email, so nothing but the caps can refuse it.
pub fn can_bulk(change: &SubscriberChange) -> bool {
    change.create == Create::IfMissing && change.new_email.is_none()
}

/// A subscriber a run names, and what must be read of it.
#[derive(Debug)]
pub struct Wanted<'a> {
    /// [`Email::key`].
    pub key: String,
    pub email: &'a Email,
    /// Its row (fields, subscription) is read: a change touches it.
    pub row: bool,
    /// Its tags are read: a change adds or removes tags.
    pub tags: bool,
}

/// Every subscriber `changes` name, once each in the order first named.
pub fn wanted<'a>(changes: &[&'a SubscriberChange]) -> Vec<Wanted<'a>> {
    let mut wanted: Vec<Wanted<'a>> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for change in changes {
        let key = change.email.key();
        match index.get(&key) {
            Some(&i) => {
                wanted[i].row |= touches_row(change);
                wanted[i].tags |= touches_tags(change);
            }
            None => {
                index.insert(key.clone(), wanted.len());
                wanted.push(Wanted {
                    key,
                    email: &change.email,
                    row: touches_row(change),
                    tags: touches_tags(change),
                });
            }
        }
    }
    wanted
}

/// One subscriber while a run is folded into it.
#[derive(Debug)]
pub struct Slot<'a> {
    /// `None` for a subscriber the site does not have yet: created after
    /// folding, and only if one of its changes was applied.
    pub id: Option<i64>,
    /// The email to create the subscriber with.
    pub email: &'a Email,
    /// As read: fields [`apply::Fields::Unread`] unless a change touches the
    /// row, tags `None` unless a change adds or removes tags.
    pub state: SubscriberState,
    /// Its row must be written again.
    pub changed: bool,
    /// Named by a change that was applied.
    pub used: bool,
    /// Created by this run.
    pub created: bool,
}

impl<'a> Slot<'a> {
    /// A slot for a subscriber the site does not have (yet).
    pub fn missing(email: &'a Email) -> Self {
        Self {
            id: None,
            email,
            state: SubscriberState::new(),
            changed: false,
            used: false,
            created: false,
        }
    }
}

/// A run's applied changes, folded in memory, ready to be written.
#[derive(Debug)]
pub struct Fold<'a> {
    pub slots: Vec<Slot<'a>>,
    by_email: HashMap<String, usize>,
    pub site: SiteCounts,
    /// Subscribers to create, in the order of their first applied change.
    pub to_create: Vec<usize>,
    /// (subscriber, tag key) → added (true) or removed (false): the last word.
    pub tag_ops: BTreeMap<(usize, String), bool>,
    /// Tags to create if new, by key (so created in key order), with their
    /// first added spelling.
    pub tags_added: BTreeMap<String, &'a str>,
    /// Field keys to register if new, as named (sorted and deduplicated by
    /// [`Fold::field_keys`]).
    field_keys: Vec<&'a str>,
    /// (subscriber, event) in the order applied.
    pub events: Vec<(usize, &'a NewEvent)>,
}

impl<'a> Fold<'a> {
    /// A fold over `slots`, one per entry of [`wanted`] in its order.
    pub fn new(wanted: &[Wanted<'a>], slots: Vec<Slot<'a>>, site: SiteCounts) -> Self {
        let by_email = wanted
            .iter()
            .enumerate()
            .map(|(i, w)| (w.key.clone(), i))
            .collect();
        Self {
            slots,
            by_email,
            site,
            to_create: Vec::new(),
            tag_ops: BTreeMap::new(),
            tags_added: BTreeMap::new(),
            field_keys: Vec::new(),
            events: Vec::new(),
        }
    }

    /// Folds every change of the run in order and says what became of each:
    /// a purchase in `stored` (type, unique key), or applied earlier in the
    /// run, is a duplicate; a change the caps refuse folds into nothing.
    pub fn run(
        &mut self,
        changes: &'a [SubscriberChange],
        stored: &HashSet<(String, String)>,
        limits: &Limits,
    ) -> Vec<Outcome> {
        let mut outcomes = Vec::with_capacity(changes.len());
        let mut seen = HashSet::new();
        for change in changes {
            let key = purchase(change);
            if key
                .as_ref()
                .is_some_and(|k| stored.contains(k) || seen.contains(k))
            {
                outcomes.push(Outcome::Duplicate);
                continue;
            }
            match self.apply(change, limits) {
                Ok(()) => {
                    seen.extend(key);
                    outcomes.push(Outcome::Applied);
                }
                Err(message) => outcomes.push(Outcome::Failed(message)),
            }
        }
        outcomes
    }

    /// Folds one change in, or refuses it (then nothing of it is folded).
    fn apply(&mut self, change: &'a SubscriberChange, limits: &Limits) -> Result<(), String> {
        let index = self.by_email[&change.email.key()];
        let slot = &mut self.slots[index];
        let effects = apply::apply(&mut slot.state, &mut self.site, change, limits)?;
        if slot.id.is_none() && !slot.used {
            // Created as its first applied change writes the email.
            slot.email = &change.email;
            self.to_create.push(index);
        }
        slot.used = true;
        slot.changed |= effects.changed;
        self.field_keys
            .extend(effects.field_keys.iter().map(|key| key.as_str()));
        for (key, add) in effects.tags {
            self.tag_ops.insert((index, key), add);
        }
        for (key, tag) in effects.new_tags {
            // Created with its first added spelling in the run.
            self.tags_added.entry(key).or_insert(tag.as_str());
        }
        if let Some(event) = &change.event {
            self.events.push((index, event));
        }
        Ok(())
    }

    /// Records the id a subscriber to create was given.
    pub fn created(&mut self, key: &str, id: i64) {
        let slot = &mut self.slots[self.by_email[key]];
        slot.id = Some(id);
        slot.created = true;
    }

    /// The id of a subscriber an applied change names (created by now).
    pub fn id(&self, index: usize) -> i64 {
        self.slots[index]
            .id
            .expect("every subscriber a folded change names is created")
    }

    /// The field keys to register if new: ascending, once each.
    pub fn field_keys(&self) -> Vec<&'a str> {
        let mut keys = self.field_keys.clone();
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    /// The ids of the subscribers created, or whose row or tags changed.
    pub fn touched(&self) -> impl Iterator<Item = i64> + '_ {
        self.slots
            .iter()
            .filter(|s| s.changed || s.created)
            .filter_map(|s| s.id)
    }

    /// The tag operations by subscriber id (all created by now).
    pub fn tag_ops_by_id(&self) -> BTreeMap<(i64, String), bool> {
        self.tag_ops
            .iter()
            .map(|((index, key), add)| ((self.id(*index), key.clone()), *add))
            .collect()
    }

    /// The events by subscriber id, in the order applied.
    pub fn events_by_id(&self) -> Vec<(i64, &'a NewEvent)> {
        self.events
            .iter()
            .map(|&(index, event)| (self.id(index), event))
            .collect()
    }
}

/// A purchase's (type, unique key), owned.
pub fn purchase(change: &SubscriberChange) -> Option<(String, String)> {
    apply::purchase_key(change).map(|(kind, key)| (kind.to_owned(), key.to_owned()))
}
