//! Random cases for the property tests: an audience, a query as a person
//! would write it, and the instant it is asked at.
//!
//! The generators aim at the edges. Clocks stand on month ends (31 January,
//! 29 February of a leap year, 31 March) as well as mid-month; times spread
//! over more than two years but come back again and again to the instants
//! where windows begin and end (a span before now, calendar months with and
//! without clamping, a millisecond either side), and the times of a case's
//! data most often to the edges of the windows its own queries draw (see
//! [`Hot`]); dates in values are also written nearly right (`2026-6-1`,
//! no offset, `24:00`), which no time operator may take; numbers mix magnitudes
//! (`1e15 + 0.5`, `-1e-9`, `0.1 + 0.2`); text is in mixed case on both
//! sides; subscriber ids have gaps and events name people the audience does
//! not hold. A query is generated as a tree of what was written (text in any
//! case, tag names with spaces, field keys in any spelling, instants as
//! milliseconds), then [`Writer`] writes it out as JSON text, choosing how
//! each instant and number is spelled, for the parser to read.

use super::super::naive::calendar::{self, Fraction, MS_PER_DAY};
use super::super::naive::{Happening, Person};
use crate::query::ast::*;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

const HOUR: i64 = 3_600_000;

/// The clocks cases are asked at: mid-month, and month ends whose months
/// back clamp (31 January, 29 February of a leap year, 31 March of a leap
/// and a common year), and the last millisecond of a year.
pub fn clocks() -> Vec<i64> {
    let at = |year, month, day, hour, minute, milli| {
        calendar::from_civil(calendar::Civil {
            year,
            month,
            day,
            hour,
            minute,
            second: if milli == 999 { 59 } else { 0 },
            milli,
        })
    };
    vec![
        super::NOW,
        at(2026, 1, 31, 23, 30, 0),
        at(2024, 2, 29, 0, 0, 0),
        at(2024, 3, 31, 6, 0, 0),
        at(2026, 3, 31, 12, 0, 250),
        at(2025, 12, 31, 23, 59, 999),
    ]
}

pub const SPANS: &[Span] = &[
    Span::Hours(1),
    Span::Hours(24),
    Span::Hours(25),
    Span::Hours(100_000),
    Span::Days(1),
    Span::Days(2),
    Span::Days(30),
    Span::Days(31),
    Span::Days(365),
    Span::Days(366),
    Span::Days(100_000),
    Span::Weeks(1),
    Span::Weeks(4),
    Span::Weeks(52),
    Span::Weeks(53),
    Span::Weeks(100_000),
    Span::Months(1),
    Span::Months(2),
    Span::Months(3),
    Span::Months(11),
    Span::Months(12),
    Span::Months(13),
    Span::Months(24),
    Span::Months(25),
    Span::Months(48),
    Span::Months(100_000),
];

/// The instants where windows at `now` begin and end, each with the
/// milliseconds either side: now itself, every span of [`SPANS`] before it
/// (months counted by hand), and for month spans the same time of day on the
/// 27th to the 31st of the month they land in, running into the next month
/// where the month is shorter (what a month count that forgot to clamp
/// would give); the midnights of now's day, month and year.
fn edges(now: i64) -> Vec<i64> {
    let c = calendar::civil(now);
    let mut out = vec![now];
    for &span in SPANS {
        out.extend(span_edges(now, span));
    }
    out.push(now - now.rem_euclid(MS_PER_DAY));
    out.push(calendar::days_from_civil(c.year, c.month, 1) * MS_PER_DAY);
    out.push(calendar::days_from_civil(c.year, 1, 1) * MS_PER_DAY);
    around(&out)
}

/// Each instant with the milliseconds either side, once each. An instant is
/// written with a four-digit year: the edges of the longest spans (100,000
/// months is more than 8,000 years) are only ever reached by spans, never
/// written, so they are left out.
fn around(instants: &[i64]) -> Vec<i64> {
    let year_one = calendar::days_from_civil(1, 1, 1) * MS_PER_DAY;
    let mut all: Vec<i64> = instants
        .iter()
        .filter(|&&t| t > year_one)
        .flat_map(|&t| [t - 1, t, t + 1])
        .collect();
    all.sort_unstable();
    all.dedup();
    all
}

/// A time for an event, a creation or an instant written in a query.
pub fn arb_time_at(now: i64) -> impl Strategy<Value = i64> + Clone {
    let midnight = now - now.rem_euclid(MS_PER_DAY);
    prop_oneof![
        4 => prop::sample::select(edges(now)),
        2 => (0..800 * MS_PER_DAY).prop_map(move |back| now - back),
        1 => (0i64..800).prop_map(move |days| midnight - days * MS_PER_DAY),
        1 => (0..2 * MS_PER_DAY).prop_map(move |ahead| now + ahead),
    ]
}

