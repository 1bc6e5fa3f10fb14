//! The query tree: what a parsed `visitor_event_query` means.
//!
//! One enum of conditions, each variant a kind of fact about a subscriber,
//! and three boolean combinators over them. Every test object (text, number,
//! time, value) holds one or more operators that must all hold. Text and tag
//! comparisons ignore case; relative times are kept relative until
//! [`Query::resolve`] pins them to the time of the request, so the same tree
//! can be evaluated at any instant.

use chrono::{DateTime, Months, Utc};

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub enum Query {
    /// `{"foreign": …}`: kept verbatim, never evaluated.
    Foreign,
    /// Any evaluable query; `{}` is `All(vec![])`, which everyone matches.
    Condition(Box<Condition>),
}

impl Query {
    /// Whether the members can change with the clock alone: some time test
    /// is relative (`within_last`, `older_than`). Segments it refers to are
    /// not looked into: their own answer says it for them.
    pub fn moves_with_time(&self) -> bool {
        let mut moves = false;
        if let Self::Condition(c) = self {
            let relative = |t: &TimeTest| t.within_last.is_some() || t.older_than.is_some();
            c.walk(&mut |c| match c {
                Condition::Created(t) => moves |= relative(t),
                Condition::Field { test, .. } => moves |= relative(&test.time),
                Condition::Event(e) => {
                    moves |= relative(&e.when)
                        || e.filters.iter().any(|(_, v)| relative(&v.time))
                        || e.first.as_ref().is_some_and(relative)
                        || e.last.as_ref().is_some_and(relative);
                }
                _ => {}
            });
        }
        moves
    }

    /// The event types the query's conditions read, or `None` when one
    /// reads events of every type. Segments it refers to are not looked
    /// into.
    pub fn event_kinds(&self) -> Option<Vec<String>> {
        let mut kinds = Some(Vec::new());
        if let Self::Condition(c) = self {
            c.walk(&mut |c| {
                if let Condition::Event(e) = c {
                    match (&e.kind, kinds.as_mut()) {
                        (Some(kind), Some(list)) if !list.contains(kind) => list.push(kind.clone()),
                        (None, _) => kinds = None,
                        _ => {}
                    }
                }
            });
        }
        kinds
    }
}

impl Query {
    /// The segments this query refers to, in order of appearance.
    pub fn segment_refs(&self) -> Vec<i64> {
        let mut out = Vec::new();
        if let Self::Condition(c) = self {
            c.walk(&mut |c| {
                if let Condition::Segment { id, .. } = c {
                    out.push(*id);
                }
            });
        }
        out
    }
}

impl Query {
    /// Each segment reference with the JSON pointer of its id in the query.
    pub fn segment_refs_at(&self) -> Vec<(String, i64)> {
        fn visit(c: &Condition, at: String, out: &mut Vec<(String, i64)>) {
            match c {
                Condition::All(cs) => cs
                    .iter()
                    .enumerate()
                    .for_each(|(i, c)| visit(c, format!("{at}/all/{i}"), out)),
                Condition::Any(cs) => cs
                    .iter()
                    .enumerate()
                    .for_each(|(i, c)| visit(c, format!("{at}/any/{i}"), out)),
                Condition::Not(c) => visit(c, format!("{at}/not"), out),
                Condition::Groups(groups) => {
                    for (g, filters) in groups.iter().enumerate() {
                        for (i, c) in filters.iter().enumerate() {
                            visit(c, format!("{at}/groups/{g}/filters/{i}"), out);
                        }
                    }
                }
                Condition::Segment { id, member } => {
                    let op = if *member {
                        "member_of"
                    } else {
                        "not_member_of"
                    };
                    out.push((format!("{at}/segment/{op}"), *id));
                }
                _ => {}
            }
        }
        let mut out = Vec::new();
        if let Self::Condition(c) = self {
            visit(c, String::new(), &mut out);
        }
        out
    }
}

/// A segment id written as text: a positive decimal integer (as segment ids
/// travel on the wire, and as a query's `segment` test may name one).
pub fn segment_id(input: &str) -> Option<i64> {
    if input.is_empty() || input.len() > 18 || !input.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    input.parse().ok().filter(|&n| n > 0)
}

