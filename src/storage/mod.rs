//! Storage: the [`Store`] trait that the HTTP layer and the CLI are written
//! against, and its backends.
//!
//! Every backend keeps timestamps as Unix milliseconds, names' comparison keys
//! computed by the application ([`crate::segment::name_key`]), and queries as
//! text, so that answers are identical whichever database holds the data. The
//! backend is chosen by the database URL's scheme in [`open`]; each has its own
//! `migrations/<backend>/` folder, applied when it opens. Every write also
//! records what it changed in the change log ([`changes`]), which live
//! snapshots and caches follow. This module is backend-neutral: its models
//! and [`StorageError`] hold no driver type. The statements both backends
//! run alike are written once ([`sql`]), which also turns the driver's
//! errors into these; a backend's own folder holds what its database does
//! its own way.

pub mod actor;
pub mod audit;
pub mod changes;
pub mod imports;
pub mod journal;
mod postgres;
pub mod progress;
mod sql;
mod sqlite;
pub mod transfer;
pub mod wait;
pub mod webhooks;

use crate::credentials::KeyPair;
use crate::segment::manual::{ManualEdit, ManualEntry, ManualList};
use crate::segment::{Listing, NewSegment, Segment, SegmentId, SegmentPatch};
use async_trait::async_trait;
use audit::{Actor, AuditEntry, AuditQuery, SegmentVersion};
use corral_core::audience::{
    AudienceCounts, Email, Field, FieldKey, Outcome, Subscriber, SubscriberChange, Tag, TagName,
};
use std::sync::Arc;

pub use changes::{ChangeFeed, LogEntry, Position, Signal, SiteHead};
pub use postgres::PgStore;
pub use sqlite::SqliteStore;
pub use sqlite::backup::vacuum_into as backup_sqlite;
pub use transfer::Transfer;

/// What a backend can fail with. Cloned when one read's failure is handed
/// to every request that waited for it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StorageError {
    /// No such record for this site (or it is in the wrong state for the call).
    #[error("not found")]
    NotFound,
    /// Another kept segment of the site has this name, ignoring case.
    #[error("name has already been taken")]
    NameTaken,
    /// The record changed since the version the caller named.
    #[error("the record has changed since it was read")]
    PreconditionFailed,
    /// A rule of segments ([`crate::segment::references`]), checked again
    /// inside the write's transaction, refuses the write.
    #[error("{0}")]
    Refused(crate::segment::FieldErrors),
    /// Creating the record would take the site over one of the caps of
    /// [`corral_core::audience::limits`]; the message names the cap.
    #[error("{0}")]
    LimitExceeded(String),
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://USER@HOST:PORT/DB")]
    UnsupportedUrl(String),
    /// A row would have broken a unique index (the database's words): a
    /// statement that expects it says what it means (a name taken).
    #[error("database error: {0}")]
    Duplicate(String),
    /// The database refused or failed a statement, in its own words (each
    /// backend turns its driver's errors into this).
    #[error("database error: {0}")]
    Database(String),
    /// The database cannot be reached now (a server down or restarting, no
    /// free connection in time): the call may succeed if tried again.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// A grouped write failed (its detail was logged once, by the writer).
    #[error("write failed: {0}")]
    WriteFailed(String),
    /// Data read back could not be understood, or no longer lines up with
    /// what was read before it.
    #[error("read failed: {0}")]
    ReadFailed(String),
    /// The change log cannot bring a snapshot up to date from where it
    /// stands (entries trimmed or unreadable): read the site from scratch.
    #[error("the change log cannot bring the snapshot up to date: {0}")]
    Stale(String),
    #[error("migration failed: {0}")]
    Migrate(String),
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

impl StorageError {
    /// What each request of a group write that failed as a whole is told:
    /// that the database is unavailable, when it is (answered 503 with
    /// `Retry-After`, for the client to try again), or else that the write
    /// failed (its detail logged once, by the writer).
    pub(crate) fn shared_by_group(self) -> Self {
        match self {
            Self::Unavailable(_) | Self::WriteFailed(_) => self,
            other => Self::WriteFailed(other.to_string()),
        }
    }
}

/// A site: the wall around one account's keys and data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    pub id: i64,
    pub uuid: String,
    pub name: String,
    pub demo: bool,
    pub created_at: i64,
}

