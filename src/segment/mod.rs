//! Segments: the saved audiences of a site, and the rules a segment obeys.
//!
//! Parsing happens once, at the edge: the HTTP layer and the CLI turn what they
//! receive into [`SegmentName`], [`Description`] and [`RawQuery`],
//! so storage only ever sees values that already satisfy every rule. Messages
//! follow Rails' wording ("can't be blank", "has already been taken"), as
//! Bento's own API does.

pub mod manual;
pub mod references;

use corral_core::audience::text::{Joiners, hidden_character, hidden_character_message};
use corral_core::query::{Query, RawQuery};
use std::fmt;

pub use references::{KeptSegments, referenced_by};

/// The name of the query field, and the start of every error about it.
pub const QUERY_FIELD: &str = "visitor_event_query";

/// Checks a query against the grammar. Each problem becomes an error on
/// `visitor_event_query` followed by its JSON pointer, so a client sees
/// exactly where the query is wrong.
pub fn check_query(raw: &RawQuery, errors: &mut FieldErrors) -> Option<Query> {
    corral_core::query::parse(raw.as_str())
        .map_err(|problems| {
            for p in problems {
                errors.push(format!("{QUERY_FIELD}{}", p.pointer), p.message);
            }
        })
        .ok()
}

/// Longest segment name, in characters, after trimming.
pub const MAX_NAME_CHARS: usize = 255;
/// Longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 2_000;

/// One broken rule, named by the field it concerns.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// The field, as the client named it (`name`, `visitor_event_query`, …).
    pub field: String,
    /// What is wrong, to be read after the field's name.
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Every rule a request broke, reported together.
#[derive(Debug, Clone, Default, PartialEq, Eq, thiserror::Error)]
pub struct FieldErrors(pub Vec<FieldError>);

impl FieldErrors {
    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(value)` when nothing was pushed, otherwise the collected errors.
    pub fn finish<T>(self, value: impl FnOnce() -> T) -> Result<T, Self> {
        if self.0.is_empty() {
            Ok(value())
        } else {
            Err(self)
        }
    }
}

impl fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|e| format!("{} {}", e.field, e.message))
            .collect();
        f.write_str(&parts.join("; "))
    }
}

impl From<FieldError> for FieldErrors {
    fn from(error: FieldError) -> Self {
        Self(vec![error])
    }
}

/// A segment's name: trimmed, 1 to 255 characters, no control characters and
/// none of the invisible or direction-changing characters of
/// [`corral_core::audience::text`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentName(String);

impl SegmentName {
    pub fn parse(input: &str) -> Result<Self, String> {
        let name = input.trim();
        if name.is_empty() {
            return Err("can't be blank".to_owned());
        }
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(format!(
                "is too long (maximum is {MAX_NAME_CHARS} characters)"
            ));
        }
        if name.chars().any(char::is_control) {
            return Err("must not contain control characters".to_owned());
        }
        if let Some(c) = hidden_character(name, Joiners::Allowed) {
            return Err(hidden_character_message(c));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key names are compared and ordered by: Unicode lowercase.
    pub fn key(&self) -> String {
        name_key(&self.0)
    }
}

/// The comparison key of a name, the same on every backend.
pub fn name_key(name: &str) -> String {
    name.to_lowercase()
}

/// A segment's description: at most 2,000 characters; line breaks and tabs
/// allowed, other control characters not, nor the invisible or
/// direction-changing characters a name may not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description(String);

impl Description {
    pub fn parse(input: &str) -> Result<Self, String> {
        if input.chars().count() > MAX_DESCRIPTION_CHARS {
            return Err(format!(
                "is too long (maximum is {MAX_DESCRIPTION_CHARS} characters)"
            ));
        }
        if input
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            return Err(
                "must not contain control characters other than line breaks and tabs".to_owned(),
            );
        }
        if let Some(c) = hidden_character(input, Joiners::Allowed) {
            return Err(hidden_character_message(c));
        }
        Ok(Self(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A segment's id: a positive integer, a string on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SegmentId(pub i64);

impl SegmentId {
    /// Reads an id from a path; anything that is not a positive decimal
    /// integer names no segment.
    pub fn parse(input: &str) -> Option<Self> {
        corral_core::query::ast::segment_id(input).map(Self)
    }
}

impl fmt::Display for SegmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What creating a segment takes.
#[derive(Debug, Clone)]
pub struct NewSegment {
    pub name: SegmentName,
    pub description: Option<Description>,
    pub query: RawQuery,
}

/// A change to a segment: `None` leaves a field as it is; for the description
/// `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct SegmentPatch {
    pub name: Option<SegmentName>,
    pub description: Option<Option<Description>>,
    pub query: Option<RawQuery>,
}

/// A stored segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub id: SegmentId,
    pub name: String,
    pub description: Option<String>,
    pub query: RawQuery,
    pub created_at: i64,
    pub updated_at: i64,
    /// Set when the segment is discarded (soft-deleted).
    pub discarded_at: Option<i64>,
    /// Incremented by every accepted change; the basis of the segment's ETag.
    pub version: i64,
}

