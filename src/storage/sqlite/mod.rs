//! The embedded backend: one SQLite file in WAL mode.
//!
//! Reads go through a pool of read-only connections, which WAL lets run
//! alongside the writer; every write goes through a single connection and
//! starts with `BEGIN IMMEDIATE`, so writers queue in the pool (and, across
//! processes, in SQLite's busy handler) instead of failing with "database is
//! locked". `synchronous = FULL` makes every acknowledged commit durable.
//!
//! Every write transaction records what it changed in the change log
//! ([`crate::storage::changes`]; [`log`]). Whether anything was committed
//! since a moment, by this process or another, is read without a round trip
//! from the header of SQLite's WAL index ([`signal`]); the heads and the
//! changes themselves are read from the log's tables ([`snapshot`]).

mod audience;
mod bulk;
mod caps;
mod group;
mod log;
mod signal;
mod snapshot;
mod transfer;
mod webhooks;

use super::changes::{Changes, Loaded};
use super::progress::ReadProgress;
use super::{
    ApiKey, ChangeFeed, KeyCredentials, LogEntry, Position, Precondition, Result, Signal, Site,
    SiteHead, StorageError, Store, next_updated_at,
};
use crate::credentials::KeyPair;
use crate::segment::{
    KeptSegments, Listing, NewSegment, Segment, SegmentId, SegmentPatch, name_key,
};
use async_trait::async_trait;
use corral_core::audience::Limits;
use corral_core::query::RawQuery;
use corral_core::query::ast::DetailPath;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Connection, Row, Sqlite, SqliteConnection, Transaction};
use std::time::Duration;

/// Bytes of the database file each connection maps into memory.
const MMAP_BYTES: u64 = 1 << 30;
/// The writer's page cache, in KiB.
const WRITER_CACHE_KIB: u64 = 128 * 1024;

/// How long a statement waits for another process's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

pub struct SqliteStore {
    reader: SqlitePool,
    writer: SqlitePool,
    /// Columns writes, committed in groups.
    group: group::GroupWriter,
    /// The caps every audience write is held to.
    limits: Limits,
    signal: signal::ShmSignal,
    /// Held open for the store's life (until [`Store::close`]): while any
    /// connection is open, the WAL index file that [`signal`] reads stays in
    /// place.
    keep_open: tokio::sync::Mutex<Option<SqliteConnection>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies migrations;
    /// audience writes are held to the documented caps.
    pub async fn open(path: &str) -> Result<Self> {
        Self::open_with_limits(path, Limits::default()).await
    }

