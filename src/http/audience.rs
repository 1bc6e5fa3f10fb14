//! Bento's audience routes beside the subscriber's own (in
//! [`super::subscribers`]): tags, fields and site stats.
//!
//! - `GET /fetch/tags`, `POST /fetch/tags` `{"tag":{"name"}}`,
//!   `DELETE /fetch/tags/{id}` (the Node SDK's `Tags.deleteTag`).
//! - `GET /fetch/fields`, `POST /fetch/fields` `{"field":{"key"}}`.
//! - `GET /stats/site`: `{"user_count","subscriber_count","unsubscriber_count"}`, flat.
//!
//! These mirror the sections of the same names in Bento's API reference.
//!
//! The two lists come a page at a time (Corral's addition):
//! `{"data":[…],"meta":{"next_cursor":…}}`, with `limit` and `cursor` in the
//! query string. Bento's SDKs send neither and read only `data`; the default
//! page is the site's cap ([`corral_core::audience::limits`]), so they see the
//! whole list on any site within its caps, and only a site that holds more
//! (data stored before the caps) needs a second page.

use super::auth::Caller;
use super::extract::QueryParams;
use super::respond::json_response;
use super::{ApiError, AppState};
use crate::segment::FieldError;
use crate::storage::StorageError;
use crate::wire::ErrorBody;
use crate::wire::ValidationErrorBody;
use crate::wire::audience::{
    CreateFieldRequest, CreateTagRequest, DeleteTagRequest, FieldEnvelope, FieldListEnvelope,
    ListMeta, TagDeletedBody, TagEnvelope, TagListEnvelope, field_key, field_resource, tag_name,
    tag_name_to_delete, tag_resource,
};
use axum::body::Bytes;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use corral_core::audience::limits::{MAX_FIELD_KEYS_PER_SITE, MAX_TAGS_PER_SITE};
use corral_core::audience::{AudienceCounts, FieldKey, TagName};
use serde::Deserialize;

/// Tags per page of `GET /fetch/tags`, by default and at most: a site's cap,
/// so that a client that does not page sees every tag of a site within it.
const TAG_PAGE: usize = MAX_TAGS_PER_SITE;
/// Fields per page of `GET /fetch/fields`, likewise.
const FIELD_PAGE: usize = MAX_FIELD_KEYS_PER_SITE;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TagListParams {
    /// Tags per page, 1 to 10,000 (default 10,000, a site's cap).
    #[param(value_type = Option<u16>, minimum = 1, maximum = 10000)]
    limit: Option<String>,
    /// `meta.next_cursor` of the previous page; absent for the first.
    cursor: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FieldListParams {
    /// Fields per page, 1 to 1,000 (default 1,000, a site's cap).
    #[param(value_type = Option<u16>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    /// `meta.next_cursor` of the previous page; absent for the first.
    cursor: Option<String>,
}

/// A list's page request: the limit (1 to `max`, `max` when absent) and the
/// sort key the page starts after. A cursor is the last key of a page,
/// opaque to clients and tied to its list (`scope`): it names a position, so
/// it stays valid whatever is added meanwhile.
fn page_request(
    limit: Option<&str>,
    cursor: Option<&str>,
    max: usize,
    scope: &str,
) -> Result<(usize, Option<String>), ApiError> {
    let limit = match limit {
        None => max,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| invalid("limit", format!("must be a whole number from 1 to {max}")))?,
    };
    let after = match cursor {
        None | Some("") => None,
        Some(cursor) => Some(decode_cursor(cursor, scope).ok_or_else(|| {
            invalid(
                "cursor",
                "is not a cursor this API gave out (use meta.next_cursor)",
            )
        })?),
    };
    Ok((limit, after))
}

fn encode_cursor(scope: &str, after: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{scope}:{after}"))
}

fn decode_cursor(cursor: &str, scope: &str) -> Option<String> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    Some(text.strip_prefix(scope)?.strip_prefix(':')?.to_owned())
}

/// A cap reached by creating one record is a 422 on the record's `field`.
fn over_cap(field: &'static str) -> impl Fn(StorageError) -> ApiError {
    move |error| match error {
        StorageError::LimitExceeded(message) => invalid(field, message),
        other => other.into(),
    }
}

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::Invalid(FieldError::new(field, message).into())
}

