//! Writing a run of audience changes in bulk on PostgreSQL: the run is
//! folded in memory by [`corral_core::audience::fold`] (where every rule is
//! decided, as on SQLite) and written with one statement per table, each
//! taking its rows as arrays (`UNNEST`), so a batch of thousands of events
//! costs a handful of round trips. Rows are inserted in the fold's order
//! (`WITH ORDINALITY … ORDER BY`), so ids are handed out as SQLite hands
//! them out.

use super::Tx;
use crate::credentials::random_hex_id;
use crate::storage::Result;
use crate::storage::sql::apply::{Applied, Batch};
use crate::storage::sql::caps::site_counts;
use corral_core::audience::apply::{self, Fields, SubscriberState};
use corral_core::audience::fold::{self, Fold, Slot};
use corral_core::audience::{Limits, Outcome, SubscriberChange};
use futures_util::future::BoxFuture;
use std::collections::{HashMap, HashSet};

impl Batch for Tx {
    fn bulk_run<'a>(
        &'a mut self,
        site_id: i64,
        changes: &'a [SubscriberChange],
        now: i64,
        limits: &'a Limits,
        touched: &'a mut Vec<i64>,
    ) -> BoxFuture<'a, Result<Applied>> {
        Box::pin(apply_run(self, site_id, changes, now, limits, touched))
    }
}

/// Applies a run of changes that [`fold::can_bulk`] accepts, each held to
/// `limits`; adds to `touched` the subscribers created or whose row or tags
/// changed, and returns with the outcomes the range of event ids stored.
async fn apply_run(
    tx: &mut Tx,
    site_id: i64,
    changes: &[SubscriberChange],
    now: i64,
    limits: &Limits,
    touched: &mut Vec<i64>,
) -> Result<(Vec<Outcome>, Option<(i64, i64)>)> {
    let stored = stored_purchases(tx, site_id, changes).await?;
    let live: Vec<&SubscriberChange> = changes
        .iter()
        .filter(|c| !fold::purchase(c).is_some_and(|key| stored.contains(&key)))
        .collect();
    let mut fold = load(tx, site_id, &live).await?;
    let outcomes = fold.run(changes, &stored, limits);

    create_subscribers(tx, site_id, &mut fold, now).await?;
    touched.extend(fold.touched());
    register_fields(tx, site_id, &fold.field_keys(), now).await?;
    let tag_ids = create_tags(tx, site_id, &fold, now).await?;
    write_subscribers(tx, site_id, &fold, now).await?;
    write_tags(tx, site_id, &fold, &tag_ids, now).await?;
    let events = write_events(tx, site_id, &fold, now).await?;
    Ok((outcomes, events))
}

/// The (type, unique key) pairs of the run's purchases already stored.
async fn stored_purchases(
    tx: &mut Tx,
    site_id: i64,
    changes: &[SubscriberChange],
) -> Result<HashSet<(String, String)>> {
    let (kinds, keys): (Vec<&str>, Vec<&str>) =
        changes.iter().filter_map(apply::purchase_key).unzip();
    if kinds.is_empty() {
        return Ok(HashSet::new());
    }
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT e.type, e.unique_key FROM UNNEST($2::text[], $3::text[]) AS p(kind, key)
         JOIN events e ON e.site_id = $1 AND e.type = p.kind AND e.unique_key = p.key",
    )
    .bind(site_id)
    .bind(&kinds)
    .bind(&keys)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().collect())
}

/// A subscriber as [`load`] reads it: its place in [`fold::wanted`], id,
/// fields and tag keys (when wanted), and subscription.
type LoadedRow = (i64, i64, Option<String>, Option<i64>, Option<Vec<String>>);

