//! The overlap of segments: the members of several saved segments worked out
//! together over one audience, and the size of every region of their Venn
//! diagram.
//!
//! [`members_each`] evaluates each segment as a reference to it
//! (`{"segment":{"member_of":ID}}` means exactly its members) with one
//! engine, so a segment, a referenced segment or an event test that several
//! of them share is computed once. [`region_counts`] then counts, for k sets,
//! the subscribers of each of the 2^k combinations of "in" and "out" in one
//! pass over the sets' words: each word of 64 subscribers is split set by set
//! into the words of every region so far (`in`: the region's word and the
//! set's, `out`: the region's word and not the set's), 2 + 4 + … + 2^k ANDs a
//! word, and each region's word is counted; never one pass over whole sets
//! per region. Region `m` holds the subscribers in exactly the sets whose
//! bits are set in `m` (bit `i` is `sets[i]`); region 0 is those in none.
//! [`region_order`] is the order the regions are listed in: by how many sets
//! they are in, then by which, in the order the sets were given.

use super::members::Engine;
use super::{Cancel, EvalError, Resolver};
use crate::columns::Columns;
use crate::query::Query;
use crate::query::ast::Condition;
use fixedbitset::FixedBitSet;

/// The most sets [`region_counts`] takes (2^16 regions).
pub const MAX_SETS: usize = 16;

/// Subscribers from which the segments are worked out on two threads (in
/// tests, a handful, so that the property test runs both ways).
const PARALLEL_AT: usize = if cfg!(test) { 8 } else { 50_000 };

/// The members of each segment `ids` names, in that order, at `now`.
///
/// When `split` allows a second core and the audience is big enough, the
/// segments are shared between two threads, each with an engine of its own
/// and on one core: segments that reach a common segment (one refers to
/// another, or both to a third) go to the same thread, so that what they
/// share is still computed once, and the groups are dealt out by their
/// estimated cost ([`super::cost`]), the costliest first to the less loaded
/// thread. Otherwise one engine works them out one after the other
/// (splitting its big scans when `split` allows). A scan that sums is never
/// split, so several segments' scans side by side are what takes a second
/// core to them.
pub fn members_each(
    audience: &Columns,
    ids: &[i64],
    now: i64,
    resolver: &(dyn Resolver + Sync),
    cancel: &Cancel,
    split: bool,
) -> Result<Vec<FixedBitSet>, EvalError> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let groups = groups(ids, resolver);
    if !split || cores < 2 || groups.len() < 2 || audience.len() < PARALLEL_AT {
        let mut engine = Engine::new(audience, now, resolver, cancel.clone());
        engine.split = split;
        return ids.iter().map(|&id| engine.segment(id)).collect();
    }
    // Two workers, the costliest group first to the less loaded one.
    let cost = |group: &[usize]| -> u64 {
        let refs = group
            .iter()
            .map(|&i| Condition::Segment {
                id: ids[i],
                member: true,
            })
            .collect();
        super::cost::estimate(
            audience,
            &Query::Condition(Box::new(Condition::Any(refs))),
            resolver,
        )
        .values
    };
    let mut costed: Vec<(u64, Vec<usize>)> = groups.into_iter().map(|g| (cost(&g), g)).collect();
    costed.sort_by_key(|(c, _)| std::cmp::Reverse(*c));
    let mut workers: [(u64, Vec<usize>); 2] = Default::default();
    for (c, group) in costed {
        let lighter = usize::from(workers[1].0 < workers[0].0);
        workers[lighter].0 = workers[lighter].0.saturating_add(c);
        workers[lighter].1.extend(group);
    }
    let run = |mine: &[usize]| -> Result<Vec<(usize, FixedBitSet)>, EvalError> {
        let mut engine = Engine::new(audience, now, resolver, cancel.clone());
        engine.split = false;
        mine.iter()
            .map(|&i| Ok((i, engine.segment(ids[i])?)))
            .collect()
    };
    let [(_, first), (_, second)] = &workers;
    // A test's mutant is switched on per thread: the second thread runs
    // with the switch of the thread that asked.
    #[cfg(test)]
    let switched = super::members::mutant::current();
    let (mine, theirs) = std::thread::scope(|scope| {
        let other = scope.spawn(|| {
            #[cfg(test)]
            let _on = super::members::mutant::set(switched);
            run(second)
        });
        let mine = run(first);
        let theirs = other
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (mine, theirs)
    });
    let mut sets: Vec<Option<FixedBitSet>> = vec![None; ids.len()];
    for (i, set) in mine?.into_iter().chain(theirs?) {
        sets[i] = Some(set);
    }
    Ok(sets
        .into_iter()
        .map(|set| set.expect("every segment was worked out"))
        .collect())
}

