//! [`Transfer`] on SQLite: a snapshot read in one read transaction on a
//! reader connection (WAL keeps it consistent while others write), and a
//! copy written in one `BEGIN IMMEDIATE` transaction on the writer.
//!
//! Pages follow each table's primary key (`id`; `(subscriber_id, tag_id)`
//! for tags on subscribers; `site_id` for heads; the site and segment, and
//! subscriber, for the webhooks' watches and members). Rows are inserted with
//! their ids; `AUTOINCREMENT` keeps `sqlite_sequence` at the highest id ever
//! inserted, so new rows get ids above the copied ones by themselves.

use super::SqliteStore;
use crate::storage::Result;
use crate::storage::transfer::{
    ApiKeyRow, ChangeHeadRow, Cursor, EventRow, FieldRow, Rows, SegmentMemberRow, SegmentRow,
    SegmentWatchRow, SiteRow, SubscriberRow, SubscriberTagRow, Table, TablePage, TagRow, Transfer,
    TransferReader, TransferWriter, WebhookDeliveryRow, WebhookRow,
};
use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, Transaction};

type Tx = Transaction<'static, Sqlite>;

/// Rows per `INSERT`: the widest tables (11 columns) stay far under SQLite's
/// limit of 32,766 bound values a statement.
const INSERT_ROWS: usize = 1_000;

#[async_trait]
impl Transfer for SqliteStore {
    async fn begin_read(&self) -> Result<Box<dyn TransferReader>> {
        let tx = self.reader.begin().await?;
        Ok(Box::new(Reader { tx }))
    }

    async fn begin_write(&self) -> Result<Box<dyn TransferWriter>> {
        let tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        Ok(Box::new(Writer { tx }))
    }
}

struct Reader {
    tx: Tx,
}

#[async_trait]
impl TransferReader for Reader {
    async fn count(&mut self, table: Table) -> Result<u64> {
        let sql = match table {
            Table::Sites => "SELECT COUNT(*) FROM sites",
            Table::ApiKeys => "SELECT COUNT(*) FROM api_keys",
            Table::Segments => "SELECT COUNT(*) FROM segments",
            Table::Subscribers => "SELECT COUNT(*) FROM subscribers",
            Table::Tags => "SELECT COUNT(*) FROM tags",
            Table::SubscriberTags => "SELECT COUNT(*) FROM subscriber_tags",
            Table::Fields => "SELECT COUNT(*) FROM fields",
            Table::Events => "SELECT COUNT(*) FROM events",
            Table::Webhooks => "SELECT COUNT(*) FROM webhooks",
            Table::SegmentWatches => "SELECT COUNT(*) FROM segment_watches",
            Table::SegmentMembers => "SELECT COUNT(*) FROM segment_members",
            Table::WebhookDeliveries => "SELECT COUNT(*) FROM webhook_deliveries",
            Table::ChangeHeads => "SELECT COUNT(*) FROM change_heads",
        };
        let count: i64 = sqlx::query_scalar(sql).fetch_one(&mut *self.tx).await?;
        Ok(count as u64)
    }