/// Every subscriber `changes` name, read if it exists (its row and tags only
/// when a change needs them), and the site's counts the caps watch.
async fn load<'a>(tx: &mut Tx, site_id: i64, changes: &[&'a SubscriberChange]) -> Result<Fold<'a>> {
    let wanted = fold::wanted(changes);
    let mut slots: Vec<Slot<'a>> = wanted.iter().map(|w| Slot::missing(w.email)).collect();
    let keys: Vec<&str> = wanted.iter().map(|w| w.key.as_str()).collect();
    let rows: Vec<LoadedRow> = sqlx::query_as(
        "SELECT w.ord, s.id,
                CASE WHEN w.row THEN s.fields END,
                s.unsubscribed_at,
                CASE WHEN w.tags THEN ARRAY(
                    SELECT t.name_key FROM subscriber_tags st
                    JOIN tags t ON t.site_id = st.site_id AND t.id = st.tag_id
                    WHERE st.site_id = s.site_id AND st.subscriber_id = s.id) END
         FROM UNNEST($2::text[], $3::bool[], $4::bool[]) WITH ORDINALITY AS w(key, row, tags, ord)
         JOIN subscribers s ON s.site_id = $1 AND s.email_key = w.key",
    )
    .bind(site_id)
    .bind(&keys)
    .bind(wanted.iter().map(|w| w.row).collect::<Vec<_>>())
    .bind(wanted.iter().map(|w| w.tags).collect::<Vec<_>>())
    .fetch_all(&mut **tx)
    .await?;
    for (ord, id, fields, unsubscribed_at, tags) in rows {
        let slot = &mut slots[ord as usize - 1];
        slot.id = Some(id);
        slot.state = SubscriberState {
            fields: fields.map_or(Fields::Unread, Fields::Text),
            tags: tags.map(|t| t.into_iter().collect()),
            unsubscribed_at,
        };
    }
    let site = site_counts(&mut **tx, site_id, changes.iter().copied()).await?;
    Ok(Fold::new(&wanted, slots, site))
}

/// Creates (subscribed, no fields) the subscribers that applied changes name
/// and the site did not have, in the order of their first applied change.
async fn create_subscribers(
    tx: &mut Tx,
    site_id: i64,
    fold: &mut Fold<'_>,
    now: i64,
) -> Result<()> {
    if fold.to_create.is_empty() {
        return Ok(());
    }
    let (mut uuids, mut emails, mut keys) = (Vec::new(), Vec::new(), Vec::new());
    for &i in &fold.to_create {
        let email = fold.slots[i].email;
        uuids.push(random_hex_id());
        emails.push(email.as_str().to_owned());
        keys.push(email.key());
    }
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "INSERT INTO subscribers (site_id, uuid, email, email_key, created_at, updated_at)
         SELECT $1, n.uuid, n.email, n.key, $5, $5
         FROM UNNEST($2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS n(uuid, email, key, ord)
         ORDER BY n.ord
         RETURNING email_key, id",
    )
    .bind(site_id)
    .bind(&uuids)
    .bind(&emails)
    .bind(&keys)
    .bind(now)
    .fetch_all(&mut **tx)
    .await?;
    for (key, id) in rows {
        fold.created(&key, id);
    }
    Ok(())
}

/// Registers the keys the site has not got, in the order given.
async fn register_fields(tx: &mut Tx, site_id: i64, keys: &[&str], now: i64) -> Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO fields (site_id, key, name, created_at)
         SELECT $1, k.key, k.key, $3 FROM UNNEST($2::text[]) WITH ORDINALITY AS k(key, ord)
         WHERE NOT EXISTS (SELECT 1 FROM fields f WHERE f.site_id = $1 AND f.key = k.key)
         ORDER BY k.ord",
    )
    .bind(site_id)
    .bind(keys)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Creates the tags the run adds that the site has not got (in key order),
