//! The membership journal's statements, as both backends run them (see
//! [`crate::storage::journal`] for what the journal is).
//!
//! [`record_writes`] runs inside an audience write's transaction, once per
//! caller's batch: it reads the touched subscribers back (row, kept tags,
//! events of the types the segments read), builds a small audience of just
//! them, evaluates every journaled segment over it and records each flip
//! against `journal_members`. [`reconcile`] runs inside a segment write's
//! transaction and in the minute's sweep: it compares each segment whose
//! definition, state or time window moved over the whole audience (from the
//! [`Evaluator`](crate::storage::journal::Evaluator)) with the journal's
//! members. Both hold the site's write turn, so transitions of a site are
//! written in commit order, once, whatever the number of servers.

use super::{Conn, Dialect};
use crate::sql;
use crate::storage::journal::{
    DayCounts, Journal, JournalInfo, MemberChange, NamedChange, Reason, SiteMembers, day_of,
};
use crate::storage::{Result, StorageError};
use corral_core::columns::{Columns, ColumnsBuilder, SubscriberRecord, Val};
use corral_core::engine::{self, Cancel};
use corral_core::query::Query;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// Subscribers read back per statement.
const CHUNK: usize = 5_000;

/// A kept segment as the transaction sees it, with its journal's state.
struct Kept {
    id: i64,
    version: i64,
    query: Option<Arc<Query>>,
    /// The version its journaled members follow; `None` before a baseline.
    journaled: Option<i64>,
    /// Whether the journal had it kept.
    was_kept: bool,
}

#[derive(sqlx::FromRow)]
struct SegmentState {
    id: i64,
    version: i64,
    query: String,
    discarded_at: Option<i64>,
    journaled: Option<i64>,
    journal_kept: Option<bool>,
}

/// Every segment of the site (kept or not), with its journal's state.
async fn segment_states(conn: &mut impl Conn, site_id: i64) -> Result<Vec<SegmentState>> {
    conn.all(sql!(
        "SELECT s.id, s.version, s.query, s.discarded_at, j.version AS journaled,
                j.kept AS journal_kept
         FROM segments s LEFT JOIN segment_journals j
           ON j.site_id = s.site_id AND j.segment_id = s.id
         WHERE s.site_id = $1 ORDER BY s.id",
        site_id
    ))
    .await
}

fn kept_of(journal: &Journal, site_id: i64, states: &[SegmentState]) -> Vec<Kept> {
    states
        .iter()
        .filter(|s| s.discarded_at.is_none())
        .map(|s| Kept {
            id: s.id,
            version: s.version,
            query: journal.query(site_id, s.id, s.version, &s.query),
            journaled: s.journaled,
            was_kept: s.journal_kept.unwrap_or(false),
        })
        .collect()
}

/// Every kept segment's query, for references to resolve to.
fn resolver_of(kept: &[Kept]) -> HashMap<i64, Arc<Query>> {
    kept.iter()
        .filter_map(|k| k.query.as_ref().map(|q| (k.id, Arc::clone(q))))
        .collect()
}

/// The event types any kept segment reads (`None`: every type).
fn kinds_read(kept: &[Kept]) -> Option<Vec<String>> {
    let mut all = Vec::new();
    for query in kept.iter().filter_map(|k| k.query.as_ref()) {
        for kind in query.event_kinds()? {
            if !all.contains(&kind) {
                all.push(kind);
            }
        }
    }
    Some(all)
}

/// Records, at `now`, every change of journaled membership that one
/// caller's batch made: `subscribers` it created or changed, and the events
/// it stored (ids in `events`). Runs in the batch's transaction.
pub async fn record_writes<C: Conn>(
    conn: &mut C,
    journal: &Journal,
    site_id: i64,
    subscribers: &[i64],
    events: Option<(i64, i64)>,
    now: i64,
) -> Result<()> {
    record_flips(
        conn,
        journal,
        site_id,
        subscribers,
        events,
        now,
        Reason::Data,
    )
    .await
}

/// [`record_writes`], with the reason the flips are recorded with
/// ([`Reason::Manual`] for an edit of includes or excludes).
pub async fn record_flips<C: Conn>(
    conn: &mut C,
    journal: &Journal,
    site_id: i64,
    subscribers: &[i64],
    events: Option<(i64, i64)>,
    now: i64,
    reason: Reason,
) -> Result<()> {
    if subscribers.is_empty() && events.is_none() {
        return Ok(());
    }
    let states = segment_states(conn, site_id).await?;
    let kept = kept_of(journal, site_id, &states);
    // Journaled and current: a segment whose definition moved is the
    // segment write's to record, never a batch's.
    let active: Vec<&Kept> = kept
        .iter()
        .filter(|k| k.query.is_some() && k.journaled == Some(k.version))
        .collect();
    if active.is_empty() {
        return Ok(());
    }
    let kinds = kinds_read(&kept);
    // The batch's own events name subscribers too: those of the types some
    // segment reads (an event of another type moves nobody).
    let events = events.filter(|_| kinds.as_ref().is_none_or(|k| !k.is_empty()));
    let touched = touched_rows(conn, site_id, subscribers, events, kinds.as_deref()).await?;
    if touched.is_empty() {
        return Ok(());
    }
    let resolver = resolver_of(&kept);
    let queries: Vec<&Query> = resolver.values().map(|q| &**q).collect();
    let active_ids: BTreeSet<i64> = active.iter().map(|k| k.id).collect();
    let mut flips = Vec::new();
    for chunk in touched.chunks(CHUNK) {
        let audience = read_audience(conn, site_id, chunk, kinds.as_deref(), &queries).await?;
        let mut now_in: BTreeMap<i64, BTreeSet<i64>> = BTreeMap::new();
        for segment in &active {
            let query = segment.query.as_ref().expect("active segments parse");
            let members = evaluate(&audience, query, now, &resolver)?;
            for id in members {
                now_in.entry(id).or_default().insert(segment.id);
            }
        }
        let mut changed = Vec::new();
        for row in chunk {
            let id = row.id;
            let old = row.journaled.as_deref().map(parse_set).unwrap_or_default();
            let new_active = now_in.remove(&id).unwrap_or_default();
            // Segments not active keep what the journal has.
            let mut new: BTreeSet<i64> = old
                .iter()
                .copied()
                .filter(|s| !active_ids.contains(s))
                .collect();
            new.extend(new_active);
            if new == old {
                continue;
            }
            for s in new.difference(&old) {
                flips.push((*s, id, true));
            }
            for s in old.difference(&new) {
                flips.push((*s, id, false));
            }
            changed.push((id, new));
        }
        write_sets(conn, site_id, &changed).await?;
    }
    write_transitions(conn, journal, site_id, &flips, now, reason).await?;
    Ok(())
}