/// A key pair as stored: the secret is not here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: i64,
    pub site_id: i64,
    pub publishable_key: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// What authenticating a request needs to know about a publishable key.
#[derive(Debug, Clone)]
pub struct KeyCredentials {
    pub key_id: i64,
    pub site_id: i64,
    pub site_uuid: String,
    pub secret_hash: Vec<u8>,
    pub revoked: bool,
    /// The site's [`SiteHead::keys_seq`] when this was read: the
    /// credentials hold while the head has not moved past it.
    pub keys_seq: i64,
}

/// A write's precondition, from `If-Match`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Precondition {
    /// No `If-Match`, or `If-Match: *` on an existing record.
    #[default]
    None,
    /// The write goes ahead only if the record is at one of these versions.
    Versions(Vec<i64>),
}

impl Precondition {
    pub fn allows(&self, version: i64) -> bool {
        match self {
            Self::None => true,
            Self::Versions(versions) => versions.contains(&version),
        }
    }
}

/// One page of a listing in key order, and where the next one starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// The sort key of the last item, when more items follow: pass it as
    /// `after` for the next page.
    pub next_after: Option<String>,
}

/// One stored event, as a subscriber's recent activity shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub id: i64,
    /// The event's type, such as `$purchase`.
    pub kind: String,
    /// When it happened (Unix milliseconds).
    pub occurred_at: i64,
    /// The details object exactly as sent (compact JSON text).
    pub details: String,
}

