//! Writing a run of audience changes in bulk: what every import and every
//! batch of events mostly consists of.
//!
//! Any change that cannot be refused (it may create its subscriber and does
//! not change an email) is applied here, many rows per statement: the run's
//! subscribers are read at once, the missing ones created at once, every
//! change folded in order into their state in memory, and the result written
//! back with a handful of multi-row statements. Order inside the run is kept
//! exactly: two changes to one subscriber apply one after the other, and the
//! last word on a tag wins. A `$purchase` whose unique key is already stored
//! (or repeated within the run) changes nothing at all.

use crate::audience::{Create, Outcome, SubscriberChange, Subscription};
use crate::credentials::random_hex_id;
use crate::storage::Result;
use serde_json::{Map, Value};
use sqlx::{QueryBuilder, Sqlite, Transaction};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Rows per multi-row statement: well under SQLite's limit of bound values.
const ROWS: usize = 500;

/// Events per insert statement: nine values each, so 3,000 stay under
/// SQLite's 32,766 bound values.
const EVENT_ROWS: usize = 3_000;

/// Whether a change can be applied in bulk: nothing about it can be refused.
pub(super) fn can_bulk(change: &SubscriberChange) -> bool {
    change.create == Create::IfMissing && change.new_email.is_none()
}

/// One subscriber's state while a run is folded into it.
struct State {
    id: i64,
    /// The stored fields; `None` when only the id was read, for a
    /// subscriber whose row the run does not touch.
    fields_text: Option<String>,
    /// Parsed on first use: most runs never touch fields.
    fields: Option<Map<String, Value>>,
    unsubscribed_at: Option<i64>,
    changed: bool,
    /// Created by this run.
    created: bool,
}

type Tx = Transaction<'static, Sqlite>;

