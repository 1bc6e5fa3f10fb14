//! The SQL both backends share, written once.
//!
//! Sites, keys, segments, webhooks and their deliveries, the audience's
//! plain reads, the change log's records and every table's rows for `corral
//! copy` are the same statements on SQLite and PostgreSQL: they are written
//! here, once, as functions over a [`Conn`] (a connection or an open
//! transaction of either database), and the [`Store`](super::Store) traits
//! are implemented once for every [`Backend`] ([`store`]). A backend's own
//! folder holds only what its database does differently: how its writes are
//! serialised (SQLite's single writer and its commit signal; PostgreSQL's
//! lock on the site's head row), bulk inserts and group commit, and how a
//! snapshot is read.
//!
//! A statement is text and its arguments ([`sql!`](crate::sql)): the text
//! uses `$1`-style placeholders, which both databases read, and is literal
//! (`&'static str`), as sqlx asks. The few statements whose text differs
//! choose theirs by [`Conn::DIALECT`]. Rows are read into structs that
//! derive `sqlx::FromRow`, for both drivers at once ([`Record`]).
//!
//! This module also turns the driver's errors into the backend-neutral
//! [`StorageError`], so that nothing above storage sees a driver type. A
//! statement that needs a finer reading of an error (a unique index violated
//! is a name taken) looks at the driver's error before this conversion.

pub(crate) mod apply;
pub(crate) mod audience;
pub(crate) mod audit;
pub(crate) mod caps;
pub(crate) mod checkpoints;
pub(crate) mod imports;
pub(crate) mod journal;
pub(crate) mod log;
pub(crate) mod manual;
pub(crate) mod segments;
pub(crate) mod sites;
pub mod store;
pub(crate) mod transfer;
pub(crate) mod versions;
pub(crate) mod webhooks;

pub use store::Backend;

use super::{Result, StorageError};
use futures_util::future::BoxFuture;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{FromRow, PgConnection, SqliteConnection};
use std::borrow::Cow;

/// Which database a statement runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The text of a statement written differently for each database.
    pub fn pick(self, sqlite: &'static str, postgres: &'static str) -> &'static str {
        match self {
            Self::Sqlite => sqlite,
            Self::Postgres => postgres,
        }
    }
}

/// A value bound to a statement's placeholder.
#[derive(Debug, Clone)]
pub enum Arg<'a> {
    Int(Option<i64>),
    Float(Option<f64>),
    Text(Option<Cow<'a, str>>),
    Bool(bool),
    Bytes(Cow<'a, [u8]>),
    /// A list of ids, for `id IN (SELECT value FROM json_each($n))` on
    /// SQLite (bound as a JSON array) and `id = ANY($n)` on PostgreSQL (an
    /// array).
    Ids(Cow<'a, [i64]>),
    /// A list of texts, bound as [`Arg::Ids`] is.
    Texts(Cow<'a, [String]>),
}

impl From<i64> for Arg<'_> {
    fn from(value: i64) -> Self {
        Self::Int(Some(value))
    }
}

impl From<Option<i64>> for Arg<'_> {
    fn from(value: Option<i64>) -> Self {
        Self::Int(value)
    }
}

impl From<f64> for Arg<'_> {
    fn from(value: f64) -> Self {
        Self::Float(Some(value))
    }
}

impl From<Option<f64>> for Arg<'_> {
    fn from(value: Option<f64>) -> Self {
        Self::Float(value)
    }
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(value: &'a str) -> Self {
        Self::Text(Some(Cow::Borrowed(value)))
    }
}

impl<'a> From<&'a String> for Arg<'a> {
    fn from(value: &'a String) -> Self {
        Self::Text(Some(Cow::Borrowed(value)))
    }
}

impl From<String> for Arg<'_> {
    fn from(value: String) -> Self {
        Self::Text(Some(Cow::Owned(value)))
    }
}

impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(value: Option<&'a str>) -> Self {
        Self::Text(value.map(Cow::Borrowed))
    }
}

impl From<Option<String>> for Arg<'_> {
    fn from(value: Option<String>) -> Self {
        Self::Text(value.map(Cow::Owned))
    }
}

impl From<bool> for Arg<'_> {
    fn from(value: bool) -> Self {
        Self::Bool(value)
    }
}

impl<'a> From<&'a [u8]> for Arg<'a> {
    fn from(value: &'a [u8]) -> Self {
        Self::Bytes(Cow::Borrowed(value))
    }
}

impl From<Vec<u8>> for Arg<'_> {
    fn from(value: Vec<u8>) -> Self {
        Self::Bytes(Cow::Owned(value))
    }
}

impl<'a> From<&'a [i64]> for Arg<'a> {
    fn from(value: &'a [i64]) -> Self {
        Self::Ids(Cow::Borrowed(value))
    }
}

impl From<Vec<i64>> for Arg<'_> {
    fn from(value: Vec<i64>) -> Self {
        Self::Ids(Cow::Owned(value))
    }
}

impl From<Vec<String>> for Arg<'_> {
    fn from(value: Vec<String>) -> Self {
        Self::Texts(Cow::Owned(value))
    }
}

impl<'a> From<&'a [String]> for Arg<'a> {
    fn from(value: &'a [String]) -> Self {
        Self::Texts(Cow::Borrowed(value))
    }
}

/// A statement: literal text with `$1`-style placeholders, and the values
/// bound to them, in order.
#[derive(Debug, Clone)]
pub struct Statement<'a> {
    pub text: &'static str,
    pub args: Vec<Arg<'a>>,
}

