//! Segments, as both backends keep them: read, created, changed, discarded
//! and restored, each write checked again inside its transaction against
//! the rules of [`crate::segment::references`] as the site stands then.
//! Every write records, in its transaction, what it did in the site's audit
//! log ([`super::audit`]), and every definition it saves as a version of
//! the segment ([`super::versions`]).

use super::{Conn, audit, log, versions};
use crate::segment::{
    Description, FieldErrors, KeptSegments, Listing, NewSegment, Segment, SegmentId, SegmentName,
    SegmentPatch, name_key,
};
use crate::sql;
use crate::storage::audit::{Actor, AuditAction, Definition, details};
use crate::storage::{LogEntry, Precondition, Result, StorageError, next_updated_at};
use corral_core::query::RawQuery;

/// The columns [`SegmentRow`] reads, as a literal for `concat!` (statements
/// are literal text).
macro_rules! segment_columns {
    () => {
        "id, name, description, query, created_at, updated_at, discarded_at, version"
    };
}

#[derive(sqlx::FromRow)]
struct SegmentRow {
    id: i64,
    name: String,
    description: Option<String>,
    query: String,
    created_at: i64,
    updated_at: i64,
    discarded_at: Option<i64>,
    version: i64,
}

impl From<SegmentRow> for Segment {
    fn from(row: SegmentRow) -> Self {
        Self {
            id: SegmentId(row.id),
            name: row.name,
            description: row.description,
            query: RawQuery::from_stored(row.query),
            created_at: row.created_at,
            updated_at: row.updated_at,
            discarded_at: row.discarded_at,
            version: row.version,
        }
    }
}

/// A violation of the kept-name index is [`StorageError::NameTaken`].
fn name_taken(error: StorageError) -> StorageError {
    match error {
        StorageError::Duplicate(_) => StorageError::NameTaken,
        other => other,
    }
}

/// A site's segments of one listing, ordered by name key, then exact name,
/// then id.
pub async fn list(conn: &mut impl Conn, site_id: i64, listing: Listing) -> Result<Vec<Segment>> {
    let text = match listing {
        Listing::Kept => concat!(
            "SELECT ",
            segment_columns!(),
            " FROM segments WHERE site_id = $1 AND discarded_at IS NULL
              ORDER BY name_key, name, id"
        ),
        Listing::Discarded => concat!(
            "SELECT ",
            segment_columns!(),
            " FROM segments WHERE site_id = $1 AND discarded_at IS NOT NULL
              ORDER BY name_key, name, id"
        ),
    };
    let rows: Vec<SegmentRow> = conn.all(sql!(text, site_id)).await?;
    Ok(rows.into_iter().map(Segment::from).collect())
}

/// The site's kept segments when `wanted` (a snapshot brought forward reads
/// them again only when its entries changed one).
pub async fn kept_if(
    conn: &mut impl Conn,
    site_id: i64,
    wanted: bool,
) -> Result<Option<Vec<Segment>>> {
    match wanted {
        true => Ok(Some(list(conn, site_id, Listing::Kept).await?)),
        false => Ok(None),
    }
}

/// A segment of the site, kept or discarded.
pub async fn get(conn: &mut impl Conn, site_id: i64, id: SegmentId) -> Result<Option<Segment>> {
    let row: Option<SegmentRow> = conn
        .optional(sql!(
            concat!(
                "SELECT ",
                segment_columns!(),
                " FROM segments WHERE site_id = $1 AND id = $2"
            ),
            site_id,
            id.0
        ))
        .await?;
    Ok(row.map(Segment::from))
}

/// A segment as the write transaction sees it; [`StorageError::NotFound`]
/// when the site has none of that id.
async fn current(tx: &mut impl Conn, site_id: i64, id: SegmentId) -> Result<Segment> {
    get(tx, site_id, id).await?.ok_or(StorageError::NotFound)
}