    /// Opens the database as [`SqliteStore::open`] does, holding audience
    /// writes to `limits` instead (tests lower them to reach the caps).
    pub async fn open_with_limits(path: &str, limits: Limits) -> Result<Self> {
        let base = SqliteConnectOptions::new()
            .filename(path)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            // Reads through a memory map instead of a read() per page.
            .pragma("mmap_size", MMAP_BYTES.to_string());
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(
                base.clone()
                    .create_if_missing(true)
                    // Bulk imports touch index pages all over the file: a
                    // large cache keeps them from being re-read and re-written.
                    .pragma("cache_size", format!("-{}", WRITER_CACHE_KIB))
                    .pragma("wal_autocheckpoint", "16384"),
            )
            .await?;
        sqlx::migrate!("migrations/sqlite").run(&writer).await?;
        let readers = std::thread::available_parallelism().map_or(4, |n| n.get() * 2);
        let reader = SqlitePoolOptions::new()
            .max_connections(readers as u32)
            .min_connections(1)
            .connect_with(base.clone().read_only(true))
            .await?;
        let mut keep_open = SqliteConnection::connect_with(&base.read_only(true)).await?;
        // A read makes sure the WAL index exists before the signal opens it.
        sqlx::query("SELECT 1 FROM change_heads LIMIT 1")
            .fetch_optional(&mut keep_open)
            .await?;
        let group = group::GroupWriter::start(writer.clone(), limits);
        Ok(Self {
            reader,
            writer,
            group,
            limits,
            signal: signal::ShmSignal::new(path),
            keep_open: tokio::sync::Mutex::new(Some(keep_open)),
        })
    }

    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Discards a kept segment, or restores a discarded one (restoring a kept
    /// segment changes nothing); the precondition is checked either way.
    async fn move_segment(
        &self,
        site_id: i64,
        id: SegmentId,
        precondition: &Precondition,
        now: i64,
        to: Listing,
    ) -> Result<Segment> {
        let discarding = to == Listing::Discarded;
        let mut tx = self.begin_write().await?;
        let current = segment_for_update(&mut tx, site_id, id).await?;
        if discarding && !current.is_kept() {
            return Err(StorageError::NotFound);
        }
        if !precondition.allows(current.version) {
            return Err(StorageError::PreconditionFailed);
        }
        if !discarding && current.is_kept() {
            return Ok(current);
        }
        if discarding {
            let kept = segments_in(&mut tx, site_id, Listing::Kept).await?;
            KeptSegments::new(&kept)
                .check_discard(id)
                .map_err(StorageError::Refused)?;
        }
        let at = next_updated_at(current.updated_at, now);
        sqlx::query(
            "UPDATE segments SET discarded_at = $1, updated_at = $2, version = version + 1
             WHERE id = $3",
        )
        .bind(discarding.then_some(at))
        .bind(at)
        .bind(id.0)
        .execute(&mut *tx)
        .await
        // Restoring can meet a kept segment that took the name meanwhile.
        .map_err(name_conflict)?;
        let moved = segment_for_update(&mut tx, site_id, id).await?;
        log::record(&mut tx, site_id, &LogEntry::segment(id.0), now).await?;
        tx.commit().await?;
        Ok(moved)
    }
}

/// The columns [`segment_from_row`] reads, as a literal for `concat!` (sqlx
/// accepts only literal SQL).
macro_rules! segment_columns {
    () => {
        "id, name, description, query, created_at, updated_at, discarded_at, version"
    };
}

fn site_from_row(row: &SqliteRow) -> Result<Site> {
    Ok(Site {
        id: row.try_get("id")?,
        uuid: row.try_get("uuid")?,
        name: row.try_get("name")?,
        demo: row.try_get("demo")?,
        created_at: row.try_get("created_at")?,
    })
}

fn key_from_row(row: &SqliteRow) -> Result<ApiKey> {
    Ok(ApiKey {
        id: row.try_get("id")?,
        site_id: row.try_get("site_id")?,
        publishable_key: row.try_get("publishable_key")?,
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

fn segment_from_row(row: &SqliteRow) -> Result<Segment> {
    Ok(Segment {
        id: SegmentId(row.try_get("id")?),
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        query: RawQuery::from_stored(row.try_get("query")?),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        discarded_at: row.try_get("discarded_at")?,
        version: row.try_get("version")?,
    })
}

/// Turns a violation of the kept-name index into [`StorageError::NameTaken`].
fn name_conflict(error: sqlx::Error) -> StorageError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => StorageError::NameTaken,
        _ => error.into(),
    }
}

/// A site's segments of one listing, ordered by name key, then exact name,
/// then id.
async fn segments_in(
    conn: &mut SqliteConnection,
    site_id: i64,
    listing: Listing,
) -> Result<Vec<Segment>> {
    let sql = match listing {
        Listing::Kept => concat!(
            "SELECT ",
            segment_columns!(),
            " FROM segments WHERE site_id = $1 AND discarded_at IS NULL
              ORDER BY name_key, name, id"
        ),
        Listing::Discarded => concat!(
            "SELECT ",
            segment_columns!(),
            " FROM segments WHERE site_id = $1 AND discarded_at IS NOT NULL
              ORDER BY name_key, name, id"
        ),
    };
    let rows = sqlx::query(sql).bind(site_id).fetch_all(&mut *conn).await?;
    rows.iter().map(segment_from_row).collect()
}

/// Refuses, inside the write's transaction, a query whose segment references
/// break the rules of [`KeptSegments::check`] as the site stands now.
async fn check_references(
    tx: &mut Transaction<'static, Sqlite>,
    site_id: i64,
    saving: Option<SegmentId>,
    query: &RawQuery,
) -> Result<()> {
    let Ok(parsed) = corral_core::query::parse(query.as_str()) else {
        return Ok(());
    };
    if parsed.segment_refs().is_empty() {
        return Ok(());
    }
    let kept = segments_in(tx, site_id, Listing::Kept).await?;
    let errors = KeptSegments::new(&kept).check(saving, &parsed);
    errors.finish(|| ()).map_err(StorageError::Refused)
}

async fn segment_for_update(
    tx: &mut Transaction<'static, Sqlite>,
    site_id: i64,
    id: SegmentId,
) -> Result<Segment> {
    let row = sqlx::query(concat!(
        "SELECT ",
        segment_columns!(),
        " FROM segments WHERE id = $1 AND site_id = $2"
    ))
    .bind(id.0)
    .bind(site_id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(StorageError::NotFound)?;
    segment_from_row(&row)
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    async fn close(&self) {
        // The read-only connections first: the last connection to close, the
        // writer, folds the WAL into the file and removes it.
        if let Some(connection) = self.keep_open.lock().await.take()
            && let Err(error) = connection.close().await
        {
            tracing::warn!(%error, "closing a database connection failed");
        }
        self.reader.close().await;
        if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.writer)
            .await
        {
            tracing::warn!(%error, "the write-ahead log could not be folded into the database");
        }
        self.writer.close().await;
    }

    async fn create_site(
        &self,
        name: &str,
        uuid: &str,
        keys: &KeyPair,
        demo: bool,
        now: i64,
    ) -> Result<Site> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "INSERT INTO sites (uuid, name, demo, created_at) VALUES ($1, $2, $3, $4)
             RETURNING id, uuid, name, demo, created_at",
        )
        .bind(uuid)
        .bind(name)
        .bind(demo)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let site = site_from_row(&row)?;
        sqlx::query("INSERT INTO change_heads (site_id) VALUES ($1)")
            .bind(site.id)
            .execute(&mut *tx)
            .await?;
        insert_key(&mut tx, site.id, keys, now).await?;
        tx.commit().await?;
        Ok(site)
    }

