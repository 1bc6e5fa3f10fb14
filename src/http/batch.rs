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
use super::extract::Extension;
use super::schemas::{EmailText, Name, SiteUuidText};
use super::wire::{ValidationErrorBody, json_response};
use super::{ApiError, AppState, body};
use crate::segment::{FieldError, FieldErrors};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use corral_core::audience::event::{parse_event, parse_subscriber};
use corral_core::audience::{
    Create, Email, FieldKey, Outcome, SubscriberChange, Subscription, TagName,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use utoipa::ToSchema;

/// Items a batch may hold, as the SDK enforces.
pub const MAX_BATCH: usize = 1_000;

/// `{"results":N,"failed":N,"errors":[…]}`
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResult {
    /// Items stored (or acknowledged as already stored).
    pub results: usize,
    /// Items refused; nothing of them was stored.
    pub failed: usize,
    /// Corral extension: why each refused item was refused.
    pub errors: Vec<ItemError>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ItemError {
    /// The item's position in the request, from 0.
    pub index: usize,
    pub message: String,
}

/// Reads `{"<key>":[…]}` with 1 to 1,000 items.
fn items(bytes: &[u8], key: &str) -> Result<Vec<Box<RawValue>>, ApiError> {
    let (value, mut errors) = body::wrapped(bytes, key)?;
    let items = match value.map(|raw| serde_json::from_str::<Vec<Box<RawValue>>>(raw.get())) {
        Some(Ok(items)) if (1..=MAX_BATCH).contains(&items.len()) => items,
        Some(Ok(_)) => {
            errors.push(key, format!("must hold 1 to {MAX_BATCH} items"));
            Vec::new()
        }
        Some(Err(_)) => {
            errors.push(key, "must be a JSON array");
            Vec::new()
        }
        None => Vec::new(),
    };
    errors.finish(|| items).map_err(ApiError::from)
}

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
    Extension(caller): Extension<Caller>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let parsed = items(&bytes, "subscribers")?
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
    Extension(caller): Extension<Caller>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let now = state.clock.now_ms();
    let parsed = items(&bytes, "events")?
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
    Extension(caller): Extension<Caller>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let (value, errors) = body::wrapped(&bytes, "command")?;
    let raw = errors
        .finish(|| value)
        .map_err(ApiError::from)?
        .expect("required above");
    let list: Vec<Box<RawValue>> = if raw.get().trim_start().starts_with('[') {
        serde_json::from_str(raw.get()).map_err(|e| ApiError::MalformedJson(e.to_string()))?
    } else {
        vec![raw]
    };
    if !(1..=MAX_BATCH).contains(&list.len()) {
        return Err(ApiError::Invalid(
            FieldError::new("command", format!("must hold 1 to {MAX_BATCH} commands")).into(),
        ));
    }
    let now = state.clock.now_ms();
    let parsed = list.iter().map(|raw| parse_command(raw, now)).collect();
    apply(&state, &caller, parsed).await
}

/// `{"subscribers":[…]}` (documentation only). An item that breaks a rule
/// is counted in `failed`, with its reason, and the others are stored.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct ImportSubscribersRequest {
    /// Sent by the Node SDK; may instead be in the query string.
    #[schema(nullable = false)]
    site_uuid: Option<SiteUuidText>,
    #[schema(min_items = 1, max_items = 1000)]
    subscribers: Vec<SubscriberItem>,
}

/// One subscriber: its `email`, tags to add and remove, and every other key a
/// field (normalised as field keys are; `null` removes the field).
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct SubscriberItem {
    email: EmailText,
    /// Tags to add: comma-separated names, or a list of names.
    tags: Option<TagNames>,
    /// Tags to remove: comma-separated names, or a list of names.
    remove_tags: Option<TagNames>,
}

/// Tag names: `"lead, mql"` or `["lead","mql"]`.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum TagNames {
    CommaSeparated(String),
    List(Vec<Name>),
}

/// `{"events":[…]}` (documentation only). An item that breaks a rule is
/// counted in `failed`, with its reason, and the others are stored.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct ImportEventsRequest {
    /// Sent by the Node SDK; may instead be in the query string.
    #[schema(nullable = false)]
    site_uuid: Option<SiteUuidText>,
    #[schema(min_items = 1, max_items = 1000)]
    events: Vec<EventItem>,
}

/// One event. Special types: `$subscribe`, `$unsubscribe`, `$tag` and
/// `$remove_tag` (the tag in `details.tag`), `$update_fields`, `$purchase`
/// (`details.value.amount` a number; `details.unique.key` makes it stored
/// once per site however often it is sent).
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct EventItem {
    /// 1–255 characters once trimmed, no control characters.
    #[serde(rename = "type")]
    #[schema(example = "$purchase")]
    kind: Name,
    email: EmailText,
    /// When it happened (RFC 3339); absent or `null`: when it arrived.
    #[schema(format = DateTime)]
    date: Option<String>,
    /// Kept exactly as sent.
    #[schema(value_type = Option<Object>)]
    details: Option<serde_json::Value>,
    /// Merged into the subscriber's fields (`null` removes one).
    #[schema(value_type = Option<Object>)]
    fields: Option<serde_json::Value>,
}

/// `{"command":{…}}` or `{"command":[…]}` (documentation only). A command
/// that breaks a rule is counted in `failed`, with its reason, and the
/// others are run.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct CommandsRequest {
    /// Sent by the Node SDK; may instead be in the query string.
    #[schema(nullable = false)]
    site_uuid: Option<SiteUuidText>,
    command: Commands,
}

/// One command, or a list of 1 to 1,000.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum Commands {
    One(Command),
    Many(CommandList),
}

/// 1 to 1,000 commands.
#[derive(Deserialize, ToSchema)]
#[schema(min_items = 1, max_items = 1000)]
#[allow(dead_code)]
pub struct CommandList(Vec<Command>);

/// A command on one subscriber.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct Command {
    command: CommandName,
    email: EmailText,
    /// The tag name (`add_tag`, `remove_tag`), `{"key","value"}`
    /// (`add_field`; a `null` value removes the field), the field key
    /// (`remove_field`), the new email (`change_email`); none for
    /// `subscribe` and `unsubscribe`.
    #[schema(value_type = Option<Value>)]
    query: Option<serde_json::Value>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum CommandName {
    AddTag,
    RemoveTag,
    AddField,
    RemoveField,
    Subscribe,
    Unsubscribe,
    ChangeEmail,
}

/// The commands `POST /fetch/commands` knows.
const COMMANDS: &str =
    "add_tag, remove_tag, add_field, remove_field, subscribe, unsubscribe, change_email";

fn parse_command(raw: &RawValue, now: i64) -> Result<SubscriberChange, String> {
    let mut errors = FieldErrors::default();
    let mut object = body::object(Some(raw), "command", &mut errors);
    let [name, email, query] =
        body::take_known(&mut object, ["command", "email", "query"], &mut errors);
    let name = body::required::<String>(name.as_deref(), "command", "string", &mut errors);
    let email = body::required::<String>(email.as_deref(), "email", "string", &mut errors);
    if !errors.is_empty() {
        return Err(errors.to_string());
    }
    let (name, email) = (name.unwrap_or_default(), email.unwrap_or_default());
    let email = Email::parse(&email).map_err(|m| format!("email {m}"))?;
    let query: Option<Value> = query
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
