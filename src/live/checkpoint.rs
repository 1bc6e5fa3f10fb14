//! Checkpoints: a site's resident snapshot written to a file, so that a
//! server that starts reads it and the change log since it, instead of the
//! whole audience from the database.
//!
//! One file per site, `<dir>/site-<id>.ckpt`, written to a temporary file,
//! synced and renamed over the old one, so a crash leaves the old checkpoint
//! or the new one, never half of one; the files (and the directory, when
//! this creates it) are its owner's only (0600, 0700). The file holds:
//!
//! - `CORRALCK` and the format version;
//! - a JSON header: the database's id, the site, the snapshot's position,
//!   and the time and SHA-256 of the change-log entry at that position;
//! - the audience ([`corral_core::columns::persist`]);
//! - a CRC-32C of everything before it.
//!
//! A checkpoint is used only when it belongs to this database (its id), its
//! entry is still in the log exactly as it was (so the database was not
//! restored to another history since), and every byte checks out; then the
//! snapshot is brought forward from its position like any resident one, so
//! a checkpoint never serves data older than the database. Anything else is
//! logged and the site is read from scratch.

use super::CheckpointSettings;
use crate::storage::progress::{ReadProgress, Stage};
use crate::storage::{ChangeFeed, Position, StorageError};
use corral_core::columns::Columns;
use corral_core::columns::persist::{Decoder, Encoder};
use crc::{CRC_32_ISCSI, Crc, Digest, Table};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

const MAGIC: &[u8; 8] = b"CORRALCK";
/// The format version this release writes and reads; a checkpoint of any
/// other is set aside and the site read from the database (then written
/// again in this one). 2: fields dictionary-encoded; 3: events in time
/// order, with ranks; 4: subscribers' uuids (for samples).
pub const VERSION: u32 = 4;
static CASTAGNOLI: Crc<u32, Table<16>> = Crc::<u32, Table<16>>::new(&CRC_32_ISCSI);

/// What a checkpoint says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    database_id: String,
    site_id: i64,
    seq: i64,
    events_through: i64,
    /// The entry at `seq` as stored: its time and the SHA-256 of its JSON.
    entry_at: Option<i64>,
    entry_sha256: Option<String>,
}

/// Why a checkpoint was not used.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("{0}")]
    Unusable(String),
}

/// Where a store's checkpoints are kept.
#[derive(Clone)]
pub struct Checkpoints {
    store: Arc<dyn ChangeFeed>,
    pub settings: CheckpointSettings,
    database_id: Arc<OnceLock<String>>,
}

fn entry_hash(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Passes bytes through while adding them, up to `until` bytes from the
/// start, to a CRC. It sits under the buffer, so it sees large blocks.
pub struct Checked<T> {
    inner: T,
    digest: Digest<'static, u32, Table<16>>,
    at: u64,
    until: u64,
}

impl<T> Checked<T> {
    fn new(inner: T, until: u64) -> Self {
        Self {
            inner,
            digest: CASTAGNOLI.digest(),
            at: 0,
            until,
        }
    }

    fn add(&mut self, bytes: &[u8]) {
        let room = self.until.saturating_sub(self.at).min(bytes.len() as u64) as usize;
        self.digest.update(&bytes[..room]);
        self.at += bytes.len() as u64;
    }
}

impl<W: Write> Write for Checked<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.add(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<R: Read> Read for Checked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.add(&buf[..n]);
        Ok(n)
    }
}

type FileEncoder = Encoder<BufWriter<Checked<File>>>;

/// Creates (or empties) a checkpoint file readable and writable by its
/// owner only, whatever the umask: a checkpoint holds a site's subscribers.
fn create_private(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(file)
}

/// Creates the checkpoint directory, and any missing parent, open to its
/// owner only; one that exists keeps its mode.
fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// A checkpoint being written: the caller writes the audience's parts
/// through [`CheckpointWriter::encoder`], then [`CheckpointWriter::finish`].
/// Until then the file has a temporary name; a writer dropped before it
/// finished (an error, the server stopping) removes it, so a checkpoint is
/// in place whole or not at all.
pub struct CheckpointWriter {
    /// `None` once finished.
    encoder: Option<FileEncoder>,
    temp: PathBuf,
    path: PathBuf,
}

impl CheckpointWriter {
    pub fn encoder(&mut self) -> &mut FileEncoder {
        self.encoder
            .as_mut()
            .expect("a writer is used until it finishes")
    }

    /// Seals, syncs and puts the file in place.
    pub fn finish(mut self) -> io::Result<()> {
        let encoder = self.encoder.take().expect("a writer finishes once");
        let Checked {
            inner: mut file,
            digest,
            ..
        } = encoder
            .into_inner()
            .into_inner()
            .map_err(|e| e.into_error())?;
        file.write_all(&digest.finalize().to_le_bytes())?;
        file.sync_all()?;
        std::fs::rename(&self.temp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    }

    /// Abandons the file.
    pub fn discard(self) {}
}

impl Drop for CheckpointWriter {
    fn drop(&mut self) {
        if self.encoder.take().is_some() {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// Reads a checkpoint file for a job: counts the bytes into the job's
/// progress, and fails the read at the next block once the server stops
/// (decoding runs on a blocking thread, which nothing else can stop).
struct Watched<R> {
    inner: R,
    progress: Arc<ReadProgress>,
    stopping: tokio::sync::watch::Receiver<bool>,
}

impl<R: Read> Read for Watched<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if *self.stopping.borrow() {
            return Err(io::Error::other("the server is shutting down"));
        }
        let n = self.inner.read(buf)?;
        self.progress.advance(n as u64);
        Ok(n)
    }
}

impl Checkpoints {
    pub fn new(store: Arc<dyn ChangeFeed>, settings: CheckpointSettings) -> Self {
        Self {
            store,
            settings,
            database_id: Arc::new(OnceLock::new()),
        }
    }

