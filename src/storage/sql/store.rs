//! The storage traits, implemented once for every [`Backend`]: what a
//! database does its own way is asked of the backend, everything else runs
//! the shared statements of this folder on a connection the backend hands
//! out (a read) or a transaction it begins (a write).

use super::journal::Occasion;
use super::{
    Conn, audience, audit, checkpoints, imports, journal, log, manual, segments, sites, versions,
    webhooks,
};
use crate::credentials::KeyPair;
use crate::segment::manual::{ManualEdit, ManualEntry, ManualList};
use crate::segment::{Listing, NewSegment, Segment, SegmentId, SegmentPatch};
use crate::storage::audit::{Actor, AuditAction, AuditEntry, AuditQuery, SegmentVersion, details};
use crate::storage::changes::{Changes, Loaded};
use crate::storage::imports::{ImportMark, ImportProgress};
use crate::storage::journal::{
    DayCounts, Evaluator, Journal, JournalInfo, JournalStore, MemberChange, NamedChange,
};
use crate::storage::progress::ReadProgress;
use crate::storage::webhooks::{
    Attempt, Delivery, NewWebhook, Transition, Watch, Webhook, WebhookPatch, WebhookStore,
};
use crate::storage::{
    ApiKey, AudienceStore, ChangeFeed, KeyCredentials, Page, Position, Precondition, Result,
    Signal, Site, SiteHead, Store, StoredEvent, Transfer,
};
use async_trait::async_trait;
use corral_core::audience::{
    AudienceCounts, Email, Field, FieldKey, Limits, Outcome, Subscriber, SubscriberChange, Tag,
    TagName,
};
use corral_core::columns::Val;
use corral_core::query::ast::DetailPath;
use futures_util::future::BoxFuture;
use std::ops::DerefMut;

/// An open write transaction: its statements run on the connection it
/// derefs to, and nothing of them is kept unless it commits.
pub trait Write<C>: DerefMut<Target = C> + Send {
    fn commit(self) -> BoxFuture<'static, Result<()>>;
}

impl<DB: sqlx::Database> Write<DB::Connection> for sqlx::Transaction<'static, DB> {
    fn commit(self) -> BoxFuture<'static, Result<()>> {
        Box::pin(async move { Ok(sqlx::Transaction::commit(self).await?) })
    }
}

/// How a database reads a site's audience for the live snapshots: each
/// database has its own fastest way (JSON chunks on SQLite, pages in one
/// snapshot transaction on PostgreSQL).
#[async_trait]
pub trait Snapshots {
    /// The site's whole audience (see [`ChangeFeed::load_snapshot`]).
    async fn read_snapshot(&self, site_id: i64, progress: &ReadProgress) -> Result<Loaded>;

    /// The changes since a position (see [`ChangeFeed::read_changes`]).
    async fn read_changes_since(
        &self,
        site_id: i64,
        since: Position,
        columns: &[(String, DetailPath)],
        with_segments: bool,
        progress: &ReadProgress,
    ) -> Result<Changes>;

    /// A column of event details (see [`ChangeFeed::load_details`]).
    async fn read_detail_column(
        &self,
        site_id: i64,
        kind: &str,
        path: &DetailPath,
        progress: &ReadProgress,
    ) -> Result<Vec<Val>>;
}

/// What a database does its own way. Everything else of
/// [`Store`](crate::storage::Store) comes from the statements every backend
/// shares.
#[async_trait]
pub trait Backend: Snapshots + Transfer + Send + Sync + 'static {
    /// The database's connection.
    type Conn: Conn;
    /// A connection to read on, lent by a pool.
    type Read: DerefMut<Target = Self::Conn> + Send;
    /// A write transaction.
    type Write: Write<Self::Conn>;

    /// A connection to read on.
    async fn reader(&self) -> Result<Self::Read>;

    /// A write transaction: of `site_id`'s data when given (its writes are
    /// serialised the backend's way from here to commit), else of data of
    /// no one site (webhooks' deliveries, the change log's trimming).
    async fn writer(&self, site_id: Option<i64>) -> Result<Self::Write>;

    /// The caps every audience write is held to.
    fn limits(&self) -> &Limits;

    /// The membership journal's state.
    fn journal(&self) -> &Journal;

    /// Closes the database once nothing will be written any more.
    async fn close_database(&self);

    /// A token that changes whenever anything may have been committed, or
    /// `None` when the backend has none.
    fn commit_signal(&self) -> Option<Signal>;

    /// Applies audience changes (see [`AudienceStore::apply_changes`]);
    /// with `mark`, records in the same transaction how far the import they
    /// come from got.
    async fn write_audience(
        &self,
        site_id: i64,
        changes: Vec<SubscriberChange>,
        now: i64,
        mark: Option<ImportMark>,
    ) -> Result<Vec<Outcome>>;
}

