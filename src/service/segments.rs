//! The segment service: creating, changing, discarding and restoring a
//! site's segments, for the HTTP handlers and the CLI alike. It checks a
//! query's grammar (every problem at its JSON pointer), its references to
//! other segments ([`crate::segment::references`]: kept, evaluable, no
//! cycle) and, where the caller holds the site's audience, its cost; it
//! refuses to discard a segment that kept segments refer to. The backend
//! checks the reference rules again inside the write's transaction, so two
//! concurrent writes cannot together make a cycle or orphan a reference.
//!
//! Every write names who makes it (an [`Actor`]); the backend records it
//! with the write, in the site's audit log and, for a definition saved, in
//! the segment's versions, which [`Segments::versions`] lists and
//! [`Segments::restore_version`] makes current again.

use crate::live::Live;
use crate::segment::{
    Description, FieldError, FieldErrors, KeptSegments, Listing, NewSegment, QUERY_FIELD, Segment,
    SegmentId, SegmentName, SegmentPatch,
};
use crate::storage::audit::{Actor, SegmentVersion};
use crate::storage::{Precondition, StorageError, Store};
use corral_core::query::{Query, RawQuery};

/// What a segment service call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    /// The call breaks the rules listed (each named by its field).
    #[error("{0}")]
    Invalid(FieldErrors),
    /// No such segment on this site (or not kept, where it must be).
    #[error("no such segment on this site")]
    NotFound,
    /// The segment has no saved definition of that version.
    #[error("no such version of the segment")]
    VersionNotFound,
    /// The segment changed since the version the caller named.
    #[error("the segment has changed since it was read")]
    PreconditionFailed,
    #[error("{0}")]
    Storage(StorageError),
}

impl From<StorageError> for SegmentError {
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::NotFound => Self::NotFound,
            StorageError::PreconditionFailed => Self::PreconditionFailed,
            StorageError::NameTaken => {
                Self::Invalid(FieldError::new("name", "has already been taken").into())
            }
            StorageError::Refused(errors) => Self::Invalid(errors),
            other => Self::Storage(other),
        }
    }
}

impl From<FieldErrors> for SegmentError {
    fn from(errors: FieldErrors) -> Self {
        Self::Invalid(errors)
    }
}

/// A field as a front end read it: absent (`None`), unreadable (why, e.g.
/// "must be a string"), or its value, not yet checked against the rules.
pub type Input<T> = Option<Result<T, String>>;

/// A segment's fields as a front end read them (a request body, the CLI's
/// flags and query file), for [`Segments::create`] and [`Segments::update`]
/// to check every rule and answer every problem at once.
#[derive(Debug, Default)]
pub struct SegmentDraft {
    /// What the front end found wrong before the fields (unknown keys, a
    /// body of the wrong shape); listed first.
    pub errors: FieldErrors,
    pub name: Input<String>,
    /// `Ok(None)` clears the description.
    pub description: Input<Option<String>>,
    /// The query exactly as written; its grammar is checked here.
    pub query: Input<RawQuery>,
}

/// A draft's fields once checked, and every problem found.
struct Checked {
    errors: FieldErrors,
    name: Option<SegmentName>,
    description: Option<Option<Description>>,
    query: Option<(RawQuery, Query)>,
}

impl SegmentDraft {
    /// Checks each field given against its rule, in field order; `creating`
    /// also requires a name and a query.
    fn check(self, creating: bool) -> Checked {
        let mut errors = self.errors;
        let name = match self.name {
            Some(Ok(text)) => SegmentName::parse(&text)
                .map_err(|m| errors.push("name", m))
                .ok(),
            Some(Err(m)) => {
                errors.push("name", m);
                None
            }
            None => {
                if creating {
                    errors.push("name", "can't be blank");
                }
                None
            }
        };
        let description = match self.description {
            Some(Ok(Some(text))) => Description::parse(&text)
                .map(Some)
                .map_err(|m| errors.push("description", m))
                .ok(),
            Some(Ok(None)) => Some(None),
            Some(Err(m)) => {
                errors.push("description", m);
                None
            }
            None => None,
        };
        let query = match self.query {
            Some(Ok(raw)) => {
                crate::segment::check_query(&raw, &mut errors).map(|parsed| (raw, parsed))
            }
            Some(Err(m)) => {
                errors.push(QUERY_FIELD, m);
                None
            }
            None => {
                if creating {
                    errors.push(QUERY_FIELD, "is required");
                }
                None
            }
        };
        Checked {
            errors,
            name,
            description,
            query,
        }
    }
}

/// The segment rules over one store, and, for a server, the audience it
/// holds: a query over the evaluation budget of that audience is refused
/// when saved (the CLI holds none, and checks nothing of cost).
pub struct Segments<'a> {
    store: &'a dyn Store,
    live: Option<&'a Live>,
}