/// The ids of `query`'s members over `audience`.
fn evaluate(
    audience: &Columns,
    query: &Query,
    now: i64,
    resolver: &HashMap<i64, Arc<Query>>,
) -> Result<Vec<i64>> {
    let members = engine::members_on(audience, query, now, resolver, &Cancel::default(), false)
        .map_err(|e| StorageError::WriteFailed(format!("a segment could not be evaluated: {e}")))?;
    Ok(members.ones().map(|i| audience.ids[i]).collect())
}

/// A subscriber a batch touched, as the transaction sees it: its row, its
/// kept tags and the hidden tags of its includes and excludes (a JSON array) and the segments the journal has it in (a JSON
/// array; `None` for none).
#[derive(sqlx::FromRow)]
struct Touched {
    id: i64,
    uuid: String,
    email: String,
    fields: String,
    subscribed: bool,
    created_at: i64,
    tags: String,
    journaled: Option<String>,
}

/// Every subscriber of `ids` or with an event of the id range `events` of
/// one of `kinds` (any type when `None`), ascending, each with its tags and
/// journaled segments: one statement, as a batch's journal needs them all.
async fn touched_rows<C: Conn>(
    conn: &mut C,
    site_id: i64,
    ids: &[i64],
    events: Option<(i64, i64)>,
    kinds: Option<&[String]>,
) -> Result<Vec<Touched>> {
    // No event of the range (1, 0).
    let (first, last) = events.unwrap_or((1, 0));
    let every_kind = kinds.is_none();
    let kinds = kinds.unwrap_or_default();
    let text = C::DIALECT.pick(
        // The batch's own events by a range of the rowid (`+site_id` keeps
        // the planner off the site's index, which would read every event
        // of the site).
        "WITH touched(id) AS (
             SELECT value FROM json_each($2)
             UNION
             SELECT subscriber_id FROM events WHERE id >= $3 AND id <= $4 AND +site_id = $1
               AND ($6 OR type IN (SELECT value FROM json_each($5))))
         SELECT s.id, s.uuid, s.email, s.fields, s.unsubscribed_at IS NULL AS subscribed,
                s.created_at,
                (SELECT json_group_array(name) FROM (
                   SELECT t.name_key AS name FROM subscriber_tags st
                   CROSS JOIN tags t ON t.id = st.tag_id
                   WHERE st.subscriber_id = s.id AND t.site_id = $1
                     AND t.discarded_at IS NULL
                   UNION ALL
                   SELECT char(1) || CASE WHEN m.excluded THEN 'exclude:' ELSE 'include:' END
                          || m.segment_id
                   FROM segment_manual m WHERE m.subscriber_id = s.id)) AS tags,
                (SELECT segments FROM journal_members j
                 WHERE j.site_id = $1 AND j.subscriber_id = s.id) AS journaled
         FROM touched CROSS JOIN subscribers s ON s.id = touched.id
         WHERE s.site_id = $1 ORDER BY s.id",
        "WITH touched AS (
             SELECT unnest($2::bigint[]) AS id
             UNION
             SELECT subscriber_id FROM events WHERE site_id = $1 AND id >= $3 AND id <= $4
               AND ($6 OR type = ANY($5)))
         SELECT s.id, s.uuid, s.email, s.fields, s.unsubscribed_at IS NULL AS subscribed,
                s.created_at,
                COALESCE((SELECT json_agg(name)::text FROM (
                            SELECT t.name_key AS name FROM subscriber_tags st
                            JOIN tags t ON t.site_id = st.site_id AND t.id = st.tag_id
                            WHERE st.site_id = $1 AND st.subscriber_id = s.id
                              AND t.discarded_at IS NULL
                            UNION ALL
                            SELECT chr(1) || CASE WHEN m.excluded THEN 'exclude:'
                                                  ELSE 'include:' END || m.segment_id
                            FROM segment_manual m
                            WHERE m.site_id = $1 AND m.subscriber_id = s.id) n),
                         '[]') AS tags,
                (SELECT segments FROM journal_members j
                 WHERE j.site_id = $1 AND j.subscriber_id = s.id) AS journaled
         FROM touched JOIN subscribers s ON s.site_id = $1 AND s.id = touched.id
         ORDER BY s.id",
    );
    conn.all(sql!(text, site_id, ids, first, last, kinds, every_kind))
        .await
}

#[derive(sqlx::FromRow)]
struct EventState {
    id: i64,
    subscriber_id: i64,
    #[sqlx(rename = "type")]
    kind: String,
    occurred_at: i64,
    details: String,
}