    async fn read_page(
        &mut self,
        table: Table,
        after: Option<Cursor>,
        limit: usize,
    ) -> Result<TablePage> {
        let [a, b, c] = after.map_or([i64::MIN; 3], |c| c.0);
        let sql = match table {
            Table::Sites => {
                "SELECT id, uuid, name, demo, created_at FROM sites
                 WHERE id > $1 ORDER BY id LIMIT $3"
            }
            Table::ApiKeys => {
                "SELECT id, site_id, publishable_key, secret_hash, created_at, revoked_at
                 FROM api_keys WHERE id > $1 ORDER BY id LIMIT $3"
            }
            Table::Segments => {
                "SELECT id, site_id, name, name_key, description, query, created_at,
                        updated_at, discarded_at, version
                 FROM segments WHERE id > $1 ORDER BY id LIMIT $3"
            }
            Table::Subscribers => {
                "SELECT id, site_id, uuid, email, email_key, fields, unsubscribed_at,
                        created_at, updated_at
                 FROM subscribers WHERE id > $1 ORDER BY id LIMIT $3"
            }
            Table::Tags => {
                "SELECT id, site_id, name, name_key, created_at, discarded_at
                 FROM tags WHERE id > $1 ORDER BY id LIMIT $3"
            }
            Table::SubscriberTags => {
                "SELECT s.site_id, t.subscriber_id, t.tag_id, t.created_at
                 FROM subscriber_tags t JOIN subscribers s ON s.id = t.subscriber_id
                 WHERE (t.subscriber_id, t.tag_id) > ($1, $2)
                 ORDER BY t.subscriber_id, t.tag_id LIMIT $3"
            }
            Table::Fields => {
                "SELECT id, site_id, key, name, created_at FROM fields
                 WHERE id > $1 ORDER BY id LIMIT $3"
            }
            Table::Events => {
                "SELECT id, site_id, subscriber_id, type, occurred_at, details, unique_key,
                        amount, currency, received_at
                 FROM events WHERE id > $1 ORDER BY id LIMIT $3"
            }
            Table::Webhooks => {
                "SELECT id, site_id, url, segment_ids, events, secret, created_at, updated_at,
                        disabled_at, failing_since, leased_until
                 FROM webhooks WHERE id > $1 ORDER BY id LIMIT $3"
            }
            Table::SegmentWatches => {
                "SELECT site_id, segment_id, seq, checked_at, version, kept FROM segment_watches
                 WHERE (site_id, segment_id) > ($1, $2) ORDER BY site_id, segment_id LIMIT $3"
            }
            Table::SegmentMembers => {
                "SELECT site_id, segment_id, subscriber_id FROM segment_members
                 WHERE (site_id, segment_id, subscriber_id) > ($1, $2, $4)
                 ORDER BY site_id, segment_id, subscriber_id LIMIT $3"
            }
            Table::WebhookDeliveries => {
                "SELECT id, site_id, webhook_id, event_id, notification, created_at, attempts,
                        next_attempt_at, last_status, last_error, delivered_at
                 FROM webhook_deliveries WHERE id > $1 ORDER BY id LIMIT $3"
            }
            Table::ChangeHeads => {
                "SELECT site_id, seq, segments_seq, keys_seq FROM change_heads
                 WHERE site_id > $1 ORDER BY site_id LIMIT $3"
            }
        };
        let found = sqlx::query(sql)
            .bind(a)
            .bind(b)
            .bind(limit as i64)
            .bind(c)
            .fetch_all(&mut *self.tx)
            .await?;
        let last = match found.last() {
            Some(row) if found.len() >= limit => Some(cursor(table, row)?),
            _ => None,
        };
        let rows = rows_of(table, &found)?;
        Ok(TablePage { rows, next: last })
    }

    async fn handed_out(&mut self) -> Result<Vec<(Table, i64)>> {
        let found: Vec<(String, i64)> = sqlx::query_as("SELECT name, seq FROM sqlite_sequence")
            .fetch_all(&mut *self.tx)
            .await?;
        Ok(found
            .into_iter()
            .filter_map(|(name, seq)| {
                let table = Table::ALL.into_iter().find(|t| t.name() == name)?;
                table.has_ids().then_some((table, seq))
            })
            .collect())
    }
}

/// The key of the last row read, in the order of [`Reader::read_page`].
fn cursor(table: Table, row: &SqliteRow) -> Result<Cursor> {
    Ok(Cursor(match table {
        Table::SubscriberTags => [row.try_get("subscriber_id")?, row.try_get("tag_id")?, 0],
        Table::SegmentWatches => [row.try_get("site_id")?, row.try_get("segment_id")?, 0],
        Table::SegmentMembers => [
            row.try_get("site_id")?,
            row.try_get("segment_id")?,
            row.try_get("subscriber_id")?,
        ],
        Table::ChangeHeads => [row.try_get("site_id")?, 0, 0],
        _ => [row.try_get("id")?, 0, 0],
    }))
}

