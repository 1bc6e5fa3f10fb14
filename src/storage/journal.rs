//! The membership journal, as every backend keeps it: each change of a kept
//! segment's members (a [`MemberChange`]: who, which segment, joined or left,
//! when and why), written in the transaction of the write that caused it.
//!
//! - **Data**: an audience write evaluates every journaled segment again for
//!   just the subscribers it touched, over their rows as the transaction
//!   sees them, and records each flip at the write's instant. Two writes
//!   10 ms apart give two transitions; nothing is left to a later pass.
//! - **Definitions**: a segment created, changed, discarded or restored is
//!   evaluated over the whole audience by an [`Evaluator`] (the live
//!   snapshot) while the segment write holds the site's write turn, so no
//!   audience write can commit in between, and the difference is recorded
//!   in the same transaction.
//! - **Time windows**: a sweep about once a minute per site, under the same
//!   turn, records who a relative window let in or out.
//!
//! A segment's history begins at a baseline that announces nobody: when it
//! is created, or, for segments older than the journal, when a server first
//! sweeps them. The journal's own view of who is in each segment is kept
//! per subscriber (`journal_members`), so that a write compares just the
//! subscribers it touched.

use corral_core::query::Query;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use super::Result;

/// Why a subscriber joined or left a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// A write changed the subscriber.
    Data,
    /// A relative time window moved past them.
    TimeWindow,
    /// The segment's definition (or one it refers to) changed.
    DefinitionChanged,
    SegmentDiscarded,
    SegmentRestored,
    /// Added or removed by hand (kept for hand-made includes and excludes).
    Manual,
}

impl Reason {
    pub const ALL: [Self; 6] = [
        Self::Data,
        Self::TimeWindow,
        Self::DefinitionChanged,
        Self::SegmentDiscarded,
        Self::SegmentRestored,
        Self::Manual,
    ];

    /// As the API and webhooks name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Data => "data",
            Self::TimeWindow => "time_window",
            Self::DefinitionChanged => "definition_changed",
            Self::SegmentDiscarded => "segment_discarded",
            Self::SegmentRestored => "segment_restored",
            Self::Manual => "manual",
        }
    }

    /// As stored.
    pub fn code(self) -> i16 {
        match self {
            Self::Data => 0,
            Self::TimeWindow => 1,
            Self::DefinitionChanged => 2,
            Self::SegmentDiscarded => 3,
            Self::SegmentRestored => 4,
            Self::Manual => 5,
        }
    }

    pub fn from_code(code: i16) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }
}

/// One change of membership as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberChange {
    pub id: i64,
    pub segment_id: i64,
    pub subscriber_id: i64,
    pub at: i64,
    pub added: bool,
    pub reason: Reason,
}

/// A transition with the subscriber it names, as the changes feed shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedChange {
    pub change: MemberChange,
    pub subscriber_uuid: String,
    pub email: String,
}

/// Where a segment's journal stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalInfo {
    /// When its history begins (`None`: no baseline taken yet).
    pub begins_at: Option<i64>,
    /// Its members now, as the journal has them.
    pub members: i64,
}

/// Joins and leaves of a segment in one UTC day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayCounts {
    pub day: i64,
    pub added: i64,
    pub removed: i64,
}

/// Works out the members of segments over a site's whole audience, as
/// committed: the live snapshot. Called while the caller holds the site's
/// write turn, so what is committed is the head. It never reads a whole
/// audience with the turn held: when the site is not in memory it answers
/// `None`, and what needed it is left for the next sweep, which reads the
/// audience first.
#[async_trait::async_trait]
pub trait Evaluator: Send + Sync {
    /// The members (ascending ids) of each segment of `which` at `now`;
    /// `segments` are every kept segment's query as the caller's
    /// transaction has them (references resolve to these). `None` when the
    /// site's audience is not in memory.
    async fn members(
        &self,
        site_id: i64,
        segments: &HashMap<i64, Arc<Query>>,
        which: &[i64],
        now: i64,
    ) -> Result<Option<HashMap<i64, Vec<i64>>>>;
}

/// A site's journaled members, per segment, as of a transition id and a
/// count of baselines: good while the site's journal has moved by nothing
/// but transitions after that id (which are applied to it).
pub(crate) struct SiteMembers {
    pub through: i64,
    pub baselines: i64,
    /// Ascending ids per segment.
    pub by_segment: HashMap<i64, Vec<i64>>,
}

/// How far apart a segment's membership checkpoints are, in its own
/// transitions: an eighth of its members (so that a checkpoint costs at most
/// about what the transitions since the last one do), and at least
/// `least`.
pub fn checkpoint_spacing(members: usize, least: usize) -> usize {
    (members / 8).max(least).max(1)
}

