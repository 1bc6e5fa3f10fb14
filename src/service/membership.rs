//! Which segments one subscriber is in, now: every kept segment of the site
//! is evaluated live for that subscriber alone, with the same evaluation the
//! match endpoint explains. Segments whose query cannot be evaluated (kept
//! `{"foreign": …}`, or saved before queries were checked) are left out, as
//! they have no members. The HTTP route and the CLI command both call
//! [`segments_of`], so they answer alike.

use crate::live::{Live, LiveError};
use crate::segment::{Listing, Segment};
use crate::storage::Store;
use corral_core::engine::EvalError;
use corral_core::query::Query;

/// The kept segments of `site_id` that subscriber `subscriber_id` is a
/// member of at `now`, in the order of Bento's list (by name).
pub async fn segments_of(
    store: &dyn Store,
    live: &Live,
    site_id: i64,
    subscriber_id: i64,
    now: i64,
) -> Result<Vec<Segment>, LiveError> {
    let mut member_of = Vec::new();
    for segment in store.list_segments(site_id, Listing::Kept).await? {
        let Ok(query) =
            corral_core::query::manual::parse_saved(segment.query.as_str(), segment.id.0)
        else {
            continue;
        };
        if matches!(query, Query::Foreign) {
            continue;
        }
        match live.explain(site_id, &query, now, subscriber_id).await {
            Ok(Some(explanation)) if explanation.matched => member_of.push(segment),
            Ok(_) | Err(LiveError::NotEvaluable(EvalError::Foreign)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(member_of)
}