/// The audience of just `touched` (ascending), as the transaction sees it:
/// their rows and kept tags, and the events of `kinds` (every type when
/// `None`) with the details the segments read.
async fn read_audience<C: Conn>(
    conn: &mut C,
    site_id: i64,
    touched: &[Touched],
    kinds: Option<&[String]>,
    queries: &[&Query],
) -> Result<Columns> {
    let ids: Vec<i64> = touched.iter().map(|t| t.id).collect();
    let ids = &ids[..];
    // Read by subscriber (an index from it), then put in stored order.
    let mut events: Vec<EventState> = match kinds {
        Some([]) => Vec::new(),
        Some(kinds) => {
            let text = C::DIALECT.pick(
                "SELECT id, subscriber_id, type, occurred_at, details
                 FROM events INDEXED BY events_subscriber
                 WHERE subscriber_id IN (SELECT value FROM json_each($2)) AND +site_id = $1
                   AND type IN (SELECT value FROM json_each($3))",
                "SELECT id, subscriber_id, type, occurred_at, details FROM events
                 WHERE site_id = $1 AND subscriber_id = ANY($2) AND type = ANY($3)",
            );
            conn.all(sql!(text, site_id, ids, kinds)).await?
        }
        None => {
            let text = C::DIALECT.pick(
                "SELECT id, subscriber_id, type, occurred_at, details
                 FROM events INDEXED BY events_subscriber
                 WHERE subscriber_id IN (SELECT value FROM json_each($2)) AND +site_id = $1",
                "SELECT id, subscriber_id, type, occurred_at, details FROM events
                 WHERE site_id = $1 AND subscriber_id = ANY($2)",
            );
            conn.all(sql!(text, site_id, ids)).await?
        }
    };
    events.sort_unstable_by_key(|e| e.id);
    let mut builder = ColumnsBuilder::new();
    for row in touched {
        builder.subscriber(SubscriberRecord {
            id: row.id,
            uuid: row.uuid.clone(),
            email: row.email.clone(),
            subscribed: row.subscribed,
            created_at: row.created_at,
            fields: serde_json::from_str(&row.fields).unwrap_or_default(),
        });
    }
    for row in touched {
        let tags: Vec<String> = serde_json::from_str(&row.tags).unwrap_or_default();
        for tag in &tags {
            builder.tag(row.id, tag);
        }
    }
    for event in &events {
        builder.event(event.subscriber_id, &event.kind, event.occurred_at);
    }
    let audience = builder.build();
    add_details(&audience, &events, queries);
    Ok(audience)
}

/// Adds to a small audience the detail columns `queries` read, from the
/// events' JSON (given in storage order).
fn add_details(audience: &Columns, events: &[EventState], queries: &[&Query]) {
    let missing = engine::missing_details(audience, queries);
    if missing.is_empty() {
        return;
    }
    let parsed: Vec<serde_json::Value> = events
        .iter()
        .map(|e| serde_json::from_str(&e.details).unwrap_or_default())
        .collect();
    for (kind, path) in missing {
        let values = events
            .iter()
            .zip(&parsed)
            .filter(|(e, _)| e.kind == kind)
            .map(|(_, details)| path.lookup(details).map_or(Val::Missing, Val::from_json))
            .collect();
        audience.add_details(&kind, path, values);
    }
}

/// The segments each of `ids` is in, as the journal has them.
async fn journaled_sets<C: Conn>(
    conn: &mut C,
    site_id: i64,
    ids: &[i64],
) -> Result<HashMap<i64, BTreeSet<i64>>> {
    let text = C::DIALECT.pick(
        "SELECT subscriber_id, segments FROM journal_members
         WHERE site_id = $1 AND subscriber_id IN (SELECT value FROM json_each($2))",
        "SELECT subscriber_id, segments FROM journal_members
         WHERE site_id = $1 AND subscriber_id = ANY($2)",
    );
    let rows: Vec<(i64, String)> = conn.all(sql!(text, site_id, ids)).await?;
    Ok(rows
        .into_iter()
        .map(|(id, text)| (id, parse_set(&text)))
        .collect())
}

fn parse_set(text: &str) -> BTreeSet<i64> {
    serde_json::from_str(text).unwrap_or_default()
}

/// Stores each subscriber's new set of segments (none: no row).
async fn write_sets<C: Conn>(
    conn: &mut C,
    site_id: i64,
    changed: &[(i64, BTreeSet<i64>)],
) -> Result<()> {
    if changed.is_empty() {
        return Ok(());
    }
    let (empty, full): (Vec<_>, Vec<_>) = changed.iter().partition(|(_, set)| set.is_empty());
    if !empty.is_empty() {
        let ids: Vec<i64> = empty.iter().map(|(id, _)| *id).collect();
        let text = C::DIALECT.pick(
            "DELETE FROM journal_members
             WHERE site_id = $1 AND subscriber_id IN (SELECT value FROM json_each($2))",
            "DELETE FROM journal_members WHERE site_id = $1 AND subscriber_id = ANY($2)",
        );
        conn.execute(sql!(text, site_id, ids.as_slice())).await?;
    }
    for part in full.chunks(CHUNK) {
        let sets: Vec<String> = part
            .iter()
            .map(|(_, set)| serde_json::to_string(set).expect("ids serialise"))
            .collect();
        // One list of pairs on SQLite (two lists joined by their keys would
        // be a quadratic join there); two arrays unnested on PostgreSQL.
        let statement = match C::DIALECT {
            Dialect::Sqlite => {
                let pairs: Vec<(i64, &str)> = part
                    .iter()
                    .zip(&sets)
                    .map(|((id, _), set)| (*id, set.as_str()))
                    .collect();
                sql!(
                    "INSERT INTO journal_members (site_id, subscriber_id, segments)
                     SELECT $1, json_extract(value, '$[0]'), json_extract(value, '$[1]')
                     FROM json_each($2) WHERE true
                     ON CONFLICT (site_id, subscriber_id) DO UPDATE SET segments = excluded.segments",
                    site_id,
                    serde_json::to_string(&pairs).expect("pairs serialise")
                )
            }
            Dialect::Postgres => {
                let ids: Vec<i64> = part.iter().map(|(id, _)| *id).collect();
                sql!(
                    "INSERT INTO journal_members (site_id, subscriber_id, segments)
                     SELECT $1, i, s FROM unnest($2::bigint[], $3::text[]) AS t(i, s)
                     ON CONFLICT (site_id, subscriber_id) DO UPDATE SET segments = excluded.segments",
                    site_id,
                    ids,
                    sets
                )
            }
        };
        conn.execute(statement).await?;
    }
    Ok(())
}

