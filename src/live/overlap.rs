//! The overlap of several kept segments, live: their members worked out
//! together on one resident snapshot brought up to date once, and the size
//! of every region of their Venn diagram counted from those sets
//! ([`corral_core::engine::overlap`]). They are admitted as one evaluation,
//! that of a query naming them all (`{"any":[{"segment":…},…]}`): its detail
//! columns, its cost (what they share counted once, as the engine computes it
//! once) and its lane are theirs together.

use super::{CancelOnDrop, Live, LiveError, ResidentGuard};
use crate::storage::{Position, StorageError};
use corral_core::engine::Cancel;
use corral_core::engine::overlap;
use corral_core::query::Query;
use corral_core::query::ast::Condition;

/// How the members of several segments overlap, now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlap {
    /// The subscribers of each region, by mask: bit `i` for the `i`th
    /// segment asked about; `counts[0]` is the audience outside them all.
    pub counts: Vec<u64>,
    /// The change-log position of the snapshot they were counted on.
    pub position: Position,
}

impl Live {
    /// The regions of the kept segments `ids` (each a key of the snapshot's
    /// segments) at `now`, starting from `current`, a snapshot just brought
    /// up to date, when there is one.
    pub async fn overlap_on(
        &self,
        site_id: i64,
        ids: &[i64],
        now: i64,
        current: Option<ResidentGuard>,
    ) -> Result<Overlap, LiveError> {
        let together = Query::Condition(Box::new(Condition::Any(
            ids.iter()
                .map(|&id| Condition::Segment { id, member: true })
                .collect(),
        )));
        let (resident, permit) = self.admitted(site_id, &together, current).await?;
        let cancel = Cancel::default();
        let _cancel_on_drop = CancelOnDrop(cancel.clone());
        let ids = ids.to_vec();
        let (counts, position) = tokio::task::spawn_blocking(move || {
            // A heavy evaluation keeps to one core, leaving one to the rest.
            let split = !permit.heavy();
            let sets = overlap::members_each(
                &resident.audience,
                &ids,
                now,
                &resident.segments,
                &cancel,
                split,
            );
            drop(permit);
            (
                sets.map(|sets| overlap::region_counts(&sets)),
                resident.position,
            )
        })
        .await
        .map_err(|e| StorageError::ReadFailed(format!("evaluation task failed: {e}")))?;
        Ok(Overlap {
            counts: counts?,
            position,
        })
    }
}
