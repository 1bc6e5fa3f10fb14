//! The audience's reads, the registration of tags and field keys, and a
//! tag's delete, as both backends do them. How a batch of changes is
//! written (in bulk, or one at a time) is each backend's own.

use super::caps::{Names, count_of, known_keys};
use super::{Conn, Dialect, journal, log};
use crate::sql;
use crate::storage::changes::IdRanges;
use crate::storage::journal::Journal;
use crate::storage::{LogEntry, Page, Result, StorageError, StoredEvent};
use corral_core::audience::{
    AudienceCounts, Email, Field, FieldKey, Limits, Subscriber, Tag, TagName,
};

/// The columns [`SubscriberRow`] reads, as a literal for `concat!`.
macro_rules! subscriber_columns {
    () => {
        "id, uuid, email, fields, unsubscribed_at, created_at, updated_at"
    };
}

#[derive(sqlx::FromRow)]
struct SubscriberRow {
    id: i64,
    uuid: String,
    email: String,
    fields: String,
    unsubscribed_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

impl SubscriberRow {
    fn with_tags(self, tag_ids: Vec<i64>) -> Subscriber {
        Subscriber {
            id: self.id,
            uuid: self.uuid,
            email: self.email,
            fields: serde_json::from_str(&self.fields).unwrap_or_default(),
            tag_ids,
            unsubscribed_at: self.unsubscribed_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// The subscribers of these rows, each with its tags' ids (ascending).
async fn with_tags<C: Conn>(
    conn: &mut C,
    site_id: i64,
    rows: Vec<SubscriberRow>,
) -> Result<Vec<Subscriber>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let text = C::DIALECT.pick(
        "SELECT st.subscriber_id, st.tag_id FROM subscriber_tags st
         JOIN tags t ON t.id = st.tag_id AND t.site_id = $1
         WHERE st.subscriber_id IN (SELECT value FROM json_each($2))
         ORDER BY st.subscriber_id, st.tag_id",
        "SELECT subscriber_id, tag_id FROM subscriber_tags
         WHERE site_id = $1 AND subscriber_id = ANY($2)
         ORDER BY subscriber_id, tag_id",
    );
    let tags: Vec<(i64, i64)> = conn.all(sql!(text, site_id, &ids[..])).await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let held = tags.iter().filter(|(s, _)| *s == row.id).map(|(_, t)| *t);
            let held = held.collect();
            row.with_tags(held)
        })
        .collect())
}

async fn one_subscriber(
    conn: &mut impl Conn,
    site_id: i64,
    row: Option<SubscriberRow>,
) -> Result<Option<Subscriber>> {
    let Some(row) = row else { return Ok(None) };
    Ok(with_tags(conn, site_id, vec![row]).await?.pop())
}

pub async fn subscriber_by_email(
    conn: &mut impl Conn,
    site_id: i64,
    email: &Email,
) -> Result<Option<Subscriber>> {
    let row = conn
        .optional(sql!(
            concat!(
                "SELECT ",
                subscriber_columns!(),
                " FROM subscribers WHERE site_id = $1 AND email_key = $2"
            ),
            site_id,
            email.key()
        ))
        .await?;
    one_subscriber(conn, site_id, row).await
}

pub async fn subscriber_by_uuid(
    conn: &mut impl Conn,
    site_id: i64,
    uuid: &str,
) -> Result<Option<Subscriber>> {
    let row = conn
        .optional(sql!(
            concat!(
                "SELECT ",
                subscriber_columns!(),
                " FROM subscribers WHERE site_id = $1 AND uuid = $2"
            ),
            site_id,
            uuid
        ))
        .await?;
    one_subscriber(conn, site_id, row).await
}

/// The subscribers with these ids, in id order; ids of other sites or of no
/// one are left out.
pub async fn subscribers_by_ids<C: Conn>(
    conn: &mut C,
    site_id: i64,
    ids: &[i64],
) -> Result<Vec<Subscriber>> {
    let text = match C::DIALECT {
        Dialect::Sqlite => concat!(
            "SELECT ",
            subscriber_columns!(),
            " FROM subscribers
              WHERE id IN (SELECT value FROM json_each($2)) AND +site_id = $1 ORDER BY id"
        ),
        Dialect::Postgres => concat!(
            "SELECT ",
            subscriber_columns!(),
            " FROM subscribers WHERE site_id = $1 AND id = ANY($2) ORDER BY id"
        ),
    };
    let rows: Vec<SubscriberRow> = conn.all(sql!(text, site_id, ids)).await?;
    with_tags(conn, site_id, rows).await
}