impl Segment {
    pub fn is_kept(&self) -> bool {
        self.discarded_at.is_none()
    }

    /// The entity tag of this version of the segment.
    pub fn etag(&self) -> String {
        format!("\"{}-{}\"", self.id, self.version)
    }

    /// Whether applying `patch` would change anything.
    pub fn differs_from(&self, patch: &SegmentPatch) -> bool {
        let name_differs = patch.name.as_ref().is_some_and(|n| n.as_str() != self.name);
        let description_differs = patch
            .description
            .as_ref()
            .is_some_and(|d| d.as_ref().map(Description::as_str) != self.description.as_deref());
        let query_differs = patch.query.as_ref().is_some_and(|q| *q != self.query);
        name_differs || description_differs || query_differs
    }

    /// The name, description and query the segment has once `patch` is
    /// applied (what is not in the patch stays), for a backend to store.
    pub fn patched<'a>(
        &'a self,
        patch: &'a SegmentPatch,
    ) -> (String, Option<String>, &'a RawQuery) {
        let name = patch
            .name
            .as_ref()
            .map_or(self.name.clone(), |n| n.as_str().to_owned());
        let description = match &patch.description {
            Some(d) => d.as_ref().map(|d| d.as_str().to_owned()),
            None => self.description.clone(),
        };
        (
            name,
            description,
            patch.query.as_ref().unwrap_or(&self.query),
        )
    }
}

/// Which segments a listing shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Listing {
    /// Kept segments only: Bento's list.
    #[default]
    Kept,
    /// Discarded segments only.
    Discarded,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(SegmentName::parse("  VIP  ").unwrap().as_str(), "VIP");
        assert_eq!(SegmentName::parse("   ").unwrap_err(), "can't be blank");
        assert!(SegmentName::parse(&"é".repeat(255)).is_ok());
        assert!(SegmentName::parse(&"é".repeat(256)).is_err());
        assert!(SegmentName::parse("a\nb").is_err());
    }

    #[test]
    fn name_keys_fold_unicode_case() {
        let a = SegmentName::parse("ÉCOLE Straße").unwrap();
        assert_eq!(a.key(), "école straße");
    }

    #[test]
    fn descriptions_allow_line_breaks_but_not_other_controls() {
        assert!(Description::parse("one\ntwo\tthree").is_ok());
        assert!(Description::parse("bell\u{7}").is_err());
        assert!(Description::parse(&"x".repeat(2_000)).is_ok());
        assert!(Description::parse(&"x".repeat(2_001)).is_err());
    }

    #[test]
    fn ids_are_positive_decimal_integers() {
        assert_eq!(SegmentId::parse("42"), Some(SegmentId(42)));
        assert_eq!(SegmentId::parse("0"), None);
        assert_eq!(SegmentId::parse("-1"), None);
        assert_eq!(SegmentId::parse("4a"), None);
        assert_eq!(SegmentId::parse(""), None);
        assert_eq!(SegmentId::parse("99999999999999999999"), None);
    }
}
