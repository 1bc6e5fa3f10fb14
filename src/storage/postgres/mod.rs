//! The server backend: PostgreSQL, shared by any number of Corral servers.
//!
//! The schema (`migrations/postgres/`) holds the same records as SQLite's,
//! with JSON kept as the text it was written as and names compared in byte
//! order (`COLLATE "C"`), so that both backends give the same answers byte
//! for byte. Several servers may write at once: every write transaction of a
//! site first locks the site's change head row ([`log::lock_head`]) and
//! holds it to commit, so a site's writes, its change-log positions and its
//! event ids all follow commit order, a field merge never loses a concurrent
//! update, and the segment rules checked inside a write see every segment
//! committed before it. Writes of different sites run side by side. The
//! meaning of every change comes from [`corral_core::audience::apply`] and
//! [`crate::segment::references`], as on SQLite.
//!
//! There is no cheap commit signal across servers, so every freshness check
//! asks the database for the site's head: one indexed read per request.

mod audience;
mod bulk;
mod caps;
mod group;
mod log;
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
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Connection, PgConnection, Postgres, Row, Transaction};
use std::str::FromStr;
use std::time::Duration;

/// Connections each server keeps to the database, unless the URL's
/// `max_connections` parameter says otherwise.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 16;
/// How long a request waits for a free connection (or for the database to
/// answer a new one) before it fails.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

type Tx = Transaction<'static, Postgres>;

pub struct PgStore {
    pool: PgPool,
    /// The caps every audience write is held to.
    limits: Limits,
    /// Columns writes of a site, committed in groups.
    groups: group::Groups,
}

impl PgStore {
    /// Connects to the database a `postgres://` URL names and brings its
    /// schema up to date. The URL may carry `max_connections=N` (the pool's
    /// size, [`DEFAULT_MAX_CONNECTIONS`] when absent) beside libpq's usual
    /// parameters.
    pub async fn open(url: &str) -> Result<Self> {
        Self::open_with_limits(url, Limits::default()).await
    }

    pub async fn open_with_limits(url: &str, limits: Limits) -> Result<Self> {
        let (url, max_connections) = split_pool_size(url)?;
        let options = PgConnectOptions::from_str(&url)
            .map_err(|e| StorageError::Database(redact(&e.to_string(), &url)))?
            .application_name("corral");
        // One connection first, without the pool's retries, so that a server
        // down or a wrong password is told at once and in its own words.
        // Several servers starting together migrate one at a time (sqlx
        // holds an advisory lock).
        let mut first = PgConnection::connect_with(&options)
            .await
            .map_err(|e| StorageError::Database(redact(&connect_error(e), &url)))?;
        sqlx::migrate!("migrations/postgres")
            .run(&mut first)
            .await?;
        first.close().await?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .min_connections(1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|e| StorageError::Database(redact(&connect_error(e), &url)))?;
        Ok(Self {
            pool,
            limits,
            groups: group::Groups::default(),
        })
    }

    /// A write transaction of `site_id`, holding the site's head row (see
    /// the module's documentation) until it commits.
    async fn begin_site_write(&self, site_id: i64) -> Result<Tx> {
        let mut tx = self.pool.begin().await?;
        log::lock_head(&mut tx, site_id).await?;
        Ok(tx)
    }

    async fn move_segment(
        &self,
        site_id: i64,
        id: SegmentId,
        precondition: &Precondition,
        now: i64,
        to: Listing,
    ) -> Result<Segment> {
        let discarding = to == Listing::Discarded;
        let mut tx = self.begin_site_write(site_id).await?;
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
             WHERE site_id = $3 AND id = $4",
        )
        .bind(discarding.then_some(at))
        .bind(at)
        .bind(site_id)
        .bind(id.0)
        .execute(&mut *tx)
        .await
        .map_err(name_conflict)?;
        let moved = segment_for_update(&mut tx, site_id, id).await?;
        log::record(&mut tx, site_id, &LogEntry::segment(id.0), now).await?;
        tx.commit().await?;
        Ok(moved)
    }
}

/// Takes Corral's own `max_connections` parameter out of the URL.
fn split_pool_size(url: &str) -> Result<(String, u32)> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), DEFAULT_MAX_CONNECTIONS));
    };
    let mut size = DEFAULT_MAX_CONNECTIONS;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.strip_prefix("max_connections=") {
            Some(value) => {
                size = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| {
                        StorageError::Database(format!(
                            "max_connections must be a number from 1 to 1000, not {value:?}"
                        ))
                    })?;
            }
            None => kept.push(pair),
        }
    }
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((url, size))
}

