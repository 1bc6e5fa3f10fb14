//! [`Transfer`] on SQLite: a snapshot read in one read transaction on a
//! reader connection (WAL keeps it consistent while others write), and a
//! copy written in one `BEGIN IMMEDIATE` transaction on the writer.
//!
//! Pages follow each table's primary key (`id`; `(subscriber_id, tag_id)`
//! for tags on subscribers; `site_id` for heads; the site and segment, and
//! subscriber, for the webhooks' watches and members, and for hand-made
//! includes and excludes (with the list between); the membership
//! journal's keys for its tables, `id` for its transitions). Rows are
//! inserted with their ids; `AUTOINCREMENT` keeps `sqlite_sequence` at the
//! highest id ever inserted, so new rows get ids above the copied ones by
//! themselves.

use super::SqliteStore;
use crate::storage::sql::transfer::{HandedOut, Reader};
use crate::storage::transfer::{
    ApiKeyRow, AuditLogRow, ChangeHeadRow, EventRow, FieldRow, JournalDayRow, JournalMemberRow,
    JournalSiteRow, Rows, SegmentJournalRow, SegmentManualRow, SegmentMemberRow, SegmentRow,
    SegmentTransitionRow, SegmentVersionRow, SegmentWatchRow, SiteRow, SubscriberRow,
    SubscriberTagRow, Table, TagRow, Transfer, TransferReader, TransferWriter, WebhookDeliveryRow,
    WebhookRow,
};
use crate::storage::{Result, sql};
use async_trait::async_trait;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection, Transaction};

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

/// `AUTOINCREMENT` keeps each table's highest id ever handed out.
#[async_trait]
impl HandedOut for Sqlite {
    async fn handed_out(conn: &mut SqliteConnection) -> Result<Vec<(Table, i64)>> {
        let found: Vec<(String, i64)> = sqlx::query_as("SELECT name, seq FROM sqlite_sequence")
            .fetch_all(conn)
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

struct Writer {
    tx: Tx,
}

#[async_trait]
impl TransferWriter for Writer {
    async fn count_sites(&mut self) -> Result<u64> {
        sql::transfer::count_sites(&mut *self.tx).await
    }

    async fn clear(&mut self) -> Result<()> {
        // Children first, for the foreign keys. `sqlite_sequence` is set
        // by `finish`.
        for sql in [
            // Not copied, but a replaced database's imports are over.
            "DELETE FROM imports",
            "DELETE FROM change_log",
            "DELETE FROM change_heads",
            "DELETE FROM segment_transitions",
            // Not copied: made again from the transitions by a sweep.
            "DELETE FROM journal_checkpoints",
            "DELETE FROM journal_members",
            "DELETE FROM journal_days",
            "DELETE FROM journal_sites",
            "DELETE FROM segment_journals",
            "DELETE FROM audit_log",
            "DELETE FROM segment_manual",
            "DELETE FROM segment_versions",
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
            Rows::SegmentVersions(rows) => insert_segment_versions(&mut self.tx, rows).await,
            Rows::SegmentManual(rows) => insert_segment_manual(&mut self.tx, rows).await,
            Rows::AuditLog(rows) => insert_audit_log(&mut self.tx, rows).await,
            Rows::SegmentJournals(rows) => insert_segment_journals(&mut self.tx, rows).await,
            Rows::JournalSites(rows) => insert_journal_sites(&mut self.tx, rows).await,
            Rows::JournalDays(rows) => insert_journal_days(&mut self.tx, rows).await,
            Rows::JournalMembers(rows) => insert_journal_members(&mut self.tx, rows).await,
            Rows::SegmentTransitions(rows) => insert_segment_transitions(&mut self.tx, rows).await,
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
            "INSERT INTO segment_watches
                 (site_id, segment_id, seq, checked_at, version, kept, after_at, after_id) ",
        );
        insert.push_values(chunk, |mut b, r| {
            b.push_bind(r.site_id)
                .push_bind(r.segment_id)
                .push_bind(r.seq)
                .push_bind(r.checked_at)
                .push_bind(r.version)
                .push_bind(r.kept)
                .push_bind(r.after_at)
                .push_bind(r.after_id);
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

async fn insert_segment_versions(tx: &mut Tx, rows: &[SegmentVersionRow]) -> Result<()> {
    for chunk in rows.chunks(INSERT_ROWS) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO segment_versions (site_id, segment_id, version, name, description,
                                           query, saved_at, saved_by) ",
        );
        insert.push_values(chunk, |mut b, r| {
            b.push_bind(r.site_id)
                .push_bind(r.segment_id)
                .push_bind(r.version)
                .push_bind(r.name.clone())
                .push_bind(r.description.clone())
                .push_bind(r.query.clone())
                .push_bind(r.saved_at)
                .push_bind(r.saved_by.clone());
        });
        insert.build().execute(&mut **tx).await?;
    }
    Ok(())
}

async fn insert_segment_manual(tx: &mut Tx, rows: &[SegmentManualRow]) -> Result<()> {
    for chunk in rows.chunks(INSERT_ROWS) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO segment_manual (site_id, segment_id, excluded, subscriber_id,
                                         added_at) ",
        );
        insert.push_values(chunk, |mut b, r| {
            b.push_bind(r.site_id)
                .push_bind(r.segment_id)
                .push_bind(r.excluded)
                .push_bind(r.subscriber_id)
                .push_bind(r.added_at);
        });
        insert.build().execute(&mut **tx).await?;
    }
    Ok(())
}

async fn insert_audit_log(tx: &mut Tx, rows: &[AuditLogRow]) -> Result<()> {
    for chunk in rows.chunks(INSERT_ROWS) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO audit_log (id, site_id, at, actor, action, subject, details) ",
        );
        insert.push_values(chunk, |mut b, r| {
            b.push_bind(r.id)
                .push_bind(r.site_id)
                .push_bind(r.at)
                .push_bind(r.actor.clone())
                .push_bind(r.action.clone())
                .push_bind(r.subject.clone())
                .push_bind(r.details.clone());
        });
        insert.build().execute(&mut **tx).await?;
    }
    Ok(())
}