#[derive(sqlx::FromRow)]
struct TagRow {
    id: i64,
    name: String,
    name_key: String,
    created_at: i64,
    discarded_at: Option<i64>,
}

impl From<TagRow> for Tag {
    fn from(row: TagRow) -> Self {
        Self {
            id: row.id,
            name: row.name,
            created_at: row.created_at,
            discarded_at: row.discarded_at,
        }
    }
}

#[derive(sqlx::FromRow)]
struct FieldRow {
    id: i64,
    key: String,
    name: String,
    created_at: i64,
}

impl From<FieldRow> for Field {
    fn from(row: FieldRow) -> Self {
        Self {
            id: row.id,
            key: row.key,
            name: row.name,
            created_at: row.created_at,
        }
    }
}

/// Up to `limit` of `rows` (which hold one more when another page follows),
/// with the sort key of the last one kept when one does.
fn page<R, T: From<R>>(mut rows: Vec<R>, limit: usize, key: impl Fn(&R) -> &str) -> Page<T> {
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next_after = rows
        .last()
        .filter(|_| more)
        .map(|last| key(last).to_owned());
    Page {
        items: rows.into_iter().map(T::from).collect(),
        next_after,
    }
}

/// Up to `limit` tags in name order (ignoring case), after the tag whose name
/// key is `after`. `name_key` is unique per site: it alone orders the tags,
/// and a page continues after the last one's.
pub async fn list_tags(
    conn: &mut impl Conn,
    site_id: i64,
    after: Option<&str>,
    limit: usize,
) -> Result<Page<Tag>> {
    let rows: Vec<TagRow> = conn
        .all(sql!(
            "SELECT id, name, name_key, created_at, discarded_at FROM tags
             WHERE site_id = $1 AND name_key > $2
             ORDER BY name_key, name, id LIMIT $3",
            site_id,
            after.unwrap_or(""),
            limit as i64 + 1
        ))
        .await?;
    Ok(page(rows, limit, |r: &TagRow| &r.name_key))
}

/// Up to `limit` fields in key order, after the field whose key is `after`.
pub async fn list_fields(
    conn: &mut impl Conn,
    site_id: i64,
    after: Option<&str>,
    limit: usize,
) -> Result<Page<Field>> {
    let rows: Vec<FieldRow> = conn
        .all(sql!(
            "SELECT id, key, name, created_at FROM fields
             WHERE site_id = $1 AND key > $2
             ORDER BY key LIMIT $3",
            site_id,
            after.unwrap_or(""),
            limit as i64 + 1
        ))
        .await?;
    Ok(page(rows, limit, |r: &FieldRow| &r.key))
}

/// The id of the site's tag of this name, created if new. Inserted only if
/// new, never left to a conflict clause: PostgreSQL would take an id from
/// its sequence all the same, and ids stay those SQLite gives.
pub async fn tag_id(tx: &mut impl Conn, site_id: i64, name: &TagName, now: i64) -> Result<i64> {
    tx.execute(sql!(
        "INSERT INTO tags (site_id, name, name_key, created_at)
         SELECT $1, $2, $3, $4
         WHERE NOT EXISTS (SELECT 1 FROM tags WHERE site_id = $1 AND name_key = $3)",
        site_id,
        name.as_str(),
        name.key(),
        now
    ))
    .await?;
    let (id,): (i64,) = tx
        .one(sql!(
            "SELECT id FROM tags WHERE site_id = $1 AND name_key = $2",
            site_id,
            name.key()
        ))
        .await?;
    Ok(id)
}

/// Registers a field key, unless the site has it.
pub async fn register_field(
    tx: &mut impl Conn,
    site_id: i64,
    key: &FieldKey,
    name: &str,
    now: i64,
) -> Result<()> {
    tx.execute(sql!(
        "INSERT INTO fields (site_id, key, name, created_at)
         SELECT $1, $2, $3, $4
         WHERE NOT EXISTS (SELECT 1 FROM fields WHERE site_id = $1 AND key = $2)",
        site_id,
        key.as_str(),
        name,
        now
    ))
    .await?;
    Ok(())
}

