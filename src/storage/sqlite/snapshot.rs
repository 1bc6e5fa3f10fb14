//! Reading a site's audience for evaluation: the whole audience into an
//! [`Audience`] in one read transaction, columns of event details on demand,
//! and full subscriber rows for a page of members.
//!
//! Events are read in id order. Events are only ever appended, so the events
//! of a type read later begin with exactly the ones a snapshot holds: a detail
//! column read after the snapshot lines up with it once cut to its length.

use super::SqliteStore;
use crate::audience::Subscriber;
use crate::query::ast::DetailPath;
use crate::query::eval::{Audience, AudienceBuilder, SubscriberRow, Val};
use crate::storage::Result;
use futures_util::TryStreamExt;
use sqlx::Row;

impl SqliteStore {
    pub(super) async fn read_audience(&self, site_id: i64) -> Result<Audience> {
        let mut tx = self.reader.begin().await?;
        let mut builder = AudienceBuilder::new();
        {
            let mut rows = sqlx::query(
                "SELECT id, uuid, email, fields, unsubscribed_at IS NULL, created_at
                 FROM subscribers WHERE site_id = $1 ORDER BY id",
            )
            .bind(site_id)
            .fetch(&mut *tx);
            while let Some(row) = rows.try_next().await? {
                let fields: &str = row.try_get(3)?;
                builder.subscriber(SubscriberRow {
                    id: row.try_get(0)?,
                    uuid: row.try_get(1)?,
                    email: row.try_get(2)?,
                    subscribed: row.try_get(4)?,
                    created_at: row.try_get(5)?,
                    fields: serde_json::from_str(fields).unwrap_or_default(),
                });
            }
        }
        {
            let mut rows = sqlx::query(
                "SELECT st.subscriber_id, t.name_key FROM subscriber_tags st
                 JOIN tags t ON t.id = st.tag_id
                 WHERE t.site_id = $1 AND t.discarded_at IS NULL",
            )
            .bind(site_id)
            .fetch(&mut *tx);
            while let Some(row) = rows.try_next().await? {
                builder.tag(row.try_get(0)?, row.try_get(1)?);
            }
        }
        {
            // `+site_id` keeps the planner on the table itself, which is in id
            // order, rather than on an index it would then have to sort.
            let mut rows = sqlx::query(
                "SELECT subscriber_id, type, occurred_at FROM events
                 WHERE +site_id = $1 ORDER BY id",
            )
            .bind(site_id)
            .fetch(&mut *tx);
            while let Some(row) = rows.try_next().await? {
                builder.event(row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
            }
        }
        tx.commit().await?;
        Ok(builder.build())
    }

    pub(super) async fn read_details(
        &self,
        site_id: i64,
        kind: &str,
        path: &DetailPath,
    ) -> Result<Vec<Val>> {
        let mut values = Vec::new();
        let mut rows = sqlx::query(
            "SELECT json_type(details, $3), json_extract(details, $3) FROM events
             WHERE site_id = $1 AND type = $2 ORDER BY id",
        )
        .bind(site_id)
        .bind(kind)
        .bind(path.sqlite_path())
        .fetch(&self.reader);
        while let Some(row) = rows.try_next().await? {
            let kind: Option<&str> = row.try_get(0)?;
            values.push(match kind {
                None => Val::Missing,
                Some("null") => Val::Null,
                Some("true") => Val::Bool(true),
                Some("false") => Val::Bool(false),
                Some("integer") => Val::Number(row.try_get::<i64, _>(1)? as f64),
                Some("real") => Val::Number(row.try_get(1)?),
                Some("text") => {
                    let text: &str = row.try_get(1)?;
                    Val::Text(text.to_lowercase().into())
                }
                Some(_) => Val::Other,
            });
        }
        Ok(values)
    }

    pub(super) async fn read_subscribers(
        &self,
        site_id: i64,
        ids: &[i64],
    ) -> Result<Vec<Subscriber>> {
        let ids = serde_json::to_string(ids).unwrap_or_else(|_| "[]".to_owned());
        let mut conn = self.reader.acquire().await?;
        let rows = sqlx::query(
            "SELECT id, uuid, email, fields, unsubscribed_at, created_at, updated_at
             FROM subscribers
             WHERE site_id = $1 AND id IN (SELECT value FROM json_each($2))
             ORDER BY id",
        )
        .bind(site_id)
        .bind(&ids)
        .fetch_all(&mut *conn)
        .await?;
        let tags: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT subscriber_id, tag_id FROM subscriber_tags
             WHERE subscriber_id IN (SELECT value FROM json_each($1))
             ORDER BY subscriber_id, tag_id",
        )
        .bind(&ids)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|row| {
                let id: i64 = row.try_get("id")?;
                let fields: String = row.try_get("fields")?;
                Ok(Subscriber {
                    id,
                    uuid: row.try_get("uuid")?,
                    email: row.try_get("email")?,
                    fields: serde_json::from_str(&fields).unwrap_or_default(),
                    tag_ids: tags
                        .iter()
                        .filter(|(s, _)| *s == id)
                        .map(|(_, t)| *t)
                        .collect(),
                    unsubscribed_at: row.try_get("unsubscribed_at")?,
                    created_at: row.try_get("created_at")?,
                    updated_at: row.try_get("updated_at")?,
                })
            })
            .collect()
    }
}
