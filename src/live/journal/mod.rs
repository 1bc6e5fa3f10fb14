//! The live snapshots as the membership journal's [`Evaluator`]: a segment
//! write or a sweep holding a site's write turn asks for the members of
//! some segments over the whole audience as committed, which is the
//! snapshot brought up to the site's head. And the sweep every server runs
//! ([`sweep`]): about once a minute per site, across servers, the journal
//! takes the baselines of segments older than it, records what a process
//! without snapshots left, and who relative time windows let in or out.

use super::Live;
use crate::clock::Clock;
use crate::storage::journal::Evaluator;
use crate::storage::{StorageError, Store};
use corral_core::engine::{self, Cancel};
use corral_core::query::Query;
use std::collections::HashMap;
use std::sync::Arc;

#[async_trait::async_trait]
impl Evaluator for Live {
    async fn members(
        &self,
        site_id: i64,
        segments: &HashMap<i64, Arc<Query>>,
        which: &[i64],
        now: i64,
    ) -> Result<Option<HashMap<i64, Vec<i64>>>, StorageError> {
        if !self.holds(site_id) {
            return Ok(None);
        }
        let queries: Vec<&Query> = segments.values().map(|q| &**q).collect();
        let resident = loop {
            let resident = self.resident(site_id).await?;
            let missing = engine::missing_details(&resident.audience, &queries);
            if missing.is_empty() {
                break resident;
            }
            drop(resident);
            self.site(site_id)
                .read_details(&self.loader, missing)
                .await?;
        };
        let segments = segments.clone();
        let which = which.to_vec();
        tokio::task::spawn_blocking(move || {
            let audience = &resident.audience;
            let mut out = HashMap::new();
            for id in which {
                let Some(query) = segments.get(&id) else {
                    continue;
                };
                let members =
                    engine::members_on(audience, query, now, &segments, &Cancel::default(), true)
                        .map_err(|e| {
                        StorageError::ReadFailed(format!(
                            "segment {id} could not be evaluated: {e}"
                        ))
                    })?;
                out.insert(id, members.ones().map(|i| audience.ids[i]).collect());
            }
            Ok(Some(out))
        })
        .await
        .map_err(|e| StorageError::ReadFailed(format!("evaluation task failed: {e}")))?
    }
}

/// How often a site's journal is swept (time windows move by at most this
/// before they are recorded).
pub const SWEEP_EVERY_MS: i64 = 60_000;

/// Sweeps every site whose sweep is due and has anything to do, bringing
/// its snapshot up to date first, so that the sweep holds the site's write
/// turn for an evaluation, never for a whole read; then takes the
/// membership checkpoints of sites whose journal moved. How many sites it
/// swept.
pub async fn sweep(
    store: &dyn Store,
    live: &Live,
    clock: &dyn Clock,
) -> Result<usize, StorageError> {
    let mut swept = 0;
    for site_id in store.journal_sites().await? {
        if sweep_site(store, live, clock, site_id).await? {
            swept += 1;
        }
    }
    for site_id in store.journal_sites().await? {
        store.checkpoint_journal(site_id).await?;
    }
    Ok(swept)
}

/// Sweeps one site when its sweep is due and has anything to do: first
/// what a segment write would do, then each moved time window in a write
/// turn of its own, each at the clock's instant and on a snapshot brought
/// up to date just before. Whether it ran.
pub async fn sweep_site(
    store: &dyn Store,
    live: &Live,
    clock: &dyn Clock,
    site_id: i64,
) -> Result<bool, StorageError> {
    if !store
        .journal_due(site_id, clock.now_ms(), SWEEP_EVERY_MS)
        .await?
    {
        return Ok(false);
    }
    live.resident(site_id).await?;
    let Some(windows) = store
        .sweep_journal(site_id, clock.now_ms(), SWEEP_EVERY_MS)
        .await?
    else {
        return Ok(false);
    };
    for segment_id in windows {
        live.resident(site_id).await?;
        store
            .sweep_window(site_id, segment_id, clock.now_ms())
            .await?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests;
