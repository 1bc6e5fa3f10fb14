//! The journal held to an oracle: random writes (through this process's
//! store, another process's, and the import path), clock steps with the
//! sweep, definition changes, discards and restores; after every step the
//! members the journal gives at earlier instants must equal what the naive
//! evaluator ([`corral_core::engine::naive`]) found over the stored rows at
//! that instant, and the size series must count those sets.

use super::super::tests::{
    Backend, SAVED, arb_change, catches_a_mutant, runtime, stores, world_of,
};
use super::*;
use crate::clock::ManualClock;
use crate::segment::{NewSegment, SegmentId, SegmentName, SegmentPatch};
use crate::service::history::{self, Interval};
use crate::storage::actor::Actor;
use crate::storage::imports::ImportMark;
use crate::storage::{Precondition, StorageError};
use corral_core::audience::SubscriberChange;
use corral_core::engine::naive::World;
use corral_core::engine::testing::NOW;
use corral_core::query::RawQuery;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use std::collections::BTreeMap;

/// Queries the segments are saved with: [`SAVED`]'s, and two that move with
/// the clock (the sweep records those moves).
fn queries() -> Vec<String> {
    let mut all: Vec<String> = SAVED.iter().map(|q| (*q).to_owned()).collect();
    all.push(r#"{"event":{"type":"a","when":{"within_last":{"hours":2}}}}"#.into());
    all.push(r#"{"any":[{"created":{"within_last":{"hours":1}}},{"tag":{"has":"y"}}]}"#.into());
    all
}

/// Slot 2 holds a segment made of slot 0's membership, when slot 0 exists.
const SLOTS: usize = 3;

#[derive(Debug, Clone)]
enum Op {
    /// Audience changes, through this process's store or the other's.
    Write(Vec<SubscriberChange>, bool),
    /// Changes through the import path.
    Import(Vec<SubscriberChange>),
    /// Gives or takes tag `x` or `y` (which saved queries read) to one of
    /// a few subscribers, through either store: joins and leaves, often
    /// one write apart.
    Tag(usize, bool, bool, bool),
    /// Saves slot 0 or 1 with one of [`queries`] (creates it the first
    /// time); slot 2 is saved as "member of slot 0".
    Save(usize, usize),
    Discard(usize),
    Restore(usize),
    /// The clock moves on by this many ms, and the sweep runs.
    Tick(i64),
}

fn arb_op() -> impl Strategy<Value = Op> {
    let n = queries().len();
    prop_oneof![
        6 => (prop::collection::vec(arb_change(), 1..5), any::<bool>())
            .prop_map(|(c, other)| Op::Write(c, other)),
        1 => prop::collection::vec(arb_change(), 1..5).prop_map(Op::Import),
        4 => (0usize..3, any::<bool>(), any::<bool>(), any::<bool>())
            .prop_map(|(who, y, add, other)| Op::Tag(who, y, add, other)),
        3 => (0usize..SLOTS, prop_oneof![Just(0), Just(4), 0..n]).prop_map(|(s, q)| Op::Save(s, q)),
        1 => (0usize..SLOTS).prop_map(Op::Discard),
        1 => (0usize..SLOTS).prop_map(Op::Restore),
        2 => prop_oneof![Just(60_000i64), 1i64..7_200_000].prop_map(Op::Tick),
    ]
}

/// What the case must find wrong: the journal differs from the oracle.
#[derive(Debug, thiserror::Error)]
enum Mismatch {
    #[error(
        "at step {step} ({at}), segment {segment}: the journal has {got:?}, the rows {expected:?}"
    )]
    Members {
        step: usize,
        at: i64,
        segment: i64,
        got: Vec<i64>,
        expected: Vec<i64>,
    },
    #[error("segment {segment}'s series over {points} points: {got:?}, the rows {expected:?}")]
    Series {
        segment: i64,
        points: usize,
        got: Vec<i64>,
        expected: Vec<i64>,
    },
}

