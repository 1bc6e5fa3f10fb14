//! Reading a database's tables for `corral copy`, as both backends do it: a
//! table's count, and a page of its rows in its key order, read into the
//! plain rows of [`crate::storage::transfer`]. Each database pages its
//! tables by its own primary keys (SQLite's are ids, PostgreSQL's lead with
//! the site), so the page statements and the cursors they continue from are
//! written for each; the rows are read alike, by one [`Reader`] over either
//! driver's read transaction. What stays each backend's own: how the highest
//! ids handed out are found ([`HandedOut`]), and writing a copy (multi-row
//! inserts against `UNNEST`, sequences).

use super::{Conn, Dialect, Statement};
use crate::sql;
use crate::storage::Result;
use crate::storage::transfer::{Cursor, Rows, Table, TablePage, TransferReader};
use async_trait::async_trait;

/// A snapshot of the database for `corral copy`: one read transaction of
/// either driver, begun by the backend as its database reads a consistent
/// snapshot.
pub struct Reader<DB: sqlx::Database> {
    pub tx: sqlx::Transaction<'static, DB>,
}

/// How a database tells the highest id handed out in each table that has
/// ids (see [`TransferReader::handed_out`]).
#[async_trait]
pub trait HandedOut: sqlx::Database {
    async fn handed_out(conn: &mut Self::Connection) -> Result<Vec<(Table, i64)>>;
}

#[async_trait]
impl<DB> TransferReader for Reader<DB>
where
    DB: HandedOut,
    DB::Connection: Conn,
{
    async fn count(&mut self, table: Table) -> Result<u64> {
        count(&mut *self.tx, table).await
    }

    async fn read_page(
        &mut self,
        table: Table,
        after: Option<Cursor>,
        limit: usize,
    ) -> Result<TablePage> {
        read_page(&mut *self.tx, table, after, limit).await
    }

    async fn handed_out(&mut self) -> Result<Vec<(Table, i64)>> {
        DB::handed_out(&mut *self.tx).await
    }
}

/// How many rows the table holds, as the connection sees it.
pub async fn count(conn: &mut impl Conn, table: Table) -> Result<u64> {
    let text = match table {
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
        Table::SegmentVersions => "SELECT COUNT(*) FROM segment_versions",
        Table::SegmentManual => "SELECT COUNT(*) FROM segment_manual",
        Table::AuditLog => "SELECT COUNT(*) FROM audit_log",
        Table::SegmentJournals => "SELECT COUNT(*) FROM segment_journals",
        Table::JournalSites => "SELECT COUNT(*) FROM journal_sites",
        Table::JournalDays => "SELECT COUNT(*) FROM journal_days",
        Table::JournalMembers => "SELECT COUNT(*) FROM journal_members",
        Table::SegmentTransitions => "SELECT COUNT(*) FROM segment_transitions",
        Table::ChangeHeads => "SELECT COUNT(*) FROM change_heads",
    };
    let (count,): (i64,) = conn.one(sql!(text)).await?;
    Ok(count as u64)
}

/// The columns of each table's rows, as a literal for `concat!`.
macro_rules! columns {
    (Sites) => {
        "id, uuid, name, demo, created_at"
    };
    (ApiKeys) => {
        "id, site_id, publishable_key, secret_hash, created_at, revoked_at"
    };
    (Segments) => {
        "id, site_id, name, name_key, description, query, created_at, updated_at, discarded_at,
         version"
    };
    (Subscribers) => {
        "id, site_id, uuid, email, email_key, fields, unsubscribed_at, created_at, updated_at"
    };
    (Tags) => {
        "id, site_id, name, name_key, created_at, discarded_at"
    };
    (Fields) => {
        "id, site_id, key, name, created_at"
    };
    (Events) => {
        "id, site_id, subscriber_id, type, occurred_at, details, unique_key, amount, currency,
         received_at"
    };
    (Webhooks) => {
        "id, site_id, url, segment_ids, events, secret, created_at, updated_at, disabled_at,
         failing_since, leased_until"
    };
    (WebhookDeliveries) => {
        "id, site_id, webhook_id, event_id, notification, created_at, attempts,
         next_attempt_at, last_status, last_error, delivered_at"
    };
    (AuditLog) => {
        "id, site_id, at, actor, action, subject, details"
    };
    (SegmentTransitions) => {
        "id, site_id, segment_id, subscriber_id, at, added, reason"
    };
}

