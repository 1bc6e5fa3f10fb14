//! The Webhooks API (Corral's): membership-change webhooks of a site, in
//! Bento's conventions (Basic auth, `site_uuid`, the `{"data":…}` envelope,
//! string ids), and their recent deliveries.
//!
//! - `POST /api/v1/fetch/webhooks` creates one; the signing `secret` is in
//!   this answer only.
//! - `GET /api/v1/fetch/webhooks`, and `GET`/`PATCH`/`DELETE
//!   /api/v1/fetch/webhooks/{id}`.
//! - `GET /api/v1/fetch/webhooks/{id}/deliveries` and `POST
//!   …/deliveries/{delivery_id}/retry`.

use super::auth::Caller;
use super::body::{self, Object};
use super::extract::{Extension, QueryParams};
use super::wire::{ErrorBody, ValidationErrorBody, json_response};
use super::{ApiError, AppState};
use crate::clock::format_ms;
use crate::segment::{FieldError, FieldErrors};
use crate::service::webhooks::{WebhookInput, Webhooks};
use crate::storage::webhooks::{Delivery, Webhook};
use crate::webhooks::WebhookError;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

/// A webhook, as the API shows it.
#[derive(Serialize, ToSchema)]
pub struct WebhookResource {
    #[schema(example = "1")]
    id: String,
    #[serde(rename = "type")]
    #[schema(example = "webhooks")]
    kind: &'static str,
    attributes: WebhookAttributes,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookAttributes {
    #[schema(example = "https://hooks.example.com/corral")]
    url: String,
    #[schema(example = json!(["1", "2"]))]
    segment_ids: Vec<String>,
    #[schema(example = json!(["segment.member_added", "segment.member_removed"]))]
    events: Vec<String>,
    /// The signing secret: only in the answer that created the webhook.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
    created_at: String,
    updated_at: String,
    /// Set when deliveries failed for 3 days; `PATCH` with
    /// `"disabled": false` enables the webhook again.
    disabled_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookEnvelope {
    data: WebhookResource,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookListEnvelope {
    data: Vec<WebhookResource>,
}

/// One notification and how its delivery stands.
#[derive(Serialize, ToSchema)]
pub struct DeliveryResource {
    #[schema(example = "17")]
    id: String,
    #[serde(rename = "type")]
    #[schema(example = "webhook_deliveries")]
    kind: &'static str,
    attributes: DeliveryAttributes,
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryAttributes {
    /// Stable across retries.
    event_id: String,
    /// `pending` (not tried yet), `failing` (tried, will be tried again) or
    /// `delivered`.
    #[schema(example = "delivered")]
    status: &'static str,
    attempts: i64,
    /// When it will be tried next (`null` once delivered).
    next_attempt_at: Option<String>,
    /// The receiver's status code at the last attempt.
    last_response_code: Option<i64>,
    last_error: Option<String>,
    created_at: String,
    delivered_at: Option<String>,
    /// The notification as sent.
    #[schema(value_type = Object)]
    notification: Box<RawValue>,
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryEnvelope {
    data: DeliveryResource,
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryListEnvelope {
    data: Vec<DeliveryResource>,
}

/// `{"webhook": {…}}`; every field may be left out of a `PATCH`.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct WebhookRequest {
    webhook: WebhookFields,
}

#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct WebhookFields {
    /// An absolute `http`/`https` URL; loopback, private and link-local
    /// targets are refused unless the server allows them.
    #[schema(example = "https://hooks.example.com/corral", max_length = 2048)]
    url: Option<String>,
    /// The kept segments of this site to watch (1 to 50).
    #[schema(example = json!(["1", "2"]))]
    segment_ids: Option<Vec<String>>,
    /// What to be told about; both when left out of a creation.
    #[schema(example = json!(["segment.member_added", "segment.member_removed"]))]
    events: Option<Vec<String>>,
    /// `false` enables a webhook disabled after failing; `true` disables it.
    disabled: Option<bool>,
}

fn webhook_resource(webhook: &Webhook, with_secret: bool) -> WebhookResource {
    WebhookResource {
        id: webhook.id.to_string(),
        kind: "webhooks",
        attributes: WebhookAttributes {
            url: webhook.url.clone(),
            segment_ids: webhook.segment_ids.iter().map(i64::to_string).collect(),
            events: webhook
                .events
                .iter()
                .map(|e| e.as_str().to_owned())
                .collect(),
            secret: with_secret.then(|| webhook.secret.clone()),
            created_at: format_ms(webhook.created_at),
            updated_at: format_ms(webhook.updated_at),
            disabled_at: webhook.disabled_at.map(format_ms),
        },
    }
}

fn delivery_resource(delivery: &Delivery) -> DeliveryResource {
    let status = match (delivery.delivered_at, delivery.attempts) {
        (Some(_), _) => "delivered",
        (None, 0) => "pending",
        (None, _) => "failing",
    };
    DeliveryResource {
        id: delivery.id.to_string(),
        kind: "webhook_deliveries",
        attributes: DeliveryAttributes {
            event_id: delivery.event_id.clone(),
            status,
            attempts: delivery.attempts,
            next_attempt_at: delivery
                .delivered_at
                .is_none()
                .then(|| format_ms(delivery.next_attempt_at)),
            last_response_code: delivery.last_status,
            last_error: delivery.last_error.clone(),
            created_at: format_ms(delivery.created_at),
            delivered_at: delivery.delivered_at.map(format_ms),
            notification: RawValue::from_string(delivery.body.clone())
                .unwrap_or_else(|_| RawValue::from_string("{}".into()).expect("valid JSON")),
        },
    }
}

/// `{"data": webhook}` as the API answers it (the secret only when asked).
pub fn webhook_body(webhook: &Webhook, with_secret: bool) -> WebhookEnvelope {
    WebhookEnvelope {
        data: webhook_resource(webhook, with_secret),
    }
}

/// `{"data": [webhook, …]}`, without secrets.
pub fn webhook_list_body(webhooks: &[Webhook]) -> WebhookListEnvelope {
    WebhookListEnvelope {
        data: webhooks
            .iter()
            .map(|w| webhook_resource(w, false))
            .collect(),
    }
}

/// `{"data": [delivery, …]}`.
pub fn delivery_list_body(deliveries: &[Delivery]) -> DeliveryListEnvelope {
    DeliveryListEnvelope {
        data: deliveries.iter().map(delivery_resource).collect(),
    }
}

impl From<WebhookError> for ApiError {
    fn from(error: WebhookError) -> Self {
        match error {
            WebhookError::Invalid(errors) => Self::Invalid(errors),
            WebhookError::NotFound => Self::WebhookNotFound,
            WebhookError::DeliveryNotFound => Self::DeliveryNotFound,
            WebhookError::Live(e) => e.into(),
            WebhookError::Storage(e) => e.into(),
        }
    }
}

fn service(state: &AppState) -> Webhooks<'_> {
    Webhooks::new(
        &state.store,
        &state.live,
        state.settings.allow_private_webhook_targets,
    )
}

/// The ids in a route: `{id}` and, for a delivery, `{delivery_id}`; a path
/// that names no id is a 404.
pub struct WebhookPath(i64, Option<i64>);

impl<S: Send + Sync> FromRequestParts<S> for WebhookPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        // The same rule as a segment's id: a positive decimal integer.
        let id = corral_core::query::ast::segment_id;
        // Nested routers see the path without their prefixes.
        let path = parts.uri.path();
        let rest = path
            .split_once("/webhooks/")
            .map(|(_, rest)| rest)
            .ok_or(ApiError::WebhookNotFound)?;
        let mut pieces = rest.split('/');
        let webhook = pieces
            .next()
            .and_then(id)
            .ok_or(ApiError::WebhookNotFound)?;
        let delivery = match (pieces.next(), pieces.next()) {
            (Some("deliveries"), Some(d)) => Some(id(d).ok_or(ApiError::DeliveryNotFound)?),
            _ => None,
        };
        Ok(Self(webhook, delivery))
    }
}

/// Reads `{"webhook": {…}}`.
fn webhook_input(bytes: &[u8]) -> Result<WebhookInput, ApiError> {
    let (raw, mut errors) = body::wrapped(bytes, "webhook")?;
    let mut object: Object = body::object(raw.as_deref(), "webhook", &mut errors);
    let [url, segment_ids, events, disabled] = body::take_known(
        &mut object,
        ["url", "segment_ids", "events", "disabled"],
        &mut errors,
    );
    let mut input = WebhookInput::default();
    let field = |raw: &Option<Box<RawValue>>| raw.as_ref().map(|r| r.get().to_owned());
    if let Some(text) = field(&url) {
        match serde_json::from_str::<String>(&text) {
            Ok(url) => input.url = Some(url),
            Err(_) => errors.push("url", "must be a string"),
        }
    }
    if let Some(text) = field(&segment_ids) {
        match serde_json::from_str::<Vec<String>>(&text) {
            Ok(ids) => {
                let parsed: Option<Vec<i64>> = ids
                    .iter()
                    .map(|id| crate::segment::SegmentId::parse(id).map(|s| s.0))
                    .collect();
                match parsed {
                    Some(parsed) => input.segment_ids = Some(parsed),
                    None => errors.push("segment_ids", "must be segment ids"),
                }
            }
            Err(_) => errors.push("segment_ids", "must be an array of string ids"),
        }
    }
    if let Some(text) = field(&events) {
        match serde_json::from_str::<Vec<String>>(&text) {
            Ok(events) => input.events = Some(events),
            Err(_) => errors.push("events", "must be an array of strings"),
        }
    }
    if let Some(text) = field(&disabled) {
        match serde_json::from_str::<bool>(&text) {
            Ok(disabled) => input.disabled = Some(disabled),
            Err(_) => errors.push("disabled", "must be true or false"),
        }
    }
    errors.finish(|| input).map_err(ApiError::Invalid)
}

/// Creates a webhook watching segments of the site.
///
/// Corral extension. Its `secret` signs every delivery and is shown in this
/// answer only. Creating a webhook announces nobody: only changes from now on
/// are notified.
#[utoipa::path(
    post,
    path = "/api/v1/fetch/webhooks",
    tag = "webhooks",
    request_body = WebhookRequest,
    responses(
        (status = 201, description = "The webhook, with its secret", body = WebhookEnvelope),
        (status = 422, description = "Breaks the rules listed", body = ValidationErrorBody),
    ),
    security(("basic" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let input = webhook_input(&bytes)?;
    let webhook = service(&state)
        .create(caller.site_id, input, state.clock.now_ms())
        .await?;
    Ok(json_response(
        StatusCode::CREATED,
        &WebhookEnvelope {
            data: webhook_resource(&webhook, true),
        },
    ))
}

/// Lists the site's webhooks, oldest first (without their secrets).
#[utoipa::path(
    get,
    path = "/api/v1/fetch/webhooks",
    tag = "webhooks",
    responses((status = 200, description = "The site's webhooks", body = WebhookListEnvelope)),
    security(("basic" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    let webhooks = service(&state).list(caller.site_id).await?;
    Ok(json_response(
        StatusCode::OK,
        &WebhookListEnvelope {
            data: webhooks
                .iter()
                .map(|w| webhook_resource(w, false))
                .collect(),
        },
    ))
}

/// One webhook of the site (without its secret).
#[utoipa::path(
    get,
    path = "/api/v1/fetch/webhooks/{id}",
    tag = "webhooks",
    params(("id" = String, Path, description = "The webhook's id")),
    responses(
        (status = 200, description = "The webhook", body = WebhookEnvelope),
        (status = 404, description = "No such webhook on this site", body = ErrorBody),
    ),
    security(("basic" = []))
)]
pub async fn show(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    WebhookPath(id, _): WebhookPath,
) -> Result<Response, ApiError> {
    let webhook = service(&state).get(caller.site_id, id).await?;
    Ok(json_response(
        StatusCode::OK,
        &WebhookEnvelope {
            data: webhook_resource(&webhook, false),
        },
    ))
}

/// Changes a webhook's URL, segments or events, or enables it again.
#[utoipa::path(
    patch,
    path = "/api/v1/fetch/webhooks/{id}",
    tag = "webhooks",
    params(("id" = String, Path, description = "The webhook's id")),
    request_body = WebhookRequest,
    responses(
        (status = 200, description = "The changed webhook", body = WebhookEnvelope),
        (status = 404, description = "No such webhook on this site", body = ErrorBody),
        (status = 422, description = "Breaks the rules listed", body = ValidationErrorBody),
    ),
    security(("basic" = []))
)]
pub async fn update(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    WebhookPath(id, _): WebhookPath,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let input = webhook_input(&bytes)?;
    let webhook = service(&state)
        .update(caller.site_id, id, input, state.clock.now_ms())
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &WebhookEnvelope {
            data: webhook_resource(&webhook, false),
        },
    ))
}

