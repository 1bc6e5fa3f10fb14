//! Hand-made includes and excludes of segments, as both backends store them
//! (`segment_manual`: one row a subscriber in a segment's list). An edit runs
//! under the site's write turn and, in its transaction, names the
//! subscribers it changed in the change log (so that every server's snapshot
//! reads their hidden tags again) and records their flips in the journal
//! with the reason `manual`. How a list takes part in membership is the
//! query language's ([`corral_core::query::manual`]).

use super::{Conn, journal, log, segments};
use crate::segment::SegmentId;
use crate::segment::manual::{ManualEdit, ManualEntry, ManualList};
use crate::sql;
use crate::storage::audit::Actor;
use crate::storage::audit::{AuditAction, details};
use crate::storage::changes::IdRanges;
use crate::storage::journal::{Journal, Reason};
use crate::storage::{LogEntry, Result, StorageError};
use corral_core::audience::Email;
use std::collections::{HashMap, HashSet};

/// Puts the subscribers with these emails in a kept segment's `list`
/// (`add`), or takes them out, as `by`; [`StorageError::NotFound`] when the
/// site keeps no segment of that id.
#[allow(clippy::too_many_arguments)]
pub async fn edit<C: Conn>(
    tx: &mut C,
    journal: &Journal,
    site_id: i64,
    id: SegmentId,
    list: ManualList,
    emails: &[Email],
    add: bool,
    now: i64,
    by: &Actor,
) -> Result<ManualEdit> {
    segments::get(tx, site_id, id)
        .await?
        .filter(|s| s.discarded_at.is_none())
        .ok_or(StorageError::NotFound)?;
    // Each email once, as first given.
    let mut seen = HashSet::new();
    let asked: Vec<&Email> = emails.iter().filter(|e| seen.insert(e.key())).collect();
    let keys: Vec<String> = asked.iter().map(|e| e.key()).collect();
    let text = C::DIALECT.pick(
        "SELECT email_key, id FROM subscribers
         WHERE site_id = $1 AND email_key IN (SELECT value FROM json_each($2))",
        "SELECT email_key, id FROM subscribers WHERE site_id = $1 AND email_key = ANY($2)",
    );
    let found: HashMap<String, i64> = tx
        .all::<(String, i64)>(sql!(text, site_id, &keys[..]))
        .await?
        .into_iter()
        .collect();
    let ids: Vec<i64> = found.values().copied().collect();
    let text = C::DIALECT.pick(
        "SELECT subscriber_id FROM segment_manual
         WHERE site_id = $1 AND segment_id = $2 AND excluded = $3
           AND subscriber_id IN (SELECT value FROM json_each($4))",
        "SELECT subscriber_id FROM segment_manual
         WHERE site_id = $1 AND segment_id = $2 AND excluded = $3
           AND subscriber_id = ANY($4)",
    );
    let present: HashSet<i64> = tx
        .all::<(i64,)>(sql!(text, site_id, id.0, list.excluded(), &ids[..]))
        .await?
        .into_iter()
        .map(|(id,)| id)
        .collect();
    let mut outcome = ManualEdit::default();
    let mut changed = Vec::new();
    for (email, key) in asked.iter().zip(&keys) {
        match found.get(key) {
            None => outcome.unknown.push(email.to_string()),
            Some(subscriber) if present.contains(subscriber) != add => {
                changed.push(*subscriber);
                outcome.changed.push(email.to_string());
            }
            Some(_) => outcome.unchanged.push(email.to_string()),
        }
    }
    if changed.is_empty() {
        return Ok(outcome);
    }
    changed.sort_unstable();
    let statement = if add {
        sql!(
            C::DIALECT.pick(
                "INSERT INTO segment_manual (site_id, segment_id, excluded, subscriber_id, added_at)
                 SELECT $1, $2, $3, value, $5 FROM json_each($4)",
                "INSERT INTO segment_manual (site_id, segment_id, excluded, subscriber_id, added_at)
                 SELECT $1, $2, $3, unnest($4::bigint[]), $5",
            ),
            site_id,
            id.0,
            list.excluded(),
            &changed[..],
            now
        )
    } else {
        sql!(
            C::DIALECT.pick(
                "DELETE FROM segment_manual
                 WHERE site_id = $1 AND segment_id = $2 AND excluded = $3
                   AND subscriber_id IN (SELECT value FROM json_each($4))",
                "DELETE FROM segment_manual
                 WHERE site_id = $1 AND segment_id = $2 AND excluded = $3
                   AND subscriber_id = ANY($4)",
            ),
            site_id,
            id.0,
            list.excluded(),
            &changed[..]
        )
    };
    tx.execute(statement).await?;
    let entry = LogEntry {
        subscribers: IdRanges::from_ids(changed.iter().copied()),
        ..LogEntry::default()
    };
    log::record(tx, site_id, &entry, now).await?;
    journal::record_flips(tx, journal, site_id, &changed, None, now, Reason::Manual).await?;
    let subject = id.0.to_string();
    let what = details::manual(list.as_str(), add, &outcome.changed);
    let action = AuditAction::SegmentManualChanged;
    super::audit::record(tx, site_id, now, by, action, &subject, &what).await?;
    Ok(outcome)
}

#[derive(sqlx::FromRow)]
struct EntryRow {
    subscriber_id: i64,
    uuid: String,
    email: String,
    added_at: i64,
}

/// Up to `limit` subscribers of a segment's `list` after the subscriber id
/// `after`, by subscriber id (discarded segments' lists too: the caller
/// decides what it shows).
pub async fn list(
    conn: &mut impl Conn,
    site_id: i64,
    id: SegmentId,
    list: ManualList,
    after: i64,
    limit: usize,
) -> Result<Vec<ManualEntry>> {
    let rows: Vec<EntryRow> = conn
        .all(sql!(
            "SELECT m.subscriber_id, s.uuid, s.email, m.added_at
             FROM segment_manual m
             JOIN subscribers s ON s.site_id = m.site_id AND s.id = m.subscriber_id
             WHERE m.site_id = $1 AND m.segment_id = $2 AND m.excluded = $3
               AND m.subscriber_id > $4
             ORDER BY m.subscriber_id LIMIT $5",
            site_id,
            id.0,
            list.excluded(),
            after,
            limit as i64
        ))
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| ManualEntry {
            subscriber_id: r.subscriber_id,
            uuid: r.uuid,
            email: r.email,
            added_at: r.added_at,
        })
        .collect())
}

/// How many subscribers a segment's `list` holds.
pub async fn count(
    conn: &mut impl Conn,
    site_id: i64,
    id: SegmentId,
    list: ManualList,
) -> Result<i64> {
    let (count,): (i64,) = conn
        .one(sql!(
            "SELECT COUNT(*) FROM segment_manual
             WHERE site_id = $1 AND segment_id = $2 AND excluded = $3",
            site_id,
            id.0,
            list.excluded()
        ))
        .await?;
    Ok(count)
}