/// The instants where a condition's windows begin and end at `now`, by
/// what they are tested on: its `since` and `before`, now itself for
/// `within_last` (whose window ends just after it), and now minus each span
/// it names, with for month spans the days a month count that forgot to
/// clamp would land on.
pub fn edges_of(c: &Condition, now: i64, hot: &mut Hot) {
    let time = |t: &TimeTest, out: &mut Vec<i64>| {
        out.extend(t.since);
        out.extend(t.before);
        for span in t.within_last.iter().chain(&t.older_than) {
            out.push(now);
            out.extend(span_edges(now, *span));
        }
    };
    c.walk(&mut |c| match c {
        Condition::Created(t) => time(t, &mut hot.created),
        Condition::Field { test, .. } => time(&test.time, &mut hot.values),
        Condition::Event(e) => {
            time(&e.when, &mut hot.events);
            for (_, t) in &e.filters {
                time(&t.time, &mut hot.values);
            }
            for t in e.first.iter().chain(&e.last) {
                time(t, &mut hot.events);
            }
        }
        _ => {}
    });
}

/// Window edges of a case's queries: where creation times, event times and
/// dates in values come back to often, so that a window that takes one
/// millisecond too many or too few is caught.
#[derive(Debug, Clone, Default)]
pub struct Hot {
    pub created: Vec<i64>,
    pub events: Vec<i64>,
    pub values: Vec<i64>,
}

/// Now minus a span, months counted by hand; for months also the same time
/// of day on the 27th to the 31st of the month it lands in.
fn span_edges(now: i64, span: Span) -> Vec<i64> {
    match span {
        Span::Hours(n) => vec![now - i64::from(n) * HOUR],
        Span::Days(n) => vec![now - i64::from(n) * 24 * HOUR],
        Span::Weeks(n) => vec![now - i64::from(n) * 7 * 24 * HOUR],
        Span::Months(n) => {
            let c = calendar::civil(now);
            let index = c.year * 12 + i64::from(c.month) - 1 - i64::from(n);
            let (year, month) = (index.div_euclid(12), index.rem_euclid(12) as u32 + 1);
            let mut out: Vec<i64> = (27..=31)
                .map(|day| {
                    calendar::days_from_civil(year, month, day) * MS_PER_DAY
                        + now.rem_euclid(MS_PER_DAY)
                })
                .collect();
            out.push(calendar::months_before(now, n));
            out
        }
    }
}

/// When the data of a case happens: the clock, and the window edges its
/// queries draw.
#[derive(Debug, Clone)]
pub struct Times {
    pub now: i64,
    pub hot: Hot,
}

impl Times {
    /// Times around `now`, and the given edges (with a millisecond either
    /// side) more often than not.
    fn arb(&self, edges: &[i64]) -> BoxedStrategy<i64> {
        let hot = around(edges);
        if hot.is_empty() {
            arb_time_at(self.now).boxed()
        } else {
            prop_oneof![
                4 => prop::sample::select(hot),
                1 => arb_time_at(self.now),
            ]
            .boxed()
        }
    }
}

/// Numbers of every magnitude, and sums that floating point gets "wrong".
pub const NUMBERS: &[f64] = &[
    0.0,
    -0.0,
    0.5,
    -2.5,
    3.0,
    0.1,
    0.2,
    0.3,
    0.30000000000000004,
    1e15,
    1_000_000_000_000_000.5,
    -1e-9,
    1e-9,
    1e308,
];

const TEXTS: &[&str] = &[
    "a", "Ab", "AB", "ünï", "ÜNÏ", "", "10", "Pro", "usd", "USD", "x-1",
];

/// Text that is nearly, but not, an instant as the document writes them,
/// around an instant of the time pool: none of it passes a time operator.
fn arb_not_instant(times: &Times) -> impl Strategy<Value = String> + Clone + use<> {
    (times.arb(&times.hot.values), 0u8..9).prop_map(|(ms, how)| {
        let c = calendar::civil(ms);
        let date = format!("{:04}-{:02}-{:02}", c.year, c.month, c.day);
        let time = format!("{:02}:{:02}:{:02}", c.hour, c.minute, c.second);
        match how {
            // Not zero-padded; a date with a zone when nothing needs padding.
            0 if c.month < 10 || c.day < 10 => format!("{}-{}-{}", c.year, c.month, c.day),
            0 => format!("{date}Z"),
            1 => format!(" {date}"),
            2 => format!("+{date}"),
            3 => format!("{date}T{time}"),
            4 => format!("{date}T24:00:00Z"),
            5 => format!("{date}T{time}+0100"),
            6 => format!("{date}T{:02}:{:02}Z", c.hour, c.minute),
            7 => format!("{:04}-02-30", c.year),
            _ => format!("{:02}/{:02}/{:04}", c.day, c.month, c.year),
        }
    })
}