/// The audience: subscribers, tags, fields and events. Every call is scoped by
/// `site_id`.
#[async_trait]
pub trait AudienceStore: Send + Sync + 'static {
    async fn subscriber_by_email(&self, site_id: i64, email: &Email) -> Result<Option<Subscriber>>;
    async fn subscriber_by_uuid(&self, site_id: i64, uuid: &str) -> Result<Option<Subscriber>>;
    /// Applies each change all or nothing, in one transaction: an item that
    /// is refused (an unknown subscriber for `change_email`, a taken email,
    /// or a change that would take the subscriber or the site over one of the
    /// backend's [`corral_core::audience::Limits`]) leaves no trace and the others
    /// are still applied. Durable when this returns. The changes are taken
    /// by value: the writer that commits them may run on another task.
    async fn apply_changes(
        &self,
        site_id: i64,
        changes: Vec<SubscriberChange>,
        now: i64,
    ) -> Result<Vec<Outcome>>;
    /// [`AudienceStore::apply_changes`] for one batch of an import, which
    /// records in the same transaction how far the import got (`mark`).
    async fn apply_import_batch(
        &self,
        site_id: i64,
        changes: Vec<SubscriberChange>,
        now: i64,
        mark: imports::ImportMark,
    ) -> Result<Vec<Outcome>>;
    /// How far the import `key` of the site got, if it was recorded.
    async fn import_progress(
        &self,
        site_id: i64,
        key: &str,
    ) -> Result<Option<imports::ImportProgress>>;
    /// Forgets the import `key` of the site (it starts afresh).
    async fn forget_import(&self, site_id: i64, key: &str) -> Result<()>;
    /// Records that the import `key` of the site read its whole input.
    async fn finish_import(&self, site_id: i64, key: &str, kind: &str, now: i64) -> Result<()>;
    /// Up to `limit` tags in name order (ignoring case), after the tag whose
    /// name key is `after`.
    async fn list_tags(&self, site_id: i64, after: Option<&str>, limit: usize)
    -> Result<Page<Tag>>;
    /// Creates a tag, or returns the one that has this name ignoring case;
    /// a new tag that would take the site over its cap of tags is
    /// [`StorageError::LimitExceeded`].
    async fn create_tag(&self, site_id: i64, name: &TagName, now: i64) -> Result<Tag>;
    /// Deletes the site's tag `id`: takes it off every subscriber that holds
    /// it, and off the site's list, in one write, recorded in the change log
    /// and the membership journal (reason `data`). With `name`, the tag must
    /// have that name, ignoring case ([`StorageError::Refused`] on `name`
    /// otherwise). [`StorageError::NotFound`] when the site has no tag of
    /// that id. The tag deleted, and how many subscribers held it.
    async fn delete_tag(
        &self,
        site_id: i64,
        id: i64,
        name: Option<&TagName>,
        now: i64,
    ) -> Result<(Tag, usize)>;
    /// Up to `limit` fields in key order, after the field whose key is `after`.
    async fn list_fields(
        &self,
        site_id: i64,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<Field>>;
    /// Registers a field key, or returns the one registered; a new key that
    /// would take the site over its cap of field keys is
    /// [`StorageError::LimitExceeded`].
    async fn create_field(
        &self,
        site_id: i64,
        key: &FieldKey,
        name: &str,
        now: i64,
    ) -> Result<Field>;
    /// Counts of the whole site's audience.
    async fn site_counts(&self, site_id: i64) -> Result<AudienceCounts>;
    /// The subscribers with these ids, in id order; ids of other sites or of
    /// no one are left out.
    async fn subscribers_by_ids(&self, site_id: i64, ids: &[i64]) -> Result<Vec<Subscriber>>;
    /// Up to `limit` of the subscriber's events, the most recent first
    /// (by `occurred_at`, then the latest stored first).
    async fn recent_events(
        &self,
        site_id: i64,
        subscriber_id: i64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>>;
    /// Up to `limit` subscribers found by `text`, in the order of their
    /// lowercase email, after the one whose lowercase email is `after`:
    /// those whose email starts with `text`, whose `first_name`,
    /// `last_name` or `name` field (those of them the site has) is a string
    /// that starts with it, or who hold the tag named `text`, ignoring case
    /// (as Rust's `to_lowercase` does). An empty `text` finds every
    /// subscriber. A page's `next_after` is the last one's
    /// lowercase email, when more follow.
    async fn search_subscribers(
        &self,
        site_id: i64,
        text: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<Subscriber>>;
    /// Every field key of the site, in key order.
    async fn field_keys(&self, site_id: i64) -> Result<Vec<String>> {
        let mut keys = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.list_fields(site_id, after.as_deref(), 1_000).await?;
            keys.extend(page.items.into_iter().map(|f| f.key));
            match page.next_after {
                Some(next) => after = Some(next),
                None => return Ok(keys),
            }
        }
    }
}

/// The operations Corral needs from a database. Every segment call is scoped
/// by `site_id`: a record of another site is reported exactly like a missing one.
/// Copying a whole database to another ([`Transfer`]) comes with it.
#[async_trait]
pub trait Store:
    AudienceStore + ChangeFeed + webhooks::WebhookStore + journal::JournalStore + Transfer
{
    /// Whether the database answers.
    async fn ping(&self) -> Result<()>;
    /// Closes the database once nothing will be written any more (at the
    /// end of a command, after a server's last answer): what the database
    /// keeps beside its file (SQLite's write-ahead log) is folded into it,
    /// so the file alone holds every acknowledged write. Calls after it fail.
    async fn close(&self);

    /// Creates a site with its first key pair.
    async fn create_site(
        &self,
        name: &str,
        uuid: &str,
        keys: &KeyPair,
        demo: bool,
        now: i64,
    ) -> Result<Site>;
    async fn list_sites(&self) -> Result<Vec<Site>>;
    async fn find_site(&self, uuid: &str) -> Result<Option<Site>>;
    /// The site `serve --demo` created, if any.
    async fn find_demo_site(&self) -> Result<Option<Site>>;
    /// The site of this id, if any.
    async fn site_by_id(&self, site_id: i64) -> Result<Option<Site>>;

    /// Adds a key pair to a site, as `by`.
    async fn add_key(&self, site_id: i64, keys: &KeyPair, now: i64, by: &Actor) -> Result<ApiKey>;
    async fn list_keys(&self, site_id: i64) -> Result<Vec<ApiKey>>;
    /// Revokes a key, as `by`; revoking a revoked key keeps its first
    /// revocation time (and records nothing).
    async fn revoke_key(&self, publishable_key: &str, now: i64, by: &Actor) -> Result<ApiKey>;
    async fn credentials(&self, publishable_key: &str) -> Result<Option<KeyCredentials>>;

    /// Segments ordered by name key, then exact name, then id.
    async fn list_segments(&self, site_id: i64, listing: Listing) -> Result<Vec<Segment>>;
    /// A segment, kept or discarded.
    async fn get_segment(&self, site_id: i64, id: SegmentId) -> Result<Option<Segment>>;
    /// Creates a segment, as `by`: its first version.
    async fn create_segment(
        &self,
        site_id: i64,
        new: &NewSegment,
        now: i64,
        by: &Actor,
    ) -> Result<Segment>;
    /// Changes a kept segment, as `by`, saving its new definition as its
    /// next version; a patch that changes nothing leaves it untouched.
    async fn update_segment(
        &self,
        site_id: i64,
        id: SegmentId,
        patch: &SegmentPatch,
        precondition: &Precondition,
        now: i64,
        by: &Actor,
    ) -> Result<Segment>;
    /// Discards a kept segment, as `by`.
    async fn discard_segment(
        &self,
        site_id: i64,
        id: SegmentId,
        precondition: &Precondition,
        now: i64,
        by: &Actor,
    ) -> Result<Segment>;
    /// Restores a discarded segment, as `by`; restoring a kept one changes
    /// nothing.
    async fn restore_segment(
        &self,
        site_id: i64,
        id: SegmentId,
        precondition: &Precondition,
        now: i64,
        by: &Actor,
    ) -> Result<Segment>;
    /// Makes version `version` of a kept segment its current definition,
    /// as `by`, saved as its next version ([`StorageError::NotFound`] when
    /// the segment is not kept or has no such version); restoring the
    /// definition it has changes nothing.
    async fn restore_segment_version(
        &self,
        site_id: i64,
        id: SegmentId,
        version: i64,
        precondition: &Precondition,
        now: i64,
        by: &Actor,
    ) -> Result<Segment>;
    /// Every definition a segment of the site was saved with, oldest first
    /// (empty for a segment the site does not have).
    async fn segment_versions(&self, site_id: i64, id: SegmentId) -> Result<Vec<SegmentVersion>>;
    /// The site's audit log, newest first, as `query` asks.
    async fn audit_log(&self, site_id: i64, query: &AuditQuery) -> Result<Vec<AuditEntry>>;

    /// Puts the subscribers with these emails in a kept segment's includes
    /// or excludes (`add`), or takes them out, as `by`, in one transaction
    /// under the site's write turn; unknown emails create nothing. Every
    /// server's snapshot, the journal (reason `manual`) and the audit log
    /// follow. [`StorageError::NotFound`] when the site keeps no such
    /// segment.
    #[allow(clippy::too_many_arguments)]
    async fn edit_manual(
        &self,
        site_id: i64,
        id: SegmentId,
        list: ManualList,
        emails: &[Email],
        add: bool,
        now: i64,
        by: &Actor,
    ) -> Result<ManualEdit>;
    /// How many subscribers a segment's includes or excludes hold.
    async fn count_manual(&self, site_id: i64, id: SegmentId, list: ManualList) -> Result<i64>;
    /// Up to `limit` subscribers of a segment's includes or excludes, by
    /// subscriber id, after the id `after`.
    async fn list_manual(
        &self,
        site_id: i64,
        id: SegmentId,
        list: ManualList,
        after: i64,
        limit: usize,
    ) -> Result<Vec<ManualEntry>>;
}

/// The default database: a SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://corral.db";

/// Opens the database a URL names and brings its schema up to date.
pub async fn open(url: &str) -> Result<Arc<dyn Store>> {
    if let Some(path) = sqlite_path(url) {
        return Ok(Arc::new(SqliteStore::open(path).await?));
    }
    if is_postgres(url) {
        return Ok(Arc::new(PgStore::open(url).await?));
    }
    Err(StorageError::UnsupportedUrl(url.to_owned()))
}

/// The file a SQLite URL names; `None` for other databases.
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    sqlite_path(url).map(std::path::PathBuf::from)
}

