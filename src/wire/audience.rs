//! The audience on the wire: subscribers, tags, fields and events as
//! Bento's resources (`type` `visitors`, `tags`, `visitors-fields`,
//! `events`), their envelopes, and the bodies of the audience writes:
//! creating a subscriber, a tag or a field, the two batch imports and the
//! subscriber commands.
//!
//! The items of a batch are read by the audience rules of the core crate
//! ([`corral_core::audience::event`], which the CLI's import shares);
//! [`SubscriberItem`] and [`EventItem`] are what the OpenAPI document says
//! of them. Everything else here is read into the very type that describes
//! it.

use super::body::{self, BodyError, Given};
use super::strings::{EmailText, FieldKeyText, Name, SiteUuidText};
use crate::clock::format_ms;
use crate::segment::FieldErrors;
use crate::storage::StoredEvent;
use corral_core::audience::{Field, Subscriber, Tag};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
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
    /// When the subscriber was first seen (Corral extension).
    pub created_at: String,
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
                created_at: format_ms(s.created_at),
            },
        }
    }
}

/// `{"data":{…}}` or `{"data":null}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriberEnvelope {
    pub data: Option<SubscriberResource>,
}

/// One page of subscribers, as a search finds them.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriberListEnvelope {
    pub data: Vec<SubscriberResource>,
    pub meta: ListMeta,
}

