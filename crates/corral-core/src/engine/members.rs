//! The engine: every condition becomes a bit set over the audience's
//! subscribers, combined with word-wide `and`, `or` and `not`.
//!
//! Leaves read columns: a tag is already a bit set; a field, an email or a
//! creation time is one pass over a column. An event test is one pass over
//! the events of its type, accumulating per subscriber the count, sum and
//! first and last time of the events it counts, then one pass over the
//! subscribers to test those aggregates. Referenced segments are evaluated
//! once per request and reused, and so is an event test written more than
//! once (the same scan is not done twice).
//!
//! An evaluation can be cancelled ([`Cancel`]): it checks between conditions
//! and every 65,536 events of a scan, so an evaluation nobody waits for any
//! more (its request timed out, its client left) stops within milliseconds.

use crate::columns::{Columns, DetailColumn, NOBODY, Val};
use crate::query::ast::{
    Condition, EventTest, NumberTest, Query, SampleTest, Scalar, TagTest, TextTest, TimeRange,
    ValueTest,
};
use crate::query::parse::parse_instant;
use fixedbitset::FixedBitSet;
use std::collections::HashMap;
use std::sync::Arc;

/// How deep segment references may chain (a cycle would be infinitely deep;
/// saving refuses cycles, this is the guard if one slips in).
const MAX_REFERENCE_DEPTH: usize = 32;

/// Why a query cannot be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    #[error(
        "the query is foreign ({{\"foreign\": …}}): Corral keeps it as written but does not evaluate it"
    )]
    Foreign,
    #[error(
        "segment {0}, referenced by the query, is foreign ({{\"foreign\": …}}) and cannot be evaluated"
    )]
    ForeignReference(i64),
    #[error("segment {0}, referenced by the query, does not exist or is discarded")]
    MissingReference(i64),
    #[error("segment references nest more than {MAX_REFERENCE_DEPTH} deep, or form a cycle")]
    ReferencesTooDeep,
    #[error("event details for {0:?} are not loaded")]
    DetailsNotLoaded(String),
    /// Nobody waits for the answer any more.
    #[error("the evaluation was cancelled")]
    Cancelled,
    #[error("{0}")]
    TooExpensive(super::cost::TooExpensive),
}

/// Tells a running evaluation to stop. Clones share the flag.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<std::sync::atomic::AtomicBool>);

impl Cancel {
    pub fn cancel(&self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn check(&self) -> Result<(), EvalError> {
        if self.is_cancelled() {
            Err(EvalError::Cancelled)
        } else {
            Ok(())
        }
    }
}

/// Where the queries of referenced segments come from.
pub trait Resolver {
    /// The parsed query of a kept segment of the site, or `None`.
    fn segment_query(&self, id: i64) -> Option<Arc<Query>>;
}

impl Resolver for HashMap<i64, Arc<Query>> {
    fn segment_query(&self, id: i64) -> Option<Arc<Query>> {
        self.get(&id).cloned()
    }
}

/// The members of `query` at `now`: a bit per subscriber of the audience.
pub fn members(
    audience: &Columns,
    query: &Query,
    now: i64,
    resolver: &dyn Resolver,
) -> Result<FixedBitSet, EvalError> {
    members_unless(audience, query, now, resolver, &Cancel::default())
}

/// [`members`], stopping with [`EvalError::Cancelled`] once `cancel` is set.
pub fn members_unless(
    audience: &Columns,
    query: &Query,
    now: i64,
    resolver: &dyn Resolver,
    cancel: &Cancel,
) -> Result<FixedBitSet, EvalError> {
    members_on(audience, query, now, resolver, cancel, true)
}

/// [`members_unless`], on one core when `split` is false (big scans
/// otherwise take both): heavy evaluations leave a core to cheap ones.
pub fn members_on(
    audience: &Columns,
    query: &Query,
    now: i64,
    resolver: &dyn Resolver,
    cancel: &Cancel,
    split: bool,
) -> Result<FixedBitSet, EvalError> {
    let Query::Condition(condition) = query else {
        return Err(EvalError::Foreign);
    };
    let mut engine = Engine::new(audience, now, resolver, cancel.clone());
    engine.split = split;
    engine.eval(condition)
}

pub(super) struct Engine<'a> {
    pub(super) audience: &'a Columns,
    pub(super) now: i64,
    resolver: &'a dyn Resolver,
    memo: HashMap<i64, FixedBitSet>,
    /// Results of event tests, by the test (written out): a test that
    /// appears more than once is scanned once.
    events: HashMap<String, FixedBitSet>,
    depth: usize,
    pub(super) cancel: Cancel,
    /// Whether big scans may take a second core.
    pub(super) split: bool,
}

