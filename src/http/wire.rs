//! Bento's wire shapes: the `data` envelope, a segment as a JSON:API-like
//! resource, and the two error bodies. The CLI's `--json` output uses the same
//! functions, so it matches the API byte for byte.
//!
//! A segment on the wire:
//!
//! ```json
//! {"id":"42","type":"segments","attributes":{"name":"VIP","description":null,
//!  "visitor_event_query":{},"created_at":"2026-11-26T09:00:00.000Z",
//!  "updated_at":"2026-11-26T09:00:00.000Z"}}
//! ```
//!
//! Discarded segments (only ever shown by Corral's own routes) carry one more
//! attribute, `discarded_at`.

use crate::clock::format_ms;
use crate::segment::{FieldError, Segment};
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::Serialize;
use serde_json::value::RawValue;
use utoipa::ToSchema;

/// The content type of every body Corral sends, as Rails sends it.
pub const JSON_CONTENT_TYPE: &str = "application/json; charset=utf-8";

/// `{"error":"Message"}`
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    #[schema(example = "Segment not found")]
    pub error: String,
}

/// `{"errors":[{"field":"name","message":"has already been taken"}]}`
#[derive(Debug, Serialize, ToSchema)]
pub struct ValidationErrorBody {
    pub errors: Vec<FieldError>,
}

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

fn to_json(value: &impl Serialize) -> Vec<u8> {
    // Serializing these plain structs cannot fail.
    serde_json::to_vec(value).expect("wire types serialize")
}

/// A JSON response with Rails' content type.
pub fn json_response(status: StatusCode, value: &impl Serialize) -> Response {
    bytes_response(status, to_json(value))
}

/// A response carrying already-serialized JSON.
pub fn bytes_response(status: StatusCode, body: impl Into<Body>) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(JSON_CONTENT_TYPE),
    );
    response
}
