//! What the backends built on sqlx share: turning the driver's errors into
//! the backend-neutral [`StorageError`], so that nothing above storage sees
//! a driver type. A backend that needs a finer reading of an error (a unique
//! index violated is a name taken) looks at the driver's error before this
//! conversion.

use super::StorageError;

impl From<sqlx::Error> for StorageError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            // The database's own words, without sqlx's wrapping of them.
            sqlx::Error::Database(e) => Self::Database(e.message().to_owned()),
            other => Self::Database(other.to_string()),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StorageError {
    fn from(error: sqlx::migrate::MigrateError) -> Self {
        Self::Migrate(error.to_string())
    }
}