/// The statement of a page of `table` in the key order of the database,
/// and how many parts its key has: the statement continues after the key
/// `$1`…`$k` and reads at most `$k+1` rows.
fn page_statement(dialect: Dialect, table: Table) -> (&'static str, usize) {
    // A table keyed by id on SQLite, by (site_id, id) on PostgreSQL.
    macro_rules! by_id {
        ($table:ident, $name:literal) => {
            match dialect {
                Dialect::Sqlite => (
                    concat!(
                        "SELECT ",
                        columns!($table),
                        " FROM ",
                        $name,
                        " WHERE id > $1 ORDER BY id LIMIT $2"
                    ),
                    1,
                ),
                Dialect::Postgres => (
                    concat!(
                        "SELECT ",
                        columns!($table),
                        " FROM ",
                        $name,
                        " WHERE (site_id, id) > ($1, $2) ORDER BY site_id, id LIMIT $3"
                    ),
                    2,
                ),
            }
        };
    }
    match table {
        Table::Sites => (
            concat!(
                "SELECT ",
                columns!(Sites),
                " FROM sites WHERE id > $1 ORDER BY id LIMIT $2"
            ),
            1,
        ),
        Table::ApiKeys => (
            concat!(
                "SELECT ",
                columns!(ApiKeys),
                " FROM api_keys WHERE id > $1 ORDER BY id LIMIT $2"
            ),
            1,
        ),
        Table::Segments => by_id!(Segments, "segments"),
        Table::Subscribers => by_id!(Subscribers, "subscribers"),
        Table::Tags => by_id!(Tags, "tags"),
        Table::Fields => by_id!(Fields, "fields"),
        Table::Events => by_id!(Events, "events"),
        Table::Webhooks => by_id!(Webhooks, "webhooks"),
        Table::WebhookDeliveries => by_id!(WebhookDeliveries, "webhook_deliveries"),
        Table::AuditLog => by_id!(AuditLog, "audit_log"),
        Table::SegmentTransitions => by_id!(SegmentTransitions, "segment_transitions"),
        Table::SegmentJournals => (
            "SELECT site_id, segment_id, version, kept, begins_at, members FROM segment_journals
             WHERE (site_id, segment_id) > ($1, $2) ORDER BY site_id, segment_id LIMIT $3",
            2,
        ),
        Table::JournalSites => (
            "SELECT site_id, last_at, swept_at, baselines FROM journal_sites
             WHERE site_id > $1 ORDER BY site_id LIMIT $2",
            1,
        ),
        Table::JournalDays => (
            "SELECT site_id, segment_id, day, added, removed FROM journal_days
             WHERE (site_id, segment_id, day) > ($1, $2, $3)
             ORDER BY site_id, segment_id, day LIMIT $4",
            3,
        ),
        Table::JournalMembers => (
            "SELECT site_id, subscriber_id, segments FROM journal_members
             WHERE (site_id, subscriber_id) > ($1, $2) ORDER BY site_id, subscriber_id LIMIT $3",
            2,
        ),
        Table::SegmentVersions => (
            "SELECT site_id, segment_id, version, name, description, query, saved_at, saved_by
             FROM segment_versions WHERE (site_id, segment_id, version) > ($1, $2, $3)
             ORDER BY site_id, segment_id, version LIMIT $4",
            3,
        ),
        // `excluded` is a boolean on PostgreSQL and 0 or 1 on SQLite: the
        // cursor holds it as 0 or 1 (its first page as less), compared as
        // each database orders the column (false, 0 first).
        Table::SegmentManual => (
            "SELECT site_id, segment_id, excluded, subscriber_id, added_at FROM segment_manual
             WHERE (site_id, segment_id, excluded, subscriber_id) > ($1, $2, $3 > 0, $4)
             ORDER BY site_id, segment_id, excluded, subscriber_id LIMIT $5",
            4,
        ),
        // SQLite's table has no site_id: the subscriber says it.
        Table::SubscriberTags => match dialect {
            Dialect::Sqlite => (
                "SELECT s.site_id, t.subscriber_id, t.tag_id, t.created_at
                 FROM subscriber_tags t JOIN subscribers s ON s.id = t.subscriber_id
                 WHERE (t.subscriber_id, t.tag_id) > ($1, $2)
                 ORDER BY t.subscriber_id, t.tag_id LIMIT $3",
                2,
            ),
            Dialect::Postgres => (
                "SELECT site_id, subscriber_id, tag_id, created_at FROM subscriber_tags
                 WHERE (site_id, subscriber_id, tag_id) > ($1, $2, $3)
                 ORDER BY site_id, subscriber_id, tag_id LIMIT $4",
                3,
            ),
        },
        Table::SegmentWatches => (
            "SELECT site_id, segment_id, seq, checked_at, version, kept, after_at, after_id
             FROM segment_watches
             WHERE (site_id, segment_id) > ($1, $2) ORDER BY site_id, segment_id LIMIT $3",
            2,
        ),
        Table::SegmentMembers => (
            "SELECT site_id, segment_id, subscriber_id FROM segment_members
             WHERE (site_id, segment_id, subscriber_id) > ($1, $2, $3)
             ORDER BY site_id, segment_id, subscriber_id LIMIT $4",
            3,
        ),
        Table::ChangeHeads => (
            "SELECT site_id, seq, segments_seq, keys_seq FROM change_heads
             WHERE site_id > $1 ORDER BY site_id LIMIT $2",
            1,
        ),
    }
}

