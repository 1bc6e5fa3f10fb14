//! A segment on the wire: the JSON:API-like resource of Bento's Segments API,
//! its envelopes, and the bodies of Corral's segment writes.
//!
//! ```json
//! {"id":"42","type":"segments","attributes":{"name":"VIP","description":null,
//!  "visitor_event_query":{},"created_at":"2026-11-26T09:00:00.000Z",
//!  "updated_at":"2026-11-26T09:00:00.000Z"}}
//! ```
//!
//! Discarded segments (only ever shown by Corral's own routes) carry one more
//! attribute, `discarded_at`. A write's body, `{"segment":{"name",
//! "description","visitor_event_query"}}` (with `site_uuid` allowed beside
//! `segment`), is read into a [`SegmentDraft`] whose rules the segment
//! service checks; what reaches storage of the query is the text exactly as
//! written.

use super::body::{self, BodyError, Given};
use super::strings::{Name, SiteUuidText, VisitorEventQuery};
use super::to_json;
use crate::clock::format_ms;
use crate::segment::{FieldErrors, Listing, QUERY_FIELD, Segment};
use crate::service::segments::{Input, SegmentDraft};
use corral_core::query::{Query, RawQuery};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

/// One segment in Bento's resource shape.
#[derive(Debug, Serialize, ToSchema)]
pub struct SegmentResource {
    /// The segment's id, always a string.
    #[schema(example = "42")]
    pub id: String,
    /// Always `segments`.
    #[serde(rename = "type")]
    #[schema(example = "segments")]
    pub kind: &'static str,
    pub attributes: SegmentAttributes,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SegmentAttributes {
    #[schema(example = "VIP customers")]
    pub name: String,
    /// `null` when the segment has none.
    pub description: Option<String>,
    /// The saved query, exactly as it was written.
    #[schema(value_type = Object)]
    pub visitor_event_query: Box<RawValue>,
    #[schema(example = "2026-11-26T09:00:00.000Z")]
    pub created_at: String,
    #[schema(example = "2026-11-26T09:00:00.000Z")]
    pub updated_at: String,
    /// When the segment was discarded; present only on discarded segments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discarded_at: Option<String>,
}

/// `{"data":{…}}`
#[derive(Debug, Serialize, ToSchema)]
pub struct SegmentEnvelope {
    pub data: SegmentResource,
}

/// `{"data":[…]}`
#[derive(Debug, Serialize, ToSchema)]
pub struct SegmentListEnvelope {
    pub data: Vec<SegmentResource>,
}

impl From<&Segment> for SegmentResource {
    fn from(segment: &Segment) -> Self {
        Self {
            id: segment.id.to_string(),
            kind: "segments",
            attributes: SegmentAttributes {
                name: segment.name.clone(),
                description: segment.description.clone(),
                visitor_event_query: segment.query.to_raw_value(),
                created_at: format_ms(segment.created_at),
                updated_at: format_ms(segment.updated_at),
                discarded_at: segment.discarded_at.map(format_ms),
            },
        }
    }
}

/// `{"data":{…}}` for one segment, as bytes.
pub fn segment_body(segment: &Segment) -> Vec<u8> {
    to_json(&SegmentEnvelope {
        data: segment.into(),
    })
}

/// `{"data":[…]}` for a list of segments, as bytes.
pub fn segment_list_body(segments: &[Segment]) -> Vec<u8> {
    to_json(&SegmentListEnvelope {
        data: segments.iter().map(SegmentResource::from).collect(),
    })
}

/// Which segments a list holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum SegmentState {
    Kept,
    Discarded,
}

impl SegmentState {
    /// `kept` or `discarded`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "kept" => Some(Self::Kept),
            "discarded" => Some(Self::Discarded),
            _ => None,
        }
    }
}

impl From<SegmentState> for Listing {
    fn from(state: SegmentState) -> Self {
        match state {
            SegmentState::Kept => Listing::Kept,
            SegmentState::Discarded => Listing::Discarded,
        }
    }
}

