//! Hand-made includes and excludes of a segment, as the service and storage
//! speak of them: which list ([`ManualList`]), what an edit came to
//! ([`ManualEdit`]) and one subscriber of a list ([`ManualEntry`]). How they
//! take part in membership is the query language's
//! ([`corral_core::query::manual`]).

/// Most emails one edit names.
pub const MAX_EMAILS_PER_EDIT: usize = 1_000;

/// A segment's includes (members whatever the query says) or excludes
/// (never members; an exclude wins over an include).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManualList {
    Includes,
    Excludes,
}

impl ManualList {
    /// As routes and the CLI name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Includes => "includes",
            Self::Excludes => "excludes",
        }
    }

    /// As stored (`excluded`).
    pub fn excluded(self) -> bool {
        self == Self::Excludes
    }
}

/// What adding emails to a list, or taking them out, came to: each email
/// asked for (as given, first occurrence only) in one of three lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManualEdit {
    /// Put in (or taken out of) the list by this edit.
    pub changed: Vec<String>,
    /// Already in (or already not in) the list.
    pub unchanged: Vec<String>,
    /// No subscriber of the site has this email: nothing was created.
    pub unknown: Vec<String>,
}

/// A subscriber in a segment's includes or excludes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManualEntry {
    pub subscriber_id: i64,
    pub uuid: String,
    pub email: String,
    /// When it was put in the list (Unix ms).
    pub added_at: i64,
}
