//! Webhooks on the wire: a webhook and a delivery as resources (`type`
//! `webhooks`, `webhook_deliveries`), their envelopes, and the body of a
//! webhook's creation or change, read into the webhooks service's
//! [`WebhookInput`].

use super::body::{self, BodyError, Given};
use super::strings::SiteUuidText;
use crate::clock::format_ms;
use crate::service::webhooks::WebhookInput;
use crate::storage::webhooks::{Delivery, Webhook};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

/// A webhook, as the API shows it.
#[derive(Serialize, ToSchema)]
pub struct WebhookResource {
    #[schema(example = "1")]
    pub id: String,
    #[serde(rename = "type")]
    #[schema(example = "webhooks")]
    pub kind: &'static str,
    pub attributes: WebhookAttributes,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookAttributes {
    #[schema(example = "https://hooks.example.com/corral")]
    pub url: String,
    #[schema(example = json!(["1", "2"]))]
    pub segment_ids: Vec<String>,
    #[schema(example = json!(["segment.member_added", "segment.member_removed"]))]
    pub events: Vec<String>,
    /// The signing secret: only in the answer that created the webhook.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// Set when deliveries failed for 3 days; `PATCH` with
    /// `"disabled": false` enables the webhook again.
    pub disabled_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookEnvelope {
    pub data: WebhookResource,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookListEnvelope {
    pub data: Vec<WebhookResource>,
}

/// One notification and how its delivery stands.
#[derive(Serialize, ToSchema)]
pub struct DeliveryResource {
    #[schema(example = "17")]
    pub id: String,
    #[serde(rename = "type")]
    #[schema(example = "webhook_deliveries")]
    pub kind: &'static str,
    pub attributes: DeliveryAttributes,
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryAttributes {
    /// Stable across retries.
    pub event_id: String,
    /// `pending` (not tried yet), `failing` (tried, will be tried again) or
    /// `delivered`.
    #[schema(example = "delivered")]
    pub status: &'static str,
    pub attempts: i64,
    /// When it will be tried next (`null` once delivered).
    pub next_attempt_at: Option<String>,
    /// The receiver's status code at the last attempt.
    pub last_response_code: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: String,
    pub delivered_at: Option<String>,
    /// The notification as sent.
    #[schema(value_type = Object)]
    pub notification: Box<RawValue>,
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryEnvelope {
    pub data: DeliveryResource,
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryListEnvelope {
    pub data: Vec<DeliveryResource>,
}

/// `{"webhook": {…}}`; every field may be left out of a `PATCH`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookRequest {
    /// Sent by the Node SDK; may instead be in the query string.
    #[serde(default)]
    #[schema(value_type = Option<SiteUuidText>, nullable = false)]
    pub site_uuid: Given,
    #[serde(default)]
    #[schema(value_type = WebhookFields, required = true)]
    pub webhook: Given,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookFields {
    /// An absolute `http`/`https` URL; loopback, private and link-local
    /// targets are refused unless the server allows them.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "https://hooks.example.com/corral", max_length = 2048)]
    pub url: Given,
    /// The kept segments of this site to watch (1 to 50).
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>, example = json!(["1", "2"]))]
    pub segment_ids: Given,
    /// What to be told about; both when left out of a creation.
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>, example = json!(["segment.member_added", "segment.member_removed"]))]
    pub events: Given,
    /// `false` enables a webhook disabled after failing; `true` disables it.
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    pub disabled: Given,
}

pub fn webhook_resource(webhook: &Webhook, with_secret: bool) -> WebhookResource {
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

pub fn delivery_resource(delivery: &Delivery) -> DeliveryResource {
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

/// Reads `{"webhook": {…}}`.
pub fn webhook_input(bytes: &[u8]) -> Result<WebhookInput, BodyError> {
    let (request, mut errors) = body::read::<WebhookRequest>(bytes)?;
    if request.webhook.raw().is_none() {
        errors.push("webhook", "is required");
    }
    let WebhookFields {
        url,
        segment_ids,
        events,
        disabled,
    } = body::nested(&request.webhook, "webhook", &mut errors);
    let mut input = WebhookInput::default();
    let field = |given: &Given| given.raw().map(|r| r.get().to_owned());
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
    errors.finish(|| input).map_err(BodyError::from)
}

/// How many deliveries to list: 1 to 100, 50 when not said.
pub fn deliveries_limit(text: Option<&str>) -> Result<usize, String> {
    super::whole_number(text, 50, 1, 100)
}