/// `{"segment":{…}}` for a create.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSegmentRequest {
    /// Sent by the Node SDK; may instead be in the query string.
    #[serde(default)]
    #[schema(value_type = Option<SiteUuidText>, nullable = false)]
    pub site_uuid: Given,
    #[serde(default)]
    #[schema(value_type = CreateSegmentFields, required = true)]
    pub segment: Given,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSegmentFields {
    /// Unique among the site's kept segments, ignoring case.
    #[serde(default)]
    #[schema(value_type = Name, required = true)]
    pub name: Given,
    /// At most 2,000 characters, no control characters but line breaks and
    /// tabs, no invisible or direction-changing ones; `null` or absent for
    /// none.
    #[serde(default)]
    #[schema(
        value_type = Option<String>,
        max_length = 2000,
        pattern = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\xad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]*$"
    )]
    pub description: Given,
    /// A JSON object of at most 64 KiB (compact form), kept exactly as
    /// written: `{}` (everyone), `{"foreign": …}` (any JSON, never
    /// evaluated), or one condition of the query language, whose JSON Schema
    /// is served at `/api/query-language.schema.json`.
    #[serde(default)]
    #[schema(value_type = VisitorEventQuery, required = true)]
    pub visitor_event_query: Given,
}

/// `{"segment":{…}}` for a change: fields left out stay as they are.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSegmentRequest {
    /// Sent by the Node SDK; may instead be in the query string.
    #[serde(default)]
    #[schema(value_type = Option<SiteUuidText>, nullable = false)]
    pub site_uuid: Given,
    #[serde(default)]
    #[schema(value_type = UpdateSegmentFields, required = true)]
    pub segment: Given,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSegmentFields {
    /// Unique among the site's kept segments, ignoring case.
    #[serde(default)]
    #[schema(value_type = Option<Name>, nullable = false, required = false)]
    pub name: Given,
    /// At most 2,000 characters; `null` clears it.
    #[serde(default)]
    #[schema(
        value_type = Option<String>,
        max_length = 2000,
        pattern = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\xad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]*$"
    )]
    pub description: Given,
    /// As on create.
    #[serde(default)]
    #[schema(value_type = Option<VisitorEventQuery>, nullable = false, required = false)]
    pub visitor_event_query: Given,
}

/// Reads a create body into a draft for the segment service.
pub fn new_segment(bytes: &[u8]) -> Result<SegmentDraft, BodyError> {
    read_draft::<CreateSegmentRequest, CreateSegmentFields>(
        bytes,
        |request| &request.segment,
        |f| [&f.name, &f.description, &f.visitor_event_query],
    )
}

/// Reads a change body into a draft for the segment service; absent fields
/// stay as they are.
pub fn segment_patch(bytes: &[u8]) -> Result<SegmentDraft, BodyError> {
    read_draft::<UpdateSegmentRequest, UpdateSegmentFields>(
        bytes,
        |request| &request.segment,
        |f| [&f.name, &f.description, &f.visitor_event_query],
    )
}

/// `{"segment":{…}}` read as the request type `R` whose `segment` is of type
/// `F`: the name, description and query as sent.
fn read_draft<R: DeserializeOwned, F: DeserializeOwned + Default>(
    bytes: &[u8],
    segment: fn(&R) -> &Given,
    fields: fn(&F) -> [&Given; 3],
) -> Result<SegmentDraft, BodyError> {
    let (request, mut errors) = body::read::<R>(bytes)?;
    let segment = segment(&request);
    if segment.raw().is_none() {
        errors.push("segment", "is required");
    }
    let read: F = body::nested(segment, "segment", &mut errors);
    let [name, description, query] = fields(&read);
    Ok(draft(errors, name, description, query))
}

fn draft(errors: FieldErrors, name: &Given, description: &Given, query: &Given) -> SegmentDraft {
    SegmentDraft {
        errors,
        name: name.raw().map(
            |raw| match serde_json::from_str::<Option<String>>(raw.get()) {
                Ok(Some(text)) => Ok(text),
                Ok(None) => Err("can't be blank".into()),
                Err(_) => Err("must be a string".into()),
            },
        ),
        description: description.raw().map(|raw| {
            serde_json::from_str(raw.get()).map_err(|_| "must be a string or null".into())
        }),
        query: query_input(query),
    }
}