    async fn list_sites(&self) -> Result<Vec<Site>> {
        let rows = sqlx::query("SELECT id, uuid, name, demo, created_at FROM sites ORDER BY id")
            .fetch_all(&self.reader)
            .await?;
        Ok(rows.iter().map(site_from_row).collect::<Result<_, _>>()?)
    }

    async fn find_site(&self, uuid: &str) -> Result<Option<Site>> {
        let row = sqlx::query("SELECT id, uuid, name, demo, created_at FROM sites WHERE uuid = $1")
            .bind(uuid)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.as_ref().map(site_from_row).transpose()?)
    }

    async fn find_demo_site(&self) -> Result<Option<Site>> {
        let row = sqlx::query(
            "SELECT id, uuid, name, demo, created_at FROM sites WHERE demo = 1 ORDER BY id LIMIT 1",
        )
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.as_ref().map(site_from_row).transpose()?)
    }

    async fn add_key(&self, site_id: i64, keys: &KeyPair, now: i64) -> Result<ApiKey> {
        let mut tx = self.begin_write().await?;
        let key = insert_key(&mut tx, site_id, keys, now).await?;
        log::record(&mut tx, site_id, &LogEntry::keys(), now).await?;
        tx.commit().await?;
        Ok(key)
    }

    async fn list_keys(&self, site_id: i64) -> Result<Vec<ApiKey>> {
        let rows = sqlx::query(
            "SELECT id, site_id, publishable_key, created_at, revoked_at FROM api_keys
             WHERE site_id = $1 ORDER BY id",
        )
        .bind(site_id)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.iter().map(key_from_row).collect::<Result<_, _>>()?)
    }

    async fn revoke_key(&self, publishable_key: &str, now: i64) -> Result<ApiKey> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE publishable_key = $2
             RETURNING id, site_id, publishable_key, created_at, revoked_at",
        )
        .bind(now)
        .bind(publishable_key)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StorageError::NotFound)?;
        let key = key_from_row(&row)?;
        log::record(&mut tx, key.site_id, &LogEntry::keys(), now).await?;
        tx.commit().await?;
        Ok(key)
    }

    async fn credentials(&self, publishable_key: &str) -> Result<Option<KeyCredentials>> {
        let row = sqlx::query(
            "SELECT k.id, k.site_id, s.uuid, k.secret_hash, k.revoked_at IS NOT NULL AS revoked,
                    COALESCE(h.keys_seq, 0) AS keys_seq
             FROM api_keys k JOIN sites s ON s.id = k.site_id
             LEFT JOIN change_heads h ON h.site_id = k.site_id
             WHERE k.publishable_key = $1",
        )
        .bind(publishable_key)
        .fetch_optional(&self.reader)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(KeyCredentials {
            key_id: row.try_get("id")?,
            site_id: row.try_get("site_id")?,
            site_uuid: row.try_get("uuid")?,
            secret_hash: row.try_get("secret_hash")?,
            revoked: row.try_get("revoked")?,
            keys_seq: row.try_get("keys_seq")?,
        }))
    }

    async fn list_segments(&self, site_id: i64, listing: Listing) -> Result<Vec<Segment>> {
        let mut conn = self.reader.acquire().await?;
        segments_in(&mut conn, site_id, listing).await
    }

    async fn get_segment(&self, site_id: i64, id: SegmentId) -> Result<Option<Segment>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            segment_columns!(),
            " FROM segments WHERE id = $1 AND site_id = $2"
        ))
        .bind(id.0)
        .bind(site_id)
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(segment_from_row).transpose()
    }

    async fn create_segment(&self, site_id: i64, new: &NewSegment, now: i64) -> Result<Segment> {
        let mut tx = self.begin_write().await?;
        check_references(&mut tx, site_id, None, &new.query).await?;
        let row = sqlx::query(concat!(
            "INSERT INTO segments (site_id, name, name_key, description, query, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING ",
            segment_columns!()
        ))
            .bind(site_id)
            .bind(new.name.as_str())
            .bind(new.name.key())
            .bind(new.description.as_ref().map(|d| d.as_str()))
            .bind(new.query.as_str())
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(name_conflict)?;
        let created = segment_from_row(&row)?;
        log::record(&mut tx, site_id, &LogEntry::segment(created.id.0), now).await?;
        tx.commit().await?;
        Ok(created)
    }

    async fn update_segment(
        &self,
        site_id: i64,
        id: SegmentId,
        patch: &SegmentPatch,
        precondition: &Precondition,
        now: i64,
    ) -> Result<Segment> {
        let mut tx = self.begin_write().await?;
        let current = segment_for_update(&mut tx, site_id, id).await?;
        if !current.is_kept() {
            return Err(StorageError::NotFound);
        }
        if !precondition.allows(current.version) {
            return Err(StorageError::PreconditionFailed);
        }
        if !current.differs_from(patch) {
            return Ok(current);
        }
        if let Some(query) = &patch.query {
            check_references(&mut tx, site_id, Some(id), query).await?;
        }
        let (name, description, query) = current.patched(patch);
        sqlx::query(
            "UPDATE segments SET name = $1, name_key = $2, description = $3, query = $4,
             updated_at = $5, version = version + 1 WHERE id = $6",
        )
        .bind(&name)
        .bind(name_key(&name))
        .bind(description)
        .bind(query.as_str())
        .bind(next_updated_at(current.updated_at, now))
        .bind(id.0)
        .execute(&mut *tx)
        .await
        .map_err(name_conflict)?;
        let updated = segment_for_update(&mut tx, site_id, id).await?;
        log::record(&mut tx, site_id, &LogEntry::segment(id.0), now).await?;
        tx.commit().await?;
        Ok(updated)
    }

    async fn discard_segment(
        &self,
        site_id: i64,
        id: SegmentId,
        precondition: &Precondition,
        now: i64,
    ) -> Result<Segment> {
        self.move_segment(site_id, id, precondition, now, Listing::Discarded)
            .await
    }

    async fn restore_segment(
        &self,
        site_id: i64,
        id: SegmentId,
        precondition: &Precondition,
        now: i64,
    ) -> Result<Segment> {
        self.move_segment(site_id, id, precondition, now, Listing::Kept)
            .await
    }
}