/// Up to `limit` rows of `table` in the database's key order, after
/// `after` (from the start when `None`), and the cursor of the next page.
pub async fn read_page<C: Conn>(
    conn: &mut C,
    table: Table,
    after: Option<Cursor>,
    limit: usize,
) -> Result<TablePage> {
    let key = after.map_or([i64::MIN; 4], |c| c.0);
    let (text, parts) = page_statement(C::DIALECT, table);
    let mut statement = Statement::new(text);
    for part in &key[..parts] {
        statement = statement.bind(*part);
    }
    let statement = statement.bind(limit as i64);
    let rows = match table {
        Table::Sites => Rows::Sites(conn.all(statement).await?),
        Table::ApiKeys => Rows::ApiKeys(conn.all(statement).await?),
        Table::Segments => Rows::Segments(conn.all(statement).await?),
        Table::Subscribers => Rows::Subscribers(conn.all(statement).await?),
        Table::Tags => Rows::Tags(conn.all(statement).await?),
        Table::SubscriberTags => Rows::SubscriberTags(conn.all(statement).await?),
        Table::Fields => Rows::Fields(conn.all(statement).await?),
        Table::Events => Rows::Events(conn.all(statement).await?),
        Table::Webhooks => Rows::Webhooks(conn.all(statement).await?),
        Table::SegmentWatches => Rows::SegmentWatches(conn.all(statement).await?),
        Table::SegmentMembers => Rows::SegmentMembers(conn.all(statement).await?),
        Table::WebhookDeliveries => Rows::WebhookDeliveries(conn.all(statement).await?),
        Table::SegmentVersions => Rows::SegmentVersions(conn.all(statement).await?),
        Table::SegmentManual => Rows::SegmentManual(conn.all(statement).await?),
        Table::AuditLog => Rows::AuditLog(conn.all(statement).await?),
        Table::SegmentJournals => Rows::SegmentJournals(conn.all(statement).await?),
        Table::JournalSites => Rows::JournalSites(conn.all(statement).await?),
        Table::JournalDays => Rows::JournalDays(conn.all(statement).await?),
        Table::JournalMembers => Rows::JournalMembers(conn.all(statement).await?),
        Table::SegmentTransitions => Rows::SegmentTransitions(conn.all(statement).await?),
        Table::ChangeHeads => Rows::ChangeHeads(conn.all(statement).await?),
    };
    let next = (rows.len() >= limit)
        .then(|| last_key(C::DIALECT, &rows))
        .flatten();
    Ok(TablePage { rows, next })
}