/// What the oracle found after one step.
struct Observed {
    at: i64,
    /// Whether the step was a sweep: then segments that move with the
    /// clock are held to it too (between sweeps the journal sees a
    /// window move only for subscribers a write touched).
    swept: bool,
    /// Per kept segment: the members, and whether its query moves with the
    /// clock (itself or through the segment it refers to).
    members: BTreeMap<i64, (Vec<i64>, bool)>,
}

/// When the membership checkpoints are taken in a case (a checkpoint every
/// transition: each instant is then read from one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Checkpoints {
    /// Never: members at an instant come from the members now.
    Never,
    /// At the sweeps, as a server takes them.
    AtSweeps,
    /// After every step.
    EveryStep,
}

fn arb_checkpoints() -> impl Strategy<Value = Checkpoints> {
    prop_oneof![
        Just(Checkpoints::Never),
        Just(Checkpoints::AtSweeps),
        Just(Checkpoints::EveryStep),
    ]
}

/// What a case breaks on purpose, to show the property notices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Broken {
    Nothing,
    /// The journal drops leaves caused by data.
    Leaves,
}

async fn run_ops(
    backend: Backend,
    ops: Vec<Op>,
    checkpoints: Checkpoints,
    broken: Broken,
) -> Result<(), Mismatch> {
    let Some(s) = stores(backend).await else {
        return Ok(());
    };
    match broken {
        Broken::Nothing => {}
        Broken::Leaves => {
            s.store.break_journal();
            s.other.break_journal();
        }
    }
    s.store.space_checkpoints(1);
    s.other.space_checkpoints(1);
    let (store, site) = (Arc::clone(&s.store), s.site);
    let live = Arc::new(Live::new(store.clone()));
    let evaluator: Arc<dyn Evaluator> = live.clone();
    store.set_evaluator(Arc::downgrade(&evaluator));
    // Half an hour past a whole hour: relative windows never end exactly
    // at a write's instant.
    let clock = ManualClock::new(NOW + 1_800_000);
    let texts = queries();
    let mut slots: [Option<i64>; SLOTS] = [None; SLOTS];
    let mut seen: Vec<Observed> = Vec::new();
    let mut imports = 0u64;
    for op in ops {
        clock.advance_ms(1);
        let now = clock.now_ms();
        let mut swept = false;
        match op {
            Op::Write(changes, other) => {
                let writer = if other { &s.other } else { &s.store };
                writer.apply_changes(site, changes, now).await.unwrap();
            }
            Op::Tag(who, y, add, other) => {
                let email = ["a@x.io", "c@y.com", "e@y.com"][who];
                let tag = corral_core::audience::TagName::parse(if y { "y" } else { "x" }).unwrap();
                let mut change =
                    SubscriberChange::touch(corral_core::audience::Email::parse(email).unwrap());
                if add {
                    change.add_tags = vec![tag];
                } else {
                    change.remove_tags = vec![tag];
                }
                let writer = if other { &s.other } else { &s.store };
                writer.apply_changes(site, vec![change], now).await.unwrap();
            }
            Op::Import(changes) => {
                imports += 1;
                let mark = ImportMark {
                    key: "journal-property".into(),
                    kind: "subscribers",
                    line: imports,
                    unreadable: 0,
                };
                store
                    .apply_import_batch(site, changes, now, mark)
                    .await
                    .unwrap();
            }
            Op::Save(slot, q) => {
                let text = if slot == 2 {
                    let Some(first) = slots[0] else { continue };
                    format!(r#"{{"segment":{{"member_of":"{first}"}}}}"#)
                } else {
                    texts[q].clone()
                };
                let query = RawQuery::from_stored(text);
                // Segment writes run with the audience in memory, as the
                // server's service brings it.
                live.resident(site).await.unwrap();
                match slots[slot] {
                    None => {
                        let new = NewSegment {
                            name: SegmentName::parse(&format!("slot {slot}")).unwrap(),
                            description: None,
                            query,
                        };
                        match store.create_segment(site, &new, now, &Actor::Cli).await {
                            Ok(made) => slots[slot] = Some(made.id.0),
                            // Slot 2 refers to slot 0, which may be discarded.
                            Err(StorageError::Refused(_)) => {}
                            Err(e) => panic!("create: {e}"),
                        }
                    }
                    Some(id) => {
                        let patch = SegmentPatch {
                            query: Some(query),
                            ..SegmentPatch::default()
                        };
                        let changed = store
                            .update_segment(
                                site,
                                SegmentId(id),
                                &patch,
                                &Precondition::None,
                                now,
                                &Actor::Cli,
                            )
                            .await;
                        // A discarded segment cannot be changed, nor refer to
                        // a discarded one: fine.
                        assert!(matches!(
                            changed,
                            Ok(_) | Err(StorageError::NotFound | StorageError::Refused(_))
                        ));
                    }
                }
            }
            Op::Discard(slot) | Op::Restore(slot) => {
                let Some(id) = slots[slot] else { continue };
                // A segment another refers to cannot be discarded (the
                // service refuses it); slot 2 refers to slot 0.
                if matches!(op, Op::Discard(0)) && slot_kept(&*store, site, slots[2]).await {
                    continue;
                }
                live.resident(site).await.unwrap();
                let id = SegmentId(id);
                let (none, cli) = (&Precondition::None, &Actor::Cli);
                let done = match op {
                    Op::Discard(_) => store.discard_segment(site, id, none, now, cli).await,
                    _ => store.restore_segment(site, id, none, now, cli).await,
                };
                assert!(matches!(
                    done,
                    Ok(_) | Err(StorageError::NotFound | StorageError::Refused(_))
                ));
            }
            Op::Tick(ms) => {
                clock.advance_ms(ms);
                if checkpoints == Checkpoints::Never {
                    // The sweep without its checkpoints.
                    for site in store.journal_sites().await.unwrap() {
                        sweep_site(&*store, &live, clock.as_ref(), site)
                            .await
                            .unwrap();
                    }
                } else {
                    sweep(&*store, &live, clock.as_ref()).await.unwrap();
                }
                swept = true;
            }
        }
        if checkpoints == Checkpoints::EveryStep {
            store.checkpoint_journal(site).await.unwrap();
        }
        seen.push(observe(&*store, site, clock.now_ms(), swept).await);
        check(&*store, site, &seen).await?;
    }
    Ok(())
}

async fn slot_kept(store: &dyn Store, site: i64, id: Option<i64>) -> bool {
    let Some(id) = id else { return false };
    store
        .get_segment(site, SegmentId(id))
        .await
        .unwrap()
        .is_some_and(|s| s.is_kept())
}

/// The members of every kept segment at `at`, by the naive evaluator over
/// the stored rows.
async fn observe(store: &dyn Store, site: i64, at: i64, swept: bool) -> Observed {
    let (people, events) = world_of(store, site).await;
    let kept: Vec<(i64, Query)> = store
        .list_segments(site, crate::segment::Listing::Kept)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|s| Some((s.id.0, corral_core::query::parse(s.query.as_str()).ok()?)))
        .collect();
    let segments: HashMap<i64, Query> = kept.iter().cloned().collect();
    let world = World {
        people: &people,
        events: &events,
        segments: &segments,
        now: at,
    };
    let moves = |q: &Query| {
        q.moves_with_time()
            || q.segment_refs()
                .iter()
                .any(|r| segments.get(r).is_some_and(Query::moves_with_time))
    };
    let members = kept
        .iter()
        .map(|(id, q)| (*id, (world.members(q).unwrap_or_default(), moves(q))))
        .collect();
    Observed { at, swept, members }
}

