//! The Segments API: Bento's two read routes and Corral's write extensions.
//!
//! - `GET /api/v1/fetch/segments` and `GET /api/v1/fetch/segments/{id}` mirror
//!   Bento's "Segments" API reference (Fetch → Segments): every kept segment of
//!   the site in name order, and one segment with its `visitor_event_query`.
//! - `POST`, `PATCH`, `DELETE` and `POST …/restore` are Corral's: they manage
//!   segments with the same keys, in the same envelope, and never change what
//!   the two Bento routes answer for a client that does not use them.
//! - `GET …/{id}/versions` and `POST …/{id}/versions/{n}/restore` are
//!   Corral's too: every definition a segment was saved with, and one made
//!   current again. Each write is recorded as made by the caller's key pair.

use super::auth::Caller;
use super::conditional::{digest_etag, if_match, not_modified, not_modified_since, with_etag};
use super::extract::{QueryParams, SegmentPath};
use super::respond::bytes_response;
use super::{ApiError, AppState};
use crate::segment::{Listing, Segment, SegmentId};
use crate::service::Segments;
use crate::wire::body::{SiteOnlyRequest, site_only};
use crate::wire::history::{VersionListEnvelope, version_list_body};
use crate::wire::segments::{
    CreateSegmentRequest, SegmentEnvelope, SegmentListEnvelope, SegmentState, UpdateSegmentRequest,
    new_segment, segment_body, segment_list_body, segment_patch,
};
use crate::wire::strings::SegmentIdText;
use crate::wire::{ErrorBody, ValidationErrorBody};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::Deserialize;

/// Query parameters of the list; unknown ones are ignored, as Rails does.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Corral extension: `discarded` lists discarded segments instead of kept
    /// ones. Absent or `kept`: Bento's list.
    #[param(value_type = Option<SegmentState>)]
    state: Option<String>,
}

fn listing(params: &ListParams) -> Result<Listing, ApiError> {
    let state = match params.state.as_deref() {
        None => SegmentState::Kept,
        Some(text) => SegmentState::parse(text).ok_or_else(|| {
            ApiError::Invalid(
                crate::segment::FieldError::new("state", "must be kept or discarded").into(),
            )
        })?,
    };
    Ok(state.into())
}

/// Lists the site's segments, ordered by name.
///
/// Bento: `GET /v1/fetch/segments`. Ordering is case-insensitive (Unicode
/// lowercase), ties broken by the exact name and then the id.
#[utoipa::path(
    get,
    path = "/api/v1/fetch/segments",
    tag = "segments",
    params(ListParams),
    responses(
        (status = 200, description = "The site's kept segments in name order", body = SegmentListEnvelope),
        (status = 304, description = "Unchanged since the `If-None-Match` tag"),
        (status = 422, description = "Unknown `state`", body = ValidationErrorBody),
    ),
    security(("basic" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(params): QueryParams<ListParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (body, etag) = match listing(&params)? {
        Listing::Kept => {
            let segments = state
                .cache
                .segments(state.store.as_ref(), caller.head, caller.site_id)
                .await?;
            (segments.list.body.clone(), segments.list.etag.clone())
        }
        Listing::Discarded => {
            let segments = state
                .store
                .list_segments(caller.site_id, Listing::Discarded)
                .await?;
            let body = segment_list_body(&segments);
            let etag = digest_etag(&body);
            (body.into(), etag)
        }
    };
    Ok(conditional_response(&headers, body, &etag))
}

/// 304 when `If-None-Match` names `etag`, else 200 with the body and tag.
fn conditional_response(headers: &HeaderMap, body: Bytes, etag: &str) -> Response {
    if not_modified_since(headers, etag) {
        return not_modified(etag);
    }
    with_etag(bytes_response(StatusCode::OK, body), etag)
}

/// One segment with its saved `visitor_event_query`.
///
/// Bento: `GET /v1/fetch/segments/:id`. Unknown, discarded and other sites'
/// ids all answer the same 404.
#[utoipa::path(
    get,
    path = "/api/v1/fetch/segments/{id}",
    tag = "segments",
    params(("id" = SegmentIdText, Path, description = "The segment's id")),
    responses(
        (status = 200, description = "The segment", body = SegmentEnvelope),
        (status = 304, description = "Unchanged since the `If-None-Match` tag"),
        (status = 404, description = "No such kept segment on this site", body = ErrorBody),
    ),
    security(("basic" = []))
)]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    SegmentPath(id): SegmentPath,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let segments = state
        .cache
        .segments(state.store.as_ref(), caller.head, caller.site_id)
        .await?;
    let rendered = segments.by_id.get(&id).ok_or(ApiError::SegmentNotFound)?;
    Ok(conditional_response(
        &headers,
        rendered.body.clone(),
        &rendered.etag,
    ))
}