impl<'a> Segments<'a> {
    pub fn new(store: &'a dyn Store) -> Self {
        Self { store, live: None }
    }

    /// Also refuses queries over the evaluation budget of the audience
    /// `live` holds for the site.
    pub fn with_live(self, live: &'a Live) -> Self {
        Self {
            live: Some(live),
            ..self
        }
    }

    /// Brings the site's snapshot up to date before a segment write, when
    /// it is in memory: the write evaluates its segments over it for the
    /// journal while it holds the site's write turn, which then waits for a
    /// short catch-up at most. A site not in memory is not read for it: the
    /// journal leaves that write for the next sweep.
    async fn warm(&self, site_id: i64) {
        if let Some(live) = self.live
            && live.holds(site_id)
            && let Err(error) = live.resident(site_id).await
        {
            tracing::debug!(site_id, %error, "the snapshot could not be read before a segment write");
        }
    }

    /// A kept segment of the site, or [`SegmentError::NotFound`].
    pub async fn kept(&self, site_id: i64, id: SegmentId) -> Result<Segment, SegmentError> {
        self.store
            .get_segment(site_id, id)
            .await?
            .filter(Segment::is_kept)
            .ok_or(SegmentError::NotFound)
    }

    /// Parses a raw query and checks it as saving it as the query of
    /// `saving` (`None` when creating, or for a query not to be saved) would.
    pub async fn check_query(
        &self,
        site_id: i64,
        saving: Option<SegmentId>,
        raw: &RawQuery,
    ) -> Result<Query, SegmentError> {
        let mut errors = FieldErrors::default();
        let Some(query) = crate::segment::check_query(raw, &mut errors) else {
            return Err(errors.into());
        };
        self.check_parsed(site_id, saving, &query).await?;
        Ok(query)
    }

    /// Checks a parsed query's references, then its cost.
    pub async fn check_parsed(
        &self,
        site_id: i64,
        saving: Option<SegmentId>,
        query: &Query,
    ) -> Result<(), SegmentError> {
        if !query.segment_refs().is_empty() {
            let kept = self.store.list_segments(site_id, Listing::Kept).await?;
            KeptSegments::new(&kept)
                .check(saving, query)
                .finish(|| ())?;
        }
        if let Some(live) = self.live
            && let Err(reason) = live.check_cost(site_id, query)
        {
            let reason = reason.to_string();
            return Err(FieldErrors::from(FieldError::new(QUERY_FIELD, reason)).into());
        }
        Ok(())
    }

    /// Creates a segment from a draft: every rule checked, every problem
    /// answered at once ([`SegmentError::Invalid`]), the references of a
    /// query that fits the grammar included.
    pub async fn create(
        &self,
        site_id: i64,
        draft: SegmentDraft,
        now: i64,
        by: &Actor,
    ) -> Result<Segment, SegmentError> {
        let mut checked = draft.check(true);
        if let Some((_, query)) = &checked.query {
            self.gather(
                self.check_parsed(site_id, None, query).await,
                &mut checked.errors,
            )?;
        }
        let new = match checked {
            Checked {
                errors,
                name: Some(name),
                description,
                query: Some((query, _)),
            } if errors.is_empty() => NewSegment {
                name,
                description: description.flatten(),
                query,
            },
            Checked { errors, .. } => return Err(errors.into()),
        };
        self.warm(site_id).await;
        Ok(self.store.create_segment(site_id, &new, now, by).await?)
    }

    /// Changes a kept segment's name, description or query: the fields the
    /// draft gives, each checked; absent ones stay as they are.
    pub async fn update(
        &self,
        site_id: i64,
        id: SegmentId,
        draft: SegmentDraft,
        precondition: &Precondition,
        now: i64,
        by: &Actor,
    ) -> Result<Segment, SegmentError> {
        let mut checked = draft.check(false);
        if let Some((_, query)) = &checked.query {
            self.kept(site_id, id).await?;
            let found = self.check_parsed(site_id, Some(id), query).await;
            self.gather(found, &mut checked.errors)?;
        }
        let Checked {
            errors,
            name,
            description,
            query,
        } = checked;
        let patch = SegmentPatch {
            name,
            description,
            query: query.map(|(raw, _)| raw),
        };
        errors.finish(|| ())?;
        self.warm(site_id).await;
        Ok(self
            .store
            .update_segment(site_id, id, &patch, precondition, now, by)
            .await?)
    }

