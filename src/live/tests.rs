//! Resident snapshots against the database: a snapshot brought forward by
//! the change log must equal one read from scratch after every write, whoever
//! wrote it, and the engine over it must agree with the naive evaluator over
//! the stored rows. Faults in the log (entries trimmed or unreadable) make it
//! read the site again, never answer wrong; checkpoints read back equal.

use super::*;
use crate::credentials::KeyPair;
use crate::segment::{Listing, NewSegment, SegmentName, SegmentPatch};
use crate::storage::actor::Actor;
use crate::storage::progress::ReadProgress;
use crate::storage::{AudienceStore, ChangeFeed, Precondition, SqliteStore, Store};
use corral_core::audience::{
    Create, Email, FieldKey, NewEvent, SubscriberChange, Subscription, TagName,
};
use corral_core::engine::cost::Budget;
use corral_core::engine::naive::{Happening, Person, World};
use corral_core::engine::testing::{KEYS, KINDS, NOW, TAGS, arb_condition, arb_time, arb_value};
use corral_core::query::ast::{Condition, DetailPath};
use corral_core::query::{Query, RawQuery};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::collections::HashMap;

const EMAILS: &[&str] = &[
    "a@x.io",
    "B@X.io",
    "c@y.com",
    "ünï@x.io",
    "d@sub.x.io",
    "e@y.com",
];

/// The databases the property runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Backend {
    Sqlite,
    Postgres,
}

/// Two stores on one fresh database of either backend (the second stands
/// for another process or server: its own connections and writer), with two
/// sites.
pub(super) struct Stores {
    pub(super) store: Arc<dyn Store>,
    pub(super) other: Arc<dyn Store>,
    pub(super) site: i64,
    pub(super) second_site: i64,
    /// The SQLite file's directory, kept while the stores live.
    _dir: Option<tempfile::TempDir>,
}

/// [`Stores`] on `backend`; `None` for PostgreSQL without a test cluster.
pub(super) async fn stores(backend: Backend) -> Option<Stores> {
    let (url, dir) = match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("live.db");
            (format!("sqlite://{}", path.display()), Some(dir))
        }
        Backend::Postgres => (crate::storage::testing::fresh_postgres().await?, None),
    };
    let store = crate::storage::open(&url).await.unwrap();
    let mut sites = Vec::new();
    for name in ["one", "two"] {
        let site = store
            .create_site(
                name,
                &format!("site-{name}"),
                &KeyPair::generate(),
                false,
                NOW,
            )
            .await
            .unwrap();
        sites.push(site.id);
    }
    let other = crate::storage::open(&url).await.unwrap();
    Some(Stores {
        store,
        other,
        site: sites[0],
        second_site: sites[1],
        _dir: dir,
    })
}

/// The site as the naive evaluator sees it, read through the store's own
/// copying interface (the same on either backend): every subscriber (tags
/// by lowercase name) and every event with its details, in stored order.
pub(super) async fn world_of(store: &dyn Store, site: i64) -> (Vec<Person>, Vec<Happening>) {
    use crate::storage::transfer::{Rows, Table};
    let mut reader = store.begin_read().await.unwrap();
    let mut rows = HashMap::new();
    for table in [
        Table::Subscribers,
        Table::Tags,
        Table::SubscriberTags,
        Table::Events,
    ] {
        let all = crate::storage::testing::all_rows(reader.as_mut(), table).await;
        rows.insert(table, all);
    }
    let tags: HashMap<i64, String> = rows[&Table::Tags]
        .iter()
        .flat_map(|r| match r {
            Rows::Tags(r) => r.iter().map(|t| (t.id, t.name_key.clone())).collect(),
            _ => Vec::new(),
        })
        .collect();
    let mut people: Vec<Person> = rows[&Table::Subscribers]
        .iter()
        .flat_map(|r| match r {
            Rows::Subscribers(r) => r.clone(),
            _ => Vec::new(),
        })
        .filter(|s| s.site_id == site)
        .map(|s| Person {
            id: s.id,
            uuid: s.uuid,
            email: s.email,
            subscribed: s.unsubscribed_at.is_none(),
            created_at: s.created_at,
            tags: Vec::new(),
            fields: serde_json::from_str(&s.fields).unwrap(),
        })
        .collect();
    people.sort_by_key(|p| p.id);
    for held in rows[&Table::SubscriberTags].iter().flat_map(|r| match r {
        Rows::SubscriberTags(r) => r.clone(),
        _ => Vec::new(),
    }) {
        if let Ok(i) = people.binary_search_by_key(&held.subscriber_id, |p| p.id) {
            people[i].tags.push(tags[&held.tag_id].clone());
        }
    }
    let mut events: Vec<(i64, Happening)> = rows[&Table::Events]
        .iter()
        .flat_map(|r| match r {
            Rows::Events(r) => r.clone(),
            _ => Vec::new(),
        })
        .filter(|e| e.site_id == site)
        .map(|e| {
            let happening = Happening {
                subscriber_id: e.subscriber_id,
                kind: e.kind,
                at: e.occurred_at,
                details: serde_json::from_str(&e.details).unwrap(),
            };
            (e.id, happening)
        })
        .collect();
    events.sort_by_key(|(id, _)| *id);
    (people, events.into_iter().map(|(_, e)| e).collect())
}