fn rows_of(table: Table, found: &[SqliteRow]) -> Result<Rows> {
    fn all<T>(found: &[SqliteRow], read: impl Fn(&SqliteRow) -> sqlx::Result<T>) -> Result<Vec<T>> {
        Ok(found.iter().map(read).collect::<sqlx::Result<_>>()?)
    }
    Ok(match table {
        Table::Sites => Rows::Sites(all(found, |r| {
            Ok(SiteRow {
                id: r.try_get("id")?,
                uuid: r.try_get("uuid")?,
                name: r.try_get("name")?,
                demo: r.try_get("demo")?,
                created_at: r.try_get("created_at")?,
            })
        })?),
        Table::ApiKeys => Rows::ApiKeys(all(found, |r| {
            Ok(ApiKeyRow {
                id: r.try_get("id")?,
                site_id: r.try_get("site_id")?,
                publishable_key: r.try_get("publishable_key")?,
                secret_hash: r.try_get("secret_hash")?,
                created_at: r.try_get("created_at")?,
                revoked_at: r.try_get("revoked_at")?,
            })
        })?),
        Table::Segments => Rows::Segments(all(found, |r| {
            Ok(SegmentRow {
                id: r.try_get("id")?,
                site_id: r.try_get("site_id")?,
                name: r.try_get("name")?,
                name_key: r.try_get("name_key")?,
                description: r.try_get("description")?,
                query: r.try_get("query")?,
                created_at: r.try_get("created_at")?,
                updated_at: r.try_get("updated_at")?,
                discarded_at: r.try_get("discarded_at")?,
                version: r.try_get("version")?,
            })
        })?),
        Table::Subscribers => Rows::Subscribers(all(found, |r| {
            Ok(SubscriberRow {
                id: r.try_get("id")?,
                site_id: r.try_get("site_id")?,
                uuid: r.try_get("uuid")?,
                email: r.try_get("email")?,
                email_key: r.try_get("email_key")?,
                fields: r.try_get("fields")?,
                unsubscribed_at: r.try_get("unsubscribed_at")?,
                created_at: r.try_get("created_at")?,
                updated_at: r.try_get("updated_at")?,
            })
        })?),
        Table::Tags => Rows::Tags(all(found, |r| {
            Ok(TagRow {
                id: r.try_get("id")?,
                site_id: r.try_get("site_id")?,
                name: r.try_get("name")?,
                name_key: r.try_get("name_key")?,
                created_at: r.try_get("created_at")?,
                discarded_at: r.try_get("discarded_at")?,
            })
        })?),
        Table::SubscriberTags => Rows::SubscriberTags(all(found, |r| {
            Ok(SubscriberTagRow {
                site_id: r.try_get("site_id")?,
                subscriber_id: r.try_get("subscriber_id")?,
                tag_id: r.try_get("tag_id")?,
                created_at: r.try_get("created_at")?,
            })
        })?),
        Table::Fields => Rows::Fields(all(found, |r| {
            Ok(FieldRow {
                id: r.try_get("id")?,
                site_id: r.try_get("site_id")?,
                key: r.try_get("key")?,
                name: r.try_get("name")?,
                created_at: r.try_get("created_at")?,
            })
        })?),
        Table::Events => Rows::Events(all(found, |r| {
            Ok(EventRow {
                id: r.try_get("id")?,
                site_id: r.try_get("site_id")?,
                subscriber_id: r.try_get("subscriber_id")?,
                kind: r.try_get("type")?,
                occurred_at: r.try_get("occurred_at")?,
                details: r.try_get("details")?,
                unique_key: r.try_get("unique_key")?,
                amount: r.try_get("amount")?,
                currency: r.try_get("currency")?,
                received_at: r.try_get("received_at")?,
            })
        })?),
        Table::Webhooks => Rows::Webhooks(all(found, |r| {
            Ok(WebhookRow {
                id: r.try_get("id")?,
                site_id: r.try_get("site_id")?,
                url: r.try_get("url")?,
                segment_ids: r.try_get("segment_ids")?,
                events: r.try_get("events")?,
                secret: r.try_get("secret")?,
                created_at: r.try_get("created_at")?,
                updated_at: r.try_get("updated_at")?,
                disabled_at: r.try_get("disabled_at")?,
                failing_since: r.try_get("failing_since")?,
                leased_until: r.try_get("leased_until")?,
            })
        })?),
        Table::SegmentWatches => Rows::SegmentWatches(all(found, |r| {
            Ok(SegmentWatchRow {
                site_id: r.try_get("site_id")?,
                segment_id: r.try_get("segment_id")?,
                seq: r.try_get("seq")?,
                checked_at: r.try_get("checked_at")?,
                version: r.try_get("version")?,
                kept: r.try_get("kept")?,
            })
        })?),
        Table::SegmentMembers => Rows::SegmentMembers(all(found, |r| {
            Ok(SegmentMemberRow {
                site_id: r.try_get("site_id")?,
                segment_id: r.try_get("segment_id")?,
                subscriber_id: r.try_get("subscriber_id")?,
            })
        })?),
        Table::WebhookDeliveries => Rows::WebhookDeliveries(all(found, |r| {
            Ok(WebhookDeliveryRow {
                id: r.try_get("id")?,
                site_id: r.try_get("site_id")?,
                webhook_id: r.try_get("webhook_id")?,
                event_id: r.try_get("event_id")?,
                notification: r.try_get("notification")?,
                created_at: r.try_get("created_at")?,
                attempts: r.try_get("attempts")?,
                next_attempt_at: r.try_get("next_attempt_at")?,
                last_status: r.try_get("last_status")?,
                last_error: r.try_get("last_error")?,
                delivered_at: r.try_get("delivered_at")?,
            })
        })?),
        Table::ChangeHeads => Rows::ChangeHeads(all(found, |r| {
            Ok(ChangeHeadRow {
                site_id: r.try_get("site_id")?,
                seq: r.try_get("seq")?,
                segments_seq: r.try_get("segments_seq")?,
                keys_seq: r.try_get("keys_seq")?,
            })
        })?),
    })
}

