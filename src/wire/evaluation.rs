//! Live evaluation on the wire: the answers of match, members and preview,
//! the bodies of match and preview, and the members CSV's columns
//! ([`MemberColumns`]: the HTTP export and `corral segment members --format
//! csv` write the same).
//! Stats answer [`corral_core::audience::AudienceCounts`], flat.

use super::audience::SubscriberResource;
use super::body::{self, BodyError, Given};
use super::strings::{EmailText, SiteUuidText, VisitorEventQuery};
use crate::clock::format_ms;
use crate::segment::FieldErrors;
use corral_core::audience::Subscriber;
use corral_core::engine::Node;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Who to match: `{"email"}` or `{"uuid"}`, exactly one of the two.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MatchRequest {
    /// Sent by the Node SDK; may instead be in the query string.
    #[serde(default)]
    #[schema(value_type = Option<SiteUuidText>, nullable = false)]
    pub site_uuid: Given,
    /// The subscriber's email; give this or `uuid`.
    #[serde(default)]
    #[schema(value_type = Option<EmailText>, nullable = false)]
    pub email: Given,
    /// The subscriber's `uuid`; give this or `email`.
    #[serde(default)]
    #[schema(value_type = Option<String>, nullable = false)]
    pub uuid: Given,
}

impl MatchRequest {
    /// Reads the body; unknown keys go to the errors returned beside it.
    pub fn read(bytes: &[u8]) -> Result<(Self, FieldErrors), BodyError> {
        body::read(bytes)
    }
}

