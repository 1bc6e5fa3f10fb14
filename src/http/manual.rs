//! `…/segments/{id}/includes` and `…/excludes`: a kept segment's hand-made
//! includes and excludes ([`crate::service::manual`]). `POST` puts
//! subscribers in a list by email, `DELETE` takes them out (the same body),
//! `GET` reads a list a page at a time. Membership is `(the query's members
//! ∪ includes) ∖ excludes` on every read route, in references from other
//! segments, in the journal (reason `manual`) and in webhooks.

use super::evaluation::{DEFAULT_PAGE, MAX_PAGE, cursor_param, encode_cursor, parse_count};
use super::extract::{QueryParams, SegmentPath};
use super::respond::json_response;
use super::{ApiError, AppState, Caller};
use crate::segment::SegmentId;
use crate::segment::manual::ManualList;
use crate::service::manual::{self, ManualError};
use crate::wire::manual::{
    ManualEditEnvelope, ManualEntryResource, ManualPage, ManualPageMeta, ManualRequest,
    manual_edit_body, manual_request,
};
use crate::wire::strings::SegmentIdText;
use crate::wire::{ErrorBody, ValidationErrorBody};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

impl From<ManualError> for ApiError {
    fn from(error: ManualError) -> Self {
        match error {
            ManualError::SegmentNotFound => Self::SegmentNotFound,
            ManualError::Invalid(errors) => Self::Invalid(errors),
            ManualError::Storage(e) => e.into(),
        }
    }
}

async fn edit(
    state: &AppState,
    caller: &Caller,
    id: SegmentId,
    bytes: &[u8],
    list: ManualList,
    add: bool,
) -> Result<Response, ApiError> {
    let emails = manual_request(bytes)?;
    let edit = manual::edit(
        state.store.as_ref(),
        caller.site_id,
        id,
        list,
        &emails,
        add,
        state.clock.now_ms(),
        &caller.actor(),
    )
    .await?;
    Ok(json_response(
        StatusCode::OK,
        &manual_edit_body(id, list, edit),
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ManualParams {
    /// Subscribers per page, 1 to 1,000 (default 100).
    #[param(value_type = Option<u16>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    /// `meta.next_cursor` of the previous page; absent for the first.
    cursor: Option<String>,
}

async fn page(
    state: &AppState,
    caller: &Caller,
    id: SegmentId,
    params: &ManualParams,
    list: ManualList,
) -> Result<Response, ApiError> {
    let limit = parse_count(params.limit.as_deref(), "limit", DEFAULT_PAGE, MAX_PAGE, 1)?;
    let after = cursor_param(params.cursor.as_deref())?;
    let store = state.store.as_ref();
    let (entries, more) = manual::page(store, caller.site_id, id, list, after, limit).await?;
    let count = manual::count(store, caller.site_id, id, list).await?;
    let next_cursor = more
        .then(|| entries.last().map(|e| encode_cursor(e.subscriber_id)))
        .flatten();
    Ok(json_response(
        StatusCode::OK,
        &ManualPage {
            data: entries.iter().map(ManualEntryResource::from).collect(),
            meta: ManualPageMeta { count, next_cursor },
        },
    ))
}

/// Puts subscribers in a segment's includes, by email.
///
/// Corral extension. An included subscriber is a member whatever the query
/// says, unless also excluded (an exclude wins). Up to 1,000 emails a call;
/// an email no subscriber of the site has creates nothing and is answered
/// in `unknown`. Recorded in the segment's journal with the reason `manual`
/// and in the audit log.
#[utoipa::path(post, path = "/api/v1/fetch/segments/{id}/includes", tag = "segments",
    params(("id" = SegmentIdText, Path, description = "The segment's id")),
    request_body = ManualRequest,
    responses(
        (status = 200, description = "What the call changed", body = ManualEditEnvelope),
        (status = 404, description = "No such kept segment on this site", body = ErrorBody),
        (status = 422, description = "No emails, more than 1,000, or one that is not an email", body = ValidationErrorBody),
    ),
    security(("basic" = [])))]
pub async fn add_includes(
    State(state): State<AppState>,
    caller: Caller,
    SegmentPath(id): SegmentPath,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    edit(&state, &caller, id, &bytes, ManualList::Includes, true).await
}

/// Takes subscribers out of a segment's includes, by email.
///
/// Corral extension. The body is that of adding; emails not in the list
/// are answered in `unchanged`.
#[utoipa::path(delete, path = "/api/v1/fetch/segments/{id}/includes", tag = "segments",
    params(("id" = SegmentIdText, Path, description = "The segment's id")),
    request_body = ManualRequest,
    responses(
        (status = 200, description = "What the call changed", body = ManualEditEnvelope),
        (status = 404, description = "No such kept segment on this site", body = ErrorBody),
        (status = 422, description = "No emails, more than 1,000, or one that is not an email", body = ValidationErrorBody),
    ),
    security(("basic" = [])))]
