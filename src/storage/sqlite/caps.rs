//! The tags subscribers hold (by name key), as SQLite's write paths read
//! them before applying changes (the caps themselves are counted by
//! [`crate::storage::sql::caps`], alike on both backends). The list of
//! subscribers travels as one JSON array, walked with `json_each`.

use crate::storage::{Result, StorageError};
use sqlx::SqliteConnection;
use std::collections::{HashMap, HashSet};

/// The name keys of the tags each of these subscribers holds; a subscriber
/// with none is absent.
pub(super) async fn tags_held(
    conn: &mut SqliteConnection,
    subscriber_ids: &[i64],
) -> Result<HashMap<i64, HashSet<String>>> {
    let mut held: HashMap<i64, HashSet<String>> = HashMap::new();
    if subscriber_ids.is_empty() {
        return Ok(held);
    }
    let rows: Vec<(i64, String)> = sqlx::query_as(
        "SELECT st.subscriber_id, t.name_key FROM json_each($1) j
         CROSS JOIN subscriber_tags st ON st.subscriber_id = j.value
         JOIN tags t ON t.id = st.tag_id",
    )
    .bind(
        serde_json::to_string(subscriber_ids)
            .map_err(|e| StorageError::WriteFailed(e.to_string()))?,
    )
    .fetch_all(&mut *conn)
    .await?;
    for (subscriber, key) in rows {
        held.entry(subscriber).or_default().insert(key);
    }
    Ok(held)
}
