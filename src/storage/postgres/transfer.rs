//! [`Transfer`] on PostgreSQL: a snapshot read in one `REPEATABLE READ, READ
//! ONLY` transaction, and a copy written in one transaction that locks every
//! table it writes against other writers (readers go on, and see the
//! database as it was until the commit).
//!
//! Pages follow each table's primary key (`(site_id, id)` for a site's
//! records, `id` for sites and keys, the whole key where there is no id), so
//! each page is one index range scan.
//! A page is written with one `INSERT … SELECT FROM UNNEST(…)` of an array
//! per column. The identity sequences are moved past the highest id at the
//! end.

use super::{PgStore, Tx};
use crate::storage::sql::transfer::{HandedOut, Reader};
use crate::storage::transfer::{Rows, Table, Transfer, TransferReader, TransferWriter};
use crate::storage::{Result, sql};
use async_trait::async_trait;
use sqlx::{PgConnection, Postgres};

#[async_trait]
impl Transfer for PgStore {
    async fn begin_read(&self) -> Result<Box<dyn TransferReader>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        Ok(Box::new(Reader { tx }))
    }

    async fn begin_write(&self) -> Result<Box<dyn TransferWriter>> {
        let mut tx = self.pool.begin().await?;
        // Every table written, so that no other writer's row lands between
        // the check for sites and the commit.
        sqlx::query(
            "LOCK TABLE sites, api_keys, segments, subscribers, tags, subscriber_tags, fields,
                        events, webhooks, segment_watches, segment_members, webhook_deliveries,
                        segment_versions, segment_manual, audit_log, segment_journals,
                        journal_sites, journal_days, journal_members, segment_transitions,
                        change_heads, change_log, journal_checkpoints
             IN EXCLUSIVE MODE",
        )
        .execute(&mut *tx)
        .await?;
        Ok(Box::new(Writer {
            tx,
            highs: Vec::new(),
        }))
    }
}

/// Sequences are outside transactions: each one's latest value, at least
/// the highest id of the snapshot.
#[async_trait]
impl HandedOut for Postgres {
    async fn handed_out(conn: &mut PgConnection) -> Result<Vec<(Table, i64)>> {
        let mut highs = Vec::new();
        for table in Table::ALL.into_iter().filter(|t| t.has_ids()) {
            let high: i64 = sqlx::query_scalar(
                "SELECT COALESCE(pg_sequence_last_value(pg_get_serial_sequence($1, 'id')::regclass), 0)",
            )
            .bind(table.name())
            .fetch_one(&mut *conn)
            .await?;
            highs.push((table, high));
        }
        Ok(highs)
    }
}

struct Writer {
    tx: Tx,
    /// The highest id written to each table with an identity.
    highs: Vec<(Table, i64)>,
}

impl Writer {
    fn wrote(&mut self, table: Table, ids: impl Iterator<Item = i64>) {
        let high = ids.max().unwrap_or(0);
        match self.highs.iter_mut().find(|(t, _)| *t == table) {
            Some((_, h)) => *h = (*h).max(high),
            None => self.highs.push((table, high)),
        }
    }
}

/// One column of a page, as the array `UNNEST` takes.
fn column<'a, T, U>(rows: &'a [T], get: impl Fn(&'a T) -> U) -> Vec<U> {
    rows.iter().map(get).collect()
}

#[async_trait]
impl TransferWriter for Writer {
    async fn count_sites(&mut self) -> Result<u64> {
        sql::transfer::count_sites(&mut *self.tx).await
    }

