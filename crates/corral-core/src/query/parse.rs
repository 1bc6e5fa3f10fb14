//! Validation: JSON text in, a [`Query`] or every problem out.
//!
//! Each problem names the spot it concerns with a JSON pointer into the query
//! (`/groups/0/filters/1/event/count`) and says what would be accepted there,
//! so a person can fix the query without the manual. The parser never stops
//! at the first problem, and it bounds the work a query can ask for (nesting,
//! number of conditions, list lengths) before anything is evaluated.

use super::ast::{
    Condition, DetailPath, EventTest, NumberTest, Query, SampleTest, Scalar, Span, TagTest,
    TextTest, TimeTest, ValueTest,
};
use super::sample::{BUCKETS, MAX_SALT_CHARS};
use crate::audience::{FieldKey, TagName};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// Deepest nesting of conditions inside one another.
pub const MAX_DEPTH: usize = 32;
/// Most conditions in one query.
pub const MAX_CONDITIONS: usize = 500;
/// Longest list (of conditions, tags or values).
pub const MAX_LIST: usize = 1_000;
/// Distinct event tests in one query: each is a pass over events.
pub const MAX_EVENT_TESTS: usize = 64;

/// The kinds of condition, in the order the grammar document lists them.
pub const CONDITIONS: &[&str] = VOCABULARY.conditions;

/// What the parser accepts, for each kind of condition: the names a client
/// can write there. The parser takes its lists from [`VOCABULARY`] and refuses
/// every other key (an unknown operator is a problem at its pointer), so a
/// name added to or removed from the vocabulary is accepted or refused from
/// then on. `tests/console/vocabulary.json` is this value as JSON, and the
/// console's builder is tested against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Vocabulary {
    /// The kinds of condition, in the order the grammar document lists them.
    pub conditions: &'static [&'static str],
    /// `email`'s text operators.
    pub email: &'static [&'static str],
    /// `subscribed`'s values: subscribed or unsubscribed.
    pub subscribed: &'static [bool],
    /// `created`'s time operators.
    pub created: &'static [&'static str],
    /// `tag`'s operators.
    pub tag: &'static [&'static str],
    /// `field`'s value operators, beside its `key`.
    pub field: &'static [&'static str],
    /// An event test's keys and their operators.
    pub event: EventVocabulary,
    /// `segment`'s operators (exactly one of them).
    pub segment: &'static [&'static str],
    /// `sample`'s keys, every one required.
    pub sample: &'static [&'static str],
    /// The units of a span (the operand of `within_last` and `older_than`):
    /// exactly one, such as `{"days": 30}`.
    pub span_units: &'static [&'static str],
}

/// An event test's part of the [`Vocabulary`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct EventVocabulary {
    /// The keys of an event test.
    pub keys: &'static [&'static str],
    /// `when`'s time operators.
    pub when: &'static [&'static str],
    /// The value operators of each detail path in `where`.
    #[serde(rename = "where")]
    pub where_: &'static [&'static str],
    /// `count`'s number operators.
    pub count: &'static [&'static str],
    /// `sum`'s number operators, beside its `of`.
    pub sum: &'static [&'static str],
    /// `first`'s time operators.
    pub first: &'static [&'static str],
    /// `last`'s time operators.
    pub last: &'static [&'static str],
}

/// Everything the parser accepts; see [`Vocabulary`].
pub const VOCABULARY: Vocabulary = Vocabulary {
    conditions: &[
        "all",
        "any",
        "not",
        "groups",
        "email",
        "subscribed",
        "created",
        "tag",
        "field",
        "event",
        "segment",
        "sample",
    ],
    email: TEXT_OPS,
    subscribed: &[true, false],
    created: TIME_OPS,
    tag: &["has", "has_not", "any_of", "all_of", "none_of"],
    field: VALUE_OPS,
    event: EventVocabulary {
        keys: &["type", "when", "where", "count", "sum", "first", "last"],
        when: TIME_OPS,
        where_: VALUE_OPS,
        count: NUMBER_OPS,
        sum: NUMBER_OPS,
        first: TIME_OPS,
        last: TIME_OPS,
    },
    segment: &["member_of", "not_member_of"],
    sample: &["salt", "from", "to"],
    span_units: &["hours", "days", "weeks", "months"],
};

// The lists that several places of the vocabulary share.
const TEXT_OPS: &[&str] = &[
    "equals",
    "not_equals",
    "in",
    "contains",
    "starts_with",
    "ends_with",
    "domain",
];
const NUMBER_OPS: &[&str] = &[
    "equals",
    "not_equals",
    "more_than",
    "at_least",
    "less_than",
    "at_most",
];
const TIME_OPS: &[&str] = &["since", "before", "between", "within_last", "older_than"];
const VALUE_OPS: &[&str] = &[
    "exists",
    "equals",
    "not_equals",
    "in",
    "contains",
    "starts_with",
    "ends_with",
    "more_than",
    "at_least",
    "less_than",
    "at_most",
    "since",
    "before",
    "between",
    "within_last",
    "older_than",
];
const MAX_SPAN: u64 = 100_000;

/// One thing wrong with a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// JSON pointer into the query; empty for the query as a whole.
    pub pointer: String,
    pub message: String,
}

/// Parses and validates a query's JSON text (already known to be a JSON
/// object, as [`super::RawQuery`] guarantees).
pub fn parse(text: &str) -> Result<Query, Vec<Problem>> {
    // The foreign form is recognised without building a tree, so a foreign
    // query may nest as deep as the size limit allows.
    if let Ok(top) = serde_json::from_str::<HashMap<String, &serde_json::value::RawValue>>(text)
        && top.len() == 1
        && top.contains_key("foreign")
    {
        return Ok(Query::Foreign);
    }
    let value: Value = match serde_json::from_str(text) {
        Ok(value) => value,
        Err(e) if e.to_string().contains("recursion limit") => {
            return Err(vec![Problem {
                pointer: String::new(),
                message: format!(
                    "nests too deeply (conditions nest at most {MAX_DEPTH} levels); \
                     to keep a query Corral does not evaluate, save it as {{\"foreign\": …}}"
                ),
            }]);
        }
        Err(e) => {
            return Err(vec![Problem {
                pointer: String::new(),
                message: format!("is not valid JSON: {e}"),
            }]);
        }
    };
    let mut parser = Parser::default();
    let condition = match &value {
        Value::Object(map) if map.is_empty() => Some(Condition::All(Vec::new())),
        Value::Object(map) if map.contains_key("foreign") => {
            parser.problem(
                "/foreign",
                "must be the only key: {\"foreign\": …} keeps a query verbatim and is never evaluated",
            );
            None
        }
        _ => parser.condition(&value, "", 0),
    };
    if let Some(c) = &condition {
        let mut tests = std::collections::HashSet::new();
        c.walk(&mut |c| {
            if let Condition::Event(test) = c {
                tests.insert(format!("{test:?}"));
            }
        });
        if tests.len() > MAX_EVENT_TESTS {
            parser.problem(
                "",
                format!(
                    "has {} different event tests; a query holds at most {MAX_EVENT_TESTS} \
                     (each is a pass over events; the same test written twice counts once)",
                    tests.len()
                ),
            );
        }
    }
    match condition {
        Some(c) if parser.problems.is_empty() => Ok(Query::Condition(Box::new(c))),
        _ => Err(parser.problems),
    }
}