/// An instant written as a date or an RFC 3339 time, spelled at random.
fn arb_instant_text(times: BoxedStrategy<i64>) -> impl Strategy<Value = String> + Clone {
    (times, any::<u64>()).prop_map(|(ms, dice)| Writer::new(dice).instant_text(ms))
}

/// A field's or a detail's value.
pub fn arb_value_at(times: &Times) -> impl Strategy<Value = Value> + Clone + use<> {
    prop_oneof![
        2 => prop::sample::select(NUMBERS).prop_map(|n| json!(n)),
        1 => (-3i64..6).prop_map(|n| json!(n)),
        2 => prop::sample::select(TEXTS).prop_map(|s| json!(s)),
        2 => arb_instant_text(times.arb(&times.hot.values)).prop_map(Value::String),
        2 => arb_not_instant(times).prop_map(Value::String),
        1 => any::<bool>().prop_map(|b| json!(b)),
        1 => Just(Value::Null),
        1 => Just(json!({"k": 1})),
        1 => Just(json!([1, "a"])),
    ]
}

pub const EMAILS: &[&str] = &[
    "Ann@X.io",
    "bob@x.IO",
    "Cy@Y.com",
    "ÜNÏ@x.io",
    "d@Sub.X.io",
    "e@notx.io",
    "f.x.io@y.com",
    "g@b@X.io",
];

/// Text for email operators: whole addresses, domains, pieces, in any case.
const EMAIL_TEXT: &[&str] = &[
    "ann@x.io", "ANN@X.IO", "x.io", "X.IO", "sub.x.io", "y.com", "b@x.io", "notx.io", "@x", "ü",
    "ÜNÏ", "a", "io", ".io", "f.x", "",
];

/// Domains, most of them someone's.
const DOMAINS: &[&str] = &[
    "x.io", "X.IO", "sub.x.io", "Y.com", "notx.io", "io", "b@x.io",
];

/// Tags as people hold them, and tag names as queries write them.
const HELD_TAGS: &[&str] = &["x", "Y", " z ", "ünï", "VIP"];
const TAG_NAMES: &[&str] = &["x", "X", " y", "Z ", "ÜNÏ", "vip", "none"];

/// Field keys as stored (their normal form), and as queries spell them.
const STORED_KEYS: &[&str] = &["n", "s", "d", "first_name"];
const WRITTEN_KEYS: &[&str] = &[
    "n",
    "N",
    " s ",
    "D",
    "First Name",
    "first-name",
    "FIRST.NAME",
    "first_name",
    "nope",
];

/// Event types as stored (types are case-sensitive), and as queries write
/// them (surrounding spaces are ignored).
const STORED_KINDS: &[&str] = &["a", "b", "$purchase", "A"];
const WRITTEN_KINDS: &[&str] = &["a", " a", "b ", "$purchase", "A", "c"];

/// Paths into details: present, absent, through a number, in another case.
const PATHS: &[&str] = &[
    "value.amount",
    "value.currency",
    "url",
    "value",
    "a.b.c",
    "a.b",
    "Value.amount",
    "value.amount.x",
];

/// Uuids of people: most in Corral's form (32 lowercase hex digits), some
/// as another system writes them, which are hashed as written too.
pub const UUIDS: &[&str] = &[
    "0123456789abcdef0123456789abcdef",
    "00000000000000000000000000000000",
    "ffffffffffffffffffffffffffffffff",
    "9f86d081884c7d659a2feaa0c55ad015",
    "a3c1f2b4e5d60718293a4b5c6d7e8f90",
    "5e884898da28047151d0e56f8dc62927",
    "6b86b273ff34fce19d6b804eff5a3f57",
    "d4735e3a265e16eee03f59718b9b5d03",
    "4e07408562bedb8b60ce05c1decfe3ad",
    "4b227777d4dd1fc61c6f884f48641d02",
    "ef2d127de37b942baad06145e54b0c61",
    "e7f6c011776e8db7cd330b54174fd76f",
    "7902699be42c8a8e46fbbb4501726517",
    "2c624232cdd221771294dfbb310aca00",
    "0123456789ABCDEF0123456789ABCDEF",
    "123e4567-e89b-12d3-a456-426614174000",
    "ünï-7",
];

/// Salts of samples: case and spaces count, and a colon may be in one.
pub const SALTS: &[&str] = &["spring-test", "Spring-test", " s ", "a:b", "ünï"];