async fn insert_segment_journals(tx: &mut Tx, rows: &[SegmentJournalRow]) -> Result<()> {
    for chunk in rows.chunks(INSERT_ROWS) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO segment_journals (site_id, segment_id, version, kept, begins_at,
                                           members) ",
        );
        insert.push_values(chunk, |mut b, r| {
            b.push_bind(r.site_id)
                .push_bind(r.segment_id)
                .push_bind(r.version)
                .push_bind(r.kept)
                .push_bind(r.begins_at)
                .push_bind(r.members);
        });
        insert.build().execute(&mut **tx).await?;
    }
    Ok(())
}

async fn insert_journal_sites(tx: &mut Tx, rows: &[JournalSiteRow]) -> Result<()> {
    for chunk in rows.chunks(INSERT_ROWS) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO journal_sites (site_id, last_at, swept_at, baselines) ",
        );
        insert.push_values(chunk, |mut b, r| {
            b.push_bind(r.site_id)
                .push_bind(r.last_at)
                .push_bind(r.swept_at)
                .push_bind(r.baselines);
        });
        insert.build().execute(&mut **tx).await?;
    }
    Ok(())
}

async fn insert_journal_days(tx: &mut Tx, rows: &[JournalDayRow]) -> Result<()> {
    for chunk in rows.chunks(INSERT_ROWS) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO journal_days (site_id, segment_id, day, added, removed) ",
        );
        insert.push_values(chunk, |mut b, r| {
            b.push_bind(r.site_id)
                .push_bind(r.segment_id)
                .push_bind(r.day)
                .push_bind(r.added)
                .push_bind(r.removed);
        });
        insert.build().execute(&mut **tx).await?;
    }
    Ok(())
}

async fn insert_journal_members(tx: &mut Tx, rows: &[JournalMemberRow]) -> Result<()> {
    for chunk in rows.chunks(INSERT_ROWS) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO journal_members (site_id, subscriber_id, segments) ",
        );
        insert.push_values(chunk, |mut b, r| {
            b.push_bind(r.site_id)
                .push_bind(r.subscriber_id)
                .push_bind(r.segments.clone());
        });
        insert.build().execute(&mut **tx).await?;
    }
    Ok(())
}

async fn insert_segment_transitions(tx: &mut Tx, rows: &[SegmentTransitionRow]) -> Result<()> {
    for chunk in rows.chunks(INSERT_ROWS) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO segment_transitions (id, site_id, segment_id, subscriber_id, at, added,
                                              reason) ",
        );
        insert.push_values(chunk, |mut b, r| {
            b.push_bind(r.id)
                .push_bind(r.site_id)
                .push_bind(r.segment_id)
                .push_bind(r.subscriber_id)
                .push_bind(r.at)
                .push_bind(r.added)
                .push_bind(r.reason);
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
    /// deliberately left behind: a copy never drops data silently. (An
    /// import's progress stays with the database its batches went to: it is
    /// resumed there. Membership checkpoints are made again from the
    /// transitions by the target's sweep.)
    #[tokio::test]
    async fn every_table_of_the_schema_is_copied_or_deliberately_left() {
        const LEFT: [&str; 6] = [
            "_sqlx_migrations",
            "sqlite_sequence",
            "change_log",
            "meta",
            "imports",
            "journal_checkpoints",
        ];
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
