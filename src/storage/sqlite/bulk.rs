//! Writing a run of audience changes in bulk: what every import and every
//! batch of events mostly consists of.
//!
//! Any change that may create its subscriber and does not change an email is
//! applied here, many rows per statement: the run's subscribers are read at
//! once, every change folded in order into their state in memory by
//! [`apply::apply`] (where what a change means and the caps of [`Limits`]
//! are decided), and the effects written back with a handful of multi-row
//! statements. Order inside the run is kept exactly: two changes to one
//! subscriber apply one after the other, and the last word on a tag in the
//! run wins. A `$purchase` whose unique key is already stored (or repeated
//! within the run) changes nothing at all.
//!
//! The counts the caps watch are read once for the run (the site's field
//! keys and tags, which of the keys the run names the site already has, the
//! tags held by the subscribers it tags) and kept up to date by `apply`.
//! A subscriber's fields are read only when a change of the run touches its
//! row, and parsed only when one sets or removes fields. A refused change is
//! folded into nothing: it creates no subscriber, tag or field key, and its
//! subscriber is written (and reported changed) only if another change of
//! the run applies. The one-at-a-time path ([`super::audience::apply_one`])
//! applies each change with the same function, from counts read for it
//! alone, so both refuse the same items with the same words and write the
//! same rows.

use super::caps;
use crate::credentials::random_hex_id;
use crate::storage::Result;
use crate::storage::sql::apply::{Applied, Batch};
use corral_core::audience::apply::{self, Fields, SubscriberState};
use corral_core::audience::fold::{self, Fold, Slot};
use corral_core::audience::{Limits, NewEvent, Outcome, SubscriberChange};
use futures_util::future::BoxFuture;
use sqlx::{QueryBuilder, Sqlite, Transaction};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Rows per multi-row statement: well under SQLite's limit of bound values.
const ROWS: usize = 500;

/// Events per insert statement: nine values each, so 3,000 stay under
/// SQLite's 32,766 bound values.
const EVENT_ROWS: usize = 3_000;

type Tx = Transaction<'static, Sqlite>;

/// The range of event ids a batch stored is read off `sqlite_sequence` by
/// the group's writer, around all its paths: none is answered here.
impl Batch for Tx {
    fn bulk_run<'a>(
        &'a mut self,
        site_id: i64,
        changes: &'a [SubscriberChange],
        now: i64,
        limits: &'a Limits,
        touched: &'a mut Vec<i64>,
    ) -> BoxFuture<'a, Result<Applied>> {
        Box::pin(async move {
            let outcomes = apply_run(self, site_id, changes, now, limits, touched).await?;
            Ok((outcomes, None))
        })
    }
}

/// Applies a run of changes that [`fold::can_bulk`] accepts, each held to
/// `limits`; adds to `touched` the ids of the subscribers it created or
/// whose row or tags it changed (never one that only refused changes name).
async fn apply_run(
    tx: &mut Tx,
    site_id: i64,
    changes: &[SubscriberChange],
    now: i64,
    limits: &Limits,
    touched: &mut Vec<i64>,
) -> Result<Vec<Outcome>> {
    let stored = stored_purchases(tx, site_id, changes).await?;
    let live: Vec<&SubscriberChange> = changes
        .iter()
        .filter(|c| !fold::purchase(c).is_some_and(|key| stored.contains(&key)))
        .collect();
    let mut fold = load(tx, site_id, &live).await?;
    let outcomes = fold.run(changes, &stored, limits);

    create_subscribers(tx, site_id, &mut fold, now).await?;
    touched.extend(fold.touched());
    let tag_ops = fold.tag_ops_by_id();
    register_fields(tx, site_id, fold.field_keys(), now).await?;
    let tag_ids = tag_ids(tx, site_id, &tag_ops, &fold.tags_added, now).await?;
    write_subscribers(tx, fold.slots.iter().filter(|s| s.changed), now).await?;
    write_tags(tx, &tag_ops, &tag_ids, now).await?;
    let events: Vec<(i64, &NewEvent)> = fold.events_by_id();
    for chunk in events.chunks(EVENT_ROWS) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO events (site_id, subscriber_id, type, occurred_at, details, unique_key,
                                 amount, currency, received_at) ",
        );
        insert.push_values(chunk, |mut row, (subscriber, event)| {
            row.push_bind(site_id)
                .push_bind(*subscriber)
                .push_bind(event.kind.clone())
                .push_bind(event.occurred_at)
                .push_bind(event.details.clone())
                .push_bind(event.unique_key.clone())
                .push_bind(event.amount)
                .push_bind(event.currency.clone())
                .push_bind(now);
        });
        // Already filtered above; the index stays the last word.
        insert.push(
            " ON CONFLICT (site_id, type, unique_key) WHERE unique_key IS NOT NULL DO NOTHING",
        );
        insert.build().execute(&mut **tx).await?;
    }
    Ok(outcomes)
}

