//! Sites and their key pairs, as both backends keep them.

use super::{Conn, log};
use crate::credentials::KeyPair;
use crate::sql;
use crate::storage::{ApiKey, KeyCredentials, LogEntry, Result, Site, StorageError};

#[derive(sqlx::FromRow)]
struct SiteRow {
    id: i64,
    uuid: String,
    name: String,
    demo: bool,
    created_at: i64,
}

impl From<SiteRow> for Site {
    fn from(row: SiteRow) -> Self {
        Self {
            id: row.id,
            uuid: row.uuid,
            name: row.name,
            demo: row.demo,
            created_at: row.created_at,
        }
    }
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    id: i64,
    site_id: i64,
    publishable_key: String,
    created_at: i64,
    revoked_at: Option<i64>,
}

impl From<KeyRow> for ApiKey {
    fn from(row: KeyRow) -> Self {
        Self {
            id: row.id,
            site_id: row.site_id,
            publishable_key: row.publishable_key,
            created_at: row.created_at,
            revoked_at: row.revoked_at,
        }
    }
}

/// Creates a site, its change head and its first key pair, in the caller's
/// write transaction.
pub async fn create(
    tx: &mut impl Conn,
    name: &str,
    uuid: &str,
    keys: &KeyPair,
    demo: bool,
    now: i64,
) -> Result<Site> {
    let site: SiteRow = tx
        .one(sql!(
            "INSERT INTO sites (uuid, name, demo, created_at) VALUES ($1, $2, $3, $4)
             RETURNING id, uuid, name, demo, created_at",
            uuid,
            name,
            demo,
            now
        ))
        .await?;
    tx.execute(sql!(
        "INSERT INTO change_heads (site_id) VALUES ($1)",
        site.id
    ))
    .await?;
    insert_key(tx, site.id, keys, now).await?;
    Ok(site.into())
}

pub async fn list(conn: &mut impl Conn) -> Result<Vec<Site>> {
    let rows: Vec<SiteRow> = conn
        .all(sql!(
            "SELECT id, uuid, name, demo, created_at FROM sites ORDER BY id"
        ))
        .await?;
    Ok(rows.into_iter().map(Site::from).collect())
}

pub async fn find(conn: &mut impl Conn, uuid: &str) -> Result<Option<Site>> {
    let row: Option<SiteRow> = conn
        .optional(sql!(
            "SELECT id, uuid, name, demo, created_at FROM sites WHERE uuid = $1",
            uuid
        ))
        .await?;
    Ok(row.map(Site::from))
}

/// The site of this id, if any.
pub async fn find_by_id(conn: &mut impl Conn, id: i64) -> Result<Option<Site>> {
    let row: Option<SiteRow> = conn
        .optional(sql!(
            "SELECT id, uuid, name, demo, created_at FROM sites WHERE id = $1",
            id
        ))
        .await?;
    Ok(row.map(Site::from))
}

/// The site `serve --demo` made, if any.
pub async fn find_demo(conn: &mut impl Conn) -> Result<Option<Site>> {
    let row: Option<SiteRow> = conn
        .optional(sql!(
            "SELECT id, uuid, name, demo, created_at FROM sites WHERE demo ORDER BY id LIMIT 1"
        ))
        .await?;
    Ok(row.map(Site::from))
}

/// Adds a key pair, in the caller's write transaction of the site.
pub async fn add_key(tx: &mut impl Conn, site_id: i64, keys: &KeyPair, now: i64) -> Result<ApiKey> {
    let key = insert_key(tx, site_id, keys, now).await?;
    log::record(tx, site_id, &LogEntry::keys(), now).await?;
    Ok(key)
}

async fn insert_key(tx: &mut impl Conn, site_id: i64, keys: &KeyPair, now: i64) -> Result<ApiKey> {
    let row: KeyRow = tx
        .one(sql!(
            "INSERT INTO api_keys (site_id, publishable_key, secret_hash, created_at)
             VALUES ($1, $2, $3, $4)
             RETURNING id, site_id, publishable_key, created_at, revoked_at",
            site_id,
            keys.publishable_key.as_str(),
            keys.secret_hash(),
            now
        ))
        .await?;
    Ok(row.into())
}

pub async fn list_keys(conn: &mut impl Conn, site_id: i64) -> Result<Vec<ApiKey>> {
    let rows: Vec<KeyRow> = conn
        .all(sql!(
            "SELECT id, site_id, publishable_key, created_at, revoked_at FROM api_keys
             WHERE site_id = $1 ORDER BY id",
            site_id
        ))
        .await?;
    Ok(rows.into_iter().map(ApiKey::from).collect())
}

/// The site a publishable key belongs to, if the key exists: a write that
/// revokes it is a write of that site.
pub async fn site_of_key(conn: &mut impl Conn, publishable_key: &str) -> Result<Option<i64>> {
    let row: Option<(i64,)> = conn
        .optional(sql!(
            "SELECT site_id FROM api_keys WHERE publishable_key = $1",
            publishable_key
        ))
        .await?;
    Ok(row.map(|(site_id,)| site_id))
}

/// Revokes a key (keeping the first revocation's time), in the caller's
/// write transaction of its site.
pub async fn revoke_key(tx: &mut impl Conn, publishable_key: &str, now: i64) -> Result<ApiKey> {
    let row: KeyRow = tx
        .optional(sql!(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE publishable_key = $2
             RETURNING id, site_id, publishable_key, created_at, revoked_at",
            now,
            publishable_key
        ))
        .await?
        .ok_or(StorageError::NotFound)?;
    let key = ApiKey::from(row);
    log::record(tx, key.site_id, &LogEntry::keys(), now).await?;
    Ok(key)
}

#[derive(sqlx::FromRow)]
struct CredentialsRow {
    id: i64,
    site_id: i64,
    uuid: String,
    secret_hash: Vec<u8>,
    revoked: bool,
    keys_seq: i64,
}

pub async fn credentials(
    conn: &mut impl Conn,
    publishable_key: &str,
) -> Result<Option<KeyCredentials>> {
    let row: Option<CredentialsRow> = conn
        .optional(sql!(
            "SELECT k.id, k.site_id, s.uuid, k.secret_hash, k.revoked_at IS NOT NULL AS revoked,
                    COALESCE(h.keys_seq, 0) AS keys_seq
             FROM api_keys k JOIN sites s ON s.id = k.site_id
             LEFT JOIN change_heads h ON h.site_id = k.site_id
             WHERE k.publishable_key = $1",
            publishable_key
        ))
        .await?;
    Ok(row.map(|row| KeyCredentials {
        key_id: row.id,
        site_id: row.site_id,
        site_uuid: row.uuid,
        secret_hash: row.secret_hash,
        revoked: row.revoked,
        keys_seq: row.keys_seq,
    }))
}
