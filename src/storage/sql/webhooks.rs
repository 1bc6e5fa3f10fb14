//! Webhooks, watched segments' members and the outbox
//! ([`crate::storage::webhooks`]), as both backends keep them.

use super::{Conn, Dialect};
use crate::sql;
use crate::storage::webhooks::{
    Attempt, Delivery, NewWebhook, Transition, Watch, Webhook, WebhookPatch, events_from_json,
    events_to_json, ids_from_json, ids_to_json,
};
use crate::storage::{Result, StorageError};

/// The columns [`WebhookRow`] reads, as a literal for `concat!`.
macro_rules! webhook_columns {
    () => {
        "id, site_id, url, segment_ids, events, secret, created_at, updated_at, disabled_at,
         failing_since"
    };
}

#[derive(sqlx::FromRow)]
struct WebhookRow {
    id: i64,
    site_id: i64,
    url: String,
    segment_ids: String,
    events: String,
    secret: String,
    created_at: i64,
    updated_at: i64,
    disabled_at: Option<i64>,
    failing_since: Option<i64>,
}

impl From<WebhookRow> for Webhook {
    fn from(row: WebhookRow) -> Self {
        Self {
            id: row.id,
            site_id: row.site_id,
            url: row.url,
            segment_ids: ids_from_json(&row.segment_ids),
            events: events_from_json(&row.events),
            secret: row.secret,
            created_at: row.created_at,
            updated_at: row.updated_at,
            disabled_at: row.disabled_at,
            failing_since: row.failing_since,
        }
    }
}

/// The columns [`DeliveryRow`] reads.
macro_rules! delivery_columns {
    () => {
        "id, webhook_id, event_id, notification, created_at, attempts, next_attempt_at,
         last_status, last_error, delivered_at"
    };
}

#[derive(sqlx::FromRow)]
struct DeliveryRow {
    id: i64,
    webhook_id: i64,
    event_id: String,
    notification: String,
    created_at: i64,
    attempts: i64,
    next_attempt_at: i64,
    last_status: Option<i64>,
    last_error: Option<String>,
    delivered_at: Option<i64>,
}

impl From<DeliveryRow> for Delivery {
    fn from(row: DeliveryRow) -> Self {
        Self {
            id: row.id,
            webhook_id: row.webhook_id,
            event_id: row.event_id,
            body: row.notification,
            created_at: row.created_at,
            attempts: row.attempts,
            next_attempt_at: row.next_attempt_at,
            last_status: row.last_status,
            last_error: row.last_error,
            delivered_at: row.delivered_at,
        }
    }
}

async fn webhook_in(conn: &mut impl Conn, site_id: i64, id: i64) -> Result<Webhook> {
    let row: WebhookRow = conn
        .optional(sql!(
            concat!(
                "SELECT ",
                webhook_columns!(),
                " FROM webhooks WHERE site_id = $1 AND id = $2"
            ),
            site_id,
            id
        ))
        .await?
        .ok_or(StorageError::NotFound)?;
    Ok(row.into())
}

/// Watches the named segments that are not watched yet, from the latest
/// transition their journal has: a new webhook is told of what happens from
/// its creation on, never of who was in before. The caller holds the
/// site's write turn, so no transition can commit between this read and
/// the commit.
async fn add_watches(tx: &mut impl Conn, site_id: i64, segment_ids: &[i64]) -> Result<()> {
    for &segment_id in segment_ids {
        let last: Option<(i64, i64)> = tx
            .optional(sql!(
                "SELECT at, id FROM segment_transitions WHERE site_id = $1 AND segment_id = $2
                 ORDER BY at DESC, id DESC LIMIT 1",
                site_id,
                segment_id
            ))
            .await?;
        let (after_at, after_id) = last.unwrap_or((0, 0));
        tx.execute(sql!(
            "INSERT INTO segment_watches
                 (site_id, segment_id, seq, checked_at, version, kept, after_at, after_id)
             VALUES ($1, $2, 0, 0, 0, $3, $4, $5) ON CONFLICT DO NOTHING",
            site_id,
            segment_id,
            true,
            after_at,
            after_id
        ))
        .await?;
    }
    Ok(())
}

