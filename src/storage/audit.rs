//! What a site's history keeps, as every backend keeps it: who made a
//! change ([`Actor`]), every definition a segment was saved with
//! ([`SegmentVersion`]), and the audit log of management actions
//! ([`AuditEntry`]). Both are written in the transaction of the write they
//! record, so neither can say what did not happen nor miss what did. Neither
//! ever holds a secret: an actor is named by its publishable key, a webhook
//! by what it sends where, never by its signing secret.

pub use super::actor::Actor;
use crate::segment::SegmentId;
use corral_core::query::RawQuery;

/// A segment's definition: what a version saves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definition {
    pub name: String,
    pub description: Option<String>,
    /// Exactly as saved.
    pub query: RawQuery,
}

/// One saved definition of a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentVersion {
    pub segment_id: SegmentId,
    /// The segment's version once this definition was saved.
    pub version: i64,
    pub definition: Definition,
    pub saved_at: i64,
    /// `None` for a definition saved before versions were kept.
    pub saved_by: Option<Actor>,
}

/// What an audit entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    SegmentCreated,
    SegmentUpdated,
    SegmentDiscarded,
    SegmentRestored,
    SegmentVersionRestored,
    /// Subscribers put in or taken out of a segment's includes or excludes.
    SegmentManualChanged,
    WebhookCreated,
    WebhookUpdated,
    WebhookDeleted,
    KeyAdded,
    KeyRevoked,
}

impl AuditAction {
    pub const ALL: [Self; 11] = [
        Self::SegmentCreated,
        Self::SegmentUpdated,
        Self::SegmentDiscarded,
        Self::SegmentRestored,
        Self::SegmentVersionRestored,
        Self::SegmentManualChanged,
        Self::WebhookCreated,
        Self::WebhookUpdated,
        Self::WebhookDeleted,
        Self::KeyAdded,
        Self::KeyRevoked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SegmentCreated => "segment.created",
            Self::SegmentUpdated => "segment.updated",
            Self::SegmentDiscarded => "segment.discarded",
            Self::SegmentRestored => "segment.restored",
            Self::SegmentVersionRestored => "segment.version_restored",
            Self::SegmentManualChanged => "segment.manual_changed",
            Self::WebhookCreated => "webhook.created",
            Self::WebhookUpdated => "webhook.updated",
            Self::WebhookDeleted => "webhook.deleted",
            Self::KeyAdded => "key.added",
            Self::KeyRevoked => "key.revoked",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == text)
    }

    /// The kind of record acted on: `segment`, `webhook` or `key`.
    pub fn subject_type(self) -> &'static str {
        match self {
            Self::SegmentCreated
            | Self::SegmentUpdated
            | Self::SegmentDiscarded
            | Self::SegmentRestored
            | Self::SegmentVersionRestored
            | Self::SegmentManualChanged => "segment",
            Self::WebhookCreated | Self::WebhookUpdated | Self::WebhookDeleted => "webhook",
            Self::KeyAdded | Self::KeyRevoked => "key",
        }
    }
}

/// One management action of a site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub id: i64,
    pub at: i64,
    pub actor: Actor,
    pub action: AuditAction,
    /// What was acted on: a segment's or webhook's id, a publishable key.
    pub subject: String,
    /// What changed: a JSON object, as text (queries in it exactly as
    /// saved).
    pub details: String,
}

/// Which entries of a site's audit log to read, newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only entries at or after this instant (Unix ms).
    pub since: Option<i64>,
    /// Only entries older than this one (the last of the page before).
    pub before: Option<i64>,
    pub limit: usize,
}

/// The details of audit entries, as JSON text: queries embedded exactly
/// as saved, webhooks without their secrets.
pub mod details {
    use super::Definition;
    use crate::storage::webhooks::Webhook;
    use serde::Serialize;
    use serde_json::value::RawValue;

