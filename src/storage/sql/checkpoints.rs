//! Membership checkpoints, as both backends keep them: a segment's members
//! at a point of its journal (`journal_checkpoints`), so that the members at
//! an instant start from the nearest checkpoint and read at most the
//! transitions between two of them, instead of undoing every transition
//! since the instant from the members now.
//!
//! A checkpoint holds the members after every transition of the site up to
//! `through_id`, and an instant `at` that splits the journal there: no
//! transition up to `through_id` is later than `at`, none after it earlier
//! (instants never go back within a site, and ids follow commit order). So
//! the members at `T ≥ at` are the checkpoint's with the transitions after
//! `through_id` up to `T` applied, and the members at `T < at` the
//! checkpoint's with the transitions after `T` up to `through_id` undone:
//! [`members_at`] works them out so (from the members now when a segment
//! has no checkpoint yet).
//!
//! [`plan`] works out, on a reader, the checkpoints a site lacks: one of the
//! members now once a segment has moved [`checkpoint_spacing`] transitions
//! since its newest, and, walking back from its oldest, one every spacing
//! through the older history (a journal older than checkpoints, or one
//! written in bulk). [`write`] stores them in one short transaction, leaving
//! out any a trim made meanwhile stale.

use super::Conn;
use crate::sql;
use crate::storage::Result;
use crate::storage::journal::{Journal, checkpoint_spacing, decode_ids, encode_ids};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Transitions read per statement when walking history.
const PAGE: i64 = 20_000;

/// A checkpoint to store.
pub struct Planned {
    segment_id: i64,
    through_id: i64,
    at: i64,
    ids: Vec<i64>,
}

/// A stored checkpoint.
pub struct Checkpoint {
    pub through_id: i64,
    pub at: i64,
    pub ids: Vec<i64>,
}

fn least(journal: &Journal) -> usize {
    match journal.checkpoint_least.load(Ordering::Relaxed) {
        0 => crate::storage::journal::CHECKPOINT_LEAST,
        least => least,
    }
}

/// The checkpoints the site lacks; empty when its journal has not moved
/// since this process last looked.
pub async fn plan(conn: &mut impl Conn, journal: &Journal, site_id: i64) -> Result<Vec<Planned>> {
    let last_at: Option<(i64,)> = conn
        .optional(sql!(
            "SELECT last_at FROM journal_sites WHERE site_id = $1",
            site_id
        ))
        .await?;
    let Some((last_at,)) = last_at else {
        return Ok(Vec::new());
    };
    let seen = journal
        .checkpointed
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&site_id)
        .copied();
    if seen == Some(last_at) {
        return Ok(Vec::new());
    }
    let least = least(journal);
    let segments: Vec<(i64, i64, i64)> = conn
        .all(sql!(
            "SELECT segment_id, begins_at, members FROM segment_journals
             WHERE site_id = $1 AND begins_at IS NOT NULL ORDER BY segment_id",
            site_id
        ))
        .await?;
    // Each segment's newest and oldest checkpoint.
    let ends: Vec<(i64, i64, i64)> = conn
        .all(sql!(
            "SELECT segment_id, MIN(through_id), MAX(through_id) FROM journal_checkpoints
             WHERE site_id = $1 GROUP BY segment_id",
            site_id
        ))
        .await?;
    let ends: HashMap<i64, (i64, i64)> =
        ends.into_iter().map(|(s, lo, hi)| (s, (lo, hi))).collect();
    let mut planned = Vec::new();
    let mut fresh = Vec::new();
    // Each segment's newest checkpoint's position, read once for both passes.
    let mut newest_of: HashMap<i64, Option<(i64, i64)>> = HashMap::new();
    for &(segment, begins_at, members) in &segments {
        let spacing = checkpoint_spacing(members.max(0) as usize, least) as i64;
        let newest = match ends.get(&segment) {
            Some(&(_, hi)) => position(conn, site_id, segment, hi).await?,
            None => None,
        };
        newest_of.insert(segment, newest);
        let (after_at, after_id) = newest.unwrap_or((begins_at, 0));
        let (moved,): (i64,) = conn
            .one(sql!(
                "SELECT COUNT(*) FROM segment_transitions
                 WHERE site_id = $1 AND segment_id = $2 AND at >= $3 AND id > $4",
                site_id,
                segment,
                after_at,
                after_id
            ))
            .await?;
        if moved >= spacing {
            fresh.push(segment);
        }
    }
    // The members now of those that moved enough, as of one transition.
    let (now, through, through_at) = if fresh.is_empty() {
        (HashMap::new(), 0, None)
    } else {
        let now = super::journal::members_now(conn, journal, site_id, &fresh).await?;
        let through = journal
            .members
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&site_id)
            .map_or(0, |m| m.through);
        let through_at: Option<(i64,)> = conn
            .optional(sql!(
                "SELECT at FROM segment_transitions WHERE site_id = $1 AND id = $2",
                site_id,
                through
            ))
            .await?;
        (now, through, through_at)
    };
    for &(segment, begins_at, members) in &segments {
        let spacing = checkpoint_spacing(members.max(0) as usize, least);
        let newest = newest_of.get(&segment).copied().flatten();
        let oldest = match ends.get(&segment) {
            Some(&(lo, hi)) if lo == hi => newest,
            Some(&(lo, _)) => position(conn, site_id, segment, lo).await?,
            None => None,
        };
        let beginning = (begins_at, 0);
        // A checkpoint of the members now, and back from it to the newest
        // (or the beginning) when much happened in between.
        if let (true, Some((at,))) = (fresh.contains(&segment), through_at) {
            let ids = now.get(&segment).cloned().unwrap_or_default();
            planned.push(Planned {
                segment_id: segment,
                through_id: through,
                at,
                ids: ids.clone(),
            });
            let floor = newest.unwrap_or(beginning);
            let start = (at, through, Some(ids.clone()));
            walk_back(
                conn,
                journal,
                (site_id, segment),
                start,
                floor,
                spacing,
                &mut planned,
            )
            .await?;
        }
        // And back from the oldest through older history.
        if let Some((at, through_id)) = oldest {
            let start = (at, through_id, None);
            walk_back(
                conn,
                journal,
                (site_id, segment),
                start,
                beginning,
                spacing,
                &mut planned,
            )
            .await?;
        }
    }
    journal
        .checkpointed
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(site_id, last_at);
    Ok(planned)
}

