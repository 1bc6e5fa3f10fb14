//! The audience on PostgreSQL: subscribers, tags, fields and events.
//!
//! [`AudienceStore::apply_changes`] runs a caller's batch in one transaction
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

use super::caps::{Names, count_of, known_keys, site_counts};
use super::{PgStore, Tx, bulk};
use crate::credentials::random_hex_id;
use crate::storage::{AudienceStore, LogEntry, Page, Result, StorageError, StoredEvent};
use async_trait::async_trait;
use corral_core::audience::apply::{self, Fields, SubscriberState};
use corral_core::audience::fold;
use corral_core::audience::{
    AudienceCounts, Email, Field, FieldKey, Limits, Outcome, Subscriber, SubscriberChange, Tag,
    TagName,
};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

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

fn tag_from_row(row: &PgRow) -> Result<Tag> {
    Ok(Tag {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
        discarded_at: row.try_get("discarded_at")?,
    })
}

fn field_from_row(row: &PgRow) -> Result<Field> {
    Ok(Field {
        id: row.try_get("id")?,
        key: row.try_get("key")?,
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
    })
}

/// The columns [`subscriber_from_row`] reads, tags included, of
/// `subscribers s` (a literal for `concat!`: sqlx takes only literal SQL).
macro_rules! subscriber_columns {
    () => {
        "SELECT s.id, s.uuid, s.email, s.fields, s.unsubscribed_at, s.created_at, s.updated_at,
            ARRAY(SELECT st.tag_id FROM subscriber_tags st
                  WHERE st.site_id = s.site_id AND st.subscriber_id = s.id
                  ORDER BY st.tag_id) AS tag_ids
         FROM subscribers s "
    };
}

pub(super) fn subscriber_from_row(row: &PgRow) -> Result<Subscriber> {
    let fields: String = row.try_get("fields")?;
    Ok(Subscriber {
        id: row.try_get("id")?,
        uuid: row.try_get("uuid")?,
        email: row.try_get("email")?,
        fields: serde_json::from_str(&fields).unwrap_or_default(),
        tag_ids: row.try_get("tag_ids")?,
        unsubscribed_at: row.try_get("unsubscribed_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl PgStore {
    async fn find_subscriber(
        &self,
        site_id: i64,
        by_email: bool,
        value: &str,
    ) -> Result<Option<Subscriber>> {
        let sql = if by_email {
            concat!(
                subscriber_columns!(),
                "WHERE s.site_id = $1 AND s.email_key = $2"
            )
        } else {
            concat!(
                subscriber_columns!(),
                "WHERE s.site_id = $1 AND s.uuid = $2"
            )
        };
        let row = sqlx::query(sql)
            .bind(site_id)
            .bind(value)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(subscriber_from_row).transpose()
    }

    pub(super) async fn read_subscribers(
        &self,
        site_id: i64,
        ids: &[i64],
    ) -> Result<Vec<Subscriber>> {
        let rows = sqlx::query(concat!(
            subscriber_columns!(),
            "WHERE s.site_id = $1 AND s.id = ANY($2) ORDER BY s.id"
        ))
        .bind(site_id)
        .bind(ids)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(subscriber_from_row).collect()
    }
}

#[async_trait]
impl AudienceStore for PgStore {
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
        self.groups.apply(self, site_id, changes, now).await
    }

    async fn list_tags(
        &self,
        site_id: i64,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<Tag>> {
        let rows = sqlx::query(
            "SELECT id, name, name_key, created_at, discarded_at FROM tags
             WHERE site_id = $1 AND name_key > $2
             ORDER BY name_key, name, id LIMIT $3",
        )
        .bind(site_id)
        .bind(after.unwrap_or(""))
        .bind(limit as i64 + 1)
        .fetch_all(&self.pool)
        .await?;
        page(&rows, limit, "name_key", tag_from_row)
    }

    async fn create_tag(&self, site_id: i64, name: &TagName, now: i64) -> Result<Tag> {
        let mut tx = self.begin_site_write(site_id).await?;
        let known = known_keys(&mut tx, site_id, Names::Tags, &[name.key()]).await?;
        if known.is_empty() {
            let count = count_of(&mut tx, site_id, Names::Tags).await?;
            self.limits
                .check_new_tag(count)
                .map_err(StorageError::LimitExceeded)?;
        }
        let id = tag_id(&mut tx, site_id, name, now).await?;
        let row = sqlx::query(
            "SELECT id, name, created_at, discarded_at FROM tags WHERE site_id = $1 AND id = $2",
        )
        .bind(site_id)
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
        .fetch_all(&self.pool)
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
        let mut tx = self.begin_site_write(site_id).await?;
        let known = known_keys(&mut tx, site_id, Names::Fields, &[key.as_str().to_owned()]).await?;
        if known.is_empty() {
            let count = count_of(&mut tx, site_id, Names::Fields).await?;
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

    async fn site_counts(&self, site_id: i64) -> Result<AudienceCounts> {
        let (users, subscribed): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), COUNT(*) FILTER (WHERE unsubscribed_at IS NULL)
             FROM subscribers WHERE site_id = $1",
        )
        .bind(site_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(AudienceCounts {
            user_count: users,
            subscriber_count: subscribed,
            unsubscriber_count: users - subscribed,
        })
    }

    async fn subscribers_by_ids(&self, site_id: i64, ids: &[i64]) -> Result<Vec<Subscriber>> {
        self.read_subscribers(site_id, ids).await
    }

    async fn recent_events(
        &self,
        site_id: i64,
        subscriber_id: i64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>> {
        let rows: Vec<(i64, String, i64, String)> = sqlx::query_as(
            "SELECT id, type, occurred_at, details FROM events
             WHERE site_id = $1 AND subscriber_id = $2
             ORDER BY occurred_at DESC, id DESC LIMIT $3",
        )
        .bind(site_id)
        .bind(subscriber_id)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, kind, occurred_at, details)| StoredEvent {
                id,
                kind,
                occurred_at,
                details,
            })
            .collect())
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

/// Up to `limit` of `rows` (which hold one more when another page follows),
/// and the sort key in `column` of the last one kept when one does.
fn page<T>(
    rows: &[PgRow],
    limit: usize,
    column: &str,
    item: impl Fn(&PgRow) -> Result<T>,
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

/// The id of the site's tag with this name (ignoring case), created if new.
async fn tag_id(conn: &mut PgConnection, site_id: i64, name: &TagName, now: i64) -> Result<i64> {
    // Not `ON CONFLICT DO NOTHING`, which would take an id from the
    // sequence even when the tag exists: ids stay those SQLite gives.
    sqlx::query(
        "INSERT INTO tags (site_id, name, name_key, created_at)
         SELECT $1, $2, $3, $4
         WHERE NOT EXISTS (SELECT 1 FROM tags WHERE site_id = $1 AND name_key = $3)",
    )
    .bind(site_id)
    .bind(name.as_str())
    .bind(name.key())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(
        sqlx::query_scalar("SELECT id FROM tags WHERE site_id = $1 AND name_key = $2")
            .bind(site_id)
            .bind(name.key())
            .fetch_one(&mut *conn)
            .await?,
    )
}

async fn register_field(
    conn: &mut PgConnection,
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
    .execute(&mut *conn)
    .await?;
    Ok(())
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
    let mut site = site_counts(tx, site_id, std::iter::once(change)).await?;
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
    for (key, name) in &effects.new_tags {
        let tag = tag_id(tx, site_id, name, now).await?;
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