/// A connection failure in words an operator can act on.
fn connect_error(error: sqlx::Error) -> String {
    match &error {
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            match code.as_ref() {
                "28P01" | "28000" => {
                    format!("the server refused the credentials: {}", db.message())
                }
                "3D000" => format!("no such database: {}", db.message()),
                _ => db.message().to_owned(),
            }
        }
        sqlx::Error::Io(io) => format!("cannot reach the PostgreSQL server: {io}"),
        sqlx::Error::PoolTimedOut => {
            "cannot reach the PostgreSQL server: no connection within 5 s".to_owned()
        }
        other => other.to_string(),
    }
}

/// `message` without the URL's password, wherever it appears.
fn redact(message: &str, url: &str) -> String {
    let password = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .and_then(|(user, _)| user.split_once(':'))
        .map(|(_, password)| password)
        .filter(|p| !p.is_empty());
    match password {
        Some(password) => message.replace(password, "***"),
        None => message.to_owned(),
    }
}

/// The columns [`segment_from_row`] reads.
macro_rules! segment_columns {
    () => {
        "id, name, description, query, created_at, updated_at, discarded_at, version"
    };
}

fn site_from_row(row: &PgRow) -> Result<Site> {
    Ok(Site {
        id: row.try_get("id")?,
        uuid: row.try_get("uuid")?,
        name: row.try_get("name")?,
        demo: row.try_get("demo")?,
        created_at: row.try_get("created_at")?,
    })
}

