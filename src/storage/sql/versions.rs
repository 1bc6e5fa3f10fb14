//! Segment definition versions, as both backends keep them: one row per
//! definition a segment was saved with, written by the segment write that
//! saved it, in its transaction, and never changed after.

use super::Conn;
use crate::segment::{Segment, SegmentId};
use crate::sql;
use crate::storage::Result;
use crate::storage::audit::{Actor, Definition, SegmentVersion};
use corral_core::query::RawQuery;

#[derive(sqlx::FromRow)]
struct VersionRow {
    segment_id: i64,
    version: i64,
    name: String,
    description: Option<String>,
    query: String,
    saved_at: i64,
    saved_by: Option<String>,
}

impl From<VersionRow> for SegmentVersion {
    fn from(row: VersionRow) -> Self {
        Self {
            segment_id: SegmentId(row.segment_id),
            version: row.version,
            definition: Definition {
                name: row.name,
                description: row.description,
                query: RawQuery::from_stored(row.query),
            },
            saved_at: row.saved_at,
            saved_by: row.saved_by.as_deref().map(Actor::from_stored),
        }
    }
}

/// Records the segment's definition as it now stands, as its current
/// version, in the caller's write transaction.
pub async fn record(tx: &mut impl Conn, site_id: i64, saved: &Segment, by: &Actor) -> Result<()> {
    tx.execute(sql!(
        "INSERT INTO segment_versions
             (site_id, segment_id, version, name, description, query, saved_at, saved_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        site_id,
        saved.id.0,
        saved.version,
        saved.name.as_str(),
        saved.description.as_deref(),
        saved.query.as_str(),
        saved.updated_at,
        by.as_str()
    ))
    .await?;
    Ok(())
}

/// Every saved definition of a segment of the site, oldest first.
pub async fn list(
    conn: &mut impl Conn,
    site_id: i64,
    id: SegmentId,
) -> Result<Vec<SegmentVersion>> {
    let rows: Vec<VersionRow> = conn
        .all(sql!(
            "SELECT segment_id, version, name, description, query, saved_at, saved_by
             FROM segment_versions WHERE site_id = $1 AND segment_id = $2 ORDER BY version",
            site_id,
            id.0
        ))
        .await?;
    Ok(rows.into_iter().map(SegmentVersion::from).collect())
}

/// One saved definition of a segment of the site.
pub async fn get(
    conn: &mut impl Conn,
    site_id: i64,
    id: SegmentId,
    version: i64,
) -> Result<Option<SegmentVersion>> {
    let row: Option<VersionRow> = conn
        .optional(sql!(
            "SELECT segment_id, version, name, description, query, saved_at, saved_by
             FROM segment_versions WHERE site_id = $1 AND segment_id = $2 AND version = $3",
            site_id,
            id.0,
            version
        ))
        .await?;
    Ok(row.map(SegmentVersion::from))
}
