//! Reading a site's audience for evaluation: the whole audience into an
//! [`corral_core::columns::Columns`] at one position of the change log, in one
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
use crate::segment::Listing;
use crate::storage::changes::{AppendedEvent, ChangedSubscriber, Changes, Loaded};
use crate::storage::progress::{ReadProgress, Stage};
use crate::storage::sql::store::Snapshots;
use crate::storage::sql::{log, segments};
use crate::storage::{Position, Result, StorageError};
use async_trait::async_trait;
use corral_core::columns::{ColumnsBuilder, SubscriberRecord, Val};
use corral_core::query::ast::DetailPath;
use sqlx::SqliteConnection;

/// Rows read per statement when reading a whole table: SQLite builds one
/// JSON array of them, so the driver hands over one value instead of a row
/// each (per row, that hand-over costs more than SQLite's own reading).
const CHUNK_ROWS: i64 = 1 << 17;

fn parse_chunk<'a, T: serde::Deserialize<'a>>(text: Option<&'a str>) -> Result<Vec<T>> {
    match text {
        None => Ok(Vec::new()),
        Some(text) => serde_json::from_str(text).map_err(|e| {
            StorageError::ReadFailed(format!("could not read the audience back: {e}"))
        }),
    }
}

/// One chunk statement's answer: the highest id in it (`None` when it is
/// empty) and its rows as one JSON array.
type Chunk = (Option<i64>, Option<String>);

/// Reads one site's rows of a table a chunk at a time, in id order, from
/// the first id after `after` through `through`: `chunk` gives the chunk of
/// site `$1` that follows id `$2`, up to id `$3`, at most `$4` rows (see
/// [`SUBSCRIBER_CHUNK`]). Each chunk says where it ends, so while `consume`
/// works through one, SQLite already builds the next (on the driver's own
/// thread): reading and parsing overlap.
async fn read_table(
    conn: &mut SqliteConnection,
    chunk: &'static str,
    site_id: i64,
    (after, through): (i64, i64),
    mut consume: impl FnMut(&str) -> Result<()>,
) -> Result<()> {
    let (mut last, mut text) = fetch_chunk(conn, chunk, site_id, after, through).await?;
    while let Some(end) = last {
        let current = text.take();
        let (fetched, consumed) =
            tokio::join!(fetch_chunk(conn, chunk, site_id, end, through), async {
                current.as_deref().map_or(Ok(()), &mut consume)
            });
        consumed?;
        (last, text) = fetched?;
    }
    Ok(())
}

async fn fetch_chunk(
    conn: &mut SqliteConnection,
    sql: &'static str,
    site_id: i64,
    after: i64,
    through: i64,
) -> Result<Chunk, sqlx::Error> {
    sqlx::query_as(sql)
        .bind(site_id)
        .bind(after)
        .bind(through)
        .bind(CHUNK_ROWS)
        .fetch_one(&mut *conn)
        .await
}

/// The site's lowest and highest id in a table (`None`s when it has no
/// rows there).
async fn id_span(
    conn: &mut SqliteConnection,
    sql: &'static str,
    site_id: i64,
) -> Result<(Option<i64>, Option<i64>)> {
    Ok(sqlx::query_as(sql)
        .bind(site_id)
        .fetch_one(&mut *conn)
        .await?)
}

/// The chunk query of subscribers: the highest id, and
/// `[id, email, fields, subscribed, created_at, uuid]` per row. `INDEXED BY`
/// keeps the read to the site's own entries of `subscribers_site` whatever
/// the planner would guess: no statement of a site's read walks another
/// site's rows. The array takes the rows in the order the subquery yields
/// them (id order, from the index) without sorting them again: an `ORDER
/// BY` inside the aggregate would sort every chunk once more, and
/// [`Ascending`] checks the order instead.
const SUBSCRIBER_CHUNK: &str = "SELECT max(id), json_group_array(json_array(
        id, email, json(fields), unsubscribed_at IS NULL, created_at, uuid))
    FROM (SELECT id, email, fields, unsubscribed_at, created_at, uuid
          FROM subscribers INDEXED BY subscribers_site
          WHERE site_id = $1 AND id > $2 AND id <= $3 ORDER BY id LIMIT $4)";

/// The chunk query of events: the highest id, and
/// `[id, subscriber_id, occurred_at, type]` per row.
const EVENT_CHUNK: &str =
    "SELECT max(id), json_group_array(json_array(id, subscriber_id, occurred_at, type))
     FROM (SELECT id, subscriber_id, occurred_at, type FROM events INDEXED BY events_site
           WHERE site_id = $1 AND id > $2 AND id <= $3 ORDER BY id LIMIT $4)";

