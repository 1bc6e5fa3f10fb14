//! A deliberately naive evaluator, written from `docs/query-language.md`
//! rather than from the engine: one subscriber at a time, straight over
//! rows and JSON values, no columns, no bit sets. It shares nothing with the
//! engine but the query tree's types: it normalises a query as the document
//! says a query is read (text lowercased, tag names trimmed, field keys in
//! their normal form, event types trimmed), reads dates and times with its
//! own code ([`calendar`]), counts calendar months by hand, walks detail
//! paths with its own loop and puts a subscriber in a sample's bucket with
//! its own reading of the hash's bytes. Property tests hold the engine,
//! `explain` and the parser to its answers.

pub mod calendar;

use crate::query::ast::{
    Condition, DetailPath, EventTest, NumberTest, Query, Scalar, Span, TagTest, TextTest, TimeTest,
    ValueTest,
};
use serde_json::{Value, json};
use std::collections::HashMap;

#[derive(Debug, Clone)]
pub struct Person {
    pub id: i64,
    /// The public uuid, as stored.
    pub uuid: String,
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
    /// Queries of the segments conditions may refer to, as written.
    pub segments: &'a HashMap<i64, Query>,
    pub now: i64,
}

/// What is known of one subscriber's counted events for one event test.
#[derive(Debug, Clone, PartialEq)]
pub struct EventFacts {
    pub count: usize,
    /// The numbers at the `sum` path, added up (0 when there is no `sum`).
    pub sum: f64,
    pub first: Option<i64>,
    pub last: Option<i64>,
}

