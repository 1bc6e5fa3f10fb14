//! Reading a site's audience for evaluation: the whole audience into an
//! [`crate::query::eval::Audience`] at one position of the change log, in one
//! read transaction; the changes since a position (the state of just the
//! subscribers, events and segments the log's entries name), also in one read
//! transaction; columns of event details on demand; and full subscriber rows
//! for a page of members.
//!
//! Events are read in id order. Events are only ever appended, and a site's
//! event ids grow in commit order, so the events of a type read later begin
//! with exactly the ones a snapshot holds: a detail column read after the
//! snapshot lines up with it once cut to its length.

use super::SqliteStore;
use crate::audience::Subscriber;
use crate::query::ast::DetailPath;
use crate::query::eval::{AudienceBuilder, SubscriberRow, Val};
use crate::segment::Listing;
use crate::storage::changes::{Changes, EventRow, Loaded, SubscriberState};
use crate::storage::{Position, Result, SiteHead, StorageError};
use sqlx::{Row, SqliteConnection};

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

/// Reads a table a chunk of ids at a time, over the ids `low..=high`:
/// `chunk` gives one JSON array for the ids in `[$1, $2)` of site `$3`. While
/// `consume` works through one chunk, SQLite already builds the next (on the
/// driver's own thread), so reading and parsing overlap.
async fn read_table(
    conn: &mut SqliteConnection,
    chunk: &'static str,
    site_id: i64,
    (low, high): (Option<i64>, Option<i64>),
    mut consume: impl FnMut(&str) -> Result<()>,
) -> Result<()> {
    let ranges: Vec<(i64, i64)> = chunks(low, high).collect();
    let Some(&first) = ranges.first() else {
        return Ok(());
    };
    let mut current = fetch_chunk(conn, chunk, site_id, first).await?;
    for next in ranges.iter().skip(1).map(Some).chain([None]) {
        let text = current.take();
        let (fetched, consumed) = tokio::join!(
            async {
                match next {
                    Some(&range) => fetch_chunk(conn, chunk, site_id, range).await,
                    None => Ok(None),
                }
            },
            async { text.as_deref().map_or(Ok(()), &mut consume) }
        );
        consumed?;
        current = fetched?;
    }
    Ok(())
}

async fn fetch_chunk(
    conn: &mut SqliteConnection,
    sql: &'static str,
    site_id: i64,
    (from, to): (i64, i64),
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(sql)
        .bind(from)
        .bind(to)
        .bind(site_id)
        .fetch_one(&mut *conn)
        .await
}

/// The site's newest position (0 before any entry).
async fn head_seq(conn: &mut SqliteConnection, site_id: i64) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT COALESCE((SELECT seq FROM change_heads WHERE site_id = $1), 0)")
            .bind(site_id)
            .fetch_one(&mut *conn)
            .await?,
    )
}

/// The lowest and highest id of a table (`None`s when it is empty).
async fn bounds(
    conn: &mut SqliteConnection,
    sql: &'static str,
) -> Result<(Option<i64>, Option<i64>)> {
    Ok(sqlx::query_as(sql).fetch_one(&mut *conn).await?)
}

/// The chunk query of subscribers, `[id, email, fields, subscribed, created_at]`.
const SUBSCRIBER_CHUNK: &str = "SELECT json_group_array(json_array(
        id, email, json(fields), unsubscribed_at IS NULL, created_at)
      ORDER BY id)
    FROM subscribers WHERE id >= $1 AND id < $2 AND +site_id = $3";

/// The chunk query of events, `[id, subscriber_id, occurred_at, type]`.
const EVENT_CHUNK: &str =
    "SELECT json_group_array(json_array(id, subscriber_id, occurred_at, type) ORDER BY id)
     FROM events WHERE id >= $1 AND id < $2 AND +site_id = $3";

fn subscriber_row(row: SubscriberJson) -> SubscriberRow {
    SubscriberRow {
        id: row.0,
        email: row.1,
        fields: row.2,
        subscribed: row.3 != 0,
        created_at: row.4,
    }
}

/// `[json_type, value]` per event: the type tells a missing value (no type)
/// from a JSON null.
fn detail_values(text: Option<&str>) -> Result<Vec<Val>> {
    let rows: Vec<(Option<&str>, serde_json::Value)> = parse_chunk(text)?;
    Ok(rows
        .into_iter()
        .map(|(kind, value)| match kind {
            None => Val::Missing,
            Some(_) => Val::from_json(&value),
        })
        .collect())
}

