//! The change log on SQLite, beyond what [`crate::storage::sql::log`]
//! writes for every backend: SQLite has one writer at a time (`BEGIN
//! IMMEDIATE`), so positions are in commit order whatever the order of
//! statements inside a transaction, and the range of event ids a
//! transaction stored is read off the events' own counter ([`events_high`]).

use crate::storage::Result;
use sqlx::SqliteConnection;

/// The highest event id handed out so far (0 before any): events stored
/// after this call get higher ids (`AUTOINCREMENT` never reuses one).
pub(super) async fn events_high(conn: &mut SqliteConnection) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)",
    )
    .fetch_one(&mut *conn)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::super::SqliteStore;
    use crate::credentials::KeyPair;
    use crate::storage::actor::Actor;
    use crate::storage::progress::ReadProgress;
    use crate::storage::{AudienceStore, ChangeFeed, Position, StorageError, Store};
    use corral_core::audience::limits::MAX_FIELDS_PER_SUBSCRIBER;
    use corral_core::audience::{Email, FieldKey, Outcome, SubscriberChange};

    async fn store() -> (tempfile::TempDir, SqliteStore, i64) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("log.db").to_str().unwrap())
            .await
            .unwrap();
        let site = store
            .create_site("s", "s", &KeyPair::generate(), false, 0)
            .await
            .unwrap()
            .id;
        (dir, store, site)
    }

    fn touch(email: &str) -> Vec<SubscriberChange> {
        vec![SubscriberChange::touch(Email::parse(email).unwrap())]
    }

    #[tokio::test]
    async fn each_write_is_one_entry_at_the_next_position() {
        let (_dir, store, site) = store().await;
        assert_eq!(store.site_head(site).await.unwrap().seq, 0);
        store
            .apply_changes(site, touch("a@x.io"), 100)
            .await
            .unwrap();
        // Nothing changes for a subscriber that exists: no entry.
        store
            .apply_changes(site, touch("a@x.io"), 150)
            .await
            .unwrap();
        store
            .add_key(site, &KeyPair::generate(), 200, &Actor::Cli)
            .await
            .unwrap();
        let head = store.site_head(site).await.unwrap();
        assert_eq!((head.seq, head.keys_seq, head.segments_seq), (2, 2, 0));
        let (at, entry) = store.log_entry(site, 1).await.unwrap().unwrap();
        assert_eq!((at, entry.as_str()), (100, r#"{"subscribers":[[1,1]]}"#));
        let changes = store
            .read_changes(site, Position::default(), &[], false, &ReadProgress::new())
            .await
            .unwrap();
        assert_eq!((changes.seq, changes.entries), (2, 2));
        assert_eq!(changes.subscribers.len(), 1);
    }

    #[tokio::test]
    async fn trimming_keeps_each_sites_newest_entry_and_readers_behind_it_are_told() {
        let (_dir, store, site) = store().await;
        for (i, at) in [100, 200, 300].into_iter().enumerate() {
            store
                .apply_changes(site, touch(&format!("{i}@x.io")), at)
                .await
                .unwrap();
        }
        assert_eq!(store.trim_log(1_000).await.unwrap(), 2);
        assert_eq!(store.trim_log(1_000).await.unwrap(), 0);
        assert!(store.log_entry(site, 3).await.unwrap().is_some());
        let behind = store
            .read_changes(site, Position::default(), &[], false, &ReadProgress::new())
            .await;
        assert!(matches!(behind, Err(StorageError::Stale(_))), "{behind:?}");
        let since_two = Position {
            seq: 2,
            events_through: 0,
        };
        let changes = store
            .read_changes(site, since_two, &[], false, &ReadProgress::new())
            .await
            .unwrap();
        assert_eq!((changes.seq, changes.subscribers.len()), (3, 1));
    }

    /// A change setting `count` fields named `prefix0`, `prefix1`, …
    fn with_fields(email: &str, prefix: &str, count: usize) -> SubscriberChange {
        let mut change = SubscriberChange::touch(Email::parse(email).unwrap());
        change.set_fields = (0..count)
            .map(|i| (FieldKey::parse(&format!("{prefix}{i}")).unwrap(), 1.into()))
            .collect();
        change
    }

    #[tokio::test]
    async fn a_refused_item_names_nobody_in_the_log() {
        let (_dir, store, site) = store().await;
        let full = with_fields("a@x.io", "f", MAX_FIELDS_PER_SUBSCRIBER);
        let outcomes = store.apply_changes(site, vec![full], 100).await.unwrap();
        assert_eq!(outcomes, [Outcome::Applied]);
        assert_eq!(store.site_head(site).await.unwrap().seq, 1);

        // Over the cap: one more field for a, a new subscriber with too many
        // (both in bulk), and a change of email with one more field (one at
        // a time).
        let mut moved = with_fields("a@x.io", "g", 1);
        moved.create = corral_core::audience::Create::Never;
        moved.new_email = Some(Email::parse("z@x.io").unwrap());
        let refused = vec![
            with_fields("a@x.io", "g", 1),
            with_fields("b@x.io", "f", MAX_FIELDS_PER_SUBSCRIBER + 1),
            moved,
        ];
        let outcomes = store.apply_changes(site, refused, 200).await.unwrap();
        assert!(
            outcomes.iter().all(|o| matches!(o, Outcome::Failed(_))),
            "{outcomes:?}"
        );
        assert_eq!(store.site_head(site).await.unwrap().seq, 1);

        // Next to an applied item, only the applied item's subscriber.
        let mixed = vec![with_fields("a@x.io", "g", 1), touch("c@x.io").remove(0)];
        let outcomes = store.apply_changes(site, mixed, 300).await.unwrap();
        assert!(matches!(outcomes[0], Outcome::Failed(_)));
        assert_eq!(outcomes[1], Outcome::Applied);
        let (_, entry) = store.log_entry(site, 2).await.unwrap().unwrap();
        assert_eq!(entry, r#"{"subscribers":[[2,2]]}"#);
    }
}