#[async_trait]
impl ChangeFeed for SqliteStore {
    fn change_signal(&self) -> Option<Signal> {
        self.signal.read()
    }

    async fn site_head(&self, site_id: i64) -> Result<SiteHead> {
        self.read_head(site_id).await
    }

    async fn load_snapshot(&self, site_id: i64, progress: &ReadProgress) -> Result<Loaded> {
        self.read_snapshot(site_id, progress).await
    }

    async fn read_changes(
        &self,
        site_id: i64,
        since: Position,
        columns: &[(String, DetailPath)],
        with_segments: bool,
        progress: &ReadProgress,
    ) -> Result<Changes> {
        self.read_changes(site_id, since, columns, with_segments, progress)
            .await
    }

    async fn load_details(
        &self,
        site_id: i64,
        kind: &str,
        path: &DetailPath,
        progress: &ReadProgress,
    ) -> Result<Vec<corral_core::columns::Val>> {
        self.read_details(site_id, kind, path, progress).await
    }

    async fn log_entry(&self, site_id: i64, seq: i64) -> Result<Option<(i64, String)>> {
        Ok(
            sqlx::query_as("SELECT at, entry FROM change_log WHERE site_id = $1 AND seq = $2")
                .bind(site_id)
                .bind(seq)
                .fetch_optional(&self.reader)
                .await?,
        )
    }