/// Records `flips` (segment, subscriber, joined) at `now` (or the site's
/// latest transition's instant, if that is later: the journal's instants
/// never go back), with the counts they move.
async fn write_transitions<C: Conn>(
    conn: &mut C,
    journal: &Journal,
    site_id: i64,
    flips: &[(i64, i64, bool)],
    now: i64,
    reason: Reason,
) -> Result<()> {
    #[cfg(test)]
    let kept: Vec<(i64, i64, bool)>;
    #[cfg(test)]
    let flips =
        if journal.broken.load(std::sync::atomic::Ordering::Relaxed) && reason == Reason::Data {
            kept = flips.iter().copied().filter(|f| f.2).collect();
            &kept[..]
        } else {
            flips
        };
    #[cfg(not(test))]
    let _ = journal;
    if flips.is_empty() {
        return Ok(());
    }
    let text = C::DIALECT.pick(
        "INSERT INTO journal_sites (site_id, last_at) VALUES ($1, $2)
         ON CONFLICT (site_id) DO UPDATE SET last_at = max(journal_sites.last_at, excluded.last_at)
         RETURNING last_at",
        "INSERT INTO journal_sites (site_id, last_at) VALUES ($1, $2)
         ON CONFLICT (site_id) DO UPDATE SET last_at = GREATEST(journal_sites.last_at, excluded.last_at)
         RETURNING last_at",
    );
    let (at,): (i64,) = conn.one(sql!(text, site_id, now)).await?;
    let code = i64::from(reason.code());
    for part in flips.chunks(CHUNK) {
        // As in [`write_sets`]: one list of triples on SQLite.
        let statement = match C::DIALECT {
            Dialect::Sqlite => {
                let triples: Vec<(i64, i64, bool)> = part.to_vec();
                sql!(
                    "INSERT INTO segment_transitions
                         (site_id, segment_id, subscriber_id, at, added, reason)
                     SELECT $1, json_extract(value, '$[0]'), json_extract(value, '$[1]'), $3,
                            json_extract(value, '$[2]'), $4
                     FROM json_each($2) ORDER BY key",
                    site_id,
                    serde_json::to_string(&triples).expect("triples serialise"),
                    at,
                    code
                )
            }
            Dialect::Postgres => {
                let segments: Vec<i64> = part.iter().map(|f| f.0).collect();
                let subscribers: Vec<i64> = part.iter().map(|f| f.1).collect();
                let added: Vec<i64> = part.iter().map(|f| i64::from(f.2)).collect();
                sql!(
                    "INSERT INTO segment_transitions
                         (site_id, segment_id, subscriber_id, at, added, reason)
                     SELECT $1, g, s, $3, a = 1, $4
                     FROM unnest($2::bigint[], $5::bigint[], $6::bigint[])
                          WITH ORDINALITY AS t(g, s, a, n)
                     ORDER BY n",
                    site_id,
                    segments,
                    at,
                    code,
                    subscribers,
                    added
                )
            }
        };
        conn.execute(statement).await?;
    }
    let mut moved: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for &(segment, _, joined) in flips {
        let counts = moved.entry(segment).or_default();
        if joined {
            counts.0 += 1;
        } else {
            counts.1 += 1;
        }
    }
    // The counts of every segment moved, in one statement each.
    let segments: Vec<i64> = moved.keys().copied().collect();
    let added: Vec<i64> = moved.values().map(|c| c.0).collect();
    let removed: Vec<i64> = moved.values().map(|c| c.1).collect();
    let (members, days) = match C::DIALECT {
        Dialect::Sqlite => {
            let triples: Vec<(i64, i64, i64)> = moved.iter().map(|(g, c)| (*g, c.0, c.1)).collect();
            let list = serde_json::to_string(&triples).expect("triples serialise");
            (
                sql!(
                    "UPDATE segment_journals SET members = members + m.a - m.r
                     FROM (SELECT json_extract(value, '$[0]') AS g,
                                  json_extract(value, '$[1]') AS a,
                                  json_extract(value, '$[2]') AS r FROM json_each($2)) AS m
                     WHERE segment_journals.site_id = $1 AND segment_journals.segment_id = m.g",
                    site_id,
                    list.clone()
                ),
                sql!(
                    "INSERT INTO journal_days (site_id, segment_id, day, added, removed)
                     SELECT $1, json_extract(value, '$[0]'), $3, json_extract(value, '$[1]'),
                            json_extract(value, '$[2]')
                     FROM json_each($2) WHERE true
                     ON CONFLICT (site_id, segment_id, day) DO UPDATE
                     SET added = journal_days.added + excluded.added,
                         removed = journal_days.removed + excluded.removed",
                    site_id,
                    list,
                    day_of(at)
                ),
            )
        }
        Dialect::Postgres => (
            sql!(
                "UPDATE segment_journals j SET members = j.members + m.a - m.r
                 FROM unnest($2::bigint[], $3::bigint[], $4::bigint[]) AS m(g, a, r)
                 WHERE j.site_id = $1 AND j.segment_id = m.g",
                site_id,
                segments.clone(),
                added.clone(),
                removed.clone()
            ),
            sql!(
                "INSERT INTO journal_days (site_id, segment_id, day, added, removed)
                 SELECT $1, g, $5, a, r
                 FROM unnest($2::bigint[], $3::bigint[], $4::bigint[]) AS m(g, a, r)
                 ON CONFLICT (site_id, segment_id, day) DO UPDATE
                 SET added = journal_days.added + excluded.added,
                     removed = journal_days.removed + excluded.removed",
                site_id,
                segments,
                added,
                removed,
                day_of(at)
            ),
        ),
    };
    conn.execute(members).await?;
    conn.execute(days).await?;
    Ok(())
}

/// What a reconciliation has to do.
struct Plan {
    /// Segments to evaluate anew, with the reason of what moves.
    work: BTreeMap<i64, Reason>,
    /// Segments without a baseline.
    baselines: Vec<i64>,
    /// Segments discarded since the journal last had them kept.
    gone: Vec<i64>,
}