/// Refuses, inside the write's transaction, a query whose segment references
/// break the rules of [`KeptSegments::check`] as the site stands now.
async fn check_references(
    tx: &mut impl Conn,
    site_id: i64,
    saving: Option<SegmentId>,
    query: &RawQuery,
) -> Result<()> {
    let Ok(parsed) = corral_core::query::parse(query.as_str()) else {
        return Ok(());
    };
    if parsed.segment_refs().is_empty() {
        return Ok(());
    }
    let kept = list(tx, site_id, Listing::Kept).await?;
    let errors = KeptSegments::new(&kept).check(saving, &parsed);
    errors.finish(|| ()).map_err(StorageError::Refused)
}

/// Whether another kept segment of the site has this name key. Asked before
/// a write, so that no id is taken (on PostgreSQL, from a sequence that does
/// not give it back) for a name that is taken; the index still has the last
/// word.
async fn name_in_use(
    tx: &mut impl Conn,
    site_id: i64,
    key: &str,
    other_than: Option<SegmentId>,
) -> Result<bool> {
    let found: Option<(i64,)> = tx
        .optional(sql!(
            "SELECT id FROM segments
             WHERE site_id = $1 AND name_key = $2 AND discarded_at IS NULL AND id <> $3",
            site_id,
            key,
            other_than.map_or(0, |id| id.0)
        ))
        .await?;
    Ok(found.is_some())
}

