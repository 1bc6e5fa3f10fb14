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

use super::{PgStore, Tx, segments_in};
use crate::query::ast::DetailPath;
use crate::query::eval::{AudienceBuilder, SubscriberRow, Val};
use crate::segment::Listing;
use crate::storage::changes::{Changes, EventRow, Loaded, SubscriberState};
use crate::storage::{Position, Result, StorageError};
use sqlx::PgConnection;

/// Rows read per statement when reading a whole table.
const PAGE: i64 = 50_000;

/// `(id, email, fields, subscribed, created_at)`.
type SubscriberTuple = (i64, String, String, bool, i64);

fn subscriber_row(
    (id, email, fields, subscribed, created_at): SubscriberTuple,
) -> Result<SubscriberRow> {
    let fields = serde_json::from_str(&fields).map_err(|e| {
        StorageError::ReadFailed(format!("the fields of subscriber {id} cannot be read: {e}"))
    })?;
    Ok(SubscriberRow {
        id,
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

    pub(super) async fn read_snapshot(&self, site_id: i64) -> Result<Loaded> {
        let started = std::time::Instant::now();
        let mut tx = self.begin_snapshot().await?;
        let seq = head_seq(&mut tx, site_id).await?;
        let mut builder = AudienceBuilder::new();
        let mut after = 0;
        loop {
            let rows: Vec<SubscriberTuple> = sqlx::query_as(
                "SELECT id, email, fields, unsubscribed_at IS NULL, created_at FROM subscribers
                 WHERE site_id = $1 AND id > $2 ORDER BY id LIMIT $3",
            )
            .bind(site_id)
            .bind(after)
            .bind(PAGE)
            .fetch_all(&mut *tx)
            .await?;
            let Some(last) = rows.last() else { break };
            after = last.0;
            let full = rows.len() as i64 == PAGE;
            for row in rows {
                builder.subscriber(subscriber_row(row)?);
            }
            if !full {
                break;
            }
        }
        let tags: Vec<(String, Vec<i64>)> = sqlx::query_as(
            "SELECT t.name_key, array_agg(st.subscriber_id ORDER BY st.subscriber_id)
             FROM tags t JOIN subscriber_tags st ON st.site_id = t.site_id AND st.tag_id = t.id
             WHERE t.site_id = $1 AND t.discarded_at IS NULL
             GROUP BY t.id, t.name_key",
        )
        .bind(site_id)
        .fetch_all(&mut *tx)
        .await?;
        for (name, holders) in tags {
            for id in holders {
                builder.tag(id, &name);
            }
        }
        let mut after = 0;
        loop {
            let rows = events_page(&mut tx, site_id, after, i64::MAX).await?;
            let Some(last) = rows.last() else { break };
            after = last.id;
            let full = rows.len() as i64 == PAGE;
            for row in rows {
                builder.event(row.subscriber_id, &row.kind, row.at);
                builder.events_through(row.id);
            }
            if !full {
                break;
            }
        }
        let segments = segments_in(&mut tx, site_id, Listing::Kept).await?;
        tx.commit().await?;
        let audience = builder.build();
        tracing::debug!(
            site_id,
            seq,
            ms = started.elapsed().as_millis() as u64,
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
        let mut tx = self.begin_snapshot().await?;
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

        let mut subscribers = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(PAGE as usize) {
            let rows: Vec<(i64, String, String, bool, i64, Vec<String>)> = sqlx::query_as(
                "SELECT s.id, s.email, s.fields, s.unsubscribed_at IS NULL, s.created_at,
                        ARRAY(SELECT t.name_key FROM subscriber_tags st
                              JOIN tags t ON t.site_id = st.site_id AND t.id = st.tag_id
                              WHERE st.site_id = s.site_id AND st.subscriber_id = s.id
                                AND t.discarded_at IS NULL)
                 FROM subscribers s WHERE s.site_id = $1 AND s.id = ANY($2) ORDER BY s.id",
            )
            .bind(site_id)
            .bind(chunk)
            .fetch_all(&mut *tx)
            .await?;
            for (id, email, fields, subscribed, created_at, tags) in rows {
                subscribers.push(SubscriberState {
                    row: subscriber_row((id, email, fields, subscribed, created_at))?,
                    tags,
                });
            }
        }

        let mut new_events = Vec::new();
        let mut details = Vec::new();
        if let Some((first, last)) = events {
            let first = first.max(since.events_through + 1);
            let mut after = first - 1;
            loop {
                let rows = events_page(&mut tx, site_id, after, last).await?;
                let Some(row) = rows.last() else { break };
                after = row.id;
                let full = rows.len() as i64 == PAGE;
                new_events.extend(rows);
                if !full {
                    break;
                }
            }
            for (kind, path) in columns {
                if !new_events.iter().any(|e| &e.kind == kind) {
                    continue;
                }
                let values =
                    self::details(&mut tx, site_id, kind, path, Some((first, last))).await?;
                details.push(((kind.clone(), path.clone()), values));
            }
        }
        let segments = if segments_changed {
            Some(segments_in(&mut tx, site_id, Listing::Kept).await?)
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
}

/// The site's newest position (0 before any entry).
async fn head_seq(conn: &mut PgConnection, site_id: i64) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT COALESCE((SELECT seq FROM change_heads WHERE site_id = $1), 0)")
            .bind(site_id)
            .fetch_one(&mut *conn)
            .await?,
    )
}

/// Up to [`PAGE`] of the site's events with ids in `(after, through]`.
async fn events_page(
    conn: &mut PgConnection,
    site_id: i64,
    after: i64,
    through: i64,
) -> Result<Vec<EventRow>> {
    let rows: Vec<(i64, i64, i64, String)> = sqlx::query_as(
        "SELECT id, subscriber_id, occurred_at, type FROM events
         WHERE site_id = $1 AND id > $2 AND id <= $3 ORDER BY id LIMIT $4",
    )
    .bind(site_id)
    .bind(after)
    .bind(through)
    .bind(PAGE)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, subscriber_id, at, kind)| EventRow {
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
) -> Result<Vec<Val>> {
    let (mut after, through) = range.map_or((0, i64::MAX), |(first, last)| (first - 1, last));
    let mut values = Vec::new();
    loop {
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT id, details FROM events
             WHERE site_id = $1 AND type = $2 AND id > $3 AND id <= $4 ORDER BY id LIMIT $5",
        )
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