fn person(id: i64, times: &Times) -> impl Strategy<Value = Person> + use<> {
    (
        prop::sample::select(UUIDS),
        prop::sample::select(EMAILS),
        any::<bool>(),
        times.arb(&times.hot.created),
        prop::sample::subsequence(HELD_TAGS, 0..=HELD_TAGS.len()),
        prop::collection::btree_map(prop::sample::select(STORED_KEYS), arb_value_at(times), 0..3),
    )
        .prop_map(
            move |(uuid, email, subscribed, created_at, tags, fields)| Person {
                id,
                uuid: uuid.to_owned(),
                email: email.to_owned(),
                subscribed,
                created_at,
                tags: tags.into_iter().map(str::to_owned).collect(),
                fields: fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            },
        )
}

fn details(times: &Times) -> impl Strategy<Value = Value> + use<> {
    let value = arb_value_at(times);
    // Amounts are mostly numbers, so that sums add several up.
    let amount = prop_oneof![
        3 => prop::sample::select(NUMBERS).prop_map(|n| json!(n)),
        1 => value.clone(),
    ];
    (
        prop::option::weighted(0.7, amount),
        prop::option::of(value.clone()),
        prop::option::of(value.clone()),
        prop::option::of(value.clone()),
        prop::option::weighted(0.15, value),
    )
        .prop_map(|(amount, currency, url, deep, flat)| {
            let mut details = json!({});
            if amount.is_some() || currency.is_some() {
                let mut value = json!({});
                if let Some(a) = amount {
                    value["amount"] = a;
                }
                if let Some(c) = currency {
                    value["currency"] = c;
                }
                details["value"] = value;
            } else if let Some(flat) = flat {
                details["value"] = flat;
            }
            if let Some(u) = url {
                details["url"] = u;
            }
            if let Some(d) = deep {
                details["a"] = json!({ "b": { "c": d } });
            }
            details
        })
}

/// People (`size` of them, with ids from 1 to four times as many, so with
/// gaps), and events: up to six of each person's (so that first, last and
/// sums have several to choose from), and some of people the audience does
/// not hold (those count for nobody), stored in a random order.
pub fn arb_world(
    times: Times,
    size: std::ops::RangeInclusive<usize>,
) -> impl Strategy<Value = (Vec<Person>, Vec<Happening>)> {
    let last_id = 4 * (*size.end()).max(8) as i64;
    prop::collection::btree_set(1..=last_id, size).prop_flat_map(move |ids| {
        let people: Vec<_> = ids.iter().map(|&id| person(id, &times)).collect();
        let event = |subscriber: BoxedStrategy<i64>| {
            (
                subscriber,
                prop::sample::select(STORED_KINDS),
                times.arb(&times.hot.events),
                details(&times),
            )
                .prop_map(|(subscriber_id, kind, at, details)| Happening {
                    subscriber_id,
                    kind: kind.to_owned(),
                    at,
                    details,
                })
        };
        let own: Vec<_> = ids
            .iter()
            .map(|&id| prop::collection::vec(event(Just(id).boxed()), 0..=6))
            .collect();
        let strangers = prop::collection::vec(event((0..=last_id + 2).boxed()), 0..4);
        (people, own, strangers).prop_flat_map(|(people, own, strangers)| {
            let events: Vec<Happening> = own.into_iter().flatten().chain(strangers).collect();
            (Just(people), Just(events).prop_shuffle())
        })
    })
}

fn arb_span() -> impl Strategy<Value = Span> + Clone {
    prop::sample::select(SPANS)
}

/// Time operators; `some` asks for at least one. `since` and `before`
/// mostly make a window that is not empty (an empty one counts nothing,
/// which tells little), and so do `within_last` and `older_than`.
fn arb_time_test(now: i64, some: bool) -> impl Strategy<Value = TimeTest> + Clone {
    (
        prop::option::weighted(0.3, arb_time_at(now)),
        prop::option::weighted(0.3, arb_time_at(now)),
        prop::option::weighted(0.3, arb_span()),
        prop::option::weighted(0.2, arb_span()),
        prop::bool::weighted(0.2),
    )
        .prop_map(move |(since, before, within_last, older_than, empty)| {
            let mut t = TimeTest {
                since,
                before,
                within_last,
                older_than,
            };
            if let (Some(a), Some(b)) = (t.since, t.before)
                && (a > b) != empty
            {
                (t.since, t.before) = (Some(b), Some(a));
            }
            if let (Some(a), Some(b)) = (t.within_last, t.older_than)
                && (span_ms(a) < span_ms(b)) != empty
            {
                (t.within_last, t.older_than) = (Some(b), Some(a));
            }
            if some && t == TimeTest::default() {
                t.within_last = Some(Span::Months(1));
            }
            t
        })
}

/// About how long a span is, to order two of them.
fn span_ms(span: Span) -> i64 {
    match span {
        Span::Hours(n) => i64::from(n) * HOUR,
        Span::Days(n) => i64::from(n) * 24 * HOUR,
        Span::Weeks(n) => i64::from(n) * 7 * 24 * HOUR,
        Span::Months(n) => i64::from(n) * 30 * 24 * HOUR,
    }
}

