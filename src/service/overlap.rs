//! The overlap service: how the members of 2 to 5 kept segments of a site
//! overlap now, every region of their Venn diagram counted exactly, for the
//! HTTP route and the CLI alike.
//!
//! The segments are taken from the site's resident snapshot, brought up to
//! date once, and evaluated together on it ([`Live::overlap_on`]), each as a
//! reference to it would be. Only when a segment is not in the snapshot (or
//! the site is not in memory yet) is it looked up in the store, to say why:
//! none of that id on this site (or discarded: 404), or kept with a query
//! that cannot be evaluated (foreign, or saved before queries were checked:
//! 422).

use crate::live::{Live, LiveError, ResidentGuard};
use crate::segment::{FieldErrors, Segment, SegmentId};
use crate::storage::{StorageError, Store};
use corral_core::engine::EvalError;
use corral_core::engine::overlap::region_order;
use corral_core::query::Query;

/// The fewest segments compared.
pub const MIN_SEGMENTS: usize = 2;
/// The most segments compared (31 regions).
pub const MAX_SEGMENTS: usize = 5;

/// The field the segments are named by, in the API's errors.
pub const FIELD: &str = "segment_ids";

/// What working out an overlap can fail with.
#[derive(Debug, thiserror::Error)]
pub enum OverlapError {
    /// No kept segment of this id on the site.
    #[error("segment {0} not found on this site")]
    SegmentNotFound(SegmentId),
    /// The segments named break the rules listed: how many, named twice,
    /// not evaluable.
    #[error("{0}")]
    Invalid(FieldErrors),
    /// The evaluation itself failed or was refused.
    #[error(transparent)]
    Live(#[from] LiveError),
}

impl From<StorageError> for OverlapError {
    fn from(error: StorageError) -> Self {
        Self::Live(error.into())
    }
}

/// One region: the subscribers in every segment of `inside` and in none of
/// `outside`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    pub inside: Vec<SegmentId>,
    pub outside: Vec<SegmentId>,
    pub user_count: u64,
}

/// How the segments overlap: every region holding members of at least one
/// of them, by how many segments they are in, then by which (in the order
/// the segments were named); the last is the intersection of them all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlap {
    pub segment_ids: Vec<SegmentId>,
    pub regions: Vec<Region>,
    /// Members of at least one of the segments.
    pub union: u64,
    /// Members of all of them.
    pub intersection: u64,
}

/// The overlap of the kept segments `ids` of the site, at `now`.
pub async fn overlap(
    store: &dyn Store,
    live: &Live,
    site_id: i64,
    ids: &[SegmentId],
    now: i64,
) -> Result<Overlap, OverlapError> {
    check_named(ids)?;
    let raw: Vec<i64> = ids.iter().map(|id| id.0).collect();
    let current = resolved(store, live, site_id, ids).await?;
    let counted = live
        .overlap_on(site_id, &raw, now, current)
        .await
        .map_err(|e| named(e, ids))?;
    Ok(regions(ids, &counted.counts))
}

/// Between [`MIN_SEGMENTS`] and [`MAX_SEGMENTS`] segments, each once.
fn check_named(ids: &[SegmentId]) -> Result<(), OverlapError> {
    let mut errors = FieldErrors::default();
    if !(MIN_SEGMENTS..=MAX_SEGMENTS).contains(&ids.len()) {
        errors.push(
            FIELD,
            format!(
                "must name from {MIN_SEGMENTS} to {MAX_SEGMENTS} segments ({} named)",
                ids.len()
            ),
        );
    }
    for (i, id) in ids.iter().enumerate() {
        if ids[..i].contains(id) {
            errors.push(format!("{FIELD}/{i}"), format!("names segment {id} again"));
        }
    }
    errors.finish(|| ()).map_err(OverlapError::Invalid)
}

