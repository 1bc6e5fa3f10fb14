//! How far each `corral import` got, kept in the database: every batch an
//! import writes records, in the same transaction, the last input line it
//! holds, so that after any stop (Ctrl-C, SIGTERM, `kill -9`, a power cut)
//! the record names exactly the lines stored, and `--resume` goes on after
//! them without storing any twice.

/// Which import a batch belongs to and how far into its input it reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportMark {
    /// The input's identity: a fingerprint of the file, or the name given
    /// with `--import-id`.
    pub key: String,
    /// `subscribers` or `events`.
    pub kind: &'static str,
    /// The last input line the batch holds (every line up to it is done).
    pub line: u64,
    /// Lines of the batch that could not be read (they were skipped).
    pub unreadable: u64,
}

/// An import as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportProgress {
    pub key: String,
    pub kind: String,
    /// Every input line up to this one is done.
    pub line: u64,
    /// Items stored (or acknowledged as duplicates) so far.
    pub imported: u64,
    /// Lines skipped so far: unreadable, or refused by the database's rules.
    pub skipped: u64,
    pub started_at: i64,
    pub updated_at: i64,
    /// When the whole input was read; `None` while it is unfinished.
    pub finished_at: Option<i64>,
}