/// Runs `$work` (statements on the transaction `$tx`) in a write
/// transaction of the backend, and commits it; evaluates to what the work
/// gave (an error returns from the caller, rolling everything back).
macro_rules! written {
    ($backend:expr, $site:expr, |$tx:ident| $work:expr) => {{
        let mut write = $backend.writer($site).await?;
        let value = {
            let $tx = &mut *write;
            $work.await?
        };
        $crate::crash_point!("write.before_commit");
        write.commit().await?;
        $crate::crash_point!("write.after_commit");
        value
    }};
}

#[async_trait]
impl<B: Backend> Store for B {
    async fn ping(&self) -> Result<()> {
        let mut conn = self.reader().await?;
        conn.execute(crate::sql!("SELECT 1")).await?;
        Ok(())
    }

    async fn close(&self) {
        self.close_database().await;
    }

    async fn create_site(
        &self,
        name: &str,
        uuid: &str,
        keys: &KeyPair,
        demo: bool,
        now: i64,
    ) -> Result<Site> {
        // Sites are made on the command line (`site create`, `serve
        // --demo`): their first key pair is added by it.
        Ok(written!(self, None, |tx| async move {
            let site = sites::create(tx, name, uuid, keys, demo, now).await?;
            key_audit(tx, site.id, now, &Actor::Cli, AuditAction::KeyAdded, keys).await?;
            Ok::<_, crate::storage::StorageError>(site)
        }))
    }

    async fn list_sites(&self) -> Result<Vec<Site>> {
        sites::list(&mut *self.reader().await?).await
    }

    async fn find_site(&self, uuid: &str) -> Result<Option<Site>> {
        sites::find(&mut *self.reader().await?, uuid).await
    }

    async fn find_demo_site(&self) -> Result<Option<Site>> {
        sites::find_demo(&mut *self.reader().await?).await
    }

    async fn site_by_id(&self, site_id: i64) -> Result<Option<Site>> {
        sites::find_by_id(&mut *self.reader().await?, site_id).await
    }

    async fn add_key(&self, site_id: i64, keys: &KeyPair, now: i64, by: &Actor) -> Result<ApiKey> {
        Ok(written!(self, Some(site_id), |tx| async move {
            let key = sites::add_key(tx, site_id, keys, now).await?;
            key_audit(tx, site_id, now, by, AuditAction::KeyAdded, keys).await?;
            Ok::<_, crate::storage::StorageError>(key)
        }))
    }

    async fn list_keys(&self, site_id: i64) -> Result<Vec<ApiKey>> {
        sites::list_keys(&mut *self.reader().await?, site_id).await
    }

    async fn revoke_key(&self, publishable_key: &str, now: i64, by: &Actor) -> Result<ApiKey> {
        let site_id = sites::site_of_key(&mut *self.reader().await?, publishable_key)
            .await?
            .ok_or(crate::storage::StorageError::NotFound)?;
        Ok(written!(self, Some(site_id), |tx| async move {
            let revoked = audit::key_revoked(tx, publishable_key).await?;
            let key = sites::revoke_key(tx, publishable_key, now).await?;
            if revoked == Some(false) {
                let details = details::key(publishable_key);
                let action = AuditAction::KeyRevoked;
                audit::record(tx, key.site_id, now, by, action, publishable_key, &details).await?;
            }
            Ok::<_, crate::storage::StorageError>(key)
        }))
    }