/// Whether one subscriber is in a segment, and why.
#[derive(Debug, Serialize, ToSchema)]
pub struct MatchResult {
    pub segment_id: String,
    pub matched: bool,
    pub subscriber: SubscriberResource,
    /// The outcome of every condition of the query as saved, by JSON
    /// pointer.
    pub explanation: Node,
    /// `included by hand` or `excluded by hand` when the subscriber is in
    /// the segment's includes or excludes, which decide over the query (an
    /// exclude over an include); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "included by hand")]
    pub manual: Option<&'static str>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MatchEnvelope {
    pub data: MatchResult,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MembersMeta {
    /// How many members the segment has now.
    pub count: i64,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MembersPage {
    pub data: Vec<SubscriberResource>,
    pub meta: MembersMeta,
}

/// An unsaved query to try.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewRequest {
    /// Sent by the Node SDK; may instead be in the query string.
    #[serde(default)]
    #[schema(value_type = Option<SiteUuidText>, nullable = false)]
    pub site_uuid: Given,
    /// The query, as it would be saved: a JSON object of at most 64 KiB
    /// (see `visitor_event_query` of a segment).
    #[serde(default)]
    #[schema(value_type = VisitorEventQuery, required = true)]
    pub visitor_event_query: Given,
    /// How many members to show, 0 to 100 (default 10).
    #[serde(default)]
    #[schema(value_type = Option<u8>, minimum = 0, maximum = 100, nullable = false)]
    pub sample: Given,
}

impl PreviewRequest {
    /// Reads the body; unknown keys go to the errors returned beside it.
    pub fn read(bytes: &[u8]) -> Result<(Self, FieldErrors), BodyError> {
        body::read(bytes)
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Preview {
    pub user_count: i64,
    pub subscriber_count: i64,
    pub unsubscriber_count: i64,
    /// The first members in subscriber order.
    pub sample: Vec<SubscriberResource>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PreviewEnvelope {
    pub data: Preview,
}

/// The columns of a members CSV: `uuid`, `email`, `created_at`,
/// `unsubscribed_at` (empty while subscribed), then the subscribers' fields,
/// either a column per field key of the site, headed `field:KEY` (so that
/// no key can clash with the four before it), or one `fields` column
/// holding them as a JSON object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberColumns {
    /// A column per field key, in this order; a subscriber without the
    /// field has an empty cell.
    PerField(Vec<String>),
    /// One `fields` column of JSON.
    FieldsJson,
}

/// The columns every members CSV begins with.
const FIXED_COLUMNS: [&str; 4] = ["uuid", "email", "created_at", "unsubscribed_at"];

/// What a field's column is headed, before its key.
pub const FIELD_COLUMN_PREFIX: &str = "field:";

impl MemberColumns {
    /// The columns a `fields` choice names: `columns` (or none) a column
    /// per key of `keys`, `json` one column of JSON; anything else is the
    /// message saying what may be given.
    pub fn chosen(choice: Option<&str>, keys: Vec<String>) -> Result<Self, String> {
        match choice {
            None | Some("" | "columns") => Ok(Self::PerField(keys)),
            Some("json") => Ok(Self::FieldsJson),
            Some(_) => Err("must be columns or json".into()),
        }
    }

    /// The header row.
    pub fn header(&self) -> Vec<String> {
        let fixed = FIXED_COLUMNS.iter().map(|c| (*c).to_owned());
        match self {
            Self::PerField(keys) => fixed
                .chain(keys.iter().map(|k| format!("{FIELD_COLUMN_PREFIX}{k}")))
                .map(spreadsheet_safe)
                .collect(),
            Self::FieldsJson => fixed.chain(["fields".to_owned()]).collect(),
        }
    }

    /// One member's record, each cell [safe to open in a
    /// spreadsheet](spreadsheet_safe).
    pub fn record(&self, s: &Subscriber) -> Vec<String> {
        let fixed = [
            s.uuid.clone(),
            s.email.clone(),
            format_ms(s.created_at),
            s.unsubscribed_at.map(format_ms).unwrap_or_default(),
        ];
        let fields: Vec<String> = match self {
            Self::PerField(keys) => keys.iter().map(|k| field_text(s.fields.get(k))).collect(),
            Self::FieldsJson => vec![serde_json::to_string(&s.fields).unwrap_or_default()],
        };
        fixed
            .into_iter()
            .chain(fields)
            .map(spreadsheet_safe)
            .collect()
    }
}

/// A field's value as a cell: text as it is, a number or `true`/`false` as
/// JSON writes it, a list or an object as JSON; empty when there is none.
fn field_text(value: Option<&serde_json::Value>) -> String {
    match value {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    }
}

/// A cell a spreadsheet would read as a formula (one that begins with `=`,
/// `+`, `-`, `@`, a tab or a carriage return, such as an email
/// `=HYPERLINK("http://…")@example.com`, which the email rules accept) is
/// written after a single quote, so that it shows as text: OWASP's advice
/// against CSV injection. Other cells are written as they are.
pub fn spreadsheet_safe(cell: String) -> String {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{cell}"),
        _ => cell,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_a_spreadsheet_would_run_are_written_as_text() {
        for (cell, written) in [
            (
                r#"=HYPERLINK("http://evil.example/x","click")@example.com"#,
                r#"'=HYPERLINK("http://evil.example/x","click")@example.com"#,
            ),
            ("+1@example.com", "'+1@example.com"),
            ("-2+3@example.com", "'-2+3@example.com"),
            ("@sum@example.com", "'@sum@example.com"),
            ("\tx@example.com", "'\tx@example.com"),
            ("ada@example.com", "ada@example.com"),
            ("{\"plan\":\"pro\"}", "{\"plan\":\"pro\"}"),
            ("", ""),
        ] {
            assert_eq!(spreadsheet_safe(cell.to_owned()), written);
        }
        let member = Subscriber {
            id: 1,
            uuid: "u".into(),
            email: "=1+1@example.com".into(),
            fields: serde_json::Map::new(),
            tag_ids: Vec::new(),
            created_at: 0,
            updated_at: 0,
            unsubscribed_at: None,
        };
        assert_eq!(
            MemberColumns::FieldsJson.record(&member)[1],
            "'=1+1@example.com"
        );
    }

    #[test]
    fn each_field_key_has_a_column_of_text_or_one_column_holds_them_as_json() {
        let fields = serde_json::json!({
            "plan": "pro", "seats": 12, "vip": true, "tags": ["a"], "none": null,
            "formula": "=2+2", "email": "other@example.com"
        });
        let member = Subscriber {
            id: 1,
            uuid: "u".into(),
            email: "ada@example.com".into(),
            fields: fields.as_object().unwrap().clone(),
            tag_ids: Vec::new(),
            created_at: 0,
            updated_at: 0,
            unsubscribed_at: None,
        };
        let keys = [
            "email", "formula", "missing", "none", "plan", "seats", "tags", "vip",
        ];
        let columns = MemberColumns::chosen(None, keys.map(str::to_owned).to_vec()).unwrap();
        assert_eq!(
            columns.header(),
            [
                "uuid",
                "email",
                "created_at",
                "unsubscribed_at",
                "field:email",
                "field:formula",
                "field:missing",
                "field:none",
                "field:plan",
                "field:seats",
                "field:tags",
                "field:vip"
            ]
        );
        assert_eq!(
            columns.record(&member)[4..],
            [
                "other@example.com",
                "'=2+2",
                "",
                "",
                "pro",
                "12",
                "[\"a\"]",
                "true"
            ]
        );
        let json = MemberColumns::chosen(Some("json"), Vec::new()).unwrap();
        assert_eq!(json.header().last().unwrap(), "fields");
        assert_eq!(json.record(&member).len(), 5);
        assert!(MemberColumns::chosen(Some("xml"), Vec::new()).is_err());
    }
}
