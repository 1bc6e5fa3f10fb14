//! A segment's hand-made includes and excludes on the wire: the body of
//! `POST` and `DELETE /api/v1/fetch/segments/{id}/includes` (and
//! `/excludes`), what an edit came to, and a page of a list.
//!
//! ```json
//! {"emails":["ada@example.com","nobody@example.com"]}
//!
//! {"data":{"segment_id":"7","list":"includes","changed":["ada@example.com"],
//!   "unchanged":[],"unknown":["nobody@example.com"]}}
//!
//! {"data":[{"uuid":"8f3…","email":"ada@example.com",
//!   "added_at":"2026-11-26T09:00:00.000Z"}],"meta":{"count":1,"next_cursor":null}}
//! ```
//!
//! The CLI prints the same bodies with `--json`.

use super::body::{self, BodyError, Given};
use super::strings::SiteUuidText;
use crate::clock::format_ms;
use crate::segment::manual::{MAX_EMAILS_PER_EDIT, ManualEdit, ManualEntry, ManualList};
use crate::segment::{FieldErrors, SegmentId};
use corral_core::audience::Email;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The subscribers to put in a list, or take out of it, by email.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ManualRequest {
    /// Sent by the Node SDK; may instead be in the query string.
    #[serde(default)]
    #[schema(value_type = Option<SiteUuidText>, nullable = false)]
    pub site_uuid: Given,
    #[serde(default)]
    #[schema(schema_with = emails_schema, required = true)]
    pub emails: Given,
}

fn emails_schema() -> utoipa::openapi::schema::Array {
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(utoipa::openapi::Ref::from_schema_name("EmailText"))
        .min_items(Some(1))
        .max_items(Some(MAX_EMAILS_PER_EDIT))
        .description(Some(
            "1 to 1,000 emails of the site's subscribers; an email no subscriber has \
             creates nothing and is answered in `unknown`.",
        ))
        .examples([serde_json::json!(["ada@example.com"])])
        .build()
}

/// Reads the body: the emails, each checked as an email.
pub fn manual_request(bytes: &[u8]) -> Result<Vec<Email>, BodyError> {
    let (request, mut errors): (ManualRequest, FieldErrors) = body::read(bytes)?;
    let given = request
        .emails
        .required::<Vec<serde_json::Value>>("emails", "list of emails", &mut errors)
        .unwrap_or_default();
    if given.len() > MAX_EMAILS_PER_EDIT {
        errors.push(
            "emails",
            format!(
                "has {} emails (at most {MAX_EMAILS_PER_EDIT} a call)",
                given.len()
            ),
        );
        return Err(BodyError::from(errors));
    }
    let mut emails = Vec::with_capacity(given.len());
    for (i, value) in given.iter().enumerate() {
        match value.as_str().map(Email::parse) {
            Some(Ok(email)) => emails.push(email),
            Some(Err(message)) => errors.push(format!("emails/{i}"), message),
            None => errors.push(format!("emails/{i}"), "must be an email (a string)"),
        }
    }
    errors.finish(|| emails).map_err(BodyError::from)
}

/// What an edit came to; each email as given, in one of three lists.
#[derive(Debug, Serialize, ToSchema)]
pub struct ManualEditResult {
    #[schema(example = "7")]
    pub segment_id: String,
    /// `includes` or `excludes`.
    #[schema(example = "includes")]
    pub list: &'static str,
    /// Put in the list (or taken out of it) by this call.
    pub changed: Vec<String>,
    /// Already in the list (or already not in it).
    pub unchanged: Vec<String>,
    /// No subscriber of the site has this email; nothing was created.
    pub unknown: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ManualEditEnvelope {
    pub data: ManualEditResult,
}

/// `{"data": …}` as the API answers an edit.
pub fn manual_edit_body(id: SegmentId, list: ManualList, edit: ManualEdit) -> ManualEditEnvelope {
    ManualEditEnvelope {
        data: ManualEditResult {
            segment_id: id.to_string(),
            list: list.as_str(),
            changed: edit.changed,
            unchanged: edit.unchanged,
            unknown: edit.unknown,
        },
    }
}

/// A subscriber in a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct ManualEntryResource {
    /// The subscriber's uuid.
    pub uuid: String,
    pub email: String,
    /// When the subscriber was put in the list.
    #[schema(example = "2026-11-26T09:00:00.000Z")]
    pub added_at: String,
}

impl From<&ManualEntry> for ManualEntryResource {
    fn from(e: &ManualEntry) -> Self {
        Self {
            uuid: e.uuid.clone(),
            email: e.email.clone(),
            added_at: format_ms(e.added_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ManualPageMeta {
    /// How many subscribers the list holds in all.
    pub count: i64,
    /// Continues after the last subscriber of this page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// One page of a list, by subscriber.
#[derive(Debug, Serialize, ToSchema)]
pub struct ManualPage {
    pub data: Vec<ManualEntryResource>,
    pub meta: ManualPageMeta,
}