/// Ids sent to SQLite per statement, as one JSON array.
const IDS_PER_QUERY: usize = 20_000;

/// `[id, email, fields, subscribed, created_at]`.
type SubscriberJson = (
    i64,
    String,
    serde_json::Map<String, serde_json::Value>,
    i64,
    i64,
);

/// `[id, subscriber_id, occurred_at, type]`, the type borrowed when it can be.
#[derive(serde::Deserialize)]
struct EventJson<'a>(i64, i64, i64, #[serde(borrow)] std::borrow::Cow<'a, str>);

impl SqliteStore {
    pub(super) async fn read_snapshot(&self, site_id: i64) -> Result<Loaded> {
        let started = std::time::Instant::now();
        let mut tx = self.reader.begin().await?;
        let seq = head_seq(&mut tx, site_id).await?;
        let mut builder = AudienceBuilder::new();
        let range = bounds(&mut tx, "SELECT min(id), max(id) FROM subscribers").await?;
        read_table(&mut tx, SUBSCRIBER_CHUNK, site_id, range, |text| {
            let rows: Vec<SubscriberJson> = parse_chunk(Some(text))?;
            for row in rows {
                builder.subscriber(subscriber_row(row));
            }
            Ok(())
        })
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
        let range = bounds(&mut tx, "SELECT min(id), max(id) FROM events").await?;
        read_table(&mut tx, EVENT_CHUNK, site_id, range, |text| {
            let rows: Vec<EventJson<'_>> = parse_chunk(Some(text))?;
            for row in rows {
                builder.event(row.1, &row.3, row.2);
                builder.events_through(row.0);
            }
            Ok(())
        })
        .await?;
        let segments = super::segments_in(&mut tx, site_id, Listing::Kept).await?;
        tx.commit().await?;
        let events_ms = started.elapsed().as_millis() as u64;
        let audience = builder.build();
        tracing::debug!(
            site_id,
            seq,
            subscribers_ms,
            tags_ms,
            events_ms,
            built_ms = started.elapsed().as_millis() as u64,
            "audience read"
        );
        Ok(Loaded {
            seq,
            audience,
            segments,
        })
    }

    pub(super) async fn read_changes(
        &self,
        site_id: i64,
        since: Position,
        columns: &[(String, DetailPath)],
        with_segments: bool,
    ) -> Result<Changes> {
        let mut tx = self.reader.begin().await?;
        let head = head_seq(&mut tx, site_id).await?;
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT seq, entry FROM change_log WHERE site_id = $1 AND seq > $2 ORDER BY seq",
        )
        .bind(site_id)
        .bind(since.seq)
        .fetch_all(&mut *tx)
        .await?;
        let named = crate::storage::changes::walk_entries(site_id, since.seq, head, &rows)?;
        let (ids, events, segments_changed) = (
            named.subscribers,
            named.events,
            with_segments || named.segments,
        );