impl Plan {
    fn is_empty(&self) -> bool {
        self.work.is_empty() && self.baselines.is_empty() && self.gone.is_empty()
    }
}

fn plan(states: &[SegmentState], kept: &[Kept], occasion: Occasion) -> Plan {
    let mut work: BTreeMap<i64, Reason> = BTreeMap::new();
    let mut baselines = Vec::new();
    for k in kept {
        match (&k.query, k.journaled) {
            (Some(_), None) => baselines.push(k.id),
            (Some(_), Some(_)) if !k.was_kept => {
                work.insert(k.id, Reason::SegmentRestored);
            }
            (_, Some(v)) if v != k.version => {
                work.insert(k.id, Reason::DefinitionChanged);
            }
            _ => {}
        }
    }
    let gone: Vec<i64> = states
        .iter()
        .filter(|s| s.discarded_at.is_some() && s.journal_kept == Some(true))
        .map(|s| s.id)
        .collect();
    // Segments referring to one whose members change change with it.
    let refers = |k: &Kept, to: &dyn Fn(i64) -> bool| {
        k.query
            .as_ref()
            .is_some_and(|q| q.segment_refs().into_iter().any(to))
    };
    loop {
        let more: Vec<i64> = kept
            .iter()
            .filter(|k| k.journaled.is_some() && !work.contains_key(&k.id))
            .filter(|k| refers(k, &|id| work.contains_key(&id)))
            .map(|k| k.id)
            .collect();
        if more.is_empty() {
            break;
        }
        for id in more {
            work.insert(id, Reason::DefinitionChanged);
        }
    }
    let windows = match occasion {
        Occasion::SegmentWrite => Vec::new(),
        Occasion::Sweep => windows_of(kept),
        Occasion::Window(id) => windows_of(kept).into_iter().filter(|w| *w == id).collect(),
    };
    for id in windows {
        work.entry(id).or_insert(Reason::TimeWindow);
    }
    Plan {
        work,
        baselines,
        gone,
    }
}

/// The kept segments, journaled at their version, whose members a relative
/// time window moves (their own, or one of a segment they refer to).
fn windows_of(kept: &[Kept]) -> Vec<i64> {
    let refers = |k: &Kept, moving: &BTreeSet<i64>| {
        k.query
            .as_ref()
            .is_some_and(|q| q.segment_refs().into_iter().any(|id| moving.contains(&id)))
    };
    let mut moving: BTreeSet<i64> = kept
        .iter()
        .filter(|k| k.query.as_ref().is_some_and(|q| q.moves_with_time()))
        .map(|k| k.id)
        .collect();
    loop {
        let more: Vec<i64> = kept
            .iter()
            .filter(|k| !moving.contains(&k.id) && refers(k, &moving))
            .map(|k| k.id)
            .collect();
        if more.is_empty() {
            break;
        }
        moving.extend(more);
    }
    kept.iter()
        .filter(|k| moving.contains(&k.id) && k.journaled == Some(k.version))
        .map(|k| k.id)
        .collect()
}

/// The segments whose time windows a sweep records, one write turn each
/// (see [`Occasion::Window`]).
pub async fn windows(conn: &mut impl Conn, journal: &Journal, site_id: i64) -> Result<Vec<i64>> {
    let states = segment_states(conn, site_id).await?;
    Ok(windows_of(&kept_of(journal, site_id, &states)))
}

/// What a sweep of the site at `now` would be: [`Occasion::Sweep`] when
/// the time windows are due (none swept for `every` ms), else
/// [`Occasion::SegmentWrite`] (baselines and what was left for a server,
/// which never wait for the windows' turn).
pub async fn sweep_occasion(
    conn: &mut impl Conn,
    site_id: i64,
    now: i64,
    every: i64,
) -> Result<Occasion> {
    Ok(if swept_at(conn, site_id).await? <= now - every {
        Occasion::Sweep
    } else {
        Occasion::SegmentWrite
    })
}

/// Whether a sweep of the site would do anything now: a baseline to take,
/// a definition left for a server, or windows due. Read without the write
/// turn, to spare a site with nothing to do the read of its audience.
pub async fn due(
    conn: &mut impl Conn,
    journal: &Journal,
    site_id: i64,
    now: i64,
    every: i64,
) -> Result<bool> {
    let occasion = sweep_occasion(conn, site_id, now, every).await?;
    let states = segment_states(conn, site_id).await?;
    let kept = kept_of(journal, site_id, &states);
    Ok(!plan(&states, &kept, occasion).is_empty())
}

/// The ids in `after` only (joined, `true`) and in `before` only (left,
/// `false`), ascending within each, from two ascending lists.
fn difference(before: &[i64], after: &[i64]) -> Vec<(i64, bool)> {
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    loop {
        match (before.get(i), after.get(j)) {
            (Some(b), Some(a)) if b == a => {
                i += 1;
                j += 1;
            }
            (Some(b), Some(a)) if b < a => {
                out.push((*b, false));
                i += 1;
            }
            (_, Some(a)) => {
                out.push((*a, true));
                j += 1;
            }
            (Some(b), None) => {
                out.push((*b, false));
                i += 1;
            }
            (None, None) => return out,
        }
    }
}

/// Why [`reconcile`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Occasion {
    /// A segment write, in its transaction: definitions, discards and
    /// restores, and the baselines of new segments.
    SegmentWrite,
    /// The minute's sweep: the same, and every segment a relative time
    /// window moves. Only planned ([`due`]): a sweep records the windows a
    /// segment a turn, so that a writer never waits behind all of them.
    Sweep,
    /// A segment write's work, and this segment's time window.
    Window(i64),
}

