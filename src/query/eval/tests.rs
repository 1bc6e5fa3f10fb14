//! The engine against hand-worked answers, and against the naive evaluator
//! over random audiences and random queries.

use super::naive::{Happening, Person, World};
use super::*;
use crate::query::ast::*;
use crate::query::parse;
use proptest::prelude::*;
use serde_json::json;

const DAY: i64 = 86_400_000;
/// 2026-06-15T12:00:00Z
pub(crate) const NOW: i64 = 1_781_524_800_000;

fn build(people: &[Person], events: &[Happening], queries: &[&Query]) -> Audience {
    let mut b = AudienceBuilder::new();
    for p in people {
        b.subscriber(SubscriberRow {
            id: p.id,
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
    for (kind, path) in audience.missing_details(queries) {
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

// ---- property tests: engine and naive evaluator agree ----

pub(crate) const KINDS: &[&str] = &["a", "b", "$purchase"];
pub(crate) const TAGS: &[&str] = &["x", "Y", "z", "ünï"];
pub(crate) const KEYS: &[&str] = &["n", "s", "d"];

pub(crate) fn arb_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        (-3i64..6).prop_map(|n| json!(n)),
        (-3i64..6).prop_map(|n| json!(n as f64 + 0.5)),
        prop::sample::select(vec![
            "a",
            "Ab",
            "ünï",
            "ÜNÏ",
            "",
            "2026-06-10",
            "2026-06-14T12:00:00Z",
            "10"
        ])
        .prop_map(|s| json!(s)),
        any::<bool>().prop_map(|b| json!(b)),
        Just(Value::Null),
        Just(json!({"k": 1})),
    ]
}

/// Times on an hour grid around NOW, so windows' edges are hit exactly.
pub(crate) fn arb_time() -> impl Strategy<Value = i64> {
    (-100i64..4).prop_map(|h| NOW + h * 3_600_000)
}

fn arb_person(id: i64) -> impl Strategy<Value = Person> {
    (
        prop::sample::select(vec![
            "a@x.io",
            "B@X.io",
            "c@y.com",
            "ünï@x.io",
            "d@sub.x.io",
        ]),
        any::<bool>(),
        arb_time(),
        prop::sample::subsequence(TAGS.to_vec(), 0..=TAGS.len()),
        prop::collection::btree_map(prop::sample::select(KEYS.to_vec()), arb_value(), 0..3),
    )
        .prop_map(
            move |(email, subscribed, created_at, tags, fields)| Person {
                id,
                email: format!("{id}{email}"),
                subscribed,
                created_at,
                tags: tags.into_iter().map(str::to_owned).collect(),
                fields: fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            },
        )
}

fn arb_event(people: usize) -> impl Strategy<Value = Happening> {
    (
        1..=people as i64,
        prop::sample::select(KINDS.to_vec()),
        arb_time(),
        prop::option::of(arb_value()),
        prop::option::of(arb_value()),
    )
        .prop_map(|(subscriber_id, kind, at, amount, url)| {
            let mut details = json!({});
            if let Some(a) = amount {
                details["value"] = json!({ "amount": a });
            }
            if let Some(u) = url {
                details["url"] = u;
            }
            Happening {
                subscriber_id,
                kind: kind.to_owned(),
                at,
                details,
            }
        })
}

fn arb_world() -> impl Strategy<Value = (Vec<Person>, Vec<Happening>)> {
    (0usize..8).prop_flat_map(|n| {
        let people: Vec<_> = (1..=n as i64).map(arb_person).collect();
        let events = if n == 0 {
            Just(Vec::new()).boxed()
        } else {
            prop::collection::vec(arb_event(n), 0..30).boxed()
        };
        (people, events)
    })
}

fn arb_number_test() -> impl Strategy<Value = NumberTest> {
    (
        prop::option::of(-2i64..4),
        prop::option::of(-2i64..4),
        prop::option::of(-2i64..4),
        prop::option::of(-2i64..4),
    )
        .prop_map(|(eq, more, least, at_most)| NumberTest {
            equals: eq.map(|n| n as f64),
            more_than: more.map(|n| n as f64),
            at_least: least.map(|n| n as f64),
            at_most: at_most.map(|n| n as f64),
            ..NumberTest::default()
        })
}

fn arb_time_test() -> impl Strategy<Value = TimeTest> {
    let span = prop_oneof![
        (1u32..4).prop_map(Span::Hours),
        (1u32..4).prop_map(Span::Days),
        Just(Span::Weeks(1)),
        Just(Span::Months(1)),
    ];
    (
        prop::option::of(arb_time()),
        prop::option::of(arb_time()),
        prop::option::of(span.clone()),
        prop::option::of(span),
    )
        .prop_map(|(since, before, within_last, older_than)| TimeTest {
            since,
            before,
            within_last,
            older_than,
        })
}

fn arb_scalar() -> impl Strategy<Value = Scalar> {
    prop_oneof![
        (-3i64..6).prop_map(|n| Scalar::Number(n as f64)),
        Just(Scalar::Number(0.5)),
        prop::sample::select(vec!["a", "ab", "ünï", "10", "2026-06-10"])
            .prop_map(|s| Scalar::Text(s.to_owned())),
        any::<bool>().prop_map(Scalar::Bool),
    ]
}

fn arb_value_test() -> impl Strategy<Value = ValueTest> {
    let typed = prop_oneof![
        Just((
            TextTest::default(),
            NumberTest::default(),
            TimeTest::default()
        )),
        prop::sample::select(vec!["a", "ü", "1", "-"]).prop_map(|s| (
            TextTest {
                contains: Some(s.to_owned()),
                ..TextTest::default()
            },
            NumberTest::default(),
            TimeTest::default()
        )),
        arb_number_test().prop_map(|n| (TextTest::default(), n, TimeTest::default())),
        arb_time_test().prop_map(|t| (TextTest::default(), NumberTest::default(), t)),
    ];
    (
        prop::option::of(any::<bool>()),
        prop::option::of(arb_scalar()),
        prop::option::of(arb_scalar()),
        prop::option::of(prop::collection::vec(arb_scalar(), 0..3)),
        typed,
    )
        .prop_map(
            |(exists, equals, not_equals, one_of, (text, number, time))| ValueTest {
                exists,
                equals,
                not_equals,
                one_of,
                text,
                number,
                time,
            },
        )
}

fn arb_leaf() -> impl Strategy<Value = Condition> {
    let tag = prop::sample::select(vec!["x", "y", "z", "ünï", "none"]).prop_map(str::to_owned);
    let tags = prop::collection::vec(tag.clone(), 1..3);
    let path = prop::sample::select(vec!["value.amount", "url", "value"])
        .prop_map(|p| DetailPath(p.split('.').map(str::to_owned).collect()));
    prop_oneof![
        prop::sample::select(vec!["x.io", "sub.x.io", "1a@x.io", "ü"]).prop_map(|s| {
            Condition::Email(TextTest {
                domain: Some(s.to_owned()),
                ..TextTest::default()
            })
        }),
        prop::sample::select(vec!["1", "ü", "@x"]).prop_map(|s| Condition::Email(TextTest {
            contains: Some(s.to_owned()),
            ..TextTest::default()
        })),
        any::<bool>().prop_map(Condition::Subscribed),
        arb_time_test().prop_map(Condition::Created),
        (
            prop::option::of(tag.clone()),
            prop::option::of(tag),
            prop::option::of(tags.clone()),
            prop::option::of(tags.clone()),
            prop::option::of(tags)
        )
            .prop_map(
                |(has, has_not, any_of, all_of, none_of)| Condition::Tag(TagTest {
                    has,
                    has_not,
                    any_of,
                    all_of,
                    none_of,
                })
            ),
        (prop::sample::select(KEYS.to_vec()), arb_value_test()).prop_map(|(k, test)| {
            Condition::Field {
                key: k.to_owned(),
                test,
            }
        }),
        (
            prop::option::of(prop::sample::select(KINDS.to_vec())),
            arb_time_test(),
            prop::collection::vec((path.clone(), arb_value_test()), 0..2),
            prop::option::of(arb_number_test()),
            prop::option::of((path, arb_number_test())),
            prop::option::of(arb_time_test()),
            prop::option::of(arb_time_test()),
        )
            .prop_map(|(kind, when, filters, count, sum, first, last)| {
                Condition::Event(EventTest {
                    kind: kind.map(str::to_owned),
                    when,
                    filters,
                    count,
                    sum,
                    first,
                    last,
                })
            }),
        (prop::sample::select(vec![100i64, 101]), any::<bool>())
            .prop_map(|(id, member)| Condition::Segment { id, member }),
    ]
}

pub(crate) fn arb_condition() -> impl Strategy<Value = Condition> {
    arb_leaf().prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Condition::All),
            prop::collection::vec(inner.clone(), 0..4).prop_map(Condition::Any),
            inner.clone().prop_map(|c| Condition::Not(Box::new(c))),
            prop::collection::vec(prop::collection::vec(inner, 0..3), 0..3)
                .prop_map(Condition::Groups),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn engine_agrees_with_the_naive_evaluator(
        (people, events) in arb_world(),
        query in arb_condition(),
        s100 in arb_leaf(),
        s101 in arb_condition(),
    ) {
        // Segment 101 may refer to 100; 100 refers to nothing (no cycles).
        let strip = |c: Condition| match c {
            Condition::Segment { .. } => Condition::All(vec![]),
            c => c,
        };
        let mut segments = HashMap::new();
        segments.insert(100, Query::Condition(Box::new(strip(s100))));
        segments.insert(101, Query::Condition(Box::new(s101)));
        if matches!(segments[&101], Query::Condition(ref c) if contains_ref(c, 101)) {
            segments.insert(101, Query::Condition(Box::new(Condition::Subscribed(true))));
        }
        let query = Query::Condition(Box::new(query));
        let refs: Vec<&Query> = std::iter::once(&query).chain(segments.values()).collect();
        let audience = build(&people, &events, &refs);
        let resolver: HashMap<i64, Arc<Query>> =
            segments.iter().map(|(id, q)| (*id, Arc::new(q.clone()))).collect();
        let set = members(&audience, &query, NOW, &resolver).unwrap();
        let got: Vec<i64> = set.ones().map(|i| audience.ids[i]).collect();
        let world = World { people: &people, events: &events, segments: &segments, now: NOW };
        prop_assert_eq!(&got, &world.members(&query).unwrap());
        for i in 0..audience.len() {
            let e = explain(&audience, &query, NOW, &resolver, i).unwrap();
            prop_assert_eq!(e.matched, set.contains(i));
        }
    }
}

pub(crate) fn contains_ref(c: &Condition, id: i64) -> bool {
    let mut found = false;
    c.walk(&mut |c| found |= matches!(c, Condition::Segment { id: x, .. } if *x == id));
    found
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

#[test]
fn deliberately_broken_engine_is_caught() {
    // The property above must be able to fail: a naive evaluator that gets
    // "within_last" one millisecond wrong disagrees on an edge event.
    let people = vec![person(1, "a@x.io", true, &[], json!({}))];
    let events = vec![event(1, "a", 1, json!({}))];
    let query = parse(r#"{"event":{"type":"a","when":{"within_last":{"days":1}}}}"#).unwrap();
    let audience = build(&people, &events, &[&query]);
    let none: HashMap<i64, Arc<Query>> = HashMap::new();
    assert_eq!(
        members(&audience, &query, NOW, &none)
            .unwrap()
            .count_ones(..),
        1
    );
    let later = members(&audience, &query, NOW + 1, &none).unwrap();
    assert_eq!(
        later.count_ones(..),
        0,
        "one ms later the edge event is out"
    );
}