        let mut subscribers: Vec<SubscriberState> = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(IDS_PER_QUERY) {
            let list = serde_json::to_string(chunk).unwrap_or_else(|_| "[]".to_owned());
            let text: Option<String> = sqlx::query_scalar(
                "SELECT json_group_array(json_array(
                     id, email, json(fields), unsubscribed_at IS NULL, created_at)
                   ORDER BY id)
                 FROM subscribers WHERE id IN (SELECT value FROM json_each($1)) AND +site_id = $2",
            )
            .bind(&list)
            .bind(site_id)
            .fetch_one(&mut *tx)
            .await?;
            let first = subscribers.len();
            let rows: Vec<SubscriberJson> = parse_chunk(text.as_deref())?;
            subscribers.extend(rows.into_iter().map(|row| SubscriberState {
                row: subscriber_row(row),
                tags: Vec::new(),
            }));
            let tags: Vec<(i64, String)> = sqlx::query_as(
                "SELECT st.subscriber_id, t.name_key FROM subscriber_tags st
                 JOIN tags t ON t.id = st.tag_id
                 WHERE st.subscriber_id IN (SELECT value FROM json_each($1))
                   AND t.discarded_at IS NULL
                 ORDER BY st.subscriber_id",
            )
            .bind(&list)
            .fetch_all(&mut *tx)
            .await?;
            let states = &mut subscribers[first..];
            for (id, name) in tags {
                if let Ok(i) = states.binary_search_by_key(&id, |s| s.row.id) {
                    states[i].tags.push(name);
                }
            }
        }

        let mut new_events = Vec::new();
        let mut details = Vec::new();
        if let Some((first, last)) = events {
            let first = first.max(since.events_through + 1);
            read_table(
                &mut tx,
                EVENT_CHUNK,
                site_id,
                (Some(first), Some(last)),
                |text| {
                    let rows: Vec<EventJson<'_>> = parse_chunk(Some(text))?;
                    new_events.extend(rows.into_iter().map(|row| EventRow {
                        id: row.0,
                        subscriber_id: row.1,
                        at: row.2,
                        kind: row.3.into_owned(),
                    }));
                    Ok(())
                },
            )
            .await?;
            for (kind, path) in columns {
                if !new_events.iter().any(|e| &e.kind == kind) {
                    continue;
                }
                let text: Option<String> = sqlx::query_scalar(
                    "SELECT json_group_array(json_array(json_type(details, $3), json(details -> $3))
                       ORDER BY id)
                     FROM events WHERE site_id = $1 AND type = $2 AND id >= $4 AND id <= $5",
                )
                .bind(site_id)
                .bind(kind)
                .bind(path.sqlite_path())
                .bind(first)
                .bind(last)
                .fetch_one(&mut *tx)
                .await?;
                details.push((
                    (kind.clone(), path.clone()),
                    detail_values(text.as_deref())?,
                ));
            }
        }
        let segments = if segments_changed {
            Some(super::segments_in(&mut tx, site_id, Listing::Kept).await?)
        } else {
            None
        };
        tx.commit().await?;
        Ok(Changes {
            seq: head,
            entries: rows.len(),
            subscribers,
            events: new_events,
            details,
            segments,
        })
    }

    pub(super) async fn read_head(&self, site_id: i64) -> Result<SiteHead> {
        let row: Option<(i64, i64, i64)> = sqlx::query_as(
            "SELECT seq, segments_seq, keys_seq FROM change_heads WHERE site_id = $1",
        )
        .bind(site_id)
        .fetch_optional(&self.reader)
        .await?;
        Ok(
            row.map_or_else(SiteHead::default, |(seq, segments_seq, keys_seq)| {
                SiteHead {
                    seq,
                    segments_seq,
                    keys_seq,
                }
            }),
        )
    }

    pub(super) async fn read_details(
        &self,
        site_id: i64,
        kind: &str,
        path: &DetailPath,
    ) -> Result<Vec<Val>> {
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
        detail_values(text.as_deref())
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

#[cfg(test)]
impl SqliteStore {
    /// The site as the naive evaluator sees it: every subscriber (tags by
    /// lowercase name) and every event with its details, in stored order.
    pub async fn world(
        &self,
        site_id: i64,
    ) -> (
        Vec<crate::query::eval::naive::Person>,
        Vec<crate::query::eval::naive::Happening>,
    ) {
        use crate::query::eval::naive::{Happening, Person};
        let rows: Vec<(i64, String, String, bool, i64)> = sqlx::query_as(
            "SELECT id, email, fields, unsubscribed_at IS NULL, created_at FROM subscribers
             WHERE site_id = $1 ORDER BY id",
        )
        .bind(site_id)
        .fetch_all(&self.reader)
        .await
        .unwrap();
        let mut people = Vec::new();
        for (id, email, fields, subscribed, created_at) in rows {
            let tags: Vec<String> = sqlx::query_scalar(
                "SELECT t.name_key FROM subscriber_tags st JOIN tags t ON t.id = st.tag_id
                 WHERE st.subscriber_id = $1",
            )
            .bind(id)
            .fetch_all(&self.reader)
            .await
            .unwrap();
            people.push(Person {
                id,
                email,
                subscribed,
                created_at,
                tags,
                fields: serde_json::from_str(&fields).unwrap(),
            });
        }
        let events: Vec<(i64, String, i64, String)> = sqlx::query_as(
            "SELECT subscriber_id, type, occurred_at, details FROM events WHERE site_id = $1
             ORDER BY id",
        )
        .bind(site_id)
        .fetch_all(&self.reader)
        .await
        .unwrap();
        let events = events
            .into_iter()
            .map(|(subscriber_id, kind, at, details)| Happening {
                subscriber_id,
                kind,
                at,
                details: serde_json::from_str(&details).unwrap(),
            })
            .collect();
        (people, events)
    }

    /// Runs a statement on the writer, as a fault would (a trimmed or
    /// damaged change log).
    pub async fn execute(&self, sql: &'static str) {
        sqlx::query(sql).execute(&self.writer).await.unwrap();
    }
}
