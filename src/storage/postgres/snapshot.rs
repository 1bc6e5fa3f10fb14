//! Reading a site's audience for evaluation on PostgreSQL: the whole
//! audience at one position of the change log, and the changes since a
//! position, each in one `REPEATABLE READ` transaction (one snapshot of the
//! database, so the head read first matches every row read after it);
//! columns of event details on demand.
//!
//! Tables are read a page of ids at a time, in id order. A detail's value is
//! found by [`DetailPath::lookup`] on the stored text, as the naive
//! evaluator does, so that a path step never indexes an array (PostgreSQL's
//! `#>` would, SQLite's JSON paths do not).

use super::{PgStore, Tx};
use crate::segment::Listing;
use crate::storage::changes::{AppendedEvent, ChangedSubscriber, Changes, Loaded};
use crate::storage::progress::{ReadProgress, Stage};
use crate::storage::sql::store::Snapshots;
use crate::storage::sql::{log, segments};
use crate::storage::{Position, Result, StorageError};
use async_trait::async_trait;
use corral_core::columns::{ColumnsBuilder, SubscriberRecord, Val};
use corral_core::query::ast::DetailPath;
use sqlx::PgConnection;

/// Rows read per statement when reading a whole table.
const PAGE: i64 = 50_000;

/// `(id, email, fields, subscribed, created_at, uuid)`.
type SubscriberTuple = (i64, String, String, bool, i64, String);

fn subscriber_row(
    (id, email, fields, subscribed, created_at, uuid): SubscriberTuple,
) -> Result<SubscriberRecord> {
    let fields = serde_json::from_str(&fields).map_err(|e| {
        StorageError::ReadFailed(format!("the fields of subscriber {id} cannot be read: {e}"))
    })?;
    Ok(SubscriberRecord {
        id,
        uuid,
        email,
        subscribed,
        created_at,
        fields,
    })
}

impl PgStore {
    /// A read-only transaction on one snapshot of the database.
    async fn begin_snapshot(&self) -> Result<Tx> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }
}

