//! Audience batches on SQLite: subscribers, tags, fields and events
//! written.
//!
//! [`crate::storage::AudienceStore::apply_changes`] runs a whole batch in one write
//! transaction: runs of changes that cannot be refused for who they name in
//! bulk ([`bulk`]), the others each inside a savepoint, so a refused item is
//! rolled back alone and the batch is durable (`synchronous = FULL`) when it
//! returns. On both paths what a change does to its subscriber, and whether
//! the store's [`Limits`] allow it, is decided by [`apply::apply`], from
//! counts read alike ([`caps`]); the paths only read the state it starts
//! from and write the effects it returns. What needs the database stays
//! here: a `$purchase` whose unique key is stored is a duplicate, a missing
//! subscriber is created (or the change refused, [`apply::may_create`]), and
//! an email change to an address another subscriber has is refused.

use super::{bulk, caps};
use crate::credentials::random_hex_id;
use crate::storage::{Result, StorageError, sql};
use corral_core::audience::apply::{self, Fields, SubscriberState};
use corral_core::audience::{Limits, Outcome, SubscriberChange};
use sqlx::{Row, Sqlite, Transaction};

/// Why one item of a batch was not applied.
pub(super) enum ItemError {
    /// The item breaks a rule: it is rolled back and reported.
    Refused(String),
    /// The database failed: the whole batch fails.
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

/// Applies one caller's changes inside a write transaction: runs of changes
/// that may create their subscriber and do not change an email in bulk, the
/// rest one at a time in a savepoint each, all in order. The ids of
/// subscribers created, or whose row or tags changed, are added to `touched`
/// (for the change log); a refused item adds nobody.
pub(super) async fn apply_in(
    tx: &mut Transaction<'static, Sqlite>,
    site_id: i64,
    changes: &[SubscriberChange],
    now: i64,
    limits: &Limits,
    touched: &mut Vec<i64>,
) -> Result<Vec<Outcome>> {
    let mut outcomes = Vec::with_capacity(changes.len());
    let mut start = 0;
    while start < changes.len() {
        let run = changes[start..]
            .iter()
            .take_while(|c| bulk::can_bulk(c))
            .count();
        if run > 0 {
            outcomes.extend(
                bulk::apply_run(
                    tx,
                    site_id,
                    &changes[start..start + run],
                    now,
                    limits,
                    touched,
                )
                .await?,
            );
            start += run;
            continue;
        }
        sqlx::query("SAVEPOINT item").execute(&mut **tx).await?;
        match apply_one(tx, site_id, &changes[start], now, limits).await {
            Ok((outcome, changed)) => {
                sqlx::query("RELEASE item").execute(&mut **tx).await?;
                outcomes.push(outcome);
                touched.extend(changed);
            }
            Err(ItemError::Refused(reason)) => {
                sqlx::query("ROLLBACK TO item").execute(&mut **tx).await?;
                sqlx::query("RELEASE item").execute(&mut **tx).await?;
                outcomes.push(Outcome::Failed(reason));
            }
            Err(ItemError::Database(error)) => return Err(error),
        }
        start += 1;
    }
    Ok(outcomes)
}

/// Applies one change inside the batch's transaction (and its savepoint);
/// with the outcome, the subscriber's id if it was created or its row or tags
/// changed. The rules of the change are decided by [`apply::apply`] before
/// anything is written; the refusal of an email already taken comes after
/// writes, which the caller rolls back with the savepoint.
pub(super) async fn apply_one(
    tx: &mut Transaction<'static, Sqlite>,
    site_id: i64,
    change: &SubscriberChange,
    now: i64,
    limits: &Limits,
) -> std::result::Result<(Outcome, Option<i64>), ItemError> {
    // A purchase sent again is acknowledged and nothing else happens.
    if let Some((kind, key)) = apply::purchase_key(change) {
        let seen: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM events WHERE site_id = $1 AND type = $2 AND unique_key = $3",
        )
        .bind(site_id)
        .bind(kind)
        .bind(key)
        .fetch_optional(&mut **tx)
        .await?;
        if seen.is_some() {
            return Ok((Outcome::Duplicate, None));
        }
    }

    let existing = sqlx::query(
        "SELECT id, fields, unsubscribed_at FROM subscribers WHERE site_id = $1 AND email_key = $2",
    )
    .bind(site_id)
    .bind(change.email.key())
    .fetch_optional(&mut **tx)
    .await?;
    let (id, mut state) = match existing {
        Some(row) => {
            let id: i64 = row.try_get("id")?;
            let tags = if apply::touches_tags(change) {
                let mut held = caps::tags_held(tx, &[id]).await?;
                Some(held.remove(&id).unwrap_or_default())
            } else {
                None
            };
            let state = SubscriberState {
                fields: Fields::Text(row.try_get("fields")?),
                tags,
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
    if effects.fields || effects.subscription {
        sqlx::query(
            "UPDATE subscribers SET fields = COALESCE($1, fields), unsubscribed_at = $2
             WHERE id = $3",
        )
        .bind(state.fields.to_text())
        .bind(state.unsubscribed_at)
        .bind(subscriber_id)
        .execute(&mut **tx)
        .await?;
    }
    for (key, name) in &effects.new_tags {
        let tag = sql::audience::tag_id(&mut **tx, site_id, name, now).await?;
        if effects.tags.get(key) == Some(&true) {
            sqlx::query(
                "INSERT INTO subscriber_tags (subscriber_id, tag_id, created_at)
                 VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )
            .bind(subscriber_id)
            .bind(tag)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
    }
    for (key, _) in effects.tags.iter().filter(|(_, add)| !**add) {
        sqlx::query(
            "DELETE FROM subscriber_tags WHERE subscriber_id = $1
             AND tag_id = (SELECT id FROM tags WHERE site_id = $2 AND name_key = $3)",
        )
        .bind(subscriber_id)
        .bind(site_id)
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
        sqlx::query("UPDATE subscribers SET email = $1, email_key = $2 WHERE id = $3")
            .bind(new_email.as_str())
            .bind(new_email.key())
            .bind(subscriber_id)
            .execute(&mut **tx)
            .await?;
    }

    if let Some(event) = &change.event {
        sqlx::query(
            "INSERT INTO events (site_id, subscriber_id, type, occurred_at, details, unique_key,
                                 amount, currency, received_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
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
        .execute(&mut **tx)
        .await?;
    }

    sqlx::query("UPDATE subscribers SET updated_at = $1 WHERE id = $2")
        .bind(now)
        .bind(subscriber_id)
        .execute(&mut **tx)
        .await?;
    let changed = created || apply::touches_row(change) || change.new_email.is_some();
    Ok((Outcome::Applied, changed.then_some(subscriber_id)))
}
