//! Bento's write paths for audience data: `POST /batch/subscribers`,
//! `POST /batch/events` (which the SDK's `track`, `trackPurchase`,
//! `tagSubscriber`, `addSubscriber`, `removeSubscriber` and `updateFields` all
//! use) and `POST /fetch/commands`.
//!
//! Every item becomes a [`SubscriberChange`] and the batch is applied in one
//! transaction, each item all or nothing. The answer is Bento's
//! `{"results":N,"failed":N}`, plus Corral's `errors`: for each failed item its
//! index and why. A `$purchase` already stored under its unique key counts as a
//! result (acknowledged) and is not stored again. A batch holds 1 to 1,000 items.
//! An item that would take its subscriber or the site over one of the caps of
//! [`corral_core::audience::limits`] (or carries a value over its size) fails alone,
//! with a message naming the cap (`subscriber would have 201 fields; at most
//! 200`).

use super::auth::Caller;
use super::respond::json_response;
use super::{ApiError, AppState};
use crate::segment::FieldErrors;
use crate::wire::ValidationErrorBody;
use crate::wire::audience::{
    self as wire, BatchResult, CommandsRequest, ImportEventsRequest, ImportSubscribersRequest,
    ItemError,
};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use corral_core::audience::event::{parse_event, parse_subscriber};
use corral_core::audience::{
    Create, Email, FieldKey, Outcome, SubscriberChange, Subscription, TagName,
};
use serde_json::Value;
use serde_json::value::RawValue;

/// Applies the parsed items and answers the counts.
async fn apply(
    state: &AppState,
    caller: &Caller,
    parsed: Vec<Result<SubscriberChange, String>>,
) -> Result<Response, ApiError> {
    let now = state.clock.now_ms();
    // Valid items go to storage; each slot keeps why an invalid one was not.
    let mut changes = Vec::with_capacity(parsed.len());
    let slots: Vec<Option<String>> = parsed
        .into_iter()
        .map(|item| match item {
            Ok(change) => {
                changes.push(change);
                None
            }
            Err(message) => Some(message),
        })
        .collect();
    let mut outcomes = state
        .store
        .apply_changes(caller.site_id, changes, now)
        .await?
        .into_iter();
    let mut result = BatchResult {
        results: 0,
        failed: 0,
        errors: Vec::new(),
    };
    for (index, slot) in slots.into_iter().enumerate() {
        let outcome = match slot {
            None => outcomes
                .next()
                .unwrap_or(Outcome::Failed("not applied".into())),
            Some(message) => Outcome::Failed(message),
        };
        match outcome {
            Outcome::Applied | Outcome::Duplicate => result.results += 1,
            Outcome::Failed(message) => {
                result.failed += 1;
                result.errors.push(ItemError { index, message });
            }
        }
    }
    Ok(json_response(StatusCode::OK, &result))
}

/// Imports subscribers: each item's `email`, `tags` and `remove_tags`
/// (comma-separated names) and every other key as a field (`null` removes it).
///
/// Bento: Batch → Import subscribers. An item over a cap (fields or tags per
/// subscriber, field keys or tags per site, a value's size) fails alone.
#[utoipa::path(post, path = "/api/v1/batch/subscribers", tag = "audience",
    request_body = ImportSubscribersRequest,
    responses(
        (status = 200, description = "Counts", body = BatchResult),
        (status = 422, description = "No `subscribers` array of 1 to 1,000 items", body = ValidationErrorBody),
    ),
    security(("basic" = [])))]
pub async fn import_subscribers(
    State(state): State<AppState>,
    caller: Caller,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let parsed = wire::batch_items(&bytes, "subscribers")?
        .iter()
        .map(|raw| parse_subscriber(raw))
        .collect();
    apply(&state, &caller, parsed).await
}

/// Imports events: `{"type","email","date"?,"details"?,"fields"?}` each.
///
/// Bento: Batch → Import events. See the README for the special event types.
/// An item over a cap (fields or tags per subscriber, field keys or tags per
/// site, a value's or the details' size) fails alone.
#[utoipa::path(post, path = "/api/v1/batch/events", tag = "audience",
    request_body = ImportEventsRequest,
    responses(
        (status = 200, description = "Counts", body = BatchResult),
        (status = 422, description = "No `events` array of 1 to 1,000 items", body = ValidationErrorBody),
    ),
    security(("basic" = [])))]
