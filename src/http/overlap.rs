//! `POST /api/v1/stats/overlap`: how the members of 2 to 5 kept segments
//! overlap now, every region of their Venn diagram counted exactly and live
//! ([`crate::service::overlap`]). A stats route like Bento's segment stats:
//! the same authentication, `site_uuid` and hourly rate limit.

use super::respond::json_response;
use super::{ApiError, AppState, Caller};
use crate::service::overlap::{self, OverlapError};
use crate::wire::overlap::{OverlapEnvelope, OverlapRequest, overlap_body, overlap_request};
use crate::wire::{ErrorBody, ValidationErrorBody};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

impl From<OverlapError> for ApiError {
    fn from(error: OverlapError) -> Self {
        match error {
            OverlapError::SegmentNotFound(_) => Self::SegmentNotFound,
            OverlapError::Invalid(errors) => Self::Invalid(errors),
            OverlapError::Live(e) => e.into(),
        }
    }
}

/// How several segments' members overlap, now.
///
/// Corral extension. For k segments (2 to 5), all 2^k − 1 regions of their
/// Venn diagram: the members of the segments in `in` who are in none of
/// `out`, by how many segments they are in, then by which (in the order
/// named); the last is the intersection. Counted on the data as it is when
/// the request arrives, the segments evaluated together.
#[utoipa::path(post, path = "/api/v1/stats/overlap", tag = "evaluation",
    request_body = OverlapRequest,
    responses(
        (status = 200, description = "Every region of the segments' Venn diagram", body = OverlapEnvelope),
        (status = 404, description = "A segment that is not a kept segment of this site", body = ErrorBody),
        (status = 422, description = "Fewer than 2 or more than 5 segments, one named twice, or one that cannot be evaluated", body = ValidationErrorBody),
    ),
    security(("basic" = [])))]
pub async fn overlap(
    State(state): State<AppState>,
    caller: Caller,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let ids = overlap_request(&bytes)?;
    let overlap = overlap::overlap(
        state.store.as_ref(),
        &state.live,
        caller.site_id,
        &ids,
        state.clock.now_ms(),
    )
    .await?;
    Ok(json_response(StatusCode::OK, &overlap_body(&overlap)))
}