impl<'a> Engine<'a> {
    pub(super) fn new(
        audience: &'a Columns,
        now: i64,
        resolver: &'a dyn Resolver,
        cancel: Cancel,
    ) -> Self {
        Self {
            audience,
            now,
            resolver,
            memo: HashMap::new(),
            events: HashMap::new(),
            depth: 0,
            cancel,
            split: true,
        }
    }

    fn n(&self) -> usize {
        self.audience.len()
    }

    fn full(&self) -> FixedBitSet {
        let mut set = FixedBitSet::with_capacity(self.n());
        set.insert_range(..);
        set
    }

    /// The subscribers passing `test`, built a word of 64 at a time.
    fn filter(&self, test: impl Fn(usize) -> bool) -> FixedBitSet {
        let n = self.n();
        let mut set = FixedBitSet::with_capacity(n);
        const BITS: usize = usize::BITS as usize;
        for (w, word) in set.as_mut_slice().iter_mut().enumerate() {
            let from = w * BITS;
            let mut bits = 0usize;
            for (b, i) in (from..n.min(from + BITS)).enumerate() {
                bits |= usize::from(test(i)) << b;
            }
            *word = bits;
        }
        set
    }

    pub(super) fn eval(&mut self, condition: &Condition) -> Result<FixedBitSet, EvalError> {
        self.cancel.check()?;
        let a = self.audience;
        Ok(match condition {
            Condition::All(cs) => {
                let mut set = self.full();
                for c in cs {
                    set.intersect_with(&self.eval(c)?);
                }
                set
            }
            Condition::Any(cs) => {
                let mut set = FixedBitSet::with_capacity(self.n());
                for c in cs {
                    set.union_with(&self.eval(c)?);
                }
                set
            }
            Condition::Not(c) => {
                let mut set = self.eval(c)?;
                set.toggle_range(..);
                set
            }
            Condition::Groups(groups) => {
                let mut set = FixedBitSet::with_capacity(self.n());
                for filters in groups {
                    let mut group = self.full();
                    for c in filters {
                        group.intersect_with(&self.eval(c)?);
                    }
                    set.union_with(&group);
                }
                set
            }
            Condition::Email(test) => match &test.domain {
                // A domain is one comparison of small numbers per subscriber.
                Some(domain) => match a.domain_id(domain) {
                    None => FixedBitSet::with_capacity(self.n()),
                    Some(id) => {
                        let rest = TextTest {
                            domain: None,
                            ..test.clone()
                        };
                        #[cfg(test)]
                        let rest = if mutant::domain_alone() {
                            TextTest::default()
                        } else {
                            rest
                        };
                        if rest == TextTest::default() {
                            // Without a branch per subscriber: a domain holds
                            // a fraction of them, so a branch would guess wrong.
                            self.filter(|i| a.domain_of(i) == id)
                        } else {
                            self.filter(|i| a.domain_of(i) == id && rest.matches(a.email_lower(i)))
                        }
                    }
                },
                None => self.filter(|i| test.matches(a.email_lower(i))),
            },
            Condition::Subscribed(want) => {
                let mut set = a.subscribed.clone();
                if !want {
                    set.toggle_range(..);
                }
                set
            }
            Condition::Created(test) => {
                let range = test.resolve(self.now);
                self.filter(|i| range.contains(a.created_at[i]))
            }
            Condition::Tag(test) => self.tags(test),
            Condition::Field { key, test } => match a.fields.get(key) {
                Some(column) => {
                    // Decided once per distinct value, then read off per
                    // subscriber by its code.
                    let matcher = ValueMatcher::new(test, self.now);
                    let instants = test.has_time_ops().then(|| a.field_instants(key));
                    let table: Vec<bool> = column
                        .values()
                        .iter()
                        .enumerate()
                        .map(|(code, value)| {
                            matcher.matches_with(value, || instants.as_ref().and_then(|t| t[code]))
                        })
                        .collect();
                    let codes = column.codes();
                    self.filter(|i| table[codes[i] as usize])
                }
                None => {
                    if ValueMatcher::new(test, self.now).matches(&Val::Missing) {
                        self.full()
                    } else {
                        FixedBitSet::with_capacity(self.n())
                    }
                }
            },
            Condition::Event(test) => {
                let key = format!("{test:?}");
                match self.events.get(&key) {
                    Some(set) => set.clone(),
                    None => {
                        let set = self.event(test)?;
                        self.events.insert(key, set.clone());
                        set
                    }
                }
            }
            Condition::Segment { id, member } => {
                let mut set = self.segment(*id)?;
                if !member {
                    set.toggle_range(..);
                }
                set
            }
            Condition::Sample(test) => {
                // Each subscriber's bucket is worked out once per snapshot
                // and salt, then read off.
                let cancel = &self.cancel;
                let buckets = a
                    .uuids
                    .buckets(&test.salt, &|| cancel.is_cancelled())
                    .ok_or(EvalError::Cancelled)?;
                self.filter(|i| sample_holds(test, buckets[i]))
            }
        })
    }

