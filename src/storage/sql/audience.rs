//! The audience's reads, the registration of tags and field keys, and a
//! tag's delete, as both backends do them. How a batch of changes is
//! written (in bulk, or one at a time) is each backend's own.

use super::caps::{Names, count_of, known_keys};
use super::{Conn, Dialect, journal, log};
use crate::segment::FieldError;
use crate::sql;
use crate::storage::changes::IdRanges;
use crate::storage::journal::Journal;
use crate::storage::{LogEntry, Page, Result, StorageError, StoredEvent};
use corral_core::audience::{
    AudienceCounts, Email, Field, FieldKey, Limits, Subscriber, Tag, TagName,
};

/// The columns [`SubscriberRow`] reads, as a literal for `concat!`.
macro_rules! subscriber_columns {
    () => {
        "id, uuid, email, fields, unsubscribed_at, created_at, updated_at"
    };
}

#[derive(sqlx::FromRow)]
struct SubscriberRow {
    id: i64,
    uuid: String,
    email: String,
    fields: String,
    unsubscribed_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

impl SubscriberRow {
    fn with_tags(self, tag_ids: Vec<i64>) -> Subscriber {
        Subscriber {
            id: self.id,
            uuid: self.uuid,
            email: self.email,
            fields: serde_json::from_str(&self.fields).unwrap_or_default(),
            tag_ids,
            unsubscribed_at: self.unsubscribed_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// The subscribers of these rows, each with its tags' ids (ascending).
async fn with_tags<C: Conn>(
    conn: &mut C,
    site_id: i64,
    rows: Vec<SubscriberRow>,
) -> Result<Vec<Subscriber>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let text = C::DIALECT.pick(
        "SELECT st.subscriber_id, st.tag_id FROM subscriber_tags st
         JOIN tags t ON t.id = st.tag_id AND t.site_id = $1
         WHERE st.subscriber_id IN (SELECT value FROM json_each($2))
         ORDER BY st.subscriber_id, st.tag_id",
        "SELECT subscriber_id, tag_id FROM subscriber_tags
         WHERE site_id = $1 AND subscriber_id = ANY($2)
         ORDER BY subscriber_id, tag_id",
    );
    let tags: Vec<(i64, i64)> = conn.all(sql!(text, site_id, &ids[..])).await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let held = tags.iter().filter(|(s, _)| *s == row.id).map(|(_, t)| *t);
            let held = held.collect();
            row.with_tags(held)
        })
        .collect())
}

async fn one_subscriber(
    conn: &mut impl Conn,
    site_id: i64,
    row: Option<SubscriberRow>,
) -> Result<Option<Subscriber>> {
    let Some(row) = row else { return Ok(None) };
    Ok(with_tags(conn, site_id, vec![row]).await?.pop())
}

pub async fn subscriber_by_email(
    conn: &mut impl Conn,
    site_id: i64,
    email: &Email,
) -> Result<Option<Subscriber>> {
    let row = conn
        .optional(sql!(
            concat!(
                "SELECT ",
                subscriber_columns!(),
                " FROM subscribers WHERE site_id = $1 AND email_key = $2"
            ),
            site_id,
            email.key()
        ))
        .await?;
    one_subscriber(conn, site_id, row).await
}

pub async fn subscriber_by_uuid(
    conn: &mut impl Conn,
    site_id: i64,
    uuid: &str,
) -> Result<Option<Subscriber>> {
    let row = conn
        .optional(sql!(
            concat!(
                "SELECT ",
                subscriber_columns!(),
                " FROM subscribers WHERE site_id = $1 AND uuid = $2"
            ),
            site_id,
            uuid
        ))
        .await?;
    one_subscriber(conn, site_id, row).await
}

/// The subscribers with these ids, in id order; ids of other sites or of no
/// one are left out.
pub async fn subscribers_by_ids<C: Conn>(
    conn: &mut C,
    site_id: i64,
    ids: &[i64],
) -> Result<Vec<Subscriber>> {
    let text = match C::DIALECT {
        Dialect::Sqlite => concat!(
            "SELECT ",
            subscriber_columns!(),
            " FROM subscribers
              WHERE id IN (SELECT value FROM json_each($2)) AND +site_id = $1 ORDER BY id"
        ),
        Dialect::Postgres => concat!(
            "SELECT ",
            subscriber_columns!(),
            " FROM subscribers WHERE site_id = $1 AND id = ANY($2) ORDER BY id"
        ),
    };
    let rows: Vec<SubscriberRow> = conn.all(sql!(text, site_id, ids)).await?;
    with_tags(conn, site_id, rows).await
}

#[derive(sqlx::FromRow)]
struct TagRow {
    id: i64,
    name: String,
    name_key: String,
    created_at: i64,
    discarded_at: Option<i64>,
}

impl From<TagRow> for Tag {
    fn from(row: TagRow) -> Self {
        Self {
            id: row.id,
            name: row.name,
            created_at: row.created_at,
            discarded_at: row.discarded_at,
        }
    }
}

#[derive(sqlx::FromRow)]
struct FieldRow {
    id: i64,
    key: String,
    name: String,
    created_at: i64,
}