/// The positions of `ids` in groups: two are in one group when the segments
/// they reach (themselves and every segment they refer to, however deep)
/// meet.
fn groups(ids: &[i64], resolver: &dyn Resolver) -> Vec<Vec<usize>> {
    let reach = |id: i64| -> Vec<i64> {
        let mut seen = vec![id];
        let mut i = 0;
        while i < seen.len() && seen.len() <= 64 {
            if let Some(query) = resolver.segment_query(seen[i]) {
                for next in query.segment_refs() {
                    if !seen.contains(&next) {
                        seen.push(next);
                    }
                }
            }
            i += 1;
        }
        seen
    };
    let mut groups: Vec<(Vec<usize>, Vec<i64>)> = Vec::new();
    for (i, &id) in ids.iter().enumerate() {
        let mut reached = reach(id);
        let mut members = vec![i];
        // Every group this one meets joins it.
        let mut g = 0;
        while g < groups.len() {
            if groups[g].1.iter().any(|x| reached.contains(x)) {
                let (others, their_reach) = groups.swap_remove(g);
                members.extend(others);
                reached.extend(their_reach);
            } else {
                g += 1;
            }
        }
        groups.push((members, reached));
    }
    groups
        .into_iter()
        .map(|(mut members, _)| {
            members.sort_unstable();
            members
        })
        .collect()
}

/// How many subscribers each region of the sets' Venn diagram holds:
/// `counts[m]` for the region of mask `m` (see the module's documentation),
/// `counts[0]` those in none of the sets. The sets are over one audience
/// (the first one's length is taken as the audience's); at most
/// [`MAX_SETS`] of them.
pub fn region_counts(sets: &[FixedBitSet]) -> Vec<u64> {
    let k = sets.len();
    assert!(k <= MAX_SETS, "at most {MAX_SETS} sets");
    let len = sets.first().map_or(0, FixedBitSet::len);
    let words: Vec<&[usize]> = sets.iter().map(|s| s.as_slice()).collect();
    let n_words = len.div_ceil(BITS);
    let mut counts = vec![0u64; 1 << k];
    let mut region = vec![0usize; 1 << k];
    for w in 0..n_words {
        // The audience's own bits of this word: the last word may end early.
        let tail = len - w * BITS;
        region[0] = if tail >= BITS { !0 } else { (1 << tail) - 1 };
        for (i, set) in words.iter().enumerate() {
            let bit = 1 << i;
            let word = set.get(w).copied().unwrap_or(0);
            for m in 0..bit {
                let r = region[m];
                region[m | bit] = r & word;
                region[m] = r & !word;
            }
        }
        for (count, r) in counts.iter_mut().zip(&region) {
            *count += u64::from(r.count_ones());
        }
    }
    counts
}

const BITS: usize = usize::BITS as usize;