impl World<'_> {
    /// Ids of the members, ascending.
    pub fn members(&self, query: &Query) -> Option<Vec<i64>> {
        let Query::Condition(c) = query else {
            return None;
        };
        let c = normalized(c);
        let mut ids: Vec<i64> = self
            .people
            .iter()
            .filter(|p| self.node(&c, p, String::new())["matched"] == json!(true))
            .map(|p| p.id)
            .collect();
        ids.sort_unstable();
        Some(ids)
    }

    /// The outcome of every condition of `query` for one person, in the
    /// shape `explain` answers (`at`, `condition`, `matched`, `facts`,
    /// `children`), worked out from the document.
    pub fn explain(&self, query: &Query, p: &Person) -> Option<Value> {
        let Query::Condition(c) = query else {
            return None;
        };
        Some(self.node(&normalized(c), p, String::new()))
    }

    fn node(&self, c: &Condition, p: &Person, at: String) -> Value {
        let list = |cs: &[Condition], at: &str| -> Vec<Value> {
            cs.iter()
                .enumerate()
                .map(|(i, c)| self.node(c, p, format!("{at}/{i}")))
                .collect()
        };
        let matched = |v: &Value| v["matched"] == json!(true);
        match c {
            Condition::All(cs) => {
                let children = list(cs, &format!("{at}/all"));
                let all = children.iter().all(matched);
                branch(at, "all", all, children)
            }
            Condition::Any(cs) => {
                let children = list(cs, &format!("{at}/any"));
                let any = children.iter().any(matched);
                branch(at, "any", any, children)
            }
            Condition::Not(c) => {
                let child = self.node(c, p, format!("{at}/not"));
                let holds = !matched(&child);
                branch(at, "not", holds, vec![child])
            }
            Condition::Groups(groups) => {
                let children: Vec<Value> = groups
                    .iter()
                    .enumerate()
                    .map(|(g, filters)| {
                        let gat = format!("{at}/groups/{g}");
                        let filters = list(filters, &format!("{gat}/filters"));
                        let all = filters.iter().all(matched);
                        branch(gat, "group", all, filters)
                    })
                    .collect();
                let any = children.iter().any(matched);
                branch(at, "groups", any, children)
            }
            Condition::Email(t) => {
                let email = p.email.to_lowercase();
                leaf(at, "email", text(t, &email), json!({ "email": email }))
            }
            Condition::Subscribed(b) => leaf(
                at,
                "subscribed",
                p.subscribed == *b,
                json!({ "subscribed": p.subscribed }),
            ),
            Condition::Created(t) => leaf(
                at,
                "created",
                self.time(t, p.created_at),
                json!({ "created_at": calendar::format_utc(p.created_at) }),
            ),
            Condition::Tag(t) => {
                let (holds, seen) = tags(t, &p.tags);
                leaf(at, "tag", holds, json!({ "tags": seen }))
            }
            Condition::Field { key, test } => {
                let value = p.fields.get(key);
                let facts = match value {
                    None => json!({ "present": false }),
                    Some(v) => json!({ "present": true, "value": shown(v) }),
                };
                leaf(at, "field", self.value(test, value), facts)
            }
            Condition::Event(t) => {
                let facts = self.event_facts(t, p);
                let mut shown = json!({ "count": facts.count });
                if t.sum.is_some() {
                    shown["sum"] = json!(facts.sum);
                }
                if let (Some(first), Some(last)) = (facts.first, facts.last) {
                    shown["first"] = json!(calendar::format_utc(first));
                    shown["last"] = json!(calendar::format_utc(last));
                }
                leaf(at, "event", self.event_holds(t, &facts), shown)
            }
            Condition::Segment { id, member } => {
                let is_member = match self.segments.get(id) {
                    Some(Query::Condition(c)) => {
                        matched(&self.node(&normalized(c), p, String::new()))
                    }
                    _ => false,
                };
                leaf(
                    at,
                    "segment",
                    is_member == *member,
                    json!({ "segment_id": id.to_string(), "member": is_member }),
                )
            }
            Condition::Sample(t) => {
                let at_hundredths = sample_bucket(&t.salt, &p.uuid);
                leaf(
                    at,
                    "sample",
                    t.from <= at_hundredths && at_hundredths < t.to,
                    json!({ "bucket": f64::from(at_hundredths) / 100.0 }),
                )
            }
        }
    }

    /// The events an event test counts for a person, in stored order.
    fn counted(&self, t: &EventTest, p: &Person) -> Vec<&Happening> {
        self.events
            .iter()
            .filter(|e| e.subscriber_id == p.id)
            .filter(|e| t.kind.as_ref().is_none_or(|k| *k == e.kind))
            .filter(|e| self.time(&t.when, e.at))
            .filter(|e| {
                t.filters
                    .iter()
                    .all(|(path, test)| self.value(test, walk(&e.details, path)))
            })
            .collect()
    }

    /// Count, sum, first and last of the events an event test counts.
    pub fn event_facts(&self, t: &EventTest, p: &Person) -> EventFacts {
        let counted = self.counted(t, p);
        let sum = match &t.sum {
            Some((path, _)) => {
                // Type by type in name order, each in the order the events
                // happened (ties in the order they were stored): floating
                // point addition depends on the order, and this is the
                // order the engine adds in.
                let mut ordered = counted.clone();
                ordered.sort_by(|a, b| a.kind.cmp(&b.kind).then(a.at.cmp(&b.at)));
                ordered
                    .iter()
                    .filter_map(|e| walk(&e.details, path).and_then(Value::as_f64))
                    .fold(0.0, |total, x| total + x)
            }
            None => 0.0,
        };
        EventFacts {
            count: counted.len(),
            sum,
            first: counted.iter().map(|e| e.at).min(),
            last: counted.iter().map(|e| e.at).max(),
        }
    }

    fn event_holds(&self, t: &EventTest, facts: &EventFacts) -> bool {
        let written = t.count.is_some() || t.sum.is_some() || t.first.is_some() || t.last.is_some();
        let count_ok = match &t.count {
            Some(n) => number(n, facts.count as f64),
            None => written || facts.count > 0,
        };
        let sum_ok = t.sum.as_ref().is_none_or(|(_, n)| number(n, facts.sum));
        let first_ok = t
            .first
            .as_ref()
            .is_none_or(|w| facts.first.is_some_and(|at| self.time(w, at)));
        let last_ok = t
            .last
            .as_ref()
            .is_none_or(|w| facts.last.is_some_and(|at| self.time(w, at)));
        count_ok && sum_ok && first_ok && last_ok
    }

    /// The instant `span` before now.
    fn ago(&self, span: Span) -> i64 {
        let hour = 3_600_000;
        match span {
            Span::Hours(n) => self.now - i64::from(n) * hour,
            Span::Days(n) => self.now - i64::from(n) * 24 * hour,
            Span::Weeks(n) => self.now - i64::from(n) * 7 * 24 * hour,
            Span::Months(n) => calendar::months_before(self.now, n),
        }
    }

    fn time(&self, t: &TimeTest, at: i64) -> bool {
        t.since.is_none_or(|s| at >= s)
            && t.before.is_none_or(|b| at < b)
            && t.within_last
                .is_none_or(|span| self.ago(span) <= at && at <= self.now)
            && t.older_than.is_none_or(|span| at < self.ago(span))
    }

    fn value(&self, t: &ValueTest, v: Option<&Value>) -> bool {
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
                || matches!(v, Some(Value::String(s)) if text(&t.text, &s.to_lowercase())))
            && (t.number.is_empty()
                || matches!(v, Some(Value::Number(n)) if n.as_f64().is_some_and(|n| number(&t.number, n))))
            && (t.time == TimeTest::default()
                || matches!(v, Some(Value::String(s))
                    if calendar::parse_instant(s).is_some_and(|at| self.time(&t.time, at))))
    }
}