/// Creates a tag, or returns the one that has this name ignoring case, in
/// the caller's write transaction of the site; a new tag over the cap is
/// refused.
pub async fn create_tag(
    tx: &mut impl Conn,
    site_id: i64,
    name: &TagName,
    now: i64,
    limits: &Limits,
) -> Result<Tag> {
    let known = known_keys(tx, site_id, Names::Tags, &[name.key()]).await?;
    if known.is_empty() {
        let count = count_of(tx, site_id, Names::Tags).await?;
        limits
            .check_new_tag(count)
            .map_err(StorageError::LimitExceeded)?;
    }
    let id = tag_id(tx, site_id, name, now).await?;
    let row: TagRow = tx
        .one(sql!(
            "SELECT id, name, name_key, created_at, discarded_at FROM tags
             WHERE site_id = $1 AND id = $2",
            site_id,
            id
        ))
        .await?;
    Ok(row.into())
}

/// Deletes the site's tag `id`, in the caller's write transaction of the
/// site: takes it off every subscriber that holds it (their `updated_at`
/// moves), then off the site's list. The subscribers it was taken off are
/// named in the change log, so that every server's snapshot reads their
/// tags again, and their flips of membership are recorded in the journal
/// with the reason `data`, as a `remove_tag` of each would be. With `name`,
/// the tag must have that name, ignoring case, or nothing is deleted.
/// [`StorageError::NotFound`] when the site has no tag of that id (and
/// that name). The tag, and how many subscribers held it.
pub async fn delete_tag<C: Conn>(
    tx: &mut C,
    journal: &Journal,
    site_id: i64,
    id: i64,
    name: Option<&TagName>,
    now: i64,
) -> Result<(Tag, usize)> {
    let row: TagRow = tx
        .optional(sql!(
            "SELECT id, name, name_key, created_at, discarded_at FROM tags
             WHERE site_id = $1 AND id = $2",
            site_id,
            id
        ))
        .await?
        .ok_or(StorageError::NotFound)?;
    // Another tag's name: the site has no tag of this id and this name (a
    // 404, as the API's schema lets any name through).
    if name.is_some_and(|name| name.key() != row.name_key) {
        return Err(StorageError::NotFound);
    }
    // SQLite's table has no site_id: the tag, of this site, says it.
    let holders: Vec<(i64,)> = tx
        .all(match C::DIALECT {
            Dialect::Sqlite => sql!(
                "SELECT subscriber_id FROM subscriber_tags WHERE tag_id = $1
                 ORDER BY subscriber_id",
                id
            ),
            Dialect::Postgres => sql!(
                "SELECT subscriber_id FROM subscriber_tags WHERE site_id = $1 AND tag_id = $2
                 ORDER BY subscriber_id",
                site_id,
                id
            ),
        })
        .await?;
    let holders: Vec<i64> = holders.into_iter().map(|(id,)| id).collect();
    let text = C::DIALECT.pick(
        "UPDATE subscribers SET updated_at = $3
         WHERE site_id = $1 AND id IN (SELECT subscriber_id FROM subscriber_tags WHERE tag_id = $2)",
        "UPDATE subscribers SET updated_at = $3
         WHERE site_id = $1 AND id IN (
             SELECT subscriber_id FROM subscriber_tags WHERE site_id = $1 AND tag_id = $2)",
    );
    tx.execute(sql!(text, site_id, id, now)).await?;
    tx.execute(match C::DIALECT {
        Dialect::Sqlite => sql!("DELETE FROM subscriber_tags WHERE tag_id = $1", id),
        Dialect::Postgres => sql!(
            "DELETE FROM subscriber_tags WHERE site_id = $1 AND tag_id = $2",
            site_id,
            id
        ),
    })
    .await?;
    tx.execute(sql!(
        "DELETE FROM tags WHERE site_id = $1 AND id = $2",
        site_id,
        id
    ))
    .await?;
    let entry = LogEntry {
        subscribers: IdRanges::from_ids(holders.iter().copied()),
        ..LogEntry::default()
    };
    log::record(tx, site_id, &entry, now).await?;
    journal::record_writes(tx, journal, site_id, &holders, None, now).await?;
    Ok((row.into(), holders.len()))
}