    /// The members of a referenced segment, evaluated once per request.
    pub(super) fn segment(&mut self, id: i64) -> Result<FixedBitSet, EvalError> {
        if let Some(set) = self.memo.get(&id) {
            return Ok(set.clone());
        }
        if self.depth >= MAX_REFERENCE_DEPTH {
            return Err(EvalError::ReferencesTooDeep);
        }
        let query = self
            .resolver
            .segment_query(id)
            .ok_or(EvalError::MissingReference(id))?;
        let Query::Condition(condition) = query.as_ref() else {
            return Err(EvalError::ForeignReference(id));
        };
        self.depth += 1;
        let result = self.eval(condition);
        self.depth -= 1;
        let set = result?;
        self.memo.insert(id, set.clone());
        Ok(set)
    }

    fn tags(&self, test: &TagTest) -> FixedBitSet {
        let a = self.audience;
        let empty = FixedBitSet::with_capacity(self.n());
        let holders = |name: &String| a.tag(name).unwrap_or(&empty);
        let any = |names: &Vec<String>| {
            let mut set = FixedBitSet::with_capacity(self.n());
            for name in names {
                set.union_with(holders(name));
            }
            set
        };
        let mut set = self.full();
        if let Some(name) = &test.has {
            set.intersect_with(holders(name));
        }
        if let Some(name) = &test.has_not {
            set.difference_with(holders(name));
        }
        if let Some(names) = &test.any_of {
            set.intersect_with(&any(names));
        }
        if let Some(names) = &test.all_of {
            for name in names {
                set.intersect_with(holders(name));
            }
        }
        if let Some(names) = &test.none_of {
            set.difference_with(&any(names));
        }
        set
    }

    /// The subscribers with at least one event `test` counts in `window`
    /// (within the test's own window too).
    fn performed(&self, test: &EventTest, window: TimeRange) -> Result<FixedBitSet, EvalError> {
        let own = test.when.resolve(self.now);
        let window = TimeRange {
            from: window.from.max(own.from),
            until: window.until.min(own.until),
        };
        let n = self.n();
        if window.from >= window.until {
            return Ok(FixedBitSet::with_capacity(n));
        }
        scan_into(
            self.audience,
            test,
            (self.now, window),
            (&self.cancel, self.split),
            || FixedBitSet::with_capacity(n),
            |set, s, _, _| set.insert(s),
            |set, other| set.union_with(&other),
        )
    }

    fn event(&self, test: &EventTest) -> Result<FixedBitSet, EvalError> {
        let (a, now, cancel) = (self.audience, self.now, &self.cancel);
        let split = self.split;
        let checks = Checks::new(test, now);
        let own = test.when.resolve(now);
        if test.sum.is_none() && test.count.is_none() {
            // Only first and last are tested: each is two "performed"
            // scans over time windows, one bit per subscriber, no facts.
            // first in [a, b): an event in [a, b), none before a; last in
            // [a, b): an event in [a, b), none from b on.
            #[cfg(test)]
            let first_is_last = mutant::is(mutant::Mutant::FirstIsLast);
            #[cfg(not(test))]
            let first_is_last = false;
            let mut set = self.full();
            for (edge, earliest) in [(&test.first, !first_is_last), (&test.last, false)] {
                let Some(edge) = edge else { continue };
                let range = edge.resolve(now);
                set.intersect_with(&self.performed(test, range)?);
                let outside = if earliest {
                    TimeRange {
                        from: i64::MIN,
                        until: range.from,
                    }
                } else {
                    TimeRange {
                        from: range.until,
                        until: i64::MAX,
                    }
                };
                set.difference_with(&self.performed(test, outside)?);
            }
            if test.first.is_some() || test.last.is_some() {
                return Ok(set);
            }
        }
        if test.sum.is_none() && test.first.is_none() && test.last.is_none() {
            let count = test.effective_count().unwrap_or_default();
            let at_least_one = NumberTest {
                at_least: Some(1.0),
                ..NumberTest::default()
            };
            let n = self.n();
            if count == at_least_one {
                // "Performed": one bit per subscriber, no counting.
                return scan_into(
                    a,
                    test,
                    (now, own),
                    (cancel, split),
                    || FixedBitSet::with_capacity(n),
                    |set, s, _, _| set.insert(s),
                    |set, other| set.union_with(&other),
                );
            }
            // Only the count is tested: one small counter per subscriber.
            let counts = scan_into(
                a,
                test,
                (now, own),
                (cancel, split),
                || vec![0u32; n],
                |counts, s, _, _| counts[s] += 1,
                |counts, other| counts.iter_mut().zip(other).for_each(|(c, o)| *c += o),
            )?;
            return Ok(self.filter(|i| count.matches(f64::from(counts[i]))));
        }
        let n = self.n();
        // A sum is added up by one thread, in storage order: halves added
        // apart and then together can differ in the last bit (floating
        // point), which would make membership depend on the machine's cores
        // and differ from the sum `explain` shows.
        let split = split && test.sum.is_none();
        let facts = scan_into(
            a,
            test,
            (now, own),
            (cancel, split),
            || Facts::new(n, test),
            |facts, s, at, amount| facts.add(s, at, amount),
            |facts, other| facts.merge(other),
        )?;
        Ok(self.filter(|i| checks.pass(&facts.get(i))))
    }
}