/// A store on a fresh file with two sites, and a second store on the same
/// file standing for another process (its own connections and writer).
struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
    other: Arc<SqliteStore>,
    site: i64,
    second_site: i64,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.db").to_str().unwrap().to_owned();
    let store = Arc::new(SqliteStore::open(&path).await.unwrap());
    let site = store
        .create_site("one", "site-one", &KeyPair::generate(), false, NOW)
        .await
        .unwrap()
        .id;
    let second_site = store
        .create_site("two", "site-two", &KeyPair::generate(), false, NOW)
        .await
        .unwrap()
        .id;
    let other = Arc::new(SqliteStore::open(&path).await.unwrap());
    Fixture {
        _dir: dir,
        store,
        other,
        site,
        second_site,
    }
}

fn details(amount: Option<Value>, url: Option<Value>) -> String {
    let mut d = json!({});
    if let Some(a) = amount {
        d["value"] = json!({ "amount": a });
    }
    if let Some(u) = url {
        d["url"] = u;
    }
    d.to_string()
}

pub(super) fn arb_change() -> impl Strategy<Value = SubscriberChange> {
    let email = prop::sample::select(EMAILS.to_vec());
    let key = prop::sample::select(KEYS.to_vec());
    let tag = prop::sample::select(TAGS.to_vec());
    let subscription = prop_oneof![
        3 => Just(None),
        1 => Just(Some(Subscription::Subscribe)),
        1 => arb_time().prop_map(|t| Some(Subscription::Unsubscribe(t))),
    ];
    let event = prop_oneof![
        1 => Just(None),
        3 => (
            prop::sample::select(KINDS.to_vec()),
            arb_time(),
            prop::option::of(arb_value()),
            prop::option::of(arb_value()),
            prop::option::of(0u8..3),
        )
            .prop_map(|(kind, at, amount, url, unique)| {
                let purchase = kind == "$purchase";
                Some(NewEvent {
                    kind: kind.to_owned(),
                    occurred_at: at,
                    amount: amount.as_ref().and_then(Value::as_f64).filter(|_| purchase),
                    details: details(amount, url),
                    unique_key: unique.filter(|_| purchase).map(|k| format!("order-{k}")),
                    currency: None,
                })
            }),
    ];
    (
        email,
        prop::collection::vec((key.clone(), arb_value()), 0..3),
        prop::collection::vec(key, 0..2),
        prop::collection::vec(tag.clone(), 0..2),
        prop::collection::vec(tag, 0..2),
        subscription,
        event,
        prop::option::weighted(0.1, prop::sample::select(EMAILS.to_vec())),
    )
        .prop_map(
            |(email, set, remove, add_tags, remove_tags, subscription, event, new_email)| {
                let mut change = SubscriberChange::touch(Email::parse(email).unwrap());
                change.set_fields = set
                    .into_iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (FieldKey::parse(k).unwrap(), v))
                    .collect();
                change.remove_fields = remove
                    .into_iter()
                    .map(|k| FieldKey::parse(k).unwrap())
                    .collect();
                change.add_tags = add_tags
                    .into_iter()
                    .map(|t| TagName::parse(t).unwrap())
                    .collect();
                change.remove_tags = remove_tags
                    .into_iter()
                    .map(|t| TagName::parse(t).unwrap())
                    .collect();
                change.subscription = subscription;
                change.event = event;
                if let Some(new) = new_email {
                    // `change_email`: refused when the address is taken or
                    // the subscriber unknown, which the log must not record.
                    change.create = Create::Never;
                    change.new_email = Some(Email::parse(&format!("new.{new}")).unwrap());
                    change.event = None;
                }
                change
            },
        )
}

/// Queries segments are saved with: none refers to a segment (so no cycle
/// can form); evaluated queries may refer to the saved ones.
pub(super) const SAVED: &[&str] = &[
    r#"{"tag":{"has":"x"}}"#,
    r#"{"all":[{"subscribed":true},{"field":{"key":"n","more_than":1}}]}"#,
    r#"{"event":{"type":"$purchase","sum":{"of":"value.amount","at_least":2}}}"#,
    r#"{"event":{"type":"a","where":{"url":{"contains":"a"}},"count":{"at_least":1}}}"#,
    r#"{"any":[{"email":{"domain":"x.io"}},{"not":{"tag":{"any_of":["y","z"]}}}]}"#,
    r#"{"groups":[{"filters":[{"field":{"key":"s","equals":"ab"}},{"event":{"type":"b"}}]}]}"#,
];

#[derive(Debug, Clone)]
enum Op {
    /// Audience changes, through this process's store or the other's.
    Write(Vec<SubscriberChange>, bool),
    /// Changes to the other site, which must not touch this one's snapshot.
    WriteOtherSite(Vec<SubscriberChange>),
    /// Changes (`first`) that the snapshot then catches up with, while
    /// more (`during`, through this process's store or the other's) land
    /// during the catch-up: before its read of the log (`before_read`) or
    /// between that read and applying it.
    WriteDuringCatchUp {
        first: Vec<SubscriberChange>,
        during: Vec<SubscriberChange>,
        other: bool,
        before_read: bool,
    },
    /// Saves (creates, or updates when it exists) segment slot 0 or 1 with
    /// one of [`SAVED`].
    Save(usize, usize),
    Discard(usize),
    Restore(usize),
    AddKey,
    /// Evaluates a query and checks it against the naive evaluator.
    Evaluate(Box<Condition>),
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (prop::collection::vec(arb_change(), 1..6), any::<bool>())
            .prop_map(|(c, other)| Op::Write(c, other)),
        1 => prop::collection::vec(arb_change(), 1..3).prop_map(Op::WriteOtherSite),
        2 => (
            prop::collection::vec(arb_change(), 1..4),
            prop::collection::vec(arb_change(), 1..4),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(first, during, other, before_read)| Op::WriteDuringCatchUp {
                first,
                during,
                other,
                before_read,
            }),
        2 => (0usize..2, 0..SAVED.len()).prop_map(|(s, q)| Op::Save(s, q)),
        1 => (0usize..2).prop_map(Op::Discard),
        1 => (0usize..2).prop_map(Op::Restore),
        1 => Just(Op::AddKey),
        4 => arb_condition().prop_map(|c| Op::Evaluate(Box::new(c))),
    ]
}

