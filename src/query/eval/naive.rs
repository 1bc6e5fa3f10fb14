//! A deliberately naive evaluator, written from `docs/query-language.md`
//! rather than from the engine: one subscriber at a time, straight over
//! rows and JSON values, no columns, no bit sets, no shared helpers beyond the
//! parsed tree. Property tests hold the engine to its answers.

use crate::query::ast::{Condition, NumberTest, Query, Scalar, Span, TagTest, TextTest, TimeTest};
use serde_json::Value;
use std::collections::HashMap;

#[derive(Debug, Clone)]
pub struct Person {
    pub id: i64,
    pub email: String,
    pub subscribed: bool,
    pub created_at: i64,
    pub tags: Vec<String>,
    pub fields: serde_json::Map<String, Value>,
}

#[derive(Debug, Clone)]
pub struct Happening {
    pub subscriber_id: i64,
    pub kind: String,
    pub at: i64,
    pub details: Value,
}

pub struct World<'a> {
    pub people: &'a [Person],
    pub events: &'a [Happening],
    pub segments: &'a HashMap<i64, Query>,
    pub now: i64,
}

impl World<'_> {
    /// Ids of the members, ascending.
    pub fn members(&self, query: &Query) -> Option<Vec<i64>> {
        let Query::Condition(c) = query else {
            return None;
        };
        let mut ids: Vec<i64> = self
            .people
            .iter()
            .filter(|p| self.holds(c, p))
            .map(|p| p.id)
            .collect();
        ids.sort_unstable();
        Some(ids)
    }

    pub fn holds(&self, c: &Condition, p: &Person) -> bool {
        match c {
            Condition::All(cs) => cs.iter().all(|c| self.holds(c, p)),
            Condition::Any(cs) => cs.iter().any(|c| self.holds(c, p)),
            Condition::Not(c) => !self.holds(c, p),
            Condition::Groups(groups) => groups
                .iter()
                .any(|filters| filters.iter().all(|c| self.holds(c, p))),
            Condition::Email(t) => text(t, &p.email),
            Condition::Subscribed(b) => p.subscribed == *b,
            Condition::Created(t) => self.time(t, p.created_at),
            Condition::Tag(t) => tags(t, &p.tags),
            Condition::Field { key, test } => self.value(test, p.fields.get(key)),
            Condition::Event(t) => {
                let counted: Vec<&Happening> = self
                    .events
                    .iter()
                    .filter(|e| e.subscriber_id == p.id)
                    .filter(|e| t.kind.as_ref().is_none_or(|k| *k == e.kind))
                    .filter(|e| self.time(&t.when, e.at))
                    .filter(|e| {
                        t.filters
                            .iter()
                            .all(|(path, test)| self.value(test, path.lookup(&e.details)))
                    })
                    .collect();
                let written =
                    t.count.is_some() || t.sum.is_some() || t.first.is_some() || t.last.is_some();
                let count_ok = match &t.count {
                    Some(n) => number(n, counted.len() as f64),
                    None => written || !counted.is_empty(),
                };
                let sum_ok = t.sum.as_ref().is_none_or(|(path, n)| {
                    // Sorted by type, then in stored order: the order the
                    // document gives for adding up.
                    let mut ordered = counted.clone();
                    ordered.sort_by(|a, b| a.kind.cmp(&b.kind));
                    let total: f64 = ordered
                        .iter()
                        .filter_map(|e| path.lookup(&e.details).and_then(Value::as_f64))
                        .sum();
                    number(n, total)
                });
                let first_ok = t.first.as_ref().is_none_or(|w| {
                    counted
                        .iter()
                        .map(|e| e.at)
                        .min()
                        .is_some_and(|at| self.time(w, at))
                });
                let last_ok = t.last.as_ref().is_none_or(|w| {
                    counted
                        .iter()
                        .map(|e| e.at)
                        .max()
                        .is_some_and(|at| self.time(w, at))
                });
                count_ok && sum_ok && first_ok && last_ok
            }
            Condition::Segment { id, member } => match self.segments.get(id) {
                Some(Query::Condition(c)) => self.holds(c, p) == *member,
                _ => false,
            },
        }
    }

    fn ago(&self, span: Span) -> i64 {
        let hour = 3_600_000;
        match span {
            Span::Hours(n) => self.now - i64::from(n) * hour,
            Span::Days(n) => self.now - i64::from(n) * 24 * hour,
            Span::Weeks(n) => self.now - i64::from(n) * 7 * 24 * hour,
            Span::Months(n) => {
                let now = chrono::DateTime::from_timestamp_millis(self.now).unwrap();
                (now - chrono::Months::new(n)).timestamp_millis()
            }
        }
    }

    fn time(&self, t: &TimeTest, at: i64) -> bool {
        t.since.is_none_or(|s| at >= s)
            && t.before.is_none_or(|b| at < b)
            && t.within_last
                .is_none_or(|span| self.ago(span) <= at && at <= self.now)
            && t.older_than.is_none_or(|span| at < self.ago(span))
    }

    fn value(&self, t: &crate::query::ast::ValueTest, v: Option<&Value>) -> bool {
        if let Some(want) = t.exists
            && want != v.is_some()
        {
            return false;
        }
        let same = |s: &Scalar| match (s, v) {
            (Scalar::Text(a), Some(Value::String(b))) => *a == b.to_lowercase(),
            (Scalar::Number(a), Some(Value::Number(b))) => Some(*a) == b.as_f64(),
            (Scalar::Bool(a), Some(Value::Bool(b))) => a == b,
            _ => false,
        };
        let is_scalar = matches!(
            v,
            Some(Value::String(_) | Value::Number(_) | Value::Bool(_))
        );
        t.equals.as_ref().is_none_or(same)
            && t.not_equals.as_ref().is_none_or(|s| is_scalar && !same(s))
            && t.one_of.as_ref().is_none_or(|l| l.iter().any(same))
            && (t.text == TextTest::default()
                || matches!(v, Some(Value::String(s)) if text(&t.text, s)))
            && (t.number.is_empty()
                || matches!(v, Some(Value::Number(n)) if number(&t.number, n.as_f64().unwrap())))
            && (t.time == TimeTest::default()
                || matches!(v, Some(Value::String(s))
                    if crate::query::parse::parse_instant(&s.to_lowercase())
                        .is_some_and(|at| self.time(&t.time, at))))
    }
}