/// The journal's members at every observed instant equal the oracle's
/// (segments that move with the clock: at sweeps), and the hourly series up
/// to now counts them.
async fn check(store: &dyn Store, site: i64, seen: &[Observed]) -> Result<(), Mismatch> {
    let last = seen.last().expect("a step was observed");
    for (j, then) in seen.iter().enumerate() {
        for (&segment, (expected, moves)) in &then.members {
            if *moves && !then.swept {
                continue;
            }
            let got = match history::members_at(store, site, SegmentId(segment), then.at).await {
                Ok(got) => got,
                // Its history began after that instant (or not yet).
                Err(crate::service::SegmentError::Invalid(_)) => continue,
                Err(e) => panic!("members at: {e}"),
            };
            if *got != *expected {
                return Err(Mismatch::Members {
                    step: j,
                    at: then.at,
                    segment,
                    got: got.to_vec(),
                    expected: expected.clone(),
                });
            }
        }
    }
    // The series by hour, ending now: each point's members are the
    // members at its end, which the last observation before it gives.
    for (&segment, (_, moves)) in &last.members {
        if *moves {
            continue;
        }
        let from = seen[0].at - 3_600_000;
        let to = last.at + 1;
        let series = history::series(store, site, SegmentId(segment), from, to, Interval::Hour)
            .await
            .unwrap();
        let mut got = Vec::new();
        let mut expected = Vec::new();
        for (i, point) in series.points.iter().enumerate() {
            let end = series.points.get(i + 1).map_or(to, |p| p.at) - 1;
            let Some(then) = seen.iter().rev().find(|o| o.at <= end) else {
                continue;
            };
            let Some((members, _)) = then.members.get(&segment) else {
                continue;
            };
            if series.begins_at.is_some_and(|b| b > then.at) {
                continue;
            }
            got.push(point.members);
            expected.push(members.len() as i64);
        }
        if got != expected {
            return Err(Mismatch::Series {
                segment,
                points: series.points.len(),
                got,
                expected,
            });
        }
    }
    Ok(())
}

