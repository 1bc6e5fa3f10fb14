//! Bento's audience routes: subscribers, tags, fields and site stats.
//!
//! - `GET /fetch/subscribers?email=…|uuid=…`: one subscriber, or
//!   `{"data":null}` when there is none (the Node SDK then returns `null`).
//! - `POST /fetch/subscribers` `{"subscriber":{"email"}}`: creates the
//!   subscriber if new; either way answers it.
//! - `GET /fetch/tags`, `POST /fetch/tags` `{"tag":{"name"}}`.
//! - `GET /fetch/fields`, `POST /fetch/fields` `{"field":{"key"}}`.
//! - `GET /stats/site`: `{"user_count","subscriber_count","unsubscriber_count"}`, flat.
//!
//! These mirror the sections of the same names in Bento's API reference.

use super::auth::Caller;
use super::extract::{Extension, Query};
use super::schemas::{EmailText, FieldKeyText, Name, SiteUuidText};
use super::wire::{ValidationErrorBody, json_response};
use super::{ApiError, AppState, body};
use crate::audience::{
    AudienceCounts, Email, Field, FieldKey, Subscriber, SubscriberChange, Tag, TagName,
};
use crate::clock::format_ms;
use crate::segment::FieldError;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A subscriber on the wire (`type` `visitors`).
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriberResource {
    #[schema(example = "17")]
    pub id: String,
    /// Always `visitors`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub attributes: SubscriberAttributes,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriberAttributes {
    /// Stable id, kept across email changes.
    pub uuid: String,
    pub email: String,
    /// Field values by normalised key; `null` when there are none.
    #[schema(value_type = Option<Object>)]
    pub fields: Option<serde_json::Map<String, serde_json::Value>>,
    /// Ids of the subscriber's tags, as strings.
    pub cached_tag_ids: Vec<String>,
    /// When the subscriber unsubscribed; `null` while subscribed.
    pub unsubscribed_at: Option<String>,
}

impl From<&Subscriber> for SubscriberResource {
    fn from(s: &Subscriber) -> Self {
        Self {
            id: s.id.to_string(),
            kind: "visitors",
            attributes: SubscriberAttributes {
                uuid: s.uuid.clone(),
                email: s.email.clone(),
                fields: (!s.fields.is_empty()).then(|| s.fields.clone()),
                cached_tag_ids: s.tag_ids.iter().map(i64::to_string).collect(),
                unsubscribed_at: s.unsubscribed_at.map(format_ms),
            },
        }
    }
}

/// `{"data":{…}}` or `{"data":null}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriberEnvelope {
    pub data: Option<SubscriberResource>,
}

/// A tag on the wire (`type` `tags`).
#[derive(Debug, Serialize, ToSchema)]
pub struct TagResource {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub attributes: TagAttributes,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TagAttributes {
    pub name: String,
    pub created_at: String,
    pub discarded_at: Option<String>,
    /// The site's numeric id.
    pub site_id: i64,
}

/// A field on the wire (`type` `visitors-fields`).
#[derive(Debug, Serialize, ToSchema)]
pub struct FieldResource {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub attributes: FieldAttributes,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FieldAttributes {
    /// The normalised key, as used in subscribers' `fields`.
    pub key: String,
    /// The key as first written.
    pub name: String,
    pub created_at: String,
    /// Always `null`: Corral has no field allow-list.
    pub whitelisted: Option<bool>,
}

fn tag_resource(tag: &Tag, site_id: i64) -> TagResource {
    TagResource {
        id: tag.id.to_string(),
        kind: "tags",
        attributes: TagAttributes {
            name: tag.name.clone(),
            created_at: format_ms(tag.created_at),
            discarded_at: tag.discarded_at.map(format_ms),
            site_id,
        },
    }
}

fn field_resource(field: &Field) -> FieldResource {
    FieldResource {
        id: field.id.to_string(),
        kind: "visitors-fields",
        attributes: FieldAttributes {
            key: field.key.clone(),
            name: field.name.clone(),
            created_at: format_ms(field.created_at),
            whitelisted: None,
        },
    }
}

#[derive(Serialize, ToSchema)]
pub struct TagEnvelope {
    pub data: TagResource,
}

#[derive(Serialize, ToSchema)]
pub struct TagListEnvelope {
    pub data: Vec<TagResource>,
}

#[derive(Serialize, ToSchema)]
pub struct FieldEnvelope {
    pub data: FieldResource,
}

#[derive(Serialize, ToSchema)]
pub struct FieldListEnvelope {
    pub data: Vec<FieldResource>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SubscriberLookup {
    /// The subscriber's email (case does not matter). One of `email` and
    /// `uuid` is required; with both, `email` is used.
    #[param(value_type = Option<EmailText>)]
    email: Option<String>,
    /// The subscriber's uuid.
    uuid: Option<String>,
}

/// Finds one subscriber by email or uuid.
///
/// Bento: Subscribers → Find subscriber. No match answers `{"data":null}`.
#[utoipa::path(get, path = "/api/v1/fetch/subscribers", tag = "audience",
    params(SubscriberLookup),
    responses(
        (status = 200, description = "The subscriber, or `data: null`", body = SubscriberEnvelope),
        (status = 422, description = "Neither email nor uuid, or an invalid email", body = ValidationErrorBody),
    ),
    security(("basic" = [])))]
pub async fn find_subscriber(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(lookup): Query<SubscriberLookup>,
) -> Result<Response, ApiError> {
    let subscriber = match (lookup.email, lookup.uuid) {
        (Some(email), _) => {
            let email = Email::parse(&email).map_err(|m| invalid("email", m))?;
            state
                .store
                .subscriber_by_email(caller.site_id, &email)
                .await?
        }
        (None, Some(uuid)) => {
            state
                .store
                .subscriber_by_uuid(caller.site_id, uuid.trim())
                .await?
        }
        (None, None) => return Err(invalid("email", "or uuid is required")),
    };
    Ok(json_response(
        StatusCode::OK,
        &SubscriberEnvelope {
            data: subscriber.as_ref().map(SubscriberResource::from),
        },
    ))
}

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::Invalid(FieldError::new(field, message).into())
}