/// Applies a run of changes that [`can_bulk`] accepts; adds to `touched`
/// the ids of the subscribers it created or whose row or tags it changed.
pub(super) async fn apply_run(
    tx: &mut Tx,
    site_id: i64,
    changes: &[SubscriberChange],
    now: i64,
    touched: &mut Vec<i64>,
) -> Result<Vec<Outcome>> {
    let duplicates = stored_purchases(tx, site_id, changes).await?;
    let mut outcomes = Vec::with_capacity(changes.len());
    let mut seen_keys = HashSet::new();
    let mut live = Vec::with_capacity(changes.len());
    for change in changes {
        let repeated = change
            .event
            .as_ref()
            .and_then(|e| Some((e.kind.clone(), e.unique_key.clone()?)))
            .is_some_and(|key| duplicates.contains(&key) || !seen_keys.insert(key));
        if repeated {
            outcomes.push(Outcome::Duplicate);
        } else {
            outcomes.push(Outcome::Applied);
            live.push(change);
        }
    }

    let mut states = load_subscribers(tx, site_id, &live, now).await?;
    let mut tag_ops: BTreeMap<(i64, String), bool> = BTreeMap::new();
    let mut tags_added: HashMap<String, &str> = HashMap::new();
    let mut field_keys: Vec<&str> = Vec::new();
    let mut events = Vec::new();
    for change in &live {
        let state = states.get_mut(&change.email.key()).expect("loaded above");
        if !change.set_fields.is_empty() || !change.remove_fields.is_empty() {
            let fields = state.fields.get_or_insert_with(|| {
                serde_json::from_str(state.fields_text.as_deref().unwrap_or("{}"))
                    .unwrap_or_default()
            });
            for (key, value) in &change.set_fields {
                fields.insert(key.as_str().to_owned(), value.clone());
                field_keys.push(key.as_str());
            }
            for key in &change.remove_fields {
                fields.remove(key.as_str());
            }
            state.changed = true;
        }
        for (tags, add) in [(&change.add_tags, true), (&change.remove_tags, false)] {
            for tag in tags {
                if add {
                    // Created with its first added spelling, even if a later
                    // change removes it again.
                    tags_added.entry(tag.key()).or_insert(tag.as_str());
                }
                tag_ops.insert((state.id, tag.key()), add);
                state.changed = true;
            }
        }
        match change.subscription {
            Some(Subscription::Subscribe) if state.unsubscribed_at.is_some() => {
                state.unsubscribed_at = None;
                state.changed = true;
            }
            Some(Subscription::Unsubscribe(at)) if state.unsubscribed_at.is_none() => {
                state.unsubscribed_at = Some(at);
                state.changed = true;
            }
            _ => {}
        }
        if let Some(event) = &change.event {
            events.push((state.id, event));
        }
    }

    touched.extend(
        states
            .values()
            .filter(|s| s.changed || s.created)
            .map(|s| s.id),
    );
    register_fields(tx, site_id, field_keys, now).await?;
    let tag_ids = tag_ids(tx, site_id, &tag_ops, &tags_added, now).await?;
    write_subscribers(tx, states.values().filter(|s| s.changed), now).await?;
    write_tags(tx, &tag_ops, &tag_ids, now).await?;
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
    let keyed: Vec<(&str, &str)> = changes
        .iter()
        .filter_map(|c| c.event.as_ref())
        .filter_map(|e| Some((e.kind.as_str(), e.unique_key.as_deref()?)))
        .collect();
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

/// Whether a change reads or writes the subscriber's row (fields, tags or
/// subscription), rather than only adding an event for their id.
pub(super) fn touches_row(change: &SubscriberChange) -> bool {
    !change.set_fields.is_empty()
        || !change.remove_fields.is_empty()
        || !change.add_tags.is_empty()
        || !change.remove_tags.is_empty()
        || change.subscription.is_some()
}

/// Every subscriber the run names, by email key: read if they exist,
/// created (subscribed, no fields) if not. Most changes of an import only
/// add an event, and for those the id is all that is read: a lookup the
/// email index answers alone.
async fn load_subscribers(
    tx: &mut Tx,
    site_id: i64,
    changes: &[&SubscriberChange],
    now: i64,
) -> Result<HashMap<String, State>> {
    let mut wanted: Vec<(String, &str, bool)> = Vec::new();
    let mut position: HashMap<String, usize> = HashMap::new();
    for change in changes {
        let key = change.email.key();
        match position.get(&key) {
            Some(&i) => wanted[i].2 |= touches_row(change),
            None => {
                position.insert(key.clone(), wanted.len());
                wanted.push((key, change.email.as_str(), touches_row(change)));
            }
        }
    }
    let mut states = HashMap::with_capacity(wanted.len());
    for full in [true, false] {
        let keys: Vec<&str> = wanted
            .iter()
            .filter(|w| w.2 == full)
            .map(|w| w.0.as_str())
            .collect();
        for chunk in keys.chunks(LOOKUP_ROWS) {
            let list = serde_json::to_string(chunk)
                .map_err(|e| crate::storage::StorageError::WriteFailed(e.to_string()))?;
            if full {
                let rows: Vec<(i64, i64, String, Option<i64>)> = sqlx::query_as(
                    "SELECT j.key, s.id, s.fields, s.unsubscribed_at
                     FROM json_each($2) j
                     CROSS JOIN subscribers s ON s.site_id = $1 AND s.email_key = j.value",
                )
                .bind(site_id)
                .bind(&list)
                .fetch_all(&mut **tx)
                .await?;
                for (i, id, fields_text, unsubscribed_at) in rows {
                    let state = State {
                        id,
                        fields_text: Some(fields_text),
                        fields: None,
                        unsubscribed_at,
                        changed: false,
                        created: false,
                    };
                    states.insert(chunk[i as usize].to_owned(), state);
                }
            } else {
                let rows: Vec<(i64, i64)> = sqlx::query_as(
                    "SELECT j.key, s.id FROM json_each($2) j
                     CROSS JOIN subscribers s ON s.site_id = $1 AND s.email_key = j.value",
                )
                .bind(site_id)
                .bind(&list)
                .fetch_all(&mut **tx)
                .await?;
                for (i, id) in rows {
                    let state = State {
                        id,
                        fields_text: None,
                        fields: None,
                        unsubscribed_at: None,
                        changed: false,
                        created: false,
                    };
                    states.insert(chunk[i as usize].to_owned(), state);
                }
            }
        }
    }
    let missing: Vec<(&String, &str)> = wanted
        .iter()
        .filter(|(key, _, _)| !states.contains_key(key))
        .map(|(key, email, _)| (key, *email))
        .collect();
    for chunk in missing.chunks(ROWS) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO subscribers (site_id, uuid, email, email_key, created_at, updated_at) ",
        );
        insert.push_values(chunk, |mut row, (key, email)| {
            row.push_bind(site_id)
                .push_bind(random_hex_id())
                .push_bind(email.to_string())
                .push_bind((*key).clone())
                .push_bind(now)
                .push_bind(now);
        });
        insert.push(" RETURNING email_key, id");
        let rows: Vec<(String, i64)> = insert.build_query_as().fetch_all(&mut **tx).await?;
        for (key, id) in rows {
            let state = State {
                id,
                fields_text: Some("{}".into()),
                fields: None,
                unsubscribed_at: None,
                changed: false,
                created: true,
            };
            states.insert(key, state);
        }
    }
    Ok(states)
}