/// Where snapshots' checkpoints go when nothing else is said: beside a
/// SQLite file, in `PATH-checkpoints/`.
pub fn default_checkpoint_dir(url: &str) -> Option<std::path::PathBuf> {
    sqlite_path(url).map(|path| format!("{path}-checkpoints").into())
}

/// Whether a URL names a PostgreSQL database.
pub fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// The file a SQLite URL names: `sqlite://PATH`, `sqlite:PATH`, or a bare path.
fn sqlite_path(url: &str) -> Option<&str> {
    let path = if let Some(rest) = url.strip_prefix("sqlite://") {
        rest
    } else if let Some(rest) = url.strip_prefix("sqlite:") {
        rest
    } else if url.contains("://") {
        return None;
    } else {
        url
    };
    let path = path.split('?').next().unwrap_or(path);
    (!path.is_empty()).then_some(path)
}

/// The next `updated_at`: the clock's time, but always later than the last.
fn next_updated_at(previous: i64, now: i64) -> i64 {
    now.max(previous + 1)
}

/// Databases for the library's own tests, and reading one whole.
#[cfg(test)]
pub(crate) mod testing {
    use super::transfer::{Rows, Table, TransferReader};

    /// Every row of `table`, page by page, through `reader` (one snapshot
    /// of the database for every table read through it).
    pub async fn all_rows(reader: &mut dyn TransferReader, table: Table) -> Vec<Rows> {
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let page = reader.read_page(table, after, 10_000).await.unwrap();
            all.push(page.rows);
            match page.next {
                Some(next) => after = Some(next),
                None => return all,
            }
        }
    }

    /// The URL of a new database on the cluster `CORRAL_TEST_POSTGRES`
    /// names (an administrator's URL, as `scripts/test.sh` sets it); `None`
    /// without one, and the test that asked is skipped, saying so on the
    /// terminal. Where PostgreSQL is required (`CI` or
    /// `CORRAL_REQUIRE_POSTGRES=1` set) a missing cluster fails the test.
    pub async fn fresh_postgres() -> Option<String> {
        let Some(admin) = std::env::var("CORRAL_TEST_POSTGRES")
            .ok()
            .filter(|u| !u.is_empty())
        else {
            let test = std::thread::current().name().unwrap_or("a test").to_owned();
            let set =
                |name| std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
            assert!(
                !(set("CORRAL_REQUIRE_POSTGRES") || set("CI")),
                "{test} needs PostgreSQL and CORRAL_TEST_POSTGRES is not set; PostgreSQL is \
                 required here (CI or CORRAL_REQUIRE_POSTGRES=1): scripts/postgres.sh's \
                 pg_throwaway_start starts a throwaway cluster and sets it"
            );
            use std::io::Write;
            // One write, so that the line is not cut by the test runner's own.
            let line = format!("skipped: {test} needs PostgreSQL (CORRAL_TEST_POSTGRES not set)\n");
            let _ = std::io::stderr().write_all(line.as_bytes());
            return None;
        };
        let name = format!("corral_unit_{}", crate::credentials::random_hex_id());
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
            .await
            .expect("the test cluster answers");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("a test database is created");
        let (server, _) = admin.rsplit_once('/').expect("a database URL");
        Some(format!("{server}/{name}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_group_tells_each_waiter_whether_to_try_again() {
        let down = StorageError::Unavailable("connection refused".into());
        assert!(matches!(
            down.shared_by_group(),
            StorageError::Unavailable(_)
        ));
        let broken = StorageError::Database("disk I/O error".into());
        match broken.shared_by_group() {
            StorageError::WriteFailed(message) => assert!(message.contains("disk I/O error")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn sqlite_urls_name_files() {
        assert_eq!(sqlite_path("sqlite://corral.db"), Some("corral.db"));
        assert_eq!(sqlite_path("sqlite:///var/lib/c.db"), Some("/var/lib/c.db"));
        assert_eq!(sqlite_path("sqlite:data/c.db?mode=rwc"), Some("data/c.db"));
        assert_eq!(sqlite_path("plain.db"), Some("plain.db"));
        assert_eq!(sqlite_path("postgres://localhost/x"), None);
        assert_eq!(sqlite_path("sqlite://"), None);
    }

    #[test]
    fn updated_at_always_moves_forward() {
        assert_eq!(next_updated_at(100, 200), 200);
        assert_eq!(next_updated_at(200, 200), 201);
        assert_eq!(next_updated_at(300, 200), 301);
    }

    #[test]
    fn preconditions_match_listed_versions() {
        assert!(Precondition::None.allows(3));
        assert!(Precondition::Versions(vec![2, 3]).allows(3));
        assert!(!Precondition::Versions(vec![]).allows(3));
    }
}
