//! Writing the change log on PostgreSQL: the site's head row is locked first
//! in every write transaction of the site ([`lock_head`]) and held to commit,
//! so that transactions of one site take their positions, and their event
//! ids, in commit order; [`record`] then appends the transaction's entry
//! under the next position.

use crate::storage::{LogEntry, Result};
use sqlx::PgConnection;

/// Locks the site's head row until the transaction ends, creating it if a
/// site somehow has none.
pub(super) async fn lock_head(conn: &mut PgConnection, site_id: i64) -> Result<()> {
    let locked: Option<i64> =
        sqlx::query_scalar("SELECT seq FROM change_heads WHERE site_id = $1 FOR UPDATE")
            .bind(site_id)
            .fetch_optional(&mut *conn)
            .await?;
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

/// Appends `entry` as the site's next entry and moves its heads; an empty
/// entry records nothing. The caller holds the head ([`lock_head`]).
pub(super) async fn record(
    conn: &mut PgConnection,
    site_id: i64,
    entry: &LogEntry,
    now: i64,
) -> Result<()> {
    if entry.is_empty() {
        return Ok(());
    }
    let segments = !entry.segments.is_empty();
    let seq: i64 = sqlx::query_scalar(
        "UPDATE change_heads SET
             seq = seq + 1,
             segments_seq = CASE WHEN $2 THEN seq + 1 ELSE segments_seq END,
             keys_seq = CASE WHEN $3 THEN seq + 1 ELSE keys_seq END
         WHERE site_id = $1
         RETURNING seq",
    )
    .bind(site_id)
    .bind(segments)
    .bind(entry.keys)
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query("INSERT INTO change_log (site_id, seq, at, entry) VALUES ($1, $2, $3, $4)")
        .bind(site_id)
        .bind(seq)
        .bind(now)
        .bind(entry.to_json())
        .execute(&mut *conn)
        .await?;
    Ok(())
}