/// Number operators (at least one), with operands from `pool`.
fn arb_number_test(pool: &'static [f64], every: bool) -> impl Strategy<Value = NumberTest> + Clone {
    let n = prop::sample::select(pool);
    // Value tests take only the comparisons: their `equals` is a scalar's.
    let equality = |p| {
        if every {
            prop::option::weighted(p, n.clone()).boxed()
        } else {
            Just(None).boxed()
        }
    };
    (
        equality(0.3),
        equality(0.15),
        prop::option::weighted(0.3, n.clone()),
        prop::option::weighted(0.3, n.clone()),
        prop::option::weighted(0.3, n.clone()),
        prop::option::weighted(0.3, n),
    )
        .prop_map(
            |(equals, not_equals, more_than, at_least, less_than, at_most)| {
                let mut t = NumberTest {
                    equals,
                    not_equals,
                    more_than,
                    at_least,
                    less_than,
                    at_most,
                };
                if t.is_empty() {
                    t.at_least = Some(0.0);
                }
                t
            },
        )
}

const COUNTS: &[f64] = &[-1.0, 0.0, 0.5, 1.0, 2.0, 3.0];
const SUMS: &[f64] = &[
    0.0,
    1.0,
    2.5,
    0.3,
    0.30000000000000004,
    1e15,
    1_000_000_000_000_000.5,
    1_000_000_000_000_000.4,
    -1e-9,
    1e308,
];
const OPERANDS: &[f64] = &[
    -3.0,
    0.0,
    0.5,
    1.0,
    3.0,
    0.3,
    0.30000000000000004,
    1e15,
    1_000_000_000_000_000.5,
    -1e-9,
    1e-9,
];

/// An operand of `equals`, `not_equals` and `in`, as written.
fn arb_scalar(now: i64) -> impl Strategy<Value = Scalar> + Clone {
    prop_oneof![
        2 => prop::sample::select(NUMBERS).prop_map(Scalar::Number),
        1 => (-3i64..6).prop_map(|n| Scalar::Number(n as f64)),
        2 => prop::sample::select(TEXTS).prop_map(|s| Scalar::Text(s.to_owned())),
        1 => arb_instant_text(arb_time_at(now).boxed()).prop_map(Scalar::Text),
        1 => any::<bool>().prop_map(Scalar::Bool),
    ]
}

/// Value operators the parser accepts: `exists: false` alone, or any of
/// `exists: true`, `equals`, `not_equals`, `in` with the operators of at
/// most one type (text, number or time).
fn arb_value_test(now: i64) -> impl Strategy<Value = ValueTest> + Clone {
    let piece = prop::sample::select(vec!["A", "ü", "1", "-", "2026", "T12", "Z", "usd", ""])
        .prop_map(str::to_owned);
    let text = (
        prop::option::of(piece.clone()),
        prop::option::of(piece.clone()),
        prop::option::of(piece),
    )
        .prop_map(|(contains, starts_with, ends_with)| {
            let mut t = TextTest {
                contains,
                starts_with,
                ends_with,
                ..TextTest::default()
            };
            if t == TextTest::default() {
                t.contains = Some("a".to_owned());
            }
            t
        });
    let typed = prop_oneof![
        2 => Just((TextTest::default(), NumberTest::default(), TimeTest::default())),
        1 => text.prop_map(|t| (t, NumberTest::default(), TimeTest::default())),
        1 => arb_number_test(OPERANDS, false)
            .prop_map(|n| (TextTest::default(), n, TimeTest::default())),
        2 => arb_time_test(now, true)
            .prop_map(|t| (TextTest::default(), NumberTest::default(), t)),
    ];
    let scalar = arb_scalar(now);
    let some = (
        prop::option::weighted(0.2, Just(true)),
        prop::option::weighted(0.3, scalar.clone()),
        prop::option::weighted(0.2, scalar.clone()),
        prop::option::weighted(0.2, prop::collection::vec(scalar, 0..3)),
        typed,
    )
        .prop_map(
            |(exists, equals, not_equals, one_of, (text, number, time))| {
                let mut t = ValueTest {
                    exists,
                    equals,
                    not_equals,
                    one_of,
                    text,
                    number,
                    time,
                };
                if t == ValueTest::default() {
                    t.exists = Some(true);
                }
                t
            },
        );
    prop_oneof![
        1 => Just(ValueTest {
            exists: Some(false),
            ..ValueTest::default()
        }),
        6 => some,
    ]
}

