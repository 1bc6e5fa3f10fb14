//! Membership history over HTTP (Corral's), read from the journal: a
//! segment's size over time (`GET /api/v1/stats/segment/history`), its
//! changes feed (`GET /api/v1/fetch/segments/{id}/changes`), and, in
//! [`super::evaluation::members`], its members at an instant (`?at=`).
//! Every route is scoped by the caller's site: another site's segment is
//! not found.

use super::extract::{QueryParams, SegmentPath};
use super::respond::bytes_response;
use super::{ApiError, AppState, Caller};
use crate::segment::{FieldError, SegmentId};
use crate::wire::history::{
    ChangesEnvelope, HistoryEnvelope, changes_body, changes_cursor, changes_query, history_body,
    history_query,
};
use crate::wire::strings::SegmentIdText;
use crate::wire::{ErrorBody, ValidationErrorBody};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    /// The segment's id (required).
    #[param(value_type = SegmentIdText, required = true)]
    segment_id: Option<String>,
    /// The series' start (ISO 8601 with a time zone); default `to` less 30
    /// days.
    #[param(value_type = Option<String>, format = DateTime)]
    from: Option<String>,
    /// The series' end; default now.
    #[param(value_type = Option<String>, format = DateTime)]
    to: Option<String>,
    /// `minute`, `hour`, `day` (default), `week` (from Monday) or `month`;
    /// at most 1,000 points.
    #[param(value_type = Option<String>, pattern = "^(minute|hour|day|week|month)$")]
    interval: Option<String>,
}

/// A segment's size over time, from its journal.
///
/// Corral extension. One point per interval from `from` to `to` (UTC
/// boundaries), starting no earlier than the interval holding
/// `meta.history_begins_at`: `members` as at the end of the interval (at
/// `to` for the last), `added` and `removed` within it. Exact to the
/// commit: every join and leave is recorded when the write that caused it
/// commits. A discarded segment keeps its history.
#[utoipa::path(get, path = "/api/v1/stats/segment/history", tag = "history",
    params(HistoryParams),
    responses(
        (status = 200, description = "The series", body = HistoryEnvelope),
        (status = 404, description = "No such segment on this site", body = ErrorBody),
        (status = 422, description = "No segment_id, a bad instant or interval, or more than 1,000 points", body = ValidationErrorBody),
    ),
    security(("basic" = [])))]
pub async fn series(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(params): QueryParams<HistoryParams>,
) -> Result<Response, ApiError> {
    let id = params
        .segment_id
        .ok_or_else(|| ApiError::Invalid(FieldError::new("segment_id", "is required").into()))?;
    let id = SegmentId::parse(&id).ok_or(ApiError::SegmentNotFound)?;
    let (from, to, interval) = history_query(
        params.from.as_deref(),
        params.to.as_deref(),
        params.interval.as_deref(),
        state.clock.now_ms(),
    )
    .map_err(ApiError::Invalid)?;
    let series = crate::service::history::series(
        state.store.as_ref(),
        caller.site_id,
        id,
        from,
        to,
        interval,
    )
    .await?;
    Ok(bytes_response(StatusCode::OK, history_body(&series)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChangesParams {
    /// Transitions at or after this instant (ISO 8601 with a time zone).
    #[param(value_type = Option<String>, format = DateTime)]
    since: Option<String>,
    /// `meta.next_cursor` of the previous page: transitions after it.
    after: Option<String>,
    /// Transitions per page, 1 to 1,000 (default 100).
    #[param(value_type = Option<u16>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
}

/// A segment's joins and leaves, in commit order.
///
/// Corral extension. Each is exactly the object a webhook notification
/// carries (`event_id`, `type`, `occurred_at`, `reason`, `segment`,
/// `subscriber`). Resume from `meta.next_cursor` (as `after`): a consumer
/// that cannot receive webhooks polls this without gaps or repeats.
#[utoipa::path(get, path = "/api/v1/fetch/segments/{id}/changes", tag = "history",
    params(("id" = SegmentIdText, Path, description = "The segment's id"), ChangesParams),
    responses(
        (status = 200, description = "One page of transitions", body = ChangesEnvelope),
        (status = 404, description = "No such segment on this site", body = ErrorBody),
        (status = 422, description = "A bad since, after or limit, or both since and after", body = ValidationErrorBody),
    ),
    security(("basic" = [])))]
pub async fn changes(
    State(state): State<AppState>,
    caller: Caller,
    SegmentPath(id): SegmentPath,
    QueryParams(params): QueryParams<ChangesParams>,
) -> Result<Response, ApiError> {
    let (from, limit) = changes_query(
        params.since.as_deref(),
        params.after.as_deref(),
        params.limit.as_deref(),
    )
    .map_err(ApiError::Invalid)?;
    let (segment, changes, next) =
        crate::service::history::changes(state.store.as_ref(), caller.site_id, id, from, limit)
            .await?;
    let next = next.map(|(at, id)| changes_cursor(at, id));
    Ok(bytes_response(
        StatusCode::OK,
        changes_body(&segment, &changes, next),
    ))
}