    async fn credentials(&self, publishable_key: &str) -> Result<Option<KeyCredentials>> {
        sites::credentials(&mut *self.reader().await?, publishable_key).await
    }

    async fn list_segments(&self, site_id: i64, listing: Listing) -> Result<Vec<Segment>> {
        segments::list(&mut *self.reader().await?, site_id, listing).await
    }

    async fn get_segment(&self, site_id: i64, id: SegmentId) -> Result<Option<Segment>> {
        segments::get(&mut *self.reader().await?, site_id, id).await
    }

    async fn create_segment(
        &self,
        site_id: i64,
        new: &NewSegment,
        now: i64,
        by: &Actor,
    ) -> Result<Segment> {
        Ok(written!(self, Some(site_id), |tx| async {
            let segment = segments::create(&mut *tx, site_id, new, now, by).await?;
            journal::reconcile(tx, self.journal(), site_id, now, Occasion::SegmentWrite).await?;
            Ok::<_, crate::storage::StorageError>(segment)
        }))
    }

    async fn update_segment(
        &self,
        site_id: i64,
        id: SegmentId,
        patch: &SegmentPatch,
        precondition: &Precondition,
        now: i64,
        by: &Actor,
    ) -> Result<Segment> {
        Ok(written!(self, Some(site_id), |tx| async {
            let segment =
                segments::update(&mut *tx, site_id, id, patch, precondition, now, by).await?;
            journal::reconcile(tx, self.journal(), site_id, now, Occasion::SegmentWrite).await?;
            Ok::<_, crate::storage::StorageError>(segment)
        }))
    }

    async fn discard_segment(
        &self,
        site_id: i64,
        id: SegmentId,
        precondition: &Precondition,
        now: i64,
        by: &Actor,
    ) -> Result<Segment> {
        Ok(written!(self, Some(site_id), |tx| async {
            let segment = segments::move_to(
                &mut *tx,
                site_id,
                id,
                precondition,
                now,
                Listing::Discarded,
                by,
            )
            .await?;
            journal::reconcile(tx, self.journal(), site_id, now, Occasion::SegmentWrite).await?;
            Ok::<_, crate::storage::StorageError>(segment)
        }))
    }

    async fn restore_segment(
        &self,
        site_id: i64,
        id: SegmentId,
        precondition: &Precondition,
        now: i64,
        by: &Actor,
    ) -> Result<Segment> {
        Ok(written!(self, Some(site_id), |tx| async {
            let segment =
                segments::move_to(&mut *tx, site_id, id, precondition, now, Listing::Kept, by)
                    .await?;
            journal::reconcile(tx, self.journal(), site_id, now, Occasion::SegmentWrite).await?;
            Ok::<_, crate::storage::StorageError>(segment)
        }))
    }

    async fn restore_segment_version(
        &self,
        site_id: i64,
        id: SegmentId,
        version: i64,
        precondition: &Precondition,
        now: i64,
        by: &Actor,
    ) -> Result<Segment> {
        Ok(written!(self, Some(site_id), |tx| async {
            let segment =
                segments::restore_version(&mut *tx, site_id, id, version, precondition, now, by)
                    .await?;
            journal::reconcile(tx, self.journal(), site_id, now, Occasion::SegmentWrite).await?;
            Ok::<_, crate::storage::StorageError>(segment)
        }))
    }

    async fn segment_versions(&self, site_id: i64, id: SegmentId) -> Result<Vec<SegmentVersion>> {
        versions::list(&mut *self.reader().await?, site_id, id).await
    }

    async fn audit_log(&self, site_id: i64, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        audit::list(&mut *self.reader().await?, site_id, query).await
    }

    async fn edit_manual(
        &self,
        site_id: i64,
        id: SegmentId,
        list: ManualList,
        emails: &[Email],
        add: bool,
        now: i64,
        by: &Actor,
    ) -> Result<ManualEdit> {
        Ok(written!(self, Some(site_id), |tx| manual::edit(
            tx,
            self.journal(),
            site_id,
            id,
            list,
            emails,
            add,
            now,
            by
        )))
    }

