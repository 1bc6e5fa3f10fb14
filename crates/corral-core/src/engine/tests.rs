//! The engine against hand-worked answers, and against the naive evaluator
//! over random audiences and random queries: the parser must read a query's
//! text as the document says, the engine's members must be the naive
//! evaluator's, and `explain` must give the naive evaluator's outcome and
//! facts for every condition. Engines broken on purpose must fail that.

use super::naive::{self, Happening, Person, World};
use super::testing::{NOW, cases};
use super::*;
use crate::columns::*;
use crate::query::ast::*;
use crate::query::parse;
use proptest::prelude::*;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;

const DAY: i64 = 86_400_000;

pub(super) fn build(people: &[Person], events: &[Happening], queries: &[&Query]) -> Columns {
    let mut b = ColumnsBuilder::new();
    for p in people {
        b.subscriber(SubscriberRecord {
            id: p.id,
            uuid: p.uuid.clone(),
            email: p.email.clone(),
            subscribed: p.subscribed,
            created_at: p.created_at,
            fields: p.fields.clone(),
        });
    }
    for p in people {
        for t in &p.tags {
            b.tag(p.id, &t.trim().to_lowercase());
        }
    }
    for e in events {
        b.event(e.subscriber_id, &e.kind, e.at);
    }
    let audience = b.build();
    for (kind, path) in crate::engine::missing_details(&audience, queries) {
        let values = events
            .iter()
            .filter(|e| e.kind == kind)
            .map(|e| path.lookup(&e.details).map_or(Val::Missing, Val::from_json))
            .collect();
        assert!(audience.add_details(&kind, path, values));
    }
    audience
}

fn person(id: i64, email: &str, subscribed: bool, tags: &[&str], fields: Value) -> Person {
    Person {
        id,
        uuid: format!("{id:032x}"),
        email: email.to_owned(),
        subscribed,
        created_at: NOW - id * 10 * DAY,
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        fields: fields.as_object().cloned().unwrap_or_default(),
    }
}

use serde_json::Value;

fn event(subscriber_id: i64, kind: &str, days_ago: i64, details: Value) -> Happening {
    Happening {
        subscriber_id,
        kind: kind.to_owned(),
        at: NOW - days_ago * DAY,
        details,
    }
}

