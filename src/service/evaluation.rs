//! The evaluation service: a saved segment's members, counts and
//! explanations, and an unsaved query's, as of the request, for the HTTP
//! handlers and the CLI alike.
//!
//! A saved segment's query is taken from the site's resident snapshot,
//! which holds every kept segment parsed and is brought up to the site's
//! head before any answer: asking about a segment reads nothing of its
//! definition from the database beyond that freshness check. Only a segment
//! the snapshot does not hold is looked up, to say why: none of that id on
//! this site (or discarded), or kept with a query saved before queries were
//! checked, which cannot be evaluated until it is saved again.

use crate::live::{Evaluation, Live, LiveError, ResidentGuard};
use crate::segment::{FieldErrors, QUERY_FIELD, Segment, SegmentId};
use crate::storage::{StorageError, Store};
use corral_core::engine::Explanation;
use corral_core::query::{Query, RawQuery};
use std::sync::Arc;

/// What an evaluation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum EvaluationError {
    /// No kept segment of that id on this site.
    #[error("no such segment on this site")]
    SegmentNotFound,
    /// The query breaks the rules listed (each named by its field).
    #[error("{0}")]
    Invalid(FieldErrors),
    /// The evaluation itself failed or was refused.
    #[error(transparent)]
    Live(#[from] LiveError),
}

impl From<StorageError> for EvaluationError {
    fn from(error: StorageError) -> Self {
        Self::Live(error.into())
    }
}

impl From<FieldErrors> for EvaluationError {
    fn from(errors: FieldErrors) -> Self {
        Self::Invalid(errors)
    }
}

impl From<super::SegmentError> for EvaluationError {
    fn from(error: super::SegmentError) -> Self {
        match error {
            super::SegmentError::Invalid(errors) => Self::Invalid(errors),
            // Evaluation reads no version.
            super::SegmentError::NotFound | super::SegmentError::VersionNotFound => {
                Self::SegmentNotFound
            }
            super::SegmentError::PreconditionFailed => {
                Self::Live(StorageError::PreconditionFailed.into())
            }
            super::SegmentError::Storage(e) => e.into(),
        }
    }
}

/// Evaluation over one store's sites, from the snapshots `live` holds.
pub struct Evaluations<'a> {
    store: &'a dyn Store,
    live: &'a Live,
}

impl<'a> Evaluations<'a> {
    pub fn new(store: &'a dyn Store, live: &'a Live) -> Self {
        Self { store, live }
    }

    /// The query of a kept segment of the site, as its current snapshot
    /// holds it.
    pub async fn saved_query(
        &self,
        site_id: i64,
        id: SegmentId,
    ) -> Result<Arc<Query>, EvaluationError> {
        self.saved(site_id, id).await.map(|(query, _)| query)
    }

    /// The query of a kept segment and, when it came from the site's
    /// snapshot, that snapshot just brought up to date: evaluating on it
    /// needs no second freshness check.
    async fn saved(
        &self,
        site_id: i64,
        id: SegmentId,
    ) -> Result<(Arc<Query>, Option<ResidentGuard>), EvaluationError> {
        // A site not in memory yet is read whole before anything is
        // evaluated: a segment that is not there is told first, cheaply.
        if self.live.holds(site_id)
            && let Some((query, current)) = self.live.saved_query(site_id, id.0).await?
        {
            return Ok((query, Some(current)));
        }
        // None of that id, one whose text fits no grammar, or a site not
        // read yet.
        let segment = self
            .store
            .get_segment(site_id, id)
            .await?
            .filter(Segment::is_kept)
            .ok_or(EvaluationError::SegmentNotFound)?;
        match corral_core::query::manual::parse_saved(segment.query.as_str(), id.0) {
            Ok(query) => Ok((Arc::new(query), None)),
            Err(problems) => Err(unevaluable(problems).into()),
        }
    }

    /// The members of a kept segment now.
    pub async fn segment(
        &self,
        site_id: i64,
        id: SegmentId,
        now: i64,
    ) -> Result<Evaluation, EvaluationError> {
        let (query, current) = self.saved(site_id, id).await?;
        Ok(self.live.evaluate_on(site_id, &query, now, current).await?)
    }

    /// Whether a subscriber (by id) is a member of a kept segment now, and
    /// why; `None` when the subscriber is not in the site's audience.
    pub async fn explain_segment(
        &self,
        site_id: i64,
        id: SegmentId,
        subscriber_id: i64,
        now: i64,
    ) -> Result<Option<Explanation>, EvaluationError> {
        let (query, current) = self.saved(site_id, id).await?;
        Ok(self
            .live
            .explain_on(site_id, &query, now, subscriber_id, current)
            .await?)
    }

    /// The members of an unsaved query now, checked first as saving it
    /// would check it (its grammar, its references, its cost): every
    /// problem at once.
    pub async fn query(
        &self,
        site_id: i64,
        raw: &RawQuery,
        now: i64,
    ) -> Result<Evaluation, EvaluationError> {
        let query = super::Segments::new(self.store)
            .with_live(self.live)
            .check_query(site_id, None, raw)
            .await?;
        Ok(self.live.evaluate(site_id, &query, now).await?)
    }
}

/// A kept query that fits no grammar (saved before queries were checked):
/// every problem at its pointer, and how to mend it.
fn unevaluable(problems: Vec<corral_core::query::Problem>) -> FieldErrors {
    let mut errors = FieldErrors::default();
    for p in problems {
        errors.push(
            format!("{QUERY_FIELD}{}", p.pointer),
            format!(
                "{} (this query was saved before it could be checked; save it again in the documented grammar, or as {{\"foreign\": …}})",
                p.message
            ),
        );
    }
    errors
}