#[async_trait]
impl Snapshots for PgStore {
    async fn read_snapshot(&self, site_id: i64, progress: &ReadProgress) -> Result<Loaded> {
        let started = std::time::Instant::now();
        let mut tx = self.begin_snapshot().await?;
        let seq = log::head(&mut *tx, site_id).await?.seq;
        let mut builder = ColumnsBuilder::new();
        progress.stage(Stage::Subscribers);
        progress.expect_span(id_span(&mut tx, SUBSCRIBER_SPAN, site_id).await?);
        progress.expect_span(id_span(&mut tx, EVENT_SPAN, site_id).await?);
        let mut after = 0;
        loop {
            let rows: Vec<SubscriberTuple> = sqlx::query_as(SUBSCRIBER_PAGE)
                .bind(site_id)
                .bind(after)
                .bind(PAGE)
                .fetch_all(&mut *tx)
                .await?;
            let Some(last) = rows.last() else { break };
            after = last.0;
            let full = rows.len() as i64 == PAGE;
            progress.advance(rows.len() as u64);
            for row in rows {
                builder.subscriber(subscriber_row(row)?);
            }
            if !full {
                break;
            }
        }
        progress.stage(Stage::Tags);
        let tags: Vec<(String, Vec<i64>)> = sqlx::query_as(TAG_HOLDERS)
            .bind(site_id)
            .fetch_all(&mut *tx)
            .await?;
        for (name, holders) in tags {
            for id in holders {
                builder.tag(id, &name);
            }
        }
        progress.stage(Stage::Events);
        let mut after = 0;
        loop {
            let rows = events_page(&mut tx, site_id, after, i64::MAX).await?;
            let Some(last) = rows.last() else { break };
            after = last.id;
            let full = rows.len() as i64 == PAGE;
            progress.advance(rows.len() as u64);
            for row in rows {
                builder.event(row.subscriber_id, &row.kind, row.at);
                builder.events_through(row.id);
            }
            if !full {
                break;
            }
        }
        let segments = segments::list(&mut *tx, site_id, Listing::Kept).await?;
        tx.commit().await?;
        tracing::debug!(
            site_id,
            seq,
            ms = started.elapsed().as_millis() as u64,
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
        let mut tx = self.begin_snapshot().await?;
        let (head, entries, named) = log::named_since(&mut *tx, site_id, since.seq).await?;
        let (ids, events) = (named.subscribers, named.events);

        let mut subscribers = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(PAGE as usize) {
            let rows: Vec<(i64, String, String, bool, i64, String, Vec<String>)> =
                sqlx::query_as(SUBSCRIBERS_BY_ID)
                    .bind(site_id)
                    .bind(chunk)
                    .fetch_all(&mut *tx)
                    .await?;
            for (id, email, fields, subscribed, created_at, uuid, tags) in rows {
                subscribers.push(ChangedSubscriber {
                    row: subscriber_row((id, email, fields, subscribed, created_at, uuid))?,
                    tags,
                });
            }
        }

        let mut new_events = Vec::new();
        let mut details = Vec::new();
        if let Some((first, last)) = events {
            let first = first.max(since.events_through + 1);
            progress.expect((last - first + 1).max(0) as u64);
            let mut after = first - 1;
            loop {
                let rows = events_page(&mut tx, site_id, after, last).await?;
                let Some(row) = rows.last() else { break };
                after = row.id;
                let full = rows.len() as i64 == PAGE;
                progress.advance(rows.len() as u64);
                new_events.extend(rows);
                if !full {
                    break;
                }
            }
            for (kind, path) in columns {
                if !new_events.iter().any(|e| &e.kind == kind) {
                    continue;
                }
                let values = self::details(
                    &mut tx,
                    site_id,
                    kind,
                    path,
                    Some((first, last)),
                    &ReadProgress::new(),
                )
                .await?;
                details.push(((kind.clone(), path.clone()), values));
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
        let mut conn = self.pool.acquire().await?;
        progress.stage(Stage::Details);
        details(&mut conn, site_id, kind, path, None, progress).await
    }
}

/// Up to `$3` subscribers of site `$1` after id `$2`, in id order.
const SUBSCRIBER_PAGE: &str =
    "SELECT id, email, fields, unsubscribed_at IS NULL, created_at, uuid FROM subscribers
     WHERE site_id = $1 AND id > $2 ORDER BY id LIMIT $3";

/// Each kept tag of site `$1` with its holders, then the hidden tags of
/// its includes and excludes ([`corral_core::query::manual`]).
const TAG_HOLDERS: &str = "SELECT t.name_key, array_agg(st.subscriber_id ORDER BY st.subscriber_id)
     FROM tags t JOIN subscriber_tags st ON st.site_id = t.site_id AND st.tag_id = t.id
     WHERE t.site_id = $1 AND t.discarded_at IS NULL
     GROUP BY t.id, t.name_key
     UNION ALL
     SELECT chr(1) || CASE WHEN m.excluded THEN 'exclude:' ELSE 'include:' END || m.segment_id,
            array_agg(m.subscriber_id ORDER BY m.subscriber_id)
     FROM segment_manual m WHERE m.site_id = $1
     GROUP BY m.segment_id, m.excluded";

/// The subscribers of site `$1` with the ids `$2`, each with its kept tags
/// and the hidden tags of its includes and excludes.
const SUBSCRIBERS_BY_ID: &str =
    "SELECT s.id, s.email, s.fields, s.unsubscribed_at IS NULL, s.created_at, s.uuid,
     ARRAY(SELECT t.name_key FROM subscriber_tags st
     JOIN tags t ON t.site_id = st.site_id AND t.id = st.tag_id
     WHERE st.site_id = s.site_id AND st.subscriber_id = s.id
     AND t.discarded_at IS NULL
     UNION ALL
     SELECT chr(1) || CASE WHEN m.excluded THEN 'exclude:' ELSE 'include:' END || m.segment_id
     FROM segment_manual m WHERE m.site_id = s.site_id AND m.subscriber_id = s.id)
     FROM subscribers s WHERE s.site_id = $1 AND s.id = ANY($2) ORDER BY s.id";

/// Up to `$4` events of site `$1` with ids in `($2, $3]`, in id order.
const EVENT_PAGE: &str = "SELECT id, subscriber_id, occurred_at, type FROM events
     WHERE site_id = $1 AND id > $2 AND id <= $3 ORDER BY id LIMIT $4";

/// Up to `$5` events of site `$1` and type `$2` with ids in `($3, $4]`.
const DETAILS_PAGE: &str = "SELECT id, details FROM events
     WHERE site_id = $1 AND type = $2 AND id > $3 AND id <= $4 ORDER BY id LIMIT $5";

/// The site's lowest and highest ids in a table: PostgreSQL answers both
/// from the ends of the site's range of the primary key `(site_id, id)`.
const SUBSCRIBER_SPAN: &str = "SELECT min(id), max(id) FROM subscribers WHERE site_id = $1";
const EVENT_SPAN: &str = "SELECT min(id), max(id) FROM events WHERE site_id = $1";

/// The site's lowest and highest id in a table (`None`s when it has no
/// rows there).
async fn id_span(
    conn: &mut PgConnection,
    sql: &'static str,
    site_id: i64,
) -> Result<(Option<i64>, Option<i64>)> {
    Ok(sqlx::query_as(sql)
        .bind(site_id)
        .fetch_one(&mut *conn)
        .await?)
}

/// Up to [`PAGE`] of the site's events with ids in `(after, through]`.
async fn events_page(
    conn: &mut PgConnection,
    site_id: i64,
    after: i64,
    through: i64,
) -> Result<Vec<AppendedEvent>> {
    let rows: Vec<(i64, i64, i64, String)> = sqlx::query_as(EVENT_PAGE)
        .bind(site_id)
        .bind(after)
        .bind(through)
        .bind(PAGE)
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(id, subscriber_id, at, kind)| AppendedEvent {
            id,
            subscriber_id,
            kind,
            at,
        })
        .collect())
}

/// The value at `path` in the details of each of the site's events of type
/// `kind` (those with ids in `range` when given), in id order.
pub(super) async fn details(
    conn: &mut PgConnection,
    site_id: i64,
    kind: &str,
    path: &DetailPath,
    range: Option<(i64, i64)>,
    progress: &ReadProgress,
) -> Result<Vec<Val>> {
    let (mut after, through) = range.map_or((0, i64::MAX), |(first, last)| (first - 1, last));
    let mut values = Vec::new();
    loop {
        let rows: Vec<(i64, String)> = sqlx::query_as(DETAILS_PAGE)
            .bind(site_id)
            .bind(kind)
            .bind(after)
            .bind(through)
            .bind(PAGE)
            .fetch_all(&mut *conn)
            .await?;
        let Some(last) = rows.last() else { break };
        after = last.0;
        let full = rows.len() as i64 == PAGE;
        progress.advance(rows.len() as u64);
        for (id, text) in rows {
            let details: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                StorageError::ReadFailed(format!("the details of event {id} cannot be read: {e}"))
            })?;
            values.push(path.lookup(&details).map_or(Val::Missing, Val::from_json));
        }
        if !full {
            break;
        }
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::KeyPair;
    use crate::storage::{AudienceStore, Store};
    use corral_core::audience::{Email, NewEvent, SubscriberChange, TagName};
    use serde_json::Value;

