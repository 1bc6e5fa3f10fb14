//! The subscriber routes: Bento's lookup and creation, and Corral's views of
//! one subscriber (the segments they are in now, their most recent events).
//!
//! - `GET /fetch/subscribers?email=…|uuid=…`: one subscriber, or
//!   `{"data":null}` when there is none (the Node SDK then returns `null`).
//! - `POST /fetch/subscribers` `{"subscriber":{"email"}}`: creates the
//!   subscriber if new; either way answers it.
//!
//! The two views find the subscriber by `email`, answer in Bento's envelope
//! (`{"data":[…]}`, string ids), and say `404 {"error":"Subscriber not
//! found"}` for an address the site does not have:
//!
//! - `GET /fetch/subscribers/segments?email=…`: every kept segment whose
//!   query holds for the subscriber, evaluated live as the match endpoint
//!   does ([`crate::service::membership`]), as segment resources in Bento's
//!   list order.
//! - `GET /fetch/subscribers/events?email=…&limit=…`: the latest events
//!   first, each `{"id","type":"events","attributes":{"type","occurred_at","details"}}`.
//!
//! And a search, a page at a time:
//! `GET /fetch/subscribers/search?q=…&limit=…&cursor=…` answers
//! `{"data":[…],"meta":{"next_cursor"}}`, the subscribers whose email
//! starts with `q`, whose `first_name`, `last_name` or `name` starts with
//! it, or who hold the tag named `q`, in email order
//! ([`AudienceStore::search_subscribers`](crate::storage::AudienceStore::search_subscribers)).

use super::auth::Caller;
use super::extract::QueryParams;
use super::respond::{bytes_response, json_response};
use super::{ApiError, AppState};
use crate::segment::FieldError;
use crate::wire::audience::{
    CreateSubscriberRequest, EventListEnvelope, EventResource, ListMeta, SubscriberEnvelope,
    SubscriberListEnvelope, SubscriberResource, events_limit, subscriber_email,
};
use crate::wire::segments::{SegmentListEnvelope, segment_list_body};
use crate::wire::strings::EmailText;
use crate::wire::{ErrorBody, ValidationErrorBody};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use corral_core::audience::{Email, Subscriber, SubscriberChange};
use serde::Deserialize;

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::Invalid(FieldError::new(field, message).into())
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
    operation_id = "find_subscriber",
    params(SubscriberLookup),
    responses(
        (status = 200, description = "The subscriber, or `data: null`", body = SubscriberEnvelope),
        (status = 422, description = "Neither email nor uuid, or an invalid email", body = ValidationErrorBody),
    ),
    security(("basic" = [])))]
pub async fn find(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(lookup): QueryParams<SubscriberLookup>,
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

/// Creates a subscriber (or finds the existing one).
///
/// Bento: Subscribers → Create subscriber.
#[utoipa::path(post, path = "/api/v1/fetch/subscribers", tag = "audience",
    operation_id = "create_subscriber",
    request_body = CreateSubscriberRequest,
    responses(
        (status = 200, description = "The subscriber", body = SubscriberEnvelope),
        (status = 422, description = "Missing or invalid email", body = ValidationErrorBody),
    ),
    security(("basic" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let email = subscriber_email(&bytes)?;
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
pub struct SubscriberHistoryParams {
    /// The subscriber's email (case does not matter).
    #[param(value_type = EmailText, required = true)]
    email: Option<String>,
    /// How many, 1 to 100 (default 20).
    #[param(value_type = Option<u8>, minimum = 1, maximum = 100)]
    limit: Option<String>,
}

/// The segments a subscriber joined and left, with when and why.
///
/// Corral extension. From the membership journal, newest first: each is
/// the object a webhook notification carries, for every segment (kept or
/// discarded) the subscriber moved in or out of since its history began.
#[utoipa::path(get, path = "/api/v1/fetch/subscribers/history", tag = "history",
    params(SubscriberHistoryParams),
    responses(
        (status = 200, description = "The latest joins and leaves, newest first", body = crate::wire::history::SubscriberChangesEnvelope),
        (status = 404, description = "No subscriber with this email on this site", body = ErrorBody),
        (status = 422, description = "No email, an invalid one, or a bad limit", body = ValidationErrorBody),
    ),
    security(("basic" = [])))]
pub async fn history(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(params): QueryParams<SubscriberHistoryParams>,
) -> Result<Response, ApiError> {
    let limit = events_limit(params.limit.as_deref()).map_err(|m| invalid("limit", m))?;
    let subscriber = by_email(&state, caller.site_id, params.email.as_deref()).await?;
    let changes = crate::service::history::of_subscriber(
        state.store.as_ref(),
        caller.site_id,
        &subscriber,
        limit,
    )
    .await?;
    Ok(bytes_response(
        StatusCode::OK,
        crate::wire::history::subscriber_changes_body(&changes),
    ))
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

/// Subscribers a search answers per page, by default and at most.
const SEARCH_PAGE: usize = 25;
const MAX_SEARCH_PAGE: usize = 100;
/// The longest search, in characters: longer than any email or tag name.
const MAX_SEARCH_CHARS: usize = 255;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// What to look for: the start of an email, the start of a
    /// `first_name`, `last_name` or `name` field, or a tag's whole name.
    /// Case does not matter; spaces around it are ignored. Empty or absent:
    /// every subscriber.
    #[param(max_length = 255)]
    q: Option<String>,
    /// Subscribers per page, 1 to 100 (default 25).
    #[param(value_type = Option<u8>, minimum = 1, maximum = 100)]
    limit: Option<String>,
    /// `meta.next_cursor` of the previous page; absent for the first.
    cursor: Option<String>,
}

/// A search's cursor: the lowercase email of a page's last subscriber,
/// opaque to clients.
fn encode_search_cursor(after: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("search:{after}"))
}