/// Registers a field key (or returns the one registered), in the caller's
/// write transaction of the site; a new key over the cap is refused.
pub async fn create_field(
    tx: &mut impl Conn,
    site_id: i64,
    key: &FieldKey,
    name: &str,
    now: i64,
    limits: &Limits,
) -> Result<Field> {
    let known = known_keys(tx, site_id, Names::Fields, &[key.as_str().to_owned()]).await?;
    if known.is_empty() {
        let count = count_of(tx, site_id, Names::Fields).await?;
        limits
            .check_new_field_key(count)
            .map_err(StorageError::LimitExceeded)?;
    }
    register_field(tx, site_id, key, name, now).await?;
    let row: FieldRow = tx
        .one(sql!(
            "SELECT id, key, name, created_at FROM fields WHERE site_id = $1 AND key = $2",
            site_id,
            key.as_str()
        ))
        .await?;
    Ok(row.into())
}

/// Bento's counts of the whole site's audience.
pub async fn site_counts(conn: &mut impl Conn, site_id: i64) -> Result<AudienceCounts> {
    let (users, subscribed): (i64, i64) = conn
        .one(sql!(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN unsubscribed_at IS NULL THEN 1 ELSE 0 END), 0)
             FROM subscribers WHERE site_id = $1",
            site_id
        ))
        .await?;
    Ok(AudienceCounts {
        user_count: users,
        subscriber_count: subscribed,
        unsubscriber_count: users - subscribed,
    })
}

#[derive(sqlx::FromRow)]
struct EventRow {
    id: i64,
    #[sqlx(rename = "type")]
    kind: String,
    occurred_at: i64,
    details: String,
}

/// Up to `limit` of the subscriber's events, the most recent first. No index
/// leads from the subscriber (each would slow every import), so this reads
/// the site's events; it serves one page, not evaluation.
pub async fn recent_events(
    conn: &mut impl Conn,
    site_id: i64,
    subscriber_id: i64,
    limit: usize,
) -> Result<Vec<StoredEvent>> {
    let rows: Vec<EventRow> = conn
        .all(sql!(
            "SELECT id, type, occurred_at, details FROM events
             WHERE site_id = $1 AND subscriber_id = $2
             ORDER BY occurred_at DESC, id DESC LIMIT $3",
            site_id,
            subscriber_id,
            i64::try_from(limit).unwrap_or(i64::MAX)
        ))
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| StoredEvent {
            id: r.id,
            kind: r.kind,
            occurred_at: r.occurred_at,
            details: r.details,
        })
        .collect())
}

/// A subscriber as a search finds it, with the key it is ordered by.
#[derive(sqlx::FromRow)]
struct FoundRow {
    email_key: String,
    #[sqlx(flatten)]
    row: SubscriberRow,
}

/// The least text greater than every text that starts with `prefix`, in
/// code point order (which is the byte order of UTF-8, SQLite's `BINARY`
/// and PostgreSQL's `"C"`): the prefix with its last character moved on
/// by one (past the surrogates), dropping trailing U+10FFFF. A prefix of
/// nothing but U+10FFFF (or none) has no such text: it is bounded by 256
/// of them, more than any email key holds (254 characters at most).
fn prefix_end(prefix: &str) -> String {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match u32::from(last) + 1 {
            0xD800 => Some('\u{E000}'),
            n => char::from_u32(n),
        };
        if let Some(next) = next {
            chars.push(next);
            return chars.into_iter().collect();
        }
    }
    "\u{10FFFF}".repeat(256)
}

/// The field keys a search finds names in.
const NAME_KEYS: [&str; 3] = ["first_name", "last_name", "name"];

/// A `LIKE` pattern (escaped by `!`) that every subscriber's `fields`,
/// lowered in A to Z, matches when one of its name fields starts with
/// `text`, ignoring case: the text of a key ending in `name` and the
/// start of a string value, in the JSON every subscriber's `fields` is
/// written in (serde_json's, compact), each character of `text` beyond
/// ASCII standing for any one character (its other case, which `lower`
/// leaves as it is in both databases). A sieve: [`is_named`] says which of
/// the rows it lets through are found.
fn name_pattern(text: &str) -> String {
    let mut pattern = String::from("%name\":\"");
    for c in text.chars() {
        if !c.is_ascii() {
            pattern.push('_');
            continue;
        }
        let mut json =
            serde_json::to_string(&c.to_ascii_lowercase().to_string()).unwrap_or_default();
        json.pop();
        for c in json.chars().skip(1) {
            if matches!(c, '!' | '%' | '_') {
                pattern.push('!');
            }
            pattern.push(c);
        }
    }
    pattern.push('%');
    pattern
}

