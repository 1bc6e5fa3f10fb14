//! The audience on SQLite: subscribers, tags, fields and events.
//!
//! [`AudienceStore::apply_changes`] runs a whole batch in one write
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

use super::{SqliteStore, bulk, caps};
use crate::credentials::random_hex_id;
use crate::storage::{AudienceStore, Page, Result, StorageError, StoredEvent};
use async_trait::async_trait;
use corral_core::audience::apply::{self, Fields, SubscriberState};
use corral_core::audience::{
    AudienceCounts, Email, Field, FieldKey, Limits, Outcome, Subscriber, SubscriberChange, Tag,
    TagName,
};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, SqliteConnection, Transaction};

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

fn tag_from_row(row: &SqliteRow) -> Result<Tag> {
    Ok(Tag {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
        discarded_at: row.try_get("discarded_at")?,
    })
}

fn field_from_row(row: &SqliteRow) -> Result<Field> {
    Ok(Field {
        id: row.try_get("id")?,
        key: row.try_get("key")?,
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
    })
}

async fn subscriber_from_row(conn: &mut SqliteConnection, row: &SqliteRow) -> Result<Subscriber> {
    let id: i64 = row.try_get("id")?;
    let fields: String = row.try_get("fields")?;
    let tag_ids = sqlx::query_scalar(
        "SELECT tag_id FROM subscriber_tags WHERE subscriber_id = $1 ORDER BY tag_id",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(Subscriber {
        id,
        uuid: row.try_get("uuid")?,
        email: row.try_get("email")?,
        fields: serde_json::from_str(&fields).unwrap_or_default(),
        tag_ids,
        unsubscribed_at: row.try_get("unsubscribed_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl SqliteStore {
    async fn find_subscriber(
        &self,
        site_id: i64,
        column_is_email: bool,
        value: &str,
    ) -> Result<Option<Subscriber>> {
        let mut conn = self.reader.acquire().await?;
        let sql = if column_is_email {
            "SELECT id, uuid, email, fields, unsubscribed_at, created_at, updated_at
             FROM subscribers WHERE site_id = $1 AND email_key = $2"
        } else {
            "SELECT id, uuid, email, fields, unsubscribed_at, created_at, updated_at
             FROM subscribers WHERE site_id = $1 AND uuid = $2"
        };
        let row = sqlx::query(sql)
            .bind(site_id)
            .bind(value)
            .fetch_optional(&mut *conn)
            .await?;
        match row {
            Some(row) => Ok(Some(subscriber_from_row(&mut conn, &row).await?)),
            None => Ok(None),
        }
    }
}

#[async_trait]
impl AudienceStore for SqliteStore {
    async fn subscriber_by_email(&self, site_id: i64, email: &Email) -> Result<Option<Subscriber>> {
        self.find_subscriber(site_id, true, &email.key()).await
    }

    async fn subscriber_by_uuid(&self, site_id: i64, uuid: &str) -> Result<Option<Subscriber>> {
        self.find_subscriber(site_id, false, uuid).await
    }

    async fn apply_changes(
        &self,
        site_id: i64,
        changes: Vec<SubscriberChange>,
        now: i64,
    ) -> Result<Vec<Outcome>> {
        self.group.apply(site_id, changes, now).await
    }

    async fn list_tags(
        &self,
        site_id: i64,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<Tag>> {
        // `name_key` is unique per site: it alone orders the tags, and a
        // page continues after the last one's.
        let rows = sqlx::query(
            "SELECT id, name, name_key, created_at, discarded_at FROM tags
             WHERE site_id = $1 AND name_key > $2
             ORDER BY name_key, name, id LIMIT $3",
        )
        .bind(site_id)
        .bind(after.unwrap_or(""))
        .bind(limit as i64 + 1)
        .fetch_all(&self.reader)
        .await?;
        page(&rows, limit, "name_key", tag_from_row)
    }

    async fn create_tag(&self, site_id: i64, name: &TagName, now: i64) -> Result<Tag> {
        let mut tx = self.begin_write().await?;
        let known = caps::known_tag_keys(&mut tx, site_id, &[name.key().as_str()]).await?;
        if known.is_empty() {
            let count = caps::tag_count(&mut tx, site_id).await?;
            self.limits
                .check_new_tag(count)
                .map_err(StorageError::LimitExceeded)?;
        }
        let id = tag_id(&mut tx, site_id, name, now).await?;
        let row = sqlx::query("SELECT id, name, created_at, discarded_at FROM tags WHERE id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        tag_from_row(&row)
    }

    async fn list_fields(
        &self,
        site_id: i64,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<Field>> {
        let rows = sqlx::query(
            "SELECT id, key, name, created_at FROM fields
             WHERE site_id = $1 AND key > $2
             ORDER BY key LIMIT $3",
        )
        .bind(site_id)
        .bind(after.unwrap_or(""))
        .bind(limit as i64 + 1)
        .fetch_all(&self.reader)
        .await?;
        page(&rows, limit, "key", field_from_row)
    }

    async fn create_field(
        &self,
        site_id: i64,
        key: &FieldKey,
        name: &str,
        now: i64,
    ) -> Result<Field> {
        let mut tx = self.begin_write().await?;
        let known = caps::known_field_keys(&mut tx, site_id, &[key.as_str()]).await?;
        if known.is_empty() {
            let count = caps::field_key_count(&mut tx, site_id).await?;
            self.limits
                .check_new_field_key(count)
                .map_err(StorageError::LimitExceeded)?;
        }
        register_field(&mut tx, site_id, key, name, now).await?;
        let row = sqlx::query(
            "SELECT id, key, name, created_at FROM fields WHERE site_id = $1 AND key = $2",
        )
        .bind(site_id)
        .bind(key.as_str())
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        field_from_row(&row)
    }

    async fn subscribers_by_ids(&self, site_id: i64, ids: &[i64]) -> Result<Vec<Subscriber>> {
        self.read_subscribers(site_id, ids).await
    }

    async fn site_counts(&self, site_id: i64) -> Result<AudienceCounts> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS users,
                    COALESCE(SUM(unsubscribed_at IS NULL), 0) AS subscribed
             FROM subscribers WHERE site_id = $1",
        )
        .bind(site_id)
        .fetch_one(&self.reader)
        .await?;
        let users: i64 = row.try_get("users")?;
        let subscribed: i64 = row.try_get("subscribed")?;
        Ok(AudienceCounts {
            user_count: users,
            subscriber_count: subscribed,
            unsubscriber_count: users - subscribed,
        })
    }

    async fn recent_events(
        &self,
        site_id: i64,
        subscriber_id: i64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>> {
        // No index leads from the subscriber (each would slow every import),
        // so this reads the site's events; it serves one page, not evaluation.
        let rows = sqlx::query(
            "SELECT id, type, occurred_at, details FROM events
             WHERE site_id = $1 AND subscriber_id = $2
             ORDER BY occurred_at DESC, id DESC LIMIT $3",
        )
        .bind(site_id)
        .bind(subscriber_id)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(StoredEvent {
                    id: row.try_get("id")?,
                    kind: row.try_get("type")?,
                    occurred_at: row.try_get("occurred_at")?,
                    details: row.try_get("details")?,
                })
            })
            .collect()
    }
}

/// Up to `limit` of `rows` (which hold one more when another page follows),
/// and the sort key in `column` of the last one kept when one does.
fn page<T>(
    rows: &[SqliteRow],
    limit: usize,
    column: &str,
    item: impl Fn(&SqliteRow) -> Result<T>,
) -> Result<Page<T>> {
    let kept = &rows[..rows.len().min(limit)];
    let next_after = match kept.last() {
        Some(last) if rows.len() > limit => Some(last.try_get(column)?),
        _ => None,
    };
    Ok(Page {
        items: kept.iter().map(item).collect::<Result<_>>()?,
        next_after,
    })
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

/// The id of the site's tag with this name (ignoring case), created if new.
async fn tag_id(
    tx: &mut Transaction<'static, Sqlite>,
    site_id: i64,
    name: &TagName,
    now: i64,
) -> Result<i64> {
    // Inserted only if new: a conflict clause would take an id all the same.
    sqlx::query(
        "INSERT INTO tags (site_id, name, name_key, created_at)
         SELECT $1, $2, $3, $4
         WHERE NOT EXISTS (SELECT 1 FROM tags WHERE site_id = $1 AND name_key = $3)",
    )
    .bind(site_id)
    .bind(name.as_str())
    .bind(name.key())
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(
        sqlx::query_scalar("SELECT id FROM tags WHERE site_id = $1 AND name_key = $2")
            .bind(site_id)
            .bind(name.key())
            .fetch_one(&mut **tx)
            .await?,
    )
}

async fn register_field(
    tx: &mut Transaction<'static, Sqlite>,
    site_id: i64,
    key: &FieldKey,
    name: &str,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO fields (site_id, key, name, created_at)
         SELECT $1, $2, $3, $4
         WHERE NOT EXISTS (SELECT 1 FROM fields WHERE site_id = $1 AND key = $2)",
    )
    .bind(site_id)
    .bind(key.as_str())
    .bind(name)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
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
    let mut site = caps::site_counts(tx, site_id, std::iter::once(change)).await?;
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
        register_field(tx, site_id, key, key.as_str(), now).await?;
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
        let tag = tag_id(tx, site_id, name, now).await?;
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