impl From<FieldRow> for Field {
    fn from(row: FieldRow) -> Self {
        Self {
            id: row.id,
            key: row.key,
            name: row.name,
            created_at: row.created_at,
        }
    }
}

/// Up to `limit` of `rows` (which hold one more when another page follows),
/// with the sort key of the last one kept when one does.
fn page<R, T: From<R>>(mut rows: Vec<R>, limit: usize, key: impl Fn(&R) -> &str) -> Page<T> {
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next_after = rows
        .last()
        .filter(|_| more)
        .map(|last| key(last).to_owned());
    Page {
        items: rows.into_iter().map(T::from).collect(),
        next_after,
    }
}

/// Up to `limit` tags in name order (ignoring case), after the tag whose name
/// key is `after`. `name_key` is unique per site: it alone orders the tags,
/// and a page continues after the last one's.
pub async fn list_tags(
    conn: &mut impl Conn,
    site_id: i64,
    after: Option<&str>,
    limit: usize,
) -> Result<Page<Tag>> {
    let rows: Vec<TagRow> = conn
        .all(sql!(
            "SELECT id, name, name_key, created_at, discarded_at FROM tags
             WHERE site_id = $1 AND name_key > $2
             ORDER BY name_key, name, id LIMIT $3",
            site_id,
            after.unwrap_or(""),
            limit as i64 + 1
        ))
        .await?;
    Ok(page(rows, limit, |r: &TagRow| &r.name_key))
}

/// Up to `limit` fields in key order, after the field whose key is `after`.
pub async fn list_fields(
    conn: &mut impl Conn,
    site_id: i64,
    after: Option<&str>,
    limit: usize,
) -> Result<Page<Field>> {
    let rows: Vec<FieldRow> = conn
        .all(sql!(
            "SELECT id, key, name, created_at FROM fields
             WHERE site_id = $1 AND key > $2
             ORDER BY key LIMIT $3",
            site_id,
            after.unwrap_or(""),
            limit as i64 + 1
        ))
        .await?;
    Ok(page(rows, limit, |r: &FieldRow| &r.key))
}

/// The id of the site's tag of this name, created if new. Inserted only if
/// new, never left to a conflict clause: PostgreSQL would take an id from
/// its sequence all the same, and ids stay those SQLite gives.
pub async fn tag_id(tx: &mut impl Conn, site_id: i64, name: &TagName, now: i64) -> Result<i64> {
    tx.execute(sql!(
        "INSERT INTO tags (site_id, name, name_key, created_at)
         SELECT $1, $2, $3, $4
         WHERE NOT EXISTS (SELECT 1 FROM tags WHERE site_id = $1 AND name_key = $3)",
        site_id,
        name.as_str(),
        name.key(),
        now
    ))
    .await?;
    let (id,): (i64,) = tx
        .one(sql!(
            "SELECT id FROM tags WHERE site_id = $1 AND name_key = $2",
            site_id,
            name.key()
        ))
        .await?;
    Ok(id)
}

/// Registers a field key, unless the site has it.
pub async fn register_field(
    tx: &mut impl Conn,
    site_id: i64,
    key: &FieldKey,
    name: &str,
    now: i64,
) -> Result<()> {
    tx.execute(sql!(
        "INSERT INTO fields (site_id, key, name, created_at)
         SELECT $1, $2, $3, $4
         WHERE NOT EXISTS (SELECT 1 FROM fields WHERE site_id = $1 AND key = $2)",
        site_id,
        key.as_str(),
        name,
        now
    ))
    .await?;
    Ok(())
}

/// Creates a tag, or returns the one that has this name ignoring case, in
/// the caller's write transaction of the site; a new tag over the cap is
/// refused.
pub async fn create_tag(
    tx: &mut impl Conn,
    site_id: i64,
    name: &TagName,
    now: i64,
    limits: &Limits,
) -> Result<Tag> {
    let known = known_keys(tx, site_id, Names::Tags, &[name.key()]).await?;
    if known.is_empty() {
        let count = count_of(tx, site_id, Names::Tags).await?;
        limits
            .check_new_tag(count)
            .map_err(StorageError::LimitExceeded)?;
    }
    let id = tag_id(tx, site_id, name, now).await?;
    let row: TagRow = tx
        .one(sql!(
            "SELECT id, name, name_key, created_at, discarded_at FROM tags
             WHERE site_id = $1 AND id = $2",
            site_id,
            id
        ))
        .await?;
    Ok(row.into())
}

