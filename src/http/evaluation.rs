//! Live evaluation over HTTP: Bento's segment stats, and Corral's match
//! (with the reason), members (paged by a stable cursor) and preview of an
//! unsaved query. Every answer is computed against the data as it is when
//! the request arrives ([`crate::live`]); relative times count from the
//! request's clock.

use super::extract::{QueryParams, SegmentPath};
use super::respond::json_response;
use super::{ApiError, AppState, Caller};
use crate::segment::{FieldError, QUERY_FIELD, SegmentId};
use crate::service::Evaluations;
use crate::wire::audience::SubscriberResource;
use crate::wire::evaluation::{
    MatchEnvelope, MatchRequest, MatchResult, MembersMeta, MembersPage, Preview, PreviewEnvelope,
    PreviewRequest,
};
use crate::wire::segments::checked_query;
use crate::wire::strings::SegmentIdText;
use crate::wire::{ErrorBody, ValidationErrorBody};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use corral_core::audience::{AudienceCounts, Email, Subscriber};
use serde::Deserialize;

/// Members per page when `limit` is not given, and the most allowed.
pub(super) const DEFAULT_PAGE: usize = 100;
pub(super) const MAX_PAGE: usize = 1_000;
/// Sample size of a preview when `sample` is not given, and the most allowed.
const DEFAULT_SAMPLE: usize = 10;
const MAX_SAMPLE: usize = 100;

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::Invalid(FieldError::new(field, message).into())
}

/// The evaluation service over the server's store and snapshots.
pub(super) fn evaluations(state: &AppState) -> Evaluations<'_> {
    Evaluations::new(state.store.as_ref(), &state.live)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SegmentStatsParams {
    /// The segment's id (required: without it the answer is a 422).
    #[param(value_type = SegmentIdText, required = true)]
    segment_id: Option<String>,
}

/// Counts of a segment's members, flat (no envelope), as of now.
///
/// Bento: Stats → Segment stats. `user_count` is every member,
/// `subscriber_count` the subscribed ones, `unsubscriber_count` the others.
#[utoipa::path(get, path = "/api/v1/stats/segment", tag = "evaluation",
    params(SegmentStatsParams),
    responses(
        (status = 200, description = "Counts of the members", body = AudienceCounts),
        (status = 404, description = "No such kept segment on this site", body = ErrorBody),
        (status = 422, description = "No `segment_id`, or the query cannot be evaluated", body = ValidationErrorBody),
    ),
    security(("basic" = [])))]
pub async fn segment_stats(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(params): QueryParams<SegmentStatsParams>,
) -> Result<Response, ApiError> {
    let id = params
        .segment_id
        .ok_or_else(|| invalid("segment_id", "is required"))?;
    let id = SegmentId::parse(&id).ok_or(ApiError::SegmentNotFound)?;
    let evaluation = evaluations(&state)
        .segment(caller.site_id, id, state.clock.now_ms())
        .await?;
    Ok(json_response(StatusCode::OK, &evaluation.counts()))
}

/// Whether a subscriber is in a segment, and why.
///
/// Corral extension. The body names the subscriber by `email` or `uuid`. The
/// answer gives the outcome of every condition and group, each with the JSON
/// pointer of the condition in the query and the facts it was decided on.
#[utoipa::path(post, path = "/api/v1/fetch/segments/{id}/match", tag = "evaluation",
    params(("id" = SegmentIdText, Path, description = "The segment's id")),
    request_body = MatchRequest,
    responses(
        (status = 200, description = "The outcome and its reasons", body = MatchEnvelope),
        (status = 404, description = "No such kept segment, or no such subscriber, on this site", body = ErrorBody),
        (status = 422, description = "No email or uuid, or the query cannot be evaluated", body = ValidationErrorBody),
    ),
    security(("basic" = [])))]