/// The (type, unique key) pairs of the run's purchases already stored.
async fn stored_purchases(
    tx: &mut Tx,
    site_id: i64,
    changes: &[SubscriberChange],
) -> Result<HashSet<(String, String)>> {
    let keyed: Vec<(&str, &str)> = changes.iter().filter_map(apply::purchase_key).collect();
    let mut stored = HashSet::new();
    for chunk in keyed.chunks(ROWS) {
        let mut select = QueryBuilder::<Sqlite>::new(
            "SELECT type, unique_key FROM events WHERE unique_key IS NOT NULL AND site_id = ",
        );
        select
            .push_bind(site_id)
            .push(" AND (type, unique_key) IN (VALUES ");
        let mut pairs = select.separated(", ");
        for (kind, key) in chunk {
            pairs.push("(");
            pairs.push_bind_unseparated(kind.to_string());
            pairs.push_unseparated(", ");
            pairs.push_bind_unseparated(key.to_string());
            pairs.push_unseparated(")");
        }
        select.push(")");
        let rows: Vec<(String, String)> = select.build_query_as().fetch_all(&mut **tx).await?;
        stored.extend(rows);
    }
    Ok(stored)
}

/// Keys looked up per statement (they travel as one JSON array; `CROSS
/// JOIN` keeps SQLite walking the array and probing the email index, never
/// the other way round).
const LOOKUP_ROWS: usize = 20_000;

/// What folding `changes` starts from: every subscriber they name
/// ([`fold::wanted`]), read if they exist, and the site's counts the caps
/// watch. Most changes of an import only add an event, and for those the id
/// is all that is read: a lookup the email index answers alone.
async fn load<'a>(tx: &mut Tx, site_id: i64, changes: &[&'a SubscriberChange]) -> Result<Fold<'a>> {
    let wanted = fold::wanted(changes);
    let mut slots: Vec<Slot<'a>> = wanted.iter().map(|w| Slot::missing(w.email)).collect();
    let by_key: HashMap<&str, usize> = wanted
        .iter()
        .enumerate()
        .map(|(i, w)| (w.key.as_str(), i))
        .collect();
    for full in [true, false] {
        let keys: Vec<&str> = wanted
            .iter()
            .filter(|w| w.row == full)
            .map(|w| w.key.as_str())
            .collect();
        for chunk in keys.chunks(LOOKUP_ROWS) {
            let list = serde_json::to_string(chunk)
                .map_err(|e| crate::storage::StorageError::WriteFailed(e.to_string()))?;
            let rows: Vec<(i64, i64, Option<String>, Option<i64>)> = if full {
                sqlx::query_as(
                    "SELECT j.key, s.id, s.fields, s.unsubscribed_at
                     FROM json_each($2) j
                     CROSS JOIN subscribers s ON s.site_id = $1 AND s.email_key = j.value",
                )
                .bind(site_id)
                .bind(&list)
                .fetch_all(&mut **tx)
                .await?
            } else {
                sqlx::query_as(
                    "SELECT j.key, s.id, NULL, NULL FROM json_each($2) j
                     CROSS JOIN subscribers s ON s.site_id = $1 AND s.email_key = j.value",
                )
                .bind(site_id)
                .bind(&list)
                .fetch_all(&mut **tx)
                .await?
            };
            for (i, id, fields_text, unsubscribed_at) in rows {
                let slot = &mut slots[by_key[chunk[i as usize]]];
                slot.id = Some(id);
                slot.state = SubscriberState {
                    fields: fields_text.map_or(Fields::Unread, Fields::Text),
                    tags: None,
                    unsubscribed_at,
                };
            }
        }
    }
    let tagged: Vec<i64> = wanted
        .iter()
        .zip(&slots)
        .filter(|(w, _)| w.tags)
        .filter_map(|(_, s)| s.id)
        .collect();
    let mut held = caps::tags_held(tx, &tagged).await?;
    for (w, slot) in wanted.iter().zip(&mut slots) {
        if let Some(id) = slot.id.filter(|_| w.tags) {
            slot.state.tags = Some(held.remove(&id).unwrap_or_default());
        }
    }

    let site =
        crate::storage::sql::caps::site_counts(&mut **tx, site_id, changes.iter().copied()).await?;
    Ok(Fold::new(&wanted, slots, site))
}