/// Replaces references to the generator's segments 100 and 101 by the ids
/// of slots 0 and 1 (or nothing, when the slot was never saved).
fn resolve_refs(c: Condition, slots: &[Option<i64>; 2]) -> Condition {
    match c {
        Condition::Segment { id, member } => match slots[(id - 100).clamp(0, 1) as usize] {
            Some(id) => Condition::Segment { id, member },
            None => Condition::All(vec![]),
        },
        Condition::All(cs) => {
            Condition::All(cs.into_iter().map(|c| resolve_refs(c, slots)).collect())
        }
        Condition::Any(cs) => {
            Condition::Any(cs.into_iter().map(|c| resolve_refs(c, slots)).collect())
        }
        Condition::Not(c) => Condition::Not(Box::new(resolve_refs(*c, slots))),
        Condition::Groups(gs) => Condition::Groups(
            gs.into_iter()
                .map(|g| g.into_iter().map(|c| resolve_refs(c, slots)).collect())
                .collect(),
        ),
        c => c,
    }
}

/// How a step of the property finds the snapshot wrong: what it exists to
/// catch. A broken catch-up must end in one of these, not in a panic or an
/// error (see `the_property_catches_a_catch_up_that_drops_changes`).
#[derive(Debug, thiserror::Error)]
pub(crate) enum Mismatch {
    #[error("the snapshot is at position {resident}, a fresh read at {fresh}")]
    Position { resident: i64, fresh: i64 },
    #[error("the snapshot's audience differs from a fresh read's:\n{resident}\n{fresh}")]
    Audience { resident: String, fresh: String },
    #[error("the snapshot's segments differ from a fresh read's:\n{resident}\n{fresh}")]
    Segments { resident: String, fresh: String },
    #[error("the snapshot's members of {query} are {got:?}, the stored rows' {expected:?}")]
    Members {
        query: String,
        got: Vec<i64>,
        expected: Option<Vec<i64>>,
    },
    #[error("a write to another site moved this site's snapshot")]
    OtherSite,
}

/// The kept segments' definitions by id, as a snapshot holds them (those
/// whose query fits the grammar), in id order.
fn definitions<'a>(segments: impl Iterator<Item = (i64, &'a Query)>) -> Vec<(i64, &'a Query)> {
    let mut all: Vec<_> = segments.collect();
    all.sort_by_key(|(id, _)| *id);
    all
}

/// The resident snapshot must equal a fresh read: its position, audience
/// (detail columns included) and segments, each by its whole definition.
pub(crate) async fn same_as_fresh(
    live: &Live,
    store: &dyn Store,
    site: i64,
) -> Result<(), Mismatch> {
    let resident = live.resident(site).await.unwrap();
    let progress = ReadProgress::new();
    let fresh = store.load_snapshot(site, &progress).await.unwrap();
    let audience = fresh.audience.build();
    for (kind, path) in resident.audience.detail_columns() {
        let mut values = store
            .load_details(site, &kind, &path, &progress)
            .await
            .unwrap();
        values.truncate(audience.event_count_of(&kind));
        assert!(audience.add_details(&kind, path, values));
    }
    if resident.position.seq != fresh.seq {
        return Err(Mismatch::Position {
            resident: resident.position.seq,
            fresh: fresh.seq,
        });
    }
    let (held, read) = (resident.audience.canonical(), audience.canonical());
    if held != read {
        return Err(Mismatch::Audience {
            resident: format!("{held:?}"),
            fresh: format!("{read:?}"),
        });
    }
    let stored: Vec<(i64, Query)> = fresh
        .segments
        .iter()
        .filter_map(|s| {
            let query = corral_core::query::manual::parse_saved(s.query.as_str(), s.id.0);
            Some((s.id.0, query.ok()?))
        })
        .collect();
    let held = definitions(resident.segments.iter().map(|(id, q)| (*id, q.as_ref())));
    let stored = definitions(stored.iter().map(|(id, q)| (*id, q)));
    if held != stored {
        return Err(Mismatch::Segments {
            resident: format!("{held:?}"),
            fresh: format!("{stored:?}"),
        });
    }
    Ok(())
}

async fn assert_same_as_fresh(live: &Live, store: &dyn Store, site: i64) {
    if let Err(mismatch) = same_as_fresh(live, store, site).await {
        panic!("{mismatch}");
    }
}

/// The store as a snapshot reads it, except that a catch-up's read of the
/// log can be made to race a write: [`Interleaved::arm`] names a write that
/// lands just before the next read of changes begins (after the head it
/// catches up to was read) or just after it ended (before what it read is
/// applied).
struct Interleaved {
    inner: Arc<dyn Store>,
    armed: std::sync::Mutex<Option<Armed>>,
}

struct Armed {
    writer: Arc<dyn Store>,
    site: i64,
    changes: Vec<SubscriberChange>,
    before_read: bool,
}

impl Interleaved {
    fn arm(&self, armed: Armed) {
        *self.armed.lock().unwrap() = Some(armed);
    }

    /// Whether the armed write is still to land.
    fn armed(&self) -> bool {
        self.armed.lock().unwrap().is_some()
    }

    async fn land(&self, before_read: bool) {
        let armed = {
            let mut slot = self.armed.lock().unwrap();
            match slot.as_ref() {
                Some(a) if a.before_read == before_read => slot.take(),
                _ => None,
            }
        };
        if let Some(a) = armed {
            a.writer
                .apply_changes(a.site, a.changes, NOW)
                .await
                .unwrap();
        }
    }
}