pub async fn match_subscriber(
    State(state): State<AppState>,
    caller: Caller,
    SegmentPath(id): SegmentPath,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let (request, mut errors) = MatchRequest::read(&bytes)?;
    let email = request
        .email
        .optional::<String>("email", "string", &mut errors);
    let uuid = request
        .uuid
        .optional::<String>("uuid", "string", &mut errors);
    let who = match (email, uuid) {
        (Some(_), Some(_)) => {
            errors.push("email", "and uuid: give one, not both");
            None
        }
        (Some(email), None) => match Email::parse(&email) {
            Ok(email) => Some(Ok(email)),
            Err(m) => {
                errors.push("email", m);
                None
            }
        },
        (None, Some(uuid)) => Some(Err(uuid.trim().to_owned())),
        (None, None) => {
            if errors.is_empty() {
                errors.push("email", "or uuid is required");
            }
            None
        }
    };
    errors.finish(|| ())?;
    // The segment first: an unknown segment is told before an unknown
    // subscriber.
    evaluations(&state).saved_query(caller.site_id, id).await?;
    let subscriber = match who {
        Some(Ok(email)) => {
            state
                .store
                .subscriber_by_email(caller.site_id, &email)
                .await?
        }
        Some(Err(uuid)) => {
            state
                .store
                .subscriber_by_uuid(caller.site_id, &uuid)
                .await?
        }
        None => None,
    }
    .ok_or(ApiError::SubscriberNotFound)?;
    let explanation = evaluations(&state)
        .explain_segment(caller.site_id, id, subscriber.id, state.clock.now_ms())
        .await?
        .ok_or(ApiError::SubscriberNotFound)?;
    Ok(json_response(
        StatusCode::OK,
        &MatchEnvelope {
            data: MatchResult {
                segment_id: id.to_string(),
                matched: explanation.matched,
                subscriber: SubscriberResource::from(&subscriber),
                manual: explanation.manual.map(|m| m.as_str()),
                explanation: explanation.root,
            },
        },
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MembersParams {
    /// Members per page, 1 to 1,000 (default 100).
    #[param(value_type = Option<u16>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    /// `meta.next_cursor` of the previous page; absent for the first.
    cursor: Option<String>,
    /// The members at this instant (ISO 8601 with a time zone), from the
    /// segment's journal, rather than now; before its history begins is a
    /// 422 that says when it begins.
    #[param(value_type = Option<String>, format = DateTime)]
    at: Option<String>,
}

/// A cursor: the last subscriber id of a page, opaque to clients.
pub(super) fn encode_cursor(after: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("after:{after}"))
}

/// The subscriber a `cursor` parameter continues after (none: the first
/// page); one this API did not give out is a 422 naming it.
pub(super) fn cursor_param(cursor: Option<&str>) -> Result<Option<i64>, ApiError> {
    match cursor {
        None | Some("") => Ok(None),
        Some(c) => decode_cursor(c).map(Some).ok_or_else(|| {
            invalid(
                "cursor",
                "is not a cursor this API gave out (use meta.next_cursor)",
            )
        }),
    }
}

fn decode_cursor(cursor: &str) -> Option<i64> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    let text = std::str::from_utf8(&bytes).ok()?;
    text.strip_prefix("after:")?.parse().ok()
}

pub(super) fn parse_count(
    text: Option<&str>,
    field: &str,
    default: usize,
    max: usize,
    min: usize,
) -> Result<usize, ApiError> {
    crate::wire::whole_number(text, default, min, max).map_err(|m| invalid(field, m))
}

/// The members of a segment, in a stable order, a page at a time.
///
/// Corral extension. Members come in subscriber order; `meta.next_cursor`
/// continues after the last one. The cursor names a position, not a page
/// number, so it stays valid however the audience changes: each page is
/// evaluated afresh, and a subscriber who joins or leaves the segment between
/// pages is or is not on the pages still to come. With `at`, the members at
/// that instant as the segment's journal recorded them (a discarded
/// segment's too); those pages never change.
#[utoipa::path(get, path = "/api/v1/fetch/segments/{id}/members", tag = "evaluation",
    params(("id" = SegmentIdText, Path, description = "The segment's id"), MembersParams),
    responses(
        (status = 200, description = "One page of members", body = MembersPage),
        (status = 404, description = "No such kept segment on this site", body = ErrorBody),
        (status = 422, description = "A bad limit or cursor, or the query cannot be evaluated", body = ValidationErrorBody),
    ),
    security(("basic" = [])))]