    #[derive(Serialize)]
    struct DefinitionJson<'a> {
        name: &'a str,
        description: Option<&'a str>,
        visitor_event_query: Box<RawValue>,
    }

    impl<'a> From<&'a Definition> for DefinitionJson<'a> {
        fn from(d: &'a Definition) -> Self {
            Self {
                name: &d.name,
                description: d.description.as_deref(),
                visitor_event_query: d.query.to_raw_value(),
            }
        }
    }

    /// An edit of a segment's includes or excludes: the list, whether
    /// emails were put in (`add`) or taken out, and those it changed.
    pub fn manual(list: &str, add: bool, emails: &[String]) -> String {
        serde_json::json!({
            "list": list,
            "operation": if add { "add" } else { "remove" },
            "emails": emails,
        })
        .to_string()
    }

    /// A webhook as the audit log shows it: never its secret.
    #[derive(Serialize)]
    struct WebhookJson<'a> {
        url: &'a str,
        segment_ids: Vec<String>,
        events: Vec<&'static str>,
        disabled: bool,
    }

    impl<'a> From<&'a Webhook> for WebhookJson<'a> {
        fn from(w: &'a Webhook) -> Self {
            Self {
                url: &w.url,
                segment_ids: w.segment_ids.iter().map(i64::to_string).collect(),
                events: w.events.iter().map(|e| e.as_str()).collect(),
                disabled: w.disabled_at.is_some(),
            }
        }
    }

    fn text(value: &impl Serialize) -> String {
        serde_json::to_string(value).expect("audit details serialize")
    }

    /// A segment created: `{"version","definition"}`.
    pub fn created(version: i64, definition: &Definition) -> String {
        #[derive(Serialize)]
        struct Created<'a> {
            version: i64,
            definition: DefinitionJson<'a>,
        }
        text(&Created {
            version,
            definition: definition.into(),
        })
    }

    /// A definition changed: `{"version","before","after"}`, and
    /// `restored_version` when it is an earlier one made current again.
    pub fn changed(
        version: i64,
        restored_version: Option<i64>,
        before: &Definition,
        after: &Definition,
    ) -> String {
        #[derive(Serialize)]
        struct Changed<'a> {
            version: i64,
            #[serde(skip_serializing_if = "Option::is_none")]
            restored_version: Option<i64>,
            before: DefinitionJson<'a>,
            after: DefinitionJson<'a>,
        }
        text(&Changed {
            version,
            restored_version,
            before: before.into(),
            after: after.into(),
        })
    }

    /// A segment discarded or restored: `{"version","name"}`.
    pub fn moved(version: i64, name: &str) -> String {
        #[derive(Serialize)]
        struct Moved<'a> {
            version: i64,
            name: &'a str,
        }
        text(&Moved { version, name })
    }

    /// A webhook created or deleted: `{"webhook"}`.
    pub fn webhook(webhook: &Webhook) -> String {
        #[derive(Serialize)]
        struct One<'a> {
            webhook: WebhookJson<'a>,
        }
        text(&One {
            webhook: webhook.into(),
        })
    }

    /// A webhook changed: `{"before","after"}`.
    pub fn webhook_changed(before: &Webhook, after: &Webhook) -> String {
        #[derive(Serialize)]
        struct Changed<'a> {
            before: WebhookJson<'a>,
            after: WebhookJson<'a>,
        }
        text(&Changed {
            before: before.into(),
            after: after.into(),
        })
    }

    /// A key pair added or revoked: `{"publishable_key"}`.
    pub fn key(publishable_key: &str) -> String {
        #[derive(Serialize)]
        struct Key<'a> {
            publishable_key: &'a str,
        }
        text(&Key { publishable_key })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actors_and_actions_read_back_as_written() {
        for actor in [Actor::Cli, Actor::Key("pAbc".into())] {
            assert_eq!(Actor::from_stored(actor.as_str()), actor);
        }
        for action in AuditAction::ALL {
            assert_eq!(AuditAction::parse(action.as_str()), Some(action));
        }
    }
}
