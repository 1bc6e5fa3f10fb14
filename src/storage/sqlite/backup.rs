//! A consistent copy of a SQLite database while a server uses it: SQLite's
//! `VACUUM INTO`, run on a connection of its own. The copy is the database
//! as one read transaction sees it, so it holds every transaction committed
//! before that read began and none after, whatever writers do meanwhile (in
//! WAL mode they go on; the copy only holds back the checkpoint of what they
//! write until it ends). No statement writes to the database and no
//! migration is applied: a newer `corral` may copy an older server's
//! database before an upgrade, and the copy is of the schema the server
//! runs. The connection is not read-only so that, when no server has the
//! file open, closing it folds and removes the `-wal` and `-shm` files its
//! opening made, as a server's clean stop does.

use crate::storage::{Result, StorageError};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};
use std::path::Path;
use std::time::Duration;

/// How long the copy waits for a lock another connection holds (a
/// checkpoint that truncates the WAL, a migration): far longer than either.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Writes the database at `database` into `into`, which must be an empty
/// file or not exist: SQLite refuses any other. The file is written by
/// SQLite and not synced: the caller syncs it before it counts on it.
pub async fn vacuum_into(database: &Path, into: &Path) -> Result<()> {
    if !database.is_file() {
        return Err(StorageError::Database(format!(
            "no database file at {}",
            database.display()
        )));
    }
    let target = into
        .to_str()
        .ok_or_else(|| StorageError::Database(format!("{} is not a UTF-8 path", into.display())))?;
    let options = SqliteConnectOptions::new()
        .filename(database)
        .create_if_missing(false)
        .busy_timeout(BUSY_TIMEOUT)
        .disable_statement_logging();
    let mut connection = options.connect().await?;
    let copied = sqlx::query("VACUUM INTO $1")
        .bind(target)
        .execute(&mut connection)
        .await;
    let closed = connection.close().await;
    copied?;
    closed?;
    Ok(())
}