/// Creates a segment, in the caller's write transaction of the site.
pub async fn create(
    tx: &mut impl Conn,
    site_id: i64,
    new: &NewSegment,
    now: i64,
    by: &Actor,
) -> Result<Segment> {
    check_references(tx, site_id, None, &new.query).await?;
    if name_in_use(tx, site_id, &new.name.key(), None).await? {
        return Err(StorageError::NameTaken);
    }
    let row: SegmentRow = tx
        .one(sql!(
            concat!(
                "INSERT INTO segments
                     (site_id, name, name_key, description, query, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING ",
                segment_columns!()
            ),
            site_id,
            new.name.as_str(),
            new.name.key(),
            new.description.as_ref().map(|d| d.as_str()),
            new.query.as_str(),
            now
        ))
        .await
        .map_err(name_taken)?;
    let created = Segment::from(row);
    log::record(tx, site_id, &LogEntry::segment(created.id.0), now).await?;
    versions::record(tx, site_id, &created, by).await?;
    let details = details::created(created.version, &definition(&created));
    let subject = created.id.to_string();
    let at = created.updated_at;
    audit::record(
        tx,
        site_id,
        at,
        by,
        AuditAction::SegmentCreated,
        &subject,
        &details,
    )
    .await?;
    Ok(created)
}

/// What a version of the segment saves.
fn definition(segment: &Segment) -> Definition {
    Definition {
        name: segment.name.clone(),
        description: segment.description.clone(),
        query: segment.query.clone(),
    }
}

/// Changes a kept segment, in the caller's write transaction of the site; a
/// patch that changes nothing leaves it untouched.
pub async fn update(
    tx: &mut impl Conn,
    site_id: i64,
    id: SegmentId,
    patch: &SegmentPatch,
    precondition: &Precondition,
    now: i64,
    by: &Actor,
) -> Result<Segment> {
    save(tx, site_id, id, patch, precondition, now, by, None).await
}

/// Makes an earlier version's definition the current one of a kept
/// segment, as a new version, in the caller's write transaction of the
/// site; [`StorageError::NotFound`] when the segment has no such version.
/// Restoring the definition it has changes nothing.
pub async fn restore_version(
    tx: &mut impl Conn,
    site_id: i64,
    id: SegmentId,
    version: i64,
    precondition: &Precondition,
    now: i64,
    by: &Actor,
) -> Result<Segment> {
    let saved = versions::get(tx, site_id, id, version)
        .await?
        .ok_or(StorageError::NotFound)?;
    let patch = restoring(&saved.definition).map_err(StorageError::Refused)?;
    save(
        tx,
        site_id,
        id,
        &patch,
        precondition,
        now,
        by,
        Some(version),
    )
    .await
}

/// The patch that makes `definition` current: every field of it, checked
/// again against today's rules of names and descriptions.
fn restoring(definition: &Definition) -> std::result::Result<SegmentPatch, FieldErrors> {
    let mut errors = FieldErrors::default();
    let name = SegmentName::parse(&definition.name)
        .map_err(|m| errors.push("name", m))
        .ok();
    let description = match &definition.description {
        None => Some(None),
        Some(text) => Description::parse(text)
            .map(Some)
            .map_err(|m| errors.push("description", m))
            .ok(),
    };
    errors.finish(|| SegmentPatch {
        name,
        description,
        query: Some(definition.query.clone()),
    })
}

/// Saves a patch of a kept segment as its next version, recording it and,
/// when it is an earlier version made current again, which one.
#[allow(clippy::too_many_arguments)]
async fn save(
    tx: &mut impl Conn,
    site_id: i64,
    id: SegmentId,
    patch: &SegmentPatch,
    precondition: &Precondition,
    now: i64,
    by: &Actor,
    restored: Option<i64>,
) -> Result<Segment> {
    let current = current(tx, site_id, id).await?;
    if !current.is_kept() {
        return Err(StorageError::NotFound);
    }
    if !precondition.allows(current.version) {
        return Err(StorageError::PreconditionFailed);
    }
    if !current.differs_from(patch) {
        return Ok(current);
    }
    if let Some(query) = &patch.query {
        check_references(tx, site_id, Some(id), query).await?;
    }
    let (name, description, query) = current.patched(patch);
    if name_in_use(tx, site_id, &name_key(&name), Some(id)).await? {
        return Err(StorageError::NameTaken);
    }
    tx.execute(sql!(
        "UPDATE segments SET name = $1, name_key = $2, description = $3, query = $4,
         updated_at = $5, version = version + 1 WHERE site_id = $6 AND id = $7",
        name.as_str(),
        name_key(&name),
        description,
        query.as_str(),
        next_updated_at(current.updated_at, now),
        site_id,
        id.0
    ))
    .await
    .map_err(name_taken)?;
    let updated = self::current(tx, site_id, id).await?;
    log::record(tx, site_id, &LogEntry::segment(id.0), now).await?;
    versions::record(tx, site_id, &updated, by).await?;
    let (action, details) = (
        match restored {
            Some(_) => AuditAction::SegmentVersionRestored,
            None => AuditAction::SegmentUpdated,
        },
        details::changed(
            updated.version,
            restored,
            &definition(&current),
            &definition(&updated),
        ),
    );
    let at = updated.updated_at;
    audit::record(tx, site_id, at, by, action, &id.to_string(), &details).await?;
    Ok(updated)
}

/// Discards a kept segment, or restores a discarded one (restoring a kept
/// segment changes nothing), in the caller's write transaction of the site;
/// the precondition is checked either way.
pub async fn move_to(
    tx: &mut impl Conn,
    site_id: i64,
    id: SegmentId,
    precondition: &Precondition,
    now: i64,
    to: Listing,
    by: &Actor,
) -> Result<Segment> {
    let discarding = to == Listing::Discarded;
    let current = current(tx, site_id, id).await?;
    if discarding && !current.is_kept() {
        return Err(StorageError::NotFound);
    }
    if !precondition.allows(current.version) {
        return Err(StorageError::PreconditionFailed);
    }
    if !discarding && current.is_kept() {
        return Ok(current);
    }
    if discarding {
        let kept = list(tx, site_id, Listing::Kept).await?;
        KeptSegments::new(&kept)
            .check_discard(id)
            .map_err(StorageError::Refused)?;
    }
    let at = next_updated_at(current.updated_at, now);
    tx.execute(sql!(
        "UPDATE segments SET discarded_at = $1, updated_at = $2, version = version + 1
         WHERE site_id = $3 AND id = $4",
        discarding.then_some(at),
        at,
        site_id,
        id.0
    ))
    .await
    // Restoring can meet a kept segment that took the name meanwhile.
    .map_err(name_taken)?;
    let moved = self::current(tx, site_id, id).await?;
    log::record(tx, site_id, &LogEntry::segment(id.0), now).await?;
    let action = match to {
        Listing::Discarded => AuditAction::SegmentDiscarded,
        Listing::Kept => AuditAction::SegmentRestored,
    };
    let details = details::moved(moved.version, &moved.name);
    let at = moved.updated_at;
    audit::record(tx, site_id, at, by, action, &id.to_string(), &details).await?;
    Ok(moved)
}