/// Text operators (at least one); `domain` half the time, so that it meets
/// the other operators as often as it stands alone.
fn arb_text_test() -> impl Strategy<Value = TextTest> {
    let t = prop::sample::select(EMAIL_TEXT).prop_map(str::to_owned);
    (
        prop::option::weighted(0.2, t.clone()),
        prop::option::weighted(0.2, t.clone()),
        prop::option::weighted(0.2, t.clone()),
        prop::option::weighted(0.2, t.clone()),
        prop::option::weighted(0.2, t.clone()),
        prop::option::weighted(0.5, prop::sample::select(DOMAINS).prop_map(str::to_owned)),
        prop::option::weighted(0.2, prop::collection::vec(t, 0..3)),
    )
        .prop_map(
            |(equals, not_equals, contains, starts_with, ends_with, domain, one_of)| {
                let mut t = TextTest {
                    equals,
                    not_equals,
                    contains,
                    starts_with,
                    ends_with,
                    domain,
                    one_of,
                };
                if t == TextTest::default() {
                    t.domain = Some("X.io".to_owned());
                }
                t
            },
        )
}

fn arb_path() -> impl Strategy<Value = DetailPath> + Clone {
    prop::sample::select(PATHS).prop_map(|p| DetailPath(p.split('.').map(str::to_owned).collect()))
}

fn arb_event_test(now: i64) -> impl Strategy<Value = EventTest> {
    (
        prop::option::weighted(0.6, prop::sample::select(WRITTEN_KINDS)),
        prop_oneof![
            Just(TimeTest::default()),
            arb_time_test(now, false),
        ],
        prop_oneof![
            2 => Just(std::collections::BTreeMap::new()),
            1 => prop::collection::btree_map(prop::sample::select(PATHS), arb_value_test(now), 1..3),
        ],
        prop::option::weighted(0.4, arb_number_test(COUNTS, true)),
        prop::option::weighted(
            0.35,
            (
                prop_oneof![
                    2 => Just(DetailPath(vec!["value".into(), "amount".into()])),
                    1 => arb_path(),
                ],
                arb_number_test(SUMS, true),
            ),
        ),
        prop::option::weighted(0.35, arb_time_test(now, true)),
        prop::option::weighted(0.35, arb_time_test(now, true)),
    )
        .prop_map(|(kind, when, filters, count, sum, first, last)| EventTest {
            kind: kind.map(str::to_owned),
            when,
            filters: filters
                .into_iter()
                .map(|(p, t)| (DetailPath(p.split('.').map(str::to_owned).collect()), t))
                .collect(),
            count,
            sum,
            first,
            last,
        })
}

fn arb_tag_test() -> impl Strategy<Value = TagTest> {
    let name = prop::sample::select(TAG_NAMES).prop_map(str::to_owned);
    let names = prop::collection::vec(name.clone(), 1..3);
    (
        prop::option::weighted(0.4, name.clone()),
        prop::option::weighted(0.3, name),
        prop::option::weighted(0.3, names.clone()),
        prop::option::weighted(0.3, names.clone()),
        prop::option::weighted(0.3, names),
    )
        .prop_map(|(has, has_not, any_of, all_of, none_of)| {
            let mut t = TagTest {
                has,
                has_not,
                any_of,
                all_of,
                none_of,
            };
            if t == TagTest::default() {
                t.has = Some("X".to_owned());
            }
            t
        })
}

/// A sample whose bounds are most often the buckets of [`UUIDS`] for its
/// salt, or a hundredth either side: a range that takes a bucket too many
/// or too few at either end is caught.
fn arb_sample_test() -> impl Strategy<Value = SampleTest> {
    prop::sample::select(SALTS).prop_flat_map(|salt| {
        let mut edges: Vec<u16> = vec![0, 1, 1000, 5000, 9999, 10_000];
        for uuid in UUIDS {
            let b = super::super::naive::sample_bucket(salt, uuid);
            edges.extend([b.saturating_sub(1), b, b + 1]);
        }
        edges.sort_unstable();
        edges.dedup();
        let bound = prop_oneof![
            4 => prop::sample::select(edges),
            1 => 0u16..=10_000,
        ];
        (bound.clone(), bound).prop_map(move |(a, b)| {
            let (from, to) = match a.cmp(&b) {
                std::cmp::Ordering::Less => (a, b),
                std::cmp::Ordering::Greater => (b, a),
                std::cmp::Ordering::Equal if a < 10_000 => (a, a + 1),
                std::cmp::Ordering::Equal => (a - 1, a),
            };
            SampleTest {
                salt: salt.to_owned(),
                from,
                to,
            }
        })
    })
}