struct Writer {
    tx: Tx,
}

#[async_trait]
impl TransferWriter for Writer {
    async fn count_sites(&mut self) -> Result<u64> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sites")
            .fetch_one(&mut *self.tx)
            .await?;
        Ok(count as u64)
    }

    async fn clear(&mut self) -> Result<()> {
        // Children first, for the foreign keys. `sqlite_sequence` is set
        // by `finish`.
        for sql in [
            "DELETE FROM change_log",
            "DELETE FROM change_heads",
            "DELETE FROM webhook_deliveries",
            "DELETE FROM segment_members",
            "DELETE FROM segment_watches",
            "DELETE FROM webhooks",
            "DELETE FROM events",
            "DELETE FROM subscriber_tags",
            "DELETE FROM fields",
            "DELETE FROM tags",
            "DELETE FROM subscribers",
            "DELETE FROM segments",
            "DELETE FROM api_keys",
            "DELETE FROM sites",
        ] {
            sqlx::query(sql).execute(&mut *self.tx).await?;
        }
        Ok(())
    }

    async fn write(&mut self, rows: &Rows) -> Result<()> {
        match rows {
            Rows::Sites(rows) => insert_sites(&mut self.tx, rows).await,
            Rows::ApiKeys(rows) => insert_api_keys(&mut self.tx, rows).await,
            Rows::Segments(rows) => insert_segments(&mut self.tx, rows).await,
            Rows::Subscribers(rows) => insert_subscribers(&mut self.tx, rows).await,
            Rows::Tags(rows) => insert_tags(&mut self.tx, rows).await,
            Rows::SubscriberTags(rows) => insert_subscriber_tags(&mut self.tx, rows).await,
            Rows::Fields(rows) => insert_fields(&mut self.tx, rows).await,
            Rows::Events(rows) => insert_events(&mut self.tx, rows).await,
            Rows::Webhooks(rows) => insert_webhooks(&mut self.tx, rows).await,
            Rows::SegmentWatches(rows) => insert_segment_watches(&mut self.tx, rows).await,
            Rows::SegmentMembers(rows) => insert_segment_members(&mut self.tx, rows).await,
            Rows::WebhookDeliveries(rows) => insert_webhook_deliveries(&mut self.tx, rows).await,
            Rows::ChangeHeads(rows) => insert_change_heads(&mut self.tx, rows).await,
        }
    }

    async fn finish(self: Box<Self>, handed_out: &[(Table, i64)]) -> Result<()> {
        let mut tx = self.tx;
        // AUTOINCREMENT already follows the ids inserted, but the source
        // may have handed out more, and after a `clear` the target's own
        // count may be higher: each is set to the source's.
        for table in Table::ALL.into_iter().filter(|t| t.has_ids()) {
            let source = handed_out
                .iter()
                .find(|(t, _)| *t == table)
                .map_or(0, |(_, high)| *high);
            sqlx::query(
                "INSERT INTO sqlite_sequence (name, seq)
                 SELECT $1, 0 WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = $1)",
            )
            .bind(table.name())
            .execute(&mut *tx)
            .await?;
            let mut update = QueryBuilder::<Sqlite>::new("UPDATE sqlite_sequence SET seq = MAX(");
            update
                .push_bind(source)
                .push(", COALESCE((SELECT MAX(id) FROM ")
                .push(table.name())
                .push("), 0)) WHERE name = ")
                .push_bind(table.name());
            update.build().execute(&mut *tx).await?;
        }
        sqlx::query("UPDATE meta SET value = lower(hex(randomblob(16))) WHERE key = 'database_id'")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

