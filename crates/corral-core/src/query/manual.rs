//! Hand-made includes and excludes of a saved segment: its members are
//! `(the query's members ∪ includes) ∖ excludes`, an exclude winning over an
//! include.
//!
//! The audience holds them as two hidden tags a segment
//! ([`include_tag`], [`exclude_tag`]), whose names begin with a control
//! character that no tag name may hold, so no tag of a user's can be one of
//! them and no route that lists tags sees them. A saved segment's query is
//! evaluated [`wrapped`]: every evaluator (members, counts, references from
//! other segments, the journal, explain) then sees the hand-made part
//! without knowing of it, and [`unwrapped`] gives the query as saved back.

use super::ast::{Condition, Query, TagTest};

/// The first character of the hidden tags' names.
const HIDDEN: char = '\u{1}';

/// The hidden tag of the subscribers included by hand in segment `id`.
pub fn include_tag(id: i64) -> String {
    format!("{HIDDEN}include:{id}")
}

/// The hidden tag of the subscribers excluded by hand from segment `id`.
pub fn exclude_tag(id: i64) -> String {
    format!("{HIDDEN}exclude:{id}")
}

/// Whether a tag name is one of the hidden tags of includes and excludes.
pub fn is_hidden_tag(name: &str) -> bool {
    name.starts_with(HIDDEN)
}

fn has(tag: String) -> Condition {
    Condition::Tag(TagTest {
        has: Some(tag),
        ..TagTest::default()
    })
}

/// Segment `id`'s query as it is evaluated: `all[any[query, included], not
/// excluded]`. A foreign query stays foreign (it is never evaluated).
pub fn wrapped(query: Query, id: i64) -> Query {
    match query {
        Query::Foreign => Query::Foreign,
        Query::Condition(c) => Query::Condition(Box::new(Condition::All(vec![
            Condition::Any(vec![*c, has(include_tag(id))]),
            Condition::Not(Box::new(has(exclude_tag(id)))),
        ]))),
    }
}

/// The query as saved inside a [`wrapped`] one, with the segment's id; the
/// query itself and `None` when it is not wrapped.
pub fn unwrapped(query: &Query) -> (&Condition, Option<i64>) {
    let Query::Condition(c) = query else {
        static NOTHING: Condition = Condition::Any(Vec::new());
        return (&NOTHING, None);
    };
    if let Condition::All(parts) = &**c
        && let [Condition::Any(either), Condition::Not(not)] = &parts[..]
        && let [inner, Condition::Tag(include)] = &either[..]
        && let Condition::Tag(exclude) = &**not
        && let (Some(include), Some(exclude)) = (&include.has, &exclude.has)
        && let Some(id) = include
            .strip_prefix(HIDDEN)
            .and_then(|s| s.strip_prefix("include:"))
            .and_then(|s| s.parse::<i64>().ok())
        && *exclude == exclude_tag(id)
    {
        return (inner, Some(id));
    }
    (c, None)
}

/// A saved segment's query text, parsed and [`wrapped`].
pub fn parse_saved(text: &str, id: i64) -> Result<Query, Vec<super::Problem>> {
    super::parse(text).map(|q| wrapped(q, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrapped_query_unwraps_to_the_query_as_saved() {
        let query = super::super::parse(r#"{"tag":{"has":"vip"}}"#).unwrap();
        let Query::Condition(saved) = query.clone() else {
            unreachable!()
        };
        let wrapped = wrapped(query, 42);
        let (inner, id) = unwrapped(&wrapped);
        assert_eq!(id, Some(42));
        assert_eq!(inner, &*saved);
        // A query that is not wrapped comes back as it is.
        let Query::Condition(plain) = &wrapped else {
            unreachable!()
        };
        let not_wrapped = Query::Condition(Box::new(Condition::All(vec![(**plain).clone()])));
        assert_eq!(unwrapped(&not_wrapped).1, None);
        assert!(matches!(wrapped_foreign(), Query::Foreign));
    }

    fn wrapped_foreign() -> Query {
        wrapped(Query::Foreign, 1)
    }

    #[test]
    fn hidden_tags_are_no_tag_name_a_user_can_give() {
        for name in [include_tag(7), exclude_tag(7)] {
            assert!(is_hidden_tag(&name));
            assert!(crate::audience::TagName::parse(&name).is_err());
            assert!(crate::audience::TagName::referenced(&name).is_err());
        }
        assert!(!is_hidden_tag("vip"));
    }
}