/// Six people, worked out by hand below.
fn hand_made() -> (Vec<Person>, Vec<Happening>, HashMap<i64, Query>) {
    let people = vec![
        person(
            1,
            "Ann@Gmail.com",
            true,
            &["VIP", "lead"],
            json!({"plan": "Pro", "company_size": 120, "signed_up_on": "2026-01-10", "beta": true}),
        ),
        person(
            2,
            "bob@example.org",
            true,
            &["lead"],
            json!({"plan": "free", "company_size": 8, "nickname": null}),
        ),
        person(
            3,
            "cy@gmail.com",
            false,
            &[],
            json!({"plan": "team", "company_size": "120", "signed_up_on": "2025-12-31"}),
        ),
        person(
            4,
            "dee@work.io",
            true,
            &["customer", " Vip "],
            json!({"plan": "enterprise", "city": "Zürich"}),
        ),
        person(5, "eve@gmail.co", true, &["customer"], json!({})),
        person(
            6,
            "fay@mail.gmail.com",
            false,
            &["lead", "customer"],
            json!({"plan": "pro", "company_size": 64.5}),
        ),
    ];
    let buy = |key: &str, amount: f64| json!({"unique": {"key": key}, "value": {"currency": "USD", "amount": amount}});
    let events = vec![
        event(1, "$purchase", 5, buy("o1", 300.0)),
        event(1, "$purchase", 40, buy("o2", 250.0)),
        event(1, "$login", 1, json!({})),
        event(1, "$login", 2, json!({})),
        event(1, "$login", 3, json!({})),
        event(2, "$login", 100, json!({})),
        event(2, "$purchase", 10, buy("o3", 99.0)),
        event(4, "$purchase", 89, buy("o4", 600.0)),
        event(4, "$purchase", 91, buy("o5", 1000.0)),
        event(
            4,
            "$pageview",
            0,
            json!({"url": "https://shop.example/Pricing"}),
        ),
        event(6, "$purchase", 30, json!({"value": {"amount": "lots"}})),
        event(
            6,
            "$pageview",
            30,
            json!({"url": "https://shop.example/blog"}),
        ),
    ];
    let mut segments = HashMap::new();
    segments.insert(10, parse(r#"{"tag":{"has":"customer"}}"#).unwrap());
    segments.insert(11, parse(r#"{"segment":{"member_of":"10"}}"#).unwrap());
    (people, events, segments)
}

#[track_caller]
fn check(text: &str, expected: &[i64]) {
    let (people, events, segments) = hand_made();
    let query = parse(text).unwrap_or_else(|e| panic!("{text}: {e:?}"));
    let refs: Vec<&Query> = std::iter::once(&query).chain(segments.values()).collect();
    let audience = build(&people, &events, &refs);
    let resolver: HashMap<i64, Arc<Query>> = segments
        .iter()
        .map(|(id, q)| (*id, Arc::new(q.clone())))
        .collect();
    let set = members(&audience, &query, NOW, &resolver).unwrap();
    let got: Vec<i64> = set.ones().map(|i| audience.ids[i]).collect();
    assert_eq!(got, expected, "engine: {text}");
    let world = World {
        people: &people,
        events: &events,
        segments: &segments,
        now: NOW,
    };
    assert_eq!(world.members(&query).unwrap(), expected, "naive: {text}");
    for i in 0..audience.len() {
        let e = explain(&audience, &query, NOW, &resolver, i).unwrap();
        assert_eq!(
            e.matched,
            set.contains(i),
            "explain of {}: {text}",
            audience.ids[i]
        );
    }
}

/// Tags and events find their subscriber whether a site's ids lie close
/// together (a table by id) or far apart among other sites' (a search).
#[test]
fn tags_and_events_find_their_subscriber_however_far_apart_the_ids_are() {
    for ids in [[3_i64, 4, 6], [3, 4_000_000, 90_000_000]] {
        let mut b = ColumnsBuilder::new();
        for &id in &ids {
            b.plain_subscriber(id);
        }
        b.tag(ids[1], "vip");
        b.tag(ids[2] + 1, "vip");
        b.event(ids[2], "$purchase", NOW - DAY);
        b.event(ids[0] - 1, "$purchase", NOW - DAY);
        let audience = b.build();
        let members = |text: &str| -> Vec<i64> {
            let query = parse(text).unwrap();
            let found = members(&audience, &query, NOW, &HashMap::new()).unwrap();
            found.ones().map(|i| audience.ids[i]).collect()
        };
        assert_eq!(members(r#"{"tag":{"has":"vip"}}"#), [ids[1]], "{ids:?}");
        assert_eq!(
            members(r#"{"event":{"type":"$purchase"}}"#),
            [ids[2]],
            "{ids:?}"
        );
    }
}

#[test]
fn booleans_and_groups() {
    check("{}", &[1, 2, 3, 4, 5, 6]);
    check(r#"{"all":[]}"#, &[1, 2, 3, 4, 5, 6]);
    check(r#"{"any":[]}"#, &[]);
    check(r#"{"groups":[]}"#, &[]);
    check(r#"{"groups":[{"filters":[]}]}"#, &[1, 2, 3, 4, 5, 6]);
    check(r#"{"not":{"not":{"subscribed":true}}}"#, &[1, 2, 4, 5]);
    check(
        r#"{"groups":[{"filters":[{"tag":{"has":"lead"}},{"subscribed":true}]},{"filters":[{"email":{"domain":"work.io"}}]}]}"#,
        &[1, 2, 4],
    );
    check(
        r#"{"any":[{"all":[{"tag":{"has":"vip"}},{"not":{"tag":{"has":"customer"}}}]},{"field":{"key":"plan","equals":"TEAM"}}]}"#,
        &[1, 3],
    );
}

#[test]
fn subscribers() {
    check(r#"{"email":{"equals":"ANN@gmail.com"}}"#, &[1]);
    check(r#"{"email":{"contains":"@gmail"}}"#, &[1, 3, 5]);
    check(r#"{"email":{"starts_with":"b"}}"#, &[2]);
    check(r#"{"email":{"ends_with":".com"}}"#, &[1, 3, 6]);
    check(r#"{"email":{"domain":"gmail.com"}}"#, &[1, 3]);
    check(r#"{"email":{"in":["eve@gmail.co","nobody@x.y"]}}"#, &[5]);
    check(
        r#"{"email":{"not_equals":"ann@gmail.com","contains":"gmail"}}"#,
        &[3, 5, 6],
    );
    check(r#"{"subscribed":false}"#, &[3, 6]);
    // Created 10, 20, … 60 days before NOW.
    check(r#"{"created":{"within_last":{"days":30}}}"#, &[1, 2, 3]);
    check(r#"{"created":{"older_than":{"days":30}}}"#, &[4, 5, 6]);
    check(
        r#"{"created":{"between":["2026-05-06T12:00:00Z","2026-05-26T12:00:00Z"]}}"#,
        &[3, 4],
    );
}

#[test]
fn tags_ignore_case_and_spaces() {
    check(r#"{"tag":{"has":"vip"}}"#, &[1, 4]);
    check(r#"{"tag":{"has":" VIP"}}"#, &[1, 4]);
    check(r#"{"tag":{"has_not":"lead"}}"#, &[3, 4, 5]);
    check(r#"{"tag":{"any_of":["vip","customer"]}}"#, &[1, 4, 5, 6]);
    check(r#"{"tag":{"all_of":["lead","customer"]}}"#, &[6]);
    check(r#"{"tag":{"none_of":["lead","customer"]}}"#, &[3]);
    check(r#"{"tag":{"has":"nobody-has-this"}}"#, &[]);
}

#[test]
fn fields_respect_types() {
    check(
        r#"{"field":{"key":"plan","exists":true}}"#,
        &[1, 2, 3, 4, 6],
    );
    check(r#"{"field":{"key":"Plan","exists":false}}"#, &[5]);
    check(r#"{"field":{"key":"plan","equals":"pro"}}"#, &[1, 6]);
    check(r#"{"field":{"key":"plan","not_equals":"pro"}}"#, &[2, 3, 4]);
    check(r#"{"field":{"key":"plan","in":["free","team"]}}"#, &[2, 3]);
    check(r#"{"field":{"key":"plan","contains":"R"}}"#, &[1, 2, 4, 6]);
    check(r#"{"field":{"key":"city","starts_with":"zü"}}"#, &[4]);
    // "120" (text) is not the number 120.
    check(r#"{"field":{"key":"company_size","at_least":64}}"#, &[1, 6]);
    check(r#"{"field":{"key":"company_size","equals":120}}"#, &[1]);
    check(r#"{"field":{"key":"company_size","equals":"120"}}"#, &[3]);
    check(
        r#"{"field":{"key":"company_size","more_than":8,"less_than":100}}"#,
        &[6],
    );
    check(
        r#"{"field":{"key":"signed_up_on","since":"2026-01-01"}}"#,
        &[1],
    );
    check(
        r#"{"field":{"key":"signed_up_on","before":"2026-01-01"}}"#,
        &[3],
    );
    check(r#"{"field":{"key":"beta","equals":true}}"#, &[1]);
    // Null is there, but passes nothing else.
    check(r#"{"field":{"key":"nickname","exists":true}}"#, &[2]);
    check(r#"{"field":{"key":"nickname","not_equals":"x"}}"#, &[]);
    check(r#"{"field":{"key":"never_set","not_equals":"x"}}"#, &[]);
    check(
        r#"{"not":{"field":{"key":"never_set","equals":"x"}}}"#,
        &[1, 2, 3, 4, 5, 6],
    );
}

#[test]
fn events() {
    check(r#"{"event":{"type":"$purchase"}}"#, &[1, 2, 4, 6]);
    check(r#"{"not":{"event":{"type":"$purchase"}}}"#, &[3, 5]);
    check(
        r#"{"event":{"type":"$purchase","count":{"equals":0}}}"#,
        &[3, 5],
    );
    check(
        r#"{"event":{"type":"$login","count":{"at_least":3}}}"#,
        &[1],
    );
    check(
        r#"{"event":{"type":"$login","count":{"at_most":1}}}"#,
        &[2, 3, 4, 5, 6],
    );
    check(
        r#"{"event":{"type":"$purchase","count":{"equals":2}}}"#,
        &[1, 4],
    );
    check(
        r#"{"event":{"type":"$login","when":{"within_last":{"days":2}}}}"#,
        &[1],
    );
    check(
        r#"{"event":{"type":"$login","when":{"within_last":{"days":2}},"count":{"equals":2}}}"#,
        &[1],
    );
    // Purchases 89 days ago count in a 90-day window, 91 days ago do not;
    // one exactly 30 days ago is inside a 30-day window (edges included).
    check(
        r#"{"event":{"type":"$purchase","when":{"within_last":{"days":90}},"sum":{"of":"value.amount","more_than":500}}}"#,
        &[1, 4],
    );
    check(
        r#"{"event":{"type":"$purchase","when":{"within_last":{"days":89}},"count":{"at_least":1}}}"#,
        &[1, 2, 4, 6],
    );
    check(
        r#"{"event":{"type":"$purchase","sum":{"of":"value.amount","at_least":1600}}}"#,
        &[4],
    );
    // A non-number does not add up, but the event still counts.
    check(
        r#"{"event":{"type":"$purchase","sum":{"of":"value.amount","equals":0},"count":{"equals":1}}}"#,
        &[6],
    );
    check(
        r#"{"event":{"type":"$purchase","where":{"value.amount":{"more_than":100}}}}"#,
        &[1, 4],
    );
    check(
        r#"{"event":{"type":"$purchase","where":{"value.amount":{"more_than":100},"value.currency":{"equals":"usd"}},"count":{"at_least":2}}}"#,
        &[1, 4],
    );
    check(
        r#"{"event":{"where":{"url":{"contains":"pricing"}}}}"#,
        &[4],
    );
    check(
        r#"{"event":{"type":"$purchase","first":{"within_last":{"days":30}}}}"#,
        &[2, 6],
    );
    check(
        r#"{"event":{"type":"$purchase","last":{"within_last":{"days":30}}}}"#,
        &[1, 2, 6],
    );
    check(r#"{"event":{"count":{"at_least":4}}}"#, &[1]);
    check(r#"{"event":{"type":"$nothing"}}"#, &[]);
}

#[test]
fn segments() {
    check(r#"{"segment":{"member_of":"10"}}"#, &[4, 5, 6]);
    check(r#"{"segment":{"not_member_of":10}}"#, &[1, 2, 3]);
    check(
        r#"{"all":[{"segment":{"member_of":"11"}},{"subscribed":true}]}"#,
        &[4, 5],
    );
}

/// The six people's buckets for "spring-test" (their uuids are their ids
/// in 32 hex digits), worked out with Python's hashlib: 1: 68.98, 2: 85.14,
/// 3: 26.76, 4: 2.86, 5: 60.74, 6: 33.87.
#[test]
fn samples() {
    let sample = |from: f64, to: f64| {
        format!(r#"{{"sample":{{"salt":"spring-test","from":{from},"to":{to}}}}}"#)
    };
    check(&sample(0.0, 10.0), &[4]);
    check(&sample(0.0, 50.0), &[3, 4, 6]);
    check(&sample(50.0, 100.0), &[1, 2, 5]);
    check(&sample(0.0, 100.0), &[1, 2, 3, 4, 5, 6]);
    // The start is included, the end is not.
    check(&sample(26.76, 33.87), &[3]);
    check(&sample(26.77, 33.88), &[6]);
    check(&format!(r#"{{"not":{}}}"#, sample(0.0, 50.0)), &[1, 2, 5]);
    // A holdout of a segment (10: the customers 4, 5 and 6), and the rest.
    let of_customers = |from: f64, to: f64| {
        format!(
            r#"{{"all":[{{"segment":{{"member_of":"10"}}}},{}]}}"#,
            sample(from, to)
        )
    };
    check(&of_customers(0.0, 50.0), &[4, 6]);
    check(&of_customers(50.0, 100.0), &[5]);
    // Another salt, another draw (30.03, 41.72, 44.53, 98.38, 47.66, 17.41).
    check(
        r#"{"sample":{"salt":"Spring-test","from":0,"to":50}}"#,
        &[1, 2, 3, 5, 6],
    );
}

/// Uuids that look random, the same every run.
fn generated_uuid(i: u64) -> String {
    let mix = |mut x: u64| {
        // splitmix64
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^ (x >> 31)
    };
    format!("{:016x}{:016x}", mix(2 * i), mix(2 * i + 1))
}

#[test]
fn a_tenth_of_100_000_is_ten_percent_within_a_point_and_ranges_partition() {
    const N: i64 = 100_000;
    let mut b = ColumnsBuilder::new();
    for id in 1..=N {
        b.subscriber(SubscriberRecord {
            id,
            uuid: generated_uuid(id as u64),
            email: format!("{id}@x.io"),
            subscribed: true,
            created_at: 0,
            fields: Default::default(),
        });
    }
    let audience = b.build();
    let none: HashMap<i64, Arc<Query>> = HashMap::new();
    let members = |salt: &str, from: f64, to: f64| {
        let text = format!(r#"{{"sample":{{"salt":"{salt}","from":{from},"to":{to}}}}}"#);
        members(&audience, &parse(&text).unwrap(), NOW, &none).unwrap()
    };
    for salt in ["spring-test", "holdout-2027", "ünï"] {
        for (from, to) in [(0.0, 10.0), (45.5, 55.5), (90.0, 100.0)] {
            let share = members(salt, from, to).count_ones(..) as f64 / N as f64;
            assert!(
                (0.09..=0.11).contains(&share),
                "[{from}, {to}) of {salt:?} holds {:.2}% of {N}",
                share * 100.0
            );
        }
        // [0, 10) and [10, 100) are disjoint and hold everybody.
        let tenth = members(salt, 0.0, 10.0);
        let rest = members(salt, 10.0, 100.0);
        assert!(tenth.is_disjoint(&rest), "{salt}");
        assert_eq!(
            tenth.count_ones(..) + rest.count_ones(..),
            N as usize,
            "{salt}"
        );
    }
}

#[test]
fn explain_shows_the_bucket() {
    let (people, events, _) = hand_made();
    let query = parse(r#"{"sample":{"salt":"spring-test","from":2.86,"to":10}}"#).unwrap();
    let audience = build(&people, &events, &[&query]);
    let none: HashMap<i64, Arc<Query>> = HashMap::new();
    let e = explain(&audience, &query, NOW, &none, 3).unwrap();
    assert!(e.matched);
    assert_eq!(e.root.condition, "sample");
    assert_eq!(e.root.facts, Some(json!({"bucket": 2.86})));
    let e = explain(&audience, &query, NOW, &none, 0).unwrap();
    assert!(!e.matched);
    assert_eq!(e.root.facts, Some(json!({"bucket": 68.98})));
}

#[test]
fn foreign_and_missing_references_are_not_evaluable() {
    let (people, events, _) = hand_made();
    let audience = build(&people, &events, &[]);
    let none: HashMap<i64, Arc<Query>> = HashMap::new();
    let foreign = parse(r#"{"foreign":{"a":[1,{"b":2}]}}"#).unwrap();
    assert_eq!(
        members(&audience, &foreign, NOW, &none),
        Err(EvalError::Foreign)
    );
    let q = parse(r#"{"segment":{"member_of":"99"}}"#).unwrap();
    assert_eq!(
        members(&audience, &q, NOW, &none),
        Err(EvalError::MissingReference(99))
    );
    let mut cyclic: HashMap<i64, Arc<Query>> = HashMap::new();
    cyclic.insert(
        1,
        Arc::new(parse(r#"{"segment":{"member_of":"1"}}"#).unwrap()),
    );
    let q = parse(r#"{"segment":{"member_of":"1"}}"#).unwrap();
    assert_eq!(
        members(&audience, &q, NOW, &cyclic),
        Err(EvalError::ReferencesTooDeep)
    );
}

#[test]
fn a_subscriber_is_found_by_id() {
    let (people, events, _) = hand_made();
    let audience = build(&people, &events, &[]);
    assert!(!audience.is_empty());
    for (i, id) in audience.ids.iter().enumerate() {
        assert_eq!(audience.index_of(*id), Some(i));
    }
    assert_eq!(audience.index_of(0), None);
    assert_eq!(audience.index_of(i64::MAX), None);
    assert!(build(&[], &[], &[]).is_empty());
}

#[test]
fn only_a_chain_of_references_counts_towards_their_depth() {
    let (people, events, _) = hand_made();
    let audience = build(&people, &events, &[]);
    let refer = |id: i64| format!(r#"{{"segment":{{"member_of":"{id}"}}}}"#);
    // Forty segments side by side: each is one reference deep.
    let side_by_side: HashMap<i64, Arc<Query>> = (1..=40)
        .map(|id| (id, Arc::new(parse(r#"{"subscribed":true}"#).unwrap())))
        .collect();
    let all: Vec<String> = (1..=40).map(refer).collect();
    let query = parse(&format!(r#"{{"all":[{}]}}"#, all.join(","))).unwrap();
    let set = members(&audience, &query, NOW, &side_by_side).unwrap();
    assert_eq!(
        set.ones().map(|i| audience.ids[i]).collect::<Vec<_>>(),
        [1, 2, 4, 5]
    );
    // A chain: segment n refers to n + 1, and the last holds a condition.
    let chain = |length: i64| -> HashMap<i64, Arc<Query>> {
        (1..=length)
            .map(|id| {
                let text = if id == length {
                    r#"{"subscribed":true}"#.to_owned()
                } else {
                    refer(id + 1)
                };
                (id, Arc::new(parse(&text).unwrap()))
            })
            .collect()
    };
    let first = parse(&refer(1)).unwrap();
    assert_eq!(
        members(&audience, &first, NOW, &chain(32))
            .unwrap()
            .count_ones(..),
        4
    );
    assert_eq!(
        members(&audience, &first, NOW, &chain(33)),
        Err(EvalError::ReferencesTooDeep)
    );
}

#[test]
fn explain_names_every_condition_with_its_facts() {
    let (people, events, _) = hand_made();
    let query = parse(
        r#"{"groups":[{"filters":[{"tag":{"has":"vip"}},{"event":{"type":"$purchase","sum":{"of":"value.amount","more_than":500}}}]}]}"#,
    )
    .unwrap();
    let audience = build(&people, &events, &[&query]);
    let none: HashMap<i64, Arc<Query>> = HashMap::new();
    let e = explain(&audience, &query, NOW, &none, 0).unwrap();
    assert!(e.matched);
    let group = &e.root.children[0];
    assert_eq!(group.at, "/groups/0");
    assert_eq!(group.children[0].at, "/groups/0/filters/0");
    assert_eq!(group.children[0].facts, Some(json!({"tags": ["vip"]})));
    assert_eq!(group.children[1].at, "/groups/0/filters/1");
    let facts = group.children[1].facts.as_ref().unwrap();
    assert_eq!(facts["count"], 2);
    assert_eq!(facts["sum"], 550.0);
    let e = explain(&audience, &query, NOW, &none, 1).unwrap();
    assert!(!e.matched);
    assert!(!e.root.children[0].children[0].matched);
}

// ---- property tests: the engine, explain and the parser against the naive evaluator ----

/// One random case: an audience, a query and the two segments it may refer
/// to (100 and 101) as a person wrote them, the clock, and the seed that
/// decides how the query's text spells them.
#[derive(Debug, Clone)]
struct Case {
    now: i64,
    people: Vec<Person>,
    events: Vec<Happening>,
    query: Condition,
    segments: [Condition; 2],
    seed: u64,
}

fn arb_case() -> impl Strategy<Value = Case> {
    arb_case_of(0..=8)
}

/// A case with this many people.
fn arb_case_of(size: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = Case> {
    prop::sample::select(cases::clocks())
        .prop_flat_map(|now| {
            (
                Just(now),
                cases::arb_spec_at(now),
                cases::arb_leaf_at(now),
                cases::arb_spec_at(now),
                any::<u64>(),
            )
        })
        .prop_flat_map(move |(now, query, s100, s101, seed)| {
            // Segment 101 may refer to 100; 100 refers to nothing (no cycles).
            let s100 = match s100 {
                Condition::Segment { .. } => Condition::All(vec![]),
                c => c,
            };
            let s101 = if contains_ref(&s101, 101) {
                Condition::Subscribed(true)
            } else {
                s101
            };
            let mut hot = cases::Hot::default();
            for c in [&query, &s100, &s101] {
                cases::edges_of(c, now, &mut hot);
            }
            let times = cases::Times { now, hot };
            cases::arb_world(times, size.clone()).prop_map(move |(people, events)| Case {
                now,
                people,
                events,
                query: query.clone(),
                segments: [s100.clone(), s101.clone()],
                seed,
            })
        })
}

/// How every failure where the engine's answer differs from the document's
/// (the naive evaluator's) begins: what a broken engine must be caught by,
/// unlike a query that does not parse, an error or a panic.
const DISAGREE: &str = "the engine disagrees with the document: ";

/// Fails the case with [`DISAGREE`] unless the engine's answer (first) is
/// the document's (second).
macro_rules! agree {
    ($engine:expr, $document:expr, $($what:tt)+) => {{
        let (engine, document) = (&$engine, &$document);
        if engine != document {
            return Err(TestCaseError::fail(format!(
                "{DISAGREE}{}: the engine says {:?}, the document {:?}",
                format!($($what)+),
                engine,
                document
            )));
        }
    }};
}

/// The property: the parser reads the query's text as the document says;
/// the engine's members are the naive evaluator's; and for every
/// subscriber, `explain` answers what the naive evaluator works out, node by
/// node, facts included.
fn holds_for(case: &Case) -> Result<(), TestCaseError> {
    let mut writer = cases::Writer::new(case.seed);
    let mut read = |written: &Condition| -> Result<(Query, String), TestCaseError> {
        let text = writer.query(written);
        let query = parse(&text)
            .map_err(|p| TestCaseError::fail(format!("{text} does not parse: {p:?}")))?;
        let expected = Query::Condition(Box::new(naive::normalized(written)));
        prop_assert_eq!(&query, &expected, "{} is not read as written", text);
        Ok((query, text))
    };
    let (query, text) = read(&case.query)?;
    let resolver: HashMap<i64, Arc<Query>> = [
        (100, Arc::new(read(&case.segments[0])?.0)),
        (101, Arc::new(read(&case.segments[1])?.0)),
    ]
    .into();
    let written: HashMap<i64, Query> = [
        (100, Query::Condition(Box::new(case.segments[0].clone()))),
        (101, Query::Condition(Box::new(case.segments[1].clone()))),
    ]
    .into();
    let as_written = Query::Condition(Box::new(case.query.clone()));

    let refs: Vec<&Query> = std::iter::once(&query)
        .chain(resolver.values().map(|q| q.as_ref()))
        .collect();
    let audience = build(&case.people, &case.events, &refs);
    let set = members(&audience, &query, case.now, &resolver)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let got: Vec<i64> = set.ones().map(|i| audience.ids[i]).collect();
    let world = World {
        people: &case.people,
        events: &case.events,
        segments: &written,
        now: case.now,
    };
    agree!(
        got,
        world.members(&as_written).unwrap(),
        "members of {}",
        text
    );

    // Outcomes by pointer, per subscriber, as the document has them.
    let mut outcomes: Vec<HashMap<String, bool>> = Vec::new();
    for (i, person) in case.people.iter().enumerate() {
        let e = explain(&audience, &query, case.now, &resolver, i)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        agree!(e.matched, set.contains(i), "explain of {}", person.id);
        let engine = serde_json::to_value(&e.root).unwrap();
        let expected = world.explain(&as_written, person).unwrap();
        if let Some(difference) = first_difference(&engine, &expected) {
            return Err(TestCaseError::fail(format!(
                "{DISAGREE}explain of subscriber {} for {text}: {difference}",
                person.id
            )));
        }
        let mut by_pointer = HashMap::new();
        outcomes_by_pointer(&expected, &mut by_pointer);
        outcomes.push(by_pointer);
    }

    // And every condition inside the query, on its own: a wrong answer
    // cannot hide behind an `any` or a `not`.
    let Query::Condition(root) = &query else {
        unreachable!("parsed from a condition")
    };
    let mut inside = Vec::new();
    conditions_at(root, String::new(), &mut inside);
    for (at, c) in inside.iter().skip(1) {
        let set = members(
            &audience,
            &Query::Condition(Box::new((*c).clone())),
            case.now,
            &resolver,
        )
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
        for (i, person) in case.people.iter().enumerate() {
            agree!(
                set.contains(i),
                outcomes[i][at],
                "members at {} of {} for subscriber {}",
                at,
                text,
                person.id
            );
        }
    }

    // Every sum at its own edge: floating point addition depends on the
    // order, so for each event test with a `sum` and each subscriber, the
    // test asks for exactly the sum the document adds up (type by type, in
    // the order the events happened), and the engine must agree on who has it.
    for (at, c) in &inside {
        let Condition::Event(t) = c else { continue };
        let Some((path, _)) = &t.sum else { continue };
        for person in &case.people {
            let sum = world.event_facts(t, person).sum;
            let exactly = Query::Condition(Box::new(Condition::Event(EventTest {
                sum: Some((
                    path.clone(),
                    NumberTest {
                        equals: Some(sum),
                        ..NumberTest::default()
                    },
                )),
                count: None,
                first: None,
                last: None,
                ..t.clone()
            })));
            let set = members(&audience, &exactly, case.now, &resolver)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let got: Vec<i64> = set.ones().map(|i| audience.ids[i]).collect();
            agree!(
                got,
                world.members(&exactly).unwrap(),
                "the sum at {} of {} equal to subscriber {}'s, {:?}",
                at,
                text,
                person.id,
                sum
            );
        }
    }
    Ok(())
}

/// Every condition of a tree (itself first) with its JSON pointer, as
/// `explain` names them.
fn conditions_at<'c>(c: &'c Condition, at: String, out: &mut Vec<(String, &'c Condition)>) {
    out.push((at.clone(), c));
    match c {
        Condition::All(cs) => {
            for (i, c) in cs.iter().enumerate() {
                conditions_at(c, format!("{at}/all/{i}"), out);
            }
        }
        Condition::Any(cs) => {
            for (i, c) in cs.iter().enumerate() {
                conditions_at(c, format!("{at}/any/{i}"), out);
            }
        }
        Condition::Not(c) => conditions_at(c, format!("{at}/not"), out),
        Condition::Groups(groups) => {
            for (g, filters) in groups.iter().enumerate() {
                for (i, c) in filters.iter().enumerate() {
                    conditions_at(c, format!("{at}/groups/{g}/filters/{i}"), out);
                }
            }
        }
        _ => {}
    }
}

fn outcomes_by_pointer(node: &Value, out: &mut HashMap<String, bool>) {
    if let (Some(at), Some(matched)) = (node["at"].as_str(), node["matched"].as_bool()) {
        out.insert(at.to_owned(), matched);
    }
    for child in node["children"].as_array().into_iter().flatten() {
        outcomes_by_pointer(child, out);
    }
}

/// Where two explanations first part, node by node (numbers compared by
/// value: `3` and `3.0` are the same fact).
fn first_difference(engine: &Value, expected: &Value) -> Option<String> {
    let at = &expected["at"];
    for key in ["at", "condition", "matched"] {
        if engine[key] != expected[key] {
            return Some(format!(
                "at {at}: {key} is {} in explain, {} by the document",
                engine[key], expected[key]
            ));
        }
    }
    if !same(&engine["facts"], &expected["facts"]) {
        return Some(format!(
            "at {at}: facts are {} in explain, {} by the document",
            engine["facts"], expected["facts"]
        ));
    }
    let none = Vec::new();
    let children = |v: &Value| v["children"].as_array().unwrap_or(&none).clone();
    let (a, b) = (children(engine), children(expected));
    if a.len() != b.len() {
        return Some(format!(
            "at {at}: {} children in explain, {} by the document",
            a.len(),
            b.len()
        ));
    }
    a.iter().zip(&b).find_map(|(x, y)| first_difference(x, y))
}

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// Cases of the property: enough for every mutant below to be caught in
/// every run (it takes a few dozen at most), few enough for CI.
const CASES: u32 = 384;

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, ..ProptestConfig::default() })]

    #[test]
    fn engine_agrees_with_the_naive_evaluator(case in arb_case()) {
        holds_for(&case)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Sets of subscribers are built 64 at a time: audiences of more than
    /// one word, and ending inside one.
    #[test]
    fn engine_agrees_with_the_naive_evaluator_over_more_than_64(case in arb_case_of(65..=150)) {
        holds_for(&case)?;
    }
}

pub(crate) fn contains_ref(c: &Condition, id: i64) -> bool {
    let mut found = false;
    c.walk(&mut |c| found |= matches!(c, Condition::Segment { id: x, .. } if *x == id));
    found
}

/// Cases a broken engine is given to fail in. Each of the mutants below is
/// caught within a hundred cases on average (the slowest in a few hundred);
/// a run stops at the first failure, so the margin costs nothing when the
/// property does its job.
const MUTANT_CASES: u32 = 2_000;

/// The seed the broken engines are tried with: fixed, so that every run
/// tries the same cases; `CORRAL_MUTANT_SEED` tries others.
const MUTANT_SEED: u64 = 20;

#[test]
fn the_property_catches_a_broken_engine() {
    // The same harness and generators, against engines each broken in one
    // way (switched on for this thread and the threads its evaluations
    // spread onto): each must be caught by a disagreement with the
    // document, not by an error or a panic.
    use super::mutant::{self, Mutant};
    use proptest::test_runner::{RngSeed, TestError, TestRunner};
    let seed = std::env::var("CORRAL_MUTANT_SEED")
        .ok()
        .map_or(MUTANT_SEED, |s| {
            s.parse().expect("CORRAL_MUTANT_SEED is a number")
        });
    println!("broken engines tried with seed {seed} (CORRAL_MUTANT_SEED={seed} replays it)");
    for broken in [
        Mutant::WindowEndIncluded,
        Mutant::DomainAlone,
        Mutant::FirstIsLast,
        Mutant::MonthsRollOver,
        Mutant::SampleEndIncluded,
        Mutant::BucketLittleEndian,
    ] {
        let _on = mutant::on(broken);
        let mut runner = TestRunner::new(ProptestConfig {
            cases: MUTANT_CASES,
            failure_persistence: None,
            max_shrink_iters: 256,
            rng_seed: RngSeed::Fixed(seed),
            ..ProptestConfig::default()
        });
        match runner.run(&arb_case(), |case| holds_for(&case)) {
            Err(TestError::Fail(reason, case)) if reason.message().starts_with(DISAGREE) => {
                println!("{broken:?} caught: {reason}\n{case:#?}");
            }
            other => panic!("{broken:?} was not caught by a disagreement (seed {seed}): {other:?}"),
        }
    }
}

#[test]
fn a_cancelled_evaluation_stops_with_cancelled() {
    let (people, events, _) = hand_made();
    let query = parse(r#"{"event":{"type":"$purchase"}}"#).unwrap();
    let audience = build(&people, &events, &[&query]);
    let none: HashMap<i64, Arc<Query>> = HashMap::new();
    let cancel = Cancel::default();
    assert!(members_unless(&audience, &query, NOW, &none, &cancel).is_ok());
    cancel.cancel();
    assert_eq!(
        members_unless(&audience, &query, NOW, &none, &cancel),
        Err(EvalError::Cancelled)
    );
    assert_eq!(
        explain_unless(&audience, &query, NOW, &none, 0, &cancel).map(|e| e.matched),
        Err(EvalError::Cancelled)
    );
}