#[derive(Default)]
struct Parser {
    problems: Vec<Problem>,
    conditions: usize,
}

/// Appends one reference token to a JSON pointer.
fn at(pointer: &str, token: &str) -> String {
    format!("{pointer}/{}", token.replace('~', "~0").replace('/', "~1"))
}

fn list(names: &[&str]) -> String {
    names.join(", ")
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "true/false",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

impl Parser {
    fn problem(&mut self, pointer: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            pointer: pointer.to_owned(),
            message: message.into(),
        });
    }

    fn condition(&mut self, value: &Value, ptr: &str, depth: usize) -> Option<Condition> {
        if depth >= MAX_DEPTH {
            self.problem(
                ptr,
                format!("nests too deeply (conditions nest at most {MAX_DEPTH} levels)"),
            );
            return None;
        }
        self.conditions += 1;
        if self.conditions == MAX_CONDITIONS + 1 {
            self.problem(
                ptr,
                format!("is one condition too many (a query holds at most {MAX_CONDITIONS})"),
            );
        }
        let Value::Object(map) = value else {
            self.problem(
                ptr,
                format!(
                    "must be a condition: an object with one key, one of {}; found {}",
                    list(CONDITIONS),
                    kind(value)
                ),
            );
            return None;
        };
        let mut keys = map.keys();
        let (Some(name), None) = (keys.next(), keys.next()) else {
            let found: Vec<String> = map.keys().map(|k| format!("{k:?}")).collect();
            self.problem(
                ptr,
                if map.is_empty() {
                    format!(
                        "is an empty condition; a condition has one key, one of {}",
                        list(CONDITIONS)
                    )
                } else {
                    format!(
                        "has {} keys ({}); a condition has exactly one, so combine several with \"all\" or \"any\"",
                        map.len(),
                        found.join(", ")
                    )
                },
            );
            return None;
        };
        let inner = &map[name];
        let ptr = at(ptr, name);
        let ptr = ptr.as_str();
        match name.as_str() {
            "all" => self.conditions_list(inner, ptr, depth).map(Condition::All),
            "any" => self.conditions_list(inner, ptr, depth).map(Condition::Any),
            "not" => self
                .condition(inner, ptr, depth + 1)
                .map(|c| Condition::Not(Box::new(c))),
            "groups" => self.groups(inner, ptr, depth),
            "email" => {
                let test = self.text_test(inner, ptr, VOCABULARY.email);
                test.map(Condition::Email)
            }
            "subscribed" => match inner {
                Value::Bool(b) if VOCABULARY.subscribed.contains(b) => {
                    Some(Condition::Subscribed(*b))
                }
                other => {
                    self.problem(
                        ptr,
                        format!(
                            "must be true (subscribed) or false (unsubscribed); found {}",
                            kind(other)
                        ),
                    );
                    None
                }
            },
            "created" => self
                .time_test(inner, ptr, VOCABULARY.created)
                .map(Condition::Created),
            "tag" => self.tag_test(inner, ptr).map(Condition::Tag),
            "field" => self.field(inner, ptr),
            "event" => self.event(inner, ptr).map(Condition::Event),
            "segment" => self.segment(inner, ptr),
            "sample" => self.sample(inner, ptr).map(Condition::Sample),
            other => {
                let hint = if other == "foreign" {
                    " (\"foreign\" is only allowed as the whole query)".to_owned()
                } else {
                    String::new()
                };
                self.problem(
                    ptr,
                    format!(
                        "unknown condition {other:?}{hint}; the conditions are {}. \
                         To keep a query Corral does not evaluate, save it as {{\"foreign\": …}}",
                        list(CONDITIONS)
                    ),
                );
                None
            }
        }
    }

    fn array<'v>(&mut self, value: &'v Value, ptr: &str, what: &str) -> Option<&'v Vec<Value>> {
        match value {
            Value::Array(items) if items.len() > MAX_LIST => {
                self.problem(
                    ptr,
                    format!("has {} items; the most allowed is {MAX_LIST}", items.len()),
                );
                None
            }
            Value::Array(items) => Some(items),
            other => {
                self.problem(
                    ptr,
                    format!("must be a list of {what}; found {}", kind(other)),
                );
                None
            }
        }
    }

    /// Parses every item of a list (each at its index in the pointer),
    /// reporting every item's problems, not only the first's.
    fn each<T>(
        &mut self,
        items: &[Value],
        ptr: &str,
        mut item: impl FnMut(&mut Self, &Value, &str) -> Option<T>,
    ) -> Option<Vec<T>> {
        let parsed: Vec<Option<T>> = items
            .iter()
            .enumerate()
            .map(|(i, v)| item(self, v, &at(ptr, &i.to_string())))
            .collect();
        parsed.into_iter().collect()
    }

    fn conditions_list(
        &mut self,
        value: &Value,
        ptr: &str,
        depth: usize,
    ) -> Option<Vec<Condition>> {
        let items = self.array(value, ptr, "conditions")?;
        self.each(items, ptr, |p, item, at| p.condition(item, at, depth + 1))
    }

    fn groups(&mut self, value: &Value, ptr: &str, depth: usize) -> Option<Condition> {
        let items = self.array(value, ptr, "groups ({\"filters\": [conditions]})")?;
        let mut groups = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let gptr = at(ptr, &i.to_string());
            let Some(map) = self.operators(item, &gptr, &["filters"], "a group") else {
                ok = false;
                continue;
            };
            let Some(filters) = map.get("filters") else {
                self.problem(
                    &gptr,
                    "needs \"filters\": a list of conditions, all of which must hold",
                );
                ok = false;
                continue;
            };
            match self.conditions_list(filters, &at(&gptr, "filters"), depth) {
                Some(filters) => groups.push(filters),
                None => ok = false,
            }
        }
        ok.then_some(Condition::Groups(groups))
    }

    /// An object whose keys must all be among `allowed`; reports the others.
    fn operators<'v>(
        &mut self,
        value: &'v Value,
        ptr: &str,
        allowed: &[&str],
        what: &str,
    ) -> Option<&'v Map<String, Value>> {
        let Value::Object(map) = value else {
            self.problem(
                ptr,
                format!(
                    "must be {what}: an object with keys among {}; found {}",
                    list(allowed),
                    kind(value)
                ),
            );
            return None;
        };
        let mut ok = true;
        for key in map.keys() {
            if !allowed.contains(&key.as_str()) {
                self.problem(
                    &at(ptr, key),
                    format!(
                        "unknown operator {key:?}; the operators here are {}",
                        list(allowed)
                    ),
                );
                ok = false;
            }
        }
        ok.then_some(map)
    }

    /// Like [`Parser::operators`], and at least one of them.
    fn some_operators<'v>(
        &mut self,
        value: &'v Value,
        ptr: &str,
        allowed: &[&str],
        what: &str,
    ) -> Option<&'v Map<String, Value>> {
        let map = self.operators(value, ptr, allowed, what)?;
        if map.is_empty() {
            self.problem(ptr, format!("needs an operator: {}", list(allowed)));
            return None;
        }
        Some(map)
    }

    fn text(&mut self, value: &Value, ptr: &str) -> Option<String> {
        match value {
            Value::String(s) => Some(s.to_lowercase()),
            other => {
                self.problem(ptr, format!("must be text; found {}", kind(other)));
                None
            }
        }
    }

    fn texts(&mut self, value: &Value, ptr: &str) -> Option<Vec<String>> {
        let items = self.array(value, ptr, "text")?;
        self.each(items, ptr, Self::text)
    }

    fn text_test(&mut self, value: &Value, ptr: &str, allowed: &[&str]) -> Option<TextTest> {
        let map = self.some_operators(value, ptr, allowed, "text operators")?;
        let mut test = TextTest::default();
        let mut ok = true;
        for (op, v) in map {
            let p = at(ptr, op);
            let slot = match op.as_str() {
                "equals" => &mut test.equals,
                "not_equals" => &mut test.not_equals,
                "contains" => &mut test.contains,
                "starts_with" => &mut test.starts_with,
                "ends_with" => &mut test.ends_with,
                "domain" => &mut test.domain,
                "in" => {
                    ok &= put(&mut test.one_of, self.texts(v, &p));
                    continue;
                }
                _ => continue,
            };
            ok &= put(slot, self.text(v, &p));
        }
        ok.then_some(test)
    }

    fn number(&mut self, value: &Value, ptr: &str) -> Option<f64> {
        match value.as_f64() {
            Some(n) if n.is_finite() => Some(n),
            _ => {
                self.problem(ptr, format!("must be a number; found {}", kind(value)));
                None
            }
        }
    }

    /// Number operators taken from `map`, ignoring its other keys.
    fn number_ops(&mut self, map: &Map<String, Value>, ptr: &str) -> Option<NumberTest> {
        let mut test = NumberTest::default();
        let mut ok = true;
        for (op, v) in map {
            let slot = match op.as_str() {
                "equals" => &mut test.equals,
                "not_equals" => &mut test.not_equals,
                "more_than" => &mut test.more_than,
                "at_least" => &mut test.at_least,
                "less_than" => &mut test.less_than,
                "at_most" => &mut test.at_most,
                _ => continue,
            };
            ok &= put(slot, self.number(v, &at(ptr, op)));
        }
        ok.then_some(test)
    }

    fn number_test(&mut self, value: &Value, ptr: &str, allowed: &[&str]) -> Option<NumberTest> {
        let map = self.some_operators(value, ptr, allowed, "number operators")?;
        self.number_ops(map, ptr)
    }

    fn instant(&mut self, value: &Value, ptr: &str) -> Option<i64> {
        let parsed = value.as_str().and_then(parse_instant);
        if parsed.is_none() {
            self.problem(
                ptr,
                format!(
                    "must be a date (\"2026-01-31\", midnight UTC) or a time with its offset \
                     (\"2026-01-31T09:30:00Z\"); found {}",
                    match value {
                        Value::String(s) => format!("{s:?}"),
                        other => kind(other).to_owned(),
                    }
                ),
            );
        }
        parsed
    }

    fn span(&mut self, value: &Value, ptr: &str) -> Option<Span> {
        let allowed = VOCABULARY.span_units;
        let map = self.operators(value, ptr, allowed, "a span such as {\"days\": 30}")?;
        let mut units = map.iter();
        let (Some((unit, n)), None) = (units.next(), units.next()) else {
            self.problem(
                ptr,
                format!(
                    "needs exactly one unit, one of {}: {{\"days\": 30}}",
                    list(allowed)
                ),
            );
            return None;
        };
        let p = at(ptr, unit);
        let Some(n) = n.as_u64().filter(|n| (1..=MAX_SPAN).contains(n)) else {
            self.problem(&p, format!("must be a whole number from 1 to {MAX_SPAN}"));
            return None;
        };
        let n = n as u32;
        Some(match unit.as_str() {
            "hours" => Span::Hours(n),
            "days" => Span::Days(n),
            "weeks" => Span::Weeks(n),
            _ => Span::Months(n),
        })
    }

    /// Time operators taken from `map`, ignoring its other keys.
    fn time_ops(&mut self, map: &Map<String, Value>, ptr: &str) -> Option<TimeTest> {
        let mut test = TimeTest::default();
        let mut ok = true;
        for (op, v) in map {
            let p = at(ptr, op);
            match op.as_str() {
                // Keys come in alphabetical order, so `since` and `before`
                // narrow what `between` set rather than replace it.
                "since" => match self.instant(v, &p) {
                    Some(t) => test.since = Some(test.since.map_or(t, |s| s.max(t))),
                    None => ok = false,
                },
                "before" => match self.instant(v, &p) {
                    Some(t) => test.before = Some(test.before.map_or(t, |b| b.min(t))),
                    None => ok = false,
                },
                "between" => match v {
                    Value::Array(pair) if pair.len() == 2 => {
                        let from = self.instant(&pair[0], &at(&p, "0"));
                        let until = self.instant(&pair[1], &at(&p, "1"));
                        if let (Some(from), Some(until)) = (from, until) {
                            if from > until {
                                self.problem(
                                    &p,
                                    "starts after it ends: write the earlier date first",
                                );
                                ok = false;
                            }
                            test.since = Some(test.since.map_or(from, |t| t.max(from)));
                            test.before = Some(test.before.map_or(until, |t| t.min(until)));
                        } else {
                            ok = false;
                        }
                    }
                    _ => {
                        self.problem(
                            &p,
                            "must be a list of two dates, [from, until): from included, until not",
                        );
                        ok = false;
                    }
                },
                "within_last" => ok &= put(&mut test.within_last, self.span(v, &p)),
                "older_than" => ok &= put(&mut test.older_than, self.span(v, &p)),
                _ => {}
            }
        }
        ok.then_some(test)
    }

    fn time_test(&mut self, value: &Value, ptr: &str, allowed: &[&str]) -> Option<TimeTest> {
        let map = self.some_operators(value, ptr, allowed, "time operators")?;
        self.time_ops(map, ptr)
    }

    fn tag_name(&mut self, value: &Value, ptr: &str) -> Option<String> {
        match value {
            Value::String(s) => TagName::referenced(s)
                .map(|name| name.key())
                .map_err(|m| self.problem(ptr, format!("is not a tag name: {m}")))
                .ok(),
            other => {
                self.problem(
                    ptr,
                    format!("must be a tag name (text); found {}", kind(other)),
                );
                None
            }
        }
    }

    fn tag_names(&mut self, value: &Value, ptr: &str) -> Option<Vec<String>> {
        let items = self.array(value, ptr, "tag names")?;
        if items.is_empty() {
            self.problem(ptr, "must name at least one tag");
            return None;
        }
        self.each(items, ptr, Self::tag_name)
    }

    fn tag_test(&mut self, value: &Value, ptr: &str) -> Option<TagTest> {
        let map = self.some_operators(value, ptr, VOCABULARY.tag, "tag operators")?;
        let mut test = TagTest::default();
        let mut ok = true;
        for (op, v) in map {
            let p = at(ptr, op);
            match op.as_str() {
                "has" => ok &= put(&mut test.has, self.tag_name(v, &p)),
                "has_not" => ok &= put(&mut test.has_not, self.tag_name(v, &p)),
                "any_of" => ok &= put(&mut test.any_of, self.tag_names(v, &p)),
                "all_of" => ok &= put(&mut test.all_of, self.tag_names(v, &p)),
                "none_of" => ok &= put(&mut test.none_of, self.tag_names(v, &p)),
                _ => {}
            }
        }
        ok.then_some(test)
    }

    fn scalar(&mut self, value: &Value, ptr: &str) -> Option<Scalar> {
        match value {
            Value::String(s) => Some(Scalar::Text(s.to_lowercase())),
            Value::Bool(b) => Some(Scalar::Bool(*b)),
            Value::Number(_) => self.number(value, ptr).map(Scalar::Number),
            other => {
                self.problem(
                    ptr,
                    format!(
                        "must be text, a number or true/false; found {} (to test whether a value is there, use \"exists\")",
                        kind(other)
                    ),
                );
                None
            }
        }
    }

    /// Value operators from `map`, ignoring its other keys.
    fn value_test(&mut self, map: &Map<String, Value>, ptr: &str) -> Option<ValueTest> {
        let mut test = ValueTest::default();
        let mut ok = true;
        for (op, v) in map {
            let p = at(ptr, op);
            match op.as_str() {
                "exists" => match v {
                    Value::Bool(b) => test.exists = Some(*b),
                    other => {
                        self.problem(&p, format!("must be true or false; found {}", kind(other)));
                        ok = false;
                    }
                },
                "equals" => ok &= put(&mut test.equals, self.scalar(v, &p)),
                "not_equals" => ok &= put(&mut test.not_equals, self.scalar(v, &p)),
                "in" => {
                    let parsed = self
                        .array(v, &p, "values")
                        .and_then(|items| self.each(items, &p, Self::scalar));
                    ok &= put(&mut test.one_of, parsed);
                }
                "contains" => ok &= put(&mut test.text.contains, self.text(v, &p)),
                "starts_with" => ok &= put(&mut test.text.starts_with, self.text(v, &p)),
                "ends_with" => ok &= put(&mut test.text.ends_with, self.text(v, &p)),
                _ => {}
            }
        }
        let mut numbers = map.clone();
        numbers.retain(|k, _| {
            matches!(
                k.as_str(),
                "more_than" | "at_least" | "less_than" | "at_most"
            )
        });
        match self.number_ops(&numbers, ptr) {
            Some(n) => test.number = n,
            None => ok = false,
        }
        match self.time_ops(map, ptr) {
            Some(t) => test.time = t,
            None => ok = false,
        }
        if !ok {
            return None;
        }
        let typed = [
            test.has_text_ops()
                .then_some("text (contains, starts_with, ends_with)"),
            test.has_number_ops()
                .then_some("number (more_than, at_least, less_than, at_most)"),
            test.has_time_ops()
                .then_some("time (since, before, between, within_last, older_than)"),
        ];
        let typed: Vec<&str> = typed.into_iter().flatten().collect();
        if typed.len() > 1 {
            self.problem(
                ptr,
                format!(
                    "mixes {} operators: a value has one type, so it could never pass them all",
                    typed.join(" and ")
                ),
            );
            return None;
        }
        if test.exists == Some(false) && map.keys().filter(|k| *k != "key").count() > 1 {
            self.problem(
                &at(ptr, "exists"),
                "is false, so no other operator can hold: drop them or use \"not\"",
            );
            return None;
        }
        Some(test)
    }

    fn field(&mut self, value: &Value, ptr: &str) -> Option<Condition> {
        let mut allowed = vec!["key"];
        allowed.extend_from_slice(VOCABULARY.field);
        let map = self.operators(
            value,
            ptr,
            &allowed,
            "a field test such as {\"key\": \"plan\", \"equals\": \"pro\"}",
        )?;
        let key = match map.get("key") {
            Some(Value::String(s)) => FieldKey::referenced(s)
                .map(|k| k.as_str().to_owned())
                .map_err(|m| self.problem(&at(ptr, "key"), format!("is not a field key: {m}")))
                .ok(),
            Some(other) => {
                self.problem(
                    &at(ptr, "key"),
                    format!("must be the field's key (text); found {}", kind(other)),
                );
                None
            }
            None => {
                self.problem(ptr, "needs \"key\": the field's key, such as \"plan\"");
                None
            }
        };
        if map.len() == 1 && key.is_some() {
            self.problem(
                ptr,
                format!(
                    "needs an operator besides \"key\": {}",
                    list(VOCABULARY.field)
                ),
            );
            return None;
        }
        let test = self.value_test(map, ptr)?;
        Some(Condition::Field { key: key?, test })
    }

    fn detail_path(&mut self, text: &str, ptr: &str) -> Option<DetailPath> {
        let parts: Vec<String> = text.split('.').map(str::to_owned).collect();
        if parts.iter().any(|p| p.is_empty() || p.contains('"')) {
            self.problem(
                ptr,
                format!(
                    "{text:?} is not a path into the details: keys joined by dots, such as \"value.amount\", none empty and none holding '\"'"
                ),
            );
            return None;
        }
        Some(DetailPath(parts))
    }

    fn event(&mut self, value: &Value, ptr: &str) -> Option<EventTest> {
        let map = self.operators(
            value,
            ptr,
            VOCABULARY.event.keys,
            "an event test such as {\"type\": \"$purchase\"}",
        )?;
        let mut test = EventTest::default();
        let mut ok = true;
        for (key, v) in map {
            let p = at(ptr, key);
            match key.as_str() {
                "type" => match v {
                    Value::String(s) if !s.trim().is_empty() => {
                        test.kind = Some(s.trim().to_owned())
                    }
                    other => {
                        self.problem(
                            &p,
                            format!(
                                "must be an event type such as \"$purchase\"; found {}",
                                kind(other)
                            ),
                        );
                        ok = false;
                    }
                },
                "when" => match self.time_test(v, &p, VOCABULARY.event.when) {
                    Some(t) => test.when = t,
                    None => ok = false,
                },
                "where" => {
                    let Value::Object(paths) = v else {
                        self.problem(&p, format!(
                            "must be an object of detail paths and their tests, such as {{\"value.amount\": {{\"more_than\": 100}}}}; found {}",
                            kind(v)
                        ));
                        ok = false;
                        continue;
                    };
                    for (path, ops) in paths {
                        let pp = at(&p, path);
                        let path = self.detail_path(path, &pp);
                        let allowed = VOCABULARY.event.where_;
                        let ops = self.operators(ops, &pp, allowed, "value operators");
                        let test_ops = match ops {
                            Some(m) if m.is_empty() => {
                                self.problem(&pp, format!("needs an operator: {}", list(allowed)));
                                None
                            }
                            Some(m) => self.value_test(m, &pp),
                            None => None,
                        };
                        match (path, test_ops) {
                            (Some(path), Some(t)) => test.filters.push((path, t)),
                            _ => ok = false,
                        }
                    }
                }
                "count" => match self.number_test(v, &p, VOCABULARY.event.count) {
                    Some(n) => test.count = Some(n),
                    None => ok = false,
                },
                "sum" => {
                    let mut allowed = vec!["of"];
                    allowed.extend_from_slice(VOCABULARY.event.sum);
                    let Some(m) = self.operators(
                        v,
                        &p,
                        &allowed,
                        "a sum such as {\"of\": \"value.amount\", \"more_than\": 500}",
                    ) else {
                        ok = false;
                        continue;
                    };
                    let path = match m.get("of") {
                        Some(Value::String(s)) => self.detail_path(s, &at(&p, "of")),
                        Some(other) => {
                            self.problem(
                                &at(&p, "of"),
                                format!(
                                    "must be a path such as \"value.amount\"; found {}",
                                    kind(other)
                                ),
                            );
                            None
                        }
                        None => {
                            self.problem(&p, "needs \"of\": the path of the number to sum, such as \"value.amount\"");
                            None
                        }
                    };
                    let numbers = self.number_ops(m, &p);
                    match (path, numbers) {
                        (Some(path), Some(n)) if !n.is_empty() => test.sum = Some((path, n)),
                        (Some(_), Some(_)) => {
                            self.problem(
                                &p,
                                format!("needs a number operator: {}", list(VOCABULARY.event.sum)),
                            );
                            ok = false;
                        }
                        _ => ok = false,
                    }
                }
                "first" => match self.time_test(v, &p, VOCABULARY.event.first) {
                    Some(t) => test.first = Some(t),
                    None => ok = false,
                },
                "last" => match self.time_test(v, &p, VOCABULARY.event.last) {
                    Some(t) => test.last = Some(t),
                    None => ok = false,
                },
                _ => {}
            }
        }
        ok.then_some(test)
    }

    fn segment(&mut self, value: &Value, ptr: &str) -> Option<Condition> {
        let allowed = VOCABULARY.segment;
        let map = self.operators(
            value,
            ptr,
            allowed,
            "a segment test such as {\"member_of\": \"42\"}",
        )?;
        let mut ops = map.iter();
        let (Some((op, id)), None) = (ops.next(), ops.next()) else {
            self.problem(ptr, format!("needs exactly one of {}", list(allowed)));
            return None;
        };
        let id = match id {
            Value::String(s) => super::ast::segment_id(s),
            Value::Number(n) => n.as_i64().filter(|&n| n > 0),
            _ => None,
        };
        let Some(id) = id else {
            self.problem(&at(ptr, op), "must be a segment id, such as \"42\"");
            return None;
        };
        Some(Condition::Segment {
            id,
            member: op == "member_of",
        })
    }
}

