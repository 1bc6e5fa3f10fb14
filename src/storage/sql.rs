//! What the backends built on sqlx share: turning the driver's errors into
//! the backend-neutral [`StorageError`], so that nothing above storage sees
//! a driver type. A backend that needs a finer reading of an error (a unique
//! index violated is a name taken) looks at the driver's error before this
//! conversion.

use super::StorageError;

impl From<sqlx::Error> for StorageError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::Database(e) if e.code().is_some_and(|c| unavailable(&c)) => {
                Self::Unavailable(e.message().to_owned())
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
