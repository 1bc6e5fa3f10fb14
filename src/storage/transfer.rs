//! Moving a whole database to another, of either backend (`corral copy`):
//! every table that holds data, as plain rows carrying every column (ids,
//! uuids, versions and timestamps included, since segment ids and subscriber
//! uuids are on the wire and positions and versions are compared by
//! clients). A [`Transfer`] hands out a [`TransferReader`], which reads one
//! consistent snapshot of the source a page at a time in each table's key
//! order (keyset paging: memory stays bounded however large the table), and
//! a [`TransferWriter`], which owns one transaction on the target: nothing it
//! writes is visible, or kept, until [`TransferWriter::finish`] commits, so a
//! copy that fails or is interrupted leaves the target as it was. The change
//! log itself is not moved: the heads are, so positions continue where the
//! source's stood, and the target keeps a database id of its own (given a new
//! one by the copy), so no checkpoint of either database is ever read as the
//! other's.

use super::Result;
use async_trait::async_trait;

/// The tables a copy moves, in the order they are written: every row's
/// parents come before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    Sites,
    ApiKeys,
    Segments,
    Subscribers,
    Tags,
    SubscriberTags,
    Fields,
    Events,
    Webhooks,
    SegmentWatches,
    SegmentMembers,
    WebhookDeliveries,
    SegmentVersions,
    SegmentManual,
    AuditLog,
    SegmentJournals,
    JournalSites,
    JournalDays,
    JournalMembers,
    SegmentTransitions,
    ChangeHeads,
}

impl Table {
    /// Every table, parents first.
    pub const ALL: [Table; 21] = [
        Table::Sites,
        Table::ApiKeys,
        Table::Segments,
        Table::Subscribers,
        Table::Tags,
        Table::SubscriberTags,
        Table::Fields,
        Table::Events,
        Table::Webhooks,
        Table::SegmentWatches,
        Table::SegmentMembers,
        Table::WebhookDeliveries,
        Table::SegmentVersions,
        Table::SegmentManual,
        Table::AuditLog,
        Table::SegmentJournals,
        Table::JournalSites,
        Table::JournalDays,
        Table::JournalMembers,
        Table::SegmentTransitions,
        Table::ChangeHeads,
    ];

    /// Whether the table's rows have ids of their own, handed out by the
    /// database (an `AUTOINCREMENT` on SQLite, an identity on PostgreSQL).
    pub fn has_ids(self) -> bool {
        !matches!(
            self,
            Table::SubscriberTags
                | Table::SegmentWatches
                | Table::SegmentMembers
                | Table::SegmentVersions
                | Table::SegmentManual
                | Table::SegmentJournals
                | Table::JournalSites
                | Table::JournalDays
                | Table::JournalMembers
                | Table::ChangeHeads
        )
    }