/// One condition on a subscriber.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// Every condition holds (true when empty).
    All(Vec<Condition>),
    /// At least one condition holds (false when empty).
    Any(Vec<Condition>),
    Not(Box<Condition>),
    /// Bento's groups: any group whose filters all hold.
    Groups(Vec<Vec<Condition>>),
    Email(TextTest),
    Subscribed(bool),
    Created(TimeTest),
    Tag(TagTest),
    Field {
        key: String,
        test: ValueTest,
    },
    Event(EventTest),
    /// Membership of another segment (`member: false` for "not a member").
    Segment {
        id: i64,
        member: bool,
    },
    /// A stable sample: the subscribers whose bucket lies in a range.
    Sample(SampleTest),
}

impl Condition {
    /// Visits this condition and every condition inside it, parents first.
    pub fn walk(&self, f: &mut impl FnMut(&Condition)) {
        f(self);
        match self {
            Self::All(cs) | Self::Any(cs) => cs.iter().for_each(|c| c.walk(f)),
            Self::Groups(groups) => groups.iter().flatten().for_each(|c| c.walk(f)),
            Self::Not(c) => c.walk(f),
            _ => {}
        }
    }
}

/// `sample`: the subscribers whose bucket for `salt` (see
/// [`super::sample::bucket`]) lies in `[from, to)`. Bounds are in hundredths
/// of a bucket point, as buckets are: `from` 0 to 9,999, `to` 1 to 10,000,
/// `from < to`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SampleTest {
    /// Hashed as written: case and spaces count.
    pub salt: String,
    pub from: u16,
    pub to: u16,
}

impl SampleTest {
    /// Whether a bucket (in hundredths) lies in the range.
    pub fn holds(&self, bucket: u16) -> bool {
        (self.from <= bucket) & (bucket < self.to)
    }
}

/// Text operators, all ignoring case; text is compared by its lowercase form.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TextTest {
    pub equals: Option<String>,
    pub not_equals: Option<String>,
    pub contains: Option<String>,
    pub starts_with: Option<String>,
    pub ends_with: Option<String>,
    /// The part after the last `@` equals this.
    pub domain: Option<String>,
    pub one_of: Option<Vec<String>>,
}

impl TextTest {
    /// Whether lowercase `text` passes every operator.
    pub fn matches(&self, text: &str) -> bool {
        self.equals.as_ref().is_none_or(|v| text == v)
            && self.not_equals.as_ref().is_none_or(|v| text != v)
            && self
                .contains
                .as_ref()
                .is_none_or(|v| text.contains(v.as_str()))
            && self
                .starts_with
                .as_ref()
                .is_none_or(|v| text.starts_with(v.as_str()))
            && self
                .ends_with
                .as_ref()
                .is_none_or(|v| text.ends_with(v.as_str()))
            && self
                .domain
                .as_ref()
                .is_none_or(|v| text.rsplit_once('@').is_some_and(|(_, domain)| domain == v))
            && self
                .one_of
                .as_ref()
                .is_none_or(|vs| vs.iter().any(|v| v == text))
    }
}

/// Number operators.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NumberTest {
    pub equals: Option<f64>,
    pub not_equals: Option<f64>,
    pub more_than: Option<f64>,
    pub at_least: Option<f64>,
    pub less_than: Option<f64>,
    pub at_most: Option<f64>,
}

impl NumberTest {
    pub fn matches(&self, n: f64) -> bool {
        self.equals.is_none_or(|v| n == v)
            && self.not_equals.is_none_or(|v| n != v)
            && self.more_than.is_none_or(|v| n > v)
            && self.at_least.is_none_or(|v| n >= v)
            && self.less_than.is_none_or(|v| n < v)
            && self.at_most.is_none_or(|v| n <= v)
    }

    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A length of time before now, in one calendar unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    Hours(u32),
    Days(u32),
    Weeks(u32),
    Months(u32),
}