/// Creates (subscribed, no fields) the subscribers that applied changes
/// name and the site did not have.
async fn create_subscribers(
    tx: &mut Tx,
    site_id: i64,
    fold: &mut Fold<'_>,
    now: i64,
) -> Result<()> {
    let missing: Vec<(String, &str)> = fold
        .to_create
        .iter()
        .map(|&i| {
            let email = fold.slots[i].email;
            (email.key(), email.as_str())
        })
        .collect();
    for chunk in missing.chunks(ROWS) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO subscribers (site_id, uuid, email, email_key, created_at, updated_at) ",
        );
        insert.push_values(chunk, |mut row, (key, email)| {
            row.push_bind(site_id)
                .push_bind(random_hex_id())
                .push_bind(email.to_string())
                .push_bind(key.clone())
                .push_bind(now)
                .push_bind(now);
        });
        insert.push(" RETURNING email_key, id");
        let rows: Vec<(String, i64)> = insert.build_query_as().fetch_all(&mut **tx).await?;
        for (key, id) in rows {
            fold.created(&key, id);
        }
    }
    Ok(())
}

/// Registers the keys the site has not got (`keys` ascending, once each).
async fn register_fields(tx: &mut Tx, site_id: i64, keys: Vec<&str>, now: i64) -> Result<()> {
    for chunk in keys.chunks(ROWS) {
        // Only the keys not yet registered are inserted: a conflict clause
        // would still take an id for each known one (AUTOINCREMENT), and ids
        // must not depend on how a write was grouped, or on the backend.
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO fields (site_id, key, name, created_at)
             SELECT column1, column2, column3, column4 FROM (",
        );
        insert.push_values(chunk, |mut row, key| {
            row.push_bind(site_id)
                .push_bind(key.to_string())
                .push_bind(key.to_string())
                .push_bind(now);
        });
        insert.push(
            ") AS v WHERE NOT EXISTS
               (SELECT 1 FROM fields f WHERE f.site_id = v.column1 AND f.key = v.column2)",
        );
        insert.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// Ids of the tags the run names by key; tags it adds are created if new.
async fn tag_ids(
    tx: &mut Tx,
    site_id: i64,
    ops: &BTreeMap<(i64, String), bool>,
    added: &BTreeMap<String, &str>,
    now: i64,
) -> Result<HashMap<String, i64>> {
    let added: Vec<(&String, &&str)> = added.iter().collect();
    for chunk in added.chunks(ROWS) {
        // Only new tags are inserted (see `register_fields`).
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO tags (site_id, name, name_key, created_at)
             SELECT column1, column2, column3, column4 FROM (",
        );
        insert.push_values(chunk, |mut row, (key, name)| {
            row.push_bind(site_id)
                .push_bind(name.to_string())
                .push_bind((*key).clone())
                .push_bind(now);
        });
        insert.push(
            ") AS v WHERE NOT EXISTS
               (SELECT 1 FROM tags t WHERE t.site_id = v.column1 AND t.name_key = v.column3)",
        );
        insert.build().execute(&mut **tx).await?;
    }
    let keys: Vec<&String> = ops
        .keys()
        .map(|(_, key)| key)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let mut ids = HashMap::with_capacity(keys.len());
    for chunk in keys.chunks(ROWS) {
        let mut select =
            QueryBuilder::<Sqlite>::new("SELECT name_key, id FROM tags WHERE site_id = ");
        select.push_bind(site_id).push(" AND name_key IN (");
        let mut list = select.separated(", ");
        for key in chunk {
            list.push_bind((*key).clone());
        }
        select.push(")");
        let rows: Vec<(String, i64)> = select.build_query_as().fetch_all(&mut **tx).await?;
        ids.extend(rows);
    }
    Ok(ids)
}

async fn write_subscribers<'s, 'a: 's>(
    tx: &mut Tx,
    changed: impl Iterator<Item = &'s Slot<'a>>,
    now: i64,
) -> Result<()> {
    let rows: Vec<(i64, Option<String>, Option<i64>)> = changed
        .map(|s| {
            // `None` (never the case for a row a change touched) keeps the
            // stored fields.
            (
                s.id.expect("changed, so created"),
                s.state.fields.to_text(),
                s.state.unsubscribed_at,
            )
        })
        .collect();
    for chunk in rows.chunks(ROWS) {
        let mut update = QueryBuilder::<Sqlite>::new(
            "UPDATE subscribers SET fields = COALESCE(v.column2, subscribers.fields),
                                    unsubscribed_at = v.column3, updated_at = ",
        );
        update.push_bind(now).push(" FROM (VALUES ");
        let mut values = update.separated(", ");
        for (id, fields, unsubscribed_at) in chunk {
            values.push("(");
            values.push_bind_unseparated(*id);
            values.push_unseparated(", ");
            values.push_bind_unseparated(fields.clone());
            values.push_unseparated(", ");
            values.push_bind_unseparated(*unsubscribed_at);
            values.push_unseparated(")");
        }
        update.push(") AS v WHERE subscribers.id = v.column1");
        update.build().execute(&mut **tx).await?;
    }
    Ok(())
}

async fn write_tags(
    tx: &mut Tx,
    ops: &BTreeMap<(i64, String), bool>,
    ids: &HashMap<String, i64>,
    now: i64,
) -> Result<()> {
    let resolved = |add: bool| -> Vec<(i64, i64)> {
        ops.iter()
            .filter(|(_, a)| **a == add)
            .filter_map(|((subscriber, key), _)| Some((*subscriber, *ids.get(key)?)))
            .collect()
    };
    for chunk in resolved(true).chunks(ROWS) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO subscriber_tags (subscriber_id, tag_id, created_at) ",
        );
        insert.push_values(chunk, |mut row, (subscriber, tag)| {
            row.push_bind(*subscriber).push_bind(*tag).push_bind(now);
        });
        insert.push(" ON CONFLICT DO NOTHING");
        insert.build().execute(&mut **tx).await?;
    }
    for chunk in resolved(false).chunks(ROWS) {
        let mut delete = QueryBuilder::<Sqlite>::new(
            "DELETE FROM subscriber_tags WHERE (subscriber_id, tag_id) IN (VALUES ",
        );
        let mut pairs = delete.separated(", ");
        for (subscriber, tag) in chunk {
            pairs.push("(");
            pairs.push_bind_unseparated(*subscriber);
            pairs.push_unseparated(", ");
            pairs.push_bind_unseparated(*tag);
            pairs.push_unseparated(")");
        }
        delete.push(")");
        delete.build().execute(&mut **tx).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The bulk path and the one-at-a-time path must leave the same audience
    //! behind, answer the same outcomes and report no subscriber that only
    //! refused changes name, for any sequence of changes, caps reached and
    //! email changes included. Three stores take the same batches: one
    //! through the store's public `apply_changes`, one through `apply_in`
    //! (the runs in bulk, an email change one at a time, as the writer does
    //! it), and one with every change alone through `apply_one`; every
    //! stored column must come out the same.

    use super::super::SqliteStore;
    use crate::credentials::KeyPair;
    use crate::storage::sql::apply::{ItemFailure, apply_in, apply_one};
    use crate::storage::{AudienceStore, Store};
    use corral_core::audience::{
        Create, Email, FieldKey, Limits, NewEvent, Outcome, SubscriberChange, Subscription, TagName,
    };
    use proptest::prelude::*;
    use serde_json::{Value, json};
    use std::collections::BTreeSet;

    const NOW: i64 = 1_795_683_600_000;

    /// Caps a dozen changes reach: four field keys and four tag keys are
    /// named, and a long value takes two fields over the size cap.
    const SMALL: Limits = Limits {
        fields_per_subscriber: 2,
        field_bytes_per_subscriber: 40,
        tags_per_subscriber: 2,
        field_keys_per_site: 3,
        tags_per_site: 3,
    };

    const EMAILS: &[&str] = &["a@x.com", "A@X.com", "b@x.com", "c@x.com"];

    /// Details as a client sends them: any key order, nesting, numbers
    /// written as the client wrote them (`1.10`, `1e3`, `-0.0`, more digits
    /// than a double holds). They must be stored byte for byte.
    fn details() -> impl Strategy<Value = String> {
        let number = prop::sample::select(vec![
            "1.10",
            "1e3",
            "2E-7",
            "-0.0",
            "100",
            "12345678901234567890",
            "0.30000000000000004",
        ]);
        let leaf = prop_oneof![
            number.prop_map(str::to_owned),
            prop::sample::select(vec![r#""USD""#, r#""ü é""#, "true", "null", "[]"])
                .prop_map(str::to_owned),
        ];
        let value = leaf.prop_recursive(3, 12, 3, |inner| {
            prop::collection::vec(
                (prop::sample::select(vec!["z", "a", "amount", "É"]), inner),
                0..3,
            )
            .prop_map(|pairs| object(&pairs))
        });
        prop::collection::vec(
            (
                prop::sample::select(vec!["value", "unique", "cart", "b", "a"]),
                value,
            ),
            0..4,
        )
        .prop_map(|pairs| object(&pairs))
    }

    /// A JSON object written with its keys in the order given (the first
    /// of a repeated key kept).
    fn object(pairs: &[(&str, String)]) -> String {
        let mut seen = BTreeSet::new();
        let members: Vec<String> = pairs
            .iter()
            .filter(|(k, _)| seen.insert(*k))
            .map(|(k, v)| format!("{}:{v}", json!(k)))
            .collect();
        format!("{{{}}}", members.join(","))
    }

    fn event() -> impl Strategy<Value = NewEvent> {
        (
            prop::sample::select(vec!["$pageview", "$purchase", "$Custom"]),
            prop::option::of(0u8..3),
            0i64..3 * 86_400_000,
            details(),
            prop::option::of(prop::sample::select(vec![
                10.0,
                0.1,
                1_000_000_000_000_000.5,
                -0.0,
                12_345_678_901_234_567_000.0,
            ])),
            prop::option::of(prop::sample::select(vec!["USD", "eur", ""])),
        )
            .prop_map(|(kind, unique, ago, details, amount, currency)| NewEvent {
                kind: kind.to_owned(),
                occurred_at: NOW - ago,
                unique_key: unique
                    .filter(|_| kind == "$purchase")
                    .map(|k| format!("order-{k}")),
                details,
                amount,
                currency: currency.map(str::to_owned),
            })
    }

    fn change() -> impl Strategy<Value = SubscriberChange> {
        let email = prop::sample::select(EMAILS);
        let tag = prop::sample::select(vec!["vip", "VIP", "lead", "Cold", "beta"]);
        let key = prop::sample::select(vec!["plan", "seats", "city", "role"]);
        let value = prop_oneof![
            Just(Value::from("pro")),
            Just(Value::from(3)),
            Just(Value::from(0.1)),
            Just(Value::Bool(true)),
            Just(json!({"b": [1.5], "a": null})),
            Just(Value::from("x".repeat(20))),
        ];
        let subscription = prop_oneof![
            Just(None),
            Just(Some(Subscription::Subscribe)),
            (0i64..3).prop_map(|d| Some(Subscription::Unsubscribe(NOW - d))),
        ];
        let new_email = prop::sample::select(vec!["a@x.com", "A@X.com", "b@x.com", "new@x.com"]);
        let edit = (
            email,
            prop::collection::vec((key.clone(), value), 0..4),
            prop::collection::vec(key, 0..2),
            prop::collection::vec(tag.clone(), 0..4),
            prop::collection::vec(tag, 0..2),
            subscription,
            prop::option::of(event()),
        )
            .prop_map(
                |(email, set, remove, add_tags, remove_tags, subscription, event)| {
                    let mut change = SubscriberChange::touch(Email::parse(email).unwrap());
                    change.set_fields = set
                        .into_iter()
                        .map(|(k, v)| (FieldKey::parse(k).unwrap(), v))
                        .collect();
                    change.remove_fields = remove
                        .into_iter()
                        .map(|k| FieldKey::parse(k).unwrap())
                        .collect();
                    change.add_tags = add_tags
                        .into_iter()
                        .map(|t| TagName::parse(t).unwrap())
                        .collect();
                    change.remove_tags = remove_tags
                        .into_iter()
                        .map(|t| TagName::parse(t).unwrap())
                        .collect();
                    change.subscription = subscription;
                    change.event = event;
                    change
                },
            );
        // `change_email` as the API makes it: refused when nobody has the
        // address or the new one is taken (by someone else: a change of
        // case alone is allowed).
        let change_email = (prop::sample::select(EMAILS), new_email).prop_map(|(from, to)| {
            let mut change = SubscriberChange::touch(Email::parse(from).unwrap());
            change.create = Create::Never;
            change.new_email = Some(Email::parse(to).unwrap());
            change
        });
        prop_oneof![5 => edit, 1 => change_email]
    }

    /// Every stored column of the site's audience, in a stable order, but
    /// the random uuids, the ids (handed out in another order when a run is
    /// created at its end) and two times nothing reads, where the paths
    /// differ: `subscribers.updated_at` (a change that only adds an event
    /// moves it one at a time, not in bulk) and `subscriber_tags.created_at`
    /// (a tag held, removed and added again in one run is a new row one at a
    /// time, the old row in bulk).
    async fn dump(store: &SqliteStore) -> Vec<String> {
        let mut lines = Vec::new();
        let subscribers: Vec<(String, String, String, Option<i64>, i64)> = sqlx::query_as(
            "SELECT email_key, email, fields, unsubscribed_at, created_at FROM subscribers
             ORDER BY email_key",
        )
        .fetch_all(&store.reader)
        .await
        .unwrap();
        lines.extend(subscribers.iter().map(|row| format!("subscriber {row:?}")));
        let tagged: Vec<(String, String)> = sqlx::query_as(
            "SELECT s.email_key, t.name_key FROM subscriber_tags st
             JOIN subscribers s ON s.id = st.subscriber_id JOIN tags t ON t.id = st.tag_id
             ORDER BY 1, 2",
        )
        .fetch_all(&store.reader)
        .await
        .unwrap();
        lines.extend(tagged.iter().map(|row| format!("tagged {row:?}")));
        let tags: Vec<(String, String, i64, Option<i64>)> = sqlx::query_as(
            "SELECT name_key, name, created_at, discarded_at FROM tags ORDER BY name_key",
        )
        .fetch_all(&store.reader)
        .await
        .unwrap();
        lines.extend(tags.iter().map(|row| format!("tag {row:?}")));
        let fields: Vec<(String, String, i64)> =
            sqlx::query_as("SELECT key, name, created_at FROM fields ORDER BY key")
                .fetch_all(&store.reader)
                .await
                .unwrap();
        lines.extend(fields.iter().map(|row| format!("field {row:?}")));
        #[allow(clippy::type_complexity)]
        let events: Vec<(
            Option<String>,
            String,
            i64,
            String,
            Option<String>,
            Option<f64>,
            Option<String>,
            i64,
        )> = sqlx::query_as(
            "SELECT s.email_key, e.type, e.occurred_at, e.details, e.unique_key, e.amount,
                    e.currency, e.received_at
             FROM events e LEFT JOIN subscribers s ON s.id = e.subscriber_id ORDER BY e.id",
        )
        .fetch_all(&store.reader)
        .await
        .unwrap();
        lines.extend(events.iter().map(|row| format!("event {row:?}")));
        lines
    }

    /// A store on a fresh file, with one site (whose id is the same in
    /// every store made so).
    async fn fresh() -> (tempfile::TempDir, SqliteStore, i64) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_with_limits(dir.path().join("t.db").to_str().unwrap(), SMALL)
            .await
            .unwrap();
        let site = store
            .create_site("t", "s", &KeyPair::generate(), false, NOW)
            .await
            .unwrap();
        (dir, store, site.id)
    }

    /// One batch as the writer applies it (`apply_in`: runs in bulk, an
    /// email change alone), in its own transaction: the outcomes and the
    /// email keys of the subscribers reported touched.
    async fn in_runs(
        store: &SqliteStore,
        site: i64,
        changes: &[SubscriberChange],
        now: i64,
    ) -> (Vec<Outcome>, BTreeSet<String>) {
        let mut tx = store.begin_immediate().await.unwrap();
        let mut touched = Vec::new();
        let (outcomes, _) = apply_in(&mut tx, site, changes, now, &SMALL, &mut touched)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        (outcomes, emails(store, &touched).await)
    }

    /// The same batch one change at a time, each in a savepoint.
    async fn one_at_a_time(
        store: &SqliteStore,
        site: i64,
        changes: &[SubscriberChange],
        now: i64,
    ) -> (Vec<Outcome>, BTreeSet<String>) {
        let mut tx = store.begin_immediate().await.unwrap();
        let (mut outcomes, mut touched) = (Vec::new(), Vec::new());
        for change in changes {
            sqlx::query("SAVEPOINT item")
                .execute(&mut *tx)
                .await
                .unwrap();
            match apply_one(&mut *tx, site, change, now, &SMALL).await {
                Ok((outcome, changed, _)) => {
                    outcomes.push(outcome);
                    touched.extend(changed);
                }
                Err(ItemFailure::Refused(reason)) => {
                    sqlx::query("ROLLBACK TO item")
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                    outcomes.push(Outcome::Failed(reason));
                }
                Err(ItemFailure::Database(error)) => panic!("{error}"),
            }
            sqlx::query("RELEASE item").execute(&mut *tx).await.unwrap();
        }
        tx.commit().await.unwrap();
        (outcomes, emails(store, &touched).await)
    }

    async fn emails(store: &SqliteStore, ids: &[i64]) -> BTreeSet<String> {
        let mut keys = BTreeSet::new();
        for id in ids {
            let key: String = sqlx::query_scalar("SELECT email_key FROM subscribers WHERE id = $1")
                .bind(id)
                .fetch_one(&store.reader)
                .await
                .unwrap();
            keys.insert(key);
        }
        keys
    }

    /// The addresses an applied change of the batch names (the new one too,
    /// for an email change).
    fn applied(changes: &[SubscriberChange], outcomes: &[Outcome]) -> BTreeSet<String> {
        changes
            .iter()
            .zip(outcomes)
            .filter(|(_, o)| **o == Outcome::Applied)
            .flat_map(|(c, _)| {
                std::iter::once(c.email.key()).chain(c.new_email.as_ref().map(Email::key))
            })
            .collect()
    }

    /// The three paths over the same batches, each batch in its own
    /// transaction, a minute after the one before.
    async fn both(batches: &[&[SubscriberChange]]) -> Vec<Vec<Outcome>> {
        let (_a, public_store, site) = fresh().await;
        let (_b, runs_store, _) = fresh().await;
        let (_c, single_store, _) = fresh().await;
        let mut all = Vec::new();
        for (i, changes) in batches.iter().enumerate() {
            let now = NOW + i as i64 * 60_000;
            let public = public_store
                .apply_changes(site, changes.to_vec(), now)
                .await
                .unwrap();
            let (outcomes, touched) = in_runs(&runs_store, site, changes, now).await;
            let (single_outcomes, single_touched) =
                one_at_a_time(&single_store, site, changes, now).await;
            assert_eq!(outcomes, single_outcomes);
            assert_eq!(public, outcomes);
            let stored = dump(&single_store).await;
            assert_eq!(dump(&runs_store).await, stored);
            assert_eq!(dump(&public_store).await, stored);
            let applied = applied(changes, &outcomes);
            assert!(touched.is_subset(&applied), "{touched:?} {applied:?}");
            assert!(single_touched.is_subset(&applied), "{single_touched:?}");
            all.push(outcomes);
        }
        all
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn bulk_and_one_at_a_time_agree(
            changes in prop::collection::vec(change(), 1..16),
            split in 0usize..16,
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            // Two batches: the second finds what the first stored (field
            // maps, tags held, the site's keys) in the database.
            let split = split.min(changes.len());
            let (first, second) = changes.split_at(split);
            runtime.block_on(both(&[first, second]));
        }
    }

    #[tokio::test]
    async fn details_amounts_and_email_changes_are_stored_alike() {
        let buy = |email: &str, key: &str, details: &str| {
            let mut change = SubscriberChange::touch(Email::parse(email).unwrap());
            change.event = Some(NewEvent {
                kind: "$purchase".into(),
                occurred_at: NOW - 5,
                details: details.into(),
                unique_key: Some(key.into()),
                amount: Some(1_000_000_000_000_000.5),
                currency: Some("eur".into()),
            });
            change
        };
        let move_to = |from: &str, to: &str| {
            let mut change = SubscriberChange::touch(Email::parse(from).unwrap());
            change.create = Create::Never;
            change.new_email = Some(Email::parse(to).unwrap());
            change
        };
        let batch = [
            buy(
                "a@x.com",
                "o-1",
                r#"{"value":{"currency":"eur","amount":1.10},"b":1e3}"#,
            ),
            move_to("a@x.com", "A@Y.com"),
            buy("a@y.com", "o-2", r#"{"z":12345678901234567890,"a":-0.0}"#),
            move_to("b@x.com", "c@x.com"),
            buy("b@x.com", "o-1", "{}"),
            buy("b@x.com", "o-3", r#"{"É":{"ü é":[]}}"#),
            move_to("b@x.com", "a@y.com"),
            move_to("B@X.com", "B@x.COM"),
        ];
        let outcomes = both(&[&batch]).await;
        assert_eq!(
            outcomes[0],
            [
                Outcome::Applied,
                Outcome::Applied,
                Outcome::Applied,
                failed("no subscriber has the email b@x.com"),
                Outcome::Duplicate,
                Outcome::Applied,
                failed("email a@y.com has already been taken"),
                Outcome::Applied,
            ]
        );
    }

    fn with(email: &str, edit: impl FnOnce(&mut SubscriberChange)) -> SubscriberChange {
        let mut change = SubscriberChange::touch(Email::parse(email).unwrap());
        edit(&mut change);
        change
    }

    fn fields(keys: &[&str]) -> Vec<(FieldKey, Value)> {
        keys.iter()
            .map(|k| (FieldKey::parse(k).unwrap(), Value::from(1)))
            .collect()
    }

    fn tags(names: &[&str]) -> Vec<TagName> {
        names.iter().map(|t| TagName::parse(t).unwrap()).collect()
    }

    fn failed(message: &str) -> Outcome {
        Outcome::Failed(message.to_owned())
    }

    #[tokio::test]
    async fn each_cap_refuses_the_item_alone_on_both_paths() {
        let first = [
            with("a@x.com", |c| {
                c.set_fields = fields(&["plan", "seats", "city"])
            }),
            with("a@x.com", |c| c.set_fields = fields(&["plan", "seats"])),
            with("a@x.com", |c| {
                c.set_fields = vec![(FieldKey::parse("plan").unwrap(), "x".repeat(40).into())]
            }),
            with("b@x.com", |c| c.set_fields = fields(&["city", "role"])),
            with("c@x.com", |c| c.add_tags = tags(&["vip", "lead", "cold"])),
            with("c@x.com", |c| c.add_tags = tags(&["vip", "lead"])),
            with("d@x.com", |c| c.add_tags = tags(&["cold", "beta"])),
            with("d@x.com", |c| c.add_tags = tags(&["cold"])),
        ];
        let second = [
            // The site holds as many field keys and tags as it may: the
            // ones it has are still set and added.
            with("b@x.com", |c| c.set_fields = fields(&["plan"])),
            with("c@x.com", |c| {
                c.remove_tags = tags(&["vip"]);
                c.add_tags = tags(&["Cold"]);
            }),
        ];
        let outcomes = both(&[&first, &second]).await;
        assert_eq!(
            outcomes[0],
            [
                failed("subscriber would have 3 fields; at most 2"),
                Outcome::Applied,
                failed("subscriber's fields would take 61 bytes; at most 40"),
                failed("site would have 4 field keys; at most 3"),
                failed("subscriber would have 3 tags; at most 2"),
                Outcome::Applied,
                failed("site would have 4 tags; at most 3"),
                Outcome::Applied,
            ]
        );
        assert_eq!(outcomes[1], [Outcome::Applied, Outcome::Applied]);
    }
}
