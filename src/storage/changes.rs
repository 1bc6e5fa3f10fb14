//! The change log, as every backend keeps it: what each write transaction
//! changed, per site, at a position that grows in commit order.
//!
//! Every write path (audience batches and imports, segment saves, key
//! changes) records one [`LogEntry`] per site it touched, in the same
//! transaction as the change, under the next position of the site's head
//! ([`SiteHead`]). A reader that has seen everything up to position `P` asks
//! for the entries after `P` and never misses one: positions are taken from a
//! per-site counter row updated inside the writing transaction, so on a
//! database with several writers the row lock hands them out in commit order
//! (a sequence or an autoincrement id would not be: a transaction may take 10,
//! another 11 and commit first). A reader that finds a gap (entries trimmed,
//! or a database restored from an older backup) or an entry it cannot read
//! does not guess: it reads the site from scratch.
//!
//! [`ChangeFeed`] is what the live snapshots of [`crate::live`] and the HTTP
//! caches need from a backend: the heads, a cheap signal that anything may
//! have been committed, a whole site's audience at a position, and the state
//! of just what changed since a position.

use crate::segment::Segment;
use async_trait::async_trait;
use corral_core::columns::{ColumnsBuilder, SubscriberRecord, Val};
use corral_core::query::ast::DetailPath;
use serde::{Deserialize, Serialize};

use super::Result;
use super::progress::ReadProgress;

/// What one write transaction changed on one site. Stored as JSON; every
/// part is optional, so an entry names only what changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogEntry {
    /// Subscribers created, or whose row (email, fields, subscription) or
    /// tags changed, as ascending `[first, last]` id ranges.
    #[serde(default, skip_serializing_if = "IdRanges::is_empty")]
    pub subscribers: IdRanges,
    /// The ids of the events appended, `[first, last]`: the site's events in
    /// that range are exactly the ones this transaction stored (a writer
    /// holds the site's head from its first write to its commit, so no other
    /// transaction stores events of the site meanwhile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<(i64, i64)>,
    /// Segments created, changed, discarded or restored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segments: Vec<i64>,
    /// Whether a key pair was added or revoked.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keys: bool,
}

impl LogEntry {
    /// A segment saved, discarded or restored.
    pub fn segment(id: i64) -> Self {
        Self {
            segments: vec![id],
            ..Self::default()
        }
    }

    /// A key pair added or revoked.
    pub fn keys() -> Self {
        Self {
            keys: true,
            ..Self::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.subscribers.is_empty()
            && self.events.is_none()
            && self.segments.is_empty()
            && !self.keys
    }

    /// Records that events with ids in `[first, last]` were appended.
    pub fn add_events(&mut self, first: i64, last: i64) {
        if first > last {
            return;
        }
        self.events = Some(match self.events {
            Some((a, b)) => (a.min(first), b.max(last)),
            None => (first, last),
        });
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a log entry always serialises")
    }

    /// Reads a stored entry; an entry that is not exactly this shape is an
    /// error, never half-understood.
    pub fn from_json(text: &str) -> std::result::Result<Self, String> {
        if !text.trim_start().starts_with('{') {
            return Err("an entry is a JSON object".into());
        }
        let entry: Self = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if !entry.subscribers.is_well_formed() {
            return Err("subscriber ranges are not ascending and disjoint".into());
        }
        if entry.events.is_some_and(|(first, last)| first > last) {
            return Err("the event range is empty".into());
        }
        Ok(entry)
    }
}

/// A set of ids as ascending, disjoint `[first, last]` ranges: an import
/// that creates 100,000 subscribers writes one pair, not 100,000 ids.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IdRanges(Vec<(i64, i64)>);

impl IdRanges {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn from_ids(ids: impl IntoIterator<Item = i64>) -> Self {
        let mut ranges = Self::default();
        ranges.extend(ids);
        ranges
    }

    /// Adds ids (in any order).
    pub fn extend(&mut self, ids: impl IntoIterator<Item = i64>) {
        let mut all: Vec<i64> = self.ids().chain(ids).collect();
        all.sort_unstable();
        all.dedup();
        self.0 = Self::runs(&all);
    }

    /// The runs of ascending, unique ids.
    fn runs(all: &[i64]) -> Vec<(i64, i64)> {
        let mut ranges: Vec<(i64, i64)> = Vec::new();
        for &id in all {
            match ranges.last_mut() {
                Some((_, last)) if *last + 1 == id => *last = id,
                _ => ranges.push((id, id)),
            }
        }
        ranges
    }

