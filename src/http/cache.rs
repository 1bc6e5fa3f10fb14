//! Rendered answers of Bento's two read routes, and the credentials behind
//! them, kept in memory and used only while the site's change-log heads say
//! nothing they depend on changed.
//!
//! Every request learns its site's current [`SiteHead`] ([`Heads`]: no
//! database round trip while nothing was committed anywhere), so a change
//! made by anyone, this server or the CLI in another process, is seen by the
//! next request: the cache saves the database round trips and the JSON
//! encoding, never freshness. Credentials hold while the site's `keys_seq` is
//! the one they were read under; a site's segments while its `segments_seq`
//! is, so events streaming into a site leave both untouched. A site's entry
//! holds the list body with its ETag and each kept segment's body with its
//! ETag, all built from one read.
//!
//! Publishable keys the database does not know are remembered too, under the
//! store's change signal read before the database was asked: while the
//! signal is unchanged nothing was committed anywhere, so no key was created
//! (by this server, the CLI or another server on the file) and the key is
//! still unknown. So an unknown key costs what a known one does: a map
//! lookup and a read of the signal while nothing changes, one indexed
//! single-row query once something was committed (the key's row for an
//! unknown key, the site's head for a known one). A guess is refused in the
//! time a known key with a wrong secret is, so how fast it is refused does
//! not say whether the key exists (`examples/auth_timing.rs` measures both).
//! Both maps are bounded (emptied when full), and user names longer than any
//! key are refused before they get here, so guessing cannot fill memory.

use crate::live::Heads;
use crate::segment::{Listing, SegmentId};
use crate::storage::{KeyCredentials, Signal, SiteHead, StorageError, Store};
use crate::wire::segments::{segment_body, segment_list_body};
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
    segments_seq: i64,
    pub list: Rendered,
    pub by_id: HashMap<SegmentId, Rendered>,
}

#[derive(Default)]
pub struct ReadCache {
    sites: RwLock<HashMap<i64, Arc<SiteSegments>>>,
    keys: RwLock<HashMap<String, KeyCredentials>>,
    /// Keys the database did not know, with the change signal read before
    /// it was asked; such an entry holds while the signal is the same.
    unknown_keys: RwLock<HashMap<String, Signal>>,
}

impl ReadCache {
    /// The credentials of a publishable key, with the head of their site,
    /// both current as of this call.
    pub async fn credentials(
        &self,
        store: &dyn Store,
        heads: &Heads,
        publishable_key: &str,
    ) -> Result<Option<(KeyCredentials, SiteHead)>, StorageError> {
        let cached = read(&self.keys).get(publishable_key).cloned();
        if let Some(credentials) = cached {
            let head = heads.current(credentials.site_id).await?;
            if head.keys_seq == credentials.keys_seq {
                return Ok(Some((credentials, head)));
            }
        }
        // Read before the database is asked: a key created after this read
        // changes the signal, so the answer is never trusted past it.
        let signal = store.change_signal();
        if let Some(signal) = signal
            && read(&self.unknown_keys).get(publishable_key) == Some(&signal)
        {
            return Ok(None);
        }
        let Some(credentials) = store.credentials(publishable_key).await? else {
            if let Some(signal) = signal {
                insert(&self.unknown_keys, publishable_key.to_owned(), signal);
            }
            return Ok(None);
        };
        let head = heads.current(credentials.site_id).await?;
        insert(&self.keys, publishable_key.to_owned(), credentials.clone());
        Ok(Some((credentials, head)))
    }

    /// A site's kept segments, rendered, as of `head` (read before this
    /// call, so what is read here is at least as new as its label).
    pub async fn segments(
        &self,
        store: &dyn Store,
        head: SiteHead,
        site_id: i64,
    ) -> Result<Arc<SiteSegments>, StorageError> {
        if let Some(entry) = read(&self.sites).get(&site_id)
            && entry.segments_seq == head.segments_seq
        {
            return Ok(entry.clone());
        }
        let segments = store.list_segments(site_id, Listing::Kept).await?;
        let list = segment_list_body(&segments);
        let entry = Arc::new(SiteSegments {
            segments_seq: head.segments_seq,
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
