//! Membership-change webhooks: telling an application when subscribers join
//! or leave a segment, signed and retried until delivered.
//!
//! The webhooks' service ([`crate::service::webhooks`]) manages a site's
//! webhooks; this module holds the machinery behind it, in three parts.
//! [`target`] says which addresses may be sent to. [`tracker`] follows every
//! watched segment: when the site's change log
//! moves, the segment's definition changes, it is discarded or restored, or
//! a minute passes (relative time windows), it works the members out again
//! from the live snapshot, and writes the difference and its notifications
//! in one transaction (the outbox). [`delivery`] sends what the outbox holds,
//! each webhook on its own, in order, up to 100 notifications a request,
//! signed with HMAC-SHA256, retried with exponential backoff and jitter for
//! up to 3 days, after which the webhook is disabled until a PATCH enables
//! it again.

pub mod delivery;
pub mod target;
pub mod tracker;

use crate::live::LiveError;
use crate::segment::FieldErrors;
use crate::storage::StorageError;
use crate::storage::webhooks::Watch;

/// What a webhook service call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The call breaks the rules listed (each named by its field).
    #[error("{0}")]
    Invalid(FieldErrors),
    #[error("no such webhook on this site")]
    NotFound,
    #[error("no such delivery of this webhook")]
    DeliveryNotFound,
    #[error(transparent)]
    Live(#[from] LiveError),
    #[error(transparent)]
    Storage(StorageError),
}

impl From<StorageError> for WebhookError {
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::NotFound => Self::NotFound,
            other => Self::Storage(other),
        }
    }
}

/// A watch's state as a fresh baseline would have it.
pub(crate) fn watch_of(segment_id: i64, seq: i64, now: i64, version: i64, kept: bool) -> Watch {
    Watch {
        segment_id,
        seq,
        checked_at: now,
        version,
        kept,
    }
}