impl Span {
    /// The instant this long before `now` (Unix ms). Months are calendar
    /// months, the day clamped to the month's length (31 March minus one
    /// month is 28 or 29 February).
    pub fn before(self, now: i64) -> i64 {
        const HOUR: i64 = 3_600_000;
        match self {
            Self::Hours(n) => now - i64::from(n) * HOUR,
            Self::Days(n) => now - i64::from(n) * 24 * HOUR,
            Self::Weeks(n) => now - i64::from(n) * 7 * 24 * HOUR,
            Self::Months(n) => {
                #[cfg(test)]
                if let Some(broken) = crate::engine::mutant::months_before(now, n) {
                    return broken;
                }
                DateTime::<Utc>::from_timestamp_millis(now)
                    .and_then(|t| t.checked_sub_months(Months::new(n)))
                    .map_or(i64::MIN, |t| t.timestamp_millis())
            }
        }
    }
}

/// Time operators, as written; see [`TimeTest::resolve`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TimeTest {
    /// At or after this instant (Unix ms).
    pub since: Option<i64>,
    /// Strictly before this instant.
    pub before: Option<i64>,
    /// Between now minus the span and now, both included.
    pub within_last: Option<Span>,
    /// Strictly before now minus the span.
    pub older_than: Option<Span>,
}

impl TimeTest {
    /// The half-open range `[from, until)` of instants that pass, at `now`.
    pub fn resolve(&self, now: i64) -> TimeRange {
        let mut range = TimeRange {
            from: i64::MIN,
            until: i64::MAX,
        };
        if let Some(t) = self.since {
            range.from = range.from.max(t);
        }
        if let Some(t) = self.before {
            range.until = range.until.min(t);
        }
        if let Some(span) = self.within_last {
            range.from = range.from.max(span.before(now));
            range.until = range.until.min(now.saturating_add(1));
        }
        if let Some(span) = self.older_than {
            range.until = range.until.min(span.before(now));
        }
        range
    }
}

/// Instants `from <= t < until`, in Unix ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    pub from: i64,
    pub until: i64,
}

impl TimeRange {
    pub const ALL: Self = Self {
        from: i64::MIN,
        until: i64::MAX,
    };

    pub fn contains(&self, t: i64) -> bool {
        // `&`, not `&&`: both comparisons are cheap, and no branch guesses
        // which way a scan's times fall.
        (self.from <= t) & (t < self.until)
    }
}

/// Tag operators; names are compared by their lowercase form.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TagTest {
    pub has: Option<String>,
    pub has_not: Option<String>,
    pub any_of: Option<Vec<String>>,
    pub all_of: Option<Vec<String>>,
    pub none_of: Option<Vec<String>>,
}

/// A scalar written in a query.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// Kept lowercase: text comparisons ignore case.
    Text(String),
    Number(f64),
    Bool(bool),
}

/// Operators on a value that may be absent or of any JSON type (a field, or a
/// path inside an event's details). Typed operators match only values of
/// their type: `more_than` only numbers, `contains` only text, `since` only
/// text that is a date.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ValueTest {
    pub exists: Option<bool>,
    pub equals: Option<Scalar>,
    pub not_equals: Option<Scalar>,
    pub one_of: Option<Vec<Scalar>>,
    pub text: TextTest,
    pub number: NumberTest,
    pub time: TimeTest,
}

impl ValueTest {
    pub fn has_text_ops(&self) -> bool {
        self.text != TextTest::default()
    }
    pub fn has_number_ops(&self) -> bool {
        !self.number.is_empty()
    }
    pub fn has_time_ops(&self) -> bool {
        self.time != TimeTest::default()
    }
}

/// What is known of events of a kind, and the tests on it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EventTest {
    /// The event type; `None` for any type.
    pub kind: Option<String>,
    /// Only events in this window count.
    pub when: TimeTest,
    /// Only events whose details pass all of these count (path, test).
    pub filters: Vec<(DetailPath, ValueTest)>,
    /// How many counted events; absent with the others: at least one.
    pub count: Option<NumberTest>,
    /// The sum of a numeric detail over the counted events (0 when none).
    pub sum: Option<(DetailPath, NumberTest)>,
    /// When the earliest counted event happened.
    pub first: Option<TimeTest>,
    /// When the latest counted event happened.
    pub last: Option<TimeTest>,
}

impl EventTest {
    /// The count test in force: the one written, or "at least one" when no
    /// aggregate test is written.
    pub fn effective_count(&self) -> Option<NumberTest> {
        match (&self.count, &self.sum, &self.first, &self.last) {
            (Some(c), ..) => Some(c.clone()),
            (None, None, None, None) => Some(NumberTest {
                at_least: Some(1.0),
                ..NumberTest::default()
            }),
            _ => None,
        }
    }