/// One event column an event test reads, made ready: its `where` columns
/// with their tests, and its `sum` column.
struct Part<'a, 't> {
    column: &'a crate::columns::EventColumn,
    filters: Vec<(DetailColumn, ValueMatcher<'t>)>,
    sum: Option<DetailColumn>,
}

fn parts<'a, 't>(
    audience: &'a Columns,
    test: &'t EventTest,
    now: i64,
) -> Result<Vec<Part<'a, 't>>, EvalError> {
    event_columns(audience, test)
        .into_iter()
        .map(|(kind, column)| {
            let sum = match &test.sum {
                Some((path, _)) => Some(
                    audience
                        .details(kind, path)
                        .ok_or_else(|| EvalError::DetailsNotLoaded(path.dotted()))?,
                ),
                None => None,
            };
            Ok(Part {
                column,
                filters: detail_columns(audience, kind, test, now)?,
                sum,
            })
        })
        .collect()
}

/// Calls `counted(subscriber, at, amount)` for every event of `part` in
/// `range` that passes the window and the `where` tests.
fn scan_part(
    part: &Part<'_, '_>,
    range: std::ops::Range<usize>,
    window: &TimeRange,
    cancel: &Cancel,
    counted: &mut impl FnMut(usize, i64, f64),
) -> Result<(), EvalError> {
    let column = part.column;
    for range in column.ranges_in(range, window) {
        for e in range {
            if e & 0xFFFF == 0 {
                cancel.check()?;
            }
            let (s, at) = (column.subscriber[e], column.at[e]);
            if s == NOBODY
                || !in_window(window, at)
                || !part.filters.iter().all(|(values, t)| t.matches(&values[e]))
            {
                continue;
            }
            let amount = match part.sum.as_ref().map(|values| &values[e]) {
                Some(Val::Number(x)) => *x,
                _ => 0.0,
            };
            counted(s as usize, at, amount);
        }
    }
    Ok(())
}

/// Whether an event at `at` falls in an event test's `when` window.
fn in_window(window: &TimeRange, at: i64) -> bool {
    #[cfg(test)]
    if let Some(broken) = mutant::in_window(window, at) {
        return broken;
    }
    window.contains(at)
}

/// Calls `counted(subscriber, at, amount)` for every event an event test
/// counts: of its type, in its window, passing its `where`; `amount` is the
/// number at the `sum` path (0 when there is none or it is not a number).
/// Types in name order, each in storage order.
pub(super) fn scan_events(
    audience: &Columns,
    test: &EventTest,
    now: i64,
    cancel: &Cancel,
    mut counted: impl FnMut(usize, i64, f64),
) -> Result<(), EvalError> {
    let window = test.when.resolve(now);
    for part in parts(audience, test, now)? {
        let len = part.column.len();
        scan_part(&part, 0..len, &window, cancel, &mut counted)?;
    }
    Ok(())
}

/// Events scanned from which a second thread pays for itself (in tests, a
/// handful, so that the property tests run the split and the merge).
const SPLIT_AT: usize = if cfg!(test) { 8 } else { 500_000 };

/// [`scan_events`] into an accumulator, on both cores when there are enough
/// events: each thread takes one half of every column into an accumulator
/// of its own (`new`, `add`), and the second half's is merged into the
/// first's. A sum so would add each half in storage order, then the
/// halves: a scan that sums is not split (see `Engine::event`).
pub(super) fn scan_into<A: Send>(
    audience: &Columns,
    test: &EventTest,
    (now, window): (i64, TimeRange),
    (cancel, split): (&Cancel, bool),
    new: impl Fn() -> A + Sync,
    add: impl Fn(&mut A, usize, i64, f64) + Sync,
    merge: impl FnOnce(&mut A, A),
) -> Result<A, EvalError> {
    let parts = parts(audience, test, now)?;
    let total: usize = parts.iter().map(|p| p.column.len()).sum();
    let cores = if split {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        1
    };
    let half = |p: &Part<'_, '_>| p.column.len() / 2;
    let run = |acc: &mut A, second: bool| -> Result<(), EvalError> {
        for part in &parts {
            let len = part.column.len();
            let range = match (second, total >= SPLIT_AT && cores > 1) {
                (_, false) => 0..len,
                (false, true) => 0..half(part),
                (true, true) => half(part)..len,
            };
            scan_part(part, range, &window, cancel, &mut |s, at, x| {
                add(acc, s, at, x)
            })?;
        }
        Ok(())
    };
    let mut first = new();
    if total < SPLIT_AT || cores < 2 {
        run(&mut first, false)?;
        return Ok(first);
    }
    // A test's mutant is switched on per thread: the second thread runs
    // with the switch of the thread that asked for the scan.
    #[cfg(test)]
    let switched = mutant::current();
    std::thread::scope(|scope| {
        let other = scope.spawn(|| {
            #[cfg(test)]
            let _on = mutant::set(switched);
            let mut second = new();
            run(&mut second, true).map(|()| second)
        });
        let mine = run(&mut first, false);
        let second = other
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        mine?;
        merge(&mut first, second?);
        Ok(first)
    })
}

/// The event columns an event test reads: its type's, or every type's.
fn event_columns<'a>(
    audience: &'a Columns,
    test: &EventTest,
) -> Vec<(&'a str, &'a crate::columns::EventColumn)> {
    match &test.kind {
        Some(kind) => audience
            .events
            .get_key_value(kind)
            .map(|(k, c)| (k.as_str(), c))
            .into_iter()
            .collect(),
        None => {
            let mut all: Vec<_> = audience
                .events
                .iter()
                .map(|(k, c)| (k.as_str(), c))
                .collect();
            // A fixed order, so sums add up in the same order every time.
            all.sort_unstable_by_key(|(k, _)| *k);
            all
        }
    }
}