/// The site's tags, in name order (ignoring case), a page at a time.
///
/// Bento: Tags → Get tags. Paging is Corral's addition: without `limit` a
/// page holds up to 10,000 tags, a site's cap, so a client that reads only
/// `data` (Bento's SDKs) gets every tag of a site within its caps.
/// `meta.next_cursor` continues after the last tag of the page.
#[utoipa::path(get, path = "/api/v1/fetch/tags", tag = "audience",
    params(TagListParams),
    responses(
        (status = 200, description = "One page of tags", body = TagListEnvelope),
        (status = 422, description = "A bad limit or cursor", body = ValidationErrorBody),
    ),
    security(("basic" = [])))]
pub async fn list_tags(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(params): QueryParams<TagListParams>,
) -> Result<Response, ApiError> {
    let (limit, after) = page_request(
        params.limit.as_deref(),
        params.cursor.as_deref(),
        TAG_PAGE,
        "tags",
    )?;
    let page = state
        .store
        .list_tags(caller.site_id, after.as_deref(), limit)
        .await?;
    let data = page
        .items
        .iter()
        .map(|t| tag_resource(t, caller.site_id))
        .collect();
    let next_cursor = page.next_after.map(|key| encode_cursor("tags", &key));
    Ok(json_response(
        StatusCode::OK,
        &TagListEnvelope {
            data,
            meta: ListMeta { next_cursor },
        },
    ))
}

/// Creates a tag, or answers the one that already has this name (ignoring case).
///
/// Bento: Tags → Create tag. A new tag that would take the site over its
/// cap of 10,000 tags is a 422 on `name`.
#[utoipa::path(post, path = "/api/v1/fetch/tags", tag = "audience",
    request_body = CreateTagRequest,
    responses(
        (status = 200, description = "The tag", body = TagEnvelope),
        (status = 422, description = "Missing or invalid name, or the site has as many tags as it may", body = ValidationErrorBody),
    ),
    security(("basic" = [])))]
pub async fn create_tag(
    State(state): State<AppState>,
    caller: Caller,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let name = tag_name(&bytes)?;
    let name = TagName::parse(&name).map_err(|m| invalid("name", m))?;
    let tag = state
        .store
        .create_tag(caller.site_id, &name, state.clock.now_ms())
        .await
        .map_err(over_cap("name"))?;
    Ok(json_response(
        StatusCode::OK,
        &TagEnvelope {
            data: tag_resource(&tag, caller.site_id),
        },
    ))
}

/// The tag a route's `{id}` names: a positive decimal id; anything else is
/// no tag (404).
pub struct TagPath(i64);

impl<S: Send + Sync> FromRequestParts<S> for TagPath {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        #[allow(clippy::disallowed_types)]
        let id = axum::extract::Path::<String>::from_request_parts(parts, state).await;
        let id = id.map_err(|_| ApiError::TagNotFound)?.0;
        let digits = !id.is_empty() && id.len() <= 18 && id.bytes().all(|b| b.is_ascii_digit());
        match id.parse::<i64>() {
            Ok(id) if digits && id > 0 => Ok(Self(id)),
            _ => Err(ApiError::TagNotFound),
        }
    }
}

/// Deletes a tag: takes it off every subscriber that has it, and off the
/// site's list.
///
/// Bento: Tags → Delete tag (the Node SDK's `Tags.deleteTag(id, {name})`).
/// Segments that read the tag lose those subscribers, recorded in their
/// history with the reason `data` and told to webhooks, as a `remove_tag` of
/// each would be. The body may be left out; when it names the tag
/// (`{"tag":{"name"}}`, as the SDK sends it), the name must be the tag's,
/// ignoring case, or nothing is deleted (404: no tag of that id and name). A tag of the same
/// name made afterwards is a new tag, with a new id.
#[utoipa::path(delete, path = "/api/v1/fetch/tags/{id}", tag = "audience",
    params(("id" = String, Path, description = "The tag's id (`data[].id` of `GET /fetch/tags`)")),
    request_body(content = Option<DeleteTagRequest>, description = "Optional: `site_uuid`, and the tag's name as a guard"),
    responses(
        (status = 200, description = "Deleted", body = TagDeletedBody),
        (status = 404, description = "No tag of this id (and, when the body names one, this name) on the site", body = ErrorBody),
        (status = 422, description = "The body is not `{\"tag\":{\"name\"}}`", body = ValidationErrorBody),
    ),
    security(("basic" = [])))]
