//! What a query costs to evaluate, known before it runs.
//!
//! The engine's work is passes over columns, so the cost is counted in
//! values examined, from the audience's sizes: a field, email or creation
//! test reads one value per subscriber; a tag or subscription test combines
//! bit sets (a 64th of that); an event test reads each event of its type
//! (every type's, without one) once plus once more per `where` test, then one
//! value per subscriber; a sample reads one value per subscriber once the
//! snapshot holds its salt's buckets, and hashes each subscriber's uuid
//! ([`HASH_VALUES`] each) the first time; a referenced segment costs what its
//! own query costs, once; an event test written twice is scanned once. On this design's
//! reference machine the engine examines about 250 million values a second on
//! one core.
//!
//! Live evaluation uses the estimate twice: a query above
//! [`Budget::max`] is refused with a 422 that says by how much, and one above
//! [`Budget::heavy`] waits for its turn in a narrow lane, so that heavy
//! queries never hold up cheap ones.

use super::Resolver;
use crate::columns::Columns;
use crate::query::ast::{Condition, EventTest, Query};
use std::collections::HashSet;

/// What working out one bucket of a sample (a SHA-256 of a short text)
/// costs, in values examined: about 60 ns with the processor's SHA
/// instructions, four times that without.
pub const HASH_VALUES: u64 = 32;

/// Where live evaluation draws its lines, in values examined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Refused above this (about four seconds of one core).
    pub max: u64,
    /// Above this (about a tenth of a second), one heavy evaluation runs at
    /// a time per site, and at most one per core overall.
    pub heavy: u64,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            max: 1_000_000_000,
            heavy: 25_000_000,
        }
    }
}

/// A query over its budget, with the figures that say why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooExpensive {
    pub cost: u64,
    pub limit: u64,
    pub event_tests: usize,
    pub events: u64,
}

impl std::fmt::Display for TooExpensive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "is too expensive to evaluate: it would examine about {} values ({} event \
             test(s) over {} events), {:.1}× the {} allowed; give event tests a `type`, use \
             fewer `where` tests, or split it into segments",
            with_commas(self.cost),
            self.event_tests,
            with_commas(self.events),
            self.cost as f64 / self.limit as f64,
            with_commas(self.limit),
        )
    }
}

fn with_commas(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The estimated cost of a query over an audience.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cost {
    /// Values examined.
    pub values: u64,
    /// Distinct event tests, referenced segments' included.
    pub event_tests: usize,
}

impl Cost {
    /// Refuses a cost above `limits.max`.
    pub fn check(&self, audience: &Columns, limits: &Budget) -> Result<(), TooExpensive> {
        if self.values <= limits.max {
            return Ok(());
        }
        Err(TooExpensive {
            cost: self.values,
            limit: limits.max,
            event_tests: self.event_tests,
            events: audience.event_count() as u64,
        })
    }
}

/// The cost of evaluating `query` over `audience`.
pub fn estimate(audience: &Columns, query: &Query, resolver: &dyn Resolver) -> Cost {
    let mut walk = Walk {
        audience,
        resolver,
        seen_events: HashSet::new(),
        seen_segments: HashSet::new(),
        seen_salts: HashSet::new(),
        cost: Cost::default(),
    };
    if let Query::Condition(c) = query {
        walk.condition(c);
    }
    walk.cost
}

struct Walk<'a> {
    audience: &'a Columns,
    resolver: &'a dyn Resolver,
    seen_events: HashSet<String>,
    seen_segments: HashSet<i64>,
    /// Salts of samples met, whose buckets the evaluation works out once.
    seen_salts: HashSet<String>,
    cost: Cost,
}