async fn insert_sites(tx: &mut Tx, rows: &[SiteRow]) -> Result<()> {
    for chunk in rows.chunks(INSERT_ROWS) {
        let mut insert =
            QueryBuilder::<Sqlite>::new("INSERT INTO sites (id, uuid, name, demo, created_at) ");
        insert.push_values(chunk, |mut b, r| {
            b.push_bind(r.id)
                .push_bind(r.uuid.clone())
                .push_bind(r.name.clone())
                .push_bind(r.demo)
                .push_bind(r.created_at);
        });
        insert.build().execute(&mut **tx).await?;
    }
    Ok(())
}

async fn insert_api_keys(tx: &mut Tx, rows: &[ApiKeyRow]) -> Result<()> {
    for chunk in rows.chunks(INSERT_ROWS) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO api_keys (id, site_id, publishable_key, secret_hash, created_at,
                                   revoked_at) ",
        );
        insert.push_values(chunk, |mut b, r| {
            b.push_bind(r.id)
                .push_bind(r.site_id)
                .push_bind(r.publishable_key.clone())
                .push_bind(r.secret_hash.clone())
                .push_bind(r.created_at)
                .push_bind(r.revoked_at);
        });
        insert.build().execute(&mut **tx).await?;
    }
    Ok(())
}

async fn insert_segments(tx: &mut Tx, rows: &[SegmentRow]) -> Result<()> {
    for chunk in rows.chunks(INSERT_ROWS) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO segments (id, site_id, name, name_key, description, query, created_at,
                                   updated_at, discarded_at, version) ",
        );
        insert.push_values(chunk, |mut b, r| {
            b.push_bind(r.id)
                .push_bind(r.site_id)
                .push_bind(r.name.clone())
                .push_bind(r.name_key.clone())
                .push_bind(r.description.clone())
                .push_bind(r.query.clone())
                .push_bind(r.created_at)
                .push_bind(r.updated_at)
                .push_bind(r.discarded_at)
                .push_bind(r.version);
        });
        insert.build().execute(&mut **tx).await?;
    }
    Ok(())
}

