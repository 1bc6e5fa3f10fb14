//! Reading a site's audience for evaluation: the whole audience into an
//! [`Audience`] in one read transaction, columns of event details on demand,
//! and full subscriber rows for a page of members.
//!
//! Events are read in id order. Events are only ever appended, so the events
//! of a type read later begin with exactly the ones a snapshot holds: a detail
//! column read after the snapshot lines up with it once cut to its length.

use super::SqliteStore;
use crate::audience::Subscriber;
use crate::query::ast::DetailPath;
use crate::query::eval::{Audience, AudienceBuilder, SubscriberRow, Val};
use crate::storage::{Result, StorageError};
use sqlx::Row;

/// Rows read per query when reading a whole table: SQLite builds one JSON
/// array of them, so the driver hands over one value instead of a row each
/// (per row, that hand-over costs more than SQLite's own reading).
const CHUNK_IDS: i64 = 1 << 17;

/// `[from, to)` id ranges covering `low..=high`.
fn chunks(low: Option<i64>, high: Option<i64>) -> impl Iterator<Item = (i64, i64)> {
    let (low, high) = match (low, high) {
        (Some(l), Some(h)) => (l, h),
        _ => (1, 0),
    };
    (low..=high)
        .step_by(CHUNK_IDS as usize)
        .map(|from| (from, from.saturating_add(CHUNK_IDS)))
}

fn parse_chunk<'a, T: serde::Deserialize<'a>>(text: Option<&'a str>) -> Result<Vec<T>> {
    match text {
        None => Ok(Vec::new()),
        Some(text) => serde_json::from_str(text).map_err(|e| {
            StorageError::ReadFailed(format!("could not read the audience back: {e}"))
        }),
    }
}

/// Reads a table a chunk of ids at a time: `bounds` gives the lowest and
/// highest id, `chunk` one JSON array for the ids in `[$1, $2)` of site `$3`;
/// with `after`, only ids above it are read. While `consume` works through
/// one chunk, SQLite already builds the next (on the driver's own thread), so
/// reading and parsing overlap. Returns the highest id of the table.
async fn read_table(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    bounds: &'static str,
    chunk: &'static str,
    site_id: i64,
    after: Option<i64>,
    mut consume: impl FnMut(&str) -> Result<()>,
) -> Result<Option<i64>> {
    let (low, high): (Option<i64>, Option<i64>) =
        sqlx::query_as(bounds).fetch_one(&mut **tx).await?;
    let low = match (low, after) {
        (Some(low), Some(after)) => Some(low.max(after + 1)),
        (low, _) => low,
    };
    let ranges: Vec<(i64, i64)> = chunks(low, high).collect();
    let Some(&first) = ranges.first() else {
        return Ok(high);
    };
    let mut current = fetch_chunk(tx, chunk, site_id, first).await?;
    for next in ranges.iter().skip(1).map(Some).chain([None]) {
        let text = current.take();
        let (fetched, consumed) = tokio::join!(
            async {
                match next {
                    Some(&range) => fetch_chunk(tx, chunk, site_id, range).await,
                    None => Ok(None),
                }
            },
            async { text.as_deref().map_or(Ok(()), &mut consume) }
        );
        consumed?;
        current = fetched?;
    }
    Ok(high)
}

async fn fetch_chunk(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    sql: &'static str,
    site_id: i64,
    (from, to): (i64, i64),
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(sql)
        .bind(from)
        .bind(to)
        .bind(site_id)
        .fetch_one(&mut **tx)
        .await
}

/// `[id, email, fields, subscribed, created_at]`.
type SubscriberJson = (
    i64,
    String,
    serde_json::Map<String, serde_json::Value>,
    i64,
    i64,
);

/// `[subscriber_id, occurred_at, type]`, the type borrowed when it can be.
#[derive(serde::Deserialize)]
struct EventJson<'a>(i64, i64, #[serde(borrow)] std::borrow::Cow<'a, str>);