pub async fn remove_includes(
    State(state): State<AppState>,
    caller: Caller,
    SegmentPath(id): SegmentPath,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    edit(&state, &caller, id, &bytes, ManualList::Includes, false).await
}

/// A segment's includes, a page at a time, by subscriber.
///
/// Corral extension.
#[utoipa::path(get, path = "/api/v1/fetch/segments/{id}/includes", tag = "segments",
    params(("id" = SegmentIdText, Path, description = "The segment's id"), ManualParams),
    responses(
        (status = 200, description = "One page of the includes", body = ManualPage),
        (status = 404, description = "No such kept segment on this site", body = ErrorBody),
        (status = 422, description = "A bad limit or cursor", body = ValidationErrorBody),
    ),
    security(("basic" = [])))]
pub async fn list_includes(
    State(state): State<AppState>,
    caller: Caller,
    SegmentPath(id): SegmentPath,
    QueryParams(params): QueryParams<ManualParams>,
) -> Result<Response, ApiError> {
    page(&state, &caller, id, &params, ManualList::Includes).await
}

/// Puts subscribers in a segment's excludes, by email.
///
/// Corral extension. An excluded subscriber is never a member, whatever the
/// query says and even when included. Up to 1,000 emails a call; an email
/// no subscriber of the site has creates nothing and is answered in
/// `unknown`. Recorded in the segment's journal with the reason `manual`
/// and in the audit log.
#[utoipa::path(post, path = "/api/v1/fetch/segments/{id}/excludes", tag = "segments",
    params(("id" = SegmentIdText, Path, description = "The segment's id")),
    request_body = ManualRequest,
    responses(
        (status = 200, description = "What the call changed", body = ManualEditEnvelope),
        (status = 404, description = "No such kept segment on this site", body = ErrorBody),
        (status = 422, description = "No emails, more than 1,000, or one that is not an email", body = ValidationErrorBody),
    ),
    security(("basic" = [])))]
pub async fn add_excludes(
    State(state): State<AppState>,
    caller: Caller,
    SegmentPath(id): SegmentPath,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    edit(&state, &caller, id, &bytes, ManualList::Excludes, true).await
}

/// Takes subscribers out of a segment's excludes, by email.
///
/// Corral extension. The body is that of adding; emails not in the list
/// are answered in `unchanged`.
#[utoipa::path(delete, path = "/api/v1/fetch/segments/{id}/excludes", tag = "segments",
    params(("id" = SegmentIdText, Path, description = "The segment's id")),
    request_body = ManualRequest,
    responses(
        (status = 200, description = "What the call changed", body = ManualEditEnvelope),
        (status = 404, description = "No such kept segment on this site", body = ErrorBody),
        (status = 422, description = "No emails, more than 1,000, or one that is not an email", body = ValidationErrorBody),
    ),
    security(("basic" = [])))]
pub async fn remove_excludes(
    State(state): State<AppState>,
    caller: Caller,
    SegmentPath(id): SegmentPath,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    edit(&state, &caller, id, &bytes, ManualList::Excludes, false).await
}

/// A segment's excludes, a page at a time, by subscriber.
///
/// Corral extension.
#[utoipa::path(get, path = "/api/v1/fetch/segments/{id}/excludes", tag = "segments",
    params(("id" = SegmentIdText, Path, description = "The segment's id"), ManualParams),
    responses(
        (status = 200, description = "One page of the excludes", body = ManualPage),
        (status = 404, description = "No such kept segment on this site", body = ErrorBody),
        (status = 422, description = "A bad limit or cursor", body = ValidationErrorBody),
    ),
    security(("basic" = [])))]
pub async fn list_excludes(
    State(state): State<AppState>,
    caller: Caller,
    SegmentPath(id): SegmentPath,
    QueryParams(params): QueryParams<ManualParams>,
) -> Result<Response, ApiError> {
    page(&state, &caller, id, &params, ManualList::Excludes).await
}
