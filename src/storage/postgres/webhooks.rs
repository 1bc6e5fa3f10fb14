//! Webhooks, watched segments' members and the outbox on PostgreSQL
//! ([`crate::storage::webhooks`]).

use super::PgStore;
use crate::storage::webhooks::{
    Attempt, Baseline, Delivery, NewWebhook, Transition, Watch, Webhook, WebhookPatch,
    WebhookStore, events_from_json, events_to_json, ids_from_json, ids_to_json,
};
use crate::storage::{Result, StorageError};
use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

const WEBHOOK_COLUMNS: &str = "id, site_id, url, segment_ids, events, secret, created_at,
    updated_at, disabled_at, failing_since";

fn webhook_from_row(row: &PgRow) -> Result<Webhook> {
    Ok(Webhook {
        id: row.try_get("id")?,
        site_id: row.try_get("site_id")?,
        url: row.try_get("url")?,
        segment_ids: ids_from_json(row.try_get("segment_ids")?),
        events: events_from_json(row.try_get("events")?),
        secret: row.try_get("secret")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        disabled_at: row.try_get("disabled_at")?,
        failing_since: row.try_get("failing_since")?,
    })
}

fn delivery_from_row(row: &PgRow) -> Result<Delivery> {
    Ok(Delivery {
        id: row.try_get("id")?,
        webhook_id: row.try_get("webhook_id")?,
        event_id: row.try_get("event_id")?,
        body: row.try_get("notification")?,
        created_at: row.try_get("created_at")?,
        attempts: row.try_get("attempts")?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        last_status: row.try_get("last_status")?,
        last_error: row.try_get("last_error")?,
        delivered_at: row.try_get("delivered_at")?,
    })
}

async fn webhook_in(conn: &mut PgConnection, site_id: i64, id: i64) -> Result<Webhook> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE site_id = $1 AND id = $2"
    )))
    .bind(site_id)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(StorageError::NotFound)?;
    webhook_from_row(&row)
}

