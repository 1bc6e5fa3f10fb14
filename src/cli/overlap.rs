//! `corral segment overlap ID ID … --site UUID`: how the members of 2 to 5
//! kept segments overlap now, on the database directly, by the same service
//! as `POST /api/v1/stats/overlap` (`--json` prints exactly its answer).
//! Without `--json`, the segments with their names, then one line per
//! region (its members, the segments it is in and those it is not), then
//! the union and the intersection.

use super::{CliError, outln, print_json, site_by_uuid};
use crate::clock::{Clock, SystemClock};
use crate::live::Live;
use crate::segment::{FieldErrors, SegmentId};
use crate::service::overlap::{self, FIELD, Overlap, OverlapError};
use crate::storage::Store;
use crate::wire::overlap::overlap_body;
use std::sync::Arc;

/// `segment overlap`.
pub async fn run(
    store: &Arc<dyn Store>,
    live: &Live,
    site: &str,
    ids: &[String],
    json: bool,
) -> Result<(), CliError> {
    let site = site_by_uuid(store, site).await?;
    let mut errors = FieldErrors::default();
    let mut parsed = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        match SegmentId::parse(id) {
            Some(id) => parsed.push(id),
            None => errors.push(
                format!("{FIELD}/{i}"),
                format!("{id:?} is not a segment id"),
            ),
        }
    }
    errors.finish(|| ())?;
    let overlap = overlap::overlap(store.as_ref(), live, site.id, &parsed, SystemClock.now_ms())
        .await
        .map_err(|e| match e {
            OverlapError::SegmentNotFound(id) => {
                CliError::Usage(format!("segment {id} not found on this site"))
            }
            OverlapError::Invalid(errors) => errors.into(),
            OverlapError::Live(crate::live::LiveError::Storage(e)) => e.into(),
            OverlapError::Live(crate::live::LiveError::NotEvaluable(e)) => {
                FieldErrors::from(crate::segment::FieldError::new(FIELD, e.to_string())).into()
            }
        })?;
    if json {
        return print_json(&overlap_body(&overlap));
    }
    print(store, site.id, &overlap).await
}

/// The segments with their names, a line per region, the union and the
/// intersection.
async fn print(store: &Arc<dyn Store>, site_id: i64, overlap: &Overlap) -> Result<(), CliError> {
    for &id in &overlap.segment_ids {
        let name = store
            .get_segment(site_id, id)
            .await?
            .map(|s| s.name)
            .unwrap_or_default();
        outln!("segment {id:>6}  {name}")?;
    }
    outln!("")?;
    let list = |ids: &[SegmentId]| -> String {
        if ids.is_empty() {
            "-".to_owned()
        } else {
            ids.iter()
                .map(SegmentId::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let width = overlap.union.to_string().len().max("members".len());
    outln!("{:>width$}  {:<20}  not in", "members", "in")?;
    for region in &overlap.regions {
        outln!(
            "{:>width$}  {:<20}  {}",
            region.user_count,
            list(&region.inside),
            list(&region.outside)
        )?;
    }
    outln!("")?;
    outln!("union:        {}", overlap.union)?;
    outln!("intersection: {}", overlap.intersection)
}