/// Whether one of `fields`' name fields is text that starts with `text`
/// (already lowercase), ignoring case.
fn is_named(fields: &str, text: &str) -> bool {
    let Ok(fields) = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(fields)
    else {
        return false;
    };
    NAME_KEYS.iter().any(|key| {
        matches!(fields.get(*key), Some(serde_json::Value::String(name))
            if name.to_lowercase().starts_with(text))
    })
}

/// The columns of a search's rows, as a literal for `concat!`.
macro_rules! found_columns {
    () => {
        concat!(subscriber_columns!(), ", email_key")
    };
}

/// A search's every subscriber, after `after`.
const ALL: &str = concat!(
    "SELECT ",
    found_columns!(),
    " FROM subscribers WHERE site_id = $1 AND email_key > $2
      ORDER BY email_key LIMIT $3"
);

/// A search's emails from a lower bound (exclusive) up to an upper one
/// (exclusive): a range of the `(site_id, email_key)` index.
const EMAILS_AFTER: &str = concat!(
    "SELECT ",
    found_columns!(),
    " FROM subscribers WHERE site_id = $1 AND email_key > $2 AND email_key < $3
      ORDER BY email_key LIMIT $4"
);

/// The same from an inclusive lower bound (the prefix itself).
const EMAILS_FROM: &str = concat!(
    "SELECT ",
    found_columns!(),
    " FROM subscribers WHERE site_id = $1 AND email_key >= $2 AND email_key < $3
      ORDER BY email_key LIMIT $4"
);

/// The holders of a tag (by id), after `after`.
const HOLDERS: [&str; 2] = [
    concat!(
        "SELECT ",
        found_columns!(),
        " FROM subscribers WHERE site_id = $1 AND email_key > $2
          AND id IN (SELECT subscriber_id FROM subscriber_tags WHERE tag_id = $3)
          ORDER BY email_key LIMIT $4"
    ),
    concat!(
        "SELECT ",
        found_columns!(),
        " FROM subscribers WHERE site_id = $1 AND email_key > $2
          AND id IN (SELECT subscriber_id FROM subscriber_tags WHERE site_id = $1 AND tag_id = $3)
          ORDER BY email_key LIMIT $4"
    ),
];

