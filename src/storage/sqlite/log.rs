//! Writing the change log on SQLite: one entry per write transaction and
//! site, under the next position of the site's head row.
//!
//! SQLite has one writer at a time (`BEGIN IMMEDIATE`), so positions are in
//! commit order whatever the order of statements inside a transaction; the
//! head row is still updated inside the writing transaction, as a backend
//! with concurrent writers must do (there, first, to hold the row lock until
//! commit).

use crate::storage::{LogEntry, Result};
use sqlx::SqliteConnection;

/// Appends `entry` as the site's next entry and moves its heads; an empty
/// entry records nothing.
pub(super) async fn record(
    conn: &mut SqliteConnection,
    site_id: i64,
    entry: &LogEntry,
    now: i64,
) -> Result<()> {
    if entry.is_empty() {
        return Ok(());
    }
    let segments = !entry.segments.is_empty();
    let seq: i64 = sqlx::query_scalar(
        "INSERT INTO change_heads (site_id, seq, segments_seq, keys_seq)
         VALUES ($1, 1, CASE WHEN $2 THEN 1 ELSE 0 END, CASE WHEN $3 THEN 1 ELSE 0 END)
         ON CONFLICT (site_id) DO UPDATE SET
             seq = change_heads.seq + 1,
             segments_seq = CASE WHEN $2 THEN change_heads.seq + 1 ELSE change_heads.segments_seq END,
             keys_seq = CASE WHEN $3 THEN change_heads.seq + 1 ELSE change_heads.keys_seq END
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

/// The highest event id handed out so far (0 before any): events stored
/// after this call get higher ids (`AUTOINCREMENT` never reuses one).
pub(super) async fn events_high(conn: &mut SqliteConnection) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)",
    )
    .fetch_one(&mut *conn)
    .await?)
}
