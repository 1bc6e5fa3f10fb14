//! The change log on PostgreSQL, beyond what [`crate::storage::sql::log`]
//! writes for every backend: the site's head row is locked first in every
//! write transaction of the site ([`lock_head`]) and held to commit, so that
//! transactions of one site take their positions, and their event ids, in
//! commit order.

use crate::storage::{Result, StorageError};
use sqlx::PgConnection;

/// Locks the site's head row until the transaction ends, creating it if a
/// site somehow has none. A wait for it past the transaction's
/// `lock_timeout` (what is left of a request's wait) is the database being
/// unavailable to this request: try again.
pub(super) async fn lock_head(conn: &mut PgConnection, site_id: i64) -> Result<()> {
    let locked: Option<i64> =
        sqlx::query_scalar("SELECT seq FROM change_heads WHERE site_id = $1 FOR UPDATE")
            .bind(site_id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(|error| match &error {
                // lock_not_available
                sqlx::Error::Database(db) if db.code().as_deref() == Some("55P03") => {
                    StorageError::Unavailable(
                        "the site's head row stayed locked by other writes longer than \
                         the request may wait"
                            .into(),
                    )
                }
                _ => error.into(),
            })?;
    if locked.is_none() {
        sqlx::query(
            "INSERT INTO change_heads (site_id) SELECT id FROM sites WHERE id = $1
             ON CONFLICT (site_id) DO NOTHING",
        )
        .bind(site_id)
        .execute(&mut *conn)
        .await?;
        sqlx::query("SELECT seq FROM change_heads WHERE site_id = $1 FOR UPDATE")
            .bind(site_id)
            .fetch_optional(&mut *conn)
            .await?;
    }
    Ok(())
}
