//! The overlap of segments on the wire: the body of
//! `POST /api/v1/stats/overlap` (`{"segment_ids":["1","2","3"]}`) and its
//! answer, every region of the segments' Venn diagram with who is in and
//! out of it and how many members it holds, with the union and the
//! intersection. `corral segment overlap --json` prints the same.

use super::body::{self, BodyError, Given};
use super::strings::SiteUuidText;
use crate::segment::{FieldErrors, SegmentId};
use crate::service::overlap::{FIELD, MAX_SEGMENTS, MIN_SEGMENTS, Overlap};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The segments to compare.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OverlapRequest {
    /// Sent by the Node SDK; may instead be in the query string.
    #[serde(default)]
    #[schema(value_type = Option<SiteUuidText>, nullable = false)]
    pub site_uuid: Given,
    #[serde(default)]
    #[schema(schema_with = segment_ids_schema, required = true)]
    pub segment_ids: Given,
}

/// `segment_ids`: 2 to 5 segment ids, none twice.
fn segment_ids_schema() -> utoipa::openapi::schema::Array {
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(utoipa::openapi::Ref::from_schema_name("SegmentIdText"))
        .min_items(Some(MIN_SEGMENTS))
        .max_items(Some(MAX_SEGMENTS))
        .unique_items(true)
        .description(Some(
            "2 to 5 kept segments of this site, each named once; the regions name them \
             in this order.",
        ))
        .examples([serde_json::json!(["1", "2", "3"])])
        .build()
}

/// Reads the body: the segments' ids, in the order given. How many there
/// are, and whether one is named twice, the service checks.
pub fn overlap_request(bytes: &[u8]) -> Result<Vec<SegmentId>, BodyError> {
    let (request, mut errors): (OverlapRequest, FieldErrors) = body::read(bytes)?;
    let ids = request
        .segment_ids
        .required::<Vec<serde_json::Value>>(FIELD, "list of segment ids", &mut errors)
        .unwrap_or_default();
    let mut parsed = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        match id.as_str().and_then(SegmentId::parse) {
            Some(id) => parsed.push(id),
            None => errors.push(
                format!("{FIELD}/{i}"),
                "must be a segment id (a positive whole number, as a string)",
            ),
        }
    }
    errors.finish(|| parsed).map_err(BodyError::from)
}

/// One region of the diagram: the members of every segment of `in` who are
/// in none of `out`.
#[derive(Debug, Serialize, ToSchema)]
pub struct OverlapRegion {
    #[serde(rename = "in")]
    #[schema(example = json!(["1", "2"]))]
    pub inside: Vec<String>,
    #[schema(example = json!(["3"]))]
    pub out: Vec<String>,
    /// Subscribers in the region now.
    pub user_count: u64,
}

/// How the segments' members overlap, now.
#[derive(Debug, Serialize, ToSchema)]
pub struct OverlapResult {
    /// The segments compared, as named in the request.
    pub segment_ids: Vec<String>,
    /// All 2^k − 1 regions (k segments): by how many segments they are in,
    /// then by which, in the order of `segment_ids`; the last is the
    /// intersection.
    pub regions: Vec<OverlapRegion>,
    /// Members of at least one of the segments.
    pub union: u64,
    /// Members of all of them.
    pub intersection: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OverlapEnvelope {
    pub data: OverlapResult,
}

/// `{"data": …}` as the API answers it.
pub fn overlap_body(overlap: &Overlap) -> OverlapEnvelope {
    let names = |ids: &[SegmentId]| ids.iter().map(SegmentId::to_string).collect();
    OverlapEnvelope {
        data: OverlapResult {
            segment_ids: names(&overlap.segment_ids),
            regions: overlap
                .regions
                .iter()
                .map(|r| OverlapRegion {
                    inside: names(&r.inside),
                    out: names(&r.outside),
                    user_count: r.user_count,
                })
                .collect(),
            union: overlap.union,
            intersection: overlap.intersection,
        },
    }
}