/// The detail columns of an event test's `where`, for one type, each with
/// its test made ready.
fn detail_columns<'t>(
    audience: &Columns,
    kind: &str,
    test: &'t EventTest,
    now: i64,
) -> Result<Vec<(DetailColumn, ValueMatcher<'t>)>, EvalError> {
    test.filters
        .iter()
        .map(|(path, t)| {
            audience
                .details(kind, path)
                .map(|values| (values, ValueMatcher::new(t, now)))
                .ok_or_else(|| EvalError::DetailsNotLoaded(path.dotted()))
        })
        .collect()
}

/// What is known of one subscriber's counted events.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Fact {
    pub count: u32,
    pub sum: f64,
    pub first: i64,
    pub last: i64,
}

impl Fact {
    pub const NONE: Self = Self {
        count: 0,
        sum: 0.0,
        first: i64::MAX,
        last: i64::MIN,
    };

    pub fn add(&mut self, at: i64, amount: f64) {
        self.count += 1;
        self.sum += amount;
        self.first = self.first.min(at);
        self.last = self.last.max(at);
    }
}

/// Per-subscriber facts, as columns: only those the test reads (the others
/// stay empty and read as none).
struct Facts {
    count: Vec<u32>,
    sum: Vec<f64>,
    first: Vec<i64>,
    last: Vec<i64>,
}

impl Facts {
    fn new(n: usize, test: &EventTest) -> Self {
        let sized = |needed: bool, n: usize| if needed { n } else { 0 };
        Self {
            count: vec![0; n],
            sum: vec![0.0; sized(test.sum.is_some(), n)],
            first: vec![i64::MAX; sized(test.first.is_some(), n)],
            last: vec![i64::MIN; sized(test.last.is_some(), n)],
        }
    }

    fn add(&mut self, s: usize, at: i64, amount: f64) {
        self.count[s] += 1;
        if let Some(sum) = self.sum.get_mut(s) {
            *sum += amount;
        }
        if let Some(first) = self.first.get_mut(s) {
            *first = (*first).min(at);
        }
        if let Some(last) = self.last.get_mut(s) {
            *last = (*last).max(at);
        }
    }