/// Creates a segment.
///
/// Corral extension. The name is trimmed, 1–255 characters and unique among
/// the site's kept segments ignoring case; the description is optional (at
/// most 2,000 characters); `visitor_event_query` is a JSON object of at most
/// 64 KiB, kept exactly as written.
#[utoipa::path(
    post,
    path = "/api/v1/fetch/segments",
    tag = "segments",
    request_body = CreateSegmentRequest,
    responses(
        (status = 201, description = "Created", body = SegmentEnvelope),
        (status = 422, description = "Breaks the rules listed", body = ValidationErrorBody),
    ),
    security(("basic" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let draft = new_segment(&bytes)?;
    let segment = segments(&state)
        .create(caller.site_id, draft, state.clock.now_ms(), &caller.actor())
        .await?;
    let mut response = segment_response(StatusCode::CREATED, &segment);
    if let Ok(location) = HeaderValue::from_str(&format!("/api/v1/fetch/segments/{}", segment.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// Changes a segment's name, description or query.
///
/// Corral extension. Fields left out stay as they are; `"description": null`
/// clears the description. `If-Match` with the segment's `ETag` makes the
/// change conditional. A change that changes nothing leaves `updated_at` alone.
#[utoipa::path(
    patch,
    path = "/api/v1/fetch/segments/{id}",
    tag = "segments",
    params(("id" = SegmentIdText, Path, description = "The segment's id")),
    request_body = UpdateSegmentRequest,
    responses(
        (status = 200, description = "The changed segment", body = SegmentEnvelope),
        (status = 404, description = "No such kept segment on this site", body = ErrorBody),
        (status = 412, description = "`If-Match` names another version", body = ErrorBody),
        (status = 422, description = "Breaks the rules listed", body = ValidationErrorBody),
    ),
    security(("basic" = []))
)]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    SegmentPath(id): SegmentPath,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let draft = segment_patch(&bytes)?;
    let segment = segments(&state)
        .update(
            caller.site_id,
            id,
            draft,
            &if_match(&headers, id),
            state.clock.now_ms(),
            &caller.actor(),
        )
        .await?;
    Ok(segment_response(StatusCode::OK, &segment))
}

/// Discards (soft-deletes) a segment.
///
/// Corral extension. The segment leaves Bento's list and its id answers 404
/// there; the answer is the discarded record, with `discarded_at`.
#[utoipa::path(
    delete,
    path = "/api/v1/fetch/segments/{id}",
    tag = "segments",
    params(("id" = SegmentIdText, Path, description = "The segment's id")),
    request_body(content = Option<SiteOnlyRequest>, description = "Optional: only `site_uuid` (the Node SDK sends it with every DELETE)"),
    responses(
        (status = 200, description = "The discarded segment", body = SegmentEnvelope),
        (status = 404, description = "No such kept segment on this site", body = ErrorBody),
        (status = 412, description = "`If-Match` names another version", body = ErrorBody),
        (status = 422, description = "Other segments refer to it", body = ValidationErrorBody),
    ),
    security(("basic" = []))
)]
pub async fn discard(
    State(state): State<AppState>,
    caller: Caller,
    SegmentPath(id): SegmentPath,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    site_only(&bytes)?;
    move_to(&state, &caller, id, &headers, Listing::Discarded).await
}

/// Restores a discarded segment.
///
/// Corral extension. Refused with 422 when a kept segment now has its name.
/// Restoring a kept segment changes nothing.
#[utoipa::path(
    post,
    path = "/api/v1/fetch/segments/{id}/restore",
    tag = "segments",
    params(("id" = SegmentIdText, Path, description = "The segment's id")),
    request_body(content = Option<SiteOnlyRequest>, description = "Optional: only `site_uuid`"),
    responses(
        (status = 200, description = "The restored segment", body = SegmentEnvelope),
        (status = 404, description = "No such segment on this site", body = ErrorBody),
        (status = 412, description = "`If-Match` names another version", body = ErrorBody),
        (status = 422, description = "Its name is taken", body = ValidationErrorBody),
    ),
    security(("basic" = []))
)]
pub async fn restore(
    State(state): State<AppState>,
    caller: Caller,
    SegmentPath(id): SegmentPath,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    site_only(&bytes)?;
    move_to(&state, &caller, id, &headers, Listing::Kept).await
}