    async fn fresh_store() -> Option<PgStore> {
        let url = crate::storage::testing::fresh_postgres().await?;
        Some(PgStore::open(&url).await.unwrap())
    }

    /// `n` subscribers `prefix-i@x.io`, each tagged `t` and with two events.
    async fn audience(store: &PgStore, site_id: i64, prefix: &str, n: usize) {
        let changes: Vec<SubscriberChange> = (0..n)
            .flat_map(|i| {
                let email = Email::parse(&format!("{prefix}-{i}@x.io")).unwrap();
                let mut tagged = SubscriberChange::touch(email.clone());
                tagged.add_tags.push(TagName::parse("t").unwrap());
                let events = ["$pageview", "$purchase"].map(|kind| {
                    let mut change = SubscriberChange::touch(email.clone());
                    change.event = Some(NewEvent {
                        kind: kind.into(),
                        occurred_at: 1,
                        details: r#"{"a":1}"#.into(),
                        unique_key: None,
                        amount: None,
                        currency: None,
                    });
                    change
                });
                std::iter::once(tagged).chain(events)
            })
            .collect();
        for batch in changes.chunks(900) {
            store
                .apply_changes(site_id, batch.to_vec(), 1)
                .await
                .unwrap();
        }
    }

    /// The rows each scan of a plan read: those it returned and those it
    /// read and filtered out, over all its loops.
    fn rows_read(node: &Value) -> f64 {
        let number = |key: &str| node[key].as_f64().unwrap_or(0.0);
        let own = if node["Node Type"].as_str().unwrap_or("").contains("Scan") {
            (number("Actual Rows")
                + number("Rows Removed by Filter")
                + number("Rows Removed by Index Recheck"))
                * number("Actual Loops")
        } else {
            0.0
        };
        let children = node["Plans"]
            .as_array()
            .map_or(0.0, |plans| plans.iter().map(rows_read).sum());
        own + children
    }