    /// Adds what another scan (of later events) found.
    fn merge(&mut self, later: Facts) {
        self.count
            .iter_mut()
            .zip(later.count)
            .for_each(|(a, b)| *a += b);
        // No sums: a scan that sums is never split (see `Engine::event`).
        debug_assert!(later.sum.is_empty());
        self.first
            .iter_mut()
            .zip(later.first)
            .for_each(|(a, b)| *a = (*a).min(b));
        self.last
            .iter_mut()
            .zip(later.last)
            .for_each(|(a, b)| *a = (*a).max(b));
    }

    fn get(&self, s: usize) -> Fact {
        Fact {
            count: self.count[s],
            sum: self.sum.get(s).copied().unwrap_or(0.0),
            first: self.first.get(s).copied().unwrap_or(i64::MAX),
            last: self.last.get(s).copied().unwrap_or(i64::MIN),
        }
    }
}

/// An event test's aggregate tests, resolved at `now`.
pub(super) struct Checks {
    count: Option<NumberTest>,
    sum: Option<NumberTest>,
    first: Option<TimeRange>,
    last: Option<TimeRange>,
}

impl Checks {
    pub fn new(test: &EventTest, now: i64) -> Self {
        Self {
            count: test.effective_count(),
            sum: test.sum.as_ref().map(|(_, t)| t.clone()),
            first: test.first.as_ref().map(|t| t.resolve(now)),
            last: test.last.as_ref().map(|t| t.resolve(now)),
        }
    }

    pub fn pass(&self, fact: &Fact) -> bool {
        #[cfg(test)]
        let fact = &mutant::fact(fact);
        self.count
            .as_ref()
            .is_none_or(|t| t.matches(f64::from(fact.count)))
            && self.sum.as_ref().is_none_or(|t| t.matches(fact.sum))
            && self
                .first
                .is_none_or(|r| fact.count > 0 && r.contains(fact.first))
            && self
                .last
                .is_none_or(|r| fact.count > 0 && r.contains(fact.last))
    }
}

fn scalar_equals(scalar: &Scalar, value: &Val) -> bool {
    match (scalar, value) {
        (Scalar::Text(a), Val::Text(b)) => a.as_str() == &**b,
        (Scalar::Number(a), Val::Number(b)) => a == b,
        (Scalar::Bool(a), Val::Bool(b)) => a == b,
        _ => false,
    }
}

/// A value test made ready for many values: its time window resolved once,
/// and which operator families it uses.
pub(super) struct ValueMatcher<'t> {
    test: &'t ValueTest,
    text: bool,
    number: bool,
    time: Option<TimeRange>,
}

impl<'t> ValueMatcher<'t> {
    pub fn new(test: &'t ValueTest, now: i64) -> Self {
        Self {
            test,
            text: test.has_text_ops(),
            number: test.has_number_ops(),
            time: test.has_time_ops().then(|| test.time.resolve(now)),
        }
    }

    /// Whether `value` passes every operator; `instant` gives the value's
    /// time when it is text that is one (asked only by time operators).
    pub fn matches_with(&self, value: &Val, instant: impl FnOnce() -> Option<i64>) -> bool {
        let test = self.test;
        let present = !matches!(value, Val::Missing);
        if test.exists.is_some_and(|want| want != present) {
            return false;
        }
        let scalar = matches!(value, Val::Bool(_) | Val::Number(_) | Val::Text(_));
        if let Some(s) = &test.equals
            && !scalar_equals(s, value)
        {
            return false;
        }
        if let Some(s) = &test.not_equals
            && (!scalar || scalar_equals(s, value))
        {
            return false;
        }
        if let Some(list) = &test.one_of
            && !list.iter().any(|s| scalar_equals(s, value))
        {
            return false;
        }
        if self.text && !matches!(value, Val::Text(t) if test.text.matches(t)) {
            return false;
        }
        if self.number && !matches!(value, Val::Number(x) if test.number.matches(*x)) {
            return false;
        }
        if let Some(range) = self.time {
            return matches!(value, Val::Text(_)) && instant().is_some_and(|at| range.contains(at));
        }
        true
    }

    pub fn matches(&self, value: &Val) -> bool {
        self.matches_with(value, || match value {
            Val::Text(t) => parse_instant(t),
            _ => None,
        })
    }
}

/// Whether a bucket (in hundredths) lies in a sample's range.
pub(super) fn sample_holds(test: &SampleTest, bucket: u16) -> bool {
    #[cfg(test)]
    if mutant::is(mutant::Mutant::SampleEndIncluded) {
        return test.from <= bucket && bucket <= test.to;
    }
    test.holds(bucket)
}