    /// The table's name in both schemas.
    pub fn name(self) -> &'static str {
        match self {
            Table::Sites => "sites",
            Table::ApiKeys => "api_keys",
            Table::Segments => "segments",
            Table::Subscribers => "subscribers",
            Table::Tags => "tags",
            Table::SubscriberTags => "subscriber_tags",
            Table::Fields => "fields",
            Table::Events => "events",
            Table::Webhooks => "webhooks",
            Table::SegmentWatches => "segment_watches",
            Table::SegmentMembers => "segment_members",
            Table::WebhookDeliveries => "webhook_deliveries",
            Table::SegmentVersions => "segment_versions",
            Table::SegmentManual => "segment_manual",
            Table::AuditLog => "audit_log",
            Table::SegmentJournals => "segment_journals",
            Table::JournalSites => "journal_sites",
            Table::JournalDays => "journal_days",
            Table::JournalMembers => "journal_members",
            Table::SegmentTransitions => "segment_transitions",
            Table::ChangeHeads => "change_heads",
        }
    }
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SiteRow {
    pub id: i64,
    pub uuid: String,
    pub name: String,
    pub demo: bool,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ApiKeyRow {
    pub id: i64,
    pub site_id: i64,
    pub publishable_key: String,
    pub secret_hash: Vec<u8>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SegmentRow {
    pub id: i64,
    pub site_id: i64,
    pub name: String,
    pub name_key: String,
    pub description: Option<String>,
    pub query: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub discarded_at: Option<i64>,
    pub version: i64,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SubscriberRow {
    pub id: i64,
    pub site_id: i64,
    pub uuid: String,
    pub email: String,
    pub email_key: String,
    /// The field values as stored: one JSON object, as text.
    pub fields: String,
    pub unsubscribed_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct TagRow {
    pub id: i64,
    pub site_id: i64,
    pub name: String,
    pub name_key: String,
    pub created_at: i64,
    pub discarded_at: Option<i64>,
}

/// A tag on a subscriber. SQLite's table has no `site_id` (the subscriber
/// says it); PostgreSQL's carries it, so it is read with the row.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SubscriberTagRow {
    pub site_id: i64,
    pub subscriber_id: i64,
    pub tag_id: i64,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct FieldRow {
    pub id: i64,
    pub site_id: i64,
    pub key: String,
    pub name: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct EventRow {
    pub id: i64,
    pub site_id: i64,
    pub subscriber_id: i64,
    /// The column `type`.
    #[sqlx(rename = "type")]
    pub kind: String,
    pub occurred_at: i64,
    /// The details as stored: compact JSON text.
    pub details: String,
    pub unique_key: Option<String>,
    pub amount: Option<f64>,
    pub currency: Option<String>,
    pub received_at: i64,
}

/// A membership-change webhook (its signing secret included: receivers
/// check signatures with it).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct WebhookRow {
    pub id: i64,
    pub site_id: i64,
    pub url: String,
    /// The watched segments' ids, as a JSON array.
    pub segment_ids: String,
    /// The events wanted, as a JSON array.
    pub events: String,
    pub secret: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub disabled_at: Option<i64>,
    pub failing_since: Option<i64>,
    pub leased_until: Option<i64>,
}

/// Where the members of a watched segment were last worked out: a
/// change-log position, which the copied heads keep meaningful.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SegmentWatchRow {
    pub site_id: i64,
    pub segment_id: i64,
    pub seq: i64,
    pub checked_at: i64,
    pub version: i64,
    pub kept: bool,
    /// How far the segment's journal has been told to its webhooks.
    pub after_at: i64,
    pub after_id: i64,
}

/// A member of a watched segment, as of its watch.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SegmentMemberRow {
    pub site_id: i64,
    pub segment_id: i64,
    pub subscriber_id: i64,
}

/// A notification in the outbox, delivered or waiting.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct WebhookDeliveryRow {
    pub id: i64,
    pub site_id: i64,
    pub webhook_id: i64,
    pub event_id: String,
    pub notification: String,
    pub created_at: i64,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub delivered_at: Option<i64>,
}

/// A definition a segment was saved with.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SegmentVersionRow {
    pub site_id: i64,
    pub segment_id: i64,
    pub version: i64,
    pub name: String,
    pub description: Option<String>,
    pub query: String,
    pub saved_at: i64,
    pub saved_by: Option<String>,
}

/// A subscriber in a segment's hand-made includes (`excluded` false) or
/// excludes (true); a discarded segment's too, which come back with it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SegmentManualRow {
    pub site_id: i64,
    pub segment_id: i64,
    pub excluded: bool,
    pub subscriber_id: i64,
    pub added_at: i64,
}

/// An entry of a site's audit log.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AuditLogRow {
    pub id: i64,
    pub site_id: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub details: String,
}

/// Where a segment's journal stands: the definition its journaled members
/// follow, when its history begins, its members now.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SegmentJournalRow {
    pub site_id: i64,
    pub segment_id: i64,
    pub version: Option<i64>,
    pub kept: bool,
    pub begins_at: Option<i64>,
    pub members: i64,
}