#[async_trait::async_trait]
impl ChangeFeed for Interleaved {
    fn change_signal(&self) -> Option<crate::storage::Signal> {
        self.inner.change_signal()
    }

    async fn site_head(&self, site_id: i64) -> crate::storage::Result<crate::storage::SiteHead> {
        self.inner.site_head(site_id).await
    }

    async fn load_snapshot(
        &self,
        site_id: i64,
        progress: &ReadProgress,
    ) -> crate::storage::Result<crate::storage::changes::Loaded> {
        self.inner.load_snapshot(site_id, progress).await
    }

    async fn read_changes(
        &self,
        site_id: i64,
        since: Position,
        columns: &[(String, DetailPath)],
        with_segments: bool,
        progress: &ReadProgress,
    ) -> crate::storage::Result<crate::storage::changes::Changes> {
        self.land(true).await;
        let changes = self
            .inner
            .read_changes(site_id, since, columns, with_segments, progress)
            .await;
        self.land(false).await;
        changes
    }

    async fn load_details(
        &self,
        site_id: i64,
        kind: &str,
        path: &DetailPath,
        progress: &ReadProgress,
    ) -> crate::storage::Result<Vec<corral_core::columns::Val>> {
        self.inner.load_details(site_id, kind, path, progress).await
    }

    async fn log_entry(
        &self,
        site_id: i64,
        seq: i64,
    ) -> crate::storage::Result<Option<(i64, String)>> {
        self.inner.log_entry(site_id, seq).await
    }

    async fn trim_log(&self, before: i64) -> crate::storage::Result<u64> {
        self.inner.trim_log(before).await
    }

    async fn database_id(&self) -> crate::storage::Result<String> {
        self.inner.database_id().await
    }
}

