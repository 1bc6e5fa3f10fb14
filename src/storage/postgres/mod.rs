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
//! committed before it. Writes of different sites run side by side.
//!
//! What PostgreSQL does its own way is here ([`Backend`]); every other
//! statement is the shared SQL of [`crate::storage::sql`]. There is no cheap
//! commit signal across servers, so every freshness check asks the database
//! for the site's head: one indexed read per request. Audience batches of a
//! site are committed in groups ([`group_commit`]) and written in bulk with
//! `UNNEST` where they can be ([`bulk`]); a snapshot is read a page of rows
//! at a time in one `REPEATABLE READ` transaction ([`snapshot`]).
//!
//! A request waits for the database (a connection of the pool, its turn in
//! a group, the site's head row) for what is left of its one budget
//! ([`crate::storage::wait`]), then fails as unavailable (503 with
//! `Retry-After`), so that an outage answers every request within that
//! budget instead of queueing them one behind another.

mod bulk;
mod group_commit;
mod log;
mod snapshot;
mod transfer;

use super::sql::Backend;
use super::{Result, Signal, StorageError, wait};
use async_trait::async_trait;
use corral_core::audience::{Limits, Outcome, SubscriberChange};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, PgConnection, Postgres, Transaction};
use std::str::FromStr;
use std::time::Duration;
use tokio::time::Instant;

/// Connections each server keeps to the database, unless the URL's
/// `max_connections` parameter says otherwise.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 16;
/// How long anything waits for a free connection (or for the database to
/// answer a new one) before it fails; a request waits no longer than what is
/// left of its budget.
const ACQUIRE_TIMEOUT: Duration = wait::DATABASE_WAIT;

type Tx = Transaction<'static, Postgres>;

pub struct PgStore {
    pool: PgPool,
    /// The caps every audience write is held to.
    limits: Limits,
    /// Columns writes of a site, committed in groups.
    groups: group_commit::Groups,
    /// The membership journal's state.
    journal: crate::storage::journal::Journal,
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
            .application_name("corral")
            // The server's notices ("relation _sqlx_migrations already
            // exists, skipping" on every start) are not worth a log line.
            .options([("client_min_messages", "warning")]);
        // One connection first, without the pool's retries, so that a server
        // down or a wrong password is told at once and in its own words.
        // Several servers starting together migrate one at a time (sqlx
        // holds an advisory lock).
        let mut first = match PgConnection::connect_with(&options).await {
            Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("3D000") => {
                create_database(&options)
                    .await
                    .map_err(|e| StorageError::Database(redact(&e, &url)))?;
                PgConnection::connect_with(&options).await
            }
            other => other,
        }
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
            groups: group_commit::Groups::default(),
            journal: Default::default(),
        })
    }

    /// A write transaction of `site_id`, holding the site's head row (see
    /// the module's documentation) until it commits; the connection and the
    /// row are waited for until `until` at most, when given.
    async fn begin_site_write(&self, site_id: i64, until: Option<Instant>) -> Result<Tx> {
        let Some(until) = until else {
            let mut tx = self.pool.begin().await?;
            log::lock_head(&mut tx, site_id).await?;
            return Ok(tx);
        };
        let mut tx = tokio::time::timeout_at(until, self.pool.begin())
            .await
            .map_err(|_| wait::spent())??;
        // PostgreSQL takes 0 as "no limit".
        let left = until
            .saturating_duration_since(Instant::now())
            .as_millis()
            .max(1);
        sqlx::query("SELECT set_config('lock_timeout', $1, true)")
            .bind(format!("{left}ms"))
            .execute(&mut *tx)
            .await?;
        log::lock_head(&mut tx, site_id).await?;
        Ok(tx)
    }

    /// A connection of the pool, waited for no longer than what is left of
    /// the request's wait.
    async fn acquire(&self) -> Result<PoolConnection<Postgres>> {
        match wait::waiting(self.pool.acquire()).await {
            Some(connection) => Ok(connection?),
            None => Err(wait::spent()),
        }
    }
}

#[async_trait]
impl Backend for PgStore {
    type Conn = PgConnection;
    type Read = PoolConnection<Postgres>;
    type Write = Tx;

    async fn reader(&self) -> Result<Self::Read> {
        self.acquire().await
    }

    /// A write of a site holds the site's head row to commit; a write of no
    /// one site is a plain transaction.
    async fn writer(&self, site_id: Option<i64>) -> Result<Self::Write> {
        match site_id {
            Some(site_id) => {
                let started = Instant::now();
                let tx = self.begin_site_write(site_id, wait::deadline()).await;
                wait::spend(started.elapsed());
                tx
            }
            None => match wait::waiting(self.pool.begin()).await {
                Some(tx) => Ok(tx?),
                None => Err(wait::spent()),
            },
        }
    }

    fn limits(&self) -> &Limits {
        &self.limits
    }

    fn journal(&self) -> &crate::storage::journal::Journal {
        &self.journal
    }

    async fn close_database(&self) {
        self.pool.close().await;
    }

    fn commit_signal(&self) -> Option<Signal> {
        None
    }

    async fn write_audience(
        &self,
        site_id: i64,
        changes: Vec<SubscriberChange>,
        now: i64,
        mark: Option<crate::storage::imports::ImportMark>,
    ) -> Result<Vec<Outcome>> {
        self.groups.apply(self, site_id, changes, now, mark).await
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
/// Creates the database `options` names, connecting to the cluster's
/// `postgres` database with the same role: a new deployment needs no
/// `createdb` when its role may create databases. Another server creating
/// it at the same time is no failure. What went wrong, in words that say
/// what to do, otherwise.
async fn create_database(options: &PgConnectOptions) -> std::result::Result<(), String> {
    let name = options.get_database().unwrap_or("postgres").to_owned();
    let role = options.get_username().to_owned();
    let mut admin = PgConnection::connect_with(&options.clone().database("postgres"))
        .await
        .map_err(|e| {
            format!(
                "the database {name:?} does not exist, and it could not be created                  ({}): create it with `createdb -O {role} {name}`",
                connect_error(e)
            )
        })?;
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    let created = sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {quoted}")))
        .execute(&mut admin)
        .await;
    let _ = admin.close().await;
    match created {
        Ok(_) => {
            tracing::info!(database = %name, "created the database");
            Ok(())
        }
        // Another server created it meanwhile.
        Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("42P04") => Ok(()),
        Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("42501") => Err(format!(
            "the database {name:?} does not exist, and the role {role:?} may not create \
             databases: create it with `createdb -O {role} {name}` (or `CREATE DATABASE \
             {quoted} OWNER {role}` as a superuser)"
        )),
        Err(e) => Err(format!(
            "the database {name:?} does not exist, and creating it failed: {}",
            connect_error(e)
        )),
    }
}

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

    /// A URL naming a database the cluster has not got: it is created
    /// (the test cluster's role may), and opening it again finds it.
    #[tokio::test]
    async fn a_missing_database_is_created_when_the_role_may() {
        let Some(existing) = crate::storage::testing::fresh_postgres().await else {
            return;
        };
        let (server, _) = existing.rsplit_once('/').unwrap();
        let name = format!("corral_new_{}", crate::credentials::random_hex_id());
        let url = format!("{server}/{name}");
        let store = PgStore::open(&url)
            .await
            .expect("a missing database is created");
        let (found,): (String,) = sqlx::query_as("SELECT current_database()")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(found, name);
        store.pool.close().await;
        PgStore::open(&url)
            .await
            .expect("and found the second time");
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