impl Parser {
    fn sample(&mut self, value: &Value, ptr: &str) -> Option<SampleTest> {
        let map = self.operators(
            value,
            ptr,
            VOCABULARY.sample,
            "a sample such as {\"salt\": \"spring-test\", \"from\": 0, \"to\": 10}",
        )?;
        let mut ok = true;
        for key in VOCABULARY.sample {
            if !map.contains_key(*key) {
                let what = match *key {
                    "salt" => "the salt, text that names the sample, such as \"spring-test\"",
                    "from" => "where the sample begins, a number from 0 to 100 (included)",
                    _ => "where the sample ends, a number from 0 to 100 (not included)",
                };
                self.problem(ptr, format!("needs \"{key}\": {what}"));
                ok = false;
            }
        }
        let salt = match map.get("salt") {
            Some(Value::String(s)) if !s.is_empty() && s.chars().count() <= MAX_SALT_CHARS => {
                Some(s.clone())
            }
            Some(other) => {
                let found = match other {
                    Value::String(s) if s.is_empty() => "empty text".to_owned(),
                    Value::String(s) => format!("{} characters", s.chars().count()),
                    other => kind(other).to_owned(),
                };
                self.problem(
                    &at(ptr, "salt"),
                    format!(
                        "must be text of 1 to {MAX_SALT_CHARS} characters, hashed as written; \
                         found {found}"
                    ),
                );
                None
            }
            None => None,
        };
        let from = map
            .get("from")
            .and_then(|v| self.bucket_bound(v, &at(ptr, "from")));
        let to = map
            .get("to")
            .and_then(|v| self.bucket_bound(v, &at(ptr, "to")));
        let (Some(salt), Some(from), Some(to), true) = (salt, from, to, ok) else {
            return None;
        };
        if from >= to {
            self.problem(
                ptr,
                format!(
                    "is empty: \"from\" ({}) must be below \"to\" ({}); a sample holds the \
                     buckets from \"from\" (included) up to \"to\" (not included)",
                    hundredths(from),
                    hundredths(to)
                ),
            );
            return None;
        }
        Some(SampleTest { salt, from, to })
    }