/// Runs the steps on a fresh database of `backend`, the snapshot held to a
/// fresh read after each; the first mismatch found.
async fn run_ops(backend: Backend, ops: Vec<Op>, broken: bool) -> Result<(), Mismatch> {
    let Some(f) = stores(backend).await else {
        return Ok(());
    };
    let store = f.store.clone();
    let feed = Arc::new(Interleaved {
        inner: store.clone(),
        armed: std::sync::Mutex::new(None),
    });
    let live = Live::new(feed.clone());
    if broken {
        live.break_catch_up(f.site);
    }
    let mut slots: [Option<i64>; 2] = [None, None];
    // Resident from the start, so every step is a catch-up.
    live.resident(f.site).await.unwrap();
    for op in ops {
        match op {
            Op::Write(changes, other) => {
                let writer = if other { &f.other } else { &f.store };
                writer.apply_changes(f.site, changes, NOW).await.unwrap();
            }
            Op::WriteOtherSite(changes) => {
                let before = live.site_stats(f.site).unwrap();
                f.other
                    .apply_changes(f.second_site, changes, NOW)
                    .await
                    .unwrap();
                live.resident(f.site).await.unwrap();
                if live.site_stats(f.site).unwrap() != before {
                    return Err(Mismatch::OtherSite);
                }
            }
            Op::WriteDuringCatchUp {
                first,
                during,
                other,
                before_read,
            } => {
                // An event is always logged: the head moves, and the
                // snapshot must catch up.
                let mut first = first;
                first.push(event("first@x.io", "b", 1.0));
                f.store.apply_changes(f.site, first, NOW).await.unwrap();
                feed.arm(Armed {
                    writer: if other {
                        f.other.clone()
                    } else {
                        f.store.clone()
                    },
                    site: f.site,
                    changes: during,
                    before_read,
                });
                live.resident(f.site).await.unwrap();
                assert!(!feed.armed(), "the write did not land in a catch-up");
            }
            Op::Save(slot, saved) => {
                let query = RawQuery::from_stored(SAVED[saved].to_owned());
                match slots[slot] {
                    None => {
                        let new = NewSegment {
                            name: SegmentName::parse(&format!("slot {slot}")).unwrap(),
                            description: None,
                            query,
                        };
                        slots[slot] = Some(
                            store
                                .create_segment(f.site, &new, NOW, &Actor::Cli)
                                .await
                                .unwrap()
                                .id
                                .0,
                        );
                    }
                    Some(id) => {
                        let patch = SegmentPatch {
                            query: Some(query),
                            ..SegmentPatch::default()
                        };
                        // A discarded segment cannot be changed: fine.
                        let _ = store
                            .update_segment(
                                f.site,
                                crate::segment::SegmentId(id),
                                &patch,
                                &Precondition::None,
                                NOW,
                                &Actor::Cli,
                            )
                            .await;
                    }
                }
            }
            Op::Discard(slot) | Op::Restore(slot) => {
                if let Some(id) = slots[slot] {
                    let id = crate::segment::SegmentId(id);
                    let _ = if matches!(op, Op::Discard(_)) {
                        store
                            .discard_segment(f.site, id, &Precondition::None, NOW, &Actor::Cli)
                            .await
                    } else {
                        store
                            .restore_segment(f.site, id, &Precondition::None, NOW, &Actor::Cli)
                            .await
                    };
                }
            }
            Op::AddKey => {
                f.other
                    .add_key(f.site, &KeyPair::generate(), NOW, &Actor::Cli)
                    .await
                    .unwrap();
            }
            Op::Evaluate(condition) => {
                let query = Query::Condition(Box::new(resolve_refs(*condition, &slots)));
                let got = live.evaluate(f.site, &query, NOW).await;
                let (people, events) = world_of(f.store.as_ref(), f.site).await;
                let segments: HashMap<i64, Query> = store
                    .list_segments(f.site, Listing::Kept)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|s| (s.id.0, corral_core::query::parse(s.query.as_str()).unwrap()))
                    .collect();
                let world = World {
                    people: &people,
                    events: &events,
                    segments: &segments,
                    now: NOW,
                };
                match got {
                    Ok(evaluation) => {
                        let (got, expected) = (evaluation.member_ids(), world.members(&query));
                        if Some(&got) != expected.as_ref() {
                            return Err(Mismatch::Members {
                                query: format!("{query:?}"),
                                got,
                                expected,
                            });
                        }
                    }
                    // A reference to a discarded segment is not evaluable.
                    Err(LiveError::NotEvaluable(EvalError::MissingReference(id))) => {
                        assert!(!segments.contains_key(&id));
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        }
        same_as_fresh(&live, f.store.as_ref(), f.site).await?;
    }
    let stats = live.site_stats(f.site).unwrap();
    assert_eq!(
        stats.full_reads, 1,
        "only the first read was whole: {stats:?}"
    );
    assert_eq!(stats.reloads, 0);
    Ok(())
}

pub(super) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs the steps as one case of a property: a mismatch fails the case.
fn case(backend: Backend, ops: Vec<Op>, broken: bool) -> Result<(), TestCaseError> {
    runtime()
        .block_on(run_ops(backend, ops, broken))
        .map_err(|mismatch| TestCaseError::fail(format!("{CAUGHT}{mismatch}")))
}

/// How a case that found the snapshot wrong fails: not a panic or an error.
const CAUGHT: &str = "the snapshot differs from the database: ";

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn a_snapshot_brought_forward_equals_a_fresh_read(ops in prop::collection::vec(arb_op(), 1..14)) {
        case(Backend::Sqlite, ops, false)?;
    }
}

proptest! {
    // Each case makes a database of its own on the cluster: fewer cases.
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// The same property on PostgreSQL: its change log and catch-up held to
    /// a fresh read after every step, writes coming through two stores as
    /// from two servers.
    #[test]
    fn a_snapshot_brought_forward_from_postgres_equals_a_fresh_read(
        ops in prop::collection::vec(arb_op(), 1..14),
    ) {
        case(Backend::Postgres, ops, false)?;
    }
}

/// The seed the broken catch-up is tried with: fixed, so that every run
/// tries the same cases; `CORRAL_MUTANT_SEED` tries others.
const BROKEN_SEED: u64 = 20;

#[test]
fn the_property_catches_a_catch_up_that_drops_changes() {
    // The same harness, against snapshots that ignore changes to the
    // subscribers they hold: it must find a snapshot that differs from a
    // fresh read (a panic or an error does not count).
    catches_a_mutant(
        "a catch-up that drops subscriber changes",
        BROKEN_SEED,
        48,
        prop::collection::vec(arb_op(), 1..14),
        CAUGHT,
        |ops| case(Backend::Sqlite, ops, true),
    );
}

/// Runs a property's cases against a deliberately broken implementation,
/// from a fixed seed (`CORRAL_MUTANT_SEED` tries others): some case must
/// fail with a message starting with `caught` (the property's own way of
/// failing, not a panic or an error), else the property cannot fail and
/// this panics.
pub(super) fn catches_a_mutant<S: Strategy>(
    mutant: &str,
    default_seed: u64,
    cases: u32,
    strategy: S,
    caught: &str,
    case: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S::Value: std::fmt::Debug,
{
    use proptest::test_runner::{RngSeed, TestError, TestRunner};
    let seed = std::env::var("CORRAL_MUTANT_SEED")
        .ok()
        .map_or(default_seed, |s| {
            s.parse().expect("CORRAL_MUTANT_SEED is a number")
        });
    println!("{mutant} is tried with seed {seed} (CORRAL_MUTANT_SEED={seed} replays it)");
    let mut runner = TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(seed),
        ..ProptestConfig::default()
    });
    match runner.run(&strategy, case) {
        Err(TestError::Fail(reason, input)) if reason.message().starts_with(caught) => {
            println!("caught: {reason}\n{input:#?}");
        }
        other => panic!("{mutant} was not caught by a mismatch (seed {seed}): {other:?}"),
    }
}

fn event(email: &str, kind: &str, amount: f64) -> SubscriberChange {
    let mut change = SubscriberChange::touch(Email::parse(email).unwrap());
    change.event = Some(NewEvent {
        kind: kind.into(),
        occurred_at: NOW,
        details: details(Some(json!(amount)), None),
        unique_key: None,
        amount: Some(amount),
        currency: None,
    });
    change
}

fn rich_query() -> Query {
    corral_core::query::parse(
        r#"{"event":{"type":"$purchase","sum":{"of":"value.amount","more_than":5}}}"#,
    )
    .unwrap()
}

async fn count(live: &Live, site: i64) -> i64 {
    live.evaluate(site, &rich_query(), NOW)
        .await
        .unwrap()
        .counts()
        .user_count
}

/// One purchase of 10 by `email`, written through `store`.
async fn buy(store: &SqliteStore, site: i64, email: &str) {
    store
        .apply_changes(site, vec![event(email, "$purchase", 10.0)], NOW)
        .await
        .unwrap();
}