/// Each kept tag of site `$1` with its holders, through the site's tags
/// (`tags_name`) and each tag's holders (`subscriber_tags_tag`).
/// Then the hidden tags of the site's includes and excludes
/// ([`corral_core::query::manual`]), by the table's key.
const TAG_HOLDERS: &str = "SELECT t.name_key, json_group_array(st.subscriber_id) FROM tags t
     JOIN subscriber_tags st ON st.tag_id = t.id
     WHERE t.site_id = $1 AND t.discarded_at IS NULL
     GROUP BY t.id
     UNION ALL
     SELECT char(1) || CASE WHEN m.excluded THEN 'exclude:' ELSE 'include:' END || m.segment_id,
            json_group_array(m.subscriber_id)
     FROM segment_manual m WHERE m.site_id = $1
     GROUP BY m.segment_id, m.excluded";

/// The subscribers with the ids of the JSON array `$1`, of site `$2`: one
/// primary-key seek an id (`+site_id` keeps the site's index out of it).
const SUBSCRIBERS_BY_ID: &str = "SELECT json_group_array(json_array(
         id, email, json(fields), unsubscribed_at IS NULL, created_at, uuid)
       ORDER BY id)
     FROM subscribers WHERE id IN (SELECT value FROM json_each($1)) AND +site_id = $2";

/// The kept tags of the subscribers with the ids of the JSON array `$1`.
/// With the hidden tags of their includes and excludes.
const TAGS_BY_SUBSCRIBER: &str = "SELECT st.subscriber_id, t.name_key FROM subscriber_tags st
     JOIN tags t ON t.id = st.tag_id
     WHERE st.subscriber_id IN (SELECT value FROM json_each($1))
       AND t.discarded_at IS NULL
     UNION ALL
     SELECT m.subscriber_id,
            char(1) || CASE WHEN m.excluded THEN 'exclude:' ELSE 'include:' END || m.segment_id
     FROM segment_manual m WHERE m.subscriber_id IN (SELECT value FROM json_each($1))
     ORDER BY 1";

/// `[json_type, value]` at path `$3` of each event of site `$1` and type
/// `$2` with an id in `[$4, $5]`, in id order (`events_site_type` ends with
/// the rowid).
const DETAILS_IN_RANGE: &str =
    "SELECT json_group_array(json_array(json_type(details, $3), json(details -> $3))
       ORDER BY id)
     FROM events INDEXED BY events_site_type
     WHERE site_id = $1 AND type = $2 AND id >= $4 AND id <= $5";

/// The same for every event of site `$1` and type `$2`.
const DETAILS: &str =
    "SELECT json_group_array(json_array(json_type(details, $3), json(details -> $3))
       ORDER BY id)
     FROM events INDEXED BY events_site_type WHERE site_id = $1 AND type = $2";

/// Checks that the ids a read hands over keep rising: what the builder of
/// the audience and the alignment of detail columns rely on.
#[derive(Default)]
struct Ascending(i64);

impl Ascending {
    fn next(&mut self, id: i64) -> Result<()> {
        if id <= self.0 {
            return Err(StorageError::ReadFailed(format!(
                "rows came out of id order ({id} after {})",
                self.0
            )));
        }
        self.0 = id;
        Ok(())
    }
}

/// The site's lowest and highest subscriber id. Two subqueries: SQLite
/// answers a lone `min()` or `max()` with one seek, both in one statement
/// with a walk.
const SUBSCRIBER_SPAN: &str = "SELECT
    (SELECT min(id) FROM subscribers INDEXED BY subscribers_site WHERE site_id = $1),
    (SELECT max(id) FROM subscribers INDEXED BY subscribers_site WHERE site_id = $1)";
const EVENT_SPAN: &str = "SELECT
    (SELECT min(id) FROM events INDEXED BY events_site WHERE site_id = $1),
    (SELECT max(id) FROM events INDEXED BY events_site WHERE site_id = $1)";