/// Deletes the site's tag `id`, in the caller's write transaction of the
/// site: takes it off every subscriber that holds it (their `updated_at`
/// moves), then off the site's list. The subscribers it was taken off are
/// named in the change log, so that every server's snapshot reads their
/// tags again, and their flips of membership are recorded in the journal
/// with the reason `data`, as a `remove_tag` of each would be. With `name`,
/// the tag must have that name, ignoring case (refused on `name`
/// otherwise, and nothing is deleted). [`StorageError::NotFound`] when the
/// site has no tag of that id. The tag, and how many subscribers held it.
pub async fn delete_tag<C: Conn>(
    tx: &mut C,
    journal: &Journal,
    site_id: i64,
    id: i64,
    name: Option<&TagName>,
    now: i64,
) -> Result<(Tag, usize)> {
    let row: TagRow = tx
        .optional(sql!(
            "SELECT id, name, name_key, created_at, discarded_at FROM tags
             WHERE site_id = $1 AND id = $2",
            site_id,
            id
        ))
        .await?
        .ok_or(StorageError::NotFound)?;
    if let Some(name) = name
        && name.key() != row.name_key
    {
        let message = format!("is not the name of tag {id}");
        return Err(StorageError::Refused(
            FieldError::new("name", message).into(),
        ));
    }
    // SQLite's table has no site_id: the tag, of this site, says it.
    let holders: Vec<(i64,)> = tx
        .all(match C::DIALECT {
            Dialect::Sqlite => sql!(
                "SELECT subscriber_id FROM subscriber_tags WHERE tag_id = $1
                 ORDER BY subscriber_id",
                id
            ),
            Dialect::Postgres => sql!(
                "SELECT subscriber_id FROM subscriber_tags WHERE site_id = $1 AND tag_id = $2
                 ORDER BY subscriber_id",
                site_id,
                id
            ),
        })
        .await?;
    let holders: Vec<i64> = holders.into_iter().map(|(id,)| id).collect();
    let text = C::DIALECT.pick(
        "UPDATE subscribers SET updated_at = $3
         WHERE site_id = $1 AND id IN (SELECT subscriber_id FROM subscriber_tags WHERE tag_id = $2)",
        "UPDATE subscribers SET updated_at = $3
         WHERE site_id = $1 AND id IN (
             SELECT subscriber_id FROM subscriber_tags WHERE site_id = $1 AND tag_id = $2)",
    );
    tx.execute(sql!(text, site_id, id, now)).await?;
    tx.execute(match C::DIALECT {
        Dialect::Sqlite => sql!("DELETE FROM subscriber_tags WHERE tag_id = $1", id),
        Dialect::Postgres => sql!(
            "DELETE FROM subscriber_tags WHERE site_id = $1 AND tag_id = $2",
            site_id,
            id
        ),
    })
    .await?;
    tx.execute(sql!(
        "DELETE FROM tags WHERE site_id = $1 AND id = $2",
        site_id,
        id
    ))
    .await?;
    let entry = LogEntry {
        subscribers: IdRanges::from_ids(holders.iter().copied()),
        ..LogEntry::default()
    };
    log::record(tx, site_id, &entry, now).await?;
    journal::record_writes(tx, journal, site_id, &holders, None, now).await?;
    Ok((row.into(), holders.len()))
}

/// Registers a field key (or returns the one registered), in the caller's
/// write transaction of the site; a new key over the cap is refused.
pub async fn create_field(
    tx: &mut impl Conn,
    site_id: i64,
    key: &FieldKey,
    name: &str,
    now: i64,
    limits: &Limits,
) -> Result<Field> {
    let known = known_keys(tx, site_id, Names::Fields, &[key.as_str().to_owned()]).await?;
    if known.is_empty() {
        let count = count_of(tx, site_id, Names::Fields).await?;
        limits
            .check_new_field_key(count)
            .map_err(StorageError::LimitExceeded)?;
    }
    register_field(tx, site_id, key, name, now).await?;
    let row: FieldRow = tx
        .one(sql!(
            "SELECT id, key, name, created_at FROM fields WHERE site_id = $1 AND key = $2",
            site_id,
            key.as_str()
        ))
        .await?;
    Ok(row.into())
}

/// Bento's counts of the whole site's audience.
pub async fn site_counts(conn: &mut impl Conn, site_id: i64) -> Result<AudienceCounts> {
    let (users, subscribed): (i64, i64) = conn
        .one(sql!(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN unsubscribed_at IS NULL THEN 1 ELSE 0 END), 0)
             FROM subscribers WHERE site_id = $1",
            site_id
        ))
        .await?;
    Ok(AudienceCounts {
        user_count: users,
        subscriber_count: subscribed,
        unsubscriber_count: users - subscribed,
    })
}

#[derive(sqlx::FromRow)]
struct EventRow {
    id: i64,
    #[sqlx(rename = "type")]
    kind: String,
    occurred_at: i64,
    details: String,
}

/// Up to `limit` of the subscriber's events, the most recent first. No index
/// leads from the subscriber (each would slow every import), so this reads
/// the site's events; it serves one page, not evaluation.
pub async fn recent_events(
    conn: &mut impl Conn,
    site_id: i64,
    subscriber_id: i64,
    limit: usize,
) -> Result<Vec<StoredEvent>> {
    let rows: Vec<EventRow> = conn
        .all(sql!(
            "SELECT id, type, occurred_at, details FROM events
             WHERE site_id = $1 AND subscriber_id = $2
             ORDER BY occurred_at DESC, id DESC LIMIT $3",
            site_id,
            subscriber_id,
            i64::try_from(limit).unwrap_or(i64::MAX)
        ))
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| StoredEvent {
            id: r.id,
            kind: r.kind,
            occurred_at: r.occurred_at,
            details: r.details,
        })
        .collect())
}