/// A site's journal: its latest transition's instant, its last sweep, and
/// how many baselines were taken.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct JournalSiteRow {
    pub site_id: i64,
    pub last_at: i64,
    pub swept_at: i64,
    pub baselines: i64,
}

/// Joins and leaves of a segment in one UTC day.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct JournalDayRow {
    pub site_id: i64,
    pub segment_id: i64,
    pub day: i64,
    pub added: i64,
    pub removed: i64,
}

/// The segments a subscriber is in as the journal has them (a JSON array
/// of ids, as text).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct JournalMemberRow {
    pub site_id: i64,
    pub subscriber_id: i64,
    pub segments: String,
}

/// One recorded join or leave (its id is the changes feed's event id and
/// cursor, so it is copied as it is).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SegmentTransitionRow {
    pub id: i64,
    pub site_id: i64,
    pub segment_id: i64,
    pub subscriber_id: i64,
    pub at: i64,
    pub added: bool,
    /// As stored (see [`crate::storage::journal::Reason::code`]).
    pub reason: i16,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ChangeHeadRow {
    pub site_id: i64,
    pub seq: i64,
    pub segments_seq: i64,
    pub keys_seq: i64,
}

/// Some rows of one table.
#[derive(Debug, Clone, PartialEq)]
pub enum Rows {
    Sites(Vec<SiteRow>),
    ApiKeys(Vec<ApiKeyRow>),
    Segments(Vec<SegmentRow>),
    Subscribers(Vec<SubscriberRow>),
    Tags(Vec<TagRow>),
    SubscriberTags(Vec<SubscriberTagRow>),
    Fields(Vec<FieldRow>),
    Events(Vec<EventRow>),
    Webhooks(Vec<WebhookRow>),
    SegmentWatches(Vec<SegmentWatchRow>),
    SegmentMembers(Vec<SegmentMemberRow>),
    WebhookDeliveries(Vec<WebhookDeliveryRow>),
    SegmentVersions(Vec<SegmentVersionRow>),
    SegmentManual(Vec<SegmentManualRow>),
    AuditLog(Vec<AuditLogRow>),
    SegmentJournals(Vec<SegmentJournalRow>),
    JournalSites(Vec<JournalSiteRow>),
    JournalDays(Vec<JournalDayRow>),
    JournalMembers(Vec<JournalMemberRow>),
    SegmentTransitions(Vec<SegmentTransitionRow>),
    ChangeHeads(Vec<ChangeHeadRow>),
}

