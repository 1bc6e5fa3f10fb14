//! Save-time checks of segment references: a query may refer only to kept,
//! evaluable segments of its site, and never lead back to the segment being
//! saved; and the segments that refer to one (which block its discard).

use crate::query::Query;
use crate::segment::{FieldErrors, Listing, QUERY_FIELD, SegmentId};
use crate::storage::{StorageError, Store};
use std::collections::HashMap;

/// Checks a query's segment references before it is saved as the query of
/// `saving` (`None` when creating): each must name a kept segment of the site
/// whose query is evaluable, and following them must never lead back to
/// `saving`. Each bad reference is pushed to `errors` at its JSON pointer
/// (`visitor_event_query/…/segment/member_of`).
pub async fn check_references(
    store: &dyn Store,
    site_id: i64,
    saving: Option<SegmentId>,
    query: &Query,
    errors: &mut FieldErrors,
) -> Result<(), StorageError> {
    let refs = query.segment_refs_at();
    if refs.is_empty() {
        return Ok(());
    }
    let kept: HashMap<i64, Option<Query>> = store
        .list_segments(site_id, Listing::Kept)
        .await?
        .into_iter()
        .map(|s| (s.id.0, crate::query::parse(s.query.as_str()).ok()))
        .collect();
    for (at, id) in refs {
        let message = match kept.get(&id) {
            None => format!("refers to segment {id}, which does not exist or is discarded"),
            Some(None | Some(Query::Foreign)) => {
                format!("refers to segment {id}, whose query is foreign and cannot be evaluated")
            }
            Some(Some(_)) if Some(id) == saving.map(|s| s.0) => {
                format!(
                    "refers to segment {id}, the segment being saved: a segment cannot contain itself"
                )
            }
            Some(Some(q)) => {
                let Some(saving) = saving else { continue };
                let Some(path) = path_to(&kept, q, saving.0, &mut vec![id]) else {
                    continue;
                };
                let chain: Vec<String> = std::iter::once(saving.0)
                    .chain(path)
                    .map(|s| s.to_string())
                    .collect();
                format!(
                    "refers to segment {id}, which leads back to this segment (cycle {})",
                    chain.join(" → ")
                )
            }
        };
        errors.push(format!("{QUERY_FIELD}{at}"), message);
    }
    Ok(())
}

/// A chain of references from `query` (reached via `trail`) to `target`.
fn path_to(
    kept: &HashMap<i64, Option<Query>>,
    query: &Query,
    target: i64,
    trail: &mut Vec<i64>,
) -> Option<Vec<i64>> {
    for id in query.segment_refs() {
        if id == target {
            let mut path = trail.clone();
            path.push(id);
            return Some(path);
        }
        if trail.contains(&id) || trail.len() > 64 {
            continue;
        }
        if let Some(Some(next)) = kept.get(&id) {
            trail.push(id);
            let found = path_to(kept, next, target, trail);
            trail.pop();
            if found.is_some() {
                return found;
            }
        }
    }
    None
}

/// The ids of kept segments whose queries refer to `id`.
pub async fn referrers(
    store: &dyn Store,
    site_id: i64,
    id: SegmentId,
) -> Result<Vec<i64>, StorageError> {
    Ok(store
        .list_segments(site_id, Listing::Kept)
        .await?
        .into_iter()
        .filter(|s| s.id != id)
        .filter(|s| {
            crate::query::parse(s.query.as_str())
                .ok()
                .is_some_and(|q| q.segment_refs().contains(&id.0))
        })
        .map(|s| s.id.0)
        .collect())
}