impl<'a> Statement<'a> {
    pub fn new(text: &'static str) -> Self {
        Self {
            text,
            args: Vec::new(),
        }
    }

    /// Binds the next placeholder.
    pub fn bind(mut self, value: impl Into<Arg<'a>>) -> Self {
        self.args.push(value.into());
        self
    }
}

/// `sql!(TEXT, a, b, …)`: the statement `TEXT` with `a` bound to `$1`, `b`
/// to `$2`, and so on.
#[macro_export]
macro_rules! sql {
    ($text:expr $(, $arg:expr)* $(,)?) => {
        $crate::storage::sql::Statement::new($text)$(.bind($arg))*
    };
}

/// A row as both drivers read it: a struct deriving `sqlx::FromRow`, or a
/// tuple.
pub trait Record:
    for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin + 'static
{
}

impl<T> Record for T where
    T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin + 'static
{
}

/// A connection, or an open transaction, of either database: what every
/// shared statement runs on. A transaction is one through `&mut *tx`.
pub trait Conn: Send {
    /// Which database this is.
    const DIALECT: Dialect;

    /// Every row the statement answers.
    fn all<'a, T: Record>(&'a mut self, statement: Statement<'a>) -> BoxFuture<'a, Result<Vec<T>>>;

    /// The first row, if any.
    fn optional<'a, T: Record>(
        &'a mut self,
        statement: Statement<'a>,
    ) -> BoxFuture<'a, Result<Option<T>>>;

    /// Runs the statement; how many rows it changed.
    fn execute<'a>(&'a mut self, statement: Statement<'a>) -> BoxFuture<'a, Result<u64>>;

    /// The one row the statement answers (an error when there is none).
    fn one<'a, T: Record>(&'a mut self, statement: Statement<'a>) -> BoxFuture<'a, Result<T>> {
        let row = self.optional(statement);
        Box::pin(async move {
            row.await?
                .ok_or_else(|| StorageError::ReadFailed("a statement answered no row".into()))
        })
    }
}

/// Binds a statement's arguments, in order, to a query of one driver
/// (`sqlx::query` or `sqlx::query_as`: both take `.bind`).
macro_rules! bound {
    ($query:expr, $args:expr, |$ids:ident| $bind_ids:expr) => {{
        let mut query = $query;
        for arg in $args {
            query = match arg {
                Arg::Int(v) => query.bind(v),
                Arg::Float(v) => query.bind(v),
                Arg::Text(v) => query.bind(v.map(Cow::into_owned)),
                Arg::Bool(v) => query.bind(v),
                Arg::Bytes(v) => query.bind(v.into_owned()),
                Arg::Ids($ids) => query.bind($bind_ids),
                Arg::Texts($ids) => query.bind($bind_ids),
            };
        }
        query
    }};
}

/// [`Conn`] for one driver's connection: the two impls below are this
/// template written out for SQLite and PostgreSQL, the same code over
/// different types; only how a list of ids is bound differs.
macro_rules! conn_for {
    ($conn:ty, $db:ty, $dialect:expr, |$ids:ident| $bind_ids:expr) => {
        impl Conn for $conn {
            const DIALECT: Dialect = $dialect;

            fn all<'a, T: Record>(
                &'a mut self,
                statement: Statement<'a>,
            ) -> BoxFuture<'a, Result<Vec<T>>> {
                Box::pin(async move {
                    let query = sqlx::query_as::<$db, T>(statement.text);
                    let query = bound!(query, statement.args, |$ids| $bind_ids);
                    Ok(query.fetch_all(self).await?)
                })
            }

            fn optional<'a, T: Record>(
                &'a mut self,
                statement: Statement<'a>,
            ) -> BoxFuture<'a, Result<Option<T>>> {
                Box::pin(async move {
                    let query = sqlx::query_as::<$db, T>(statement.text);
                    let query = bound!(query, statement.args, |$ids| $bind_ids);
                    Ok(query.fetch_optional(self).await?)
                })
            }

            fn execute<'a>(&'a mut self, statement: Statement<'a>) -> BoxFuture<'a, Result<u64>> {
                Box::pin(async move {
                    let query = sqlx::query::<$db>(statement.text);
                    let query = bound!(query, statement.args, |$ids| $bind_ids);
                    Ok(query.execute(self).await?.rows_affected())
                })
            }
        }
    };
}

conn_for!(SqliteConnection, sqlx::Sqlite, Dialect::Sqlite, |ids| {
    serde_json::to_string(&*ids).expect("ids always serialise")
});
conn_for!(PgConnection, sqlx::Postgres, Dialect::Postgres, |ids| ids
    .into_owned());

impl From<sqlx::Error> for StorageError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::Database(e) if e.code().is_some_and(|c| unavailable(&c)) => {
                Self::Unavailable(e.message().to_owned())
            }
            sqlx::Error::Database(e) if e.is_unique_violation() => {
                Self::Duplicate(e.message().to_owned())
            }
            // The database's own words, without sqlx's wrapping of them.
            sqlx::Error::Database(e) => Self::Database(e.message().to_owned()),
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => Self::Unavailable(error.to_string()),
            other => Self::Database(other.to_string()),
        }
    }
}

/// Whether an SQLSTATE says the server is going away or not accepting
/// connections yet (PostgreSQL's classes 08 and 57P: a restart), rather than
/// refusing the statement.
fn unavailable(code: &str) -> bool {
    code.starts_with("08") || code.starts_with("57P")
}

impl From<sqlx::migrate::MigrateError> for StorageError {
    fn from(error: sqlx::migrate::MigrateError) -> Self {
        Self::Migrate(error.to_string())
    }
}