pub async fn members(
    State(state): State<AppState>,
    caller: Caller,
    SegmentPath(id): SegmentPath,
    QueryParams(params): QueryParams<MembersParams>,
) -> Result<Response, ApiError> {
    let limit = parse_count(params.limit.as_deref(), "limit", DEFAULT_PAGE, MAX_PAGE, 1)?;
    let after = cursor_param(params.cursor.as_deref())?;
    if let Some(at) = params.at.as_deref().filter(|at| !at.is_empty()) {
        let at = crate::wire::history::instant(at).map_err(|m| invalid("at", m))?;
        let all = crate::service::history::members_at(state.store.as_ref(), caller.site_id, id, at)
            .await?;
        let start = after.map_or(0, |after| all.partition_point(|&m| m <= after));
        let ids: Vec<i64> = all[start..].iter().take(limit).copied().collect();
        let more = start + ids.len() < all.len();
        let data = subscribers(&state, caller.site_id, &ids).await?;
        let next_cursor = more
            .then(|| ids.last().map(|&id| encode_cursor(id)))
            .flatten();
        return Ok(json_response(
            StatusCode::OK,
            &MembersPage {
                data,
                meta: MembersMeta {
                    count: all.len() as i64,
                    next_cursor,
                },
            },
        ));
    }
    let evaluation = evaluations(&state)
        .segment(caller.site_id, id, state.clock.now_ms())
        .await?;
    let (ids, more) = evaluation.page(after, limit);
    let count = evaluation.counts().user_count;
    // Release the snapshot before reading rows: it may move meanwhile.
    drop(evaluation);
    let data = subscribers(&state, caller.site_id, &ids).await?;
    let next_cursor = if more {
        ids.last().map(|&id| encode_cursor(id))
    } else {
        None
    };
    Ok(json_response(
        StatusCode::OK,
        &MembersPage {
            data,
            meta: MembersMeta { count, next_cursor },
        },
    ))
}

/// Full subscriber records for member ids, in the ids' order.
async fn subscribers(
    state: &AppState,
    site_id: i64,
    ids: &[i64],
) -> Result<Vec<SubscriberResource>, ApiError> {
    let rows: Vec<Subscriber> = state.store.subscribers_by_ids(site_id, ids).await?;
    Ok(rows.iter().map(SubscriberResource::from).collect())
}

/// What a query would select, without saving it.
///
/// Corral extension. Answers the counts and a sample of members, or the
/// same 422 that saving the query would give, every problem at its JSON
/// pointer.
#[utoipa::path(post, path = "/api/v1/fetch/segments/preview", tag = "evaluation",
    request_body = PreviewRequest,
    responses(
        (status = 200, description = "Counts and a sample", body = PreviewEnvelope),
        (status = 422, description = "The query does not fit the grammar, or cannot be evaluated", body = ValidationErrorBody),
    ),
    security(("basic" = [])))]
pub async fn preview(
    State(state): State<AppState>,
    caller: Caller,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let (request, mut errors) = PreviewRequest::read(&bytes)?;
    let sample = match request.sample.raw() {
        None => DEFAULT_SAMPLE,
        Some(raw) => match serde_json::from_str::<usize>(raw.get()) {
            Ok(n) if n <= MAX_SAMPLE => n,
            _ => {
                errors.push(
                    "sample",
                    format!("must be a whole number from 0 to {MAX_SAMPLE}"),
                );
                0
            }
        },
    };
    let query = checked_query(&request.visitor_event_query, &mut errors);
    errors.finish(|| ())?;
    let Some((_, query)) = query else {
        return Err(invalid(QUERY_FIELD, "is required"));
    };
    // Saving would refuse it: its references, its cost.
    super::segments::segments(&state)
        .check_parsed(caller.site_id, None, &query)
        .await?;
    let evaluation = state
        .live
        .evaluate(caller.site_id, &query, state.clock.now_ms())
        .await?;
    let (ids, _) = evaluation.page(None, sample);
    let counts = evaluation.counts();
    drop(evaluation);
    Ok(json_response(
        StatusCode::OK,
        &PreviewEnvelope {
            data: Preview {
                user_count: counts.user_count,
                subscriber_count: counts.subscriber_count,
                unsubscriber_count: counts.unsubscriber_count,
                sample: subscribers(&state, caller.site_id, &ids).await?,
            },
        },
    ))
}

/// The JSON Schema of `visitor_event_query`.
///
/// Describes the grammar of `docs/query-language.md`. A query that fits the
/// schema may still be refused for what a schema cannot say (a date range
/// that ends before it starts, the limits on size and nesting).
#[utoipa::path(get, path = "/api/query-language.schema.json", tag = "evaluation",
    responses((status = 200, description = "JSON Schema (draft 2020-12)", content_type = "application/schema+json")))]
pub async fn query_schema() -> Response {
    let mut response = super::respond::bytes_response(
        StatusCode::OK,
        include_str!("../../docs/query-language.schema.json"),
    );
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/schema+json"),
    );
    response
}