async fn insert_subscribers(tx: &mut Tx, rows: &[SubscriberRow]) -> Result<()> {
    for chunk in rows.chunks(INSERT_ROWS) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO subscribers (id, site_id, uuid, email, email_key, fields,
                                      unsubscribed_at, created_at, updated_at) ",
        );
        insert.push_values(chunk, |mut b, r| {
            b.push_bind(r.id)
                .push_bind(r.site_id)
                .push_bind(r.uuid.clone())
                .push_bind(r.email.clone())
                .push_bind(r.email_key.clone())
                .push_bind(r.fields.clone())
                .push_bind(r.unsubscribed_at)
                .push_bind(r.created_at)
                .push_bind(r.updated_at);
        });
        insert.build().execute(&mut **tx).await?;
    }
    Ok(())
}

async fn insert_tags(tx: &mut Tx, rows: &[TagRow]) -> Result<()> {
    for chunk in rows.chunks(INSERT_ROWS) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO tags (id, site_id, name, name_key, created_at, discarded_at) ",
        );
        insert.push_values(chunk, |mut b, r| {
            b.push_bind(r.id)
                .push_bind(r.site_id)
                .push_bind(r.name.clone())
                .push_bind(r.name_key.clone())
                .push_bind(r.created_at)
                .push_bind(r.discarded_at);
        });
        insert.build().execute(&mut **tx).await?;
    }
    Ok(())
}

async fn insert_subscriber_tags(tx: &mut Tx, rows: &[SubscriberTagRow]) -> Result<()> {
    for chunk in rows.chunks(INSERT_ROWS) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO subscriber_tags (subscriber_id, tag_id, created_at) ",
        );
        insert.push_values(chunk, |mut b, r| {
            b.push_bind(r.subscriber_id)
                .push_bind(r.tag_id)
                .push_bind(r.created_at);
        });
        insert.build().execute(&mut **tx).await?;
    }
    Ok(())
}

async fn insert_fields(tx: &mut Tx, rows: &[FieldRow]) -> Result<()> {
    for chunk in rows.chunks(INSERT_ROWS) {
        let mut insert =
            QueryBuilder::<Sqlite>::new("INSERT INTO fields (id, site_id, key, name, created_at) ");
        insert.push_values(chunk, |mut b, r| {
            b.push_bind(r.id)
                .push_bind(r.site_id)
                .push_bind(r.key.clone())
                .push_bind(r.name.clone())
                .push_bind(r.created_at);
        });
        insert.build().execute(&mut **tx).await?;
    }
    Ok(())
}

async fn insert_events(tx: &mut Tx, rows: &[EventRow]) -> Result<()> {
    for chunk in rows.chunks(INSERT_ROWS) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO events (id, site_id, subscriber_id, type, occurred_at, details,
                                 unique_key, amount, currency, received_at) ",
        );
        insert.push_values(chunk, |mut b, r| {
            b.push_bind(r.id)
                .push_bind(r.site_id)
                .push_bind(r.subscriber_id)
                .push_bind(r.kind.clone())
                .push_bind(r.occurred_at)
                .push_bind(r.details.clone())
                .push_bind(r.unique_key.clone())
                .push_bind(r.amount)
                .push_bind(r.currency.clone())
                .push_bind(r.received_at);
        });
        insert.build().execute(&mut **tx).await?;
    }
    Ok(())
}