    /// Every id, ascending.
    pub fn ids(&self) -> impl Iterator<Item = i64> + '_ {
        self.0.iter().flat_map(|&(first, last)| first..=last)
    }

    pub fn len(&self) -> usize {
        self.0.iter().map(|(a, b)| (b - a + 1) as usize).sum()
    }

    fn is_well_formed(&self) -> bool {
        self.0.iter().all(|(a, b)| a <= b) && self.0.windows(2).all(|w| w[0].1 < w[1].0)
    }
}

/// What the entries after a position name, read together: what a backend
/// then reads the current state of.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Named {
    /// Subscribers created or changed, ascending, once each.
    pub subscribers: Vec<i64>,
    /// The range of event ids appended, `[first, last]`.
    pub events: Option<(i64, i64)>,
    /// Whether any entry saved, discarded or restored a segment.
    pub segments: bool,
}

/// Reads the entries `(seq, JSON)` a backend found after position `since`
/// (in position order) for a site whose head is at `head`: what they name,
/// or [`super::StorageError::Stale`] when they do not reach from `since` to
/// `head` without a gap, or one cannot be read.
pub fn walk_entries(site_id: i64, since: i64, head: i64, rows: &[(i64, String)]) -> Result<Named> {
    use super::StorageError;
    if head < since {
        return Err(StorageError::Stale(format!(
            "the database is at position {head}, behind the snapshot's {since}"
        )));
    }
    let mut named = Named::default();
    let mut expected = since + 1;
    for (seq, text) in rows {
        if *seq != expected {
            break;
        }
        let entry = LogEntry::from_json(text).map_err(|e| {
            StorageError::Stale(format!("entry {seq} of site {site_id} cannot be read: {e}"))
        })?;
        named.subscribers.extend(entry.subscribers.ids());
        if let Some((first, last)) = entry.events {
            named.events = Some(
                named
                    .events
                    .map_or((first, last), |(a, b)| (a.min(first), b.max(last))),
            );
        }
        named.segments |= !entry.segments.is_empty();
        expected += 1;
    }
    if expected - 1 != head {
        return Err(StorageError::Stale(format!(
            "entries {expected} to {head} of site {site_id} are no longer kept"
        )));
    }
    named.subscribers.sort_unstable();
    named.subscribers.dedup();
    Ok(named)
}

/// A site's positions: of its newest entry, and of the newest entries that
/// changed its segments and its keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SiteHead {
    pub seq: i64,
    pub segments_seq: i64,
    pub keys_seq: i64,
}

/// A token that changes whenever anything may have been committed to the
/// database, by this process or another; equal tokens mean nothing was.
/// Reading it costs no round trip to the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signal(pub [u8; 48]);

/// Where a snapshot stands: the entry it reflects, and the highest event id
/// it holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Position {
    pub seq: i64,
    pub events_through: i64,
}

/// A site's whole audience and kept segments, read in one transaction. The
/// audience is handed over still to be built: building sorts every event
/// column, which the caller does off the async runtime.
#[derive(Debug)]
pub struct Loaded {
    pub seq: i64,
    pub audience: ColumnsBuilder,
    pub segments: Vec<Segment>,
}

/// A subscriber as it is now: the row and the lowercase names of its tags.
#[derive(Debug, Clone)]
pub struct ChangedSubscriber {
    pub row: SubscriberRecord,
    pub tags: Vec<String>,
}

/// An event appended since a position.
#[derive(Debug, Clone, PartialEq)]
pub struct AppendedEvent {
    pub id: i64,
    pub subscriber_id: i64,
    pub kind: String,
    pub at: i64,
}

/// What a snapshot at a position needs to reach the site's current state,
/// read in one transaction: the state of what changed, not of everything.
#[derive(Debug, Default)]
pub struct Changes {
    /// The position reached (the newest entry read).
    pub seq: i64,
    /// How many entries were read.
    pub entries: usize,
    /// The current state of every subscriber the entries name, in id order.
    pub subscribers: Vec<ChangedSubscriber>,
    /// The events appended, in the order they were stored.
    pub events: Vec<AppendedEvent>,
    /// For each detail column asked for, its value for each of `events` of
    /// its type, in order.
    pub details: Vec<((String, DetailPath), Vec<Val>)>,
    /// The site's kept segments, when the entries changed any (or when asked).
    pub segments: Option<Vec<Segment>>,
}