/// One condition that is not a combination, as written.
pub fn arb_leaf_at(now: i64) -> impl Strategy<Value = Condition> {
    prop_oneof![
        3 => arb_text_test().prop_map(Condition::Email),
        1 => any::<bool>().prop_map(Condition::Subscribed),
        2 => arb_time_test(now, true).prop_map(Condition::Created),
        2 => arb_tag_test().prop_map(Condition::Tag),
        3 => (prop::sample::select(WRITTEN_KEYS), arb_value_test(now)).prop_map(|(k, test)| {
            Condition::Field {
                key: k.to_owned(),
                test,
            }
        }),
        5 => arb_event_test(now).prop_map(Condition::Event),
        1 => (prop::sample::select(vec![100i64, 101]), any::<bool>())
            .prop_map(|(id, member)| Condition::Segment { id, member }),
        2 => arb_sample_test().prop_map(Condition::Sample),
    ]
}

/// A condition as written, combinations included.
pub fn arb_spec_at(now: i64) -> impl Strategy<Value = Condition> {
    arb_leaf_at(now).prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Condition::All),
            prop::collection::vec(inner.clone(), 0..4).prop_map(Condition::Any),
            inner.clone().prop_map(|c| Condition::Not(Box::new(c))),
            prop::collection::vec(prop::collection::vec(inner, 0..3), 0..3)
                .prop_map(Condition::Groups),
        ]
    })
}

/// Writes a query out as JSON text, choosing at random (from its seed) how
/// to spell what has more than one spelling: an instant as a date or a time
/// at some offset, with or without a fraction, `T`/`Z` in either case;
/// `since` and `before` as a `between`; a whole number with or without a
/// decimal point; a segment id as text or a number.
pub struct Writer(u64);

const OFFSETS: &[i32] = &[0, 0, 60, -60, -330, 345, 825, -720, 1439, -1439];

impl Writer {
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    /// A number from 0 to n - 1.
    fn roll(&mut self, n: u64) -> u64 {
        // xorshift64
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }

    pub fn query(&mut self, c: &Condition) -> String {
        self.condition(c).to_string()
    }

    pub fn instant_text(&mut self, ms: i64) -> String {
        let fraction = [
            Fraction::None,
            Fraction::Short,
            Fraction::Millis,
            Fraction::Micros,
        ][self.roll(4) as usize];
        calendar::write(
            ms,
            self.roll(2) == 0,
            OFFSETS[self.roll(OFFSETS.len() as u64) as usize],
            self.roll(3) == 0,
            fraction,
            self.roll(4) == 0,
        )
    }

    fn number(&mut self, x: f64) -> Value {
        if x.fract() == 0.0 && x.abs() < 1e15 && self.roll(2) == 0 {
            json!(x as i64)
        } else {
            json!(x)
        }
    }

    fn scalar(&mut self, s: &Scalar) -> Value {
        match s {
            Scalar::Text(t) => json!(t),
            Scalar::Number(n) => self.number(*n),
            Scalar::Bool(b) => json!(b),
        }
    }

    fn span(&mut self, span: Span) -> Value {
        match span {
            Span::Hours(n) => json!({ "hours": n }),
            Span::Days(n) => json!({ "days": n }),
            Span::Weeks(n) => json!({ "weeks": n }),
            Span::Months(n) => json!({ "months": n }),
        }
    }

    fn time_ops(&mut self, t: &TimeTest, out: &mut Map<String, Value>) {
        match (t.since, t.before) {
            (Some(since), Some(before)) if since <= before && self.roll(2) == 0 => {
                let pair = json!([self.instant_text(since), self.instant_text(before)]);
                out.insert("between".into(), pair);
            }
            (since, before) => {
                if let Some(t) = since {
                    out.insert("since".into(), json!(self.instant_text(t)));
                }
                if let Some(t) = before {
                    out.insert("before".into(), json!(self.instant_text(t)));
                }
            }
        }
        if let Some(span) = t.within_last {
            out.insert("within_last".into(), self.span(span));
        }
        if let Some(span) = t.older_than {
            out.insert("older_than".into(), self.span(span));
        }
    }

    fn time_test(&mut self, t: &TimeTest) -> Value {
        let mut out = Map::new();
        self.time_ops(t, &mut out);
        Value::Object(out)
    }

    fn number_ops(&mut self, t: &NumberTest, out: &mut Map<String, Value>) {
        for (op, operand) in [
            ("equals", t.equals),
            ("not_equals", t.not_equals),
            ("more_than", t.more_than),
            ("at_least", t.at_least),
            ("less_than", t.less_than),
            ("at_most", t.at_most),
        ] {
            if let Some(x) = operand {
                let x = self.number(x);
                out.insert(op.into(), x);
            }
        }
    }

    fn text_ops(&mut self, t: &TextTest, out: &mut Map<String, Value>) {
        for (op, operand) in [
            ("equals", &t.equals),
            ("not_equals", &t.not_equals),
            ("contains", &t.contains),
            ("starts_with", &t.starts_with),
            ("ends_with", &t.ends_with),
            ("domain", &t.domain),
        ] {
            if let Some(s) = operand {
                out.insert(op.into(), json!(s));
            }
        }
        if let Some(list) = &t.one_of {
            out.insert("in".into(), json!(list));
        }
    }