/// Forgets the watches of the site's segments that no webhook names.
async fn drop_unwatched<C: Conn>(tx: &mut C, site_id: i64) -> Result<()> {
    let rows: Vec<(String,)> = tx
        .all(sql!(
            "SELECT segment_ids FROM webhooks WHERE site_id = $1",
            site_id
        ))
        .await?;
    let watched: Vec<i64> = rows.iter().flat_map(|(t,)| ids_from_json(t)).collect();
    // Members stored by the release before this one go with their watch.
    let statements = match C::DIALECT {
        Dialect::Sqlite => [
            "DELETE FROM segment_members WHERE site_id = $1
             AND segment_id NOT IN (SELECT value FROM json_each($2))",
            "DELETE FROM segment_watches WHERE site_id = $1
             AND segment_id NOT IN (SELECT value FROM json_each($2))",
        ],
        Dialect::Postgres => [
            "DELETE FROM segment_members WHERE site_id = $1 AND NOT segment_id = ANY($2)",
            "DELETE FROM segment_watches WHERE site_id = $1 AND NOT segment_id = ANY($2)",
        ],
    };
    for text in statements {
        tx.execute(sql!(text, site_id, &watched[..])).await?;
    }
    Ok(())
}

/// Creates a webhook, and the watches of its segments not watched yet.
pub async fn create(
    tx: &mut impl Conn,
    site_id: i64,
    new: &NewWebhook,
    now: i64,
) -> Result<Webhook> {
    let (id,): (i64,) = tx
        .one(sql!(
            "INSERT INTO webhooks (site_id, url, segment_ids, events, secret, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id",
            site_id,
            new.url.as_str(),
            ids_to_json(&new.segment_ids),
            events_to_json(&new.events),
            new.secret.as_str(),
            now
        ))
        .await?;
    add_watches(tx, site_id, &new.segment_ids).await?;
    webhook_in(tx, site_id, id).await
}

pub async fn list(conn: &mut impl Conn, site_id: i64) -> Result<Vec<Webhook>> {
    let rows: Vec<WebhookRow> = conn
        .all(sql!(
            concat!(
                "SELECT ",
                webhook_columns!(),
                " FROM webhooks WHERE site_id = $1 ORDER BY id"
            ),
            site_id
        ))
        .await?;
    Ok(rows.into_iter().map(Webhook::from).collect())
}

