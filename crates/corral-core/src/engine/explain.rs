//! Explaining one subscriber: the outcome of every condition of a query for
//! that person, each named by its JSON pointer in the query, with the facts it
//! was decided on (the value of a field, how many events were counted, …).
//!
//! Every condition is evaluated, not only until the answer is known, so the
//! explanation shows each group and filter. Leaves are decided from the
//! subscriber's own row and events; a referenced segment is decided by the
//! engine, so a membership shown here is the one `members` computes.

use super::members::{Cancel, Checks, Engine, Fact, ValueMatcher, sample_holds, scan_events};
use super::{EvalError, Resolver};
use crate::columns::{Columns, Val};
use crate::query::ast::{Condition, EventTest, Query, TagTest};
use crate::query::manual;
use crate::query::sample::bucket;
use crate::time::format_ms;
use serde::Serialize;
use serde_json::{Value, json};

/// The outcome of one condition for one subscriber.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Node {
    /// JSON pointer of the condition in the query (`""` for the whole query).
    pub at: String,
    /// The kind of condition: `all`, `any`, `not`, `groups`, `group`, `email`, …
    pub condition: &'static str,
    pub matched: bool,
    /// What the outcome was decided on.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub facts: Option<Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(no_recursion)]
    pub children: Vec<Node>,
}

/// Whether one subscriber matches, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    pub matched: bool,
    /// The outcome of the query as saved (a segment's includes and excludes
    /// are not in it: see `manual`).
    pub root: Node,
    /// A saved segment's hand-made part, when the subscriber is in it: an
    /// exclude decides (not a member), else an include (a member).
    pub manual: Option<Manual>,
}

/// How a segment's includes and excludes hold one subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Manual {
    IncludedByHand,
    ExcludedByHand,
}

impl Manual {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::IncludedByHand => "included by hand",
            Self::ExcludedByHand => "excluded by hand",
        }
    }
}

/// Explains the outcome of `query` for the subscriber at `index`.
pub fn explain(
    audience: &Columns,
    query: &Query,
    now: i64,
    resolver: &dyn Resolver,
    index: usize,
) -> Result<Explanation, EvalError> {
    explain_unless(audience, query, now, resolver, index, &Cancel::default())
}

/// [`explain`], stopping with [`EvalError::Cancelled`] once `cancel` is set.
pub fn explain_unless(
    audience: &Columns,
    query: &Query,
    now: i64,
    resolver: &dyn Resolver,
    index: usize,
    cancel: &Cancel,
) -> Result<Explanation, EvalError> {
    if matches!(query, Query::Foreign) {
        return Err(EvalError::Foreign);
    }
    let (condition, segment) = manual::unwrapped(query);
    let mut engine = Engine::new(audience, now, resolver, cancel.clone());
    let root = node(&mut engine, condition, String::new(), index)?;
    let holds = |tag: String| audience.tag(&tag).is_some_and(|t| t.contains(index));
    let manual = segment.and_then(|id| {
        if holds(manual::exclude_tag(id)) {
            Some(Manual::ExcludedByHand)
        } else if holds(manual::include_tag(id)) {
            Some(Manual::IncludedByHand)
        } else {
            None
        }
    });
    Ok(Explanation {
        matched: match manual {
            Some(Manual::ExcludedByHand) => false,
            Some(Manual::IncludedByHand) => true,
            None => root.matched,
        },
        root,
        manual,
    })
}

fn leaf(at: String, condition: &'static str, matched: bool, facts: Value) -> Node {
    Node {
        at,
        condition,
        matched,
        facts: Some(facts),
        children: Vec::new(),
    }
}

fn list(
    engine: &mut Engine<'_>,
    conditions: &[Condition],
    at: &str,
    index: usize,
) -> Result<Vec<Node>, EvalError> {
    conditions
        .iter()
        .enumerate()
        .map(|(i, c)| node(engine, c, format!("{at}/{i}"), index))
        .collect()
}

