//! Membership-change webhooks: telling an application when subscribers join
//! or leave a segment, signed and retried until delivered.
//!
//! The webhooks' service ([`crate::service::webhooks`]) manages a site's
//! webhooks; this module holds the machinery behind it, in four parts.
//! [`target`] says which addresses may be sent to. [`tracker`] follows every
//! watched segment's membership journal ([`crate::storage::journal`]: every
//! join and leave, recorded with the write that caused it) and writes one
//! notification per transition and wanting webhook, with the watch's move
//! past them, in one transaction (the outbox). [`delivery`] sends what the
//! outbox holds, each webhook on its own, in order, up to 100 notifications
//! a request, retried with exponential backoff and jitter for up to 3 days,
//! after which the webhook is disabled until a PATCH enables it again.
//! [`signing`] makes the secrets and signs each request as the Standard
//! Webhooks specification says.

pub mod delivery;
pub mod notification;
pub mod signing;
pub mod target;
pub mod tracker;

use crate::live::LiveError;
use crate::segment::FieldErrors;
use crate::storage::StorageError;

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