async fn register_fields(tx: &mut Tx, site_id: i64, mut keys: Vec<&str>, now: i64) -> Result<()> {
    keys.sort_unstable();
    keys.dedup();
    for chunk in keys.chunks(ROWS) {
        let mut insert =
            QueryBuilder::<Sqlite>::new("INSERT INTO fields (site_id, key, name, created_at) ");
        insert.push_values(chunk, |mut row, key| {
            row.push_bind(site_id)
                .push_bind(key.to_string())
                .push_bind(key.to_string())
                .push_bind(now);
        });
        insert.push(" ON CONFLICT (site_id, key) DO NOTHING");
        insert.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// Ids of the tags the run names by key; tags it adds are created if new.
async fn tag_ids(
    tx: &mut Tx,
    site_id: i64,
    ops: &BTreeMap<(i64, String), bool>,
    added: &HashMap<String, &str>,
    now: i64,
) -> Result<HashMap<String, i64>> {
    let added: Vec<(&String, &&str)> = added.iter().collect();
    for chunk in added.chunks(ROWS) {
        let mut insert =
            QueryBuilder::<Sqlite>::new("INSERT INTO tags (site_id, name, name_key, created_at) ");
        insert.push_values(chunk, |mut row, (key, name)| {
            row.push_bind(site_id)
                .push_bind(name.to_string())
                .push_bind((*key).clone())
                .push_bind(now);
        });
        insert.push(" ON CONFLICT (site_id, name_key) DO NOTHING");
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

async fn write_subscribers<'a>(
    tx: &mut Tx,
    changed: impl Iterator<Item = &'a State>,
    now: i64,
) -> Result<()> {
    let rows: Vec<(i64, Option<String>, Option<i64>)> = changed
        .map(|s| {
            // `None` (never the case for a row a change touched) keeps the
            // stored fields.
            let fields = match &s.fields {
                Some(map) => Some(Value::Object(map.clone()).to_string()),
                None => s.fields_text.clone(),
            };
            (s.id, fields, s.unsubscribed_at)
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
    //! behind for any sequence of changes.

    use super::super::{SqliteStore, audience::apply_one};
    use crate::audience::{Email, FieldKey, NewEvent, SubscriberChange, Subscription, TagName};
    use crate::credentials::KeyPair;
    use crate::storage::{AudienceStore, Store};
    use proptest::prelude::*;
    use serde_json::Value;

    const NOW: i64 = 1_795_683_600_000;

    fn change() -> impl Strategy<Value = SubscriberChange> {
        let email = prop::sample::select(vec!["a@x.com", "A@X.com", "b@x.com", "c@x.com"]);
        let tag = prop::sample::select(vec!["vip", "VIP", "lead", "Cold"]);
        let key = prop::sample::select(vec!["plan", "seats"]);
        let value = prop_oneof![
            Just(Value::from("pro")),
            Just(Value::from(3)),
            Just(Value::Bool(true))
        ];
        let subscription = prop_oneof![
            Just(None),
            Just(Some(Subscription::Subscribe)),
            (0i64..3).prop_map(|d| Some(Subscription::Unsubscribe(NOW - d))),
        ];
        let event = prop_oneof![
            Just(None),
            (
                prop::sample::select(vec!["$pageview", "$purchase"]),
                prop::option::of(0u8..3)
            )
                .prop_map(|(kind, unique)| {
                    let unique_key = unique
                        .filter(|_| kind == "$purchase")
                        .map(|k| format!("order-{k}"));
                    Some(NewEvent {
                        kind: kind.to_owned(),
                        occurred_at: NOW,
                        details: "{}".into(),
                        unique_key,
                        amount: Some(10.0),
                        currency: None,
                    })
                }),
        ];
        (
            email,
            prop::collection::vec((key.clone(), value), 0..2),
            prop::collection::vec(key, 0..2),
            prop::collection::vec(tag.clone(), 0..2),
            prop::collection::vec(tag, 0..2),
            subscription,
            event,
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
            )
    }

    /// Everything observable about a site's audience, in a stable order.
    async fn dump(store: &SqliteStore) -> Vec<String> {
        let queries = [
            "SELECT email_key || ' ' || email || ' ' || fields || ' ' || IFNULL(unsubscribed_at, '-') FROM subscribers ORDER BY email_key",
            "SELECT s.email_key || ' ' || t.name FROM subscriber_tags st JOIN subscribers s ON s.id = st.subscriber_id JOIN tags t ON t.id = st.tag_id ORDER BY 1",
            "SELECT name_key || ' ' || name FROM tags ORDER BY 1",
            "SELECT key FROM fields ORDER BY 1",
            "SELECT s.email_key || ' ' || e.type || ' ' || IFNULL(e.unique_key, '-') FROM events e JOIN subscribers s ON s.id = e.subscriber_id ORDER BY e.id",
        ];
        let mut lines = Vec::new();
        for sql in queries {
            let rows: Vec<String> = sqlx::query_scalar(sql)
                .fetch_all(&store.reader)
                .await
                .unwrap();
            lines.push(format!("-- {sql}"));
            lines.extend(rows);
        }
        lines
    }

    async fn fresh() -> (tempfile::TempDir, SqliteStore, i64) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("t.db").to_str().unwrap())
            .await
            .unwrap();
        let site = store
            .create_site("t", "s", &KeyPair::generate(), false, NOW)
            .await
            .unwrap();
        (dir, store, site.id)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn bulk_and_one_at_a_time_agree(changes in prop::collection::vec(change(), 1..12)) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                let (_a, bulk_store, site) = fresh().await;
                let bulk_outcomes = bulk_store.apply_changes(site, changes.clone(), NOW).await.unwrap();

                let (_b, single_store, site) = fresh().await;
                let mut tx = single_store.begin_write().await.unwrap();
                let mut single_outcomes = Vec::new();
                for change in &changes {
                    match apply_one(&mut tx, site, change, NOW).await {
                        Ok((outcome, _)) => single_outcomes.push(outcome),
                        Err(_) => panic!("a change that can be bulked was refused"),
                    }
                }
                tx.commit().await.unwrap();

                assert_eq!(bulk_outcomes, single_outcomes);
                assert_eq!(dump(&bulk_store).await, dump(&single_store).await);
            });
        }
    }
}