async fn insert_webhooks(tx: &mut Tx, rows: &[WebhookRow]) -> Result<()> {
    for chunk in rows.chunks(INSERT_ROWS) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO webhooks (id, site_id, url, segment_ids, events, secret, created_at,
                                   updated_at, disabled_at, failing_since, leased_until) ",
        );
        insert.push_values(chunk, |mut b, r| {
            b.push_bind(r.id)
                .push_bind(r.site_id)
                .push_bind(r.url.clone())
                .push_bind(r.segment_ids.clone())
                .push_bind(r.events.clone())
                .push_bind(r.secret.clone())
                .push_bind(r.created_at)
                .push_bind(r.updated_at)
                .push_bind(r.disabled_at)
                .push_bind(r.failing_since)
                .push_bind(r.leased_until);
        });
        insert.build().execute(&mut **tx).await?;
    }
    Ok(())
}

async fn insert_segment_watches(tx: &mut Tx, rows: &[SegmentWatchRow]) -> Result<()> {
    for chunk in rows.chunks(INSERT_ROWS) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO segment_watches (site_id, segment_id, seq, checked_at, version, kept) ",
        );
        insert.push_values(chunk, |mut b, r| {
            b.push_bind(r.site_id)
                .push_bind(r.segment_id)
                .push_bind(r.seq)
                .push_bind(r.checked_at)
                .push_bind(r.version)
                .push_bind(r.kept);
        });
        insert.build().execute(&mut **tx).await?;
    }
    Ok(())
}

async fn insert_segment_members(tx: &mut Tx, rows: &[SegmentMemberRow]) -> Result<()> {
    for chunk in rows.chunks(INSERT_ROWS) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO segment_members (site_id, segment_id, subscriber_id) ",
        );
        insert.push_values(chunk, |mut b, r| {
            b.push_bind(r.site_id)
                .push_bind(r.segment_id)
                .push_bind(r.subscriber_id);
        });
        insert.build().execute(&mut **tx).await?;
    }
    Ok(())
}

async fn insert_webhook_deliveries(tx: &mut Tx, rows: &[WebhookDeliveryRow]) -> Result<()> {
    for chunk in rows.chunks(INSERT_ROWS) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO webhook_deliveries (id, site_id, webhook_id, event_id, notification,
                                             created_at, attempts, next_attempt_at, last_status,
                                             last_error, delivered_at) ",
        );
        insert.push_values(chunk, |mut b, r| {
            b.push_bind(r.id)
                .push_bind(r.site_id)
                .push_bind(r.webhook_id)
                .push_bind(r.event_id.clone())
                .push_bind(r.notification.clone())
                .push_bind(r.created_at)
                .push_bind(r.attempts)
                .push_bind(r.next_attempt_at)
                .push_bind(r.last_status)
                .push_bind(r.last_error.clone())
                .push_bind(r.delivered_at);
        });
        insert.build().execute(&mut **tx).await?;
    }
    Ok(())
}

async fn insert_change_heads(tx: &mut Tx, rows: &[ChangeHeadRow]) -> Result<()> {
    for chunk in rows.chunks(INSERT_ROWS) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO change_heads (site_id, seq, segments_seq, keys_seq) ",
        );
        insert.push_values(chunk, |mut b, r| {
            b.push_bind(r.site_id)
                .push_bind(r.seq)
                .push_bind(r.segments_seq)
                .push_bind(r.keys_seq);
        });
        insert.build().execute(&mut **tx).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table added to the schema is either copied or named here as
    /// deliberately left behind: a copy never drops data silently.
    #[tokio::test]
    async fn every_table_of_the_schema_is_copied_or_deliberately_left() {
        const LEFT: [&str; 4] = ["_sqlx_migrations", "sqlite_sequence", "change_log", "meta"];
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("t.db").to_str().unwrap())
            .await
            .unwrap();
        let mut tables: Vec<String> =
            sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
                .fetch_all(&store.reader)
                .await
                .unwrap();
        tables.retain(|name| !LEFT.contains(&name.as_str()));
        tables.sort();
        let mut copied: Vec<&str> = Table::ALL.iter().map(|t| t.name()).collect();
        copied.sort();
        assert_eq!(tables, copied);
    }
}