/// The lowercase email a search's `cursor` continues after (none: the first
/// page); one this API did not give out is a 422 naming it.
fn search_cursor(cursor: Option<&str>) -> Result<Option<String>, ApiError> {
    let decode = |cursor: &str| {
        let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let after = text.strip_prefix("search:")?;
        // No email holds a control character (nor may a database's text
        // hold NUL).
        (!after.chars().any(char::is_control)).then(|| after.to_owned())
    };
    match cursor {
        None | Some("") => Ok(None),
        Some(cursor) => decode(cursor).map(Some).ok_or_else(|| {
            invalid(
                "cursor",
                "is not a cursor this API gave out (use meta.next_cursor)",
            )
        }),
    }
}

/// Finds subscribers by the start of their email or name, or by a tag.
///
/// Corral extension. The subscribers whose email starts with `q`, whose
/// `first_name`, `last_name` or `name` field is text that starts with it
/// (those of the three the site has), or who hold the tag named `q` (the
/// whole name), ignoring case, each as `GET /fetch/subscribers` answers
/// one, in the order of their lowercase email. An empty `q` lists every subscriber. `meta.next_cursor`
/// continues after the page's last subscriber: it names a position, so it
/// stays valid whatever changes meanwhile.
#[utoipa::path(get, path = "/api/v1/fetch/subscribers/search", tag = "audience",
    operation_id = "search_subscribers",
    params(SearchParams),
    responses(
        (status = 200, description = "One page of subscribers, in email order", body = SubscriberListEnvelope),
        (status = 422, description = "A bad q, limit or cursor", body = ValidationErrorBody),
    ),
    security(("basic" = [])))]
pub async fn search(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(params): QueryParams<SearchParams>,
) -> Result<Response, ApiError> {
    let text = params.q.as_deref().unwrap_or("").trim();
    if text.chars().count() > MAX_SEARCH_CHARS {
        return Err(invalid(
            "q",
            format!("is too long (at most {MAX_SEARCH_CHARS} characters)"),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(invalid("q", "must not contain control characters"));
    }
    let limit = crate::wire::whole_number(params.limit.as_deref(), SEARCH_PAGE, 1, MAX_SEARCH_PAGE)
        .map_err(|m| invalid("limit", m))?;
    let after = search_cursor(params.cursor.as_deref())?;
    let page = state
        .store
        .search_subscribers(caller.site_id, text, after.as_deref(), limit)
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &SubscriberListEnvelope {
            data: page.items.iter().map(SubscriberResource::from).collect(),
            meta: ListMeta {
                next_cursor: page.next_after.as_deref().map(encode_search_cursor),
            },
        },
    ))
}
