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
use super::extract::QueryParams;
use super::respond::json_response;
use super::{ApiError, AppState};
use crate::segment::{FieldError, FieldErrors};
use crate::service::webhooks::Webhooks;
use crate::webhooks::WebhookError;
use crate::wire::webhooks::{
    DeliveryEnvelope, DeliveryListEnvelope, WebhookEnvelope, WebhookListEnvelope, WebhookRequest,
    deliveries_limit, delivery_resource, webhook_input, webhook_resource,
};
use crate::wire::{ErrorBody, ValidationErrorBody};
use axum::body::Bytes;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use serde::Deserialize;

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
    caller: Caller,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let input = webhook_input(&bytes)?;
    let webhook = service(&state)
        .create(caller.site_id, input, state.clock.now_ms(), &caller.actor())
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
pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
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
    caller: Caller,
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
    caller: Caller,
    WebhookPath(id, _): WebhookPath,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let input = webhook_input(&bytes)?;
    let webhook = service(&state)
        .update(
            caller.site_id,
            id,
            input,
            state.clock.now_ms(),
            &caller.actor(),
        )
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
    caller: Caller,
    WebhookPath(id, _): WebhookPath,
) -> Result<Response, ApiError> {
    let webhook = service(&state)
        .delete(caller.site_id, id, state.clock.now_ms(), &caller.actor())
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &WebhookEnvelope {
            data: webhook_resource(&webhook, false),
        },
    ))
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
    caller: Caller,
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
    caller: Caller,
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