/// How a case that found the journal wrong fails: not a panic or an error.
const CAUGHT: &str = "the journal differs from the rows: ";

fn case(
    backend: Backend,
    (ops, checkpoints): (Vec<Op>, Checkpoints),
    broken: Broken,
) -> Result<(), TestCaseError> {
    runtime()
        .block_on(run_ops(backend, ops, checkpoints, broken))
        .map_err(|mismatch| TestCaseError::fail(format!("{CAUGHT}{mismatch}")))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn the_journal_gives_the_members_the_rows_had_at_every_instant(
        ops in prop::collection::vec(arb_op(), 1..16),
        checkpoints in arb_checkpoints(),
    ) {
        case(Backend::Sqlite, (ops, checkpoints), Broken::Nothing)?;
    }
}

proptest! {
    // Each case makes a database of its own on the cluster: fewer cases.
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    /// The same on PostgreSQL, writes coming through two stores as from two
    /// servers.
    #[test]
    fn the_journal_on_postgres_gives_the_members_the_rows_had_at_every_instant(
        ops in prop::collection::vec(arb_op(), 1..16),
        checkpoints in arb_checkpoints(),
    ) {
        case(Backend::Postgres, (ops, checkpoints), Broken::Nothing)?;
    }
}

/// The seed the broken journal is tried with: fixed, so that every run
/// tries the same cases; `CORRAL_MUTANT_SEED` tries others.
const BROKEN_SEED: u64 = 21;

#[test]
fn the_property_catches_a_journal_that_drops_leaves() {
    catches_a_mutant(
        "a journal that drops leaves",
        BROKEN_SEED,
        32,
        (prop::collection::vec(arb_op(), 1..16), arb_checkpoints()),
        CAUGHT,
        |ops| case(Backend::Sqlite, ops, Broken::Leaves),
    );
}

/// Tag moves of a checkpoint case: (one of five subscribers, give or take
/// tag `x`), each at an instant of its own, several to a write.
fn arb_moves() -> impl Strategy<Value = (Vec<Vec<(usize, bool)>>, usize)> {
    (
        prop::collection::vec(
            prop::collection::vec((0..5usize, any::<bool>()), 1..4),
            1..40,
        ),
        1..4usize,
    )
}