    /// A bound of a sample: a number from 0 to 100 with at most two
    /// decimals, as hundredths.
    fn bucket_bound(&mut self, value: &Value, ptr: &str) -> Option<u16> {
        let hundredths = value.as_f64().and_then(|x| {
            let h = (x * 100.0).round();
            // Two decimals at most: the number is the double nearest to
            // some number of hundredths (0.29 is, 0.295 is not).
            ((0.0..=f64::from(BUCKETS)).contains(&h) && h / 100.0 == x).then_some(h as u16)
        });
        if hundredths.is_none() {
            let found = match value {
                Value::Number(n) => format!("{n}"),
                other => kind(other).to_owned(),
            };
            self.problem(
                ptr,
                format!(
                    "must be a number from 0 to 100 with at most two decimals (buckets are a \
                     hundredth wide); found {found}"
                ),
            );
        }
        hundredths
    }
}

/// Hundredths written as the number a query would hold: `1050` is `10.5`.
fn hundredths(h: u16) -> String {
    let x = f64::from(h) / 100.0;
    format!("{x}")
}

/// Stores a parsed operand; whether there was one to store (its problem,
/// if not, is already reported).
fn put<T>(slot: &mut Option<T>, value: Option<T>) -> bool {
    let ok = value.is_some();
    *slot = value;
    ok
}