/// Deliberate faults a test switches on, for its own thread and the
/// threads an evaluation it runs spreads onto (a split scan's second thread
/// takes the switch of the thread that asked for it), to show that the
/// property tests notice a broken engine (see
/// `tests::the_property_catches_a_broken_engine`); tests running beside it
/// on other threads are untouched. The broken code lives here, in test-only
/// code, so that nothing of it is built into Corral.
#[cfg(test)]
pub(crate) mod mutant {
    use super::Fact;
    use crate::query::ast::TimeRange;
    use std::cell::Cell;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Mutant {
        /// An event exactly at the end of a `when` window counts.
        WindowEndIncluded,
        /// An email test with `domain` checks the domain alone, ignoring its
        /// other text operators.
        DomainAlone,
        /// `first` tests the latest counted event instead of the earliest.
        FirstIsLast,
        /// Calendar months back run past the end of a shorter month instead
        /// of stopping at it (31 March minus one month is 3 March).
        MonthsRollOver,
        /// A sample holds the bucket at its end too.
        SampleEndIncluded,
        /// A bucket reads the hash's first 8 bytes little-endian.
        BucketLittleEndian,
    }

    thread_local! {
        static ACTIVE: Cell<Option<Mutant>> = const { Cell::new(None) };
    }

    pub fn is(mutant: Mutant) -> bool {
        ACTIVE.with(|active| active.get() == Some(mutant))
    }

    /// The mutant switched on for this thread, if any.
    pub fn current() -> Option<Mutant> {
        ACTIVE.with(Cell::get)
    }

    /// A mutant switched on for this thread until dropped.
    pub struct On(Option<Mutant>);

    pub fn on(mutant: Mutant) -> On {
        set(Some(mutant))
    }

    /// This thread's switch set to `mutant` (maybe none) until dropped.
    pub fn set(mutant: Option<Mutant>) -> On {
        On(ACTIVE.with(|active| active.replace(mutant)))
    }

    impl Drop for On {
        fn drop(&mut self) {
            ACTIVE.with(|active| active.set(self.0));
        }
    }

    /// Whether an event is in a `when` window, when that is broken.
    pub fn in_window(window: &TimeRange, at: i64) -> Option<bool> {
        is(Mutant::WindowEndIncluded).then_some(window.from <= at && at <= window.until)
    }

    pub fn domain_alone() -> bool {
        is(Mutant::DomainAlone)
    }

    /// The facts `Checks::pass` tests.
    pub(in crate::engine) fn fact(fact: &Fact) -> Fact {
        Fact {
            first: if is(Mutant::FirstIsLast) {
                fact.last
            } else {
                fact.first
            },
            ..*fact
        }
    }

    /// `n` calendar months before `now`, when that is broken: the day runs
    /// past the end of a shorter month.
    pub fn months_before(now: i64, n: u32) -> Option<i64> {
        use chrono::{DateTime, Datelike, Days, Months, Utc};
        if !is(Mutant::MonthsRollOver) {
            return None;
        }
        let t = DateTime::<Utc>::from_timestamp_millis(now)?;
        let clamped = t.checked_sub_months(Months::new(n))?;
        let past = u64::from(t.day() - clamped.day());
        Some(
            clamped
                .checked_add_days(Days::new(past))?
                .timestamp_millis(),
        )
    }
}

#[cfg(test)]
mod split_tests {
    //! Scans of enough events run on two threads, each over half of every
    //! column: the halves' bit sets, counts and facts must add up to the
    //! whole (the property tests use small audiences, where this is rare).

    use super::*;
    use crate::columns::ColumnsBuilder;
    use crate::query::ast::DetailPath;
    use crate::query::parse;

    fn audience() -> Columns {
        let mut b = ColumnsBuilder::new();
        for id in 1..=3 {
            b.plain_subscriber(id);
        }
        // Subscriber 1: ten events early in the column; 2: ten late; 3:
        // five in each half.
        for i in 0..40 {
            let s = match i {
                0..10 => 1,
                30..40 => 2,
                _ if i % 2 == 0 => 3,
                _ => 99,
            };
            b.event(s, "a", 1_000 + i);
        }
        let a = b.build();
        let amounts = (0..40).map(|i| Val::Number(f64::from(i))).collect();
        assert!(a.add_details("a", DetailPath(vec!["v".into()]), amounts));
        a
    }

    fn count(query: &str) -> Vec<i64> {
        let a = audience();
        let none: HashMap<i64, Arc<Query>> = HashMap::new();
        let set = members(&a, &parse(query).unwrap(), 0, &none).unwrap();
        set.ones().map(|i| a.ids[i]).collect()
    }

