//! The `imports` table, as both backends keep it (see
//! [`crate::storage::imports`]): a row per site and input, moved forward in
//! the transaction of each batch.

use super::Conn;
use crate::sql;
use crate::storage::Result;
use crate::storage::imports::{ImportMark, ImportProgress};
use corral_core::audience::Outcome;

#[derive(sqlx::FromRow)]
struct ImportRow {
    import_key: String,
    kind: String,
    line: i64,
    imported: i64,
    skipped: i64,
    started_at: i64,
    updated_at: i64,
    finished_at: Option<i64>,
}

impl From<ImportRow> for ImportProgress {
    fn from(row: ImportRow) -> Self {
        Self {
            key: row.import_key,
            kind: row.kind,
            line: u64::try_from(row.line).unwrap_or(0),
            imported: u64::try_from(row.imported).unwrap_or(0),
            skipped: u64::try_from(row.skipped).unwrap_or(0),
            started_at: row.started_at,
            updated_at: row.updated_at,
            finished_at: row.finished_at,
        }
    }
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Records, inside the batch's own transaction, that `mark`'s import holds
/// every line up to `mark.line`, with what the batch's `outcomes` came to.
pub async fn record(
    conn: &mut impl Conn,
    site_id: i64,
    mark: &ImportMark,
    outcomes: &[Outcome],
    now: i64,
) -> Result<()> {
    let refused = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Failed(_)))
        .count() as u64;
    let imported = outcomes.len() as u64 - refused;
    conn.execute(sql!(
        "INSERT INTO imports (site_id, import_key, kind, line, imported, skipped,
                              started_at, updated_at, finished_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7, NULL)
         ON CONFLICT (site_id, import_key) DO UPDATE SET
             kind = excluded.kind,
             line = CASE WHEN excluded.line > imports.line THEN excluded.line
                         ELSE imports.line END,
             imported = imports.imported + excluded.imported,
             skipped = imports.skipped + excluded.skipped,
             updated_at = excluded.updated_at,
             finished_at = NULL",
        site_id,
        mark.key.as_str(),
        mark.kind,
        count(mark.line),
        count(imported),
        count(refused + mark.unreadable),
        now
    ))
    .await?;
    Ok(())
}

/// The import of `key` on the site, if one was recorded.
pub async fn progress(
    conn: &mut impl Conn,
    site_id: i64,
    key: &str,
) -> Result<Option<ImportProgress>> {
    let row: Option<ImportRow> = conn
        .optional(sql!(
            "SELECT import_key, kind, line, imported, skipped, started_at, updated_at, finished_at
             FROM imports WHERE site_id = $1 AND import_key = $2",
            site_id,
            key
        ))
        .await?;
    Ok(row.map(ImportProgress::from))
}

/// Starts the import of `key` afresh: forgets what an earlier one recorded.
pub async fn forget(conn: &mut impl Conn, site_id: i64, key: &str) -> Result<()> {
    conn.execute(sql!(
        "DELETE FROM imports WHERE site_id = $1 AND import_key = $2",
        site_id,
        key
    ))
    .await?;
    Ok(())
}

/// Marks the import of `key` finished: its whole input was read. An import
/// whose input held no item at all is recorded here first.
pub async fn finish(
    conn: &mut impl Conn,
    site_id: i64,
    key: &str,
    kind: &str,
    now: i64,
) -> Result<()> {
    conn.execute(sql!(
        "INSERT INTO imports (site_id, import_key, kind, line, imported, skipped,
                              started_at, updated_at, finished_at)
         VALUES ($1, $2, $3, 0, 0, 0, $4, $4, $4)
         ON CONFLICT (site_id, import_key) DO UPDATE SET
             updated_at = excluded.updated_at,
             finished_at = excluded.finished_at",
        site_id,
        key,
        kind,
        now
    ))
    .await?;
    Ok(())
}
