//! The audit log, as both backends keep it: one row per management action
//! of a site, written in the action's transaction, read newest first.

use super::Conn;
use crate::sql;
use crate::storage::audit::{Actor, AuditAction, AuditEntry, AuditQuery};
use crate::storage::{Result, StorageError};

#[derive(sqlx::FromRow)]
struct EntryRow {
    id: i64,
    at: i64,
    actor: String,
    action: String,
    subject: String,
    details: String,
}

/// Records an action of `by` on the site, in the caller's write
/// transaction. `details` is a JSON object (see
/// [`crate::storage::audit::details`]).
pub async fn record(
    tx: &mut impl Conn,
    site_id: i64,
    at: i64,
    by: &Actor,
    action: AuditAction,
    subject: &str,
    details: &str,
) -> Result<()> {
    tx.execute(sql!(
        "INSERT INTO audit_log (site_id, at, actor, action, subject, details)
         VALUES ($1, $2, $3, $4, $5, $6)",
        site_id,
        at,
        by.as_str(),
        action.as_str(),
        subject,
        details
    ))
    .await?;
    Ok(())
}

/// The site's entries the query asks for, newest (highest id) first.
pub async fn list(
    conn: &mut impl Conn,
    site_id: i64,
    query: &AuditQuery,
) -> Result<Vec<AuditEntry>> {
    let rows: Vec<EntryRow> = conn
        .all(sql!(
            "SELECT id, at, actor, action, subject, details FROM audit_log
             WHERE site_id = $1 AND id < $2 AND at >= $3
             ORDER BY id DESC LIMIT $4",
            site_id,
            query.before.unwrap_or(i64::MAX),
            query.since.unwrap_or(i64::MIN),
            query.limit as i64
        ))
        .await?;
    rows.into_iter()
        .map(|row| {
            let action = AuditAction::parse(&row.action).ok_or_else(|| {
                StorageError::ReadFailed(format!("unknown audit action {:?}", row.action))
            })?;
            Ok(AuditEntry {
                id: row.id,
                at: row.at,
                actor: Actor::from_stored(&row.actor),
                action,
                subject: row.subject,
                details: row.details,
            })
        })
        .collect()
}

/// Whether the key pair is revoked already (`None`: no such key), as the
/// write transaction sees it: revoking it again records nothing.
pub async fn key_revoked(tx: &mut impl Conn, publishable_key: &str) -> Result<Option<bool>> {
    let row: Option<(bool,)> = tx
        .optional(sql!(
            "SELECT revoked_at IS NOT NULL FROM api_keys WHERE publishable_key = $1",
            publishable_key
        ))
        .await?;
    Ok(row.map(|(revoked,)| revoked))
}