/// A person's bucket for a salt, in hundredths, as the document gives it:
/// SHA-256 of `salt:uuid`, its first 8 bytes a big-endian integer, modulo
/// 10,000.
pub fn sample_bucket(salt: &str, uuid: &str) -> u16 {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{salt}:{uuid}").as_bytes());
    let n = digest[..8]
        .iter()
        .fold(0u128, |n, byte| n * 256 + u128::from(*byte));
    (n % 10_000) as u16
}

fn leaf(at: String, condition: &str, matched: bool, facts: Value) -> Value {
    json!({ "at": at, "condition": condition, "matched": matched, "facts": facts })
}

fn branch(at: String, condition: &str, matched: bool, children: Vec<Value>) -> Value {
    let mut node = json!({ "at": at, "condition": condition, "matched": matched });
    if !children.is_empty() {
        node["children"] = Value::Array(children);
    }
    node
}

/// A field's value as an explanation shows it: text lowercased, objects and
/// lists not spelled out.
fn shown(v: &Value) -> Value {
    match v {
        Value::String(s) => json!(s.to_lowercase()),
        Value::Array(_) | Value::Object(_) => json!("(object or list)"),
        other => other.clone(),
    }
}

/// The value at a path of object keys, if every step is an object that has
/// the key.
fn walk<'a>(details: &'a Value, path: &DetailPath) -> Option<&'a Value> {
    let mut here = details;
    for key in &path.0 {
        match here {
            Value::Object(map) => here = map.get(key)?,
            _ => return None,
        }
    }
    Some(here)
}

/// Whether lowercase text passes every operator (operands already
/// lowercase).
fn text(t: &TextTest, s: &str) -> bool {
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
        && t.one_of.as_ref().is_none_or(|l| l.iter().any(|v| v == s))
}

fn number(t: &NumberTest, n: f64) -> bool {
    t.equals.is_none_or(|v| n == v)
        && t.not_equals.is_none_or(|v| n != v)
        && t.more_than.is_none_or(|v| n > v)
        && t.at_least.is_none_or(|v| n >= v)
        && t.less_than.is_none_or(|v| n < v)
        && t.at_most.is_none_or(|v| n <= v)
}

/// Whether a person's tags pass a tag test, and the tags it names that they
/// have (sorted, each once).
fn tags(t: &TagTest, have: &[String]) -> (bool, Vec<String>) {
    let has = |name: &String| have.iter().any(|h| h.trim().to_lowercase() == *name);
    let holds = t.has.as_ref().is_none_or(has)
        && t.has_not.as_ref().is_none_or(|n| !has(n))
        && t.any_of.as_ref().is_none_or(|l| l.iter().any(has))
        && t.all_of.as_ref().is_none_or(|l| l.iter().all(has))
        && t.none_of.as_ref().is_none_or(|l| !l.iter().any(has));
    let mut seen: Vec<String> = t
        .has
        .iter()
        .chain(&t.has_not)
        .chain(t.any_of.iter().flatten())
        .chain(t.all_of.iter().flatten())
        .chain(t.none_of.iter().flatten())
        .filter(|n| has(n))
        .cloned()
        .collect();
    seen.sort();
    seen.dedup();
    (holds, seen)
}