/// The subscribers, after `after`, whose fields match a name's
/// [pattern](name_pattern), read in email order as far as the page needs
/// (no index leads from a name: each would slow every write of fields).
const NAMED: [&str; 2] = [
    concat!(
        "SELECT ",
        found_columns!(),
        " FROM subscribers WHERE site_id = $1 AND email_key > $2
          AND lower(fields) LIKE $3 ESCAPE '!'
          ORDER BY email_key LIMIT $4"
    ),
    concat!(
        "SELECT ",
        found_columns!(),
        " FROM subscribers WHERE site_id = $1 AND email_key > $2
          AND lower(fields COLLATE \"C\") LIKE $3 ESCAPE '!'
          ORDER BY email_key LIMIT $4"
    ),
];

/// Up to `limit` subscribers found by `text`, in lowercase email order
/// after `after` (see
/// [`AudienceStore::search_subscribers`](crate::storage::AudienceStore::search_subscribers)).
///
/// Each way of being found is its own statement, each answering its first
/// `limit + 1` after `after` in email order, and the page is the first of
/// their union: an email prefix is a range of the `(site_id, email_key)`
/// index; a tag's holders are found from the tag's row (by its name key)
/// and the tag's index; names are sieved from the fields of the
/// subscribers in email order, as far as the page needs, and only on a
/// site that has a name field. Every comparison is of text by code point,
/// alike on both databases, and case is ignored as Rust's `to_lowercase`
/// does (as emails' and tags' keys are made).
pub async fn search_subscribers<C: Conn>(
    conn: &mut C,
    site_id: i64,
    text: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Page<Subscriber>> {
    let take = i64::try_from(limit).unwrap_or(i64::MAX - 1) + 1;
    let after = after.unwrap_or("");
    let mut found: Vec<FoundRow> = Vec::new();
    if text.is_empty() {
        found = conn.all(sql!(ALL, site_id, after, take)).await?;
    } else {
        let key = text.to_lowercase();
        let end = prefix_end(&key);
        found.extend(
            conn.all::<FoundRow>(if after >= key.as_str() {
                sql!(EMAILS_AFTER, site_id, after, &end, take)
            } else {
                sql!(EMAILS_FROM, site_id, &key, &end, take)
            })
            .await?,
        );
        let tag: Option<(i64,)> = conn
            .optional(sql!(
                "SELECT id FROM tags WHERE site_id = $1 AND name_key = $2",
                site_id,
                &key
            ))
            .await?;
        if let Some((tag_id,)) = tag {
            let holders = C::DIALECT.pick(HOLDERS[0], HOLDERS[1]);
            found.extend(
                conn.all::<FoundRow>(sql!(holders, site_id, after, tag_id, take))
                    .await?,
            );
        }
        let (names,): (i64,) = conn
            .one(sql!(
                "SELECT COUNT(*) FROM fields
                 WHERE site_id = $1 AND key IN ('first_name', 'last_name', 'name')",
                site_id
            ))
            .await?;
        if names > 0 {
            found.extend(named(conn, site_id, &key, after, take).await?);
        }
        found.sort_by(|a, b| a.email_key.cmp(&b.email_key));
        // One subscriber found more than one way is one row.
        let mut seen = std::collections::HashSet::new();
        found.retain(|f| seen.insert(f.row.id));
    }
    let more = found.len() > limit;
    found.truncate(limit);
    let next_after = found
        .last()
        .filter(|_| more)
        .map(|last| last.email_key.clone());
    let rows = found.into_iter().map(|f| f.row).collect();
    Ok(Page {
        items: with_tags(conn, site_id, rows).await?,
        next_after,
    })
}

/// Up to `take` subscribers after `after`, in email order, one of whose
/// name fields starts with `key` (lowercase): the rows the name's pattern
/// lets through, as many batches as it takes to find `take` or to reach
/// the end.
async fn named<C: Conn>(
    conn: &mut C,
    site_id: i64,
    key: &str,
    after: &str,
    take: i64,
) -> Result<Vec<FoundRow>> {
    let pattern = name_pattern(key);
    let statement = C::DIALECT.pick(NAMED[0], NAMED[1]);
    let mut after = after.to_owned();
    let mut found = Vec::new();
    loop {
        let batch: Vec<FoundRow> = conn
            .all(sql!(statement, site_id, &after, &pattern, take))
            .await?;
        let full = batch.len() as i64 == take;
        if let Some(last) = batch.last() {
            after.clone_from(&last.email_key);
        }
        found.extend(batch.into_iter().filter(|f| is_named(&f.row.fields, key)));
        if !full || found.len() as i64 >= take {
            return Ok(found);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_ends_where_its_last_character_moves_on() {
        assert_eq!(prefix_end("ab"), "ac");
        assert_eq!(prefix_end("a\u{D7FF}"), "a\u{E000}");
        assert_eq!(prefix_end("a\u{10FFFF}"), "b");
        assert_eq!(prefix_end("\u{10FFFF}"), "\u{10FFFF}".repeat(256));
        for text in ["ab", "abz", "ab\u{10FFFF}", "ab\u{10FFFF}zz"] {
            assert!(text >= "ab" && text < prefix_end("ab").as_str(), "{text}");
        }
        assert!("ac" >= prefix_end("ab").as_str());
    }

    #[test]
    fn a_name_pattern_lets_through_every_name_that_starts_with_the_text() {
        assert_eq!(name_pattern("ad"), r#"%name":"ad%"#);
        assert_eq!(name_pattern("a_b%c!"), r#"%name":"a!_b!%c!!%"#);
        assert_eq!(name_pattern(r#"o"b\"#), r#"%name":"o\"b\\%"#);
        assert_eq!(name_pattern("élo"), r#"%name":"_lo%"#);
        let fields = r#"{"company":{"name":"Ada Inc"},"first_name":"O\"Brien","nickname":"Ada","name":"Éva"}"#;
        assert!(is_named(fields, "o\"b"));
        assert!(is_named(fields, "év"));
        assert!(!is_named(fields, "ada"), "a nested name, or another key's");
        assert!(!is_named(r#"{"name":42}"#, "4"));
        assert!(!is_named("not json", "n"));
    }
}