impl Walk<'_> {
    fn n(&self) -> u64 {
        self.audience.len() as u64
    }

    fn add(&mut self, values: u64) {
        self.cost.values = self.cost.values.saturating_add(values);
    }

    fn condition(&mut self, c: &Condition) {
        let bits = self.n() / 64 + 1;
        match c {
            Condition::All(cs) | Condition::Any(cs) => {
                self.add(bits * cs.len() as u64);
                cs.iter().for_each(|c| self.condition(c));
            }
            Condition::Groups(groups) => {
                for filters in groups {
                    self.add(bits * (filters.len() as u64 + 1));
                    filters.iter().for_each(|c| self.condition(c));
                }
            }
            Condition::Not(c) => {
                self.add(bits);
                self.condition(c);
            }
            Condition::Subscribed(_) => self.add(bits),
            Condition::Tag(t) => {
                let names = [&t.any_of, &t.all_of, &t.none_of]
                    .into_iter()
                    .flatten()
                    .map(Vec::len)
                    .sum::<usize>()
                    + usize::from(t.has.is_some())
                    + usize::from(t.has_not.is_some());
                self.add(bits * (names as u64 + 1));
            }
            Condition::Email(_) | Condition::Created(_) | Condition::Field { .. } => {
                self.add(self.n())
            }
            Condition::Sample(test) => {
                // A read per subscriber once the snapshot holds the salt's
                // buckets; a hash per subscriber the first time.
                let per_subscriber = if self.seen_salts.contains(&test.salt)
                    || self.audience.uuids.has_buckets(&test.salt)
                {
                    1
                } else {
                    HASH_VALUES
                };
                self.seen_salts.insert(test.salt.clone());
                self.add(self.n().saturating_mul(per_subscriber));
            }
            Condition::Event(test) => self.event(test),
            Condition::Segment { id, .. } => {
                self.add(bits);
                if self.seen_segments.insert(*id)
                    && let Some(query) = self.resolver.segment_query(*id)
                    && let Query::Condition(c) = query.as_ref()
                {
                    self.condition(c);
                }
            }
        }
    }

    fn event(&mut self, test: &EventTest) {
        if !self.seen_events.insert(format!("{test:?}")) {
            return;
        }
        self.cost.event_tests += 1;
        let events = match &test.kind {
            Some(kind) => self.audience.event_count_of(kind),
            None => self.audience.event_count(),
        } as u64;
        let passes = 1 + test.filters.len() as u64 + u64::from(test.sum.is_some());
        self.add(events.saturating_mul(passes) + self.n());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::columns::ColumnsBuilder;
    use crate::query::parse;
    use std::collections::HashMap;
    use std::sync::Arc;

    #[test]
    fn numbers_in_messages_have_commas_between_thousands() {
        let shown: Vec<String> = [0, 12, 100, 1_000, 123_456, 1_000_000_000]
            .into_iter()
            .map(with_commas)
            .collect();
        assert_eq!(
            shown,
            ["0", "12", "100", "1,000", "123,456", "1,000,000,000"]
        );
    }

    fn audience() -> Columns {
        let mut b = ColumnsBuilder::new();
        for id in 1..=640 {
            b.plain_subscriber(id);
        }
        for i in 0..10_000 {
            b.event(1 + i % 640, if i % 10 == 0 { "buy" } else { "view" }, i);
        }
        b.build()
    }

    fn cost(text: &str) -> Cost {
        let none: HashMap<i64, Arc<Query>> = HashMap::new();
        estimate(&audience(), &parse(text).unwrap(), &none)
    }

    #[test]
    fn an_event_test_costs_its_types_events_per_pass_and_a_pass_over_subscribers() {
        assert_eq!(cost(r#"{"event":{"type":"buy"}}"#).values, 1_000 + 640);
        assert_eq!(cost(r#"{"event":{}}"#).values, 10_000 + 640);
        assert_eq!(
            cost(r#"{"event":{"type":"view","where":{"url":{"contains":"a"}}}}"#).values,
            2 * 9_000 + 640
        );
        assert_eq!(
            cost(r#"{"event":{"type":"buy","sum":{"of":"v","at_least":1}}}"#).values,
            2 * 1_000 + 640
        );
        assert_eq!(
            cost(r#"{"field":{"key":"plan","equals":"pro"}}"#).values,
            640
        );
    }

    #[test]
    fn set_operations_cost_a_word_per_64_subscribers() {
        // 640 subscribers: sets of 11 words.
        let words = 640 / 64 + 1;
        let yes = r#"{"subscribed":true}"#;
        let no = r#"{"subscribed":false}"#;
        let costs: Vec<u64> = [
            yes.to_owned(),
            format!(r#"{{"all":[{yes},{no}]}}"#),
            format!(r#"{{"any":[{yes},{no},{yes}]}}"#),
            format!(r#"{{"not":{yes}}}"#),
            format!(r#"{{"groups":[{{"filters":[{yes}]}},{{"filters":[{yes},{no}]}}]}}"#),
            r#"{"tag":{"any_of":["a","b"],"has_not":"c"}}"#.to_owned(),
            r#"{"tag":{"has":"a","all_of":["b"],"none_of":["c","d"]}}"#.to_owned(),
            r#"{"email":{"domain":"x.io"}}"#.to_owned(),
        ]
        .iter()
        .map(|q| cost(q).values)
        .collect();
        assert_eq!(
            costs,
            [
                words,
                2 * words + 2 * words,
                3 * words + 3 * words,
                words + words,
                (2 * words + words) + (3 * words + 2 * words),
                4 * words,
                5 * words,
                640
            ]
        );
    }

    #[test]
    fn a_referenced_segment_costs_its_query_once() {
        let words = 640 / 64 + 1;
        let segments: HashMap<i64, Arc<Query>> =
            HashMap::from([(5, Arc::new(parse(r#"{"event":{"type":"buy"}}"#).unwrap()))]);
        let cost = |text: &str| estimate(&audience(), &parse(text).unwrap(), &segments).values;
        let reference = r#"{"segment":{"member_of":"5"}}"#;
        assert_eq!(cost(reference), words + 1_000 + 640);
        assert_eq!(
            cost(&format!(r#"{{"all":[{reference},{reference}]}}"#)),
            2 * words + 2 * words + 1_000 + 640
        );
    }

    #[test]
    fn a_sample_costs_a_hash_per_subscriber_until_its_buckets_are_held() {
        let audience = audience();
        let none: HashMap<i64, Arc<Query>> = HashMap::new();
        let sample = r#"{"sample":{"salt":"s","from":0,"to":10}}"#;
        let cost = |text: &str| estimate(&audience, &parse(text).unwrap(), &none).values;
        assert_eq!(cost(sample), 640 * HASH_VALUES);
        // One salt twice is hashed once; two salts twice.
        let other = r#"{"sample":{"salt":"t","from":50,"to":60}}"#;
        assert_eq!(
            cost(&format!(r#"{{"any":[{sample},{sample}]}}"#)),
            2 * (640 / 64 + 1) + 640 * HASH_VALUES + 640
        );
        assert_eq!(
            cost(&format!(r#"{{"any":[{sample},{other}]}}"#)),
            2 * (640 / 64 + 1) + 2 * 640 * HASH_VALUES
        );
        crate::engine::members(&audience, &parse(sample).unwrap(), 0, &none).unwrap();
        assert_eq!(cost(sample), 640);
    }

    #[test]
    fn the_same_event_test_twice_is_counted_once() {
        let once = cost(r#"{"event":{"type":"buy"}}"#);
        let twice = cost(r#"{"any":[{"event":{"type":"buy"}},{"not":{"event":{"type":"buy"}}}]}"#);
        assert_eq!(twice.event_tests, 1);
        assert!(twice.values < once.values + 100, "{twice:?}");
    }

    #[test]
    fn a_query_over_budget_says_by_how_much() {
        let c = cost(r#"{"event":{}}"#);
        let err = c
            .check(
                &audience(),
                &Budget {
                    max: 5_000,
                    heavy: 1,
                },
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "is too expensive to evaluate: it would examine about 10,640 values (1 event \
             test(s) over 10,000 events), 2.1× the 5,000 allowed; give event tests a `type`, \
             use fewer `where` tests, or split it into segments"
        );
    }
}