/// The masks of the 2^k − 1 regions of k sets that hold someone's
/// membership of at least one set, in the order they are listed: by how many
/// sets they are in, then by which (the first set's regions first, as in
/// `[1]`, `[2]`, `[3]`, `[1, 2]`, `[1, 3]`, `[2, 3]`, `[1, 2, 3]`). The last
/// is the intersection of them all.
pub fn region_order(k: usize) -> Vec<usize> {
    assert!(k <= MAX_SETS, "at most {MAX_SETS} sets");
    let positions = |m: usize| -> Vec<usize> { (0..k).filter(|i| m & (1 << i) != 0).collect() };
    let mut masks: Vec<usize> = (1..1usize << k).collect();
    masks.sort_by_key(|&m| (m.count_ones(), positions(m)));
    masks
}

#[cfg(test)]
mod tests {
    use super::super::naive::{Happening, Person, World};
    use super::super::testing::cases;
    use super::*;
    use crate::query::ast::Condition;
    use crate::query::{Query, parse};
    use proptest::prelude::*;
    use std::collections::HashMap;
    use std::sync::Arc;

    fn set(len: usize, members: &[usize]) -> FixedBitSet {
        let mut set = FixedBitSet::with_capacity(len);
        for &i in members {
            set.insert(i);
        }
        set
    }

    #[test]
    fn regions_of_three_sets_by_hand() {
        // 0: a; 1: a b; 2: a b c; 3: c; 4: none; 70: b (second word).
        let len = 71;
        let sets = [
            set(len, &[0, 1, 2]),
            set(len, &[1, 2, 70]),
            set(len, &[2, 3]),
        ];
        let counts = region_counts(&sets);
        let mut expected = vec![0u64; 8];
        expected[0b001] = 1;
        expected[0b011] = 1;
        expected[0b111] = 1;
        expected[0b100] = 1;
        expected[0b010] = 1;
        expected[0] = 71 - 5;
        assert_eq!(counts, expected);
    }

    #[test]
    fn an_empty_audience_has_empty_regions() {
        assert_eq!(region_counts(&[set(0, &[]), set(0, &[])]), vec![0; 4]);
        assert_eq!(region_counts(&[]), vec![0]);
    }

    #[test]
    fn regions_are_listed_by_how_many_sets_then_which() {
        assert_eq!(region_order(2), vec![0b01, 0b10, 0b11]);
        assert_eq!(
            region_order(3),
            vec![0b001, 0b010, 0b100, 0b011, 0b101, 0b110, 0b111]
        );
        let five = region_order(5);
        assert_eq!(five.len(), 31);
        assert_eq!(five.last(), Some(&0b11111));
        assert_eq!(&five[..5], &[1, 2, 4, 8, 16]);
        // {1,2} before {1,3}: lexicographic by position, not by mask value.
        assert_eq!(region_order(3)[4], 0b101);
    }