    fn value_ops(&mut self, t: &ValueTest, out: &mut Map<String, Value>) {
        if let Some(b) = t.exists {
            out.insert("exists".into(), json!(b));
        }
        if let Some(s) = &t.equals {
            let s = self.scalar(s);
            out.insert("equals".into(), s);
        }
        if let Some(s) = &t.not_equals {
            let s = self.scalar(s);
            out.insert("not_equals".into(), s);
        }
        if let Some(list) = &t.one_of {
            let list: Vec<Value> = list.iter().map(|s| self.scalar(s)).collect();
            out.insert("in".into(), Value::Array(list));
        }
        self.text_ops(&t.text, out);
        self.number_ops(&t.number, out);
        self.time_ops(&t.time, out);
    }

    /// A bound of a sample: hundredths as a number of points, a whole one
    /// with or without a decimal point.
    fn bucket_bound(&mut self, hundredths: u16) -> Value {
        if hundredths.is_multiple_of(100) && self.roll(2) == 0 {
            json!(hundredths / 100)
        } else {
            json!(f64::from(hundredths) / 100.0)
        }
    }

    fn conditions(&mut self, cs: &[Condition]) -> Value {
        Value::Array(cs.iter().map(|c| self.condition(c)).collect())
    }

    fn condition(&mut self, c: &Condition) -> Value {
        match c {
            Condition::All(cs) => json!({ "all": self.conditions(cs) }),
            Condition::Any(cs) => json!({ "any": self.conditions(cs) }),
            Condition::Not(c) => json!({ "not": self.condition(c) }),
            Condition::Groups(groups) => {
                let groups: Vec<Value> = groups
                    .iter()
                    .map(|filters| json!({ "filters": self.conditions(filters) }))
                    .collect();
                json!({ "groups": groups })
            }
            Condition::Email(t) => {
                let mut ops = Map::new();
                self.text_ops(t, &mut ops);
                json!({ "email": ops })
            }
            Condition::Subscribed(b) => json!({ "subscribed": b }),
            Condition::Created(t) => json!({ "created": self.time_test(t) }),
            Condition::Tag(t) => {
                let mut ops = Map::new();
                if let Some(n) = &t.has {
                    ops.insert("has".into(), json!(n));
                }
                if let Some(n) = &t.has_not {
                    ops.insert("has_not".into(), json!(n));
                }
                for (op, list) in [
                    ("any_of", &t.any_of),
                    ("all_of", &t.all_of),
                    ("none_of", &t.none_of),
                ] {
                    if let Some(list) = list {
                        ops.insert(op.into(), json!(list));
                    }
                }
                json!({ "tag": ops })
            }
            Condition::Field { key, test } => {
                let mut ops = Map::new();
                ops.insert("key".into(), json!(key));
                self.value_ops(test, &mut ops);
                json!({ "field": ops })
            }
            Condition::Event(t) => {
                let mut ops = Map::new();
                if let Some(kind) = &t.kind {
                    ops.insert("type".into(), json!(kind));
                }
                if t.when != TimeTest::default() {
                    ops.insert("when".into(), self.time_test(&t.when));
                }
                if !t.filters.is_empty() {
                    let mut paths = Map::new();
                    for (path, test) in &t.filters {
                        let mut tests = Map::new();
                        self.value_ops(test, &mut tests);
                        paths.insert(path.dotted(), Value::Object(tests));
                    }
                    ops.insert("where".into(), Value::Object(paths));
                }
                if let Some(count) = &t.count {
                    let mut tests = Map::new();
                    self.number_ops(count, &mut tests);
                    ops.insert("count".into(), Value::Object(tests));
                }
                if let Some((path, test)) = &t.sum {
                    let mut tests = Map::new();
                    tests.insert("of".into(), json!(path.dotted()));
                    self.number_ops(test, &mut tests);
                    ops.insert("sum".into(), Value::Object(tests));
                }
                if let Some(first) = &t.first {
                    ops.insert("first".into(), self.time_test(first));
                }
                if let Some(last) = &t.last {
                    ops.insert("last".into(), self.time_test(last));
                }
                json!({ "event": ops })
            }
            Condition::Segment { id, member } => {
                let op = if *member {
                    "member_of"
                } else {
                    "not_member_of"
                };
                let id = if self.roll(2) == 0 {
                    json!(id.to_string())
                } else {
                    json!(id)
                };
                json!({ "segment": { op: id } })
            }
            Condition::Sample(t) => json!({ "sample": {
                "salt": t.salt,
                "from": self.bucket_bound(t.from),
                "to": self.bucket_bound(t.to),
            }}),
        }
    }
}
