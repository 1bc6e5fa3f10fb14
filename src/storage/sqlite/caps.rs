//! What enforcing the audience caps ([`corral_core::audience::Limits`]) needs to
//! read, shared by the bulk path and the one-at-a-time path so that both
//! count alike: the site's field keys and tags, which of a list of keys the
//! site already has ([`site_counts`], what [`corral_core::audience::apply`] starts
//! from), and the tags subscribers hold (by name key).
//!
//! Lists travel as one JSON array, walked with `json_each` and probed
//! against the unique indexes, so no statement nears SQLite's limit of bound
//! values however long the list.

use crate::storage::{Result, StorageError};
use corral_core::audience::SubscriberChange;
use corral_core::audience::apply::SiteCounts;
use sqlx::SqliteConnection;
use std::collections::{BTreeSet, HashMap, HashSet};

fn json_list<T: serde::Serialize>(items: &[T]) -> Result<String> {
    serde_json::to_string(items).map_err(|e| StorageError::WriteFailed(e.to_string()))
}

/// How many field keys the site has registered.
pub(super) async fn field_key_count(conn: &mut SqliteConnection, site_id: i64) -> Result<usize> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM fields WHERE site_id = $1")
        .bind(site_id)
        .fetch_one(&mut *conn)
        .await?;
    Ok(n as usize)
}

/// How many tags the site has.
pub(super) async fn tag_count(conn: &mut SqliteConnection, site_id: i64) -> Result<usize> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tags WHERE site_id = $1")
        .bind(site_id)
        .fetch_one(&mut *conn)
        .await?;
    Ok(n as usize)
}

/// The keys among `keys` that the site has registered as fields.
pub(super) async fn known_field_keys(
    conn: &mut SqliteConnection,
    site_id: i64,
    keys: &[&str],
) -> Result<HashSet<String>> {
    known(
        conn,
        site_id,
        keys,
        "SELECT f.key FROM json_each($2) j
         CROSS JOIN fields f ON f.site_id = $1 AND f.key = j.value",
    )
    .await
}

/// The name keys among `keys` that the site has as tags.
pub(super) async fn known_tag_keys(
    conn: &mut SqliteConnection,
    site_id: i64,
    keys: &[&str],
) -> Result<HashSet<String>> {
    known(
        conn,
        site_id,
        keys,
        "SELECT t.name_key FROM json_each($2) j
         CROSS JOIN tags t ON t.site_id = $1 AND t.name_key = j.value",
    )
    .await
}

/// The keys among `keys` that `sql` finds (given the site as `$1` and the
/// keys as a JSON array in `$2`).
async fn known(
    conn: &mut SqliteConnection,
    site_id: i64,
    keys: &[&str],
    sql: &'static str,
) -> Result<HashSet<String>> {
    if keys.is_empty() {
        return Ok(HashSet::new());
    }
    let rows: Vec<String> = sqlx::query_scalar(sql)
        .bind(site_id)
        .bind(json_list(keys)?)
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows.into_iter().collect())
}

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
    .bind(json_list(subscriber_ids)?)
    .fetch_all(&mut *conn)
    .await?;
    for (subscriber, key) in rows {
        held.entry(subscriber).or_default().insert(key);
    }
    Ok(held)
}

/// The site's counts the caps watch before `changes` apply: the field keys
/// and which of those the changes set it has (read only if they set any),
/// the tags and which of those the changes add it has (read only if they add
/// any).
pub(super) async fn site_counts<'c>(
    conn: &mut SqliteConnection,
    site_id: i64,
    changes: impl Iterator<Item = &'c SubscriberChange> + Clone,
) -> Result<SiteCounts> {
    let mut site = SiteCounts::default();
    let set: BTreeSet<&str> = changes
        .clone()
        .flat_map(|c| c.set_fields.iter().map(|(k, _)| k.as_str()))
        .collect();
    if !set.is_empty() {
        let set: Vec<&str> = set.into_iter().collect();
        site.field_keys = field_key_count(conn, site_id).await?;
        site.known_fields = known_field_keys(conn, site_id, &set).await?;
    }
    let added: BTreeSet<String> = changes
        .flat_map(|c| c.add_tags.iter().map(|t| t.key()))
        .collect();
    if !added.is_empty() {
        let added: Vec<&str> = added.iter().map(String::as_str).collect();
        site.tags = tag_count(conn, site_id).await?;
        site.known_tags = known_tag_keys(conn, site_id, &added).await?;
    }
    Ok(site)
}