    /// Every definition a segment of the site was saved with, oldest first;
    /// a discarded segment's too.
    pub async fn versions(
        &self,
        site_id: i64,
        id: SegmentId,
    ) -> Result<Vec<SegmentVersion>, SegmentError> {
        if self.store.get_segment(site_id, id).await?.is_none() {
            return Err(SegmentError::NotFound);
        }
        Ok(self.store.segment_versions(site_id, id).await?)
    }

    /// Makes version `version` of a kept segment its current definition, as
    /// a new version, checked as a change of every field would be (its
    /// query's grammar, references and cost, its name still free). Restoring
    /// the definition it has changes nothing.
    pub async fn restore_version(
        &self,
        site_id: i64,
        id: SegmentId,
        version: i64,
        precondition: &Precondition,
        now: i64,
        by: &Actor,
    ) -> Result<Segment, SegmentError> {
        self.kept(site_id, id).await?;
        let saved = self
            .store
            .segment_versions(site_id, id)
            .await?
            .into_iter()
            .find(|v| v.version == version)
            .ok_or(SegmentError::VersionNotFound)?;
        self.check_query(site_id, Some(id), &saved.definition.query)
            .await?;
        self.warm(site_id).await;
        Ok(self
            .store
            .restore_segment_version(site_id, id, version, precondition, now, by)
            .await?)
    }

    /// Adds the rule problems of a check to `errors`; any other failure ends
    /// the call.
    fn gather(
        &self,
        found: Result<(), SegmentError>,
        errors: &mut FieldErrors,
    ) -> Result<(), SegmentError> {
        match found {
            Ok(()) => Ok(()),
            Err(SegmentError::Invalid(found)) => {
                errors.0.extend(found.0);
                Ok(())
            }
            Err(other) => Err(other),
        }
    }

    /// Discards a kept segment no kept segment refers to.
    pub async fn discard(
        &self,
        site_id: i64,
        id: SegmentId,
        precondition: &Precondition,
        now: i64,
        by: &Actor,
    ) -> Result<Segment, SegmentError> {
        let kept = self.store.list_segments(site_id, Listing::Kept).await?;
        KeptSegments::new(&kept).check_discard(id)?;
        self.warm(site_id).await;
        Ok(self
            .store
            .discard_segment(site_id, id, precondition, now, by)
            .await?)
    }

    /// Restores a discarded segment; restoring a kept one changes nothing.
    pub async fn restore(
        &self,
        site_id: i64,
        id: SegmentId,
        precondition: &Precondition,
        now: i64,
        by: &Actor,
    ) -> Result<Segment, SegmentError> {
        self.warm(site_id).await;
        Ok(self
            .store
            .restore_segment(site_id, id, precondition, now, by)
            .await?)
    }
}

#[cfg(test)]
mod tests {
    //! The reference rules hold inside the backend's write transaction, not
    //! only in the service's checks before it: each test calls the store
    //! directly, as a write racing with the service's check would reach it.

    use super::*;
    use crate::credentials::KeyPair;
    use crate::segment::SegmentName;
    use crate::storage::SqliteStore;

