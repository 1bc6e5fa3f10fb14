//! A site's history on the wire: a segment's saved definitions and the
//! audit log of management actions.
//!
//! ```json
//! {"data":[{"version":1,"name":"VIP","description":null,
//!   "visitor_event_query":{"tag":{"has":"vip"}},
//!   "saved_at":"2026-11-26T09:00:00.000Z","saved_by":"pXXXX…"}]}
//!
//! {"data":[{"id":"7","action":"segment.updated","at":"2026-11-26T09:00:00.000Z",
//!   "actor":"cli","subject":{"type":"segment","id":"42"},
//!   "details":{"version":2,"before":{…},"after":{…}}}],
//!  "meta":{"next_cursor":null}}
//! ```
//!
//! Queries appear exactly as they were saved; the CLI prints the same
//! bodies with `--json`.

use super::to_json;
use crate::clock::format_ms;
use crate::segment::{FieldError, FieldErrors};
use crate::storage::audit::{AuditEntry, AuditQuery, SegmentVersion};
use serde::Serialize;
use serde_json::value::RawValue;
use utoipa::ToSchema;

/// One saved definition of a segment.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionResource {
    /// The segment's version once this definition was saved (the number in
    /// its `ETag`); discarding and restoring move the version without
    /// saving a definition, so numbers may skip.
    #[schema(example = 1)]
    pub version: i64,
    #[schema(example = "VIP customers")]
    pub name: String,
    pub description: Option<String>,
    /// The query exactly as it was saved.
    #[schema(value_type = Object)]
    pub visitor_event_query: Box<RawValue>,
    #[schema(example = "2026-11-26T09:00:00.000Z")]
    pub saved_at: String,
    /// The publishable key of the key pair that saved it, or `cli`; `null`
    /// for a definition saved before versions were kept.
    pub saved_by: Option<String>,
}

impl From<&SegmentVersion> for VersionResource {
    fn from(v: &SegmentVersion) -> Self {
        Self {
            version: v.version,
            name: v.definition.name.clone(),
            description: v.definition.description.clone(),
            visitor_event_query: v.definition.query.to_raw_value(),
            saved_at: format_ms(v.saved_at),
            saved_by: v.saved_by.as_ref().map(|a| a.as_str().to_owned()),
        }
    }
}

/// `{"data":[…]}`, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionListEnvelope {
    pub data: Vec<VersionResource>,
}

/// `{"data":[…]}` for a segment's versions, as bytes.
pub fn version_list_body(versions: &[SegmentVersion]) -> Vec<u8> {
    to_json(&VersionListEnvelope {
        data: versions.iter().map(VersionResource::from).collect(),
    })
}

/// What an audit entry acted on.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditSubject {
    /// `segment`, `webhook` or `key`.
    #[serde(rename = "type")]
    #[schema(example = "segment")]
    pub kind: &'static str,
    /// The segment's or webhook's id, or the key pair's publishable key.
    #[schema(example = "42")]
    pub id: String,
}

/// One management action.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditResource {
    #[schema(example = "7")]
    pub id: String,
    /// `segment.created`, `segment.updated`, `segment.discarded`,
    /// `segment.restored`, `segment.version_restored`, `webhook.created`,
    /// `webhook.updated`, `webhook.deleted`, `key.added` or `key.revoked`.
    #[schema(example = "segment.updated")]
    pub action: &'static str,
    #[schema(example = "2026-11-26T09:00:00.000Z")]
    pub at: String,
    /// The publishable key of the key pair that acted, or `cli`.
    pub actor: String,
    pub subject: AuditSubject,
    /// What changed: for a segment, its `version` and its definitions
    /// (`definition`, or `before` and `after`, with `restored_version`
    /// when an earlier one was made current); for a webhook, `webhook` or
    /// `before` and `after` (`url`, `segment_ids`, `events`, `disabled`;
    /// never its secret); for a key pair, its `publishable_key`.
    #[schema(value_type = Object)]
    pub details: Box<RawValue>,
}

impl From<&AuditEntry> for AuditResource {
    fn from(e: &AuditEntry) -> Self {
        Self {
            id: e.id.to_string(),
            action: e.action.as_str(),
            at: format_ms(e.at),
            actor: e.actor.as_str().to_owned(),
            subject: AuditSubject {
                kind: e.action.subject_type(),
                id: e.subject.clone(),
            },
            details: RawValue::from_string(e.details.clone())
                .unwrap_or_else(|_| RawValue::from_string("{}".into()).expect("valid JSON")),
        }
    }
}

/// Where the next page of the audit log starts.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditMeta {
    /// Pass as `cursor` for the next (older) page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// `{"data":[…],"meta":{"next_cursor"}}`, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditListEnvelope {
    pub data: Vec<AuditResource>,
    pub meta: AuditMeta,
}

/// A page of the audit log, as bytes.
pub fn audit_list_body(entries: &[AuditEntry], next_cursor: Option<String>) -> Vec<u8> {
    to_json(&AuditListEnvelope {
        data: entries.iter().map(AuditResource::from).collect(),
        meta: AuditMeta { next_cursor },
    })
}

/// Entries per page of the audit log, by default and at most.
pub const AUDIT_PAGE: usize = 100;
pub const MAX_AUDIT_PAGE: usize = 1_000;

/// An instant given as ISO 8601 (RFC 3339: `2026-11-26T09:00:00Z`, with
/// an offset or `Z`), as Unix milliseconds; the error is what the user is
/// told.
pub fn instant(text: &str) -> Result<i64, String> {
    chrono::DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            "must be an ISO 8601 time with a time zone, such as 2026-11-26T09:00:00Z".into()
        })
}

/// A cursor of the audit log: the id of the last entry of a page, opaque
/// to clients.
pub fn audit_cursor(last_id: i64) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("audit:{last_id}"))
}

/// The entry id a cursor of [`audit_cursor`] names.
pub fn read_audit_cursor(cursor: &str) -> Option<i64> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()?;
    std::str::from_utf8(&bytes)
        .ok()?
        .strip_prefix("audit:")?
        .parse()
        .ok()
}

/// The audit log's query from its parameters as given (`since`, `limit`,
/// `cursor`), as the API and the CLI read them: every problem at once.
pub fn audit_query(
    since: Option<&str>,
    limit: Option<&str>,
    cursor: Option<&str>,
) -> Result<AuditQuery, FieldErrors> {
    let mut errors = FieldErrors::default();
    let since = since
        .map(|text| instant(text).map_err(|m| errors.push("since", m)).ok())
        .unwrap_or_default();
    let limit = crate::wire::whole_number(limit, AUDIT_PAGE, 1, MAX_AUDIT_PAGE)
        .map_err(|m| errors.push("limit", m))
        .unwrap_or_default();
    let before = match cursor {
        None | Some("") => None,
        Some(cursor) => read_audit_cursor(cursor)
            .ok_or_else(|| {
                errors.0.push(FieldError::new(
                    "cursor",
                    "is not a cursor this API gave out (use meta.next_cursor)",
                ))
            })
            .ok(),
    };
    errors.finish(|| AuditQuery {
        since,
        before,
        limit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_need_a_zone_and_cursors_read_back() {
        assert_eq!(instant("1970-01-01T00:00:01Z"), Ok(1_000));
        assert_eq!(instant("1970-01-01T01:00:01.5+01:00"), Ok(1_500));
        assert!(instant("2026-11-26").is_err());
        assert!(instant("2026-11-26T09:00:00").is_err());
        assert_eq!(read_audit_cursor(&audit_cursor(42)), Some(42));
        assert_eq!(read_audit_cursor("bm9wZQ"), None);
    }
}
