//! Hand-made includes and excludes of a kept segment: putting subscribers
//! in a list or taking them out by email, and reading a list a page at a
//! time. Membership is `(the query's members ∪ includes) ∖ excludes`
//! ([`corral_core::query::manual`]); the lists of a discarded segment are
//! kept, and come back with it, but are not served while it is discarded.

use crate::segment::manual::{MAX_EMAILS_PER_EDIT, ManualEdit, ManualEntry, ManualList};
use crate::segment::{FieldErrors, Segment, SegmentId};
use crate::storage::audit::Actor;
use crate::storage::{StorageError, Store};
use corral_core::audience::Email;

/// What an edit or a read of a list can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ManualError {
    /// No kept segment of this id on the site.
    #[error("segment not found on this site")]
    SegmentNotFound,
    /// The emails break the rules listed (none, or too many).
    #[error("{0}")]
    Invalid(FieldErrors),
    #[error(transparent)]
    Storage(StorageError),
}

impl From<StorageError> for ManualError {
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::NotFound => Self::SegmentNotFound,
            other => Self::Storage(other),
        }
    }
}

/// Puts the subscribers with these emails in the segment's `list` (`add`),
/// or takes them out, as `by`: 1 to [`MAX_EMAILS_PER_EDIT`] emails.
#[allow(clippy::too_many_arguments)]
pub async fn edit(
    store: &dyn Store,
    site_id: i64,
    id: SegmentId,
    list: ManualList,
    emails: &[Email],
    add: bool,
    now: i64,
    by: &Actor,
) -> Result<ManualEdit, ManualError> {
    let mut errors = FieldErrors::default();
    if emails.is_empty() {
        errors.push("emails", "can't be blank (name 1 to 1,000 emails)");
    } else if emails.len() > MAX_EMAILS_PER_EDIT {
        errors.push(
            "emails",
            format!(
                "has {} emails (at most {MAX_EMAILS_PER_EDIT} a call)",
                emails.len()
            ),
        );
    }
    errors.finish(|| ()).map_err(ManualError::Invalid)?;
    Ok(store
        .edit_manual(site_id, id, list, emails, add, now, by)
        .await?)
}

/// Up to `limit` subscribers of a kept segment's `list`, by subscriber id,
/// after `after` (none: from the first).
pub async fn page(
    store: &dyn Store,
    site_id: i64,
    id: SegmentId,
    list: ManualList,
    after: Option<i64>,
    limit: usize,
) -> Result<(Vec<ManualEntry>, bool), ManualError> {
    store
        .get_segment(site_id, id)
        .await?
        .filter(Segment::is_kept)
        .ok_or(ManualError::SegmentNotFound)?;
    let mut entries = store
        .list_manual(site_id, id, list, after.unwrap_or(0), limit + 1)
        .await?;
    let more = entries.len() > limit;
    entries.truncate(limit);
    Ok((entries, more))
}

/// How many subscribers a segment's `list` holds (a discarded segment's
/// too: call it after [`page`], which refuses those).
pub async fn count(
    store: &dyn Store,
    site_id: i64,
    id: SegmentId,
    list: ManualList,
) -> Result<i64, ManualError> {
    Ok(store.count_manual(site_id, id, list).await?)
}