    #[test]
    fn segments_that_reach_a_common_segment_are_worked_out_together() {
        let query = |text: &str| Arc::new(parse(text).expect("a query"));
        let resolver: HashMap<i64, Arc<Query>> = [
            (1, query(r#"{"segment":{"member_of":"100"}}"#)),
            (2, query(r#"{"not":{"segment":{"member_of":"101"}}}"#)),
            (101, query(r#"{"segment":{"not_member_of":"100"}}"#)),
            (100, query(r#"{"subscribed":true}"#)),
            (3, query(r#"{"tag":{"has":"x"}}"#)),
            (4, query(r#"{"segment":{"member_of":"3"}}"#)),
            (5, query(r#"{"subscribed":false}"#)),
        ]
        .into();
        let mut found = groups(&[1, 3, 2, 5, 4], &resolver);
        found.sort();
        assert_eq!(found, vec![vec![0, 2], vec![1, 4], vec![3]]);
        // One that is also the other's reference.
        assert_eq!(groups(&[100, 1], &resolver), vec![vec![0, 1]]);
    }

    /// One random case: an audience, the definitions of segments 1 to 5
    /// (which may refer to 100 and 101), 100 and 101 themselves, and the 2
    /// to 5 segments compared, in the order asked.
    #[derive(Debug, Clone)]
    struct Case {
        now: i64,
        people: Vec<Person>,
        events: Vec<Happening>,
        definitions: Vec<(i64, Condition)>,
        compared: Vec<i64>,
        seed: u64,
    }

    fn arb_case() -> impl Strategy<Value = Case> {
        prop::sample::select(cases::clocks())
            .prop_flat_map(|now| {
                (
                    Just(now),
                    prop::collection::vec(cases::arb_spec_at(now), 5),
                    cases::arb_leaf_at(now),
                    cases::arb_spec_at(now),
                    prop::sample::subsequence(vec![1i64, 2, 3, 4, 5, 100, 101], 2..=5)
                        .prop_shuffle(),
                    any::<u64>(),
                )
            })
            .prop_flat_map(|(now, specs, s100, s101, compared, seed)| {
                // 101 may refer to 100; 100 refers to nothing (no cycles).
                let s100 = match s100 {
                    Condition::Segment { .. } => Condition::All(vec![]),
                    c => c,
                };
                let s101 = if super::super::tests::contains_ref(&s101, 101) {
                    Condition::Subscribed(false)
                } else {
                    s101
                };
                let mut definitions: Vec<(i64, Condition)> = (1..=5).zip(specs).collect::<Vec<_>>();
                definitions.push((100, s100));
                definitions.push((101, s101));
                let mut hot = cases::Hot::default();
                for (_, c) in &definitions {
                    cases::edges_of(c, now, &mut hot);
                }
                let times = cases::Times { now, hot };
                cases::arb_world(times, 0..=140).prop_map(move |(people, events)| Case {
                    now,
                    people,
                    events,
                    definitions: definitions.clone(),
                    compared: compared.clone(),
                    seed,
                })
            })
    }

    /// The property: the engine's members of each compared segment, and the
    /// size of every region, are what the naive evaluator's sets give.
    fn holds_for(case: &Case) -> Result<(), TestCaseError> {
        let mut writer = cases::Writer::new(case.seed);
        let mut resolver: HashMap<i64, Arc<Query>> = HashMap::new();
        let mut written: HashMap<i64, Query> = HashMap::new();
        for (id, c) in &case.definitions {
            let text = writer.query(c);
            let query = parse(&text)
                .map_err(|p| TestCaseError::fail(format!("{text} does not parse: {p:?}")))?;
            resolver.insert(*id, Arc::new(query));
            written.insert(*id, Query::Condition(Box::new(c.clone())));
        }
        let queries: Vec<&Query> = resolver.values().map(|q| q.as_ref()).collect();
        let audience = super::super::tests::build(&case.people, &case.events, &queries);
        let sets = members_each(
            &audience,
            &case.compared,
            case.now,
            &resolver,
            &Cancel::default(),
            true,
        )
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let counts = region_counts(&sets);

        let world = World {
            people: &case.people,
            events: &case.events,
            segments: &written,
            now: case.now,
        };
        let mut expected = vec![0u64; 1 << case.compared.len()];
        let naive_sets: Vec<Vec<i64>> = case
            .compared
            .iter()
            .map(|id| world.members(&written[id]).expect("a condition"))
            .collect();
        for (i, set) in sets.iter().enumerate() {
            let got: Vec<i64> = set.ones().map(|x| audience.ids[x]).collect();
            prop_assert_eq!(
                &got,
                &naive_sets[i],
                "members of segment {}",
                case.compared[i]
            );
        }
        for person in &case.people {
            let mask = naive_sets
                .iter()
                .enumerate()
                .filter(|(_, s)| s.binary_search(&person.id).is_ok())
                .fold(0usize, |m, (i, _)| m | 1 << i);
            expected[mask] += 1;
        }
        prop_assert_eq!(
            counts,
            expected,
            "regions of {:?} over {} people",
            case.compared,
            case.people.len()
        );
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

        /// Audiences of 0 to 140 people: none, less than a word, and
        /// several words ending inside one.
        #[test]
        fn regions_agree_with_the_naive_evaluator(case in arb_case()) {
            holds_for(&case)?;
        }
    }
}
