//! The change log's records, as both backends write and read them: an
//! entry appended under the site's next position inside the writing
//! transaction ([`record`]), an entry read back, trimming, and the
//! database's own id.
//!
//! Positions are handed out by the site's head row, updated inside the
//! writing transaction: on SQLite one writer at a time makes that commit
//! order; on PostgreSQL the writer has locked the row first (see the
//! backend), which makes it so.

use super::Conn;
use crate::sql;
use crate::storage::changes::{Named, walk_entries};
use crate::storage::{LogEntry, Result, SiteHead};

/// Appends `entry` as the site's next entry and moves its heads; an empty
/// entry records nothing.
pub async fn record(conn: &mut impl Conn, site_id: i64, entry: &LogEntry, now: i64) -> Result<()> {
    if entry.is_empty() {
        return Ok(());
    }
    let segments = !entry.segments.is_empty();
    let (seq,): (i64,) = conn
        .one(sql!(
            "INSERT INTO change_heads (site_id, seq, segments_seq, keys_seq)
             VALUES ($1, 1, CASE WHEN $2 THEN 1 ELSE 0 END, CASE WHEN $3 THEN 1 ELSE 0 END)
             ON CONFLICT (site_id) DO UPDATE SET
                 seq = change_heads.seq + 1,
                 segments_seq = CASE WHEN $2 THEN change_heads.seq + 1
                                     ELSE change_heads.segments_seq END,
                 keys_seq = CASE WHEN $3 THEN change_heads.seq + 1 ELSE change_heads.keys_seq END
             RETURNING seq",
            site_id,
            segments,
            entry.keys
        ))
        .await?;
    conn.execute(sql!(
        "INSERT INTO change_log (site_id, seq, at, entry) VALUES ($1, $2, $3, $4)",
        site_id,
        seq,
        now,
        entry.to_json()
    ))
    .await?;
    Ok(())
}

/// The site's heads (all 0 before its first entry).
pub async fn head(conn: &mut impl Conn, site_id: i64) -> Result<SiteHead> {
    let row: Option<(i64, i64, i64)> = conn
        .optional(sql!(
            "SELECT seq, segments_seq, keys_seq FROM change_heads WHERE site_id = $1",
            site_id
        ))
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

/// The entries of site `$1` after position `$2`.
pub const ENTRIES_AFTER: &str =
    "SELECT seq, entry FROM change_log WHERE site_id = $1 AND seq > $2 ORDER BY seq";

/// The entries of the site after position `since`, in order: `(seq, JSON)`.
pub async fn entries_after(
    conn: &mut impl Conn,
    site_id: i64,
    since: i64,
) -> Result<Vec<(i64, String)>> {
    conn.all(sql!(ENTRIES_AFTER, site_id, since)).await
}

/// What the entries after position `since` name, read in the caller's
/// transaction: the head they reach, how many there were, and what they
/// name (or [`crate::storage::StorageError::Stale`] when they do not reach
/// the head without a gap).
pub async fn named_since(
    conn: &mut impl Conn,
    site_id: i64,
    since: i64,
) -> Result<(i64, usize, Named)> {
    let head = head(conn, site_id).await?.seq;
    let rows = entries_after(conn, site_id, since).await?;
    let named = walk_entries(site_id, since, head, &rows)?;
    Ok((head, rows.len(), named))
}

/// The entry at a position, as stored (`at`, JSON), if it is still kept.
pub async fn entry(conn: &mut impl Conn, site_id: i64, seq: i64) -> Result<Option<(i64, String)>> {
    conn.optional(sql!(
        "SELECT at, entry FROM change_log WHERE site_id = $1 AND seq = $2",
        site_id,
        seq
    ))
    .await
}

/// Entries deleted per write transaction, so that trimming never holds a
/// writer for long.
pub const TRIM_PER_TRANSACTION: i64 = 5_000;

/// Deletes up to [`TRIM_PER_TRANSACTION`] entries written before `before`,
/// never a site's newest; how many it deleted.
pub async fn trim_some(conn: &mut impl Conn, before: i64) -> Result<u64> {
    conn.execute(sql!(
        "DELETE FROM change_log WHERE (site_id, seq) IN (
             SELECT l.site_id, l.seq FROM change_log l
             JOIN change_heads h ON h.site_id = l.site_id
             WHERE l.at < $1 AND l.seq < h.seq
             LIMIT $2)",
        before,
        TRIM_PER_TRANSACTION
    ))
    .await
}

/// The random id the database was given when it was created.
pub async fn database_id(conn: &mut impl Conn) -> Result<String> {
    let (id,): (String,) = conn
        .one(sql!("SELECT value FROM meta WHERE key = 'database_id'"))
        .await?;
    Ok(id)
}