fn node(
    engine: &mut Engine<'_>,
    condition: &Condition,
    at: String,
    index: usize,
) -> Result<Node, EvalError> {
    let a = engine.audience;
    let now = engine.now;
    Ok(match condition {
        Condition::All(cs) => {
            let children = list(engine, cs, &format!("{at}/all"), index)?;
            let matched = children.iter().all(|c| c.matched);
            branch(at, "all", matched, children)
        }
        Condition::Any(cs) => {
            let children = list(engine, cs, &format!("{at}/any"), index)?;
            let matched = children.iter().any(|c| c.matched);
            branch(at, "any", matched, children)
        }
        Condition::Not(c) => {
            let child = node(engine, c, format!("{at}/not"), index)?;
            branch(at, "not", !child.matched, vec![child])
        }
        Condition::Groups(groups) => {
            let mut children = Vec::with_capacity(groups.len());
            for (g, filters) in groups.iter().enumerate() {
                let gat = format!("{at}/groups/{g}");
                let filters = list(engine, filters, &format!("{gat}/filters"), index)?;
                let matched = filters.iter().all(|c| c.matched);
                children.push(branch(gat, "group", matched, filters));
            }
            let matched = children.iter().any(|c| c.matched);
            branch(at, "groups", matched, children)
        }
        Condition::Email(test) => {
            let email = a.email_lower(index);
            let matched = test.matches(email);
            leaf(at, "email", matched, json!({ "email": email }))
        }
        Condition::Subscribed(want) => {
            let subscribed = a.subscribed.contains(index);
            leaf(
                at,
                "subscribed",
                subscribed == *want,
                json!({ "subscribed": subscribed }),
            )
        }
        Condition::Created(test) => {
            let created = a.created_at[index];
            leaf(
                at,
                "created",
                test.resolve(now).contains(created),
                json!({ "created_at": format_ms(created) }),
            )
        }
        Condition::Tag(test) => {
            let (matched, seen) = tag_outcome(a, test, index);
            leaf(at, "tag", matched, json!({ "tags": seen }))
        }
        Condition::Field { key, test } => {
            let value = a.field(key, index);
            let facts = match value {
                Val::Missing => json!({ "present": false }),
                v => json!({ "present": true, "value": v.to_json() }),
            };
            leaf(
                at,
                "field",
                ValueMatcher::new(test, now).matches(value),
                facts,
            )
        }
        Condition::Event(test) => {
            let fact = event_fact(a, test, now, &engine.cancel, index)?;
            let matched = Checks::new(test, now).pass(&fact);
            let mut facts = json!({ "count": fact.count });
            if test.sum.is_some() {
                facts["sum"] = json!(fact.sum);
            }
            if fact.count > 0 {
                facts["first"] = json!(format_ms(fact.first));
                facts["last"] = json!(format_ms(fact.last));
            }
            leaf(at, "event", matched, facts)
        }
        Condition::Segment { id, member } => {
            let is_member = engine.segment(*id)?.contains(index);
            leaf(
                at,
                "segment",
                is_member == *member,
                json!({ "segment_id": id.to_string(), "member": is_member }),
            )
        }
        Condition::Sample(test) => {
            let bucket = bucket(&test.salt, a.uuid(index, &mut [0; 32]));
            leaf(
                at,
                "sample",
                sample_holds(test, bucket),
                json!({ "bucket": f64::from(bucket) / 100.0 }),
            )
        }
    })
}

fn branch(at: String, condition: &'static str, matched: bool, children: Vec<Node>) -> Node {
    Node {
        at,
        condition,
        matched,
        facts: None,
        children,
    }
}

/// A tag test for one subscriber, and the tags it named that they have.
fn tag_outcome(a: &Columns, test: &TagTest, index: usize) -> (bool, Vec<String>) {
    let has = |name: &String| a.tag(name).is_some_and(|set| set.contains(index));
    let mut named: Vec<&String> = Vec::new();
    named.extend(test.has.iter());
    named.extend(test.has_not.iter());
    for list in [&test.any_of, &test.all_of, &test.none_of]
        .into_iter()
        .flatten()
    {
        named.extend(list.iter());
    }
    let matched = test.has.as_ref().is_none_or(has)
        && !test.has_not.as_ref().is_some_and(has)
        && test.any_of.as_ref().is_none_or(|l| l.iter().any(has))
        && test.all_of.as_ref().is_none_or(|l| l.iter().all(has))
        && !test.none_of.as_ref().is_some_and(|l| l.iter().any(has));
    let mut seen: Vec<String> = named.into_iter().filter(|n| has(n)).cloned().collect();
    seen.sort();
    seen.dedup();
    (matched, seen)
}

/// The counted events of one subscriber for an event test.
fn event_fact(
    a: &Columns,
    test: &EventTest,
    now: i64,
    cancel: &Cancel,
    index: usize,
) -> Result<Fact, EvalError> {
    let mut fact = Fact::NONE;
    scan_events(a, test, now, cancel, |s, at, amount| {
        if s == index {
            fact.add(at, amount);
        }
    })?;
    Ok(fact)
}