    async fn rows_read_by(
        store: &PgStore,
        sql: &str,
        bind: impl FnOnce(PgQuery<'_>) -> PgQuery<'_>,
    ) -> f64 {
        let explain = format!("EXPLAIN (ANALYZE, FORMAT JSON) {sql}");
        let query = bind(sqlx::query(sqlx::AssertSqlSafe(explain)));
        let row = query.fetch_one(&store.pool).await.unwrap();
        // `json`, whose binary form is its text.
        let text: String = sqlx::Row::try_get_unchecked(&row, 0).unwrap();
        let plan: Value = serde_json::from_str(&text).unwrap();
        rows_read(&plan[0]["Plan"])
    }

    type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

    /// A site of 5 subscribers beside one of 2,000, their ids interleaved:
    /// each statement of the small site's read reads about its own rows,
    /// counted in the plans PostgreSQL ran (`EXPLAIN ANALYZE`), not the
    /// neighbour's.
    #[tokio::test]
    async fn a_sites_read_reads_its_own_rows_whatever_its_neighbour_holds() {
        let Some(store) = fresh_store().await else {
            return eprintln!("skipped: CORRAL_TEST_POSTGRES names no PostgreSQL cluster");
        };
        let site = |name: &'static str| {
            let store = &store;
            async move {
                store
                    .create_site(name, name, &KeyPair::generate(), false, 0)
                    .await
                    .unwrap()
                    .id
            }
        };
        let (small, big) = (site("small").await, site("big").await);
        audience(&store, small, "early", 2).await;
        audience(&store, big, "big", 2_000).await;
        audience(&store, small, "late", 3).await;
        sqlx::query("ANALYZE").execute(&store.pool).await.unwrap();
        // 5 subscribers, 5 taggings, 10 events (5 of each type); ids span
        // the neighbour's.
        let own = 20.0;
        let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM subscribers WHERE site_id = $1")
            .bind(small)
            .fetch_all(&store.pool)
            .await
            .unwrap();
        let checks: Vec<(&str, f64)> = vec![
            (
                "subscriber page",
                rows_read_by(&store, SUBSCRIBER_PAGE, |q| {
                    q.bind(small).bind(0_i64).bind(PAGE)
                })
                .await,
            ),
            (
                "event page",
                rows_read_by(&store, EVENT_PAGE, |q| {
                    q.bind(small).bind(0_i64).bind(i64::MAX).bind(PAGE)
                })
                .await,
            ),
            (
                "tag holders",
                rows_read_by(&store, TAG_HOLDERS, |q| q.bind(small)).await,
            ),
            (
                "subscriber span",
                rows_read_by(&store, SUBSCRIBER_SPAN, |q| q.bind(small)).await,
            ),
            (
                "event span",
                rows_read_by(&store, EVENT_SPAN, |q| q.bind(small)).await,
            ),
            (
                "subscribers by id",
                rows_read_by(&store, SUBSCRIBERS_BY_ID, |q| {
                    q.bind(small).bind(ids.clone())
                })
                .await,
            ),
            (
                "details",
                rows_read_by(&store, DETAILS_PAGE, |q| {
                    q.bind(small)
                        .bind("$purchase")
                        .bind(0_i64)
                        .bind(i64::MAX)
                        .bind(PAGE)
                })
                .await,
            ),
        ];
        for (name, read) in &checks {
            assert!(*read <= own, "{name} read {read} rows: {checks:?}");
        }
        // The count itself: the whole table, read as a scan does.
        let scan = rows_read_by(
            &store,
            "SELECT count(*) FROM events WHERE site_id + 0 = $1",
            |q| q.bind(small),
        )
        .await;
        assert!(scan >= 4_000.0, "{scan}");
    }
}