/// Where a walk back starts: a checkpoint's instant and `through_id`, and
/// its members (read from the stored one when `None`).
type Start = (i64, i64, Option<Vec<i64>>);

/// Checkpoints every `spacing` transitions back from `start` to `floor`
/// (an instant and id: the transitions after it count), unless fewer than
/// `spacing` are left before the floor.
async fn walk_back(
    conn: &mut impl Conn,
    journal: &Journal,
    (site_id, segment): (i64, i64),
    (start_at, start_id, start_ids): Start,
    floor: (i64, i64),
    spacing: usize,
    planned: &mut Vec<Planned>,
) -> Result<()> {
    let (older,): (i64,) = conn
        .one(sql!(
            "SELECT COUNT(*) FROM segment_transitions
             WHERE site_id = $1 AND segment_id = $2 AND at >= $3 AND at <= $5
               AND (at > $3 OR id > $4) AND (at < $5 OR id <= $6)",
            site_id,
            segment,
            floor.0,
            floor.1,
            start_at,
            start_id
        ))
        .await?;
    if (older as usize) < spacing.saturating_mul(2) {
        return Ok(());
    }
    let ids = match start_ids {
        Some(ids) => ids,
        None => match stored(conn, site_id, segment, start_id).await? {
            Some(checkpoint) => checkpoint.ids,
            None => return Ok(()),
        },
    };
    let mut members: HashSet<i64> = ids.into_iter().collect();
    let (mut at, mut id) = (start_at, start_id + 1);
    let mut undone = 0usize;
    let mut left = older as usize;
    while left > 0 {
        let page: Vec<(i64, i64, i64, bool)> = conn
            .all(sql!(
                "SELECT id, at, subscriber_id, added FROM segment_transitions
                 WHERE site_id = $1 AND segment_id = $2 AND at >= $3 AND at <= $5
                   AND (at > $3 OR id > $4) AND (at < $5 OR id < $6)
                 ORDER BY at DESC, id DESC LIMIT $7",
                site_id,
                segment,
                floor.0,
                floor.1,
                at,
                id,
                PAGE
            ))
            .await?;
        if page.is_empty() {
            break;
        }
        for (t_id, t_at, subscriber, added) in page {
            if added {
                members.remove(&subscriber);
            } else if !forgets_leaves(journal) {
                members.insert(subscriber);
            }
            undone += 1;
            left = left.saturating_sub(1);
            (at, id) = (t_at, t_id);
            // Not within the last stretch: the floor serves that.
            if undone.is_multiple_of(spacing) && left >= spacing {
                let mut ids: Vec<i64> = members.iter().copied().collect();
                ids.sort_unstable();
                planned.push(Planned {
                    segment_id: segment,
                    through_id: t_id - 1,
                    at: t_at,
                    ids,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
fn forgets_leaves(journal: &Journal) -> bool {
    journal.broken_checkpoints.load(Ordering::Relaxed)
}

#[cfg(not(test))]
fn forgets_leaves(_: &Journal) -> bool {
    false
}

/// A stored checkpoint's instant and `through_id`.
async fn position(
    conn: &mut impl Conn,
    site_id: i64,
    segment: i64,
    through_id: i64,
) -> Result<Option<(i64, i64)>> {
    conn.optional(sql!(
        "SELECT at, through_id FROM journal_checkpoints
         WHERE site_id = $1 AND segment_id = $2 AND through_id = $3",
        site_id,
        segment,
        through_id
    ))
    .await
}

/// One stored checkpoint, by its `through_id`.
async fn stored(
    conn: &mut impl Conn,
    site_id: i64,
    segment: i64,
    through_id: i64,
) -> Result<Option<Checkpoint>> {
    let row: Option<(i64, i64, Vec<u8>)> = conn
        .optional(sql!(
            "SELECT through_id, at, ids FROM journal_checkpoints
             WHERE site_id = $1 AND segment_id = $2 AND through_id = $3",
            site_id,
            segment,
            through_id
        ))
        .await?;
    Ok(row.and_then(|(through_id, at, bytes)| {
        Some(Checkpoint {
            through_id,
            at,
            ids: decode_ids(&bytes)?,
        })
    }))
}

/// Stores `planned` (a checkpoint some server stored already is kept),
/// leaving out any from before where a segment's history now begins.
pub async fn write(conn: &mut impl Conn, site_id: i64, planned: &[Planned]) -> Result<usize> {
    let mut written = 0;
    for checkpoint in planned {
        written += conn
            .execute(sql!(
                "INSERT INTO journal_checkpoints (site_id, segment_id, through_id, at, members, ids)
                 SELECT $1, $2, $3, $4, $5, $6 FROM segment_journals
                 WHERE site_id = $1 AND segment_id = $2 AND begins_at <= $4
                 ON CONFLICT (site_id, segment_id, through_id) DO NOTHING",
                site_id,
                checkpoint.segment_id,
                checkpoint.through_id,
                checkpoint.at,
                checkpoint.ids.len() as i64,
                encode_ids(&checkpoint.ids)
            ))
            .await? as usize;
    }
    Ok(written)
}

/// The checkpoint nearest `at` on each side: the latest at or before it
/// and the earliest after it (both within the segment's history).
pub async fn around(
    conn: &mut impl Conn,
    site_id: i64,
    segment: i64,
    at: i64,
) -> Result<(Option<Checkpoint>, Option<Checkpoint>)> {
    let before: Option<(i64,)> = conn
        .optional(sql!(
            "SELECT c.through_id FROM journal_checkpoints c
             JOIN segment_journals j ON j.site_id = c.site_id AND j.segment_id = c.segment_id
             WHERE c.site_id = $1 AND c.segment_id = $2 AND c.at <= $3 AND c.at >= j.begins_at
             ORDER BY c.through_id DESC LIMIT 1",
            site_id,
            segment,
            at
        ))
        .await?;
    let after: Option<(i64,)> = conn
        .optional(sql!(
            "SELECT c.through_id FROM journal_checkpoints c
             JOIN segment_journals j ON j.site_id = c.site_id AND j.segment_id = c.segment_id
             WHERE c.site_id = $1 AND c.segment_id = $2 AND c.at > $3 AND c.at >= j.begins_at
             ORDER BY c.through_id LIMIT 1",
            site_id,
            segment,
            at
        ))
        .await?;
    let before = match before {
        Some((id,)) => stored(conn, site_id, segment, id).await?,
        None => None,
    };
    let after = match after {
        Some((id,)) if before.is_none() => stored(conn, site_id, segment, id).await?,
        _ => None,
    };
    Ok((before, after))
}

/// The members of a segment at `at` (ascending), as the journal has them:
/// from the nearest checkpoint, the
/// transitions between it and `at` applied or undone; without one, the
/// members now with every transition after `at` undone.
pub async fn members_at(
    conn: &mut impl Conn,
    journal: &Journal,
    site_id: i64,
    segment_id: i64,
    at: i64,
) -> Result<Arc<Vec<i64>>> {
    if let Some(members) = journal.members_at_held(site_id, segment_id, at) {
        return Ok(members);
    }
    let (before, after) = around(conn, site_id, segment_id, at).await?;
    let (members, past) = if let Some(from) = before {
        let moves: Vec<(i64, bool)> = conn
            .all(sql!(
                "SELECT subscriber_id, added FROM segment_transitions
                 WHERE site_id = $1 AND segment_id = $2 AND at >= $3 AND at <= $5
                   AND (at > $3 OR id > $4)
                 ORDER BY at, id",
                site_id,
                segment_id,
                from.at,
                from.through_id,
                at
            ))
            .await?;
        let later: Option<(i64,)> = conn
            .optional(sql!(
                "SELECT id FROM segment_transitions
                 WHERE site_id = $1 AND segment_id = $2 AND at > $3 LIMIT 1",
                site_id,
                segment_id,
                at
            ))
            .await?;
        (redo(from.ids, &moves), later.is_some())
    } else if let Some(to) = after {
        let moves: Vec<(i64, bool)> = conn
            .all(sql!(
                "SELECT subscriber_id, added FROM segment_transitions
                 WHERE site_id = $1 AND segment_id = $2 AND at > $3 AND at <= $4
                   AND (at < $4 OR id <= $5)
                 ORDER BY at, id",
                site_id,
                segment_id,
                at,
                to.at,
                to.through_id
            ))
            .await?;
        (undo(to.ids, &moves), true)
    } else {
        let now = super::journal::members_now(conn, journal, site_id, &[segment_id])
            .await?
            .remove(&segment_id)
            .unwrap_or_default();
        let through = journal
            .members
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&site_id)
            .map_or(i64::MAX, |m| m.through);
        let moves: Vec<(i64, bool)> = conn
            .all(sql!(
                "SELECT subscriber_id, added FROM segment_transitions
                 WHERE site_id = $1 AND segment_id = $2 AND at > $3 AND id <= $4
                 ORDER BY at, id",
                site_id,
                segment_id,
                at,
                through
            ))
            .await?;
        let past = !moves.is_empty();
        (undo(now, &moves), past)
    };
    let members = Arc::new(members);
    // An instant with a transition after it is in the past: its members
    // never change again, and the pages of one walk read them once.
    if past {
        journal.hold_members_at(site_id, segment_id, at, Arc::clone(&members));
    }
    Ok(members)
}

/// The members before `moves` (in commit order) from those after them:
/// each subscriber's first move tells where it was (a join, out; a leave,
/// in).
fn undo(after: Vec<i64>, moves: &[(i64, bool)]) -> Vec<i64> {
    let mut first: HashMap<i64, bool> = HashMap::with_capacity(moves.len().min(1 << 20));
    for (id, added) in moves {
        first.entry(*id).or_insert(!*added);
    }
    settle(after, first)
}

/// The members after `moves` (in commit order) from those before them:
/// each subscriber's last move tells where it is.
fn redo(before: Vec<i64>, moves: &[(i64, bool)]) -> Vec<i64> {
    let mut last: HashMap<i64, bool> = HashMap::with_capacity(moves.len().min(1 << 20));
    for (id, added) in moves {
        last.insert(*id, *added);
    }
    settle(before, last)
}

/// `members` (ascending) with the subscribers of `moved` in or out as it
/// says, ascending.
fn settle(members: Vec<i64>, moved: HashMap<i64, bool>) -> Vec<i64> {
    let mut members: Vec<i64> = members
        .into_iter()
        .filter(|id| !moved.contains_key(id))
        .collect();
    members.extend(
        moved
            .into_iter()
            .filter(|(_, inside)| *inside)
            .map(|(id, _)| id),
    );
    members.sort_unstable();
    members
}

#[cfg(test)]
mod tests {
    use super::{redo, undo};

    #[test]
    fn moves_undone_and_redone_give_the_members_on_either_side() {
        let before = vec![1, 2, 5];
        // 2 leaves and comes back, 3 joins, 5 leaves, 7 joins and leaves.
        let moves = [
            (2, false),
            (3, true),
            (2, true),
            (5, false),
            (7, true),
            (7, false),
        ];
        let after = redo(before.clone(), &moves);
        assert_eq!(after, [1, 2, 3]);
        assert_eq!(undo(after, &moves), before);
    }
}