pub async fn get(conn: &mut impl Conn, site_id: i64, id: i64) -> Result<Option<Webhook>> {
    match webhook_in(conn, site_id, id).await {
        Ok(webhook) => Ok(Some(webhook)),
        Err(StorageError::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

pub async fn update(
    tx: &mut impl Conn,
    site_id: i64,
    id: i64,
    patch: &WebhookPatch,
    now: i64,
) -> Result<Webhook> {
    let current = webhook_in(tx, site_id, id).await?;
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
    tx.execute(sql!(
        "UPDATE webhooks SET url = $1, segment_ids = $2, events = $3, updated_at = $4,
             disabled_at = $5, failing_since = $6
         WHERE site_id = $7 AND id = $8",
        patch.url.as_ref().unwrap_or(&current.url),
        ids_to_json(patch.segment_ids.as_ref().unwrap_or(&current.segment_ids)),
        events_to_json(patch.events.as_ref().unwrap_or(&current.events)),
        now.max(current.updated_at + 1),
        disabled_at,
        failing_since,
        site_id,
        id
    ))
    .await?;
    if patch.disabled == Some(false) {
        // Enabled again: what waits is due now.
        tx.execute(sql!(
            "UPDATE webhook_deliveries SET next_attempt_at = $1
             WHERE site_id = $2 AND webhook_id = $3 AND delivered_at IS NULL",
            now,
            site_id,
            id
        ))
        .await?;
    }
    if let Some(ids) = &patch.segment_ids {
        add_watches(tx, site_id, ids).await?;
    }
    drop_unwatched(tx, site_id).await?;
    webhook_in(tx, site_id, id).await
}

pub async fn delete(tx: &mut impl Conn, site_id: i64, id: i64) -> Result<Webhook> {
    let webhook = webhook_in(tx, site_id, id).await?;
    tx.execute(sql!(
        "DELETE FROM webhook_deliveries WHERE site_id = $1 AND webhook_id = $2",
        site_id,
        id
    ))
    .await?;
    tx.execute(sql!(
        "DELETE FROM webhooks WHERE site_id = $1 AND id = $2",
        site_id,
        id
    ))
    .await?;
    drop_unwatched(tx, site_id).await?;
    Ok(webhook)
}

/// Every watch, by site.
pub async fn watches(conn: &mut impl Conn) -> Result<Vec<(i64, Watch)>> {
    let rows: Vec<(i64, i64, i64, i64)> = conn
        .all(sql!(
            "SELECT site_id, segment_id, after_at, after_id FROM segment_watches
             ORDER BY site_id, segment_id"
        ))
        .await?;
    Ok(rows
        .into_iter()
        .map(|(site_id, segment_id, after_at, after_id)| {
            let watch = Watch {
                segment_id,
                after_at,
                after_id,
            };
            (site_id, watch)
        })
        .collect())
}

/// Writes the notifications of a watched segment's transitions and moves
/// its watch past them, if the watch is still where the caller read it: of
/// several servers following the same journal, one writes each.
pub async fn commit_transition(tx: &mut impl Conn, site_id: i64, t: &Transition) -> Result<bool> {
    let moved = tx
        .execute(sql!(
            "UPDATE segment_watches SET after_at = $1, after_id = $2
             WHERE site_id = $3 AND segment_id = $4 AND after_at = $5 AND after_id = $6",
            t.to.after_at,
            t.to.after_id,
            site_id,
            t.from.segment_id,
            t.from.after_at,
            t.from.after_id
        ))
        .await?;
    if moved != 1 {
        return Ok(false);
    }
    for n in &t.notifications {
        tx.execute(sql!(
            "INSERT INTO webhook_deliveries
                 (site_id, webhook_id, event_id, notification, created_at, next_attempt_at)
             VALUES ($1, $2, $3, $4, $5, $5)",
            site_id,
            n.webhook_id,
            n.event_id.as_str(),
            n.body.as_str(),
            t.at
        ))
        .await?;
    }
    Ok(true)
}

/// The enabled, unleased webhooks of every site whose oldest undelivered
/// notification is due.
pub async fn due(conn: &mut impl Conn, now: i64) -> Result<Vec<(i64, i64)>> {
    conn.all(sql!(
        "SELECT w.site_id, w.id FROM webhooks w
         WHERE w.disabled_at IS NULL AND (w.leased_until IS NULL OR w.leased_until < $1)
           AND (SELECT d.next_attempt_at FROM webhook_deliveries d
                WHERE d.site_id = w.site_id AND d.webhook_id = w.id
                  AND d.delivered_at IS NULL
                ORDER BY d.id LIMIT 1) <= $1
         ORDER BY w.id",
        now
    ))
    .await
}

pub async fn lease(
    tx: &mut impl Conn,
    site_id: i64,
    id: i64,
    now: i64,
    until: i64,
) -> Result<bool> {
    let leased = tx
        .execute(sql!(
            "UPDATE webhooks SET leased_until = $1
             WHERE site_id = $2 AND id = $3 AND (leased_until IS NULL OR leased_until < $4)",
            until,
            site_id,
            id,
            now
        ))
        .await?;
    Ok(leased == 1)
}

pub async fn pending(
    conn: &mut impl Conn,
    site_id: i64,
    webhook_id: i64,
    limit: usize,
) -> Result<Vec<Delivery>> {
    let rows: Vec<DeliveryRow> = conn
        .all(sql!(
            concat!(
                "SELECT ",
                delivery_columns!(),
                " FROM webhook_deliveries
                 WHERE site_id = $1 AND webhook_id = $2 AND delivered_at IS NULL
                 ORDER BY id LIMIT $3"
            ),
            site_id,
            webhook_id,
            limit as i64
        ))
        .await?;
    Ok(rows.into_iter().map(Delivery::from).collect())
}

pub async fn record_attempt<C: Conn>(
    tx: &mut C,
    site_id: i64,
    webhook_id: i64,
    ids: &[i64],
    attempt: &Attempt,
) -> Result<()> {
    let text = C::DIALECT.pick(
        "UPDATE webhook_deliveries SET attempts = attempts + 1, last_status = $1,
             last_error = $2,
             delivered_at = CASE WHEN $3 THEN $4 END,
             next_attempt_at = CASE WHEN $3 THEN next_attempt_at ELSE $5 END
         WHERE site_id = $6 AND webhook_id = $7 AND id IN (SELECT value FROM json_each($8))",
        "UPDATE webhook_deliveries SET attempts = attempts + 1, last_status = $1,
             last_error = $2,
             delivered_at = CASE WHEN $3 THEN $4 END,
             next_attempt_at = CASE WHEN $3 THEN next_attempt_at ELSE $5 END
         WHERE site_id = $6 AND webhook_id = $7 AND id = ANY($8)",
    );
    tx.execute(sql!(
        text,
        attempt.status,
        attempt.error.as_deref(),
        attempt.delivered,
        attempt.at,
        attempt.next_attempt_at,
        site_id,
        webhook_id,
        ids
    ))
    .await?;
    tx.execute(sql!(
        "UPDATE webhooks SET leased_until = NULL,
             failing_since = CASE WHEN $1 THEN NULL ELSE COALESCE(failing_since, $2) END,
             disabled_at = CASE WHEN NOT $1 AND COALESCE(failing_since, $2) < $3
                                THEN COALESCE(disabled_at, $2) ELSE disabled_at END
         WHERE site_id = $4 AND id = $5",
        attempt.delivered,
        attempt.at,
        attempt.disable_if_failing_since,
        site_id,
        webhook_id
    ))
    .await?;
    Ok(())
}

pub async fn recent(
    conn: &mut impl Conn,
    site_id: i64,
    webhook_id: i64,
    limit: usize,
) -> Result<Vec<Delivery>> {
    let rows: Vec<DeliveryRow> = conn
        .all(sql!(
            concat!(
                "SELECT ",
                delivery_columns!(),
                " FROM webhook_deliveries WHERE site_id = $1 AND webhook_id = $2
                 ORDER BY id DESC LIMIT $3"
            ),
            site_id,
            webhook_id,
            limit as i64
        ))
        .await?;
    Ok(rows.into_iter().map(Delivery::from).collect())
}

/// Makes an undelivered notification due now, and every one before it.
pub async fn retry<C: Conn>(
    tx: &mut C,
    site_id: i64,
    webhook_id: i64,
    delivery_id: i64,
    now: i64,
) -> Result<Delivery> {
    let row: DeliveryRow = tx
        .optional(sql!(
            concat!(
                "UPDATE webhook_deliveries SET next_attempt_at = $1
                 WHERE site_id = $2 AND webhook_id = $3 AND id = $4 AND delivered_at IS NULL
                 RETURNING ",
                delivery_columns!()
            ),
            now,
            site_id,
            webhook_id,
            delivery_id
        ))
        .await?
        .ok_or(StorageError::NotFound)?;
    // Delivered in order: the ones before it go first, so they are due too.
    let text = C::DIALECT.pick(
        "UPDATE webhook_deliveries SET next_attempt_at = MIN(next_attempt_at, $1)
         WHERE site_id = $2 AND webhook_id = $3 AND id < $4 AND delivered_at IS NULL",
        "UPDATE webhook_deliveries SET next_attempt_at = LEAST(next_attempt_at, $1)
         WHERE site_id = $2 AND webhook_id = $3 AND id < $4 AND delivered_at IS NULL",
    );
    tx.execute(sql!(text, now, site_id, webhook_id, delivery_id))
        .await?;
    Ok(row.into())
}