/// Discards or restores a segment, honouring `If-Match`, and answers it.
async fn move_to(
    state: &AppState,
    caller: &Caller,
    id: SegmentId,
    headers: &HeaderMap,
    to: Listing,
) -> Result<Response, ApiError> {
    let (site, precondition, now) = (caller.site_id, if_match(headers, id), state.clock.now_ms());
    let (segments, by) = (segments(state), caller.actor());
    let segment = match to {
        Listing::Discarded => segments.discard(site, id, &precondition, now, &by).await?,
        Listing::Kept => segments.restore(site, id, &precondition, now, &by).await?,
    };
    Ok(segment_response(StatusCode::OK, &segment))
}

/// Every definition a segment was saved with, oldest first.
///
/// Corral extension. Each version is the segment's version once that
/// definition was saved (the number in its `ETag`), with when and by whom:
/// the publishable key of the key pair that saved it, `cli`, or `null` for a
/// segment's definition as it stood when versions began to be kept.
/// Discarded segments keep theirs.
#[utoipa::path(
    get,
    path = "/api/v1/fetch/segments/{id}/versions",
    tag = "segments",
    params(("id" = SegmentIdText, Path, description = "The segment's id")),
    responses(
        (status = 200, description = "The segment's saved definitions, oldest first", body = VersionListEnvelope),
        (status = 404, description = "No such segment on this site", body = ErrorBody),
    ),
    security(("basic" = []))
)]
pub async fn versions(
    State(state): State<AppState>,
    caller: Caller,
    SegmentPath(id): SegmentPath,
) -> Result<Response, ApiError> {
    let versions = segments(&state).versions(caller.site_id, id).await?;
    Ok(bytes_response(StatusCode::OK, version_list_body(&versions)))
}

/// The `{id}` and `{n}` of `…/segments/{id}/versions/{n}/restore`: an id
/// that cannot be a segment's is a segment not found, an `n` that is not a
/// positive whole number a version not found.
pub struct VersionPath(SegmentId, i64);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for VersionPath {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, ApiError> {
        // Nested routers see the path without their prefixes.
        let rest = parts
            .uri
            .path()
            .split_once("/segments/")
            .map(|(_, rest)| rest)
            .ok_or(ApiError::SegmentNotFound)?;
        let mut pieces = rest.split('/');
        let id = pieces
            .next()
            .and_then(SegmentId::parse)
            .ok_or(ApiError::SegmentNotFound)?;
        let version = match (pieces.next(), pieces.next()) {
            (Some("versions"), Some(n)) => {
                corral_core::query::ast::segment_id(n).ok_or(ApiError::VersionNotFound)?
            }
            _ => return Err(ApiError::Internal("a version route without {n}".into())),
        };
        Ok(Self(id, version))
    }
}

/// Makes an earlier version's definition the segment's current one.
///
/// Corral extension. Version `n`'s name, description and query become the
/// segment's, saved as a new version (answered as `PATCH` answers), checked
/// as a change of all three would be: a name a kept segment has taken since,
/// or a query that refers to a segment no longer kept, is a 422. `If-Match`
/// with the segment's `ETag` makes it conditional. Restoring the definition
/// the segment has changes nothing. A discarded segment is a 404, as for
/// `PATCH`: restore it first.
#[utoipa::path(
    post,
    path = "/api/v1/fetch/segments/{id}/versions/{n}/restore",
    tag = "segments",
    params(
        ("id" = SegmentIdText, Path, description = "The segment's id"),
        ("n" = u32, Path, description = "The version to restore", minimum = 1),
    ),
    request_body(content = Option<SiteOnlyRequest>, description = "Optional: only `site_uuid`"),
    responses(
        (status = 200, description = "The segment, with the restored definition", body = SegmentEnvelope),
        (status = 404, description = "No such kept segment on this site, or no such version of it", body = ErrorBody),
        (status = 412, description = "`If-Match` names another version", body = ErrorBody),
        (status = 422, description = "The restored definition breaks the rules listed", body = ValidationErrorBody),
    ),
    security(("basic" = []))
)]
pub async fn restore_version(
    State(state): State<AppState>,
    caller: Caller,
    VersionPath(id, version): VersionPath,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    site_only(&bytes)?;
    let segment = segments(&state)
        .restore_version(
            caller.site_id,
            id,
            version,
            &if_match(&headers, id),
            state.clock.now_ms(),
            &caller.actor(),
        )
        .await?;
    Ok(segment_response(StatusCode::OK, &segment))
}

/// The segment service over this server's store, held to the evaluation
/// budget of the audience it holds.
pub(super) fn segments(state: &AppState) -> Segments<'_> {
    Segments::new(state.store.as_ref()).with_live(&state.live)
}

fn segment_response(status: StatusCode, segment: &Segment) -> Response {
    with_etag(
        bytes_response(status, segment_body(segment)),
        &segment.etag(),
    )
}
