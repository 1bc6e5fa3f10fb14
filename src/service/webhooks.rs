//! The webhook service: managing a site's membership-change webhooks, for
//! the HTTP handlers and the CLI alike. It checks what is asked (a target
//! that may be sent to, [`crate::webhooks::target`]; kept segments of this
//! site; known events), makes the signing secret, and gives each newly
//! watched segment its baseline, the members it has now, so that creating a
//! webhook announces nobody. Following the watched segments and delivering
//! what they cause is [`crate::webhooks`]'s. Each change names who makes it
//! (an [`Actor`]), which the site's audit log records with it.

use crate::live::Live;
use crate::segment::{FieldErrors, SegmentId};
use crate::storage::audit::Actor;
use crate::storage::webhooks::{Delivery, NewWebhook, Webhook, WebhookEvent, WebhookPatch};
use crate::storage::{StorageError, Store};
use crate::webhooks::{WebhookError, target};
use std::collections::BTreeSet;
use std::sync::Arc;

/// How many segments one webhook may watch.
pub const MAX_SEGMENTS: usize = 50;
/// How many webhooks a site may have.
pub const MAX_WEBHOOKS: usize = 20;

/// A webhook as a client asks for it, parsed at the edge: each field as
/// sent, checked here.
#[derive(Debug, Clone, Default)]
pub struct WebhookInput {
    pub url: Option<String>,
    pub segment_ids: Option<Vec<i64>>,
    pub events: Option<Vec<String>>,
    pub disabled: Option<bool>,
}

/// The webhook rules over one store and the live snapshots.
pub struct Webhooks<'a> {
    store: &'a Arc<dyn Store>,
    live: &'a Live,
    allow_private: bool,
}

impl<'a> Webhooks<'a> {
    pub fn new(store: &'a Arc<dyn Store>, live: &'a Live, allow_private: bool) -> Self {
        Self {
            store,
            live,
            allow_private,
        }
    }

    pub async fn create(
        &self,
        site_id: i64,
        input: WebhookInput,
        now: i64,
        by: &Actor,
    ) -> Result<Webhook, WebhookError> {
        let mut errors = FieldErrors::default();
        if input.url.is_none() {
            errors.push("url", "can't be blank");
        }
        if input.segment_ids.is_none() {
            errors.push("segment_ids", "can't be blank");
        }
        let existing = self.store.list_webhooks(site_id).await?;
        if existing.len() >= MAX_WEBHOOKS {
            errors.push(
                "webhook",
                format!("a site may have at most {MAX_WEBHOOKS} webhooks"),
            );
        }
        let checked = self.check(site_id, &input, &mut errors).await?;
        errors.finish(|| ()).map_err(WebhookError::Invalid)?;
        let (url, segment_ids, events) = checked;
        let new = NewWebhook {
            url: url.expect("checked"),
            segment_ids: segment_ids.expect("checked"),
            events: events.unwrap_or_else(|| WebhookEvent::ALL.to_vec()),
            secret: crate::webhooks::signing::new_secret(),
        };
        self.warm(site_id).await;
        Ok(self.store.create_webhook(site_id, &new, now, by).await?)
    }

    pub async fn update(
        &self,
        site_id: i64,
        id: i64,
        input: WebhookInput,
        now: i64,
        by: &Actor,
    ) -> Result<Webhook, WebhookError> {
        self.get(site_id, id).await?;
        let mut errors = FieldErrors::default();
        let (url, segment_ids, events) = self.check(site_id, &input, &mut errors).await?;
        errors.finish(|| ()).map_err(WebhookError::Invalid)?;
        if segment_ids.is_some() {
            self.warm(site_id).await;
        }
        let patch = WebhookPatch {
            url,
            segment_ids,
            events,
            disabled: input.disabled,
        };
        Ok(self
            .store
            .update_webhook(site_id, id, &patch, now, by)
            .await?)
    }

    pub async fn get(&self, site_id: i64, id: i64) -> Result<Webhook, WebhookError> {
        self.store
            .get_webhook(site_id, id)
            .await?
            .ok_or(WebhookError::NotFound)
    }

