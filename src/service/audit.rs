//! The audit log a page at a time, as both front ends read it: the newest
//! entries the query allows, and the cursor of the next page when there is
//! one (asked for one entry more than the page holds, to know).

use crate::storage::audit::{AuditEntry, AuditQuery};
use crate::storage::{StorageError, Store};

/// One page of the site's audit log, newest first, and `meta.next_cursor`.
pub async fn page(
    store: &dyn Store,
    site_id: i64,
    query: &AuditQuery,
) -> Result<(Vec<AuditEntry>, Option<String>), StorageError> {
    let asked = AuditQuery {
        limit: query.limit + 1,
        ..*query
    };
    let mut entries = store.audit_log(site_id, &asked).await?;
    let more = entries.len() > query.limit;
    entries.truncate(query.limit);
    let next = more
        .then(|| entries.last().map(|e| audit_cursor(e.id)))
        .flatten();
    Ok((entries, next))
}

/// A cursor of the audit log: the id of the last entry of a page, opaque
/// to clients.
pub fn audit_cursor(last_id: i64) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("audit:{last_id}"))
}

/// The entry id a cursor of [`audit_cursor`] names.
pub fn read_audit_cursor(cursor: &str) -> Option<i64> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()?;
    std::str::from_utf8(&bytes)
        .ok()?
        .strip_prefix("audit:")?
        .parse()
        .ok()
}
