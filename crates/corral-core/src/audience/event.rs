//! Reading Bento's batch items, the events of `POST /batch/events` and the
//! subscribers of `POST /batch/subscribers` (and the same lines in the CLI
//! importer), into [`SubscriberChange`]s.
//!
//! An event is `{"type","email","date"?,"details"?,"fields"?}`. Every event is
//! recorded with its `details` exactly as sent and its `date` (or the time of
//! receipt); its `fields` are merged into the subscriber's. The special types
//! also change the subscriber:
//!
//! | type | effect |
//! |---|---|
//! | `$subscribe` | subscribed again (fields merged as for any event) |
//! | `$unsubscribe` | unsubscribed as of the event's date |
//! | `$tag`, `$remove_tag` | adds or removes the tag named by `details.tag`, creating it as needed |
//! | `$update_fields` | fields merged (as for any event) |
//! | `$purchase` | `details.value.amount` (a number) and `currency` kept for sums; with `details.unique.key`, stored once per site however often it is sent |
//!
//! A subscriber item is `{"email", "tags"?, "remove_tags"?, …}`: tags as
//! comma-separated names (or a list), every other key a field. A field set to
//! `null` is removed.
//!
//! What one item may carry is bounded here: an event type, a tag name and a
//! field key are at most 255 characters, a field value at most 8 KiB and the
//! details at most 64 KiB of compact JSON ([`super::limits`]). What an item
//! may do to its subscriber and site is bounded where it is applied.

use super::{Create, Email, FieldKey, NewEvent, SubscriberChange, Subscription, TagName};
use serde_json::Value;
use serde_json::value::RawValue;
use std::collections::BTreeMap;

type Item = BTreeMap<String, Box<RawValue>>;

/// Longest event type, in characters.
const MAX_TYPE_CHARS: usize = 255;

fn item(raw: &RawValue) -> Result<Item, String> {
    serde_json::from_str(raw.get()).map_err(|_| "must be a JSON object".to_owned())
}

fn email(item: &Item) -> Result<Email, String> {
    let raw = item.get("email").ok_or("email is required")?;
    let text: String =
        serde_json::from_str(raw.get()).map_err(|_| "email must be a string".to_owned())?;
    Email::parse(&text).map_err(|m| format!("email {m}"))
}

/// `fields` of an event, or the extra keys of a subscriber item.
fn field_values(
    pairs: impl Iterator<Item = (String, Value)>,
    change: &mut SubscriberChange,
) -> Result<(), String> {
    for (key, value) in pairs {
        let key = FieldKey::parse(&key).map_err(|m| format!("field key {key:?} {m}"))?;
        if value.is_null() {
            change.remove_fields.push(key);
        } else {
            change.set_field(key, value)?;
        }
    }
    Ok(())
}

/// An event item, received at `now`.
pub fn parse_event(raw: &RawValue, now: i64) -> Result<SubscriberChange, String> {
    let item = item(raw)?;
    let email = email(&item)?;
    let kind: String = match item.get("type") {
        None => return Err("type is required".into()),
        Some(raw) => serde_json::from_str(raw.get()).map_err(|_| "type must be a string")?,
    };
    let kind = kind.trim().to_owned();
    if kind.is_empty() {
        return Err("type can't be blank".into());
    }
    if kind.chars().count() > MAX_TYPE_CHARS || kind.chars().any(char::is_control) {
        return Err("type is invalid".into());
    }
    let occurred_at = match item.get("date").map(|r| r.get()) {
        None | Some("null") => now,
        Some(text) => parse_date(text)?,
    };
    let details_text = match item.get("details").map(|r| r.get()) {
        None | Some("null") => "{}".to_owned(),
        Some(text) if text.trim_start().starts_with('{') => crate::json::compact(text),
        Some(_) => return Err("details must be a JSON object".into()),
    };
    super::limits::check_details(&details_text)?;
    let details: Value = serde_json::from_str(&details_text).map_err(|e| e.to_string())?;

    let mut change = SubscriberChange::touch(email);
    if let Some(raw) = item.get("fields").filter(|r| r.get() != "null") {
        let fields: serde_json::Map<String, Value> =
            serde_json::from_str(raw.get()).map_err(|_| "fields must be a JSON object")?;
        field_values(fields.into_iter(), &mut change)?;
    }
    let mut event = NewEvent {
        kind: kind.clone(),
        occurred_at,
        details: details_text,
        unique_key: None,
        amount: None,
        currency: None,
    };
    match kind.as_str() {
        "$subscribe" => change.subscription = Some(Subscription::Subscribe),
        "$unsubscribe" => change.subscription = Some(Subscription::Unsubscribe(occurred_at)),
        "$tag" | "$remove_tag" => {
            let name = details
                .get("tag")
                .and_then(Value::as_str)
                .ok_or("details.tag is required and must be a string")?;
            let tag = TagName::parse(name).map_err(|m| format!("details.tag {m}"))?;
            if kind == "$tag" {
                change.add_tags.push(tag);
            } else {
                change.remove_tags.push(tag);
            }
        }
        "$purchase" => {
            let value = details.get("value");
            event.amount = match value.and_then(|v| v.get("amount")) {
                None | Some(Value::Null) => None,
                Some(Value::Number(n)) => n.as_f64(),
                Some(_) => return Err("details.value.amount must be a number".into()),
            };
            event.currency = match value.and_then(|v| v.get("currency")) {
                None | Some(Value::Null) => None,
                Some(Value::String(c)) => Some(c.trim().to_uppercase()),
                Some(_) => return Err("details.value.currency must be a string".into()),
            };
            event.unique_key = match details.get("unique").and_then(|u| u.get("key")) {
                None | Some(Value::Null) => None,
                Some(Value::String(k)) if !k.is_empty() => Some(k.clone()),
                Some(Value::Number(n)) => Some(n.to_string()),
                Some(_) => return Err("details.unique.key must be a non-empty string".into()),
            };
        }
        _ => {}
    }
    change.event = Some(event);
    Ok(change)
}