/// The site's snapshot, brought up to date, when it holds every segment
/// and each can be evaluated; `None` when the site is not in memory yet and
/// every segment is kept and evaluable in the store (the evaluation reads
/// it). Otherwise why not: the first segment not found, or every one that
/// cannot be evaluated.
async fn resolved(
    store: &dyn Store,
    live: &Live,
    site_id: i64,
    ids: &[SegmentId],
) -> Result<Option<ResidentGuard>, OverlapError> {
    if live.holds(site_id) {
        let resident = live.resident(site_id).await?;
        let held: Vec<Option<&Query>> = ids
            .iter()
            .map(|id| resident.segments.get(&id.0).map(|q| q.as_ref()))
            .collect();
        if held.iter().all(Option::is_some) {
            let mut errors = FieldErrors::default();
            for (i, query) in held.iter().enumerate() {
                if matches!(query, Some(Query::Foreign)) {
                    errors.push(format!("{FIELD}/{i}"), foreign(ids[i]));
                }
            }
            errors.finish(|| ()).map_err(OverlapError::Invalid)?;
            return Ok(Some(resident));
        }
        // Never wait for the store holding the snapshot.
    }
    let mut errors = FieldErrors::default();
    for (i, &id) in ids.iter().enumerate() {
        let segment = store
            .get_segment(site_id, id)
            .await?
            .filter(Segment::is_kept)
            .ok_or(OverlapError::SegmentNotFound(id))?;
        match corral_core::query::parse(segment.query.as_str()) {
            Ok(Query::Foreign) => errors.push(format!("{FIELD}/{i}"), foreign(id)),
            Ok(_) => {}
            Err(_) => errors.push(
                format!("{FIELD}/{i}"),
                format!(
                    "segment {id} was saved before queries were checked and cannot be \
                     evaluated until it is saved again in the documented grammar"
                ),
            ),
        }
    }
    errors.finish(|| ()).map_err(OverlapError::Invalid)?;
    Ok(None)
}

fn foreign(id: SegmentId) -> String {
    format!(
        "segment {id} is foreign ({{\"foreign\": …}}): Corral keeps it as written but does not evaluate it"
    )
}

/// An evaluation's failure, a segment named in the request said as such:
/// discarded or made foreign since it was looked up.
fn named(error: LiveError, ids: &[SegmentId]) -> OverlapError {
    let position = |id: i64| ids.iter().position(|s| s.0 == id);
    match error {
        LiveError::NotEvaluable(EvalError::MissingReference(id)) if position(id).is_some() => {
            OverlapError::SegmentNotFound(SegmentId(id))
        }
        LiveError::NotEvaluable(EvalError::ForeignReference(id)) => match position(id) {
            Some(i) => OverlapError::Invalid(FieldErrors::from(crate::segment::FieldError::new(
                format!("{FIELD}/{i}"),
                foreign(SegmentId(id)),
            ))),
            None => OverlapError::Live(EvalError::ForeignReference(id).into()),
        },
        other => OverlapError::Live(other),
    }
}

/// The regions of `ids` from the counts by mask, in the order they are
/// listed.
fn regions(ids: &[SegmentId], counts: &[u64]) -> Overlap {
    let k = ids.len();
    let regions: Vec<Region> = region_order(k)
        .into_iter()
        .map(|mask| {
            let (inside, outside) = (0..k).partition::<Vec<usize>, _>(|i| mask & (1 << i) != 0);
            Region {
                inside: inside.into_iter().map(|i| ids[i]).collect(),
                outside: outside.into_iter().map(|i| ids[i]).collect(),
                user_count: counts[mask],
            }
        })
        .collect();
    Overlap {
        segment_ids: ids.to_vec(),
        union: counts[1..].iter().sum(),
        intersection: counts[(1 << k) - 1],
        regions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_named_by_the_segments_in_and_out() {
        let ids = [SegmentId(7), SegmentId(3)];
        // 7 only: 4; 3 only: 1; both: 2.
        let overlap = regions(&ids, &[9, 4, 1, 2]);
        assert_eq!(overlap.union, 7);
        assert_eq!(overlap.intersection, 2);
        let listed: Vec<(Vec<i64>, Vec<i64>, u64)> = overlap
            .regions
            .iter()
            .map(|r| {
                (
                    r.inside.iter().map(|s| s.0).collect(),
                    r.outside.iter().map(|s| s.0).collect(),
                    r.user_count,
                )
            })
            .collect();
        assert_eq!(
            listed,
            vec![
                (vec![7], vec![3], 4),
                (vec![3], vec![7], 1),
                (vec![7, 3], vec![], 2)
            ]
        );
    }

    #[test]
    fn two_to_five_segments_each_once() {
        let ids = |n: &[i64]| n.iter().map(|&i| SegmentId(i)).collect::<Vec<_>>();
        assert!(check_named(&ids(&[1, 2])).is_ok());
        assert!(check_named(&ids(&[1, 2, 3, 4, 5])).is_ok());
        for bad in [&[1][..], &[], &[1, 2, 3, 4, 5, 6]] {
            assert!(matches!(
                check_named(&ids(bad)),
                Err(OverlapError::Invalid(_))
            ));
        }
        let Err(OverlapError::Invalid(errors)) = check_named(&ids(&[1, 2, 1])) else {
            panic!("a segment named twice is refused")
        };
        assert_eq!(errors.0[0].field, "segment_ids/2");
    }
}
