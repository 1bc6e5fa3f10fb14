//! Audience batches, as both backends write them inside one transaction:
//! runs of changes that nothing but the caps can refuse go to the backend's
//! bulk path ([`Batch::bulk_run`], many rows per statement: that is each
//! database's own), and every other change is applied here, one at a time.
//!
//! What a change does to its subscriber, and whether the store's [`Limits`]
//! allow it, is decided by [`apply::apply`] before anything is written, from
//! counts read alike on every path ([`super::caps`]); this only reads the
//! state it starts from and writes the effects it returns. What needs the
//! database stays here: a `$purchase` whose unique key is stored is a
//! duplicate, a missing subscriber is created (or the change refused,
//! [`apply::may_create`]), and an email change to an address another
//! subscriber has is refused: the one refusal that comes after writes,
//! rolled back to a savepoint.
//!
//! Rows are inserted only once known to be new, never left to a conflict
//! clause: PostgreSQL takes an id from its sequence for every insert tried,
//! and the ids the API shows follow SQLite's.

use super::{Conn, Dialect, audience, caps};
use crate::credentials::random_hex_id;
use crate::sql;
use crate::storage::{Result, StorageError};
use corral_core::audience::apply::{self, Fields, SubscriberState};
use corral_core::audience::fold;
use corral_core::audience::{Limits, Outcome, SubscriberChange};
use futures_util::future::BoxFuture;
use std::ops::DerefMut;

/// A write transaction that can apply a run of changes in bulk.
pub trait Batch: DerefMut<Target: Conn + Sized> + Send {
    /// Applies a run of changes that [`fold::can_bulk`] accepts, each held
    /// to `limits`; adds to `touched` the ids of the subscribers it created
    /// or whose row or tags it changed. Answers the outcomes, and the range
    /// of event ids it stored, when the backend knows it.
    fn bulk_run<'a>(
        &'a mut self,
        site_id: i64,
        changes: &'a [SubscriberChange],
        now: i64,
        limits: &'a Limits,
        touched: &'a mut Vec<i64>,
    ) -> BoxFuture<'a, Result<Applied>>;
}

/// Why one change of a batch was not applied.
pub enum ItemFailure {
    /// The change breaks a rule: nothing of it is kept, and it is reported.
    Refused(String),
    /// The database failed: the whole batch fails.
    Database(StorageError),
}

impl From<StorageError> for ItemFailure {
    fn from(error: StorageError) -> Self {
        Self::Database(error)
    }
}

/// What a batch came to: each change's outcome, and the range of event ids
/// it stored when known.
pub type Applied = (Vec<Outcome>, Option<(i64, i64)>);

/// Applies one caller's changes inside a write transaction of the site, in
/// order: in bulk where [`fold::can_bulk`] allows, else one at a time. Adds
/// to `touched` the ids of subscribers created, or whose row or tags
/// changed; a refused change adds nobody.
pub async fn apply_in<T: Batch>(
    tx: &mut T,
    site_id: i64,
    changes: &[SubscriberChange],
    now: i64,
    limits: &Limits,
    touched: &mut Vec<i64>,
) -> Result<Applied> {
    let mut outcomes = Vec::with_capacity(changes.len());
    let mut events: Option<(i64, i64)> = None;
    let mut stored = |range: (i64, i64)| {
        events = Some(events.map_or(range, |(a, b)| (a.min(range.0), b.max(range.1))));
    };
    let mut start = 0;
    while start < changes.len() {
        let run = changes[start..]
            .iter()
            .take_while(|c| fold::can_bulk(c))
            .count();
        if run > 0 {
            let (applied, range) = tx
                .bulk_run(site_id, &changes[start..start + run], now, limits, touched)
                .await?;
            outcomes.extend(applied);
            range.into_iter().for_each(&mut stored);
            start += run;
            continue;
        }
        let change = &changes[start];
        start += 1;
        // Only an email change can be refused after it wrote something.
        let savepoint = change.new_email.is_some();
        let conn = &mut **tx;
        if savepoint {
            conn.execute(sql!("SAVEPOINT item")).await?;
        }
        match apply_one(conn, site_id, change, now, limits).await {
            Ok((outcome, changed, event)) => {
                if savepoint {
                    conn.execute(sql!("RELEASE item")).await?;
                }
                outcomes.push(outcome);
                touched.extend(changed);
                event.into_iter().for_each(|id| stored((id, id)));
            }
            Err(ItemFailure::Refused(reason)) => {
                if savepoint {
                    conn.execute(sql!("ROLLBACK TO item")).await?;
                    conn.execute(sql!("RELEASE item")).await?;
                }
                outcomes.push(Outcome::Failed(reason));
            }
            Err(ItemFailure::Database(error)) => return Err(error),
        }
    }
    Ok((outcomes, events))
}