/// Brings the journal of every segment of the site up to the segments as
/// the transaction sees them (and, in a sweep, to the clock): a segment
/// without a baseline gets one, announcing nobody; a definition changed
/// (its own, or one it refers to), a discard, a restore or a moved window
/// is recorded as the difference between the journal's members and the
/// whole audience's, at `now`. Runs holding the site's write turn. Without
/// an evaluator (a process with no audience in memory) what needs one is
/// left for the next sweep of a server; whether nothing was left.
pub async fn reconcile<C: Conn>(
    conn: &mut C,
    journal: &Journal,
    site_id: i64,
    now: i64,
    occasion: Occasion,
) -> Result<bool> {
    let states = segment_states(conn, site_id).await?;
    let kept = kept_of(journal, site_id, &states);
    let Plan {
        mut work,
        mut baselines,
        gone,
    } = plan(&states, &kept, occasion);
    let which: Vec<i64> = work
        .keys()
        .copied()
        .filter(|id| kept.iter().any(|k| k.id == *id && k.query.is_some()))
        .chain(baselines.iter().copied())
        .collect();
    let evaluated = match journal.evaluator() {
        _ if which.is_empty() => Some(HashMap::new()),
        Some(evaluator) => {
            evaluator
                .members(site_id, &resolver_of(&kept), &which, now)
                .await?
        }
        None => None,
    };
    let deferred = evaluated.is_none();
    let evaluated = evaluated.unwrap_or_else(|| {
        // Left for a sweep, which reads the audience first; a discard needs
        // no evaluation.
        work.clear();
        baselines.clear();
        HashMap::new()
    });
    if work.is_empty() && gone.is_empty() && baselines.is_empty() {
        return Ok(!deferred);
    }
    let old = if work.is_empty() && gone.is_empty() {
        HashMap::new()
    } else {
        let wanted: Vec<i64> = work.keys().chain(&gone).copied().collect();
        members_now(conn, journal, site_id, &wanted).await?
    };
    let empty = Vec::new();
    let mut by_reason: BTreeMap<i16, Vec<(i64, i64, bool)>> = BTreeMap::new();
    let mut edits: BTreeMap<i64, Vec<(i64, bool)>> = BTreeMap::new();
    let changes = work
        .iter()
        .map(|(id, reason)| (*id, *reason, evaluated.get(id).cloned().unwrap_or_default()))
        .chain(
            gone.iter()
                .map(|id| (*id, Reason::SegmentDiscarded, Vec::new())),
        );
    for (segment, reason, after) in changes {
        let before = old.get(&segment).unwrap_or(&empty);
        let flips = by_reason.entry(reason.code()).or_default();
        for (id, joined) in difference(before, &after) {
            flips.push((segment, id, joined));
            edits.entry(id).or_default().push((segment, joined));
        }
    }
    for &segment in &baselines {
        for &id in evaluated.get(&segment).map_or(&[][..], Vec::as_slice) {
            edits.entry(id).or_default().push((segment, true));
        }
    }
    let ids: Vec<i64> = edits.keys().copied().collect();
    for chunk in ids.chunks(CHUNK) {
        let mut sets = journaled_sets(conn, site_id, chunk).await?;
        let changed: Vec<(i64, BTreeSet<i64>)> = chunk
            .iter()
            .map(|id| {
                let mut set = sets.remove(id).unwrap_or_default();
                for &(segment, joined) in &edits[id] {
                    if joined {
                        set.insert(segment);
                    } else {
                        set.remove(&segment);
                    }
                }
                (*id, set)
            })
            .collect();
        write_sets(conn, site_id, &changed).await?;
    }
    for (code, flips) in by_reason {
        let reason = Reason::from_code(code).expect("codes come from reasons");
        write_transitions(conn, journal, site_id, &flips, now, reason).await?;
    }
    let version_of = |id: i64| states.iter().find(|s| s.id == id).map_or(0, |s| s.version);
    for &segment in work.keys() {
        conn.execute(sql!(
            "UPDATE segment_journals SET version = $3, kept = $4
             WHERE site_id = $1 AND segment_id = $2",
            site_id,
            segment,
            version_of(segment),
            true
        ))
        .await?;
    }
    for &segment in &gone {
        conn.execute(sql!(
            "UPDATE segment_journals SET version = $3, kept = $4
             WHERE site_id = $1 AND segment_id = $2",
            site_id,
            segment,
            version_of(segment),
            false
        ))
        .await?;
    }
    for &segment in &baselines {
        let members = evaluated.get(&segment).map_or(0, Vec::len) as i64;
        conn.execute(sql!(
            "INSERT INTO segment_journals (site_id, segment_id, version, kept, begins_at, members)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (site_id, segment_id) DO UPDATE
             SET version = excluded.version, kept = excluded.kept,
                 begins_at = COALESCE(segment_journals.begins_at, excluded.begins_at),
                 members = excluded.members",
            site_id,
            segment,
            version_of(segment),
            true,
            now,
            members
        ))
        .await?;
    }
    if !baselines.is_empty() {
        conn.execute(sql!(
            "INSERT INTO journal_sites (site_id, baselines) VALUES ($1, 1)
             ON CONFLICT (site_id) DO UPDATE SET baselines = journal_sites.baselines + 1",
            site_id
        ))
        .await?;
    }
    Ok(!deferred)
}

/// Records that the site's time windows were swept at `now`.
pub async fn mark_swept(conn: &mut impl Conn, site_id: i64, now: i64) -> Result<()> {
    conn.execute(sql!(
        "INSERT INTO journal_sites (site_id, swept_at) VALUES ($1, $2)
         ON CONFLICT (site_id) DO UPDATE SET swept_at = excluded.swept_at",
        site_id,
        now
    ))
    .await?;
    Ok(())
}

/// When the site's time windows were last swept (0: never).
pub async fn swept_at(conn: &mut impl Conn, site_id: i64) -> Result<i64> {
    let row: Option<(i64,)> = conn
        .optional(sql!(
            "SELECT swept_at FROM journal_sites WHERE site_id = $1",
            site_id
        ))
        .await?;
    Ok(row.map_or(0, |(at,)| at))
}

