//! Reading the body of a segment write: `{"segment":{"name","description",
//! "visitor_event_query"}}`, with `site_uuid` allowed beside `segment`.
//!
//! Text that is not JSON is a 400. JSON of the wrong shape is a 422 that lists
//! every problem at once: unknown fields by name, wrong types, and each broken
//! rule. `visitor_event_query` is parsed only to check it against the grammar;
//! what reaches storage is the text exactly as written.

use super::{ApiError, body};
use crate::segment::{Description, FieldErrors, NewSegment, SegmentName, SegmentPatch};
use corral_core::query::{Query, RawQuery};
use serde_json::value::RawValue;

/// The three segment fields as sent, not yet checked.
struct SegmentFields {
    name: Option<Box<RawValue>>,
    description: Option<Box<RawValue>>,
    query: Option<Box<RawValue>>,
    errors: FieldErrors,
}

/// Parses a create body; every field rule is checked.
pub fn new_segment(body: &[u8]) -> Result<NewSegment, ApiError> {
    let SegmentFields {
        name,
        description,
        query,
        mut errors,
    } = segment_fields(body)?;
    let name = match name {
        Some(raw) => parse_name(&raw, &mut errors),
        None => {
            errors.push("name", "can't be blank");
            None
        }
    };
    let description = description.and_then(|raw| parse_description(&raw, &mut errors));
    let query = match query {
        Some(raw) => parse_query(&raw, &mut errors),
        None => {
            errors.push("visitor_event_query", "is required");
            None
        }
    };
    match (name, description, query) {
        (Some(name), description, Some(query)) if errors.is_empty() => Ok(NewSegment {
            name,
            description: description.flatten(),
            query,
        }),
        _ => Err(errors.into()),
    }
}

/// Parses a change body; absent fields stay as they are.
pub fn segment_patch(body: &[u8]) -> Result<SegmentPatch, ApiError> {
    let SegmentFields {
        name,
        description,
        query,
        mut errors,
    } = segment_fields(body)?;
    let patch = SegmentPatch {
        name: name.and_then(|raw| parse_name(&raw, &mut errors)),
        description: description.and_then(|raw| parse_description(&raw, &mut errors)),
        query: query.and_then(|raw| parse_query(&raw, &mut errors)),
    };
    errors.finish(|| patch).map_err(ApiError::from)
}

fn segment_fields(body: &[u8]) -> Result<SegmentFields, ApiError> {
    let (segment, mut errors) = body::wrapped(body, "segment")?;
    let mut segment = body::object(segment.as_deref(), "segment", &mut errors);
    let [name, description, query] = body::take_known(
        &mut segment,
        ["name", "description", "visitor_event_query"],
        &mut errors,
    );
    Ok(SegmentFields {
        name,
        description,
        query,
        errors,
    })
}

fn parse_name(raw: &RawValue, errors: &mut FieldErrors) -> Option<SegmentName> {
    match serde_json::from_str::<Option<String>>(raw.get()) {
        Ok(Some(text)) => SegmentName::parse(&text)
            .map_err(|message| errors.push("name", message))
            .ok(),
        Ok(None) => {
            errors.push("name", "can't be blank");
            None
        }
        Err(_) => {
            errors.push("name", "must be a string");
            None
        }
    }
}

/// `Some(None)` for an explicit `null`, which clears the description.
fn parse_description(raw: &RawValue, errors: &mut FieldErrors) -> Option<Option<Description>> {
    match serde_json::from_str::<Option<String>>(raw.get()) {
        Ok(Some(text)) => Description::parse(&text)
            .map(Some)
            .map_err(|message| errors.push("description", message))
            .ok(),
        Ok(None) => Some(None),
        Err(_) => {
            errors.push("description", "must be a string or null");
            None
        }
    }
}

/// A query as sent: kept verbatim, and parsed to check it fits the grammar.
pub fn checked_query(raw: &RawValue, errors: &mut FieldErrors) -> Option<(RawQuery, Query)> {
    if raw.get() == "null" {
        errors.push("visitor_event_query", "is required");
        return None;
    }
    let query = RawQuery::from_raw_value(raw)
        .map_err(|e| errors.push("visitor_event_query", e.to_string()))
        .ok()?;
    let parsed = crate::segment::check_query(&query, errors)?;
    Some((query, parsed))
}

fn parse_query(raw: &RawValue, errors: &mut FieldErrors) -> Option<RawQuery> {
    checked_query(raw, errors).map(|(raw, _)| raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(result: Result<impl std::fmt::Debug, ApiError>) -> Vec<(String, String)> {
        match result {
            Err(ApiError::Invalid(errors)) => {
                errors.0.into_iter().map(|e| (e.field, e.message)).collect()
            }
            other => panic!("expected 422, got {other:?}"),
        }
    }

    #[test]
    fn reads_a_complete_create_body() {
        let new = new_segment(
            br#"{"site_uuid":"x","segment":{"name":" VIP ","description":"d","visitor_event_query":{"field":{"key":"b","equals":1.10}}}}"#,
        )
        .unwrap();
        assert_eq!(new.name.as_str(), "VIP");
        assert_eq!(new.description.unwrap().as_str(), "d");
        assert_eq!(new.query.as_str(), r#"{"field":{"key":"b","equals":1.10}}"#);
    }

    #[test]
    fn malformed_json_is_not_a_validation_error() {
        assert!(matches!(
            new_segment(b"{\"segment\":"),
            Err(ApiError::MalformedJson(_))
        ));
        assert!(matches!(new_segment(b""), Err(ApiError::MalformedJson(_))));
    }

    #[test]
    fn reports_every_problem_at_once() {
        let errors = invalid(new_segment(
            br#"{"extra":1,"segment":{"name":5,"description":[],"visitor_event_query":[],"colour":"red"}}"#,
        ));
        assert_eq!(
            errors,
            vec![
                ("extra".into(), "is not a known field".into()),
                ("colour".into(), "is not a known field".into()),
                ("name".into(), "must be a string".into()),
                ("description".into(), "must be a string or null".into()),
                ("visitor_event_query".into(), "must be a JSON object".into()),
            ]
        );
    }

    #[test]
    fn create_requires_name_and_query() {
        let errors = invalid(new_segment(br#"{"segment":{}}"#));
        assert_eq!(
            errors,
            vec![
                ("name".into(), "can't be blank".into()),
                ("visitor_event_query".into(), "is required".into()),
            ]
        );
        assert_eq!(
            invalid(new_segment(b"{}")),
            vec![
                ("segment".into(), "is required".into()),
                ("name".into(), "can't be blank".into()),
                ("visitor_event_query".into(), "is required".into()),
            ]
        );
        assert_eq!(
            invalid(new_segment(b"[1]")),
            vec![("body".into(), "must be a JSON object".into())]
        );
    }

    #[test]
    fn patch_distinguishes_absent_from_null() {
        let patch = segment_patch(br#"{"segment":{"description":null}}"#).unwrap();
        assert!(patch.name.is_none() && patch.query.is_none());
        assert_eq!(patch.description, Some(None));
        let patch = segment_patch(br#"{"segment":{}}"#).unwrap();
        assert!(patch.description.is_none());
        assert_eq!(
            invalid(segment_patch(
                br#"{"segment":{"name":null,"visitor_event_query":null}}"#
            )),
            vec![
                ("name".into(), "can't be blank".into()),
                ("visitor_event_query".into(), "is required".into()),
            ]
        );
    }
}