/// and returns the ids of every tag the run names, by key.
async fn create_tags(
    tx: &mut Tx,
    site_id: i64,
    fold: &Fold<'_>,
    now: i64,
) -> Result<HashMap<String, i64>> {
    if !fold.tags_added.is_empty() {
        let (keys, names): (Vec<&str>, Vec<&str>) = fold
            .tags_added
            .iter()
            .map(|(key, name)| (key.as_str(), *name))
            .unzip();
        sqlx::query(
            "INSERT INTO tags (site_id, name, name_key, created_at)
             SELECT $1, n.name, n.key, $4
             FROM UNNEST($2::text[], $3::text[]) WITH ORDINALITY AS n(key, name, ord)
             WHERE NOT EXISTS (SELECT 1 FROM tags t WHERE t.site_id = $1 AND t.name_key = n.key)
             ORDER BY n.ord",
        )
        .bind(site_id)
        .bind(&keys)
        .bind(&names)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    let named: HashSet<&str> = fold.tag_ops.keys().map(|(_, key)| key.as_str()).collect();
    if named.is_empty() {
        return Ok(HashMap::new());
    }
    let named: Vec<&str> = named.into_iter().collect();
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT name_key, id FROM tags WHERE site_id = $1 AND name_key = ANY($2)")
            .bind(site_id)
            .bind(&named)
            .fetch_all(&mut **tx)
            .await?;
    Ok(rows.into_iter().collect())
}

/// Writes the rows the run changed: fields, subscription and `updated_at`.
async fn write_subscribers(tx: &mut Tx, site_id: i64, fold: &Fold<'_>, now: i64) -> Result<()> {
    let (mut ids, mut fields, mut unsubscribed) = (Vec::new(), Vec::new(), Vec::new());
    for slot in fold.slots.iter().filter(|s| s.changed) {
        ids.push(slot.id.expect("changed, so created"));
        // `None` (never the case for a row a change touched) keeps the
        // stored fields.
        fields.push(slot.state.fields.to_text());
        unsubscribed.push(slot.state.unsubscribed_at);
    }
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE subscribers s SET fields = COALESCE(v.fields, s.fields),
                                  unsubscribed_at = v.unsubscribed_at, updated_at = $2
         FROM UNNEST($3::bigint[], $4::text[], $5::bigint[]) AS v(id, fields, unsubscribed_at)
         WHERE s.site_id = $1 AND s.id = v.id",
    )
    .bind(site_id)
    .bind(now)
    .bind(&ids)
    .bind(&fields)
    .bind(&unsubscribed)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Links and unlinks the tags the run added and removed (the last word on
/// each).
async fn write_tags(
    tx: &mut Tx,
    site_id: i64,
    fold: &Fold<'_>,
    ids: &HashMap<String, i64>,
    now: i64,
) -> Result<()> {
    let ops = fold.tag_ops_by_id();
    for add in [true, false] {
        let (subscribers, tags): (Vec<i64>, Vec<i64>) = ops
            .iter()
            .filter(|(_, a)| **a == add)
            .filter_map(|((subscriber, key), _)| Some((*subscriber, *ids.get(key)?)))
            .unzip();
        if subscribers.is_empty() {
            continue;
        }
        let query = if add {
            sqlx::query(
                "INSERT INTO subscriber_tags (site_id, subscriber_id, tag_id, created_at)
                 SELECT $1, l.subscriber_id, l.tag_id, $4
                 FROM UNNEST($2::bigint[], $3::bigint[]) AS l(subscriber_id, tag_id)
                 ON CONFLICT DO NOTHING",
            )
            .bind(site_id)
            .bind(&subscribers)
            .bind(&tags)
            .bind(now)
        } else {
            sqlx::query(
                "DELETE FROM subscriber_tags st
                 USING UNNEST($2::bigint[], $3::bigint[]) AS l(subscriber_id, tag_id)
                 WHERE st.site_id = $1 AND st.subscriber_id = l.subscriber_id
                   AND st.tag_id = l.tag_id",
            )
            .bind(site_id)
            .bind(&subscribers)
            .bind(&tags)
        };
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Stores the run's events in the order applied; the range of their ids.
async fn write_events(
    tx: &mut Tx,
    site_id: i64,
    fold: &Fold<'_>,
    now: i64,
) -> Result<Option<(i64, i64)>> {
    let events = fold.events_by_id();
    if events.is_empty() {
        return Ok(None);
    }
    let mut subscribers = Vec::with_capacity(events.len());
    let mut kinds = Vec::with_capacity(events.len());
    let mut times = Vec::with_capacity(events.len());
    let mut details = Vec::with_capacity(events.len());
    let mut keys = Vec::with_capacity(events.len());
    let mut amounts = Vec::with_capacity(events.len());
    let mut currencies = Vec::with_capacity(events.len());
    for (subscriber, event) in &events {
        subscribers.push(*subscriber);
        kinds.push(event.kind.as_str());
        times.push(event.occurred_at);
        details.push(event.details.as_str());
        keys.push(event.unique_key.as_deref());
        amounts.push(event.amount);
        currencies.push(event.currency.as_deref());
    }
    let (first, last): (Option<i64>, Option<i64>) = sqlx::query_as(
        "WITH stored AS (
             INSERT INTO events (site_id, subscriber_id, type, occurred_at, details, unique_key,
                                 amount, currency, received_at)
             SELECT $1, e.subscriber_id, e.kind, e.at, e.details, e.key, e.amount, e.currency, $9
             FROM UNNEST($2::bigint[], $3::text[], $4::bigint[], $5::text[], $6::text[],
                         $7::float8[], $8::text[])
                  WITH ORDINALITY AS e(subscriber_id, kind, at, details, key, amount, currency, ord)
             ORDER BY e.ord
             RETURNING id)
         SELECT min(id), max(id) FROM stored",
    )
    .bind(site_id)
    .bind(&subscribers)
    .bind(&kinds)
    .bind(&times)
    .bind(&details)
    .bind(&keys)
    .bind(&amounts)
    .bind(&currencies)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    Ok(first.zip(last))
}
