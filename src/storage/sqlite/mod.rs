//! The embedded backend: one SQLite file in WAL mode.
//!
//! Reads go through a pool of read-only connections, which WAL lets run
//! alongside the writer; every write goes through a single connection and
//! starts with `BEGIN IMMEDIATE`, so writers queue in the pool (and, across
//! processes, in SQLite's busy handler) instead of failing with "database is
//! locked". `synchronous = FULL` makes every acknowledged commit durable.
//!
//! What SQLite does its own way is here ([`Backend`]); every other statement
//! is the shared SQL of [`crate::storage::sql`]. Whether anything was
//! committed since a moment, by this process or another, is read without a
//! round trip from the header of SQLite's WAL index ([`signal`]); audience
//! batches are committed in groups by one writer task ([`group_commit`]) and
//! written in bulk where they can be ([`bulk`]); a snapshot is read a chunk
//! of rows at a time as JSON ([`snapshot`]); `corral backup` copies the
//! file while it serves ([`backup`]).

pub(crate) mod backup;
mod bulk;
mod caps;
mod group_commit;
mod log;
mod signal;
mod snapshot;
mod transfer;

use super::sql::Backend;
use super::{Result, Signal};
use async_trait::async_trait;
use corral_core::audience::{Limits, Outcome, SubscriberChange};
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Connection, Sqlite, SqliteConnection, Transaction};
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
    /// Audience writes, committed in groups.
    group: group_commit::GroupWriter,
    /// The caps every audience write is held to.
    limits: Limits,
    signal: signal::ShmSignal,
    /// Held open for the store's life (until [`crate::storage::Store::close`]):
    /// while any connection is open, the WAL index file that [`signal`] reads
    /// stays in place.
    keep_open: tokio::sync::Mutex<Option<SqliteConnection>>,
    /// The membership journal's state (shared with the group writer).
    journal: std::sync::Arc<crate::storage::journal::Journal>,
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
        create_private(path);
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
        let journal = std::sync::Arc::new(crate::storage::journal::Journal::default());
        let group = group_commit::GroupWriter::start(
            writer.clone(),
            limits,
            std::sync::Arc::clone(&journal),
        );
        Ok(Self {
            reader,
            writer,
            group,
            limits,
            signal: signal::ShmSignal::new(path),
            keep_open: tokio::sync::Mutex::new(Some(keep_open)),
            journal,
        })
    }

    /// A write transaction: the writer's connection, `BEGIN IMMEDIATE`.
    async fn begin_immediate(&self) -> Result<Transaction<'static, Sqlite>> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }
}

/// Creates the database file empty (an empty file is an empty database),
/// readable and writable by its owner only, when there is none yet: SQLite
/// would create it readable by everyone (0644 less the umask), and it gives
/// the write-ahead log and the shared-memory index it makes beside the file
/// the file's own mode. The mode is set after creation too, so that no umask
/// changes it. An existing file keeps the mode its owner gave it (a group
/// allowed to read it for backups, say); a warning says when other users may
/// read it. Any other failure is left to SQLite's open to report.
fn create_private(path: &str) {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if path.is_empty() || path == ":memory:" {
        return;
    }
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    match created {
        Ok(file) => {
            if let Err(error) = file.set_permissions(std::fs::Permissions::from_mode(0o600)) {
                tracing::warn!(path, %error, "could not make the new database file private");
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            if let Ok(meta) = std::fs::metadata(path)
                && meta.is_file()
                && meta.permissions().mode() & 0o077 != 0
            {
                tracing::warn!(
                    path,
                    mode = format!("{:04o}", meta.permissions().mode() & 0o7777),
                    "other users may read the database file (subscribers and webhook secrets): \
                     chmod 600 it, and its -wal and -shm files, unless that is meant"
                );
            }
        }
        Err(_) => {}
    }
}

#[async_trait]
impl Backend for SqliteStore {
    type Conn = SqliteConnection;
    type Read = PoolConnection<Sqlite>;
    type Write = Transaction<'static, Sqlite>;

    async fn reader(&self) -> Result<Self::Read> {
        Ok(self.reader.acquire().await?)
    }

    /// One writer for every site: a site's writes are serialised with all
    /// the others'.
    async fn writer(&self, _site_id: Option<i64>) -> Result<Self::Write> {
        self.begin_immediate().await
    }

    fn limits(&self) -> &Limits {
        &self.limits
    }

    fn journal(&self) -> &crate::storage::journal::Journal {
        &self.journal
    }

    async fn close_database(&self) {
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

    fn commit_signal(&self) -> Option<Signal> {
        self.signal.read()
    }

    async fn write_audience(
        &self,
        site_id: i64,
        changes: Vec<SubscriberChange>,
        now: i64,
        mark: Option<crate::storage::imports::ImportMark>,
    ) -> Result<Vec<Outcome>> {
        self.group.apply(site_id, changes, now, mark).await
    }
}