/// Ascending ids as a checkpoint stores them: LEB128 varints of the gaps
/// between them (the first from 0). A dense segment costs about a byte a
/// member.
pub fn encode_ids(ids: &[i64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ids.len() + 8);
    let mut last = 0i64;
    for &id in ids {
        let mut gap = id.wrapping_sub(last) as u64;
        last = id;
        loop {
            let byte = (gap & 0x7f) as u8;
            gap >>= 7;
            if gap == 0 {
                out.push(byte);
                break;
            }
            out.push(byte | 0x80);
        }
    }
    out
}

/// The ids [`encode_ids`] wrote; `None` when the bytes are cut short.
pub fn decode_ids(bytes: &[u8]) -> Option<Vec<i64>> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut last = 0i64;
    let mut gap = 0u64;
    let mut shift = 0u32;
    for &byte in bytes {
        if shift > 63 {
            return None;
        }
        gap |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            last = last.wrapping_add(gap as i64);
            out.push(last);
            gap = 0;
            shift = 0;
        } else {
            shift += 7;
        }
    }
    (shift == 0).then_some(out)
}

/// Members at an instant, held: (site, segment, instant) and them.
type HeldMembers = ((i64, i64, i64), Arc<Vec<i64>>);

/// What a store keeps for its journal: the evaluator, once the process has
/// one, parsed queries, and each site's members as last read.
#[derive(Default)]
pub struct Journal {
    evaluator: Mutex<Option<Weak<dyn Evaluator>>>,
    parsed: Mutex<HashMap<(i64, i64, i64), Arc<Query>>>,
    pub(crate) members: Mutex<HashMap<i64, SiteMembers>>,
    /// The members at a past instant last worked out: (site, segment,
    /// instant) and them, so that paging through them reads them once.
    members_at: Mutex<Option<HeldMembers>>,
    /// Per site, the latest transition's instant when its checkpoints were
    /// last looked at (nothing to look at again until it moves).
    pub(crate) checkpointed: Mutex<HashMap<i64, i64>>,
    /// The least spacing of checkpoints (see [`checkpoint_spacing`]);
    /// `0` stands for [`CHECKPOINT_LEAST`]. Tests make it small.
    pub(crate) checkpoint_least: std::sync::atomic::AtomicUsize,
    /// Deliberately broken: leaves caused by data are not recorded, so
    /// that tests can show the journal's property notices.
    #[cfg(test)]
    pub(crate) broken: std::sync::atomic::AtomicBool,
    /// Deliberately broken: checkpoints taken walking back forget the
    /// leaves they undo.
    #[cfg(test)]
    pub(crate) broken_checkpoints: std::sync::atomic::AtomicBool,
}

impl Journal {
    /// Sets the evaluator of definition changes and sweeps (the latest
    /// set is used, while it lives).
    pub fn set_evaluator(&self, evaluator: Weak<dyn Evaluator>) {
        *self.evaluator.lock().unwrap_or_else(|e| e.into_inner()) = Some(evaluator);
    }

    pub(crate) fn evaluator(&self) -> Option<Arc<dyn Evaluator>> {
        self.evaluator
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .and_then(Weak::upgrade)
    }

    pub(crate) fn members_at_held(
        &self,
        site: i64,
        segment: i64,
        at: i64,
    ) -> Option<Arc<Vec<i64>>> {
        let held = self.members_at.lock().unwrap_or_else(|e| e.into_inner());
        held.as_ref()
            .filter(|(key, _)| *key == (site, segment, at))
            .map(|(_, members)| Arc::clone(members))
    }

    pub(crate) fn hold_members_at(&self, site: i64, segment: i64, at: i64, members: Arc<Vec<i64>>) {
        *self.members_at.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(((site, segment, at), members));
    }

    /// A segment's query, parsed once per version; `None` when it is not a
    /// query of Corral's language.
    pub(crate) fn query(
        &self,
        site_id: i64,
        id: i64,
        version: i64,
        text: &str,
    ) -> Option<Arc<Query>> {
        let key = (site_id, id, version);
        let mut parsed = self.parsed.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(query) = parsed.get(&key) {
            return Some(Arc::clone(query)).filter(|q| !matches!(**q, Query::Foreign));
        }
        let query =
            Arc::new(corral_core::query::manual::parse_saved(text, id).unwrap_or(Query::Foreign));
        if parsed.len() > 10_000 {
            parsed.clear();
        }
        parsed.insert(key, Arc::clone(&query));
        Some(query).filter(|q| !matches!(**q, Query::Foreign))
    }
}

/// The least number of a segment's transitions between two checkpoints.
pub const CHECKPOINT_LEAST: usize = 4_096;

/// The first millisecond of the UTC day holding `at`.
pub fn day_of(at: i64) -> i64 {
    at.div_euclid(86_400_000) * 86_400_000
}