    fn path(&self, site_id: i64) -> PathBuf {
        self.settings.dir.join(format!("site-{site_id}.ckpt"))
    }

    async fn database_id(&self) -> Result<String, StorageError> {
        if let Some(id) = self.database_id.get() {
            return Ok(id.clone());
        }
        let id = self.store.database_id().await?;
        Ok(self.database_id.get_or_init(|| id).clone())
    }

    /// The sites that have a checkpoint, the most recently written first.
    pub fn sites_newest_first(&self) -> Vec<i64> {
        let Ok(entries) = std::fs::read_dir(&self.settings.dir) else {
            return Vec::new();
        };
        let mut sites: Vec<(std::time::SystemTime, i64)> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let id = name
                    .strip_prefix("site-")?
                    .strip_suffix(".ckpt")?
                    .parse()
                    .ok()?;
                Some((e.metadata().ok()?.modified().ok()?, id))
            })
            .collect();
        sites.sort_by(|a, b| b.cmp(a));
        sites.into_iter().map(|(_, id)| id).collect()
    }

    /// Starts the checkpoint of a snapshot at `position`.
    pub async fn start(
        &self,
        site_id: i64,
        position: Position,
    ) -> Result<CheckpointWriter, CheckpointError> {
        let entry = if position.seq > 0 {
            let (at, text) = self
                .store
                .log_entry(site_id, position.seq)
                .await?
                .ok_or_else(|| {
                    CheckpointError::Unusable(format!(
                        "entry {} is no longer in the log",
                        position.seq
                    ))
                })?;
            Some((at, entry_hash(&text)))
        } else {
            None
        };
        let header = Header {
            database_id: self.database_id().await?,
            site_id,
            seq: position.seq,
            events_through: position.events_through,
            entry_at: entry.as_ref().map(|e| e.0),
            entry_sha256: entry.map(|e| e.1),
        };
        create_private_dir(&self.settings.dir)?;
        let path = self.path(site_id);
        let temp = path.with_extension("ckpt.tmp");
        let file = create_private(&temp)?;
        let mut encoder = Encoder::new(BufWriter::with_capacity(
            1 << 20,
            Checked::new(file, u64::MAX),
        ));
        let header = serde_json::to_string(&header).expect("a header always serialises");
        encoder.inner_mut().write_all(MAGIC)?;
        encoder.u32(VERSION)?;
        encoder.str(&header)?;
        Ok(CheckpointWriter {
            encoder: Some(encoder),
            temp,
            path,
        })
    }

    /// The site's checkpoint, if there is one this database can use: the
    /// audience and the position it reflects. `progress` counts its bytes;
    /// the read stops at the next block once `stopping` says so.
    pub async fn read(
        &self,
        site_id: i64,
        progress: &Arc<ReadProgress>,
        stopping: tokio::sync::watch::Receiver<bool>,
    ) -> Result<Option<(Position, Columns)>, CheckpointError> {
        let path = self.path(site_id);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let database_id = self.database_id().await?;
        let length = file.metadata()?.len();
        progress.stage(Stage::Checkpoint);
        progress.expect(length);
        let watched = Watched {
            inner: file,
            progress: Arc::clone(progress),
            stopping,
        };
        let (header, audience) = tokio::task::spawn_blocking(move || decode(watched, length))
            .await
            .map_err(|e| CheckpointError::Unusable(format!("reading failed: {e}")))??;
        if header.database_id != database_id || header.site_id != site_id {
            return Err(CheckpointError::Unusable(
                "it was written for another database or site".into(),
            ));
        }
        if header.seq > 0 {
            let stored = self.store.log_entry(site_id, header.seq).await?;
            let same = stored.is_some_and(|(at, text)| {
                Some(at) == header.entry_at && Some(entry_hash(&text)) == header.entry_sha256
            });
            if !same {
                return Err(CheckpointError::Unusable(format!(
                    "entry {} of the log is no longer the one it was written after",
                    header.seq
                )));
            }
        }
        if audience.events_through != header.events_through {
            return Err(CheckpointError::Unusable(
                "its audience does not match its header".into(),
            ));
        }
        Ok(Some((
            Position {
                seq: header.seq,
                events_through: header.events_through,
            },
            audience,
        )))
    }
}

fn decode(file: impl Read, length: u64) -> Result<(Header, Columns), CheckpointError> {
    // Everything but the last four bytes (the CRC itself) is checked.
    let checked = length.saturating_sub(4);
    let mut d = Decoder::new(BufReader::with_capacity(
        1 << 20,
        Checked::new(file, checked),
    ));
    let mut magic = [0u8; 8];
    d.inner_mut().read_exact(&mut magic)?;
    if &magic != MAGIC {
        return Err(CheckpointError::Unusable("not a checkpoint file".into()));
    }
    let version = d.u32()?;
    if version != VERSION {
        return Err(CheckpointError::Unusable(format!(
            "format version {version}, not {VERSION}"
        )));
    }
    let header: Header = serde_json::from_str(&d.str()?)
        .map_err(|e| CheckpointError::Unusable(format!("its header cannot be read: {e}")))?;
    let audience = Columns::read_from(&mut d)?;
    let mut reader = d.into_inner();
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest)?;
    let computed = reader.into_inner().digest.finalize();
    if rest.len() != 4 {
        return Err(CheckpointError::Unusable(
            "its length does not match its contents".into(),
        ));
    }
    if rest[..] != computed.to_le_bytes() {
        return Err(CheckpointError::Unusable(
            "its checksum does not match".into(),
        ));
    }
    Ok((header, audience))
}