    #[test]
    fn first_and_last_are_the_earliest_and_latest_counted_events() {
        // Subscriber 1's events: 1,000..1,009; 2's: 1,030..1,039; 3's: every
        // other one of 1,010..1,029 (the audience above).
        let at = |ms: i64| format!("1970-01-01T00:00:0{}.{:03}Z", ms / 1000, ms % 1000);
        let last_before = |t| {
            format!(
                r#"{{"event":{{"type":"a","last":{{"before":"{}"}}}}}}"#,
                at(t)
            )
        };
        let first_since = |t| {
            format!(
                r#"{{"event":{{"type":"a","first":{{"since":"{}"}}}}}}"#,
                at(t)
            )
        };
        assert_eq!(count(&last_before(1_010)), [1]);
        assert_eq!(count(&last_before(1_030)), [1, 3]);
        assert_eq!(count(&last_before(1_029)), [1, 3], "3's last is 1,028");
        assert_eq!(count(&last_before(1_028)), [1], "1,028 is not before 1,028");
        assert_eq!(count(&first_since(1_010)), [2, 3]);
        assert_eq!(count(&first_since(1_011)), [2]);
        // Both, and a window on the counted events.
        let both = format!(
            r#"{{"event":{{"type":"a","when":{{"since":"{}"}},"first":{{"since":"{}"}},"last":{{"before":"{}"}}}}}}"#,
            at(1_005),
            at(1_005),
            at(1_030)
        );
        assert_eq!(count(&both), [1, 3]);
        // With a count too (facts per subscriber, merged from both halves):
        // 3's ten events lie five in each half.
        let counted = format!(
            r#"{{"event":{{"type":"a","count":{{"equals":10}},"first":{{"since":"{}"}},"last":{{"before":"{}"}}}}}}"#,
            at(1_010),
            at(1_030)
        );
        assert_eq!(count(&counted), [3]);
    }

    #[test]
    fn both_halves_count() {
        const { assert!(40 >= SPLIT_AT, "this audience is split") };
        assert_eq!(count(r#"{"event":{"type":"a"}}"#), [1, 2, 3]);
        assert_eq!(
            count(r#"{"event":{"type":"a","count":{"equals":10}}}"#),
            [1, 2, 3]
        );
        assert_eq!(
            count(r#"{"event":{"type":"a","sum":{"of":"v","equals":190}}}"#),
            [3],
            "10 + 12 + … + 28"
        );
        assert_eq!(
            count(r#"{"event":{"type":"a","first":{"before":"1970-01-01T00:00:01.005Z"}}}"#),
            [1]
        );
        assert_eq!(
            count(r#"{"event":{"type":"a","last":{"since":"1970-01-01T00:00:01.035Z"}}}"#),
            [2]
        );
    }

    #[test]
    fn a_mutant_switched_on_applies_on_both_threads_of_a_split_scan() {
        // Subscriber 2's events (1,030..1,039) all lie in the column's
        // second half, which the second thread scans: an event exactly at
        // the window's end counts only when that thread runs the mutant too.
        const { assert!(40 >= SPLIT_AT, "this audience is split") };
        let query = r#"{"event":{"type":"a","when":{"before":"1970-01-01T00:00:01.030Z"}}}"#;
        assert_eq!(count(query), [1, 3]);
        let _on = mutant::on(mutant::Mutant::WindowEndIncluded);
        assert_eq!(count(query), [1, 2, 3], "the second half ran unbroken");
    }

    #[test]
    fn a_sum_is_added_in_one_order_however_many_cores() {
        // 0.1 + 0.2 + … + 0.8 added in order is 3.5999999999999996; added
        // as two halves, then together, 3.6.
        let mut b = ColumnsBuilder::new();
        b.plain_subscriber(1);
        for i in 0..8 {
            b.event(1, "a", 1_000 + i);
        }
        let a = b.build();
        const { assert!(8 >= SPLIT_AT, "this audience would be split") };
        let amounts = (1..=8).map(|i| Val::Number(f64::from(i) / 10.0)).collect();
        assert!(a.add_details("a", DetailPath(vec!["v".into()]), amounts));
        let none: HashMap<i64, Arc<Query>> = HashMap::new();
        let query = parse(r#"{"event":{"type":"a","sum":{"of":"v","equals":3.5999999999999996}}}"#)
            .unwrap();
        assert_eq!(members(&a, &query, 0, &none).unwrap().count_ones(..), 1);
        let explained = crate::engine::explain(&a, &query, 0, &none, 0).unwrap();
        assert!(explained.matched, "{:?}", explained.root.facts);
    }
}