pub async fn delete_tag(
    State(state): State<AppState>,
    caller: Caller,
    TagPath(id): TagPath,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let name = tag_name_to_delete(&bytes)?
        .map(|name| TagName::parse(&name).map_err(|m| invalid("name", m)))
        .transpose()?;
    let deleted = state
        .store
        .delete_tag(caller.site_id, id, name.as_ref(), state.clock.now_ms())
        .await;
    let (tag, untagged) = match deleted {
        Err(StorageError::NotFound) => return Err(ApiError::TagNotFound),
        other => other?,
    };
    tracing::info!(
        site_id = caller.site_id,
        tag_id = tag.id,
        untagged,
        "tag deleted"
    );
    Ok(json_response(
        StatusCode::OK,
        &TagDeletedBody {
            message: "Tag deleted",
        },
    ))
}

/// The site's fields, in key order, a page at a time.
///
/// Bento: Fields → Get fields. Paging is Corral's addition: without `limit`
/// a page holds up to 1,000 fields, a site's cap, so a client that reads
/// only `data` (Bento's SDKs) gets every field of a site within its caps.
/// `meta.next_cursor` continues after the last field of the page.
#[utoipa::path(get, path = "/api/v1/fetch/fields", tag = "audience",
    params(FieldListParams),
    responses(
        (status = 200, description = "One page of fields", body = FieldListEnvelope),
        (status = 422, description = "A bad limit or cursor", body = ValidationErrorBody),
    ),
    security(("basic" = [])))]
pub async fn list_fields(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(params): QueryParams<FieldListParams>,
) -> Result<Response, ApiError> {
    let (limit, after) = page_request(
        params.limit.as_deref(),
        params.cursor.as_deref(),
        FIELD_PAGE,
        "fields",
    )?;
    let page = state
        .store
        .list_fields(caller.site_id, after.as_deref(), limit)
        .await?;
    let data = page.items.iter().map(field_resource).collect();
    let next_cursor = page.next_after.map(|key| encode_cursor("fields", &key));
    Ok(json_response(
        StatusCode::OK,
        &FieldListEnvelope {
            data,
            meta: ListMeta { next_cursor },
        },
    ))
}

/// Registers a field key (normalised: `"First Name"` is `first_name`).
///
/// Bento: Fields → Create field. A new key that would take the site over its
/// cap of 1,000 field keys is a 422 on `key`.
#[utoipa::path(post, path = "/api/v1/fetch/fields", tag = "audience",
    request_body = CreateFieldRequest,
    responses(
        (status = 200, description = "The field", body = FieldEnvelope),
        (status = 422, description = "Missing or invalid key, or the site has as many field keys as it may", body = ValidationErrorBody),
    ),
    security(("basic" = [])))]
pub async fn create_field(
    State(state): State<AppState>,
    caller: Caller,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let written = field_key(&bytes)?;
    let key = FieldKey::parse(&written).map_err(|m| invalid("key", m))?;
    let field = state
        .store
        .create_field(caller.site_id, &key, written.trim(), state.clock.now_ms())
        .await
        .map_err(over_cap("key"))?;
    Ok(json_response(
        StatusCode::OK,
        &FieldEnvelope {
            data: field_resource(&field),
        },
    ))
}

/// Counts of the whole site's audience, flat (no envelope).
///
/// Bento: Stats → Site stats.
#[utoipa::path(get, path = "/api/v1/stats/site", tag = "audience",
    responses((status = 200, description = "Counts", body = AudienceCounts)),
    security(("basic" = [])))]
pub async fn site_stats(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let counts = state.store.site_counts(caller.site_id).await?;
    Ok(json_response(StatusCode::OK, &counts))
}
