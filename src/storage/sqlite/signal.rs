//! A freshness signal without a round trip to the database: the header of
//! SQLite's WAL index.
//!
//! In WAL mode every connection to a database, in any process, shares the
//! wal-index file (`<database>-shm`). Its first 96 bytes are two copies of a
//! 48-byte header (frame count, salts, checksums, a change counter) that every
//! commit rewrites before it returns, copy 1 first, copy 0 second
//! (<https://www.sqlite.org/walformat.html>). `PRAGMA data_version` is
//! derived from the same header; reading it directly costs one `pread` of the
//! file's (memory-mapped, so always current) page. Equal headers mean no
//! commit happened in between; two copies that differ mean a commit is being
//! written, and the signal says "unknown" so that the caller asks the
//! database.
//!
//! The file exists while any connection is open: the store keeps one open
//! for its whole life. Should the file be replaced anyway (unlinked when the
//! last connection of another process closed), it is opened again.

use crate::storage::Signal;
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;
use std::sync::RwLock;

pub(super) struct ShmSignal {
    path: PathBuf,
    file: RwLock<Option<File>>,
    /// When the open file was last seen still linked (ms since `started`):
    /// checked at most every [`RELINK_CHECK_MS`], not on every read.
    linked_at: std::sync::atomic::AtomicU64,
    started: std::time::Instant,
}

/// How often the open WAL index is checked to be the file in place. It can
/// only be replaced after every connection to the database closed, and the
/// store keeps one open: the check is a safety net, not a hot path.
const RELINK_CHECK_MS: u64 = 1_000;

impl ShmSignal {
    /// The signal of the database file at `database` (its `-shm` beside it).
    pub(super) fn new(database: &str) -> Self {
        Self {
            path: PathBuf::from(format!("{database}-shm")),
            file: RwLock::new(None),
            linked_at: std::sync::atomic::AtomicU64::new(0),
            started: std::time::Instant::now(),
        }
    }

    /// The current header, or `None` when it cannot be read consistently.
    pub(super) fn read(&self) -> Option<Signal> {
        use std::sync::atomic::Ordering;
        {
            let file = self.file.read().unwrap_or_else(|e| e.into_inner());
            if let Some(file) = file.as_ref() {
                let now = self.started.elapsed().as_millis() as u64 + 1;
                let seen = self.linked_at.load(Ordering::Relaxed);
                if seen != 0 && now.saturating_sub(seen) < RELINK_CHECK_MS {
                    return header(file);
                }
                if file.metadata().is_ok_and(|m| m.nlink() > 0) {
                    self.linked_at.store(now, Ordering::Relaxed);
                    return header(file);
                }
            }
        }
        let opened = File::open(&self.path).ok()?;
        let signal = header(&opened);
        *self.file.write().unwrap_or_else(|e| e.into_inner()) = Some(opened);
        signal
    }
}

fn header(file: &File) -> Option<Signal> {
    let mut bytes = [0u8; 96];
    let mut read = 0;
    while read < bytes.len() {
        match file.read_at(&mut bytes[read..], read as u64) {
            Ok(0) | Err(_) => return None,
            Ok(n) => read += n,
        }
    }
    let (first, second) = bytes.split_at(48);
    if first != second {
        return None;
    }
    let mut signal = [0u8; 48];
    signal.copy_from_slice(first);
    Some(Signal(signal))
}

#[cfg(test)]
mod tests {
    use super::super::SqliteStore;
    use crate::credentials::KeyPair;
    use crate::storage::{ChangeFeed, Store};

    #[tokio::test]
    async fn the_signal_moves_with_every_commit_of_any_connection_and_only_then() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signal.db");
        let path = path.to_str().unwrap();
        let store = SqliteStore::open(path).await.unwrap();
        let other = SqliteStore::open(path).await.unwrap();
        let before = store.change_signal().expect("a WAL index to read");
        store.list_sites().await.unwrap();
        assert_eq!(store.change_signal(), Some(before), "a read is no change");
        other
            .create_site("s", "s", &KeyPair::generate(), false, 0)
            .await
            .unwrap();
        let after = store.change_signal().unwrap();
        assert_ne!(after, before, "another connection's commit");
        store
            .create_site("t", "t", &KeyPair::generate(), false, 0)
            .await
            .unwrap();
        assert_ne!(
            store.change_signal().unwrap(),
            after,
            "this store's own commit"
        );
    }
}