/// A date given as an RFC 3339 string (`2024-08-06T05:44:04.444Z`).
fn parse_date(raw_json: &str) -> Result<i64, String> {
    let text: String =
        serde_json::from_str(raw_json).map_err(|_| "date must be an ISO 8601 string".to_owned())?;
    chrono::DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.timestamp_millis())
        .map_err(|_| format!("date {text:?} is not an ISO 8601 date-time"))
}

/// A subscriber item of `POST /batch/subscribers`.
pub fn parse_subscriber(raw: &RawValue) -> Result<SubscriberChange, String> {
    let mut item = item(raw)?;
    let email = email(&item)?;
    item.remove("email");
    let mut change = SubscriberChange::touch(email);
    for (key, target) in [("tags", true), ("remove_tags", false)] {
        let Some(raw) = item.remove(key) else {
            continue;
        };
        let names = match serde_json::from_str::<Value>(raw.get()) {
            Ok(Value::Null) => Vec::new(),
            Ok(Value::String(list)) => {
                TagName::parse_list(&list).map_err(|m| format!("{key}: a tag name {m}"))?
            }
            Ok(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .ok_or(())
                        .and_then(|s| TagName::parse(s).map_err(|_| ()))
                })
                .collect::<Result<_, _>>()
                .map_err(|()| format!("{key} must be comma-separated tag names"))?,
            _ => return Err(format!("{key} must be comma-separated tag names")),
        };
        if target {
            change.add_tags = names;
        } else {
            change.remove_tags = names;
        }
    }
    let mut pairs = Vec::with_capacity(item.len());
    for (key, raw) in item {
        let value: Value = serde_json::from_str(raw.get()).map_err(|e| e.to_string())?;
        pairs.push((key, value));
    }
    field_values(pairs.into_iter(), &mut change)?;
    change.create = Create::IfMissing;
    Ok(change)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Box<RawValue> {
        serde_json::from_str(text).unwrap()
    }

    const NOW: i64 = 1_795_683_600_000;

    #[test]
    fn an_event_type_is_at_most_255_characters_without_control_characters() {
        let event = |kind: &str| {
            let item = serde_json::json!({"email": "a@x.io", "type": kind}).to_string();
            parse_event(&raw(&item), NOW).map(|c| c.event.map(|e| e.kind))
        };
        // Characters, not bytes: 255 two-byte characters are accepted.
        let longest = "é".repeat(MAX_TYPE_CHARS);
        assert_eq!(event(&longest), Ok(Some(longest.clone())));
        let refused = Err("type is invalid".to_owned());
        assert_eq!(event(&format!("{longest}x")), refused);
        // Short, but with a control character inside.
        assert_eq!(event("sign\u{7}up"), refused);
        assert_eq!(event("signed-up"), Ok(Some("signed-up".to_owned())));
    }

    #[test]
    fn a_purchase_key_is_a_non_empty_string_or_a_number() {
        let key = |unique: serde_json::Value| {
            let item = serde_json::json!({"email": "a@x.io", "type": "$purchase",
                "details": {"unique": {"key": unique}, "value": {"amount": 100}}})
            .to_string();
            parse_event(&raw(&item), NOW).map(|c| c.event.and_then(|e| e.unique_key))
        };
        assert_eq!(
            key(serde_json::json!("order-1")),
            Ok(Some("order-1".to_owned()))
        );
        assert_eq!(key(serde_json::json!(42)), Ok(Some("42".to_owned())));
        let refused = Err("details.unique.key must be a non-empty string".to_owned());
        assert_eq!(key(serde_json::json!("")), refused);
        assert_eq!(key(serde_json::json!(true)), refused);
    }

    #[test]
    fn a_plain_event_keeps_its_details_verbatim_and_merges_fields() {
        let change = parse_event(
            &raw(r#"{"type":"$pageview","email":"a@x.com","details":{ "url":"/", "n":1.10 },"fields":{"First Name":"Ada","age":null}}"#),
            NOW,
        )
        .unwrap();
        let event = change.event.unwrap();
        assert_eq!(event.kind, "$pageview");
        assert_eq!(event.details, r#"{"url":"/","n":1.10}"#);
        assert_eq!(event.occurred_at, NOW);
        assert_eq!(
            change.set_fields,
            vec![(FieldKey::parse("first_name").unwrap(), Value::from("Ada"))]
        );
        assert_eq!(change.remove_fields, vec![FieldKey::parse("age").unwrap()]);
    }

    #[test]
    fn special_types_change_the_subscriber() {
        let tag = parse_event(
            &raw(r#"{"type":"$tag","email":"a@x.com","details":{"tag":"VIP"}}"#),
            NOW,
        )
        .unwrap();
        assert_eq!(tag.add_tags, vec![TagName::parse("VIP").unwrap()]);
        let untag = parse_event(
            &raw(r#"{"type":"$remove_tag","email":"a@x.com","details":{"tag":"VIP"}}"#),
            NOW,
        )
        .unwrap();
        assert_eq!(untag.remove_tags.len(), 1);
        let unsub = parse_event(
            &raw(r#"{"type":"$unsubscribe","email":"a@x.com","date":"2024-08-06T05:44:04.444Z"}"#),
            NOW,
        )
        .unwrap();
        assert_eq!(
            unsub.subscription,
            Some(Subscription::Unsubscribe(1_722_923_044_444))
        );
        let sub = parse_event(&raw(r#"{"type":"$subscribe","email":"a@x.com"}"#), NOW).unwrap();
        assert_eq!(sub.subscription, Some(Subscription::Subscribe));
    }

    #[test]
    fn purchases_keep_amounts_as_numbers_and_their_unique_key() {
        let change = parse_event(
            &raw(r#"{"type":"$purchase","email":"a@x.com","details":{"unique":{"key":"order-1"},"value":{"currency":"usd","amount":12050}}}"#),
            NOW,
        )
        .unwrap();
        let event = change.event.unwrap();
        assert_eq!(event.amount, Some(12050.0));
        assert_eq!(event.currency.as_deref(), Some("USD"));
        assert_eq!(event.unique_key.as_deref(), Some("order-1"));
        let bad = parse_event(
            &raw(r#"{"type":"$purchase","email":"a@x.com","details":{"value":{"amount":"12"}}}"#),
            NOW,
        );
        assert_eq!(bad.unwrap_err(), "details.value.amount must be a number");
    }

    #[test]
    fn malformed_events_say_what_is_wrong() {
        let cases = [
            (r#"[]"#, "must be a JSON object"),
            (r#"{"type":"x"}"#, "email is required"),
            (r#"{"type":"x","email":5}"#, "email must be a string"),
            (r#"{"type":"x","email":"nope"}"#, "email is invalid"),
            (r#"{"email":"a@x.com"}"#, "type is required"),
            (r#"{"type":" ","email":"a@x.com"}"#, "type can't be blank"),
            (
                r#"{"type":"x","email":"a@x.com","details":[1]}"#,
                "details must be a JSON object",
            ),
            (
                r#"{"type":"x","email":"a@x.com","fields":"f"}"#,
                "fields must be a JSON object",
            ),
            (
                r#"{"type":"$tag","email":"a@x.com"}"#,
                "details.tag is required and must be a string",
            ),
        ];
        for (text, message) in cases {
            assert_eq!(parse_event(&raw(text), NOW).unwrap_err(), message, "{text}");
        }
        let date = parse_event(
            &raw(r#"{"type":"x","email":"a@x.com","date":"yesterday"}"#),
            NOW,
        );
        assert!(date.unwrap_err().contains("not an ISO 8601"));
    }

    #[test]
    fn subscriber_items_split_tags_from_fields() {
        let change = parse_subscriber(&raw(
            r#"{"email":"a@x.com","tags":"lead, mql","remove_tags":"cold","Company Size":50,"plan":null}"#,
        ))
        .unwrap();
        assert_eq!(change.add_tags.len(), 2);
        assert_eq!(change.remove_tags, vec![TagName::parse("cold").unwrap()]);
        assert_eq!(
            change.set_fields,
            vec![(FieldKey::parse("company_size").unwrap(), Value::from(50))]
        );
        assert_eq!(change.remove_fields, vec![FieldKey::parse("plan").unwrap()]);
        assert!(change.event.is_none());
        assert_eq!(
            parse_subscriber(&raw(r#"{"tags":"x"}"#)).unwrap_err(),
            "email is required"
        );
    }

    #[test]
    fn subscriber_tags_may_be_a_list_or_null() {
        let tags = |json: &str| parse_subscriber(&raw(json)).map(|c| c.add_tags);
        assert_eq!(
            tags(r#"{"email":"a@x.com","tags":["lead"," mql "]}"#),
            Ok(vec![
                TagName::parse("lead").unwrap(),
                TagName::parse("mql").unwrap()
            ])
        );
        assert_eq!(tags(r#"{"email":"a@x.com","tags":null}"#), Ok(vec![]));
        assert_eq!(
            tags(r#"{"email":"a@x.com","tags":["lead",7]}"#),
            Err("tags must be comma-separated tag names".to_owned())
        );
    }
}