/// What live snapshots and caches need from a backend's change log.
#[async_trait]
pub trait ChangeFeed: Send + Sync + 'static {
    /// The current [`Signal`], or `None` when the backend has none (then
    /// every freshness check asks the database).
    fn change_signal(&self) -> Option<Signal>;

    /// The site's heads, reflecting every commit that completed before the
    /// call began.
    async fn site_head(&self, site_id: i64) -> Result<SiteHead>;

    /// The site's whole audience and kept segments, as of one position.
    /// Every statement reads the site's own rows only (through an index
    /// that leads with the site), so the read costs what the site holds,
    /// whatever else the database holds; `progress` says how far it is.
    async fn load_snapshot(&self, site_id: i64, progress: &ReadProgress) -> Result<Loaded>;

    /// The changes since `since`, with the new values of the detail columns
    /// `columns` (type, path). Fails with [`super::StorageError::Stale`] when
    /// the log no longer reaches back to `since`, or an entry cannot be read.
    async fn read_changes(
        &self,
        site_id: i64,
        since: Position,
        columns: &[(String, DetailPath)],
        with_segments: bool,
        progress: &ReadProgress,
    ) -> Result<Changes>;

    /// The value at `path` in the details of each event of type `kind`, in
    /// the order events were stored (so its start lines up with the columns
    /// of any snapshot read earlier: events are only ever appended).
    async fn load_details(
        &self,
        site_id: i64,
        kind: &str,
        path: &DetailPath,
        progress: &ReadProgress,
    ) -> Result<Vec<Val>>;

    /// The entry at a position, as stored (`at`, JSON), if it is still kept.
    async fn log_entry(&self, site_id: i64, seq: i64) -> Result<Option<(i64, String)>>;

    /// Deletes entries written before `before` (Unix ms), keeping each
    /// site's newest; returns how many were deleted.
    async fn trim_log(&self, before: i64) -> Result<u64>;

    /// A random id given to the database when it was created.
    async fn database_id(&self) -> Result<String>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_ranges_collapse_runs() {
        let r = IdRanges::from_ids([5, 1, 2, 3, 9, 3, 10]);
        assert_eq!(r.0, vec![(1, 3), (5, 5), (9, 10)]);
        assert_eq!(r.ids().collect::<Vec<_>>(), vec![1, 2, 3, 5, 9, 10]);
        assert_eq!(r.len(), 6);
    }

    #[test]
    fn entries_round_trip_and_name_only_what_changed() {
        let mut e = LogEntry::default();
        assert_eq!(e.to_json(), "{}");
        e.subscribers.extend([4, 5]);
        e.add_events(10, 12);
        e.add_events(7, 8);
        e.segments.push(3);
        assert_eq!(
            e.to_json(),
            r#"{"subscribers":[[4,5]],"events":[7,12],"segments":[3]}"#
        );
        assert_eq!(LogEntry::from_json(&e.to_json()).unwrap(), e);
    }

    #[test]
    fn walking_entries_names_what_changed_or_says_stale() {
        let rows = vec![
            (4, r#"{"subscribers":[[3,4]],"events":[10,12]}"#.to_owned()),
            (5, r#"{"segments":[2]}"#.to_owned()),
            (
                6,
                r#"{"subscribers":[[1,1],[4,4]],"events":[13,13]}"#.to_owned(),
            ),
        ];
        let named = walk_entries(1, 3, 6, &rows).unwrap();
        assert_eq!(
            named,
            Named {
                subscribers: vec![1, 3, 4],
                events: Some((10, 13)),
                segments: true,
            }
        );
        assert_eq!(walk_entries(1, 6, 6, &[]).unwrap(), Named::default());
        for (since, head, rows) in [
            (2, 6, &rows[..]),  // entry 3 trimmed
            (3, 7, &rows[..]),  // entry 7 missing
            (3, 2, &rows[..0]), // the database behind the snapshot
        ] {
            assert!(
                matches!(
                    walk_entries(1, since, head, rows),
                    Err(super::super::StorageError::Stale(_))
                ),
                "{since} {head}"
            );
        }
        let unreadable = [(4, "{\"subscribers\":7}".to_owned())];
        assert!(walk_entries(1, 3, 4, &unreadable).is_err());
    }

    #[test]
    fn unreadable_entries_are_refused() {
        for text in [
            "",
            "[]",
            r#"{"subscriber":[[1,2]]}"#,
            r#"{"subscribers":[[3,2]]}"#,
            r#"{"subscribers":[[1,5],[4,9]]}"#,
            r#"{"events":[9,3]}"#,
            r#"{"keys":"yes"}"#,
        ] {
            assert!(LogEntry::from_json(text).is_err(), "{text}");
        }
    }
}
