//! Corral's views of one subscriber, beside Bento's lookup
//! (`GET /fetch/subscribers`): the segments they are in now, and their most
//! recent events. Both find the subscriber by `email`, answer in Bento's
//! envelope (`{"data":[…]}`, string ids), and say
//! `404 {"error":"Subscriber not found"}` for an address the site does not
//! have.
//!
//! - `GET /fetch/subscribers/segments?email=…`: every kept segment whose
//!   query holds for the subscriber, evaluated live as the match endpoint
//!   does ([`crate::service::membership`]), as segment resources in Bento's
//!   list order.
//! - `GET /fetch/subscribers/events?email=…&limit=…`: the latest events
//!   first, each `{"id","type":"events","attributes":{"type","occurred_at","details"}}`.

use super::auth::Caller;
use super::extract::QueryParams;
use super::respond::{bytes_response, json_response};
use super::{ApiError, AppState};
use crate::segment::FieldError;
use crate::wire::audience::{EventListEnvelope, EventResource, events_limit};
use crate::wire::segments::{SegmentListEnvelope, segment_list_body};
use crate::wire::strings::EmailText;
use crate::wire::{ErrorBody, ValidationErrorBody};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use corral_core::audience::{Email, Subscriber};
use serde::Deserialize;

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::Invalid(FieldError::new(field, message).into())
}

/// The subscriber an `email` parameter names, or the 422 / 404 that says why not.
async fn by_email(
    state: &AppState,
    site_id: i64,
    email: Option<&str>,
) -> Result<Subscriber, ApiError> {
    let email = email.ok_or_else(|| invalid("email", "is required"))?;
    let email = Email::parse(email).map_err(|m| invalid("email", m))?;
    state
        .store
        .subscriber_by_email(site_id, &email)
        .await?
        .ok_or(ApiError::SubscriberNotFound)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SubscriberSegmentsParams {
    /// The subscriber's email (case does not matter).
    #[param(value_type = EmailText, required = true)]
    email: Option<String>,
}

/// The segments a subscriber is in, now.
///
/// Corral extension. Every kept segment of the site is evaluated live for
/// this one subscriber (as `POST /fetch/segments/{id}/match` does); those
/// whose query holds are answered as in `GET /fetch/segments`, in its order.
/// Segments kept as `{"foreign": …}` are never evaluated, so never listed.
#[utoipa::path(get, path = "/api/v1/fetch/subscribers/segments", tag = "audience",
    params(SubscriberSegmentsParams),
    responses(
        (status = 200, description = "The segments the subscriber is in", body = SegmentListEnvelope),
        (status = 404, description = "No subscriber with this email on this site", body = ErrorBody),
        (status = 422, description = "No email, an invalid one, or a segment's query cannot be evaluated", body = ValidationErrorBody),
    ),
    security(("basic" = [])))]
pub async fn segments(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(params): QueryParams<SubscriberSegmentsParams>,
) -> Result<Response, ApiError> {
    let subscriber = by_email(&state, caller.site_id, params.email.as_deref()).await?;
    let segments = crate::service::membership::segments_of(
        state.store.as_ref(),
        &state.live,
        caller.site_id,
        subscriber.id,
        state.clock.now_ms(),
    )
    .await?;
    Ok(bytes_response(StatusCode::OK, segment_list_body(&segments)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SubscriberEventsParams {
    /// The subscriber's email (case does not matter).
    #[param(value_type = EmailText, required = true)]
    email: Option<String>,
    /// How many events, 1 to 100 (default 20).
    #[param(value_type = Option<u8>, minimum = 1, maximum = 100)]
    limit: Option<String>,
}

/// A subscriber's most recent events.
///
/// Corral extension. The latest first (by when they happened, then the
/// latest stored first), with their details as sent.
#[utoipa::path(get, path = "/api/v1/fetch/subscribers/events", tag = "audience",
    params(SubscriberEventsParams),
    responses(
        (status = 200, description = "The most recent events, latest first", body = EventListEnvelope),
        (status = 404, description = "No subscriber with this email on this site", body = ErrorBody),
        (status = 422, description = "No email, an invalid one, or a bad limit", body = ValidationErrorBody),
    ),
    security(("basic" = [])))]
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(params): QueryParams<SubscriberEventsParams>,
) -> Result<Response, ApiError> {
    let limit = events_limit(params.limit.as_deref()).map_err(|m| invalid("limit", m))?;
    let subscriber = by_email(&state, caller.site_id, params.email.as_deref()).await?;
    let events = state
        .store
        .recent_events(caller.site_id, subscriber.id, limit)
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &EventListEnvelope {
            data: events.into_iter().map(EventResource::from).collect(),
        },
    ))
}
