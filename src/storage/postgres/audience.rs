//! The audience on PostgreSQL: subscribers, tags, fields and events.
//!
//! [`crate::storage::AudienceStore::apply_changes`] runs a caller's batch in one transaction
//! that holds the site's head row from its start ([`super::log::lock_head`]),
//! so no other server's write of the site can interleave and lose an update.
//! As on SQLite, runs of changes that only the caps can refuse are applied
//! in bulk ([`super::bulk`], folded by [`corral_core::audience::fold`]); the
//! others one at a time here, each decided by [`apply::apply`] before
//! anything is written (the one refusal that comes after writes, an email
//! already taken, is rolled back to a savepoint). A duplicate `$purchase` is
//! found by its unique key, which a unique index also guards.
//!
//! Rows are inserted only once known to be new, never left to a conflict
//! clause: PostgreSQL takes an id from the sequence for every insert tried,
//! and the ids the API shows must follow SQLite's (a tag or field id is not
//! skipped because a request named one that existed).

use super::{Tx, bulk};
use crate::credentials::random_hex_id;
use crate::storage::{LogEntry, Result, StorageError, sql};
use corral_core::audience::apply::{self, Fields, SubscriberState};
use corral_core::audience::fold;
use corral_core::audience::{Limits, Outcome, SubscriberChange};
use sqlx::Row;

/// Why one item of a batch was not applied.
enum ItemError {
    Refused(String),
    Database(StorageError),
}

impl From<sqlx::Error> for ItemError {
    fn from(error: sqlx::Error) -> Self {
        Self::Database(error.into())
    }
}

impl From<StorageError> for ItemError {
    fn from(error: StorageError) -> Self {
        Self::Database(error)
    }
}

/// Applies one caller's changes inside a write transaction of the site (in
/// bulk where [`fold::can_bulk`] allows, else one at a time), adding to
/// `touched` and `entry` what the change log must name.
pub(super) async fn apply_in(
    tx: &mut Tx,
    site_id: i64,
    changes: &[SubscriberChange],
    now: i64,
    limits: &Limits,
    touched: &mut Vec<i64>,
    entry: &mut LogEntry,
) -> Result<Vec<Outcome>> {
    let mut outcomes = Vec::with_capacity(changes.len());
    let mut start = 0;
    while start < changes.len() {
        let run = changes[start..]
            .iter()
            .take_while(|c| fold::can_bulk(c))
            .count();
        if run > 0 {
            let (applied, events) = bulk::apply_run(
                tx,
                site_id,
                &changes[start..start + run],
                now,
                limits,
                touched,
            )
            .await?;
            outcomes.extend(applied);
            if let Some((first, last)) = events {
                entry.add_events(first, last);
            }
            start += run;
            continue;
        }
        let change = &changes[start];
        start += 1;
        // Only an email change can be refused after it wrote something.
        let savepoint = change.new_email.is_some();
        if savepoint {
            sqlx::query("SAVEPOINT item").execute(&mut **tx).await?;
        }
        match apply_one(tx, site_id, change, now, limits).await {
            Ok((outcome, changed, event)) => {
                if savepoint {
                    sqlx::query("RELEASE item").execute(&mut **tx).await?;
                }
                outcomes.push(outcome);
                touched.extend(changed);
                if let Some(id) = event {
                    entry.add_events(id, id);
                }
            }
            Err(ItemError::Refused(reason)) => {
                if savepoint {
                    sqlx::query("ROLLBACK TO item").execute(&mut **tx).await?;
                    sqlx::query("RELEASE item").execute(&mut **tx).await?;
                }
                outcomes.push(Outcome::Failed(reason));
            }
            Err(ItemError::Database(error)) => return Err(error),
        }
    }
    Ok(outcomes)
}