    /// Every detail path this test reads.
    pub fn paths(&self) -> impl Iterator<Item = &DetailPath> {
        self.filters
            .iter()
            .map(|(p, _)| p)
            .chain(self.sum.as_ref().map(|(p, _)| p))
    }
}

/// A path of object keys into an event's details (`value.amount`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DetailPath(pub Vec<String>);

impl DetailPath {
    /// The value at this path, if every step is an object holding the key.
    pub fn lookup<'a>(&self, details: &'a serde_json::Value) -> Option<&'a serde_json::Value> {
        self.0
            .iter()
            .try_fold(details, |v, key| v.get(key.as_str()))
    }

    /// The path as SQLite's JSON functions take it: `$."value"."amount"`.
    /// Keys cannot hold `"` (the parser refuses them).
    pub fn sqlite_path(&self) -> String {
        let mut out = String::from("$");
        for key in &self.0 {
            out.push_str(".\"");
            out.push_str(key);
            out.push('"');
        }
        out
    }

    pub fn dotted(&self) -> String {
        self.0.join(".")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_references_are_found_everywhere_with_their_pointers() {
        let query = crate::query::parse(
            r#"{"all":[
                {"segment":{"member_of":"1"}},
                {"any":[{"not":{"segment":{"not_member_of":"2"}}}]},
                {"groups":[{"filters":[{"subscribed":true},{"segment":{"member_of":"3"}}]}]}
            ]}"#,
        )
        .unwrap();
        assert_eq!(query.segment_refs(), [1, 2, 3]);
        assert_eq!(
            query.segment_refs_at(),
            [
                ("/all/0/segment/member_of".to_owned(), 1),
                ("/all/1/any/0/not/segment/not_member_of".to_owned(), 2),
                ("/all/2/groups/0/filters/1/segment/member_of".to_owned(), 3),
            ]
        );
        let none = crate::query::parse(r#"{"subscribed":true}"#).unwrap();
        assert_eq!(none.segment_refs(), Vec::<i64>::new());
        assert_eq!(none.segment_refs_at(), Vec::<(String, i64)>::new());
    }

    #[test]
    fn relative_times_and_event_types_are_found_wherever_they_are() {
        let parse = |text: &str| crate::query::parse(text).unwrap();
        let fixed = parse(
            r#"{"all":[{"tag":{"has":"vip"}},{"created":{"since":"2024-01-01T00:00:00Z"}},
            {"event":{"type":"$purchase","count":{"at_least":2}}}]}"#,
        );
        assert!(!fixed.moves_with_time());
        assert_eq!(fixed.event_kinds(), Some(vec!["$purchase".to_owned()]));
        for relative in [
            r#"{"created":{"within_last":{"days":7}}}"#,
            r#"{"not":{"field":{"key":"renews","older_than":{"days":1}}}}"#,
            r#"{"any":[{"event":{"type":"$login","when":{"within_last":{"hours":2}}}}]}"#,
            r#"{"event":{"type":"$open","last":{"within_last":{"weeks":2}}}}"#,
        ] {
            assert!(parse(relative).moves_with_time(), "{relative}");
        }
        let two = parse(
            r#"{"any":[{"event":{"type":"$login"}},{"not":{"event":{"type":"$open"}}},
            {"event":{"type":"$login","count":{"at_least":3}}}]}"#,
        );
        assert_eq!(
            two.event_kinds(),
            Some(vec!["$login".to_owned(), "$open".to_owned()])
        );
        assert_eq!(parse(r#"{"subscribed":true}"#).event_kinds(), Some(vec![]));
    }

    #[test]
    fn a_segment_id_is_a_positive_decimal_of_at_most_18_digits() {
        assert_eq!(segment_id("1"), Some(1));
        assert_eq!(segment_id(&"9".repeat(18)), Some(999_999_999_999_999_999));
        for bad in [
            "",
            "0",
            "-1",
            "+1",
            "1.0",
            " 1",
            "1a",
            "1000000000000000000",
        ] {
            assert_eq!(segment_id(bad), None, "{bad:?}");
        }
    }
}