    async fn count_manual(&self, site_id: i64, id: SegmentId, list: ManualList) -> Result<i64> {
        manual::count(&mut *self.reader().await?, site_id, id, list).await
    }

    async fn list_manual(
        &self,
        site_id: i64,
        id: SegmentId,
        list: ManualList,
        after: i64,
        limit: usize,
    ) -> Result<Vec<ManualEntry>> {
        manual::list(&mut *self.reader().await?, site_id, id, list, after, limit).await
    }
}

/// Records a key pair added or revoked in the site's audit log.
async fn key_audit(
    tx: &mut impl Conn,
    site_id: i64,
    now: i64,
    by: &Actor,
    action: AuditAction,
    keys: &KeyPair,
) -> Result<()> {
    let key = keys.publishable_key.as_str();
    audit::record(tx, site_id, now, by, action, key, &details::key(key)).await
}

#[async_trait]
impl<B: Backend> ChangeFeed for B {
    fn change_signal(&self) -> Option<Signal> {
        self.commit_signal()
    }

    async fn site_head(&self, site_id: i64) -> Result<SiteHead> {
        log::head(&mut *self.reader().await?, site_id).await
    }

    async fn load_snapshot(&self, site_id: i64, progress: &ReadProgress) -> Result<Loaded> {
        self.read_snapshot(site_id, progress).await
    }

    async fn read_changes(
        &self,
        site_id: i64,
        since: Position,
        columns: &[(String, DetailPath)],
        with_segments: bool,
        progress: &ReadProgress,
    ) -> Result<Changes> {
        self.read_changes_since(site_id, since, columns, with_segments, progress)
            .await
    }

    async fn load_details(
        &self,
        site_id: i64,
        kind: &str,
        path: &DetailPath,
        progress: &ReadProgress,
    ) -> Result<Vec<Val>> {
        self.read_detail_column(site_id, kind, path, progress).await
    }

    async fn log_entry(&self, site_id: i64, seq: i64) -> Result<Option<(i64, String)>> {
        log::entry(&mut *self.reader().await?, site_id, seq).await
    }

    async fn trim_log(&self, before: i64) -> Result<u64> {
        let mut deleted = 0;
        loop {
            let done = written!(self, None, |tx| log::trim_some(tx, before));
            deleted += done;
            if done < log::TRIM_PER_TRANSACTION as u64 {
                return Ok(deleted);
            }
        }
    }

    async fn database_id(&self) -> Result<String> {
        log::database_id(&mut *self.reader().await?).await
    }
}

#[async_trait]
impl<B: Backend> AudienceStore for B {
    async fn subscriber_by_email(&self, site_id: i64, email: &Email) -> Result<Option<Subscriber>> {
        audience::subscriber_by_email(&mut *self.reader().await?, site_id, email).await
    }

    async fn subscriber_by_uuid(&self, site_id: i64, uuid: &str) -> Result<Option<Subscriber>> {
        audience::subscriber_by_uuid(&mut *self.reader().await?, site_id, uuid).await
    }

    async fn apply_changes(
        &self,
        site_id: i64,
        changes: Vec<SubscriberChange>,
        now: i64,
    ) -> Result<Vec<Outcome>> {
        self.write_audience(site_id, changes, now, None).await
    }

    async fn apply_import_batch(
        &self,
        site_id: i64,
        changes: Vec<SubscriberChange>,
        now: i64,
        mark: ImportMark,
    ) -> Result<Vec<Outcome>> {
        self.write_audience(site_id, changes, now, Some(mark)).await
    }

    async fn import_progress(&self, site_id: i64, key: &str) -> Result<Option<ImportProgress>> {
        imports::progress(&mut *self.reader().await?, site_id, key).await
    }

    async fn forget_import(&self, site_id: i64, key: &str) -> Result<()> {
        written!(self, Some(site_id), |tx| imports::forget(tx, site_id, key));
        Ok(())
    }

