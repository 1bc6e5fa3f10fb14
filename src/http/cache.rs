//! Rendered answers of Bento's two read routes, and the credentials behind
//! them, kept in memory and used only while the database's
//! [`ChangeMarker`] is the one they were built under.
//!
//! Every request reads the current marker (the storage layer shares one
//! check among concurrent requests), so a change made by anyone, this server
//! or the CLI in another process, is seen by the next request: the cache saves
//! the database round trips and the JSON encoding, never freshness. A site's
//! entry holds the list body with its ETag and each kept segment's body with
//! its ETag, all built from one read.

use crate::http::wire::{segment_body, segment_list_body};
use crate::segment::{Listing, SegmentId};
use crate::storage::{ChangeMarker, KeyCredentials, StorageError, Store};
use axum::body::Bytes;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::conditional::digest_etag;

/// Entries kept per map before it is emptied and refilled on demand.
const MAX_ENTRIES: usize = 10_000;

/// A body ready to send, with its entity tag.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub body: Bytes,
    pub etag: String,
}

/// A site's kept segments as the two read routes answer them.
#[derive(Debug)]
pub struct SiteSegments {
    marker: ChangeMarker,
    pub list: Rendered,
    pub by_id: HashMap<SegmentId, Rendered>,
}

#[derive(Default)]
pub struct ReadCache {
    sites: RwLock<HashMap<i64, Arc<SiteSegments>>>,
    keys: RwLock<HashMap<String, (ChangeMarker, KeyCredentials)>>,
}

impl ReadCache {
    /// The credentials of a publishable key as of `marker`.
    pub async fn credentials(
        &self,
        store: &dyn Store,
        marker: ChangeMarker,
        publishable_key: &str,
    ) -> Result<Option<KeyCredentials>, StorageError> {
        if let Some((at, credentials)) = read(&self.keys).get(publishable_key)
            && *at == marker
        {
            return Ok(Some(credentials.clone()));
        }
        // Unknown keys are not remembered: guessing must not fill memory.
        let Some(credentials) = store.credentials(publishable_key).await? else {
            return Ok(None);
        };
        insert(
            &self.keys,
            publishable_key.to_owned(),
            (marker, credentials.clone()),
        );
        Ok(Some(credentials))
    }

    /// A site's kept segments, rendered, as of `marker`.
    pub async fn segments(
        &self,
        store: &dyn Store,
        marker: ChangeMarker,
        site_id: i64,
    ) -> Result<Arc<SiteSegments>, StorageError> {
        if let Some(entry) = read(&self.sites).get(&site_id)
            && entry.marker == marker
        {
            return Ok(entry.clone());
        }
        let segments = store.list_segments(site_id, Listing::Kept).await?;
        let list = segment_list_body(&segments);
        let entry = Arc::new(SiteSegments {
            marker,
            list: Rendered {
                etag: digest_etag(&list),
                body: list.into(),
            },
            by_id: segments
                .iter()
                .map(|s| {
                    let rendered = Rendered {
                        body: segment_body(s).into(),
                        etag: s.etag(),
                    };
                    (s.id, rendered)
                })
                .collect(),
        });
        insert(&self.sites, site_id, entry.clone());
        Ok(entry)
    }
}

fn read<K, V>(map: &RwLock<HashMap<K, V>>) -> std::sync::RwLockReadGuard<'_, HashMap<K, V>> {
    map.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn insert<K: std::hash::Hash + Eq, V>(map: &RwLock<HashMap<K, V>>, key: K, value: V) {
    let mut map = map
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if map.len() >= MAX_ENTRIES && !map.contains_key(&key) {
        map.clear();
    }
    map.insert(key, value);
}