/// Watches the baselines' segments that are not watched yet.
async fn add_watches(conn: &mut PgConnection, site_id: i64, baselines: &[Baseline]) -> Result<()> {
    for baseline in baselines {
        let w = &baseline.watch;
        let inserted = sqlx::query(
            "INSERT INTO segment_watches (site_id, segment_id, seq, checked_at, version, kept)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(site_id)
        .bind(w.segment_id)
        .bind(w.seq)
        .bind(w.checked_at)
        .bind(w.version)
        .bind(w.kept)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if inserted == 1 {
            set_members(conn, site_id, w.segment_id, &baseline.members, true).await?;
        }
    }
    Ok(())
}

/// Adds (or removes) members of a watched segment.
async fn set_members(
    conn: &mut PgConnection,
    site_id: i64,
    segment_id: i64,
    ids: &[i64],
    add: bool,
) -> Result<()> {
    for chunk in ids.chunks(100_000) {
        let sql = if add {
            "INSERT INTO segment_members (site_id, segment_id, subscriber_id)
             SELECT $1, $2, id FROM UNNEST($3::bigint[]) AS m(id) ON CONFLICT DO NOTHING"
        } else {
            "DELETE FROM segment_members WHERE site_id = $1 AND segment_id = $2
             AND subscriber_id = ANY($3)"
        };
        sqlx::query(sql)
            .bind(site_id)
            .bind(segment_id)
            .bind(chunk)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Forgets the watches of the site's segments that no webhook names.
async fn drop_unwatched(conn: &mut PgConnection, site_id: i64) -> Result<()> {
    let rows: Vec<String> =
        sqlx::query_scalar("SELECT segment_ids FROM webhooks WHERE site_id = $1")
            .bind(site_id)
            .fetch_all(&mut *conn)
            .await?;
    let watched: Vec<i64> = rows.iter().flat_map(|t| ids_from_json(t)).collect();
    for table in [
        "DELETE FROM segment_members WHERE site_id = $1 AND NOT segment_id = ANY($2)",
        "DELETE FROM segment_watches WHERE site_id = $1 AND NOT segment_id = ANY($2)",
    ] {
        sqlx::query(table)
            .bind(site_id)
            .bind(&watched)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

#[async_trait]
impl WebhookStore for PgStore {
    async fn create_webhook(
        &self,
        site_id: i64,
        new: &NewWebhook,
        baselines: &[Baseline],
        now: i64,
    ) -> Result<Webhook> {
        let mut tx = self.pool.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO webhooks (site_id, url, segment_ids, events, secret, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id",
        )
        .bind(site_id)
        .bind(&new.url)
        .bind(ids_to_json(&new.segment_ids))
        .bind(events_to_json(&new.events))
        .bind(&new.secret)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        add_watches(&mut tx, site_id, baselines).await?;
        let webhook = webhook_in(&mut tx, site_id, id).await?;
        tx.commit().await?;
        Ok(webhook)
    }

    async fn list_webhooks(&self, site_id: i64) -> Result<Vec<Webhook>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE site_id = $1 ORDER BY id"
        )))
        .bind(site_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(webhook_from_row).collect()
    }

    async fn get_webhook(&self, site_id: i64, id: i64) -> Result<Option<Webhook>> {
        let mut conn = self.pool.acquire().await?;
        match webhook_in(&mut conn, site_id, id).await {
            Ok(webhook) => Ok(Some(webhook)),
            Err(StorageError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn update_webhook(
        &self,
        site_id: i64,
        id: i64,
        patch: &WebhookPatch,
        baselines: &[Baseline],
        now: i64,
    ) -> Result<Webhook> {
        let mut tx = self.pool.begin().await?;
        let current = webhook_in(&mut tx, site_id, id).await?;
        let disabled_at = match patch.disabled {
            Some(true) => current.disabled_at.or(Some(now)),
            Some(false) => None,
            None => current.disabled_at,
        };
        let failing_since = if patch.disabled == Some(false) {
            None
        } else {
            current.failing_since
        };
        sqlx::query(
            "UPDATE webhooks SET url = $1, segment_ids = $2, events = $3, updated_at = $4,
                 disabled_at = $5, failing_since = $6
             WHERE site_id = $7 AND id = $8",
        )
        .bind(patch.url.as_ref().unwrap_or(&current.url))
        .bind(ids_to_json(
            patch.segment_ids.as_ref().unwrap_or(&current.segment_ids),
        ))
        .bind(events_to_json(
            patch.events.as_ref().unwrap_or(&current.events),
        ))
        .bind(now.max(current.updated_at + 1))
        .bind(disabled_at)
        .bind(failing_since)
        .bind(site_id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if patch.disabled == Some(false) {
            // Enabled again: what waits is due now.
            sqlx::query(
                "UPDATE webhook_deliveries SET next_attempt_at = $1
                 WHERE site_id = $2 AND webhook_id = $3 AND delivered_at IS NULL",
            )
            .bind(now)
            .bind(site_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        add_watches(&mut tx, site_id, baselines).await?;
        drop_unwatched(&mut tx, site_id).await?;
        let webhook = webhook_in(&mut tx, site_id, id).await?;
        tx.commit().await?;
        Ok(webhook)
    }

    async fn delete_webhook(&self, site_id: i64, id: i64) -> Result<Webhook> {
        let mut tx = self.pool.begin().await?;
        let webhook = webhook_in(&mut tx, site_id, id).await?;
        sqlx::query("DELETE FROM webhook_deliveries WHERE site_id = $1 AND webhook_id = $2")
            .bind(site_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM webhooks WHERE site_id = $1 AND id = $2")
            .bind(site_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        drop_unwatched(&mut tx, site_id).await?;
        tx.commit().await?;
        Ok(webhook)
    }

    async fn watches(&self) -> Result<Vec<(i64, Watch)>> {
        let rows: Vec<(i64, i64, i64, i64, i64, bool)> = sqlx::query_as(
            "SELECT site_id, segment_id, seq, checked_at, version, kept FROM segment_watches
             ORDER BY site_id, segment_id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(site, segment_id, seq, checked_at, version, kept)| {
                (
                    site,
                    Watch {
                        segment_id,
                        seq,
                        checked_at,
                        version,
                        kept,
                    },
                )
            })
            .collect())
    }

    async fn watch_members(&self, site_id: i64, segment_id: i64) -> Result<Vec<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT subscriber_id FROM segment_members WHERE site_id = $1 AND segment_id = $2
             ORDER BY subscriber_id",
        )
        .bind(site_id)
        .bind(segment_id)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn commit_transition(&self, site_id: i64, t: &Transition) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let moved = sqlx::query(
            "UPDATE segment_watches SET seq = $1, checked_at = $2, version = $3, kept = $4
             WHERE site_id = $5 AND segment_id = $6
               AND seq = $7 AND checked_at = $8 AND version = $9 AND kept = $10",
        )
        .bind(t.to.seq)
        .bind(t.to.checked_at)
        .bind(t.to.version)
        .bind(t.to.kept)
        .bind(site_id)
        .bind(t.from.segment_id)
        .bind(t.from.seq)
        .bind(t.from.checked_at)
        .bind(t.from.version)
        .bind(t.from.kept)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if moved != 1 {
            return Ok(false);
        }
        set_members(&mut tx, site_id, t.from.segment_id, &t.added, true).await?;
        set_members(&mut tx, site_id, t.from.segment_id, &t.removed, false).await?;
        for n in &t.notifications {
            sqlx::query(
                "INSERT INTO webhook_deliveries
                     (site_id, webhook_id, event_id, notification, created_at, next_attempt_at)
                 VALUES ($1, $2, $3, $4, $5, $5)",
            )
            .bind(site_id)
            .bind(n.webhook_id)
            .bind(&n.event_id)
            .bind(&n.body)
            .bind(t.to.checked_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn due_webhooks(&self, now: i64) -> Result<Vec<(i64, i64)>> {
        Ok(sqlx::query_as(
            "SELECT w.site_id, w.id FROM webhooks w
             WHERE w.disabled_at IS NULL AND (w.leased_until IS NULL OR w.leased_until < $1)
               AND (SELECT d.next_attempt_at FROM webhook_deliveries d
                    WHERE d.site_id = w.site_id AND d.webhook_id = w.id
                      AND d.delivered_at IS NULL
                    ORDER BY d.id LIMIT 1) <= $1
             ORDER BY w.id",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn lease_webhook(&self, site_id: i64, id: i64, now: i64, until: i64) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let leased = sqlx::query(
            "UPDATE webhooks SET leased_until = $1
             WHERE site_id = $2 AND id = $3 AND (leased_until IS NULL OR leased_until < $4)",
        )
        .bind(until)
        .bind(site_id)
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(leased == 1)
    }

    async fn pending_deliveries(
        &self,
        site_id: i64,
        webhook_id: i64,
        limit: usize,
    ) -> Result<Vec<Delivery>> {
        let rows = sqlx::query(
            "SELECT * FROM webhook_deliveries
             WHERE site_id = $1 AND webhook_id = $2 AND delivered_at IS NULL
             ORDER BY id LIMIT $3",
        )
        .bind(site_id)
        .bind(webhook_id)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(delivery_from_row).collect()
    }

    async fn record_attempt(
        &self,
        site_id: i64,
        webhook_id: i64,
        ids: &[i64],
        attempt: &Attempt,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, last_status = $1,
                 last_error = $2,
                 delivered_at = CASE WHEN $3 THEN $4 END,
                 next_attempt_at = CASE WHEN $3 THEN next_attempt_at ELSE $5 END
             WHERE site_id = $6 AND webhook_id = $7 AND id = ANY($8)",
        )
        .bind(attempt.status)
        .bind(&attempt.error)
        .bind(attempt.delivered)
        .bind(attempt.at)
        .bind(attempt.next_attempt_at)
        .bind(site_id)
        .bind(webhook_id)
        .bind(ids)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE webhooks SET leased_until = NULL,
                 failing_since = CASE WHEN $1 THEN NULL ELSE COALESCE(failing_since, $2) END,
                 disabled_at = CASE WHEN NOT $1 AND COALESCE(failing_since, $2) < $3
                                    THEN COALESCE(disabled_at, $2) ELSE disabled_at END
             WHERE site_id = $4 AND id = $5",
        )
        .bind(attempt.delivered)
        .bind(attempt.at)
        .bind(attempt.disable_if_failing_since)
        .bind(site_id)
        .bind(webhook_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn recent_deliveries(
        &self,
        site_id: i64,
        webhook_id: i64,
        limit: usize,
    ) -> Result<Vec<Delivery>> {
        let rows = sqlx::query(
            "SELECT * FROM webhook_deliveries WHERE site_id = $1 AND webhook_id = $2
             ORDER BY id DESC LIMIT $3",
        )
        .bind(site_id)
        .bind(webhook_id)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(delivery_from_row).collect()
    }

    async fn retry_delivery(
        &self,
        site_id: i64,
        webhook_id: i64,
        delivery_id: i64,
        now: i64,
    ) -> Result<Delivery> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "UPDATE webhook_deliveries SET next_attempt_at = $1
             WHERE site_id = $2 AND webhook_id = $3 AND id = $4 AND delivered_at IS NULL
             RETURNING *",
        )
        .bind(now)
        .bind(site_id)
        .bind(webhook_id)
        .bind(delivery_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StorageError::NotFound)?;
        // Delivered in order: the ones before it go first, so they are due too.
        sqlx::query(
            "UPDATE webhook_deliveries SET next_attempt_at = LEAST(next_attempt_at, $1)
             WHERE site_id = $2 AND webhook_id = $3 AND id < $4 AND delivered_at IS NULL",
        )
        .bind(now)
        .bind(site_id)
        .bind(webhook_id)
        .bind(delivery_id)
        .execute(&mut *tx)
        .await?;
        let delivery = delivery_from_row(&row)?;
        tx.commit().await?;
        Ok(delivery)
    }
}