    pub async fn list(&self, site_id: i64) -> Result<Vec<Webhook>, WebhookError> {
        Ok(self.store.list_webhooks(site_id).await?)
    }

    pub async fn delete(
        &self,
        site_id: i64,
        id: i64,
        now: i64,
        by: &Actor,
    ) -> Result<Webhook, WebhookError> {
        Ok(self.store.delete_webhook(site_id, id, now, by).await?)
    }

    pub async fn deliveries(
        &self,
        site_id: i64,
        id: i64,
        limit: usize,
    ) -> Result<Vec<Delivery>, WebhookError> {
        self.get(site_id, id).await?;
        Ok(self.store.recent_deliveries(site_id, id, limit).await?)
    }

    pub async fn retry(
        &self,
        site_id: i64,
        id: i64,
        delivery_id: i64,
        now: i64,
    ) -> Result<Delivery, WebhookError> {
        self.get(site_id, id).await?;
        self.store
            .retry_delivery(site_id, id, delivery_id, now)
            .await
            .map_err(|e| match e {
                StorageError::NotFound => WebhookError::DeliveryNotFound,
                other => other.into(),
            })
    }

    /// Checks the fields given; what is wrong goes into `errors`.
    #[allow(clippy::type_complexity)]
    async fn check(
        &self,
        site_id: i64,
        input: &WebhookInput,
        errors: &mut FieldErrors,
    ) -> Result<(Option<String>, Option<Vec<i64>>, Option<Vec<WebhookEvent>>), WebhookError> {
        let mut url = None;
        if let Some(text) = &input.url {
            match target::parse(text) {
                Err(message) => errors.push("url", message),
                // With private targets allowed nothing need be resolved now:
                // every delivery resolves the name again anyway.
                Ok(parsed) if self.allow_private => url = Some(parsed.to_string()),
                Ok(parsed) => match target::resolve(&parsed, false).await {
                    Ok(_) => url = Some(parsed.to_string()),
                    Err(message) => errors.push("url", message),
                },
            }
        }
        let mut segment_ids = None;
        if let Some(ids) = &input.segment_ids {
            let unique: BTreeSet<i64> = ids.iter().copied().collect();
            if unique.is_empty() {
                errors.push("segment_ids", "must name at least one segment");
            } else if unique.len() > MAX_SEGMENTS {
                errors.push(
                    "segment_ids",
                    format!("may name at most {MAX_SEGMENTS} segments"),
                );
            } else {
                let mut ok = true;
                for &id in &unique {
                    let kept = self
                        .store
                        .get_segment(site_id, SegmentId(id))
                        .await?
                        .is_some_and(|s| s.is_kept());
                    if !kept {
                        errors.push("segment_ids", format!("segment {id} not found"));
                        ok = false;
                    }
                }
                if ok {
                    segment_ids = Some(unique.into_iter().collect());
                }
            }
        }
        let mut events = None;
        if let Some(names) = &input.events {
            let mut parsed = BTreeSet::new();
            for name in names {
                match WebhookEvent::parse(name) {
                    Some(event) => {
                        parsed.insert(event);
                    }
                    None => errors.push(
                        "events",
                        format!(
                            "{name:?} is not one of segment.member_added, segment.member_removed"
                        ),
                    ),
                }
            }
            if names.is_empty() {
                errors.push("events", "must name at least one event");
            }
            events = Some(parsed.into_iter().collect());
        }
        Ok((url, segment_ids, events))
    }

    /// Reads the site's audience before a webhook starts watching: the
    /// write then takes the baselines of segments whose journal has not
    /// begun, so that no join after the webhook's creation goes untold. If
    /// the read fails, the write goes on, and such a segment's journal
    /// begins at the next sweep.
    async fn warm(&self, site_id: i64) {
        if let Err(error) = self.live.resident(site_id).await {
            tracing::warn!(site_id, %error, "the audience could not be read before a webhook write");
        }
    }
}