#[derive(sqlx::FromRow)]
struct SubscriberRow {
    id: i64,
    fields: String,
    unsubscribed_at: Option<i64>,
}

/// The name keys of the tags a subscriber holds.
async fn tags_held<C: Conn>(conn: &mut C, site_id: i64, subscriber_id: i64) -> Result<Vec<String>> {
    let text = C::DIALECT.pick(
        "SELECT t.name_key FROM subscriber_tags st JOIN tags t ON t.id = st.tag_id
         WHERE st.subscriber_id = $2 AND t.site_id = $1",
        "SELECT t.name_key FROM subscriber_tags st
         JOIN tags t ON t.site_id = st.site_id AND t.id = st.tag_id
         WHERE st.site_id = $1 AND st.subscriber_id = $2",
    );
    let rows: Vec<(String,)> = conn.all(sql!(text, site_id, subscriber_id)).await?;
    Ok(rows.into_iter().map(|(key,)| key).collect())
}

/// Applies one change inside the batch's transaction; with the outcome, the
/// subscriber's id if it was created or its row or tags changed, and the id
/// of the event stored.
pub async fn apply_one<C: Conn>(
    tx: &mut C,
    site_id: i64,
    change: &SubscriberChange,
    now: i64,
    limits: &Limits,
) -> std::result::Result<(Outcome, Option<i64>, Option<i64>), ItemFailure> {
    // A purchase sent again is acknowledged and nothing else happens.
    if let Some((kind, key)) = apply::purchase_key(change) {
        let seen: Option<(i64,)> = tx
            .optional(sql!(
                "SELECT 1 FROM events WHERE site_id = $1 AND type = $2 AND unique_key = $3",
                site_id,
                kind,
                key
            ))
            .await?;
        if seen.is_some() {
            return Ok((Outcome::Duplicate, None, None));
        }
    }

    let existing: Option<SubscriberRow> = tx
        .optional(sql!(
            "SELECT id, fields, unsubscribed_at FROM subscribers
             WHERE site_id = $1 AND email_key = $2",
            site_id,
            change.email.key()
        ))
        .await?;
    let (id, mut state) = match existing {
        Some(row) => {
            let tags = match apply::touches_tags(change) {
                true => Some(tags_held(tx, site_id, row.id).await?.into_iter().collect()),
                false => None,
            };
            let state = SubscriberState {
                fields: Fields::Text(row.fields),
                tags,
                unsubscribed_at: row.unsubscribed_at,
            };
            (Some(row.id), state)
        }
        None => {
            apply::may_create(change).map_err(ItemFailure::Refused)?;
            (None, SubscriberState::new())
        }
    };
    let mut site = caps::site_counts(tx, site_id, std::iter::once(change)).await?;
    let effects =
        apply::apply(&mut state, &mut site, change, limits).map_err(ItemFailure::Refused)?;

    let created = id.is_none();
    let subscriber_id = match id {
        Some(id) => id,
        None => {
            let (id,): (i64,) = tx
                .one(sql!(
                    "INSERT INTO subscribers
                         (site_id, uuid, email, email_key, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
                    site_id,
                    random_hex_id(),
                    change.email.as_str(),
                    change.email.key(),
                    now
                ))
                .await?;
            id
        }
    };
    for key in &effects.field_keys {
        audience::register_field(tx, site_id, key, key.as_str(), now).await?;
    }
    for (key, name) in &effects.new_tags {
        let tag = audience::tag_id(tx, site_id, name, now).await?;
        if effects.tags.get(key) == Some(&true) {
            // SQLite's table has no site_id: the subscriber says it.
            let statement = match C::DIALECT {
                Dialect::Sqlite => sql!(
                    "INSERT INTO subscriber_tags (subscriber_id, tag_id, created_at)
                     VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    subscriber_id,
                    tag,
                    now
                ),
                Dialect::Postgres => sql!(
                    "INSERT INTO subscriber_tags (site_id, subscriber_id, tag_id, created_at)
                     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    site_id,
                    subscriber_id,
                    tag,
                    now
                ),
            };
            tx.execute(statement).await?;
        }
    }
    for (key, _) in effects.tags.iter().filter(|(_, add)| !**add) {
        let text = match C::DIALECT {
            Dialect::Sqlite => {
                "DELETE FROM subscriber_tags WHERE subscriber_id = $2
                 AND tag_id = (SELECT id FROM tags WHERE site_id = $1 AND name_key = $3)"
            }
            Dialect::Postgres => {
                "DELETE FROM subscriber_tags WHERE site_id = $1 AND subscriber_id = $2
                 AND tag_id = (SELECT id FROM tags WHERE site_id = $1 AND name_key = $3)"
            }
        };
        tx.execute(sql!(text, site_id, subscriber_id, key.as_str()))
            .await?;
    }

    if let Some(new_email) = &change.new_email {
        let taken: Option<(i64,)> = tx
            .optional(sql!(
                "SELECT id FROM subscribers WHERE site_id = $1 AND email_key = $2 AND id <> $3",
                site_id,
                new_email.key(),
                subscriber_id
            ))
            .await?;
        if taken.is_some() {
            return Err(ItemFailure::Refused(apply::email_taken(new_email)));
        }
        tx.execute(sql!(
            "UPDATE subscribers SET email = $1, email_key = $2 WHERE site_id = $3 AND id = $4",
            new_email.as_str(),
            new_email.key(),
            site_id,
            subscriber_id
        ))
        .await?;
    }

    let mut event_id = None;
    if let Some(event) = &change.event {
        let (id,): (i64,) = tx
            .one(sql!(
                "INSERT INTO events (site_id, subscriber_id, type, occurred_at, details,
                                     unique_key, amount, currency, received_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
                site_id,
                subscriber_id,
                event.kind.as_str(),
                event.occurred_at,
                event.details.as_str(),
                event.unique_key.as_deref(),
                event.amount,
                event.currency.as_deref(),
                now
            ))
            .await?;
        event_id = Some(id);
    }

    // The row's new fields and subscription (when they changed) and its
    // `updated_at`, in one statement.
    let rewrite = effects.fields || effects.subscription;
    tx.execute(sql!(
        "UPDATE subscribers SET
             fields = CASE WHEN $1 THEN COALESCE($2, fields) ELSE fields END,
             unsubscribed_at = CASE WHEN $1 THEN $3 ELSE unsubscribed_at END,
             updated_at = $4
         WHERE site_id = $5 AND id = $6",
        rewrite,
        state.fields.to_text(),
        state.unsubscribed_at,
        now,
        site_id,
        subscriber_id
    ))
    .await?;
    let changed = created || apply::touches_row(change) || change.new_email.is_some();
    Ok((Outcome::Applied, changed.then_some(subscriber_id), event_id))
}