/// A condition as the document says it is read: text operands lowercased,
/// tag names trimmed and lowercased, field keys in their normal form, event
/// types trimmed, `where` tests in the order of their paths (a JSON object's
/// keys have none). A condition already read so reads the same again.
pub fn normalized(c: &Condition) -> Condition {
    let all = |cs: &[Condition]| cs.iter().map(normalized).collect::<Vec<_>>();
    match c {
        Condition::All(cs) => Condition::All(all(cs)),
        Condition::Any(cs) => Condition::Any(all(cs)),
        Condition::Not(c) => Condition::Not(Box::new(normalized(c))),
        Condition::Groups(groups) => Condition::Groups(groups.iter().map(|g| all(g)).collect()),
        Condition::Email(t) => Condition::Email(lower_text(t)),
        Condition::Tag(t) => {
            let name = |n: &String| n.trim().to_lowercase();
            let names = |l: &Option<Vec<String>>| l.as_ref().map(|l| l.iter().map(name).collect());
            Condition::Tag(TagTest {
                has: t.has.as_ref().map(name),
                has_not: t.has_not.as_ref().map(name),
                any_of: names(&t.any_of),
                all_of: names(&t.all_of),
                none_of: names(&t.none_of),
            })
        }
        Condition::Field { key, test } => Condition::Field {
            key: field_key(key),
            test: lower_value(test),
        },
        Condition::Event(t) => {
            let mut filters: Vec<(DetailPath, ValueTest)> = t
                .filters
                .iter()
                .map(|(path, test)| (path.clone(), lower_value(test)))
                .collect();
            filters.sort_by_key(|(path, _)| path.0.join("."));
            Condition::Event(EventTest {
                kind: t.kind.as_ref().map(|k| k.trim().to_owned()),
                filters,
                ..t.clone()
            })
        }
        // A salt is hashed as written.
        c @ (Condition::Subscribed(_)
        | Condition::Created(_)
        | Condition::Segment { .. }
        | Condition::Sample(_)) => c.clone(),
    }
}

/// A field key's normal form: trimmed, lowercased, every run of whitespace,
/// `-` or `.` one `_`.
pub fn field_key(key: &str) -> String {
    let mut out = String::new();
    let mut run = false;
    for c in key.trim().to_lowercase().chars() {
        if c.is_whitespace() || c == '-' || c == '.' {
            run = true;
        } else {
            if run {
                out.push('_');
            }
            run = false;
            out.push(c);
        }
    }
    if run {
        out.push('_');
    }
    out
}

fn lower_text(t: &TextTest) -> TextTest {
    let lower = |s: &Option<String>| s.as_ref().map(|s| s.to_lowercase());
    TextTest {
        equals: lower(&t.equals),
        not_equals: lower(&t.not_equals),
        contains: lower(&t.contains),
        starts_with: lower(&t.starts_with),
        ends_with: lower(&t.ends_with),
        domain: lower(&t.domain),
        one_of: t
            .one_of
            .as_ref()
            .map(|l| l.iter().map(|s| s.to_lowercase()).collect()),
    }
}

fn lower_value(t: &ValueTest) -> ValueTest {
    let scalar = |s: &Scalar| match s {
        Scalar::Text(s) => Scalar::Text(s.to_lowercase()),
        other => other.clone(),
    };
    ValueTest {
        equals: t.equals.as_ref().map(scalar),
        not_equals: t.not_equals.as_ref().map(scalar),
        one_of: t.one_of.as_ref().map(|l| l.iter().map(scalar).collect()),
        text: lower_text(&t.text),
        ..t.clone()
    }
}