/// Reads `2026-01-31` (midnight UTC) or an RFC 3339 time with its offset.
pub fn parse_instant(text: &str) -> Option<i64> {
    // chrono's `%Y-%m-%d` also takes `2026-6-1`, ` 2026-06-01` and
    // `+2026-06-01`; a date is written `YYYY-MM-DD` and nothing else.
    let date_shaped = text.len() == 10
        && text.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        });
    if date_shaped && let Ok(date) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Some(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis());
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<(String, String)> {
        parse(text)
            .expect_err(text)
            .into_iter()
            .map(|p| (p.pointer, p.message))
            .collect()
    }

    fn event_tests(n: usize, repeat: usize) -> String {
        let tests: Vec<String> = (0..n)
            .flat_map(|i| {
                std::iter::repeat_n(
                    format!(r#"{{"event":{{"where":{{"url":{{"contains":"zz{i}"}}}}}}}}"#),
                    repeat,
                )
            })
            .collect();
        format!(r#"{{"any":[{}]}}"#, tests.join(","))
    }

    /// An operand that `op` accepts; `number` where a number is expected
    /// (`count`, `sum`).
    fn operand(op: &str, number: bool) -> Value {
        match op {
            "in" => serde_json::json!(["a"]),
            "any_of" | "all_of" | "none_of" => serde_json::json!(["vip"]),
            "has" | "has_not" => serde_json::json!("vip"),
            "member_of" | "not_member_of" => serde_json::json!("1"),
            "between" => serde_json::json!(["2026-01-01", "2026-02-01"]),
            "within_last" | "older_than" => serde_json::json!({"days": 30}),
            "since" | "before" => serde_json::json!("2026-01-01"),
            "exists" => serde_json::json!(true),
            "more_than" | "at_least" | "less_than" | "at_most" => serde_json::json!(1),
            _ if number => serde_json::json!(1),
            _ => serde_json::json!("a"),
        }
    }

    #[test]
    fn every_word_of_the_vocabulary_is_accepted_where_it_is_listed() {
        let v = VOCABULARY;
        let ops = |list: &[&str], number: bool| -> Vec<(String, Value)> {
            list.iter()
                .map(|op| (op.to_string(), operand(op, number)))
                .collect()
        };
        let mut queries = Vec::new();
        for (op, x) in ops(v.email, false) {
            queries.push(serde_json::json!({"email": {op: x}}));
        }
        for b in v.subscribed {
            queries.push(serde_json::json!({ "subscribed": b }));
        }
        for (op, x) in ops(v.created, false) {
            queries.push(serde_json::json!({"created": {op: x}}));
        }
        for (op, x) in ops(v.tag, false) {
            queries.push(serde_json::json!({"tag": {op: x}}));
        }
        for (op, x) in ops(v.field, false) {
            queries.push(serde_json::json!({"field": {"key": "plan", op: x}}));
        }
        for (op, x) in ops(v.segment, false) {
            queries.push(serde_json::json!({"segment": {op: x}}));
        }
        // A sample needs every one of its keys.
        let sample: serde_json::Map<String, Value> = v
            .sample
            .iter()
            .map(|key| {
                let x = match *key {
                    "from" => serde_json::json!(0),
                    "to" => serde_json::json!(10),
                    _ => serde_json::json!("spring-test"),
                };
                (key.to_string(), x)
            })
            .collect();
        queries.push(serde_json::json!({ "sample": sample }));
        for unit in v.span_units {
            queries.push(serde_json::json!({"created": {"within_last": {*unit: 2}}}));
        }
        let e = v.event;
        for key in e.keys {
            let (list, number) = match *key {
                "type" => {
                    queries.push(serde_json::json!({"event": {"type": "$purchase"}}));
                    continue;
                }
                "when" => (e.when, false),
                "where" => (e.where_, false),
                "count" => (e.count, true),
                "sum" => (e.sum, true),
                "first" => (e.first, false),
                "last" => (e.last, false),
                other => panic!("the event key {other:?} is not tested here"),
            };
            for (op, x) in ops(list, number) {
                let test = match *key {
                    "where" => serde_json::json!({"value.amount": {op: x}}),
                    "sum" => serde_json::json!({"of": "value.amount", op: x}),
                    _ => serde_json::json!({op: x}),
                };
                queries.push(serde_json::json!({"event": {*key: test}}));
            }
        }
        let leaf = serde_json::json!({"subscribed": true});
        for kind in v.conditions {
            queries.push(match *kind {
                "all" | "any" => serde_json::json!({*kind: [leaf]}),
                "not" => serde_json::json!({"not": leaf}),
                "groups" => serde_json::json!({"groups": [{"filters": [leaf]}]}),
                // Each of the others is a kind of leaf, tested above.
                _ => continue,
            });
        }
        assert!(queries.len() >= 80, "only {} queries", queries.len());
        for query in queries {
            let text = query.to_string();
            if let Err(problems) = parse(&text) {
                panic!("refused: {text}: {problems:?}");
            }
        }
    }

    #[test]
    fn a_query_holds_at_most_64_different_event_tests() {
        assert!(parse(&event_tests(MAX_EVENT_TESTS, 1)).is_ok());
        assert!(
            parse(&event_tests(MAX_EVENT_TESTS, 3)).is_ok(),
            "repeats count once"
        );
        assert_eq!(
            problems(&event_tests(MAX_EVENT_TESTS + 1, 1)),
            [(
                String::new(),
                "has 65 different event tests; a query holds at most 64 (each is a pass over \
                 events; the same test written twice counts once)"
                    .to_owned()
            )]
        );
    }

    #[test]
    fn the_empty_query_and_the_foreign_form() {
        assert_eq!(
            parse("{}"),
            Ok(Query::Condition(Box::new(Condition::All(vec![]))))
        );
        assert_eq!(parse(r#"{"foreign":{"a":[1]}}"#), Ok(Query::Foreign));
        let deep = format!("{}1{}", r#"{"foreign":["#.repeat(3_000), "]}".repeat(3_000));
        assert_eq!(parse(&deep), Ok(Query::Foreign));
        let p = problems(r#"{"foreign":1,"tag":{"has":"x"}}"#);
        assert_eq!(p[0].0, "/foreign");
    }

    #[test]
    fn unknown_operator_names_the_ones_that_exist() {
        let p = problems(
            r#"{"groups":[{"filters":[{"tag":{"has":"x"}},{"event":{"type":"$login","count":{"gte":3}}}]}]}"#,
        );
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].0, "/groups/0/filters/1/event/count/gte");
        assert!(p[0].1.contains("unknown operator \"gte\""), "{}", p[0].1);
        assert!(p[0].1.contains("at_least"), "{}", p[0].1);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let p = problems(
            r#"{"all":[{"tag":{"has":5}},{"email":{"like":"x"}},{"subscribed":"yes"},{"field":{"equals":1}},{"colour":"red"}]}"#,
        );
        let pointers: Vec<&str> = p.iter().map(|(ptr, _)| ptr.as_str()).collect();
        assert_eq!(
            pointers,
            [
                "/all/0/tag/has",
                "/all/1/email/like",
                "/all/2/subscribed",
                "/all/3/field",
                "/all/4/colour"
            ]
        );
    }

    #[test]
    fn shapes_and_types_are_checked() {
        let cases = [
            (r#"{"tag":{"has":"x"},"subscribed":true}"#, "", "has 2 keys"),
            (r#"{"all":{}}"#, "/all", "must be a list of conditions"),
            (r#"{"all":[{}]}"#, "/all/0", "empty condition"),
            (
                r#"{"created":{"since":"yesterday"}}"#,
                "/created/since",
                "must be a date",
            ),
            (
                r#"{"created":{"within_last":{"days":0}}}"#,
                "/created/within_last/days",
                "whole number",
            ),
            (
                r#"{"created":{"within_last":{"days":1,"hours":2}}}"#,
                "/created/within_last",
                "exactly one unit",
            ),
            (
                r#"{"created":{"between":["2026-02-01","2026-01-01"]}}"#,
                "/created/between",
                "starts after it ends",
            ),
            (
                r#"{"field":{"key":"plan","contains":"a","more_than":1}}"#,
                "/field",
                "mixes text",
            ),
            (
                r#"{"field":{"key":"plan","exists":false,"equals":"x"}}"#,
                "/field/exists",
                "is false",
            ),
            (r#"{"field":{"key":"plan"}}"#, "/field", "needs an operator"),
            (
                r#"{"field":{"key":"plan","equals":null}}"#,
                "/field/equals",
                "use \"exists\"",
            ),
            (
                r#"{"event":{"where":{"a..b":{"exists":true}}}}"#,
                "/event/where/a..b",
                "not a path",
            ),
            (
                r#"{"event":{"sum":{"of":"value.amount"}}}"#,
                "/event/sum",
                "needs a number operator",
            ),
            (
                r#"{"segment":{"member_of":"x"}}"#,
                "/segment/member_of",
                "segment id",
            ),
            (
                r#"{"tag":{"any_of":[]}}"#,
                "/tag/any_of",
                "at least one tag",
            ),
            (
                r#"{"not":{"foreign":{}}}"#,
                "/not/foreign",
                "only allowed as the whole query",
            ),
            (r#"{"email":{"equals":"a/b~c"},"x/y":1}"#, "", "has 2 keys"),
        ];
        for (text, pointer, message) in cases {
            let p = problems(text);
            assert_eq!(p[0].0, pointer, "{text}: {p:?}");
            assert!(p[0].1.contains(message), "{text}: {p:?}");
        }
    }

    #[test]
    fn a_sample_takes_a_salt_and_bounds_in_hundredths() {
        let sample = |text: &str| match parse(text) {
            Ok(Query::Condition(c)) => match *c {
                Condition::Sample(s) => s,
                other => panic!("{other:?}"),
            },
            other => panic!("{text}: {other:?}"),
        };
        assert_eq!(
            sample(r#"{"sample":{"salt":"Spring Test ","from":0,"to":10}}"#),
            SampleTest {
                salt: "Spring Test ".to_owned(),
                from: 0,
                to: 1000
            }
        );
        let edges = sample(r#"{"sample":{"to":100.0,"salt":"s","from":99.99}}"#);
        assert_eq!((edges.from, edges.to), (9999, 10000));
        let small = sample(r#"{"sample":{"salt":"s","from":0.29,"to":0.3}}"#);
        assert_eq!((small.from, small.to), (29, 30));
        let long = "é".repeat(MAX_SALT_CHARS);
        assert_eq!(
            sample(&format!(
                r#"{{"sample":{{"salt":"{long}","from":0,"to":1}}}}"#
            ))
            .salt,
            long
        );
    }

    #[test]
    fn a_sample_is_refused_with_what_would_be_accepted() {
        let cases = [
            (
                r#"{"sample":{"salt":"s","from":10,"to":10}}"#,
                "/sample",
                "is empty: \"from\" (10) must be below \"to\" (10)",
            ),
            (
                r#"{"sample":{"salt":"s","from":50.5,"to":7}}"#,
                "/sample",
                "is empty: \"from\" (50.5) must be below \"to\" (7)",
            ),
            (
                r#"{"sample":{"salt":"s","from":-1,"to":7}}"#,
                "/sample/from",
                "must be a number from 0 to 100 with at most two decimals",
            ),
            (
                r#"{"sample":{"salt":"s","from":0,"to":100.01}}"#,
                "/sample/to",
                "found 100.01",
            ),
            (
                r#"{"sample":{"salt":"s","from":0.005,"to":1}}"#,
                "/sample/from",
                "at most two decimals",
            ),
            (
                r#"{"sample":{"salt":"s","from":"0","to":1}}"#,
                "/sample/from",
                "found text",
            ),
            (
                r#"{"sample":{"salt":"","from":0,"to":1}}"#,
                "/sample/salt",
                "must be text of 1 to 255 characters, hashed as written; found empty text",
            ),
            (
                r#"{"sample":{"salt":7,"from":0,"to":1}}"#,
                "/sample/salt",
                "found a number",
            ),
            (
                r#"{"sample":{"from":0,"to":1}}"#,
                "/sample",
                "needs \"salt\"",
            ),
            (
                r#"{"sample":{"salt":"s","to":1}}"#,
                "/sample",
                "needs \"from\"",
            ),
            (
                r#"{"sample":{"salt":"s","from":0,"to":1,"seed":2}}"#,
                "/sample/seed",
                "unknown operator \"seed\"; the operators here are salt, from, to",
            ),
            (r#"{"sample":[]}"#, "/sample", "must be a sample such as"),
        ];
        for (text, pointer, message) in cases {
            let p = problems(text);
            assert_eq!(p[0].0, pointer, "{text}: {p:?}");
            assert!(p[0].1.contains(message), "{text}: {p:?}");
        }
        let long = "x".repeat(MAX_SALT_CHARS + 1);
        let p = problems(&format!(
            r#"{{"sample":{{"salt":"{long}","from":0,"to":1}}}}"#
        ));
        assert_eq!(p[0].0, "/sample/salt");
        assert!(p[0].1.ends_with("found 256 characters"), "{p:?}");
    }

    #[test]
    fn time_operators_all_hold() {
        let Ok(Query::Condition(c)) = parse(
            r#"{"created":{"between":["2026-02-01","2026-03-01"],"since":"2025-01-01","before":"2026-04-01"}}"#,
        ) else {
            panic!()
        };
        let Condition::Created(t) = *c else { panic!() };
        assert_eq!(t.since, parse_instant("2026-02-01"));
        assert_eq!(t.before, parse_instant("2026-03-01"));
    }

    #[test]
    fn a_date_is_written_yyyy_mm_dd() {
        assert_eq!(parse_instant("2026-06-01"), Some(1_780_272_000_000));
        for text in [
            "2026-6-1",
            "2026-06-1",
            " 2026-06-01",
            "+2026-06-01",
            "226-06-01",
        ] {
            assert_eq!(parse_instant(text), None, "{text:?}");
        }
        let p = problems(r#"{"created":{"since":"2026-6-1"}}"#);
        assert_eq!(p[0].0, "/created/since");
    }

    #[test]
    fn a_number_is_read_as_the_nearest_double() {
        // 1e15 + 0.5 is a double; a parser that rounds on the way reads it
        // as 1e15 + 0.375, and a sum of 1e15 and 0.5 would not equal it.
        let Ok(Query::Condition(c)) =
            parse(r#"{"event":{"sum":{"of":"value.amount","equals":1000000000000000.5}}}"#)
        else {
            panic!()
        };
        let Condition::Event(t) = *c else { panic!() };
        let equals = t.sum.map(|(_, n)| n.equals);
        assert_eq!(equals, Some(Some(1e15 + 0.5)));
    }

    #[test]
    fn pointers_escape_slash_and_tilde() {
        let p = problems(r#"{"event":{"where":{"a/b~":{"bogus":1}}}}"#);
        assert_eq!(p[0].0, "/event/where/a~1b~0/bogus");
    }

    #[test]
    fn limits_bound_the_work() {
        let deep = format!(
            "{}{}{}",
            r#"{"not":"#.repeat(40),
            r#"{"subscribed":true}"#,
            "}".repeat(40)
        );
        assert!(problems(&deep)[0].1.contains("nests too deeply"));
        let wide = format!(
            r#"{{"any":[{}]}}"#,
            vec![r#"{"subscribed":true}"#; 600].join(",")
        );
        assert!(problems(&wide)[0].1.contains("one condition too many"));
        let very_deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        let p = problems(&format!(r#"{{"all":{very_deep}}}"#));
        assert!(p[0].1.contains("nests too deeply"), "{p:?}");
    }

    #[test]
    fn limits_hold_at_their_edges() {
        let leaf = r#"{"subscribed":true}"#;
        // Conditions: 500 pass, 501 do not (the list's own condition counts).
        let any = |n: usize| format!(r#"{{"any":[{}]}}"#, vec![leaf; n].join(","));
        assert!(parse(&any(MAX_CONDITIONS - 1)).is_ok());
        assert!(
            problems(&any(MAX_CONDITIONS))[0]
                .1
                .contains("one condition too many")
        );
        // Nesting through lists: 32 levels pass, 33 do not.
        let nested = |n: usize| format!("{}{leaf}{}", r#"{"all":["#.repeat(n), "]}".repeat(n));
        assert!(parse(&nested(MAX_DEPTH - 1)).is_ok());
        assert!(
            problems(&nested(MAX_DEPTH))[0]
                .1
                .contains("nests too deeply")
        );
        // Lists: 1,000 items pass, 1,001 do not.
        let tags = |n: usize| {
            let names: Vec<String> = (0..n).map(|i| format!(r#""t{i}""#)).collect();
            format!(r#"{{"tag":{{"any_of":[{}]}}}}"#, names.join(","))
        };
        assert!(parse(&tags(MAX_LIST)).is_ok());
        assert_eq!(
            problems(&tags(MAX_LIST + 1)),
            [(
                "/tag/any_of".to_owned(),
                "has 1001 items; the most allowed is 1000".to_owned()
            )]
        );
    }

    #[test]
    fn between_takes_two_dates_in_order_and_an_empty_window_is_allowed() {
        let between = |dates: &str| format!(r#"{{"created":{{"between":{dates}}}}}"#);
        assert!(parse(&between(r#"["2026-01-01","2026-01-01"]"#)).is_ok());
        assert!(parse(&between(r#"["2026-01-01","2026-02-01"]"#)).is_ok());
        let p = problems(&between(r#"["2026-02-01","2026-01-01"]"#));
        assert!(p[0].1.starts_with("starts after it ends"), "{p:?}");
        for wrong in [
            r#"["2026-01-01"]"#,
            r#"["2026-01-01","2026-02-01","2026-03-01"]"#,
        ] {
            let p = problems(&between(wrong));
            assert_eq!(p[0].0, "/created/between", "{wrong}");
            assert!(p[0].1.starts_with("must be a list of two dates"), "{p:?}");
        }
    }

    #[test]
    fn a_wrong_type_is_named_in_the_message() {
        for (value, named) in [
            (r#""5""#, "text"),
            ("true", "true/false"),
            ("null", "null"),
            ("[1]", "a list"),
            (r#"{"a":1}"#, "an object"),
        ] {
            let p = problems(&format!(
                r#"{{"event":{{"count":{{"at_least":{value}}}}}}}"#
            ));
            assert_eq!(
                p,
                [(
                    "/event/count/at_least".to_owned(),
                    format!("must be a number; found {named}")
                )]
            );
        }
    }

    #[test]
    fn every_example_in_the_grammar_document_parses() {
        let doc = include_str!("../../../../docs/query-language.md");
        let mut examples = 0;
        for block in doc.split("```json\n").skip(1) {
            let example = block.split("```").next().unwrap_or_default();
            if let Err(problems) = parse(example) {
                panic!("example does not parse: {example}\n{problems:?}");
            }
            examples += 1;
        }
        assert!(examples >= 40, "only {examples} examples");
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../../../docs/query-language.schema.json"))
                .unwrap();
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
    }

    #[test]
    fn names_are_normalised_like_stored_ones() {
        let Ok(Query::Condition(c)) = parse(r#"{"field":{"key":" First Name","exists":true}}"#)
        else {
            panic!()
        };
        let Condition::Field { key, .. } = *c else {
            panic!()
        };
        assert_eq!(key, "first_name");
        let Ok(Query::Condition(c)) = parse(r#"{"tag":{"has":" VIP "}}"#) else {
            panic!()
        };
        let Condition::Tag(t) = *c else { panic!() };
        assert_eq!(t.has.as_deref(), Some("vip"));
    }
}