    async fn finish_import(&self, site_id: i64, key: &str, kind: &str, now: i64) -> Result<()> {
        written!(self, Some(site_id), |tx| imports::finish(
            tx, site_id, key, kind, now
        ));
        Ok(())
    }

    async fn list_tags(
        &self,
        site_id: i64,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<Tag>> {
        audience::list_tags(&mut *self.reader().await?, site_id, after, limit).await
    }

    async fn create_tag(&self, site_id: i64, name: &TagName, now: i64) -> Result<Tag> {
        Ok(written!(self, Some(site_id), |tx| audience::create_tag(
            tx,
            site_id,
            name,
            now,
            self.limits()
        )))
    }

    async fn delete_tag(
        &self,
        site_id: i64,
        id: i64,
        name: Option<&TagName>,
        now: i64,
    ) -> Result<(Tag, usize)> {
        Ok(written!(self, Some(site_id), |tx| audience::delete_tag(
            tx,
            self.journal(),
            site_id,
            id,
            name,
            now
        )))
    }

    async fn list_fields(
        &self,
        site_id: i64,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<Field>> {
        audience::list_fields(&mut *self.reader().await?, site_id, after, limit).await
    }

    async fn create_field(
        &self,
        site_id: i64,
        key: &FieldKey,
        name: &str,
        now: i64,
    ) -> Result<Field> {
        Ok(written!(self, Some(site_id), |tx| audience::create_field(
            tx,
            site_id,
            key,
            name,
            now,
            self.limits()
        )))
    }

    async fn site_counts(&self, site_id: i64) -> Result<AudienceCounts> {
        audience::site_counts(&mut *self.reader().await?, site_id).await
    }

    async fn subscribers_by_ids(&self, site_id: i64, ids: &[i64]) -> Result<Vec<Subscriber>> {
        audience::subscribers_by_ids(&mut *self.reader().await?, site_id, ids).await
    }

    async fn recent_events(
        &self,
        site_id: i64,
        subscriber_id: i64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>> {
        audience::recent_events(&mut *self.reader().await?, site_id, subscriber_id, limit).await
    }

    async fn search_subscribers(
        &self,
        site_id: i64,
        text: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<Subscriber>> {
        audience::search_subscribers(&mut *self.reader().await?, site_id, text, after, limit).await
    }
}

#[async_trait]
impl<B: Backend> WebhookStore for B {
    async fn create_webhook(
        &self,
        site_id: i64,
        new: &NewWebhook,
        now: i64,
        by: &Actor,
    ) -> Result<Webhook> {
        Ok(written!(self, Some(site_id), |tx| async move {
            // The watched segments' journals begin now if they had not.
            journal::reconcile(
                &mut *tx,
                self.journal(),
                site_id,
                now,
                Occasion::SegmentWrite,
            )
            .await?;
            let webhook = webhooks::create(tx, site_id, new, now).await?;
            let details = details::webhook(&webhook);
            let (action, subject) = (AuditAction::WebhookCreated, webhook.id.to_string());
            audit::record(tx, site_id, now, by, action, &subject, &details).await?;
            Ok::<_, crate::storage::StorageError>(webhook)
        }))
    }

    async fn list_webhooks(&self, site_id: i64) -> Result<Vec<Webhook>> {
        webhooks::list(&mut *self.reader().await?, site_id).await
    }

    async fn get_webhook(&self, site_id: i64, id: i64) -> Result<Option<Webhook>> {
        webhooks::get(&mut *self.reader().await?, site_id, id).await
    }

    async fn update_webhook(
        &self,
        site_id: i64,
        id: i64,
        patch: &WebhookPatch,
        now: i64,
        by: &Actor,
    ) -> Result<Webhook> {
        Ok(written!(self, Some(site_id), |tx| async move {
            let before = webhooks::get(&mut *tx, site_id, id)
                .await?
                .ok_or(crate::storage::StorageError::NotFound)?;
            journal::reconcile(
                &mut *tx,
                self.journal(),
                site_id,
                now,
                Occasion::SegmentWrite,
            )
            .await?;
            let after = webhooks::update(tx, site_id, id, patch, now).await?;
            let details = details::webhook_changed(&before, &after);
            let action = AuditAction::WebhookUpdated;
            audit::record(tx, site_id, now, by, action, &id.to_string(), &details).await?;
            Ok::<_, crate::storage::StorageError>(after)
        }))
    }

    async fn delete_webhook(&self, site_id: i64, id: i64, now: i64, by: &Actor) -> Result<Webhook> {
        Ok(written!(self, Some(site_id), |tx| async move {
            let webhook = webhooks::delete(tx, site_id, id).await?;
            let details = details::webhook(&webhook);
            let action = AuditAction::WebhookDeleted;
            audit::record(tx, site_id, now, by, action, &id.to_string(), &details).await?;
            Ok::<_, crate::storage::StorageError>(webhook)
        }))
    }

    async fn watches(&self) -> Result<Vec<(i64, Watch)>> {
        webhooks::watches(&mut *self.reader().await?).await
    }

    async fn commit_transition(&self, site_id: i64, transition: &Transition) -> Result<bool> {
        Ok(written!(self, None, |tx| webhooks::commit_transition(
            tx, site_id, transition
        )))
    }

    async fn due_webhooks(&self, now: i64) -> Result<Vec<(i64, i64)>> {
        webhooks::due(&mut *self.reader().await?, now).await
    }

    async fn lease_webhook(&self, site_id: i64, id: i64, now: i64, until: i64) -> Result<bool> {
        Ok(written!(self, None, |tx| webhooks::lease(
            tx, site_id, id, now, until
        )))
    }

    async fn pending_deliveries(
        &self,
        site_id: i64,
        webhook_id: i64,
        limit: usize,
    ) -> Result<Vec<Delivery>> {
        webhooks::pending(&mut *self.reader().await?, site_id, webhook_id, limit).await
    }

    async fn record_attempt(
        &self,
        site_id: i64,
        webhook_id: i64,
        ids: &[i64],
        attempt: &Attempt,
    ) -> Result<()> {
        written!(self, None, |tx| webhooks::record_attempt(
            tx, site_id, webhook_id, ids, attempt
        ));
        Ok(())
    }

    async fn recent_deliveries(
        &self,
        site_id: i64,
        webhook_id: i64,
        limit: usize,
    ) -> Result<Vec<Delivery>> {
        webhooks::recent(&mut *self.reader().await?, site_id, webhook_id, limit).await
    }

    async fn retry_delivery(
        &self,
        site_id: i64,
        webhook_id: i64,
        delivery_id: i64,
        now: i64,
    ) -> Result<Delivery> {
        Ok(written!(self, None, |tx| webhooks::retry(
            tx,
            site_id,
            webhook_id,
            delivery_id,
            now
        )))
    }
}

#[async_trait]
impl<B: Backend> JournalStore for B {
    fn set_evaluator(&self, evaluator: std::sync::Weak<dyn Evaluator>) {
        self.journal().set_evaluator(evaluator);
    }

    async fn journal_sites(&self) -> Result<Vec<i64>> {
        journal::sites(&mut *self.reader().await?).await
    }

    async fn journal_due(&self, site_id: i64, now: i64, every: i64) -> Result<bool> {
        let mut conn = self.reader().await?;
        journal::due(&mut *conn, self.journal(), site_id, now, every).await
    }

    async fn sweep_journal(&self, site_id: i64, now: i64, every: i64) -> Result<Option<Vec<i64>>> {
        if self.journal().evaluator().is_none() {
            return Ok(None);
        }
        Ok(written!(self, Some(site_id), |tx| async {
            // Under the turn: another server may have swept meanwhile.
            let occasion = journal::sweep_occasion(&mut *tx, site_id, now, every).await?;
            let journal = self.journal();
            if !journal::reconcile(&mut *tx, journal, site_id, now, Occasion::SegmentWrite).await? {
                return Ok(None);
            }
            if occasion != Occasion::Sweep {
                return Ok(Some(Vec::new()));
            }
            // Claimed here, so that other servers leave these windows to
            // this one (a crash before they are recorded leaves them to the
            // next minute's sweep).
            journal::mark_swept(&mut *tx, site_id, now).await?;
            Ok::<_, crate::storage::StorageError>(Some(
                journal::windows(&mut *tx, journal, site_id).await?,
            ))
        }))
    }

    async fn sweep_window(&self, site_id: i64, segment_id: i64, now: i64) -> Result<()> {
        written!(self, Some(site_id), |tx| async {
            let window = Occasion::Window(segment_id);
            journal::reconcile(tx, self.journal(), site_id, now, window).await?;
            Ok::<_, crate::storage::StorageError>(())
        });
        Ok(())
    }

    async fn journal_info(&self, site_id: i64, segment_id: i64) -> Result<Option<JournalInfo>> {
        journal::info(&mut *self.reader().await?, site_id, segment_id).await
    }

    async fn journal_changes(
        &self,
        site_id: i64,
        segment_id: i64,
        after: (i64, i64),
        limit: usize,
    ) -> Result<Vec<NamedChange>> {
        journal::changes(
            &mut *self.reader().await?,
            site_id,
            segment_id,
            after,
            limit,
        )
        .await
    }

    async fn journal_net_after(&self, site_id: i64, segment_id: i64, at: i64) -> Result<i64> {
        journal::net_after(&mut *self.reader().await?, site_id, segment_id, at).await
    }

    async fn journal_days(
        &self,
        site_id: i64,
        segment_id: i64,
        from: i64,
        until: i64,
    ) -> Result<Vec<DayCounts>> {
        journal::days(&mut *self.reader().await?, site_id, segment_id, from, until).await
    }

    async fn journal_buckets(
        &self,
        site_id: i64,
        segment_id: i64,
        from: i64,
        until: i64,
        width: i64,
    ) -> Result<Vec<(i64, i64, i64)>> {
        journal::buckets(
            &mut *self.reader().await?,
            site_id,
            segment_id,
            from,
            until,
            width,
        )
        .await
    }

    async fn journal_members_at(
        &self,
        site_id: i64,
        segment_id: i64,
        at: i64,
    ) -> Result<std::sync::Arc<Vec<i64>>> {
        let mut conn = self.reader().await?;
        checkpoints::members_at(&mut *conn, self.journal(), site_id, segment_id, at).await
    }

    async fn subscriber_transitions(
        &self,
        site_id: i64,
        subscriber_id: i64,
        limit: usize,
    ) -> Result<Vec<MemberChange>> {
        journal::of_subscriber(&mut *self.reader().await?, site_id, subscriber_id, limit).await
    }

    #[cfg(test)]
    fn break_journal(&self) {
        self.journal()
            .broken
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    async fn checkpoint_journal(&self, site_id: i64) -> Result<usize> {
        let planned = {
            let mut conn = self.reader().await?;
            checkpoints::plan(&mut *conn, self.journal(), site_id).await?
        };
        if planned.is_empty() {
            return Ok(0);
        }
        Ok(written!(self, None, |tx| checkpoints::write(
            tx, site_id, &planned
        )))
    }

    #[cfg(test)]
    fn break_checkpoints(&self) {
        self.journal()
            .broken_checkpoints
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    #[cfg(test)]
    fn space_checkpoints(&self, least: usize) {
        self.journal()
            .checkpoint_least
            .store(least, std::sync::atomic::Ordering::Relaxed);
    }

    async fn trim_journal(&self, before: i64) -> Result<u64> {
        // Histories begin at their cut first (`before`, or where a webhook's
        // watch has read to); then the transitions before it go a batch a
        // transaction, so that writes never wait long behind a trim.
        let segments = written!(self, None, |tx| journal::trim_begin(tx, before));
        let mut deleted = 0;
        for (site_id, segment_id, cut) in segments {
            loop {
                let done = written!(self, None, |tx| journal::trim_some(
                    tx, site_id, segment_id, cut
                ));
                deleted += done;
                if done < journal::TRIM_PER_TRANSACTION as u64 {
                    break;
                }
            }
        }
        Ok(deleted)
    }
}