fn text(t: &TextTest, s: &str) -> bool {
    let s = s.to_lowercase();
    t.equals.as_ref().is_none_or(|v| s == *v)
        && t.not_equals.as_ref().is_none_or(|v| s != *v)
        && t.contains.as_ref().is_none_or(|v| s.contains(v.as_str()))
        && t.starts_with
            .as_ref()
            .is_none_or(|v| s.starts_with(v.as_str()))
        && t.ends_with.as_ref().is_none_or(|v| s.ends_with(v.as_str()))
        && t.domain
            .as_ref()
            .is_none_or(|v| s.rfind('@').is_some_and(|at| s[at + 1..] == **v))
        && t.one_of.as_ref().is_none_or(|l| l.contains(&s))
}

fn number(t: &NumberTest, n: f64) -> bool {
    t.equals.is_none_or(|v| n == v)
        && t.not_equals.is_none_or(|v| n != v)
        && t.more_than.is_none_or(|v| n > v)
        && t.at_least.is_none_or(|v| n >= v)
        && t.less_than.is_none_or(|v| n < v)
        && t.at_most.is_none_or(|v| n <= v)
}

fn tags(t: &TagTest, have: &[String]) -> bool {
    let has = |name: &String| have.iter().any(|h| h.trim().to_lowercase() == *name);
    t.has.as_ref().is_none_or(has)
        && t.has_not.as_ref().is_none_or(|n| !has(n))
        && t.any_of.as_ref().is_none_or(|l| l.iter().any(has))
        && t.all_of.as_ref().is_none_or(|l| l.iter().all(has))
        && t.none_of.as_ref().is_none_or(|l| !l.iter().any(has))
}