fn key_from_row(row: &PgRow) -> Result<ApiKey> {
    Ok(ApiKey {
        id: row.try_get("id")?,
        site_id: row.try_get("site_id")?,
        publishable_key: row.try_get("publishable_key")?,
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

fn segment_from_row(row: &PgRow) -> Result<Segment> {
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

async fn segments_in(
    conn: &mut PgConnection,
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

async fn check_references(
    tx: &mut Tx,
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

/// Whether another kept segment of the site has this name key.
async fn name_in_use(
    tx: &mut Tx,
    site_id: i64,
    key: &str,
    other_than: Option<SegmentId>,
) -> Result<bool> {
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM segments
         WHERE site_id = $1 AND name_key = $2 AND discarded_at IS NULL AND id <> $3",
    )
    .bind(site_id)
    .bind(key)
    .bind(other_than.map_or(0, |id| id.0))
    .fetch_optional(&mut **tx)
    .await?;
    Ok(found.is_some())
}

async fn segment_for_update(tx: &mut Tx, site_id: i64, id: SegmentId) -> Result<Segment> {
    let row = sqlx::query(concat!(
        "SELECT ",
        segment_columns!(),
        " FROM segments WHERE site_id = $1 AND id = $2"
    ))
    .bind(site_id)
    .bind(id.0)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(StorageError::NotFound)?;
    segment_from_row(&row)
}

async fn insert_key(tx: &mut Tx, site_id: i64, keys: &KeyPair, now: i64) -> Result<ApiKey> {
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

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    async fn create_site(
        &self,
        name: &str,
        uuid: &str,
        keys: &KeyPair,
        demo: bool,
        now: i64,
    ) -> Result<Site> {
        let mut tx = self.pool.begin().await?;
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
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(site_from_row).collect()
    }

    async fn find_site(&self, uuid: &str) -> Result<Option<Site>> {
        let row = sqlx::query("SELECT id, uuid, name, demo, created_at FROM sites WHERE uuid = $1")
            .bind(uuid)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(site_from_row).transpose()
    }

    async fn find_demo_site(&self) -> Result<Option<Site>> {
        let row = sqlx::query(
            "SELECT id, uuid, name, demo, created_at FROM sites WHERE demo ORDER BY id LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(site_from_row).transpose()
    }

    async fn add_key(&self, site_id: i64, keys: &KeyPair, now: i64) -> Result<ApiKey> {
        let mut tx = self.begin_site_write(site_id).await?;
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
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(key_from_row).collect()
    }

    async fn revoke_key(&self, publishable_key: &str, now: i64) -> Result<ApiKey> {
        let site_id: i64 =
            sqlx::query_scalar("SELECT site_id FROM api_keys WHERE publishable_key = $1")
                .bind(publishable_key)
                .fetch_optional(&self.pool)
                .await?
                .ok_or(StorageError::NotFound)?;
        let mut tx = self.begin_site_write(site_id).await?;
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
        .fetch_optional(&self.pool)
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
        let mut conn = self.pool.acquire().await?;
        segments_in(&mut conn, site_id, listing).await
    }

    async fn get_segment(&self, site_id: i64, id: SegmentId) -> Result<Option<Segment>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            segment_columns!(),
            " FROM segments WHERE site_id = $1 AND id = $2"
        ))
        .bind(site_id)
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(segment_from_row).transpose()
    }

    async fn create_segment(&self, site_id: i64, new: &NewSegment, now: i64) -> Result<Segment> {
        let mut tx = self.begin_site_write(site_id).await?;
        check_references(&mut tx, site_id, None, &new.query).await?;
        // Told before inserting, so that no id is taken from the sequence
        // for a name that is taken (the index still has the last word).
        if name_in_use(&mut tx, site_id, &new.name.key(), None).await? {
            return Err(StorageError::NameTaken);
        }
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
        let mut tx = self.begin_site_write(site_id).await?;
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
        if name_in_use(&mut tx, site_id, &name_key(&name), Some(id)).await? {
            return Err(StorageError::NameTaken);
        }
        sqlx::query(
            "UPDATE segments SET name = $1, name_key = $2, description = $3, query = $4,
             updated_at = $5, version = version + 1 WHERE site_id = $6 AND id = $7",
        )
        .bind(&name)
        .bind(name_key(&name))
        .bind(description)
        .bind(query.as_str())
        .bind(next_updated_at(current.updated_at, now))
        .bind(site_id)
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
impl ChangeFeed for PgStore {
    fn change_signal(&self) -> Option<Signal> {
        None
    }

    async fn site_head(&self, site_id: i64) -> Result<SiteHead> {
        let row: Option<(i64, i64, i64)> = sqlx::query_as(
            "SELECT seq, segments_seq, keys_seq FROM change_heads WHERE site_id = $1",
        )
        .bind(site_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(
            row.map_or_else(SiteHead::default, |(seq, segments_seq, keys_seq)| {
                SiteHead {
                    seq,
                    segments_seq,
                    keys_seq,
                }
            }),
        )
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
        let mut conn = self.pool.acquire().await?;
        progress.stage(crate::storage::progress::Stage::Details);
        snapshot::details(&mut conn, site_id, kind, path, None, progress).await
    }

    async fn log_entry(&self, site_id: i64, seq: i64) -> Result<Option<(i64, String)>> {
        Ok(
            sqlx::query_as("SELECT at, entry FROM change_log WHERE site_id = $1 AND seq = $2")
                .bind(site_id)
                .bind(seq)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn trim_log(&self, before: i64) -> Result<u64> {
        const PER_TRANSACTION: i64 = 5_000;
        let mut deleted = 0;
        loop {
            let done = sqlx::query(
                "DELETE FROM change_log WHERE (site_id, seq) IN (
                     SELECT l.site_id, l.seq FROM change_log l
                     JOIN change_heads h ON h.site_id = l.site_id
                     WHERE l.at < $1 AND l.seq < h.seq
                     LIMIT $2)",
            )
            .bind(before)
            .bind(PER_TRANSACTION)
            .execute(&self.pool)
            .await?
            .rows_affected();
            deleted += done;
            if done < PER_TRANSACTION as u64 {
                return Ok(deleted);
            }
        }
    }

    async fn database_id(&self) -> Result<String> {
        Ok(
            sqlx::query_scalar("SELECT value FROM meta WHERE key = 'database_id'")
                .fetch_one(&self.pool)
                .await?,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_size_comes_out_of_the_url() {
        assert_eq!(
            split_pool_size("postgres://u@h/db").unwrap(),
            ("postgres://u@h/db".into(), DEFAULT_MAX_CONNECTIONS)
        );
        assert_eq!(
            split_pool_size("postgres://u@h/db?max_connections=4&sslmode=disable").unwrap(),
            ("postgres://u@h/db?sslmode=disable".into(), 4)
        );
        assert!(split_pool_size("postgres://u@h/db?max_connections=0").is_err());
        assert!(split_pool_size("postgres://u@h/db?max_connections=x").is_err());
    }

    #[test]
    fn passwords_never_reach_a_message() {
        assert_eq!(
            redact("bad s3cret here", "postgres://corral:s3cret@db/x"),
            "bad *** here"
        );
        assert_eq!(redact("plain", "postgres://corral@db/x"), "plain");
    }
}