#[tokio::test]
async fn trimmed_entries_make_the_snapshot_read_again_once() {
    let f = fixture().await;
    let live = Live::new(f.store.clone());
    buy(&f.store, f.site, "a@x.io").await;
    assert_eq!(count(&live, f.site).await, 1);
    buy(&f.other, f.site, "b@x.io").await;
    buy(&f.other, f.site, "c@x.io").await;
    // Trimmed as an old log would be: the snapshot's next entry is gone.
    f.store
        .execute("DELETE FROM change_log WHERE seq < (SELECT max(seq) FROM change_log)")
        .await;
    assert_eq!(count(&live, f.site).await, 3);
    let stats = live.site_stats(f.site).unwrap();
    assert_eq!((stats.reloads, stats.full_reads), (1, 2), "{stats:?}");
    assert_same_as_fresh(&live, f.store.as_ref(), f.site).await;
    // And from then on, back to catching up.
    buy(&f.store, f.site, "d@x.io").await;
    assert_eq!(count(&live, f.site).await, 4);
    assert_eq!(live.site_stats(f.site).unwrap().full_reads, 2);
}

#[tokio::test]
async fn an_unreadable_entry_makes_the_snapshot_read_again() {
    let f = fixture().await;
    let live = Live::new(f.store.clone());
    buy(&f.store, f.site, "a@x.io").await;
    assert_eq!(count(&live, f.site).await, 1);
    buy(&f.store, f.site, "b@x.io").await;
    f.store
        .execute("UPDATE change_log SET entry = '{\"subscribers\":\"all\"}' WHERE seq = (SELECT max(seq) FROM change_log)")
        .await;
    assert_eq!(count(&live, f.site).await, 2);
    let stats = live.site_stats(f.site).unwrap();
    assert_eq!((stats.reloads, stats.full_reads), (1, 2), "{stats:?}");
}

#[tokio::test]
async fn a_gap_in_positions_makes_the_snapshot_read_again() {
    let f = fixture().await;
    let live = Live::new(f.store.clone());
    assert_eq!(count(&live, f.site).await, 0);
    buy(&f.store, f.site, "a@x.io").await;
    // The head says 2, but only entry 1 exists... then 2 goes missing.
    f.store
        .execute("UPDATE change_heads SET seq = seq + 1 WHERE site_id = 1")
        .await;
    assert_eq!(count(&live, f.site).await, 1);
    assert_eq!(live.site_stats(f.site).unwrap().reloads, 1);
}

#[tokio::test]
async fn a_write_to_one_site_leaves_another_sites_snapshot_alone() {
    let f = fixture().await;
    let live = Live::new(f.store.clone());
    count(&live, f.site).await;
    count(&live, f.second_site).await;
    let before = live.site_stats(f.second_site).unwrap();
    buy(&f.store, f.site, "a@x.io").await;
    assert_eq!(count(&live, f.site).await, 1);
    assert_eq!(count(&live, f.second_site).await, 0);
    assert_eq!(live.site_stats(f.second_site).unwrap(), before);
    assert_eq!(live.site_stats(f.site).unwrap().catch_ups, 1);
}

#[tokio::test]
async fn detail_columns_grow_with_the_events_of_their_type() {
    let f = fixture().await;
    let live = Live::new(f.store.clone());
    f.store
        .apply_changes(f.site, vec![event("a@x.io", "$purchase", 3.0)], NOW)
        .await
        .unwrap();
    assert_eq!(count(&live, f.site).await, 0);
    f.store
        .apply_changes(
            f.site,
            vec![
                event("a@x.io", "$purchase", 3.0),
                event("b@x.io", "page", 9.0),
            ],
            NOW,
        )
        .await
        .unwrap();
    assert_eq!(count(&live, f.site).await, 1);
    let resident = live.resident(f.site).await.unwrap();
    let path = DetailPath(vec!["value".into(), "amount".into()]);
    assert!(
        resident
            .audience
            .detail_columns()
            .contains(&("$purchase".to_owned(), path))
    );
    drop(resident);
    assert_eq!(live.site_stats(f.site).unwrap().full_reads, 1);
    assert_same_as_fresh(&live, f.store.as_ref(), f.site).await;
}

fn with_checkpoints(store: Arc<SqliteStore>, dir: &std::path::Path) -> Live {
    let store: Arc<dyn ChangeFeed> = store;
    let heads = Arc::new(Heads::new(Arc::clone(&store)));
    Live::with_heads(
        store,
        heads,
        Some(CheckpointSettings {
            dir: dir.to_owned(),
            write: true,
        }),
    )
}

#[tokio::test]
async fn a_checkpoint_and_the_log_since_it_make_the_snapshot_at_start() {
    let f = fixture().await;
    let dir = tempfile::tempdir().unwrap();
    {
        let live = with_checkpoints(f.store.clone(), dir.path());
        f.store
            .apply_changes(f.site, vec![event("a@x.io", "$purchase", 10.0)], NOW)
            .await
            .unwrap();
        assert_eq!(count(&live, f.site).await, 1);
        live.write_checkpoints(None).await;
        // Once after the whole read, and maybe again once the detail column
        // the count needs was added, if the first was written before it.
        let written = live.site_stats(f.site).unwrap().checkpoints_written;
        assert!((1..=2).contains(&written), "{written}");
    }
    // Written while no server ran (an import in another process).
    buy(&f.other, f.site, "b@x.io").await;
    let live = with_checkpoints(f.store.clone(), dir.path());
    live.warm_up().await;
    let stats = live.site_stats(f.site).unwrap();
    assert_eq!(
        (stats.checkpoint_reads, stats.full_reads),
        (1, 0),
        "{stats:?}"
    );
    assert_eq!(count(&live, f.site).await, 2);
    assert_same_as_fresh(&live, f.store.as_ref(), f.site).await;
}