/// Members at every instant of a tag segment's history, as the journal
/// gives them before any checkpoint and after checkpoints every `spacing`
/// transitions (taken part way, and at the end), equal what the moves made
/// of them.
async fn checkpointed_history(
    (writes, spacing): (Vec<Vec<(usize, bool)>>, usize),
    broken: bool,
) -> Result<(), Mismatch> {
    let s = stores(Backend::Sqlite).await.expect("SQLite");
    let (store, site) = (Arc::clone(&s.store), s.site);
    if broken {
        store.break_checkpoints();
    }
    store.space_checkpoints(spacing);
    let live = Arc::new(Live::new(store.clone()));
    let evaluator: Arc<dyn Evaluator> = live.clone();
    store.set_evaluator(Arc::downgrade(&evaluator));
    let emails: Vec<String> = (0..5).map(|i| format!("s{i}@x.io")).collect();
    let mut now = NOW + 1_800_000;
    live.resident(site).await.unwrap();
    let new = NewSegment {
        name: SegmentName::parse("tagged").unwrap(),
        description: None,
        query: RawQuery::from_stored(r#"{"tag":{"has":"x"}}"#.into()),
    };
    let segment = store
        .create_segment(site, &new, now, &Actor::Cli)
        .await
        .unwrap()
        .id;
    // The members after each write, by the email's index.
    let mut tagged = std::collections::BTreeSet::new();
    let mut expected: Vec<(i64, std::collections::BTreeSet<usize>)> = Vec::new();
    let half = writes.len() / 2;
    for (i, write) in writes.into_iter().enumerate() {
        now += 1_000;
        let mut changes = Vec::new();
        for (who, add) in write {
            let mut change =
                SubscriberChange::touch(corral_core::audience::Email::parse(&emails[who]).unwrap());
            let tag = corral_core::audience::TagName::parse("x").unwrap();
            if add {
                change.add_tags = vec![tag];
                tagged.insert(who);
            } else {
                change.remove_tags = vec![tag];
                tagged.remove(&who);
            }
            changes.push(change);
        }
        store.apply_changes(site, changes, now).await.unwrap();
        expected.push((now, tagged.clone()));
        if i == half {
            store.checkpoint_journal(site).await.unwrap();
        }
    }
    let mut ids = BTreeMap::new();
    for (i, email) in emails.iter().enumerate() {
        let email = corral_core::audience::Email::parse(email).unwrap();
        if let Some(found) = store.subscriber_by_email(site, &email).await.unwrap() {
            ids.insert(i, found.id);
        }
    }
    for round in 0..2 {
        if round == 1 {
            store.checkpoint_journal(site).await.unwrap();
        }
        for (step, (at, members)) in expected.iter().enumerate() {
            let got = history::members_at(&*store, site, segment, *at)
                .await
                .unwrap();
            let mut want: Vec<i64> = members.iter().map(|i| ids[i]).collect();
            want.sort_unstable();
            if *got != want {
                return Err(Mismatch::Members {
                    step,
                    at: *at,
                    segment: segment.0,
                    got: got.to_vec(),
                    expected: want,
                });
            }
        }
    }
    Ok(())
}

fn checkpoint_case(
    moves: (Vec<Vec<(usize, bool)>>, usize),
    broken: bool,
) -> Result<(), TestCaseError> {
    runtime()
        .block_on(checkpointed_history(moves, broken))
        .map_err(|mismatch| TestCaseError::fail(format!("{CAUGHT}{mismatch}")))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn members_at_every_instant_are_the_same_from_checkpoints(moves in arb_moves()) {
        checkpoint_case(moves, false)?;
    }
}

#[test]
fn the_property_catches_checkpoints_that_forget_the_leaves_they_undo() {
    catches_a_mutant(
        "checkpoints that forget the leaves they undo",
        BROKEN_SEED,
        24,
        arb_moves(),
        CAUGHT,
        |moves| checkpoint_case(moves, true),
    );
}
