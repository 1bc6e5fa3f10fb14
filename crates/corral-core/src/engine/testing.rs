//! What property tests of the engine and of what is built on it (the
//! server's live snapshots) draw from: the event types, tags and field keys
//! of random audiences, random values and times around [`NOW`], and random
//! conditions as the parser reads them from queries written at random
//! ([`cases`]). Built for the tests, and with the `testing` feature.

pub mod cases;

use crate::query::ast::*;
use crate::query::{Query, parse};
use proptest::prelude::*;
use serde_json::{Value, json};

/// 2026-06-15T12:00:00Z
pub const NOW: i64 = 1_781_524_800_000;

/// Event types, tags and field keys of the live tests' audiences.
pub const KINDS: &[&str] = &["a", "b", "$purchase"];
pub const TAGS: &[&str] = &["x", "Y", "z", "ünï"];
pub const KEYS: &[&str] = &["n", "s", "d"];

/// A value for the live tests' fields and details.
pub fn arb_value() -> impl Strategy<Value = Value> {
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

/// Times on an hour grid around NOW, for the live tests' events.
pub fn arb_time() -> impl Strategy<Value = i64> {
    (-100i64..4).prop_map(|h| NOW + h * 3_600_000)
}

/// A condition as the parser reads it from a query written at random (see
/// [`cases`]), with times around [`NOW`].
pub fn arb_condition() -> impl Strategy<Value = Condition> {
    (cases::arb_spec_at(NOW), any::<u64>()).prop_map(|(spec, seed)| {
        let text = cases::Writer::new(seed).query(&spec);
        match parse(&text) {
            Ok(Query::Condition(c)) => *c,
            other => panic!("{text}: {other:?}"),
        }
    })
}