#[tokio::test]
async fn detail_columns_read_on_first_use_make_the_next_checkpoint() {
    let f = fixture().await;
    let dir = tempfile::tempdir().unwrap();
    let written = |live: &Live| live.site_stats(f.site).unwrap().checkpoints_written;
    {
        let live = with_checkpoints(f.store.clone(), dir.path());
        buy(&f.store, f.site, "a@x.io").await;
        let plain = corral_core::query::parse(r#"{"subscribed":true}"#).unwrap();
        live.evaluate(f.site, &plain, NOW).await.unwrap();
        live.write_checkpoints(None).await;
        assert_eq!(written(&live), 1);
        // Reads value.amount of the purchases: no write moved the site, but
        // the checkpoint is worth writing again, once.
        assert_eq!(count(&live, f.site).await, 1);
        live.write_checkpoints(None).await;
        live.write_checkpoints(None).await;
        assert_eq!(written(&live), 2);
    }
    let live = with_checkpoints(f.store.clone(), dir.path());
    live.warm_up().await;
    let resident = live.resident(f.site).await.unwrap();
    let amount = DetailPath(vec!["value".into(), "amount".into()]);
    assert_eq!(
        resident.audience.detail_columns(),
        [("$purchase".to_owned(), amount)]
    );
}

#[tokio::test]
async fn a_damaged_or_foreign_checkpoint_is_not_used() {
    let f = fixture().await;
    let dir = tempfile::tempdir().unwrap();
    let live = with_checkpoints(f.store.clone(), dir.path());
    buy(&f.store, f.site, "a@x.io").await;
    assert_eq!(count(&live, f.site).await, 1);
    live.write_checkpoints(None).await;
    let file = dir.path().join(format!("site-{}.ckpt", f.site));
    let good = std::fs::read(&file).unwrap();

    // One byte flipped in the middle.
    let mut bad = good.clone();
    let middle = bad.len() / 2;
    bad[middle] ^= 0x40;
    std::fs::write(&file, &bad).unwrap();
    let live = with_checkpoints(f.store.clone(), dir.path());
    assert_eq!(count(&live, f.site).await, 1);
    assert_eq!(live.site_stats(f.site).unwrap().full_reads, 1);

    // Another database at the same path: its log has other entries.
    let g = fixture().await;
    std::fs::write(&file, &good).unwrap();
    let live = with_checkpoints(g.store.clone(), dir.path());
    assert_eq!(count(&live, g.site).await, 0);
    let stats = live.site_stats(g.site).unwrap();
    assert_eq!((stats.checkpoint_reads, stats.full_reads), (0, 1));

    // The same database rolled back to another history under the same
    // position: the entry it was written after is not there any more.
    std::fs::write(&file, &good).unwrap();
    f.store.execute("UPDATE change_log SET at = at + 1").await;
    let live = with_checkpoints(f.store.clone(), dir.path());
    assert_eq!(count(&live, f.site).await, 1);
    let stats = live.site_stats(f.site).unwrap();
    assert_eq!((stats.checkpoint_reads, stats.full_reads), (0, 1));
}

fn checkpoints_in(f: &Fixture, dir: &std::path::Path) -> checkpoint::Checkpoints {
    let settings = CheckpointSettings {
        dir: dir.to_owned(),
        write: true,
    };
    checkpoint::Checkpoints::new(f.store.clone(), settings)
}

#[tokio::test]
async fn a_checkpoint_read_stops_once_the_server_stops() {
    let f = fixture().await;
    let dir = tempfile::tempdir().unwrap();
    let live = with_checkpoints(f.store.clone(), dir.path());
    buy(&f.store, f.site, "a@x.io").await;
    assert_eq!(count(&live, f.site).await, 1);
    live.write_checkpoints(None).await;
    let checkpoints = checkpoints_in(&f, dir.path());
    let progress = Arc::new(ReadProgress::new());
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let read = checkpoints.read(f.site, &progress, stopping.clone()).await;
    assert!(matches!(read, Ok(Some(_))));
    assert!(progress.report().read > 0, "its bytes are counted");
    stop.send_replace(true);
    let read = checkpoints
        .read(f.site, &Arc::new(ReadProgress::new()), stopping)
        .await;
    assert!(
        matches!(&read, Err(checkpoint::CheckpointError::Io(e)) if e.to_string().contains("shutting down")),
        "{:?}",
        read.map(|r| r.is_some())
    );
}

#[tokio::test]
async fn a_checkpoint_abandoned_halfway_leaves_no_file() {
    let f = fixture().await;
    let dir = tempfile::tempdir().unwrap();
    let checkpoints = checkpoints_in(&f, dir.path());
    let mut writer = checkpoints
        .start(f.site, Position::default())
        .await
        .unwrap();
    writer.encoder().u64(42).unwrap();
    let files = || std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(files(), 1, "the temporary file");
    drop(writer);
    assert_eq!(files(), 0);
    let read = checkpoints
        .read(
            f.site,
            &Arc::new(ReadProgress::new()),
            tokio::sync::watch::channel(false).1,
        )
        .await;
    assert!(matches!(read, Ok(None)));
}

async fn purchases(f: &Fixture, n: usize) {
    let changes = (0..n)
        .map(|i| event(&format!("p{}@x.io", i % 7), "$purchase", i as f64))
        .collect();
    f.store.apply_changes(f.site, changes, NOW).await.unwrap();
}

#[tokio::test]
async fn a_query_over_budget_is_refused_before_it_runs() {
    let f = fixture().await;
    purchases(&f, 60).await;
    let live = Live::new(f.store.clone()).with_limits(Budget { max: 50, heavy: 10 });
    let every_event =
        corral_core::query::parse(r#"{"event":{"where":{"url":{"exists":true}}}}"#).unwrap();
    match live.evaluate(f.site, &every_event, NOW).await {
        Err(LiveError::NotEvaluable(EvalError::TooExpensive(e))) => {
            // 60 events read twice (the scan, the `where`), then 7 subscribers.
            assert_eq!((e.cost, e.limit, e.event_tests, e.events), (127, 50, 1, 60));
        }
        other => panic!("{:?}", other.map(|e| e.counts())),
    }
    let cheap = corral_core::query::parse(r#"{"subscribed":true}"#).unwrap();
    assert_eq!(
        live.evaluate(f.site, &cheap, NOW)
            .await
            .unwrap()
            .counts()
            .user_count,
        7
    );
    // Saving checks it against the audience held.
    assert!(matches!(
        live.check_cost(f.site, &every_event),
        Err(EvalError::TooExpensive(_))
    ));
    assert_eq!(live.check_cost(f.site, &cheap), Ok(()));
    assert_eq!(
        live.check_cost(f.second_site, &every_event),
        Ok(()),
        "not held: not read for this"
    );
}

#[tokio::test]
async fn heavy_evaluations_wait_for_each_other_never_cheap_ones() {
    let f = fixture().await;
    purchases(&f, 60).await;
    let live = Live::new(f.store.clone()).with_limits(Budget {
        max: u64::MAX,
        heavy: 50,
    });
    let heavy =
        corral_core::query::parse(r#"{"event":{"where":{"url":{"exists":false}}}}"#).unwrap();
    let cheap = corral_core::query::parse(r#"{"subscribed":true}"#).unwrap();
    assert_eq!(
        live.evaluate(f.site, &heavy, NOW)
            .await
            .unwrap()
            .counts()
            .user_count,
        7
    );

    // The site's heavy place is taken: cheap queries still answer...
    let held = live.lanes.admit(f.site, true).await;
    assert_eq!(live.lanes.heavy_running(), 1);
    assert_eq!(
        live.evaluate(f.site, &cheap, NOW)
            .await
            .unwrap()
            .counts()
            .user_count,
        7
    );
    // ...a heavy one queues for the lane (driven until the lanes count it
    // waiting; it must not finish meanwhile), and one that gives up leaves
    // the queue.
    assert_eq!(live.lanes.waiting(), 0);
    let mut waiting = Box::pin(live.evaluate(f.site, &heavy, NOW));
    let queued = async {
        while live.lanes.waiting() == 0 {
            tokio::select! {
                biased;
                _ = &mut waiting => panic!("a heavy evaluation ran while its lane was taken"),
                () = tokio::task::yield_now() => {}
            }
        }
    };
    // A bound on a hang only: it reaches the queue after a read or two.
    tokio::time::timeout(std::time::Duration::from_secs(30), queued)
        .await
        .expect("the heavy evaluation never queued for the lane");
    assert_eq!(live.lanes.waiting(), 1);
    assert!(
        futures_util::FutureExt::now_or_never(&mut waiting).is_none(),
        "a heavy evaluation ran while its lane was taken"
    );
    drop(waiting);
    assert_eq!(
        live.lanes.waiting(),
        0,
        "a waiter that gave up is still queued"
    );
    drop(held);
    assert_eq!(
        live.evaluate(f.site, &heavy, NOW)
            .await
            .unwrap()
            .counts()
            .user_count,
        7
    );
    assert_eq!(live.lanes.heavy_running(), 0);
}

/// Upkeep on either backend: [`Live::maintain`] trims change-log entries
/// older than [`LOG_RETENTION`], keeping each site's newest; a snapshot left
/// behind the trimmed entries reads its site again, once, and a current one
/// goes on catching up.
async fn upkeep_trims_the_log(backend: Backend) {
    let Some(f) = stores(backend).await else {
        return eprintln!("skipped: CORRAL_TEST_POSTGRES names no PostgreSQL cluster");
    };
    let old = NOW - 2 * LOG_RETENTION.as_millis() as i64;
    let write = async |store: &Arc<dyn Store>, email: &str, at: i64| {
        store
            .apply_changes(f.site, vec![event(email, "$purchase", 10.0)], at)
            .await
            .unwrap();
    };
    let (behind, current) = (Live::new(f.store.clone()), Live::new(f.other.clone()));
    write(&f.store, "a@x.io", old).await;
    assert_eq!(count(&behind, f.site).await, 1);
    write(&f.other, "b@x.io", old).await;
    write(&f.store, "c@x.io", old).await;
    assert_eq!(count(&current, f.site).await, 3);
    write(&f.other, "d@x.io", NOW).await;

    current.maintain(NOW, Duration::ZERO).await;
    for (seq, kept) in [(1, false), (2, false), (3, false), (4, true)] {
        let entry = f.store.log_entry(f.site, seq).await.unwrap();
        assert_eq!(entry.is_some(), kept, "entry {seq}");
    }
    // The other site's only entry is its newest: kept, however old.
    assert_eq!(f.store.site_head(f.second_site).await.unwrap().seq, 0);

    assert_eq!(count(&current, f.site).await, 4);
    let stats = current.site_stats(f.site).unwrap();
    assert_eq!((stats.full_reads, stats.reloads), (1, 0), "{stats:?}");
    assert_eq!(count(&behind, f.site).await, 4);
    let stats = behind.site_stats(f.site).unwrap();
    assert_eq!((stats.full_reads, stats.reloads), (2, 1), "{stats:?}");
    assert_same_as_fresh(&behind, f.store.as_ref(), f.site).await;
}

#[tokio::test]
async fn upkeep_trims_the_log_on_sqlite() {
    upkeep_trims_the_log(Backend::Sqlite).await;
}

#[tokio::test]
async fn upkeep_trims_the_log_on_postgres() {
    upkeep_trims_the_log(Backend::Postgres).await;
}