/// A query as sent, kept verbatim: `null` is "is required", and one that is
/// not a JSON object of at most 64 KiB says why.
pub fn query_input(given: &Given) -> Input<RawQuery> {
    given.raw().map(|raw| {
        if raw.get() == "null" {
            return Err("is required".into());
        }
        RawQuery::from_raw_value(raw).map_err(|e| e.to_string())
    })
}

/// A query that must be given and fit the grammar (an unsaved one, as a
/// preview sends it): kept verbatim, and parsed; problems go to `errors`.
pub fn checked_query(given: &Given, errors: &mut FieldErrors) -> Option<(RawQuery, Query)> {
    match query_input(given) {
        None => {
            errors.push(QUERY_FIELD, "is required");
            None
        }
        Some(Err(message)) => {
            errors.push(QUERY_FIELD, message);
            None
        }
        Some(Ok(raw)) => {
            let parsed = crate::segment::check_query(&raw, errors)?;
            Some((raw, parsed))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::FieldError;

    fn invalid(result: Result<SegmentDraft, BodyError>) -> Vec<FieldError> {
        match result {
            Err(BodyError::Invalid(errors)) => errors.0,
            Ok(draft) => draft.errors.0,
            Err(other) => panic!("expected problems, got {other:?}"),
        }
    }

    #[test]
    fn reads_a_complete_create_body_verbatim() {
        let draft = new_segment(
            br#"{"site_uuid":"x","segment":{"name":" VIP ","description":"d","visitor_event_query":{"field":{"key":"b","equals":1.10}}}}"#,
        )
        .unwrap();
        assert!(draft.errors.is_empty());
        assert_eq!(draft.name, Some(Ok(" VIP ".into())));
        assert_eq!(draft.description, Some(Ok(Some("d".into()))));
        let query = draft.query.unwrap().unwrap();
        assert_eq!(query.as_str(), r#"{"field":{"key":"b","equals":1.10}}"#);
    }

    #[test]
    fn malformed_json_is_not_a_validation_error() {
        assert!(matches!(
            new_segment(b"{\"segment\":"),
            Err(BodyError::Malformed(_))
        ));
        assert!(matches!(new_segment(b""), Err(BodyError::Malformed(_))));
    }

    #[test]
    fn unknown_keys_come_first_then_each_field_says_what_it_must_be() {
        let draft = new_segment(
            br#"{"extra":1,"segment":{"name":5,"description":[],"visitor_event_query":[],"colour":"red"}}"#,
        )
        .unwrap();
        assert_eq!(
            draft.errors.0,
            vec![
                FieldError::new("extra", "is not a known field"),
                FieldError::new("colour", "is not a known field"),
            ]
        );
        assert_eq!(draft.name, Some(Err("must be a string".into())));
        assert_eq!(
            draft.description,
            Some(Err("must be a string or null".into()))
        );
        assert_eq!(draft.query, Some(Err("must be a JSON object".into())));
    }

    #[test]
    fn a_missing_or_shapeless_segment_is_named() {
        assert_eq!(
            invalid(new_segment(b"{}")),
            vec![FieldError::new("segment", "is required")]
        );
        assert_eq!(
            invalid(new_segment(br#"{"segment":null}"#)),
            vec![FieldError::new("segment", "must be a JSON object")]
        );
        assert_eq!(
            invalid(new_segment(b"[1]")),
            vec![FieldError::new("body", "must be a JSON object")]
        );
    }

    #[test]
    fn patch_distinguishes_absent_from_null() {
        let draft = segment_patch(br#"{"segment":{"description":null}}"#).unwrap();
        assert!(draft.name.is_none() && draft.query.is_none());
        assert_eq!(draft.description, Some(Ok(None)));
        let draft = segment_patch(br#"{"segment":{}}"#).unwrap();
        assert!(draft.description.is_none());
        let draft =
            segment_patch(br#"{"segment":{"name":null,"visitor_event_query":null}}"#).unwrap();
        assert_eq!(draft.name, Some(Err("can't be blank".into())));
        assert_eq!(draft.query, Some(Err("is required".into())));
    }
}