/// Deletes a webhook and its undelivered notifications.
#[utoipa::path(
    delete,
    path = "/api/v1/fetch/webhooks/{id}",
    tag = "webhooks",
    params(("id" = String, Path, description = "The webhook's id")),
    responses(
        (status = 200, description = "The deleted webhook", body = WebhookEnvelope),
        (status = 404, description = "No such webhook on this site", body = ErrorBody),
    ),
    security(("basic" = []))
)]
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    WebhookPath(id, _): WebhookPath,
) -> Result<Response, ApiError> {
    let webhook = service(&state).delete(caller.site_id, id).await?;
    Ok(json_response(
        StatusCode::OK,
        &WebhookEnvelope {
            data: webhook_resource(&webhook, false),
        },
    ))
}

/// How many deliveries to list: 1 to 100, 50 when not said.
pub fn deliveries_limit(text: Option<&str>) -> Result<usize, String> {
    super::extract::whole_number(text, 50, 1, 100)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryParams {
    /// How many, newest first (1 to 100; 50 when left out).
    limit: Option<String>,
}

/// A webhook's most recent notifications and how their delivery stands.
#[utoipa::path(
    get,
    path = "/api/v1/fetch/webhooks/{id}/deliveries",
    tag = "webhooks",
    params(("id" = String, Path, description = "The webhook's id"), DeliveryParams),
    responses(
        (status = 200, description = "Newest first", body = DeliveryListEnvelope),
        (status = 404, description = "No such webhook on this site", body = ErrorBody),
        (status = 422, description = "A bad `limit`", body = ValidationErrorBody),
    ),
    security(("basic" = []))
)]
pub async fn deliveries(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    WebhookPath(id, _): WebhookPath,
    QueryParams(params): QueryParams<DeliveryParams>,
) -> Result<Response, ApiError> {
    let limit = deliveries_limit(params.limit.as_deref())
        .map_err(|m| ApiError::Invalid(FieldErrors::from(FieldError::new("limit", m))))?;
    let deliveries = service(&state)
        .deliveries(caller.site_id, id, limit)
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &DeliveryListEnvelope {
            data: deliveries.iter().map(delivery_resource).collect(),
        },
    ))
}

/// Makes an undelivered notification due now (with the ones before it:
/// notifications go out in order).
#[utoipa::path(
    post,
    path = "/api/v1/fetch/webhooks/{id}/deliveries/{delivery_id}/retry",
    tag = "webhooks",
    params(
        ("id" = String, Path, description = "The webhook's id"),
        ("delivery_id" = String, Path, description = "The delivery's id"),
    ),
    responses(
        (status = 200, description = "The delivery, due now", body = DeliveryEnvelope),
        (status = 404, description = "No such webhook, or no such undelivered notification", body = ErrorBody),
    ),
    security(("basic" = []))
)]
pub async fn retry(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    WebhookPath(id, delivery): WebhookPath,
) -> Result<Response, ApiError> {
    let delivery = delivery.ok_or(ApiError::DeliveryNotFound)?;
    let retried = service(&state)
        .retry(caller.site_id, id, delivery, state.clock.now_ms())
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &DeliveryEnvelope {
            data: delivery_resource(&retried),
        },
    ))
}