    async fn trim_log(&self, before: i64) -> Result<u64> {
        /// Entries deleted per write transaction, so that trimming never
        /// holds the write lock for long.
        const PER_TRANSACTION: i64 = 5_000;
        let mut deleted = 0;
        loop {
            let mut tx = self.begin_write().await?;
            let done = sqlx::query(
                "DELETE FROM change_log WHERE (site_id, seq) IN (
                     SELECT l.site_id, l.seq FROM change_log l
                     JOIN change_heads h ON h.site_id = l.site_id
                     WHERE l.at < $1 AND l.seq < h.seq
                     LIMIT $2)",
            )
            .bind(before)
            .bind(PER_TRANSACTION)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            deleted += done;
            if done < PER_TRANSACTION as u64 {
                return Ok(deleted);
            }
        }
    }

    async fn database_id(&self) -> Result<String> {
        Ok(
            sqlx::query_scalar("SELECT value FROM meta WHERE key = 'database_id'")
                .fetch_one(&self.reader)
                .await?,
        )
    }
}

async fn insert_key(
    tx: &mut Transaction<'static, Sqlite>,
    site_id: i64,
    keys: &KeyPair,
    now: i64,
) -> Result<ApiKey> {
    let row = sqlx::query(
        "INSERT INTO api_keys (site_id, publishable_key, secret_hash, created_at)
         VALUES ($1, $2, $3, $4)
         RETURNING id, site_id, publishable_key, created_at, revoked_at",
    )
    .bind(site_id)
    .bind(&keys.publishable_key)
    .bind(keys.secret_hash())
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    key_from_row(&row)
}