    async fn fixture() -> (tempfile::TempDir, SqliteStore, i64) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("segments.db");
        let store = SqliteStore::open(path.to_str().unwrap()).await.unwrap();
        let site = store
            .create_site("one", "site-one", &KeyPair::generate(), false, 0)
            .await
            .unwrap()
            .id;
        (dir, store, site)
    }

    fn new(name: &str, query: &str) -> NewSegment {
        NewSegment {
            name: SegmentName::parse(name).unwrap(),
            description: None,
            query: RawQuery::parse(query).unwrap(),
        }
    }

    fn refer(id: SegmentId) -> String {
        format!(r#"{{"segment":{{"member_of":"{id}"}}}}"#)
    }

    /// Segment a, and segment b whose query refers to a.
    async fn a_and_b_referring_to_it(store: &SqliteStore, site: i64) -> (Segment, Segment) {
        let a = store
            .create_segment(site, &new("a", r#"{"subscribed":true}"#), 1, &Actor::Cli)
            .await
            .unwrap();
        let b = store
            .create_segment(site, &new("b", &refer(a.id)), 2, &Actor::Cli)
            .await
            .unwrap();
        (a, b)
    }

    fn refused(result: Result<Segment, StorageError>) -> String {
        match result {
            Err(StorageError::Refused(errors)) => errors.to_string(),
            other => panic!("not refused: {other:?}"),
        }
    }

    #[tokio::test]
    async fn the_store_refuses_to_discard_a_segment_referred_to() {
        let (_dir, store, site) = fixture().await;
        let (a, b) = a_and_b_referring_to_it(&store, site).await;
        let message = refused(
            store
                .discard_segment(site, a.id, &Precondition::None, 3, &Actor::Cli)
                .await,
        );
        assert!(
            message.contains(&format!("referred to by segment {}", b.id)),
            "{message}"
        );
        assert!(
            store
                .get_segment(site, a.id)
                .await
                .unwrap()
                .unwrap()
                .is_kept()
        );
        // Once b is gone, a may go.
        store
            .discard_segment(site, b.id, &Precondition::None, 4, &Actor::Cli)
            .await
            .unwrap();
        store
            .discard_segment(site, a.id, &Precondition::None, 5, &Actor::Cli)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn the_store_refuses_a_reference_to_a_discarded_segment_or_a_cycle() {
        let (_dir, store, site) = fixture().await;
        let (a, b) = a_and_b_referring_to_it(&store, site).await;
        // a referring to b would close a cycle.
        let patch = SegmentPatch {
            query: Some(RawQuery::parse(&refer(b.id)).unwrap()),
            ..SegmentPatch::default()
        };
        let message = refused(
            store
                .update_segment(site, a.id, &patch, &Precondition::None, 3, &Actor::Cli)
                .await,
        );
        assert!(message.contains("leads back to this segment"), "{message}");
        assert_eq!(
            store
                .get_segment(site, a.id)
                .await
                .unwrap()
                .unwrap()
                .version,
            a.version
        );
        // A segment discarded cannot be referred to.
        let c = store
            .create_segment(site, &new("c", r#"{"subscribed":false}"#), 4, &Actor::Cli)
            .await
            .unwrap();
        store
            .discard_segment(site, c.id, &Precondition::None, 5, &Actor::Cli)
            .await
            .unwrap();
        let message = refused(
            store
                .create_segment(site, &new("d", &refer(c.id)), 6, &Actor::Cli)
                .await,
        );
        assert!(
            message.contains("does not exist or is discarded"),
            "{message}"
        );
        let kept = store.list_segments(site, Listing::Kept).await.unwrap();
        assert_eq!(kept.len(), 2);
    }

    #[tokio::test]
    async fn every_problem_of_a_draft_is_answered_at_once() {
        let (_dir, store, site) = fixture().await;
        let segments = Segments::new(&store);
        let draft = SegmentDraft {
            errors: FieldError::new("colour", "is not a known field").into(),
            name: Some(Ok("  ".into())),
            description: Some(Err("must be a string or null".into())),
            query: Some(Ok(
                RawQuery::parse(r#"{"segment":{"member_of":"999"}}"#).unwrap()
            )),
        };
        let found = match segments.create(site, draft, 1, &Actor::Cli).await {
            Err(SegmentError::Invalid(errors)) => errors.0,
            other => panic!("expected every problem, got {other:?}"),
        };
        let fields: Vec<&str> = found.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "colour",
                "name",
                "description",
                "visitor_event_query/segment/member_of"
            ],
            "{found:?}"
        );
        // Creating requires a name and a query; a change requires neither.
        match segments
            .create(site, SegmentDraft::default(), 1, &Actor::Cli)
            .await
        {
            Err(SegmentError::Invalid(errors)) => assert_eq!(
                errors.to_string(),
                "name can't be blank; visitor_event_query is required"
            ),
            other => panic!("{other:?}"),
        }
        assert!(
            store
                .list_segments(site, Listing::Kept)
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn the_service_answers_with_its_own_errors() {
        let (_dir, store, site) = fixture().await;
        let segments = Segments::new(&store);
        let draft = |name: &str, query: &str| SegmentDraft {
            name: Some(Ok(name.into())),
            query: Some(Ok(RawQuery::parse(query).unwrap())),
            ..SegmentDraft::default()
        };
        let a = segments
            .create(site, draft("a", r#"{"subscribed":true}"#), 1, &Actor::Cli)
            .await
            .unwrap();
        match segments
            .create(site, draft("A", "{}"), 2, &Actor::Cli)
            .await
        {
            Err(SegmentError::Invalid(e)) => {
                assert_eq!(e.to_string(), "name has already been taken")
            }
            other => panic!("{other:?}"),
        }
        match segments
            .create(site, draft("b", r#"{"tag":{"bogus":"x"}}"#), 3, &Actor::Cli)
            .await
        {
            Err(SegmentError::Invalid(e)) => {
                assert!(e.0[0].field.starts_with("visitor_event_query/tag"), "{e}")
            }
            other => panic!("{other:?}"),
        }
        let missing = SegmentId(a.id.0 + 100);
        assert!(matches!(
            segments
                .discard(site, missing, &Precondition::None, 4, &Actor::Cli)
                .await,
            Err(SegmentError::NotFound)
        ));
        assert!(matches!(
            segments
                .discard(
                    site,
                    a.id,
                    &Precondition::Versions(vec![99]),
                    4,
                    &Actor::Cli
                )
                .await,
            Err(SegmentError::PreconditionFailed)
        ));
    }
}
