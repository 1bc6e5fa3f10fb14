//! What enforcing the audience caps ([`corral_core::audience::Limits`])
//! reads, shared by both backends and by their bulk and one-at-a-time paths,
//! so that every path counts alike: how many tags and field keys the site
//! has, which of a list of keys it already has, and from those the counts
//! [`corral_core::audience::apply`] starts from.
//!
//! A list of keys is one bound value (a JSON array walked with `json_each`
//! on SQLite, an array on PostgreSQL), probed against the unique indexes, so
//! no statement nears a limit of bound values however long the list.

use super::{Conn, Dialect};
use crate::sql;
use crate::storage::Result;
use corral_core::audience::SubscriberChange;
use corral_core::audience::apply::SiteCounts;
use std::collections::{BTreeSet, HashSet};

/// The two kinds of names a site registers, which the caps count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Names {
    Tags,
    Fields,
}

/// How many tags or field keys the site has.
pub async fn count_of(conn: &mut impl Conn, site_id: i64, names: Names) -> Result<usize> {
    let text = match names {
        Names::Tags => "SELECT COUNT(*) FROM tags WHERE site_id = $1",
        Names::Fields => "SELECT COUNT(*) FROM fields WHERE site_id = $1",
    };
    let (n,): (i64,) = conn.one(sql!(text, site_id)).await?;
    Ok(n as usize)
}

/// The keys among `keys` (tag name keys, or field keys) that the site has.
pub async fn known_keys<C: Conn>(
    conn: &mut C,
    site_id: i64,
    names: Names,
    keys: &[String],
) -> Result<HashSet<String>> {
    if keys.is_empty() {
        return Ok(HashSet::new());
    }
    let text = match (names, C::DIALECT) {
        (Names::Tags, Dialect::Sqlite) => {
            "SELECT t.name_key FROM json_each($2) j
             CROSS JOIN tags t ON t.site_id = $1 AND t.name_key = j.value"
        }
        (Names::Fields, Dialect::Sqlite) => {
            "SELECT f.key FROM json_each($2) j
             CROSS JOIN fields f ON f.site_id = $1 AND f.key = j.value"
        }
        (Names::Tags, Dialect::Postgres) => {
            "SELECT name_key FROM tags WHERE site_id = $1 AND name_key = ANY($2)"
        }
        (Names::Fields, Dialect::Postgres) => {
            "SELECT key FROM fields WHERE site_id = $1 AND key = ANY($2)"
        }
    };
    let rows: Vec<(String,)> = conn.all(sql!(text, site_id, keys)).await?;
    Ok(rows.into_iter().map(|(key,)| key).collect())
}

/// The site's counts the caps watch before `changes` apply (see
/// [`SiteCounts`]): the field keys, and which of those the changes set the
/// site has (read only if they set any); the tags, and which of those the
/// changes add it has (read only if they add any).
pub async fn site_counts<'c>(
    conn: &mut impl Conn,
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
