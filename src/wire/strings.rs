//! The constrained strings of request bodies, as named schemas: a request
//! type's field says which one it holds (`#[schema(value_type = …)]`), and
//! each schema's pattern states the rule its parser enforces, so the
//! OpenAPI document says what the server refuses:
//!
//! - [`Name`] (segment and tag names) and [`FieldKeyText`]: trimmed of
//!   Unicode whitespace (`char::is_whitespace`), then 1–255 characters
//!   without control characters or hidden ones; a field key's runs of
//!   whitespace, `-` and `.` become one `_`.
//! - [`EmailText`]: trimmed, one `@`, a local part of 1–64 characters, a domain of
//!   two or more dot-separated labels, none empty or starting or ending with
//!   `-`, no whitespace, control or hidden characters, at most 254 characters.
//!
//! The patterns are ECMA-262 regular expressions, as JSON Schema asks;
//! `WS` in them is Rust's whitespace, `CTRL` the control characters
//! (`\x00-\x1f\x7f-\x9f`) and `HIDDEN` the invisible and
//! direction-changing characters of [`corral_core::audience::text`]
//! (`\xad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb`),
//! written out. The patterns are a little stricter than the parsers: they
//! leave out the hidden characters beyond the Basic Multilingual Plane
//! (refused all the same), and the joiners a name may hold between two
//! characters that are not ASCII.

use serde::Deserialize;
use utoipa::ToSchema;

/// A segment or tag name: trimmed of whitespace, then 1–255 characters
/// without control or hidden characters.
#[derive(Deserialize, ToSchema)]
#[schema(
    value_type = String,
    example = "VIP customers",
    pattern = r"^[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[^\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\x00-\x1f\x7f-\x9f\xad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb](?:[^\x00-\x1f\x7f-\x9f\xad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]{0,253}[^\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\x00-\x1f\x7f-\x9f\xad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb])?[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$"
)]
pub struct Name(pub String);

/// A field key as written: normalised by trimming, lowercasing and turning
/// every run of whitespace, `-` or `.` into one `_` (`"First Name"` is
/// `first_name`); 1–255 characters once normalised, no control characters
/// other than whitespace, no hidden characters.
#[derive(Deserialize, ToSchema)]
#[schema(
    value_type = String,
    example = "First Name",
    max_length = 255,
    pattern = r"^[^\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f\xad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]*[^\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000.\x00-\x1f\x7f-\x9f\xad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb-][^\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f\xad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]*$"
)]
pub struct FieldKeyText(pub String);

/// An email address: trimmed, `local@domain.tld`, at most 254 characters;
/// the local part 1–64 characters; no whitespace, control or hidden characters. Compared
/// ignoring case.
#[derive(Deserialize, ToSchema)]
#[schema(
    value_type = String,
    example = "ada@example.com",
    max_length = 254,
    pattern = r"^[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[^\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\x00-\x1f\x7f-\x9f\xad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb@]{1,64}@[^\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\x00-\x1f\x7f-\x9f\xad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb@.-](?:[^\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\x00-\x1f\x7f-\x9f\xad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb@.]*[^\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\x00-\x1f\x7f-\x9f\xad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb@.-])?(?:\.[^\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\x00-\x1f\x7f-\x9f\xad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb@.-](?:[^\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\x00-\x1f\x7f-\x9f\xad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb@.]*[^\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\x00-\x1f\x7f-\x9f\xad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb@.-])?)+[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$"
)]
pub struct EmailText(pub String);

/// A segment's id: a positive decimal integer, as a string.
#[derive(Deserialize, ToSchema)]
#[schema(value_type = String, example = "42", pattern = r"^[0-9]{1,18}$")]
pub struct SegmentIdText(pub String);

/// The site's `site_uuid`, as the Node SDK sends it beside the body's own
/// key; it must be the query string's when both are given.
#[derive(Deserialize, ToSchema)]
#[schema(value_type = String, example = "9f0c2d4e8a7b4c1d9e2f3a4b5c6d7e8f")]
pub struct SiteUuidText(pub String);

/// A segment's query: `{}` (everyone), `{"foreign": …}` (any JSON, kept
/// verbatim, never evaluated), or one condition of the query language; at
/// most 64 KiB as compact JSON, kept exactly as written. In the served
/// document this placeholder is replaced by the query language's JSON Schema
/// (also served at `/api/query-language.schema.json`).
#[derive(Deserialize, ToSchema)]
#[schema(value_type = Object)]
pub struct VisitorEventQuery(pub serde_json::Value);