/// The key of the last of `rows`, in the order of [`page_statement`].
fn last_key(dialect: Dialect, rows: &Rows) -> Option<Cursor> {
    let by_site = dialect == Dialect::Postgres;
    // A record keyed by id, led by its site on PostgreSQL.
    let id = |site_id: i64, id: i64| match by_site {
        true => [site_id, id, 0, 0],
        false => [id, 0, 0, 0],
    };
    let key = match rows {
        Rows::Sites(r) => [r.last()?.id, 0, 0, 0],
        Rows::ApiKeys(r) => [r.last()?.id, 0, 0, 0],
        Rows::Segments(r) => r.last().map(|r| id(r.site_id, r.id))?,
        Rows::Subscribers(r) => r.last().map(|r| id(r.site_id, r.id))?,
        Rows::Tags(r) => r.last().map(|r| id(r.site_id, r.id))?,
        Rows::Fields(r) => r.last().map(|r| id(r.site_id, r.id))?,
        Rows::Events(r) => r.last().map(|r| id(r.site_id, r.id))?,
        Rows::Webhooks(r) => r.last().map(|r| id(r.site_id, r.id))?,
        Rows::WebhookDeliveries(r) => r.last().map(|r| id(r.site_id, r.id))?,
        Rows::AuditLog(r) => r.last().map(|r| id(r.site_id, r.id))?,
        Rows::SegmentTransitions(r) => r.last().map(|r| id(r.site_id, r.id))?,
        Rows::SegmentJournals(r) => r.last().map(|r| [r.site_id, r.segment_id, 0, 0])?,
        Rows::JournalSites(r) => [r.last()?.site_id, 0, 0, 0],
        Rows::JournalDays(r) => r.last().map(|r| [r.site_id, r.segment_id, r.day, 0])?,
        Rows::JournalMembers(r) => r.last().map(|r| [r.site_id, r.subscriber_id, 0, 0])?,
        Rows::SegmentVersions(r) => r.last().map(|r| [r.site_id, r.segment_id, r.version, 0])?,
        Rows::SegmentManual(r) => r.last().map(|r| {
            [
                r.site_id,
                r.segment_id,
                i64::from(r.excluded),
                r.subscriber_id,
            ]
        })?,
        Rows::SubscriberTags(r) => {
            let r = r.last()?;
            match by_site {
                true => [r.site_id, r.subscriber_id, r.tag_id, 0],
                false => [r.subscriber_id, r.tag_id, 0, 0],
            }
        }
        Rows::SegmentWatches(r) => r.last().map(|r| [r.site_id, r.segment_id, 0, 0])?,
        Rows::SegmentMembers(r) => r
            .last()
            .map(|r| [r.site_id, r.segment_id, r.subscriber_id, 0])?,
        Rows::ChangeHeads(r) => [r.last()?.site_id, 0, 0, 0],
    };
    Some(Cursor(key))
}

/// How many sites the database holds, as the connection sees it.
pub async fn count_sites(conn: &mut impl Conn) -> Result<u64> {
    count(conn, Table::Sites).await
}