impl Rows {
    pub fn table(&self) -> Table {
        match self {
            Rows::Sites(_) => Table::Sites,
            Rows::ApiKeys(_) => Table::ApiKeys,
            Rows::Segments(_) => Table::Segments,
            Rows::Subscribers(_) => Table::Subscribers,
            Rows::Tags(_) => Table::Tags,
            Rows::SubscriberTags(_) => Table::SubscriberTags,
            Rows::Fields(_) => Table::Fields,
            Rows::Events(_) => Table::Events,
            Rows::Webhooks(_) => Table::Webhooks,
            Rows::SegmentWatches(_) => Table::SegmentWatches,
            Rows::SegmentMembers(_) => Table::SegmentMembers,
            Rows::WebhookDeliveries(_) => Table::WebhookDeliveries,
            Rows::SegmentVersions(_) => Table::SegmentVersions,
            Rows::SegmentManual(_) => Table::SegmentManual,
            Rows::AuditLog(_) => Table::AuditLog,
            Rows::SegmentJournals(_) => Table::SegmentJournals,
            Rows::JournalSites(_) => Table::JournalSites,
            Rows::JournalDays(_) => Table::JournalDays,
            Rows::JournalMembers(_) => Table::JournalMembers,
            Rows::SegmentTransitions(_) => Table::SegmentTransitions,
            Rows::ChangeHeads(_) => Table::ChangeHeads,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Rows::Sites(rows) => rows.len(),
            Rows::ApiKeys(rows) => rows.len(),
            Rows::Segments(rows) => rows.len(),
            Rows::Subscribers(rows) => rows.len(),
            Rows::Tags(rows) => rows.len(),
            Rows::SubscriberTags(rows) => rows.len(),
            Rows::Fields(rows) => rows.len(),
            Rows::Events(rows) => rows.len(),
            Rows::Webhooks(rows) => rows.len(),
            Rows::SegmentWatches(rows) => rows.len(),
            Rows::SegmentMembers(rows) => rows.len(),
            Rows::WebhookDeliveries(rows) => rows.len(),
            Rows::SegmentVersions(rows) => rows.len(),
            Rows::SegmentManual(rows) => rows.len(),
            Rows::AuditLog(rows) => rows.len(),
            Rows::SegmentJournals(rows) => rows.len(),
            Rows::JournalSites(rows) => rows.len(),
            Rows::JournalDays(rows) => rows.len(),
            Rows::JournalMembers(rows) => rows.len(),
            Rows::SegmentTransitions(rows) => rows.len(),
            Rows::ChangeHeads(rows) => rows.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where a page ended, in the reading backend's key order for the table
/// (its primary key: `[id]` on SQLite, `[site_id, id]` on PostgreSQL, up to
/// the four parts of `segment_manual`'s, padded with zeros). Only the reader
/// that made it understands it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor(pub [i64; 4]);

/// One page of a table.
#[derive(Debug)]
pub struct TablePage {
    pub rows: Rows,
    /// Where the next page starts; `None` when this was the last.
    pub next: Option<Cursor>,
}

/// What a backend does for `corral copy`, as source and as target.
#[async_trait]
pub trait Transfer: Send + Sync {
    /// A reader of one consistent snapshot of the whole database, as of this
    /// call: writes committed while it reads are not seen.
    async fn begin_read(&self) -> Result<Box<dyn TransferReader>>;

    /// A writer holding one transaction on this database, which it owns:
    /// dropping the writer without [`TransferWriter::finish`] rolls back
    /// everything it wrote.
    async fn begin_write(&self) -> Result<Box<dyn TransferWriter>>;
}

/// Reads a snapshot of a database, table by table.
#[async_trait]
pub trait TransferReader: Send {
    /// How many rows the table holds in the snapshot.
    async fn count(&mut self, table: Table) -> Result<u64>;

    /// Up to `limit` rows of `table` in key order, after `after` (from the
    /// start when `None`).
    async fn read_page(
        &mut self,
        table: Table,
        after: Option<Cursor>,
        limit: usize,
    ) -> Result<TablePage>;

    /// The highest id handed out so far in each table that [has
    /// ids](Table::has_ids): at least its highest id, more when ids were
    /// handed out to rows never committed (a PostgreSQL sequence does not
    /// give back the ids of a rolled-back insert). The target hands out ids
    /// after these, as the source would have.
    async fn handed_out(&mut self) -> Result<Vec<(Table, i64)>>;
}

/// Writes rows inside one transaction.
#[async_trait]
pub trait TransferWriter: Send {
    /// How many sites the database holds, as seen inside the transaction.
    async fn count_sites(&mut self) -> Result<u64>;

    /// Deletes every site and everything that belongs to one (the change
    /// log too), inside the transaction.
    async fn clear(&mut self) -> Result<()>;

    /// Inserts rows exactly as given, ids included.
    async fn write(&mut self, rows: &Rows) -> Result<()>;

    /// Sets what hands out ids to where the source's stood: past every id
    /// written and every id the source had handed out (`handed_out`, from
    /// [`TransferReader::handed_out`]), so that new rows get the ids they
    /// would have had on the source and never reuse one; gives the database
    /// a new id of its own (so that no checkpoint written before the copy is
    /// read as one of it); and commits.
    async fn finish(self: Box<Self>, handed_out: &[(Table, i64)]) -> Result<()>;
}