fn subscriber_row(row: SubscriberJson) -> SubscriberRecord {
    SubscriberRecord {
        id: row.0,
        uuid: row.5,
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

/// `[id, email, fields, subscribed, created_at, uuid]`.
type SubscriberJson = (
    i64,
    String,
    serde_json::Map<String, serde_json::Value>,
    i64,
    i64,
    String,
);

/// `[id, subscriber_id, occurred_at, type]`, the type borrowed when it can be.
#[derive(serde::Deserialize)]
struct EventJson<'a>(i64, i64, i64, #[serde(borrow)] std::borrow::Cow<'a, str>);

#[async_trait]
impl Snapshots for SqliteStore {
    async fn read_snapshot(&self, site_id: i64, progress: &ReadProgress) -> Result<Loaded> {
        let started = std::time::Instant::now();
        let mut tx = self.reader.begin().await?;
        let seq = log::head(&mut *tx, site_id).await?.seq;
        let mut builder = ColumnsBuilder::new();
        progress.stage(Stage::Subscribers);
        progress.expect_span(id_span(&mut tx, SUBSCRIBER_SPAN, site_id).await?);
        progress.expect_span(id_span(&mut tx, EVENT_SPAN, site_id).await?);
        let mut order = Ascending::default();
        read_table(&mut tx, SUBSCRIBER_CHUNK, site_id, (0, i64::MAX), |text| {
            let rows: Vec<SubscriberJson> = parse_chunk(Some(text))?;
            progress.advance(rows.len() as u64);
            for row in rows {
                order.next(row.0)?;
                builder.subscriber(subscriber_row(row));
            }
            Ok(())
        })
        .await?;
        let subscribers_ms = started.elapsed().as_millis() as u64;
        progress.stage(Stage::Tags);
        let tags: Vec<(String, Option<String>)> = sqlx::query_as(TAG_HOLDERS)
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
        progress.stage(Stage::Events);
        let mut order = Ascending::default();
        read_table(&mut tx, EVENT_CHUNK, site_id, (0, i64::MAX), |text| {
            let rows: Vec<EventJson<'_>> = parse_chunk(Some(text))?;
            progress.advance(rows.len() as u64);
            for row in rows {
                order.next(row.0)?;
                builder.event(row.1, &row.3, row.2);
                builder.events_through(row.0);
            }
            Ok(())
        })
        .await?;
        let segments = segments::list(&mut *tx, site_id, Listing::Kept).await?;
        tx.commit().await?;
        tracing::debug!(
            site_id,
            seq,
            subscribers_ms,
            tags_ms,
            events_ms = started.elapsed().as_millis() as u64,
            "audience read"
        );
        Ok(Loaded {
            seq,
            audience: builder,
            segments,
        })
    }

    async fn read_changes_since(
        &self,
        site_id: i64,
        since: Position,
        columns: &[(String, DetailPath)],
        with_segments: bool,
        progress: &ReadProgress,
    ) -> Result<Changes> {
        progress.stage(Stage::Changes);
        let mut tx = self.reader.begin().await?;
        let (head, entries, named) = log::named_since(&mut *tx, site_id, since.seq).await?;
        let (ids, events) = (named.subscribers, named.events);

        let mut subscribers: Vec<ChangedSubscriber> = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(IDS_PER_QUERY) {
            let list = serde_json::to_string(chunk).unwrap_or_else(|_| "[]".to_owned());
            let text: Option<String> = sqlx::query_scalar(SUBSCRIBERS_BY_ID)
                .bind(&list)
                .bind(site_id)
                .fetch_one(&mut *tx)
                .await?;
            let first = subscribers.len();
            let rows: Vec<SubscriberJson> = parse_chunk(text.as_deref())?;
            subscribers.extend(rows.into_iter().map(|row| ChangedSubscriber {
                row: subscriber_row(row),
                tags: Vec::new(),
            }));
            let tags: Vec<(i64, String)> = sqlx::query_as(TAGS_BY_SUBSCRIBER)
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
            progress.expect((last - first + 1).max(0) as u64);
            let mut order = Ascending::default();
            read_table(&mut tx, EVENT_CHUNK, site_id, (first - 1, last), |text| {
                let rows: Vec<EventJson<'_>> = parse_chunk(Some(text))?;
                progress.advance(rows.len() as u64);
                new_events.reserve(rows.len());
                for row in rows {
                    order.next(row.0)?;
                    new_events.push(AppendedEvent {
                        id: row.0,
                        subscriber_id: row.1,
                        at: row.2,
                        kind: row.3.into_owned(),
                    });
                }
                Ok(())
            })
            .await?;
            for (kind, path) in columns {
                if !new_events.iter().any(|e| &e.kind == kind) {
                    continue;
                }
                let text: Option<String> = sqlx::query_scalar(DETAILS_IN_RANGE)
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
        let segments =
            segments::kept_if(&mut *tx, site_id, with_segments || named.segments).await?;
        tx.commit().await?;
        Ok(Changes {
            seq: head,
            entries,
            subscribers,
            events: new_events,
            details,
            segments,
        })
    }

    async fn read_detail_column(
        &self,
        site_id: i64,
        kind: &str,
        path: &DetailPath,
        progress: &ReadProgress,
    ) -> Result<Vec<Val>> {
        progress.stage(Stage::Details);
        let text: Option<String> = sqlx::query_scalar(DETAILS)
            .bind(site_id)
            .bind(kind)
            .bind(path.sqlite_path())
            .fetch_one(&self.reader)
            .await?;
        let values = detail_values(text.as_deref())?;
        progress.advance(values.len() as u64);
        Ok(values)
    }
}

#[cfg(test)]
impl SqliteStore {
    /// Runs a statement on the writer, as a fault would (a trimmed or
    /// damaged change log).
    pub async fn execute(&self, sql: &'static str) {
        sqlx::query(sql).execute(&self.writer).await.unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::KeyPair;
    use crate::storage::Store;
    use sqlx::Row;

    /// SQLite's plan of `sql`: one line per step.
    async fn plan(store: &SqliteStore, sql: &str, binds: &[&str]) -> Vec<String> {
        let explain = format!("EXPLAIN QUERY PLAN {sql}");
        let mut query = sqlx::query(sqlx::AssertSqlSafe(explain));
        for bind in binds {
            query = query.bind(*bind);
        }
        let rows = query.fetch_all(&store.reader).await.unwrap();
        rows.iter()
            .map(|row| row.try_get::<String, _>("detail").unwrap())
            .collect()
    }

    /// Whether a step of a plan reads an audience table other than by the
    /// site's index or a seek by id.
    fn walks(step: &str) -> bool {
        let tables = [
            "subscribers",
            "events",
            "tags",
            "subscriber_tags",
            "change_log",
        ];
        let Some(table) = step.split_whitespace().nth(1) else {
            return false;
        };
        if !tables.contains(&table) {
            return false;
        }
        let by_site = step.contains("(site_id=?");
        let by_id = step.contains("(rowid=?)")
            || step.contains("(tag_id=?")
            || step.contains("(subscriber_id=?");
        !(step.starts_with("SEARCH ") && (by_site || by_id))
    }

    /// Every statement of a site's read reaches the audience's tables only
    /// through an index that leads with the site (or a seek by id): none
    /// scans a table or walks a range of ids with other sites' rows in it,
    /// so a site's read costs what the site holds. A plan is what SQLite
    /// will do whatever the tables hold; `INDEXED BY` keeps it so.
    #[tokio::test]
    async fn no_statement_of_a_sites_read_walks_other_sites_rows() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("plans.db").to_str().unwrap())
            .await
            .unwrap();
        store
            .create_site("s", "s", &KeyPair::generate(), false, 0)
            .await
            .unwrap();
        let statements: [(&str, &str, &[&str]); 10] = [
            (
                "subscriber chunk",
                SUBSCRIBER_CHUNK,
                &["1", "0", "99", "10"],
            ),
            ("event chunk", EVENT_CHUNK, &["1", "0", "99", "10"]),
            ("subscriber span", SUBSCRIBER_SPAN, &["1"]),
            ("event span", EVENT_SPAN, &["1"]),
            ("tag holders", TAG_HOLDERS, &["1"]),
            ("change entries", log::ENTRIES_AFTER, &["1", "0"]),
            ("subscribers by id", SUBSCRIBERS_BY_ID, &["[1,2]", "1"]),
            ("tags by subscriber", TAGS_BY_SUBSCRIBER, &["[1,2]"]),
            (
                "details in range",
                DETAILS_IN_RANGE,
                &["1", "t", "$.a", "1", "9"],
            ),
            ("details", DETAILS, &["1", "t", "$.a"]),
        ];
        for (name, sql, binds) in statements {
            for step in plan(&store, sql, binds).await {
                assert!(!walks(&step), "{name} walks a table: {step}");
            }
        }
        // The check itself: the statements the reads used before walked.
        let before = [
            "SELECT min(id), max(id) FROM events",
            "SELECT id FROM events WHERE id >= $1 AND id < $2 AND +site_id = $3",
            "SELECT id FROM subscribers WHERE id >= $1 AND id < $2 AND +site_id = $3",
        ];
        for sql in before {
            let steps = plan(&store, sql, &["1", "9", "1"]).await;
            assert!(steps.iter().any(|s| walks(s)), "{sql}: {steps:?}");
        }
    }
}