/// Every segment's members as the journal has them, from this store's copy
/// brought forward by the transitions since it was read (read whole when
/// there is none, or a baseline was taken since). The copy kept is the one
/// read, never one changed by this transaction, which may yet roll back.
pub(crate) async fn members_now(
    conn: &mut impl Conn,
    journal: &Journal,
    site_id: i64,
    wanted: &[i64],
) -> Result<HashMap<i64, Vec<i64>>> {
    let baselines: Option<(i64,)> = conn
        .optional(sql!(
            "SELECT baselines FROM journal_sites WHERE site_id = $1",
            site_id
        ))
        .await?;
    let baselines = baselines.map_or(0, |(b,)| b);
    let held = journal
        .members
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&site_id)
        .filter(|m| m.baselines == baselines);
    let mut members = match held {
        Some(members) => members,
        None => {
            let (through,): (i64,) = conn
                .one(sql!(
                    "SELECT COALESCE(max(id), 0) FROM segment_transitions WHERE site_id = $1",
                    site_id
                ))
                .await?;
            let rows: Vec<(i64, String)> = conn
                .all(sql!(
                    "SELECT subscriber_id, segments FROM journal_members WHERE site_id = $1",
                    site_id
                ))
                .await?;
            let mut by_segment: HashMap<i64, Vec<i64>> = HashMap::new();
            for (id, text) in rows {
                for segment in parse_set(&text) {
                    by_segment.entry(segment).or_default().push(id);
                }
            }
            by_segment.values_mut().for_each(|ids| ids.sort_unstable());
            SiteMembers {
                through,
                baselines,
                by_segment,
            }
        }
    };
    let since: Vec<(i64, i64, i64, bool)> = conn
        .all(sql!(
            "SELECT id, segment_id, subscriber_id, added FROM segment_transitions
             WHERE site_id = $1 AND id > $2 ORDER BY id",
            site_id,
            members.through
        ))
        .await?;
    for (id, segment, subscriber, added) in since {
        let ids = members.by_segment.entry(segment).or_default();
        match (ids.binary_search(&subscriber), added) {
            (Err(at), true) => ids.insert(at, subscriber),
            (Ok(at), false) => {
                ids.remove(at);
            }
            _ => {}
        }
        members.through = id;
    }
    let now = wanted
        .iter()
        .filter_map(|id| {
            let ids = members.by_segment.get(id)?;
            Some((*id, ids.clone()))
        })
        .collect();
    journal
        .members
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(site_id, members);
    Ok(now)
}

/// Where a segment's journal stands; `None` for a segment it does not know.
pub async fn info(
    conn: &mut impl Conn,
    site_id: i64,
    segment_id: i64,
) -> Result<Option<JournalInfo>> {
    let row: Option<(Option<i64>, i64)> = conn
        .optional(sql!(
            "SELECT begins_at, members FROM segment_journals WHERE site_id = $1 AND segment_id = $2",
            site_id,
            segment_id
        ))
        .await?;
    Ok(row.map(|(begins_at, members)| JournalInfo { begins_at, members }))
}

#[derive(sqlx::FromRow)]
struct TransitionRow {
    id: i64,
    segment_id: i64,
    subscriber_id: i64,
    at: i64,
    added: bool,
    reason: i16,
}

impl TransitionRow {
    fn transition(&self) -> MemberChange {
        MemberChange {
            id: self.id,
            segment_id: self.segment_id,
            subscriber_id: self.subscriber_id,
            at: self.at,
            added: self.added,
            reason: Reason::from_code(self.reason).unwrap_or(Reason::Data),
        }
    }
}

#[derive(sqlx::FromRow)]
struct NamedRow {
    #[sqlx(flatten)]
    row: TransitionRow,
    uuid: String,
    email: String,
}

/// Up to `limit` transitions of a segment after `(at, id)`, in commit
/// order, each with its subscriber's public id and email.
pub async fn changes(
    conn: &mut impl Conn,
    site_id: i64,
    segment_id: i64,
    after: (i64, i64),
    limit: usize,
) -> Result<Vec<NamedChange>> {
    let rows: Vec<NamedRow> = conn
        .all(sql!(
            "SELECT t.id, t.segment_id, t.subscriber_id, t.at, t.added, t.reason, s.uuid, s.email
             FROM segment_transitions t
             JOIN subscribers s ON s.site_id = t.site_id AND s.id = t.subscriber_id
             WHERE t.site_id = $1 AND t.segment_id = $2
               AND (t.at > $3 OR (t.at = $3 AND t.id > $4))
             ORDER BY t.at, t.id LIMIT $5",
            site_id,
            segment_id,
            after.0,
            after.1,
            i64::try_from(limit).unwrap_or(i64::MAX)
        ))
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| NamedChange {
            change: r.row.transition(),
            subscriber_uuid: r.uuid,
            email: r.email,
        })
        .collect())
}

/// A subscriber's latest transitions (every segment), newest first.
pub async fn of_subscriber(
    conn: &mut impl Conn,
    site_id: i64,
    subscriber_id: i64,
    limit: usize,
) -> Result<Vec<MemberChange>> {
    let rows: Vec<TransitionRow> = conn
        .all(sql!(
            "SELECT id, segment_id, subscriber_id, at, added, reason FROM segment_transitions
             WHERE subscriber_id = $2 AND site_id = $1 ORDER BY id DESC LIMIT $3",
            site_id,
            subscriber_id,
            i64::try_from(limit).unwrap_or(i64::MAX)
        ))
        .await?;
    Ok(rows.iter().map(TransitionRow::transition).collect())
}

const DAY: i64 = 86_400_000;

/// Joins less leaves of a segment strictly after `at`: the members now,
/// less this, were the members at `at`. Whole days come from the daily
/// counts, the rest of `at`'s day from the transitions.
pub async fn net_after(
    conn: &mut impl Conn,
    site_id: i64,
    segment_id: i64,
    at: i64,
) -> Result<i64> {
    let day_end = day_of(at) + DAY;
    let (days,): (Option<i64>,) = conn
        .one(sql!(
            "SELECT CAST(SUM(added - removed) AS BIGINT) FROM journal_days
             WHERE site_id = $1 AND segment_id = $2 AND day >= $3",
            site_id,
            segment_id,
            day_end
        ))
        .await?;
    let (rest,): (Option<i64>,) = conn
        .one(sql!(
            "SELECT CAST(SUM(CASE WHEN added THEN 1 ELSE -1 END) AS BIGINT) FROM segment_transitions
             WHERE site_id = $1 AND segment_id = $2 AND at > $3 AND at < $4",
            site_id,
            segment_id,
            at,
            day_end
        ))
        .await?;
    Ok(days.unwrap_or(0) + rest.unwrap_or(0))
}

