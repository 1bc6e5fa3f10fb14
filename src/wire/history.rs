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

pub use crate::service::audit::{audit_cursor, read_audit_cursor};

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

/// One point of a segment's size over time.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryPoint {
    /// The start of the interval (UTC boundaries; weeks start on Monday).
    #[schema(example = "2026-11-26T00:00:00.000Z")]
    pub at: String,
    /// Members as at the end of the interval (at `to`, for the last).
    pub members: i64,
    /// Joins within the interval.
    pub added: i64,
    /// Leaves within the interval.
    pub removed: i64,
}

/// When a segment's history begins.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryMeta {
    /// The segment's baseline: its creation, when the journal first saw
    /// it, or where `--history-retention-days` trimmed it; `null` before a
    /// server has taken it.
    pub history_begins_at: Option<String>,
}

/// `{"data":[…points],"meta":{"history_begins_at"}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryEnvelope {
    pub data: Vec<HistoryPoint>,
    pub meta: HistoryMeta,
}

/// A series, as bytes.
pub fn history_body(series: &crate::service::history::Series) -> Vec<u8> {
    to_json(&HistoryEnvelope {
        data: series
            .points
            .iter()
            .map(|p| HistoryPoint {
                at: format_ms(p.at),
                members: p.members,
                added: p.added,
                removed: p.removed,
            })
            .collect(),
        meta: HistoryMeta {
            history_begins_at: series.begins_at.map(format_ms),
        },
    })
}

/// The series a request asks for: `from` and `to` (default the last 30
/// days up to `now`) and `interval` (default `day`).
pub fn history_query(
    from: Option<&str>,
    to: Option<&str>,
    interval: Option<&str>,
    now: i64,
) -> Result<(i64, i64, crate::service::history::Interval), FieldErrors> {
    use crate::service::history::Interval;
    let mut errors = FieldErrors::default();
    let mut read = |field: &str, text: Option<&str>| match text {
        None | Some("") => None,
        Some(text) => instant(text).map_err(|m| errors.push(field, m)).ok(),
    };
    // Up to and including now: a write committed at this very millisecond
    // counts.
    let to_at = read("to", to).unwrap_or(now + 1);
    let from_at = read("from", from).unwrap_or(to_at - 30 * 86_400_000);
    let interval = match interval {
        None | Some("") => Some(Interval::Day),
        Some(text) => Interval::parse(text).or_else(|| {
            errors.push("interval", "must be minute, hour, day, week or month");
            None
        }),
    };
    if from_at >= to_at && errors.is_empty() {
        errors.push("from", "must be before to");
    }
    errors.finish(|| (from_at, to_at, interval.unwrap_or(Interval::Day)))
}

pub use crate::webhooks::notification::{
    ChangeResource, ChangeSegment, ChangeSubscriber, change_event_id,
};

/// Where the next page of a changes feed starts.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangesMeta {
    /// Pass as `after` to continue; it is also given on the last page of
    /// what exists now, so that a poller resumes from it without gaps or
    /// repeats (`null` only when nothing was ever recorded after where the
    /// page started).
    pub next_cursor: Option<String>,
}

/// `{"data":[…],"meta":{"next_cursor"}}`, in commit order.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangesEnvelope {
    pub data: Vec<ChangeResource>,
    pub meta: ChangesMeta,
}

/// A page of a changes feed, as bytes.
pub fn changes_body(
    segment: &crate::segment::Segment,
    changes: &[crate::storage::journal::NamedChange],
    next_cursor: Option<String>,
) -> Vec<u8> {
    to_json(&ChangesEnvelope {
        data: changes
            .iter()
            .map(|c| ChangeResource::new(c, segment))
            .collect(),
        meta: ChangesMeta { next_cursor },
    })
}

/// A cursor of a changes feed: the (instant, id) of the last transition
/// of a page, opaque to clients.
pub fn changes_cursor(at: i64, id: i64) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("changes:{at}:{id}"))
}

fn read_changes_cursor(cursor: &str) -> Option<(i64, i64)> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()?;
    let text = std::str::from_utf8(&bytes).ok()?.strip_prefix("changes:")?;
    let (at, id) = text.split_once(':')?;
    Some((at.parse().ok()?, id.parse().ok()?))
}

/// Transitions per page of a changes feed, by default and at most.
pub const CHANGES_PAGE: usize = 100;
pub const MAX_CHANGES_PAGE: usize = 1_000;

/// A changes feed's start and page size from its parameters (`since` or
/// `after`, not both; `limit`).
pub fn changes_query(
    since: Option<&str>,
    after: Option<&str>,
    limit: Option<&str>,
) -> Result<(crate::service::history::From, usize), FieldErrors> {
    use crate::service::history::From;
    let mut errors = FieldErrors::default();
    let since = match since {
        None | Some("") => None,
        Some(text) => instant(text).map_err(|m| errors.push("since", m)).ok(),
    };
    let after = match after {
        None | Some("") => None,
        Some(cursor) => read_changes_cursor(cursor)
            .ok_or_else(|| {
                errors.push(
                    "after",
                    "is not a cursor this API gave out (use meta.next_cursor)",
                )
            })
            .ok(),
    };
    if since.is_some() && after.is_some() {
        errors.push(
            "after",
            "cannot be given with since: a cursor already says where to resume",
        );
    }
    let limit = crate::wire::whole_number(limit, CHANGES_PAGE, 1, MAX_CHANGES_PAGE)
        .map_err(|m| errors.push("limit", m))
        .unwrap_or_default();
    let from = match (since, after) {
        (_, Some((at, id))) => From::After(at, id),
        (Some(at), None) => From::Since(at),
        (None, None) => From::Beginning,
    };
    errors.finish(|| (from, limit))
}

/// `{"data":[…]}`: a subscriber's joins and leaves, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriberChangesEnvelope {
    pub data: Vec<ChangeResource>,
}

/// A subscriber's joins and leaves, as bytes.
pub fn subscriber_changes_body(
    changes: &[(
        crate::storage::journal::NamedChange,
        crate::segment::Segment,
    )],
) -> Vec<u8> {
    to_json(&SubscriberChangesEnvelope {
        data: changes
            .iter()
            .map(|(change, segment)| ChangeResource::new(change, segment))
            .collect(),
    })
}