/// Applies one change inside the batch's transaction; with the outcome, the
/// subscriber's id if it was created or its row or tags changed, and the id
/// of the event stored.
async fn apply_one(
    tx: &mut Tx,
    site_id: i64,
    change: &SubscriberChange,
    now: i64,
    limits: &Limits,
) -> std::result::Result<(Outcome, Option<i64>, Option<i64>), ItemError> {
    if let Some((kind, key)) = apply::purchase_key(change) {
        let seen: Option<i32> = sqlx::query_scalar(
            "SELECT 1 FROM events WHERE site_id = $1 AND type = $2 AND unique_key = $3",
        )
        .bind(site_id)
        .bind(kind)
        .bind(key)
        .fetch_optional(&mut **tx)
        .await?;
        if seen.is_some() {
            return Ok((Outcome::Duplicate, None, None));
        }
    }

    let existing = sqlx::query(
        "SELECT id, fields, unsubscribed_at,
                ARRAY(SELECT t.name_key FROM subscriber_tags st
                      JOIN tags t ON t.site_id = st.site_id AND t.id = st.tag_id
                      WHERE st.site_id = s.site_id AND st.subscriber_id = s.id) AS tag_keys
         FROM subscribers s WHERE site_id = $1 AND email_key = $2",
    )
    .bind(site_id)
    .bind(change.email.key())
    .fetch_optional(&mut **tx)
    .await?;
    let (id, mut state) = match existing {
        Some(row) => {
            let id: i64 = row.try_get("id")?;
            let tags: Vec<String> = row.try_get("tag_keys")?;
            let state = SubscriberState {
                fields: Fields::Text(row.try_get("fields")?),
                tags: apply::touches_tags(change).then(|| tags.into_iter().collect()),
                unsubscribed_at: row.try_get("unsubscribed_at")?,
            };
            (Some(id), state)
        }
        None => {
            apply::may_create(change).map_err(ItemError::Refused)?;
            (None, SubscriberState::new())
        }
    };
    let mut site = sql::caps::site_counts(&mut **tx, site_id, std::iter::once(change)).await?;
    let effects =
        apply::apply(&mut state, &mut site, change, limits).map_err(ItemError::Refused)?;

    let created = id.is_none();
    let subscriber_id =
        match id {
            Some(id) => id,
            None => sqlx::query_scalar(
                "INSERT INTO subscribers (site_id, uuid, email, email_key, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
            )
            .bind(site_id)
            .bind(random_hex_id())
            .bind(change.email.as_str())
            .bind(change.email.key())
            .bind(now)
            .fetch_one(&mut **tx)
            .await?,
        };
    for key in &effects.field_keys {
        sql::audience::register_field(&mut **tx, site_id, key, key.as_str(), now).await?;
    }
    for (key, name) in &effects.new_tags {
        let tag = sql::audience::tag_id(&mut **tx, site_id, name, now).await?;
        if effects.tags.get(key) == Some(&true) {
            sqlx::query(
                "INSERT INTO subscriber_tags (site_id, subscriber_id, tag_id, created_at)
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            )
            .bind(site_id)
            .bind(subscriber_id)
            .bind(tag)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
    }
    for (key, _) in effects.tags.iter().filter(|(_, add)| !**add) {
        sqlx::query(
            "DELETE FROM subscriber_tags WHERE site_id = $1 AND subscriber_id = $2
             AND tag_id = (SELECT id FROM tags WHERE site_id = $1 AND name_key = $3)",
        )
        .bind(site_id)
        .bind(subscriber_id)
        .bind(key)
        .execute(&mut **tx)
        .await?;
    }

    if let Some(new_email) = &change.new_email {
        let taken: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM subscribers WHERE site_id = $1 AND email_key = $2 AND id <> $3",
        )
        .bind(site_id)
        .bind(new_email.key())
        .bind(subscriber_id)
        .fetch_optional(&mut **tx)
        .await?;
        if taken.is_some() {
            return Err(ItemError::Refused(apply::email_taken(new_email)));
        }
        sqlx::query(
            "UPDATE subscribers SET email = $1, email_key = $2 WHERE site_id = $3 AND id = $4",
        )
        .bind(new_email.as_str())
        .bind(new_email.key())
        .bind(site_id)
        .bind(subscriber_id)
        .execute(&mut **tx)
        .await?;
    }

    let mut event_id = None;
    if let Some(event) = &change.event {
        event_id = Some(
            sqlx::query_scalar(
                "INSERT INTO events (site_id, subscriber_id, type, occurred_at, details,
                                     unique_key, amount, currency, received_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
            )
            .bind(site_id)
            .bind(subscriber_id)
            .bind(&event.kind)
            .bind(event.occurred_at)
            .bind(&event.details)
            .bind(&event.unique_key)
            .bind(event.amount)
            .bind(&event.currency)
            .bind(now)
            .fetch_one(&mut **tx)
            .await?,
        );
    }

    // The row's new fields and subscription (when they changed) and its
    // `updated_at`, in one statement.
    let rewrite = effects.fields || effects.subscription;
    sqlx::query(
        "UPDATE subscribers SET
             fields = CASE WHEN $1 THEN COALESCE($2, fields) ELSE fields END,
             unsubscribed_at = CASE WHEN $1 THEN $3 ELSE unsubscribed_at END,
             updated_at = $4
         WHERE site_id = $5 AND id = $6",
    )
    .bind(rewrite)
    .bind(state.fields.to_text())
    .bind(state.unsubscribed_at)
    .bind(now)
    .bind(site_id)
    .bind(subscriber_id)
    .execute(&mut **tx)
    .await?;
    let changed = created || apply::touches_row(change) || change.new_email.is_some();
    Ok((Outcome::Applied, changed.then_some(subscriber_id), event_id))
}