    async fn clear(&mut self) -> Result<()> {
        // The identities are set by `finish`.
        sqlx::query(
            "TRUNCATE sites, api_keys, segments, subscribers, tags, subscriber_tags, fields,
                      events, webhooks, segment_watches, segment_members, webhook_deliveries,
                      segment_versions, segment_manual, audit_log, segment_journals,
                      journal_sites, journal_days, journal_members, segment_transitions,
                      change_heads, change_log, imports, journal_checkpoints",
        )
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn write(&mut self, rows: &Rows) -> Result<()> {
        match rows {
            Rows::Sites(r) => self.wrote(Table::Sites, r.iter().map(|r| r.id)),
            Rows::ApiKeys(r) => self.wrote(Table::ApiKeys, r.iter().map(|r| r.id)),
            Rows::Segments(r) => self.wrote(Table::Segments, r.iter().map(|r| r.id)),
            Rows::Subscribers(r) => self.wrote(Table::Subscribers, r.iter().map(|r| r.id)),
            Rows::Tags(r) => self.wrote(Table::Tags, r.iter().map(|r| r.id)),
            Rows::Fields(r) => self.wrote(Table::Fields, r.iter().map(|r| r.id)),
            Rows::Events(r) => self.wrote(Table::Events, r.iter().map(|r| r.id)),
            Rows::Webhooks(r) => self.wrote(Table::Webhooks, r.iter().map(|r| r.id)),
            Rows::WebhookDeliveries(r) => {
                self.wrote(Table::WebhookDeliveries, r.iter().map(|r| r.id))
            }
            Rows::AuditLog(r) => self.wrote(Table::AuditLog, r.iter().map(|r| r.id)),
            Rows::SegmentTransitions(r) => {
                self.wrote(Table::SegmentTransitions, r.iter().map(|r| r.id))
            }
            Rows::SubscriberTags(_)
            | Rows::SegmentWatches(_)
            | Rows::SegmentMembers(_)
            | Rows::SegmentVersions(_)
            | Rows::SegmentManual(_)
            | Rows::SegmentJournals(_)
            | Rows::JournalSites(_)
            | Rows::JournalDays(_)
            | Rows::JournalMembers(_)
            | Rows::ChangeHeads(_) => {}
        }
        let tx = &mut *self.tx;
        match rows {
            Rows::Sites(rows) => {
                sqlx::query(
                    "INSERT INTO sites (id, uuid, name, demo, created_at)
                     SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::boolean[],
                                          $5::bigint[])",
                )
                .bind(column(rows, |r| r.id))
                .bind(column(rows, |r| r.uuid.as_str()))
                .bind(column(rows, |r| r.name.as_str()))
                .bind(column(rows, |r| r.demo))
                .bind(column(rows, |r| r.created_at))
                .execute(tx)
                .await?;
            }
            Rows::ApiKeys(rows) => {
                sqlx::query(
                    "INSERT INTO api_keys (id, site_id, publishable_key, secret_hash, created_at,
                                           revoked_at)
                     SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::bytea[],
                                          $5::bigint[], $6::bigint[])",
                )
                .bind(column(rows, |r| r.id))
                .bind(column(rows, |r| r.site_id))
                .bind(column(rows, |r| r.publishable_key.as_str()))
                .bind(column(rows, |r| r.secret_hash.as_slice()))
                .bind(column(rows, |r| r.created_at))
                .bind(column(rows, |r| r.revoked_at))
                .execute(tx)
                .await?;
            }
            Rows::Segments(rows) => {
                sqlx::query(
                    "INSERT INTO segments (id, site_id, name, name_key, description, query,
                                           created_at, updated_at, discarded_at, version)
                     SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[],
                                          $5::text[], $6::text[], $7::bigint[], $8::bigint[],
                                          $9::bigint[], $10::bigint[])",
                )
                .bind(column(rows, |r| r.id))
                .bind(column(rows, |r| r.site_id))
                .bind(column(rows, |r| r.name.as_str()))
                .bind(column(rows, |r| r.name_key.as_str()))
                .bind(column(rows, |r| r.description.as_deref()))
                .bind(column(rows, |r| r.query.as_str()))
                .bind(column(rows, |r| r.created_at))
                .bind(column(rows, |r| r.updated_at))
                .bind(column(rows, |r| r.discarded_at))
                .bind(column(rows, |r| r.version))
                .execute(tx)
                .await?;
            }
            Rows::Subscribers(rows) => {
                sqlx::query(
                    "INSERT INTO subscribers (id, site_id, uuid, email, email_key, fields,
                                              unsubscribed_at, created_at, updated_at)
                     SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[],
                                          $5::text[], $6::text[], $7::bigint[], $8::bigint[],
                                          $9::bigint[])",
                )
                .bind(column(rows, |r| r.id))
                .bind(column(rows, |r| r.site_id))
                .bind(column(rows, |r| r.uuid.as_str()))
                .bind(column(rows, |r| r.email.as_str()))
                .bind(column(rows, |r| r.email_key.as_str()))
                .bind(column(rows, |r| r.fields.as_str()))
                .bind(column(rows, |r| r.unsubscribed_at))
                .bind(column(rows, |r| r.created_at))
                .bind(column(rows, |r| r.updated_at))
                .execute(tx)
                .await?;
            }
            Rows::Tags(rows) => {
                sqlx::query(
                    "INSERT INTO tags (id, site_id, name, name_key, created_at, discarded_at)
                     SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[],
                                          $5::bigint[], $6::bigint[])",
                )
                .bind(column(rows, |r| r.id))
                .bind(column(rows, |r| r.site_id))
                .bind(column(rows, |r| r.name.as_str()))
                .bind(column(rows, |r| r.name_key.as_str()))
                .bind(column(rows, |r| r.created_at))
                .bind(column(rows, |r| r.discarded_at))
                .execute(tx)
                .await?;
            }
            Rows::SubscriberTags(rows) => {
                sqlx::query(
                    "INSERT INTO subscriber_tags (site_id, subscriber_id, tag_id, created_at)
                     SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[])",
                )
                .bind(column(rows, |r| r.site_id))
                .bind(column(rows, |r| r.subscriber_id))
                .bind(column(rows, |r| r.tag_id))
                .bind(column(rows, |r| r.created_at))
                .execute(tx)
                .await?;
            }
            Rows::Fields(rows) => {
                sqlx::query(
                    "INSERT INTO fields (id, site_id, key, name, created_at)
                     SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[],
                                          $5::bigint[])",
                )
                .bind(column(rows, |r| r.id))
                .bind(column(rows, |r| r.site_id))
                .bind(column(rows, |r| r.key.as_str()))
                .bind(column(rows, |r| r.name.as_str()))
                .bind(column(rows, |r| r.created_at))
                .execute(tx)
                .await?;
            }
            Rows::Events(rows) => {
                sqlx::query(
                    "INSERT INTO events (id, site_id, subscriber_id, type, occurred_at, details,
                                         unique_key, amount, currency, received_at)
                     SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::text[],
                                          $5::bigint[], $6::text[], $7::text[],
                                          $8::double precision[], $9::text[], $10::bigint[])",
                )
                .bind(column(rows, |r| r.id))
                .bind(column(rows, |r| r.site_id))
                .bind(column(rows, |r| r.subscriber_id))
                .bind(column(rows, |r| r.kind.as_str()))
                .bind(column(rows, |r| r.occurred_at))
                .bind(column(rows, |r| r.details.as_str()))
                .bind(column(rows, |r| r.unique_key.as_deref()))
                .bind(column(rows, |r| r.amount))
                .bind(column(rows, |r| r.currency.as_deref()))
                .bind(column(rows, |r| r.received_at))
                .execute(tx)
                .await?;
            }
            Rows::Webhooks(rows) => {
                sqlx::query(
                    "INSERT INTO webhooks (id, site_id, url, segment_ids, events, secret,
                                           created_at, updated_at, disabled_at, failing_since,
                                           leased_until)
                     SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[],
                                          $5::text[], $6::text[], $7::bigint[], $8::bigint[],
                                          $9::bigint[], $10::bigint[], $11::bigint[])",
                )
                .bind(column(rows, |r| r.id))
                .bind(column(rows, |r| r.site_id))
                .bind(column(rows, |r| r.url.as_str()))
                .bind(column(rows, |r| r.segment_ids.as_str()))
                .bind(column(rows, |r| r.events.as_str()))
                .bind(column(rows, |r| r.secret.as_str()))
                .bind(column(rows, |r| r.created_at))
                .bind(column(rows, |r| r.updated_at))
                .bind(column(rows, |r| r.disabled_at))
                .bind(column(rows, |r| r.failing_since))
                .bind(column(rows, |r| r.leased_until))
                .execute(tx)
                .await?;
            }
            Rows::SegmentWatches(rows) => {
                sqlx::query(
                    "INSERT INTO segment_watches (site_id, segment_id, seq, checked_at, version,
                                                  kept, after_at, after_id)
                     SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[],
                                          $5::bigint[], $6::boolean[], $7::bigint[], $8::bigint[])",
                )
                .bind(column(rows, |r| r.site_id))
                .bind(column(rows, |r| r.segment_id))
                .bind(column(rows, |r| r.seq))
                .bind(column(rows, |r| r.checked_at))
                .bind(column(rows, |r| r.version))
                .bind(column(rows, |r| r.kept))
                .bind(column(rows, |r| r.after_at))
                .bind(column(rows, |r| r.after_id))
                .execute(tx)
                .await?;
            }
            Rows::SegmentMembers(rows) => {
                sqlx::query(
                    "INSERT INTO segment_members (site_id, segment_id, subscriber_id)
                     SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[])",
                )
                .bind(column(rows, |r| r.site_id))
                .bind(column(rows, |r| r.segment_id))
                .bind(column(rows, |r| r.subscriber_id))
                .execute(tx)
                .await?;
            }
            Rows::WebhookDeliveries(rows) => {
                sqlx::query(
                    "INSERT INTO webhook_deliveries (id, site_id, webhook_id, event_id,
                                                     notification, created_at, attempts,
                                                     next_attempt_at, last_status, last_error,
                                                     delivered_at)
                     SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::text[],
                                          $5::text[], $6::bigint[], $7::bigint[], $8::bigint[],
                                          $9::bigint[], $10::text[], $11::bigint[])",
                )
                .bind(column(rows, |r| r.id))
                .bind(column(rows, |r| r.site_id))
                .bind(column(rows, |r| r.webhook_id))
                .bind(column(rows, |r| r.event_id.as_str()))
                .bind(column(rows, |r| r.notification.as_str()))
                .bind(column(rows, |r| r.created_at))
                .bind(column(rows, |r| r.attempts))
                .bind(column(rows, |r| r.next_attempt_at))
                .bind(column(rows, |r| r.last_status))
                .bind(column(rows, |r| r.last_error.as_deref()))
                .bind(column(rows, |r| r.delivered_at))
                .execute(tx)
                .await?;
            }
            Rows::SegmentVersions(rows) => {
                sqlx::query(
                    "INSERT INTO segment_versions (site_id, segment_id, version, name,
                                                   description, query, saved_at, saved_by)
                     SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::text[],
                                          $5::text[], $6::text[], $7::bigint[], $8::text[])",
                )
                .bind(column(rows, |r| r.site_id))
                .bind(column(rows, |r| r.segment_id))
                .bind(column(rows, |r| r.version))
                .bind(column(rows, |r| r.name.as_str()))
                .bind(column(rows, |r| r.description.as_deref()))
                .bind(column(rows, |r| r.query.as_str()))
                .bind(column(rows, |r| r.saved_at))
                .bind(column(rows, |r| r.saved_by.as_deref()))
                .execute(tx)
                .await?;
            }
            Rows::SegmentManual(rows) => {
                sqlx::query(
                    "INSERT INTO segment_manual (site_id, segment_id, excluded, subscriber_id,
                                                 added_at)
                     SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::boolean[], $4::bigint[],
                                          $5::bigint[])",
                )
                .bind(column(rows, |r| r.site_id))
                .bind(column(rows, |r| r.segment_id))
                .bind(column(rows, |r| r.excluded))
                .bind(column(rows, |r| r.subscriber_id))
                .bind(column(rows, |r| r.added_at))
                .execute(tx)
                .await?;
            }
            Rows::AuditLog(rows) => {
                sqlx::query(
                    "INSERT INTO audit_log (id, site_id, at, actor, action, subject, details)
                     SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::text[],
                                          $5::text[], $6::text[], $7::text[])",
                )
                .bind(column(rows, |r| r.id))
                .bind(column(rows, |r| r.site_id))
                .bind(column(rows, |r| r.at))
                .bind(column(rows, |r| r.actor.as_str()))
                .bind(column(rows, |r| r.action.as_str()))
                .bind(column(rows, |r| r.subject.as_str()))
                .bind(column(rows, |r| r.details.as_str()))
                .execute(tx)
                .await?;
            }
            Rows::SegmentJournals(rows) => {
                sqlx::query(
                    "INSERT INTO segment_journals (site_id, segment_id, version, kept, begins_at,
                                                   members)
                     SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[],
                                          $4::boolean[], $5::bigint[], $6::bigint[])",
                )
                .bind(column(rows, |r| r.site_id))
                .bind(column(rows, |r| r.segment_id))
                .bind(column(rows, |r| r.version))
                .bind(column(rows, |r| r.kept))
                .bind(column(rows, |r| r.begins_at))
                .bind(column(rows, |r| r.members))
                .execute(tx)
                .await?;
            }
            Rows::JournalSites(rows) => {
                sqlx::query(
                    "INSERT INTO journal_sites (site_id, last_at, swept_at, baselines)
                     SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[])",
                )
                .bind(column(rows, |r| r.site_id))
                .bind(column(rows, |r| r.last_at))
                .bind(column(rows, |r| r.swept_at))
                .bind(column(rows, |r| r.baselines))
                .execute(tx)
                .await?;
            }
            Rows::JournalDays(rows) => {
                sqlx::query(
                    "INSERT INTO journal_days (site_id, segment_id, day, added, removed)
                     SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[],
                                          $5::bigint[])",
                )
                .bind(column(rows, |r| r.site_id))
                .bind(column(rows, |r| r.segment_id))
                .bind(column(rows, |r| r.day))
                .bind(column(rows, |r| r.added))
                .bind(column(rows, |r| r.removed))
                .execute(tx)
                .await?;
            }
            Rows::JournalMembers(rows) => {
                sqlx::query(
                    "INSERT INTO journal_members (site_id, subscriber_id, segments)
                     SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::text[])",
                )
                .bind(column(rows, |r| r.site_id))
                .bind(column(rows, |r| r.subscriber_id))
                .bind(column(rows, |r| r.segments.as_str()))
                .execute(tx)
                .await?;
            }
            Rows::SegmentTransitions(rows) => {
                sqlx::query(
                    "INSERT INTO segment_transitions (id, site_id, segment_id, subscriber_id, at,
                                                      added, reason)
                     SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[],
                                          $5::bigint[], $6::boolean[], $7::smallint[])",
                )
                .bind(column(rows, |r| r.id))
                .bind(column(rows, |r| r.site_id))
                .bind(column(rows, |r| r.segment_id))
                .bind(column(rows, |r| r.subscriber_id))
                .bind(column(rows, |r| r.at))
                .bind(column(rows, |r| r.added))
                .bind(column(rows, |r| r.reason))
                .execute(tx)
                .await?;
            }
            Rows::ChangeHeads(rows) => {
                sqlx::query(
                    "INSERT INTO change_heads (site_id, seq, segments_seq, keys_seq)
                     SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[])",
                )
                .bind(column(rows, |r| r.site_id))
                .bind(column(rows, |r| r.seq))
                .bind(column(rows, |r| r.segments_seq))
                .bind(column(rows, |r| r.keys_seq))
                .execute(tx)
                .await?;
            }
        }
        Ok(())
    }

    async fn finish(self: Box<Self>, handed_out: &[(Table, i64)]) -> Result<()> {
        let mut tx = self.tx;
        // Each identity where the source's stood: past the highest id
        // written to its table and the highest the source handed out (after
        // a `clear`, the target's own may have been higher). `setval` with
        // `is_called` true, so that `pg_sequence_last_value` reads it back
        // when this database is copied in turn.
        for table in Table::ALL.into_iter().filter(|t| t.has_ids()) {
            let high = self
                .highs
                .iter()
                .chain(handed_out)
                .filter(|(t, _)| *t == table)
                .map(|(_, high)| *high)
                .max()
                .unwrap_or(0);
            let query = if high > 0 {
                sqlx::query("SELECT setval(pg_get_serial_sequence($1, 'id'), $2, true)")
                    .bind(table.name())
                    .bind(high)
            } else {
                // As new: the first id handed out is 1.
                sqlx::query("SELECT setval(pg_get_serial_sequence($1, 'id'), 1, false)")
                    .bind(table.name())
            };
            query.execute(&mut *tx).await?;
        }
        sqlx::query(
            "UPDATE meta SET value = md5(random()::text || clock_timestamp()::text)
             WHERE key = 'database_id'",
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