impl SqliteStore {
    pub(super) async fn read_audience(
        &self,
        site_id: i64,
        earlier: Option<&Audience>,
    ) -> Result<Audience> {
        let started = std::time::Instant::now();
        let mut tx = self.reader.begin().await?;
        let mut builder = AudienceBuilder::new();
        read_table(
            &mut tx,
            "SELECT min(id), max(id) FROM subscribers",
            "SELECT json_group_array(json_array(
                 id, email, json(fields), unsubscribed_at IS NULL, created_at)
               ORDER BY id)
             FROM subscribers WHERE id >= $1 AND id < $2 AND +site_id = $3",
            site_id,
            None,
            |text| {
                let rows: Vec<SubscriberJson> = parse_chunk(Some(text))?;
                for row in rows {
                    builder.subscriber(SubscriberRow {
                        id: row.0,
                        email: row.1,
                        fields: row.2,
                        subscribed: row.3 != 0,
                        created_at: row.4,
                    });
                }
                Ok(())
            },
        )
        .await?;
        let subscribers_ms = started.elapsed().as_millis() as u64;
        let tags: Vec<(String, Option<String>)> = sqlx::query_as(
            "SELECT t.name_key, json_group_array(st.subscriber_id) FROM tags t
             JOIN subscriber_tags st ON st.tag_id = t.id
             WHERE t.site_id = $1 AND t.discarded_at IS NULL
             GROUP BY t.id",
        )
        .bind(site_id)
        .fetch_all(&mut *tx)
        .await?;
        for (name, holders) in tags {
            let holders: Vec<i64> = parse_chunk(holders.as_deref())?;
            for id in holders {
                builder.tag(id, &name);
            }
        }
        let tags_ms = started.elapsed().as_millis() as u64;
        let after = match earlier {
            Some(earlier) if builder.continue_from(earlier) => Some(earlier.events_through),
            _ => None,
        };
        let through = read_table(
            &mut tx,
            "SELECT min(id), max(id) FROM events",
            "SELECT json_group_array(json_array(subscriber_id, occurred_at, type) ORDER BY id)
             FROM events WHERE id >= $1 AND id < $2 AND +site_id = $3",
            site_id,
            after,
            |text| {
                let rows: Vec<EventJson<'_>> = parse_chunk(Some(text))?;
                for row in rows {
                    builder.event(row.0, &row.2, row.1);
                }
                Ok(())
            },
        )
        .await?;
        if let Some(id) = through {
            builder.events_through(id);
        }
        tx.commit().await?;
        let events_ms = started.elapsed().as_millis() as u64;
        let audience = builder.build();
        tracing::debug!(
            site_id,
            subscribers_ms,
            tags_ms,
            events_from = after.map_or(0, |id| id + 1),
            events_ms,
            built_ms = started.elapsed().as_millis() as u64,
            "audience read"
        );
        Ok(audience)
    }

    pub(super) async fn read_details(
        &self,
        site_id: i64,
        kind: &str,
        path: &DetailPath,
    ) -> Result<Vec<Val>> {
        // `[json_type, value]` per event: the type tells a missing value
        // (no type) from a JSON null.
        let text: Option<String> = sqlx::query_scalar(
            "SELECT json_group_array(json_array(json_type(details, $3), json(details -> $3))
               ORDER BY id)
             FROM events WHERE site_id = $1 AND type = $2",
        )
        .bind(site_id)
        .bind(kind)
        .bind(path.sqlite_path())
        .fetch_one(&self.reader)
        .await?;
        let rows: Vec<(Option<&str>, serde_json::Value)> = parse_chunk(text.as_deref())?;
        Ok(rows
            .into_iter()
            .map(|(kind, value)| match kind {
                None => Val::Missing,
                Some(_) => Val::from_json(&value),
            })
            .collect())
    }

    pub(super) async fn read_subscribers(
        &self,
        site_id: i64,
        ids: &[i64],
    ) -> Result<Vec<Subscriber>> {
        let ids = serde_json::to_string(ids).unwrap_or_else(|_| "[]".to_owned());
        let mut conn = self.reader.acquire().await?;
        let rows = sqlx::query(
            "SELECT id, uuid, email, fields, unsubscribed_at, created_at, updated_at
             FROM subscribers
             WHERE id IN (SELECT value FROM json_each($2)) AND +site_id = $1
             ORDER BY id",
        )
        .bind(site_id)
        .bind(&ids)
        .fetch_all(&mut *conn)
        .await?;
        let tags: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT subscriber_id, tag_id FROM subscriber_tags
             WHERE subscriber_id IN (SELECT value FROM json_each($1))
             ORDER BY subscriber_id, tag_id",
        )
        .bind(&ids)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|row| {
                let id: i64 = row.try_get("id")?;
                let fields: String = row.try_get("fields")?;
                Ok(Subscriber {
                    id,
                    uuid: row.try_get("uuid")?,
                    email: row.try_get("email")?,
                    fields: serde_json::from_str(&fields).unwrap_or_default(),
                    tag_ids: tags
                        .iter()
                        .filter(|(s, _)| *s == id)
                        .map(|(_, t)| *t)
                        .collect(),
                    unsubscribed_at: row.try_get("unsubscribed_at")?,
                    created_at: row.try_get("created_at")?,
                    updated_at: row.try_get("updated_at")?,
                })
            })
            .collect()
    }
}