/// A segment's daily counts for the days in `[from, until)`.
pub async fn days(
    conn: &mut impl Conn,
    site_id: i64,
    segment_id: i64,
    from: i64,
    until: i64,
) -> Result<Vec<DayCounts>> {
    let rows: Vec<(i64, i64, i64)> = conn
        .all(sql!(
            "SELECT day, added, removed FROM journal_days
             WHERE site_id = $1 AND segment_id = $2 AND day >= $3 AND day < $4 ORDER BY day",
            site_id,
            segment_id,
            from,
            until
        ))
        .await?;
    Ok(rows
        .into_iter()
        .map(|(day, added, removed)| DayCounts {
            day,
            added,
            removed,
        })
        .collect())
}

/// Joins and leaves of a segment in `[from, until)` per bucket of `width`
/// ms from `from`: (bucket number, joins, leaves), buckets with any.
pub async fn buckets(
    conn: &mut impl Conn,
    site_id: i64,
    segment_id: i64,
    from: i64,
    until: i64,
    width: i64,
) -> Result<Vec<(i64, i64, i64)>> {
    conn.all(sql!(
        "SELECT (at - $3) / $5 AS bucket,
                CAST(SUM(CASE WHEN added THEN 1 ELSE 0 END) AS BIGINT),
                CAST(SUM(CASE WHEN added THEN 0 ELSE 1 END) AS BIGINT)
         FROM segment_transitions
         WHERE site_id = $1 AND segment_id = $2 AND at >= $3 AND at < $4
         GROUP BY (at - $3) / $5 ORDER BY bucket",
        site_id,
        segment_id,
        from,
        until,
        width
    ))
    .await
}

/// Transitions deleted per write transaction when trimming, so that a trim
/// of a large journal never holds the writer for long.
pub const TRIM_PER_TRANSACTION: i64 = 5_000;

/// Trimming before `before`, its first transaction. Each segment's
/// history is cut at `before`, or earlier where a webhook's watch of it has
/// not yet read that far (its notifications are written from the journal:
/// a transition goes only once every watch has turned it into them). The
/// segment's history begins at its cut from then on (so no reader asks
/// about an instant whose transitions are going); its days wholly before
/// the cut and its checkpoints before it (which would be brought forward
/// over transitions about to go) go. The segments and their cuts, whose
/// transitions [`trim_some`] then deletes.
pub async fn trim_begin(conn: &mut impl Conn, before: i64) -> Result<Vec<(i64, i64, i64)>> {
    let segments: Vec<(i64, i64, Option<i64>)> = conn
        .all(sql!(
            "SELECT j.site_id, j.segment_id, w.after_at FROM segment_journals j
             LEFT JOIN segment_watches w ON w.site_id = j.site_id AND w.segment_id = j.segment_id
             ORDER BY j.site_id, j.segment_id"
        ))
        .await?;
    // A server's copy of the journal's members is brought forward by the
    // transitions after the one it was read at: those about to go would be
    // missing from it. Counting a baseline makes every copy be read again.
    conn.execute(sql!("UPDATE journal_sites SET baselines = baselines + 1"))
        .await?;
    let mut cuts = Vec::with_capacity(segments.len());
    for (site_id, segment_id, read_to) in segments {
        let cut = read_to.map_or(before, |at| at.min(before));
        conn.execute(sql!(
            "DELETE FROM journal_days WHERE site_id = $1 AND segment_id = $2 AND day < $3",
            site_id,
            segment_id,
            day_of(cut)
        ))
        .await?;
        conn.execute(sql!(
            "DELETE FROM journal_checkpoints WHERE site_id = $1 AND segment_id = $2 AND at < $3",
            site_id,
            segment_id,
            cut
        ))
        .await?;
        conn.execute(sql!(
            "UPDATE segment_journals SET begins_at = $3
             WHERE site_id = $1 AND segment_id = $2 AND begins_at < $3",
            site_id,
            segment_id,
            cut
        ))
        .await?;
        cuts.push((site_id, segment_id, cut));
    }
    Ok(cuts)
}

/// Deletes up to [`TRIM_PER_TRANSACTION`] of a segment's transitions
/// before `before`, oldest first (an index range); how many went.
pub async fn trim_some(
    conn: &mut impl Conn,
    site_id: i64,
    segment_id: i64,
    before: i64,
) -> Result<u64> {
    conn.execute(sql!(
        "DELETE FROM segment_transitions WHERE site_id = $1 AND id IN (
             SELECT id FROM segment_transitions
             WHERE site_id = $1 AND segment_id = $2 AND at < $3
             ORDER BY at, id LIMIT $4)",
        site_id,
        segment_id,
        before,
        TRIM_PER_TRANSACTION
    ))
    .await
}

/// The sites with a kept segment.
pub async fn sites(conn: &mut impl Conn) -> Result<Vec<i64>> {
    let rows: Vec<(i64,)> = conn
        .all(sql!(
            "SELECT DISTINCT site_id FROM segments WHERE discarded_at IS NULL ORDER BY site_id"
        ))
        .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

#[cfg(test)]
mod tests {
    use super::difference;

    #[test]
    fn the_difference_of_two_ascending_lists_is_joins_and_leaves() {
        assert_eq!(
            difference(&[1, 3, 5, 7], &[2, 3, 7, 8, 9]),
            [(1, false), (2, true), (5, false), (8, true), (9, true)]
        );
        assert_eq!(difference(&[], &[1]), [(1, true)]);
        assert_eq!(difference(&[4], &[]), [(4, false)]);
        assert_eq!(difference(&[4], &[4]), []);
    }
}
