//! What enforcing the audience caps ([`corral_core::audience::Limits`]) reads on
//! PostgreSQL, shared by the bulk path and the one-at-a-time path so that
//! both count alike: how many tags and field keys the site has, which of a
//! list of keys it already has, and from those the counts
//! [`corral_core::audience::apply`] starts from.

use crate::storage::Result;
use corral_core::audience::SubscriberChange;
use corral_core::audience::apply::SiteCounts;
use sqlx::PgConnection;
use std::collections::{BTreeSet, HashSet};

/// The two kinds of names a site registers, which the caps count.
#[derive(Clone, Copy)]
pub(super) enum Names {
    Tags,
    Fields,
}

/// How many tags or field keys the site has.
pub(super) async fn count_of(conn: &mut PgConnection, site_id: i64, names: Names) -> Result<usize> {
    let sql = match names {
        Names::Tags => "SELECT COUNT(*) FROM tags WHERE site_id = $1",
        Names::Fields => "SELECT COUNT(*) FROM fields WHERE site_id = $1",
    };
    let n: i64 = sqlx::query_scalar(sql)
        .bind(site_id)
        .fetch_one(&mut *conn)
        .await?;
    Ok(n as usize)
}

/// The keys among `keys` (tag name keys, or field keys) that the site has.
pub(super) async fn known_keys(
    conn: &mut PgConnection,
    site_id: i64,
    names: Names,
    keys: &[String],
) -> Result<HashSet<String>> {
    if keys.is_empty() {
        return Ok(HashSet::new());
    }
    let sql = match names {
        Names::Tags => "SELECT name_key FROM tags WHERE site_id = $1 AND name_key = ANY($2)",
        Names::Fields => "SELECT key FROM fields WHERE site_id = $1 AND key = ANY($2)",
    };
    let rows: Vec<String> = sqlx::query_scalar(sql)
        .bind(site_id)
        .bind(keys)
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows.into_iter().collect())
}

/// The site's counts the caps watch before `changes` apply (see
/// [`corral_core::audience::apply::SiteCounts`]): read only for what they set or
/// add.
pub(super) async fn site_counts<'c>(
    conn: &mut PgConnection,
    site_id: i64,
    changes: impl Iterator<Item = &'c SubscriberChange> + Clone,
) -> Result<SiteCounts> {
    let mut site = SiteCounts::default();
    let set: BTreeSet<String> = changes
        .clone()
        .flat_map(|c| c.set_fields.iter().map(|(k, _)| k.as_str().to_owned()))
        .collect();
    if !set.is_empty() {
        let set: Vec<String> = set.into_iter().collect();
        site.field_keys = count_of(conn, site_id, Names::Fields).await?;
        site.known_fields = known_keys(conn, site_id, Names::Fields, &set).await?;
    }
    let added: BTreeSet<String> = changes
        .flat_map(|c| c.add_tags.iter().map(|t| t.key()))
        .collect();
    if !added.is_empty() {
        let added: Vec<String> = added.into_iter().collect();
        site.tags = count_of(conn, site_id, Names::Tags).await?;
        site.known_tags = known_keys(conn, site_id, Names::Tags, &added).await?;
    }
    Ok(site)
}