/// What the journal asks of a database, beside recording (which every
/// write does in its own transaction).
#[async_trait::async_trait]
pub trait JournalStore {
    /// Sets what evaluates whole audiences for definition changes and
    /// sweeps (the process's live snapshots).
    fn set_evaluator(&self, evaluator: Weak<dyn Evaluator>);
    /// The sites that have a kept segment.
    async fn journal_sites(&self) -> Result<Vec<i64>>;
    /// Whether a sweep of the site is due within `every` ms and would do
    /// anything (read without the site's write turn).
    async fn journal_due(&self, site_id: i64, now: i64, every: i64) -> Result<bool>;
    /// Sweeps the site's journal under its write turn: baselines and what
    /// was left for a server, and, unless some server did within `every`
    /// ms, claims the time windows' sweep and answers the segments whose
    /// windows are to be recorded ([`JournalStore::sweep_window`], a turn
    /// each, so that a writer waits behind one evaluation, not all). `None`
    /// when this process cannot evaluate the site (nothing was done).
    async fn sweep_journal(&self, site_id: i64, now: i64, every: i64) -> Result<Option<Vec<i64>>>;
    /// Records, under the site's write turn, who a segment's relative time
    /// window let in or out by `now` (and anything a sweep would do first).
    async fn sweep_window(&self, site_id: i64, segment_id: i64, now: i64) -> Result<()>;
    /// Where a segment's journal stands.
    async fn journal_info(&self, site_id: i64, segment_id: i64) -> Result<Option<JournalInfo>>;
    /// Up to `limit` transitions of a segment after `(at, id)`, in commit
    /// order.
    async fn journal_changes(
        &self,
        site_id: i64,
        segment_id: i64,
        after: (i64, i64),
        limit: usize,
    ) -> Result<Vec<NamedChange>>;
    /// Joins less leaves strictly after `at`.
    async fn journal_net_after(&self, site_id: i64, segment_id: i64, at: i64) -> Result<i64>;
    /// Daily counts of the days in `[from, until)`.
    async fn journal_days(
        &self,
        site_id: i64,
        segment_id: i64,
        from: i64,
        until: i64,
    ) -> Result<Vec<DayCounts>>;
    /// Counts per bucket of `width` ms from `from`, within `[from, until)`.
    async fn journal_buckets(
        &self,
        site_id: i64,
        segment_id: i64,
        from: i64,
        until: i64,
        width: i64,
    ) -> Result<Vec<(i64, i64, i64)>>;
    /// The members at `at`, ascending.
    async fn journal_members_at(
        &self,
        site_id: i64,
        segment_id: i64,
        at: i64,
    ) -> Result<Arc<Vec<i64>>>;
    /// A subscriber's latest transitions, newest first.
    async fn subscriber_transitions(
        &self,
        site_id: i64,
        subscriber_id: i64,
        limit: usize,
    ) -> Result<Vec<MemberChange>>;
    /// Deletes transitions older than `before` (of a segment a webhook
    /// watches, only those its watch has read); how many.
    async fn trim_journal(&self, before: i64) -> Result<u64>;
    /// Takes the membership checkpoints the site's journal lacks (after
    /// enough transitions since the newest, and back through history older
    /// than the oldest); how many it wrote. Reads on a reader and writes in
    /// one short transaction, never holding the site's write turn.
    async fn checkpoint_journal(&self, site_id: i64) -> Result<usize>;
    /// Sets the least spacing of checkpoints (tests make it small).
    #[cfg(test)]
    fn space_checkpoints(&self, least: usize);
    /// Makes this store's checkpoints forget the leaves they undo.
    #[cfg(test)]
    fn break_checkpoints(&self);
    /// Makes this store's journal forget leaves caused by data.
    #[cfg(test)]
    fn break_journal(&self);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_round_trip_their_codes_and_days_start_at_utc_midnight() {
        for reason in Reason::ALL {
            assert_eq!(Reason::from_code(reason.code()), Some(reason));
        }
        assert_eq!(Reason::from_code(9), None);
        assert_eq!(day_of(86_400_000 + 5), 86_400_000);
        assert_eq!(day_of(-1), -86_400_000);
    }

    #[test]
    fn checkpoint_ids_round_trip_and_cost_a_byte_a_dense_member() {
        let ids = [1, 2, 3, 130, 131, 20_000, 1 << 40, i64::MAX];
        let bytes = encode_ids(&ids);
        assert_eq!(decode_ids(&bytes).as_deref(), Some(&ids[..]));
        assert_eq!(encode_ids(&[]), Vec::<u8>::new());
        assert_eq!(decode_ids(&[]), Some(vec![]));
        let dense: Vec<i64> = (1..=10_000).collect();
        assert_eq!(encode_ids(&dense).len(), 10_000);
        // A varint cut in the middle is not read as ids.
        assert_eq!(decode_ids(&bytes[..bytes.len() - 1]), None);
        assert_eq!(checkpoint_spacing(800_000, 4_096), 100_000);
        assert_eq!(checkpoint_spacing(10, 4_096), 4_096);
        assert_eq!(checkpoint_spacing(0, 0), 1);
    }
}