pub async fn import_events(
    State(state): State<AppState>,
    caller: Caller,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let now = state.clock.now_ms();
    let parsed = wire::batch_items(&bytes, "events")?
        .iter()
        .map(|raw| parse_event(raw, now))
        .collect();
    apply(&state, &caller, parsed).await
}

/// Runs subscriber commands: `{"command":{…}}` or `{"command":[…]}`, each
/// `{"command","email","query"}` with `command` one of `add_tag`,
/// `remove_tag`, `add_field` (`query` `{"key","value"}`), `remove_field`,
/// `subscribe`, `unsubscribe`, `change_email` (`query` the new email).
///
/// Bento: Commands. A command over a cap (fields or tags per subscriber,
/// field keys or tags per site, a value's size) fails alone.
#[utoipa::path(post, path = "/api/v1/fetch/commands", tag = "audience",
    request_body = CommandsRequest,
    responses(
        (status = 200, description = "Counts", body = BatchResult),
        (status = 422, description = "No `command`", body = ValidationErrorBody),
    ),
    security(("basic" = [])))]
pub async fn commands(
    State(state): State<AppState>,
    caller: Caller,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let list = wire::commands(&bytes)?;
    let now = state.clock.now_ms();
    let parsed = list.iter().map(|raw| parse_command(raw, now)).collect();
    apply(&state, &caller, parsed).await
}

/// The commands `POST /fetch/commands` knows.
const COMMANDS: &str =
    "add_tag, remove_tag, add_field, remove_field, subscribe, unsubscribe, change_email";

fn parse_command(raw: &RawValue, now: i64) -> Result<SubscriberChange, String> {
    let mut errors = FieldErrors::default();
    let command = wire::command(raw, &mut errors);
    let name = command
        .command
        .required::<String>("command", "string", &mut errors);
    let email = command
        .email
        .required::<String>("email", "string", &mut errors);
    if !errors.is_empty() {
        return Err(errors.to_string());
    }
    let (name, email) = (name.unwrap_or_default(), email.unwrap_or_default());
    let email = Email::parse(&email).map_err(|m| format!("email {m}"))?;
    let query: Option<Value> = command
        .query
        .raw()
        .map(|raw| serde_json::from_str(raw.get()))
        .transpose()
        .map_err(|e| e.to_string())?;
    let text_query = || match &query {
        Some(Value::String(text)) => Ok(text.clone()),
        _ => Err(format!("query must be a string for {name}")),
    };
    let mut change = SubscriberChange::touch(email);
    match name.as_str() {
        "add_tag" => change
            .add_tags
            .push(TagName::parse(&text_query()?).map_err(|m| format!("query {m}"))?),
        "remove_tag" => change
            .remove_tags
            .push(TagName::parse(&text_query()?).map_err(|m| format!("query {m}"))?),
        "add_field" => {
            let (key, value) = match &query {
                Some(Value::Object(pair)) => {
                    (pair.get("key").and_then(Value::as_str), pair.get("value"))
                }
                _ => (None, None),
            };
            let key = key.ok_or("query must be {\"key\",\"value\"} for add_field")?;
            let key = FieldKey::parse(key).map_err(|m| format!("query.key {m}"))?;
            match value {
                None | Some(Value::Null) => change.remove_fields.push(key),
                Some(value) => change.set_field(key, value.clone())?,
            }
        }
        "remove_field" => change
            .remove_fields
            .push(FieldKey::parse(&text_query()?).map_err(|m| format!("query {m}"))?),
        "subscribe" => change.subscription = Some(Subscription::Subscribe),
        "unsubscribe" => change.subscription = Some(Subscription::Unsubscribe(now)),
        "change_email" => {
            change.create = Create::Never;
            change.new_email =
                Some(Email::parse(&text_query()?).map_err(|m| format!("query {m}"))?);
        }
        other => return Err(format!("unknown command {other:?}; known: {COMMANDS}")),
    }
    Ok(change)
}