/// The caller's site (Corral extension): `{"data":{"uuid","name","created_at"}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SiteEnvelope {
    pub data: SiteAttributes,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SiteAttributes {
    #[schema(value_type = SiteUuidText)]
    pub uuid: String,
    /// The name the site was created with (`corral site create NAME`).
    #[schema(example = "Acme newsletter")]
    pub name: String,
    pub created_at: String,
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

pub fn tag_resource(tag: &Tag, site_id: i64) -> TagResource {
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

pub fn field_resource(field: &Field) -> FieldResource {
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

/// One page of tags.
#[derive(Serialize, ToSchema)]
pub struct TagListEnvelope {
    pub data: Vec<TagResource>,
    pub meta: ListMeta,
}

/// Where the next page starts (Corral extension; Bento's SDKs ignore it).
#[derive(Debug, Serialize, ToSchema)]
pub struct ListMeta {
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct FieldEnvelope {
    pub data: FieldResource,
}

/// One page of fields.
#[derive(Serialize, ToSchema)]
pub struct FieldListEnvelope {
    pub data: Vec<FieldResource>,
    pub meta: ListMeta,
}

/// `{"subscriber":{"email"}}`
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSubscriberRequest {
    /// Sent by the Node SDK; may instead be in the query string.
    #[serde(default)]
    #[schema(value_type = Option<SiteUuidText>, nullable = false)]
    pub site_uuid: Given,
    #[serde(default)]
    #[schema(value_type = SubscriberFields, required = true)]
    pub subscriber: Given,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriberFields {
    #[serde(default)]
    #[schema(value_type = EmailText, required = true)]
    pub email: Given,
}

/// `{"tag":{"name"}}`
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTagRequest {
    /// Sent by the Node SDK; may instead be in the query string.
    #[serde(default)]
    #[schema(value_type = Option<SiteUuidText>, nullable = false)]
    pub site_uuid: Given,
    #[serde(default)]
    #[schema(value_type = TagFields, required = true)]
    pub tag: Given,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TagFields {
    #[serde(default)]
    #[schema(value_type = Name, required = true)]
    pub name: Given,
}

/// `{"tag":{"name"}}` of a tag's delete, as the Node SDK's `Tags.deleteTag`
/// sends it; the whole body may be left out.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteTagRequest {
    /// Sent by the Node SDK; may instead be in the query string.
    #[serde(default)]
    #[schema(value_type = Option<SiteUuidText>, nullable = false)]
    pub site_uuid: Given,
    /// When given, `name` must be the tag's (ignoring case): a guard against
    /// deleting another tag than meant.
    #[serde(default)]
    #[schema(value_type = Option<TagFields>, nullable = false)]
    pub tag: Given,
}

/// The answer to a tag's delete: `{"message":"Tag deleted"}`, the shape the
/// Node SDK's `TagDeleteResult` names.
#[derive(Debug, Serialize, ToSchema)]
pub struct TagDeletedBody {
    #[schema(example = "Tag deleted")]
    pub message: &'static str,
}

/// `{"field":{"key"}}`
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateFieldRequest {
    /// Sent by the Node SDK; may instead be in the query string.
    #[serde(default)]
    #[schema(value_type = Option<SiteUuidText>, nullable = false)]
    pub site_uuid: Given,
    #[serde(default)]
    #[schema(value_type = FieldFields, required = true)]
    pub field: Given,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldFields {
    #[serde(default)]
    #[schema(value_type = FieldKeyText, required = true)]
    pub key: Given,
}

/// The email of a `{"subscriber":{"email"}}` body.
pub fn subscriber_email(bytes: &[u8]) -> Result<String, BodyError> {
    let (request, errors) = body::read::<CreateSubscriberRequest>(bytes)?;
    wrapped_string(
        &request.subscriber,
        "subscriber",
        errors,
        "email",
        |f: &SubscriberFields| &f.email,
    )
}

/// The name of a `{"tag":{"name"}}` body.
pub fn tag_name(bytes: &[u8]) -> Result<String, BodyError> {
    let (request, errors) = body::read::<CreateTagRequest>(bytes)?;
    wrapped_string(&request.tag, "tag", errors, "name", |f: &TagFields| &f.name)
}

/// The tag name a delete's body gives (`{"tag":{"name"}}`), if it gives
/// one; an empty body gives none.
pub fn tag_name_to_delete(bytes: &[u8]) -> Result<Option<String>, BodyError> {
    if bytes.is_empty() {
        return Ok(None);
    }
    let (request, mut errors) = body::read::<DeleteTagRequest>(bytes)?;
    // A `tag` object must name the tag (as the schema says); no object
    // leaves the guard out (anything else than an object is refused as
    // one).
    let given = request
        .tag
        .raw()
        .is_some_and(|raw| raw.get().trim_start().starts_with('{'));
    let fields: TagFields = body::nested(&request.tag, "tag", &mut errors);
    let name = if given {
        fields
            .name
            .required::<String>("name", "string", &mut errors)
    } else {
        None
    };
    match errors.is_empty() {
        true => Ok(name),
        false => Err(errors.into()),
    }
}

/// The key, as written, of a `{"field":{"key"}}` body.
pub fn field_key(bytes: &[u8]) -> Result<String, BodyError> {
    let (request, errors) = body::read::<CreateFieldRequest>(bytes)?;
    wrapped_string(&request.field, "field", errors, "key", |f: &FieldFields| {
        &f.key
    })
}

/// The one string field of the object under `wrapper`.
fn wrapped_string<F: DeserializeOwned + Default>(
    wrapped: &Given,
    wrapper: &str,
    mut errors: FieldErrors,
    field: &str,
    take: impl FnOnce(&F) -> &Given,
) -> Result<String, BodyError> {
    if wrapped.raw().is_none() {
        errors.push(wrapper, "is required");
    }
    let fields: F = body::nested(wrapped, wrapper, &mut errors);
    let text = take(&fields).required::<String>(field, "string", &mut errors);
    match text {
        Some(text) if errors.is_empty() => Ok(text),
        _ => Err(errors.into()),
    }
}

/// Events answered when `limit` is not given, and the most allowed.
const DEFAULT_EVENTS: usize = 20;
const MAX_EVENTS: usize = 100;

/// One event on the wire (`type` `events`).
#[derive(Debug, Serialize, ToSchema)]
pub struct EventResource {
    #[schema(example = "1204")]
    pub id: String,
    /// Always `events`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub attributes: EventAttributes,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventAttributes {
    /// The event's type.
    #[serde(rename = "type")]
    #[schema(example = "$purchase")]
    pub kind: String,
    /// When it happened: the event's own date, or when it was received.
    #[schema(example = "2026-11-26T09:00:00.000Z")]
    pub occurred_at: String,
    /// The details exactly as sent.
    #[schema(value_type = Object)]
    pub details: Box<RawValue>,
}

/// `{"data":[…]}`
#[derive(Debug, Serialize, ToSchema)]
pub struct EventListEnvelope {
    pub data: Vec<EventResource>,
}

impl From<StoredEvent> for EventResource {
    fn from(event: StoredEvent) -> Self {
        // Details are stored as the compact JSON object they arrived as.
        let details = RawValue::from_string(event.details)
            .unwrap_or_else(|_| RawValue::from_string("{}".to_owned()).expect("valid JSON"));
        Self {
            id: event.id.to_string(),
            kind: "events",
            attributes: EventAttributes {
                kind: event.kind,
                occurred_at: format_ms(event.occurred_at),
                details,
            },
        }
    }
}

/// Reads `limit`: 1 to [`MAX_EVENTS`], [`DEFAULT_EVENTS`] when absent.
pub fn events_limit(text: Option<&str>) -> Result<usize, String> {
    super::whole_number(text, DEFAULT_EVENTS, 1, MAX_EVENTS)
}

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

/// `{"subscribers":[…]}`. An item that breaks a rule is counted in
/// `failed`, with its reason, and the others are stored.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportSubscribersRequest {
    /// Sent by the Node SDK; may instead be in the query string.
    #[serde(default)]
    #[schema(value_type = Option<SiteUuidText>, nullable = false)]
    pub site_uuid: Given,
    #[serde(default)]
    #[schema(value_type = Vec<SubscriberItem>, required = true, min_items = 1, max_items = 1000)]
    pub subscribers: Given,
}

/// One subscriber: its `email`, tags to add and remove, and every other key a
/// field (normalised as field keys are; `null` removes the field).
#[derive(Deserialize, ToSchema)]
pub struct SubscriberItem {
    pub email: EmailText,
    /// Tags to add: comma-separated names, or a list of names.
    pub tags: Option<TagNames>,
    /// Tags to remove: comma-separated names, or a list of names.
    pub remove_tags: Option<TagNames>,
}

/// Tag names: `"lead, mql"` or `["lead","mql"]`.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub enum TagNames {
    CommaSeparated(String),
    List(Vec<Name>),
}

/// `{"events":[…]}`. An item that breaks a rule is counted in `failed`,
/// with its reason, and the others are stored.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportEventsRequest {
    /// Sent by the Node SDK; may instead be in the query string.
    #[serde(default)]
    #[schema(value_type = Option<SiteUuidText>, nullable = false)]
    pub site_uuid: Given,
    #[serde(default)]
    #[schema(value_type = Vec<EventItem>, required = true, min_items = 1, max_items = 1000)]
    pub events: Given,
}

/// One event. Special types: `$subscribe`, `$unsubscribe`, `$tag` and
/// `$remove_tag` (the tag in `details.tag`), `$update_fields`, `$purchase`
/// (`details.value.amount` a number; `details.unique.key` makes it stored
/// once per site however often it is sent).
#[derive(Deserialize, ToSchema)]
pub struct EventItem {
    /// 1–255 characters once trimmed, no control characters.
    #[serde(rename = "type")]
    #[schema(example = "$purchase")]
    pub kind: Name,
    pub email: EmailText,
    /// When it happened (RFC 3339); absent or `null`: when it arrived.
    #[schema(format = DateTime)]
    pub date: Option<String>,
    /// Kept exactly as sent.
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
    /// Merged into the subscriber's fields (`null` removes one).
    #[schema(value_type = Option<Object>)]
    pub fields: Option<serde_json::Value>,
}

/// The items of a `{"<key>":[…]}` batch body, 1 to [`MAX_BATCH`], unparsed.
pub fn batch_items(bytes: &[u8], key: &str) -> Result<Vec<Box<RawValue>>, BodyError> {
    let (items, mut errors) = match key {
        "subscribers" => {
            body::read::<ImportSubscribersRequest>(bytes).map(|(r, e)| (r.subscribers, e))?
        }
        _ => body::read::<ImportEventsRequest>(bytes).map(|(r, e)| (r.events, e))?,
    };
    let items = match items.raw() {
        None => {
            errors.push(key, "is required");
            Vec::new()
        }
        Some(raw) => match serde_json::from_str::<Vec<Box<RawValue>>>(raw.get()) {
            Ok(items) if (1..=MAX_BATCH).contains(&items.len()) => items,
            Ok(_) => {
                errors.push(key, format!("must hold 1 to {MAX_BATCH} items"));
                Vec::new()
            }
            Err(_) => {
                errors.push(key, "must be a JSON array");
                Vec::new()
            }
        },
    };
    errors.finish(|| items).map_err(BodyError::from)
}

/// `{"command":{…}}` or `{"command":[…]}`. A command that breaks a rule is
/// counted in `failed`, with its reason, and the others are run.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandsRequest {
    /// Sent by the Node SDK; may instead be in the query string.
    #[serde(default)]
    #[schema(value_type = Option<SiteUuidText>, nullable = false)]
    pub site_uuid: Given,
    #[serde(default)]
    #[schema(value_type = Commands, required = true)]
    pub command: Given,
}

/// One command, or a list of 1 to 1,000.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Commands {
    One(Command),
    Many(CommandList),
}

/// 1 to 1,000 commands.
#[derive(Deserialize, ToSchema)]
#[schema(min_items = 1, max_items = 1000)]
pub struct CommandList(pub Vec<Command>);

/// A command on one subscriber.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Command {
    #[serde(default)]
    #[schema(value_type = CommandName, required = true)]
    pub command: Given,
    #[serde(default)]
    #[schema(value_type = EmailText, required = true)]
    pub email: Given,
    /// The tag name (`add_tag`, `remove_tag`), `{"key","value"}`
    /// (`add_field`; a `null` value removes the field), the field key
    /// (`remove_field`), the new email (`change_email`); none for
    /// `subscribe` and `unsubscribe`.
    #[serde(default)]
    #[schema(value_type = Option<Value>)]
    pub query: Given,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CommandName {
    AddTag,
    RemoveTag,
    AddField,
    RemoveField,
    Subscribe,
    Unsubscribe,
    ChangeEmail,
}

/// The commands of a `{"command":…}` body, 1 to [`MAX_BATCH`], unparsed.
pub fn commands(bytes: &[u8]) -> Result<Vec<Box<RawValue>>, BodyError> {
    let (request, mut errors) = body::read::<CommandsRequest>(bytes)?;
    if request.command.raw().is_none() {
        errors.push("command", "is required");
    }
    errors.finish(|| ())?;
    let raw = request.command.0.expect("required above");
    let text = raw.get().trim_start();
    let list: Vec<Box<RawValue>> = if text.starts_with('[') {
        serde_json::from_str(raw.get()).map_err(|e| BodyError::Malformed(e.to_string()))?
    } else if text.starts_with('{') {
        vec![raw]
    } else {
        // Neither one command nor a list: no command at all, refused whole.
        let message = "must be a JSON object or array";
        return Err(FieldErrors::from(crate::segment::FieldError::new("command", message)).into());
    };
    if !(1..=MAX_BATCH).contains(&list.len()) {
        let message = format!("must hold 1 to {MAX_BATCH} commands");
        return Err(FieldErrors::from(crate::segment::FieldError::new("command", message)).into());
    }
    Ok(list)
}

/// One command's fields, read as [`body::nested`] reads an object: unknown
/// keys and a command that is not an object go to `errors`.
pub fn command(raw: &RawValue, errors: &mut FieldErrors) -> Command {
    body::nested(&Given(Some(raw.to_owned())), "command", errors)
}