/// Reads `{"<wrapper>":{"<field>":"…"}}` and returns the string.
fn wrapped_string(bytes: &[u8], wrapper: &str, field: &str) -> Result<String, ApiError> {
    let (inner, mut errors) = body::wrapped(bytes, wrapper)?;
    let mut object = body::object(inner.as_deref(), wrapper, &mut errors);
    let [value] = body::take_known(&mut object, [field], &mut errors);
    let text = body::required::<String>(value.as_deref(), field, "string", &mut errors);
    match text {
        Some(text) if errors.is_empty() => Ok(text),
        _ => Err(errors.into()),
    }
}

/// `{"subscriber":{"email"}}` (documentation only).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct CreateSubscriberRequest {
    /// Sent by the Node SDK; may instead be in the query string.
    #[schema(nullable = false)]
    site_uuid: Option<SiteUuidText>,
    subscriber: SubscriberFields,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct SubscriberFields {
    email: EmailText,
}

/// Creates a subscriber (or finds the existing one).
///
/// Bento: Subscribers → Create subscriber.
#[utoipa::path(post, path = "/api/v1/fetch/subscribers", tag = "audience",
    request_body = CreateSubscriberRequest,
    responses(
        (status = 200, description = "The subscriber", body = SubscriberEnvelope),
        (status = 422, description = "Missing or invalid email", body = ValidationErrorBody),
    ),
    security(("basic" = [])))]
pub async fn create_subscriber(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let email = wrapped_string(&bytes, "subscriber", "email")?;
    let email = Email::parse(&email).map_err(|m| invalid("email", m))?;
    let now = state.clock.now_ms();
    state
        .store
        .apply_changes(
            caller.site_id,
            vec![SubscriberChange::touch(email.clone())],
            now,
        )
        .await?;
    let subscriber = state
        .store
        .subscriber_by_email(caller.site_id, &email)
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &SubscriberEnvelope {
            data: subscriber.as_ref().map(SubscriberResource::from),
        },
    ))
}

/// The site's tags, in name order.
///
/// Bento: Tags → Get tags.
#[utoipa::path(get, path = "/api/v1/fetch/tags", tag = "audience",
    responses((status = 200, description = "Tags", body = TagListEnvelope)),
    security(("basic" = [])))]
pub async fn list_tags(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    let tags = state.store.list_tags(caller.site_id).await?;
    let data = tags
        .iter()
        .map(|t| tag_resource(t, caller.site_id))
        .collect();
    Ok(json_response(StatusCode::OK, &TagListEnvelope { data }))
}

/// `{"tag":{"name"}}` (documentation only).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct CreateTagRequest {
    /// Sent by the Node SDK; may instead be in the query string.
    #[schema(nullable = false)]
    site_uuid: Option<SiteUuidText>,
    tag: TagFields,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct TagFields {
    name: Name,
}

/// Creates a tag, or answers the one that already has this name (ignoring case).
///
/// Bento: Tags → Create tag.
#[utoipa::path(post, path = "/api/v1/fetch/tags", tag = "audience",
    request_body = CreateTagRequest,
    responses(
        (status = 200, description = "The tag", body = TagEnvelope),
        (status = 422, description = "Missing or invalid name", body = ValidationErrorBody),
    ),
    security(("basic" = [])))]
pub async fn create_tag(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let name = wrapped_string(&bytes, "tag", "name")?;
    let name = TagName::parse(&name).map_err(|m| invalid("name", m))?;
    let tag = state
        .store
        .create_tag(caller.site_id, &name, state.clock.now_ms())
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &TagEnvelope {
            data: tag_resource(&tag, caller.site_id),
        },
    ))
}

/// The site's fields, in key order.
///
/// Bento: Fields → Get fields.
#[utoipa::path(get, path = "/api/v1/fetch/fields", tag = "audience",
    responses((status = 200, description = "Fields", body = FieldListEnvelope)),
    security(("basic" = [])))]
pub async fn list_fields(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    let fields = state.store.list_fields(caller.site_id).await?;
    let data = fields.iter().map(field_resource).collect();
    Ok(json_response(StatusCode::OK, &FieldListEnvelope { data }))
}

/// `{"field":{"key"}}` (documentation only).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct CreateFieldRequest {
    /// Sent by the Node SDK; may instead be in the query string.
    #[schema(nullable = false)]
    site_uuid: Option<SiteUuidText>,
    field: FieldFields,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct FieldFields {
    key: FieldKeyText,
}

/// Registers a field key (normalised: `"First Name"` is `first_name`).
///
/// Bento: Fields → Create field.
#[utoipa::path(post, path = "/api/v1/fetch/fields", tag = "audience",
    request_body = CreateFieldRequest,
    responses(
        (status = 200, description = "The field", body = FieldEnvelope),
        (status = 422, description = "Missing or invalid key", body = ValidationErrorBody),
    ),
    security(("basic" = [])))]
pub async fn create_field(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let written = wrapped_string(&bytes, "field", "key")?;
    let key = FieldKey::parse(&written).map_err(|m| invalid("key", m))?;
    let field = state
        .store
        .create_field(caller.site_id, &key, written.trim(), state.clock.now_ms())
        .await?;
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
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    let counts = state.store.site_counts(caller.site_id).await?;
    Ok(json_response(StatusCode::OK, &counts))
}
