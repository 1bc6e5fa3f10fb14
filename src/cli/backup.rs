//! `corral backup --to PATH`: a consistent copy of a SQLite database, taken
//! while a server serves and writes it ([`crate::storage::backup_sqlite`]:
//! SQLite's `VACUUM INTO`, nothing written to the database, no migration). The copy
//! is written beside the target under a temporary name, made private
//! (`0600`, as the database itself), synced, and only then given the
//! target's name: a backup that fails or is stopped leaves no half-written
//! file at `PATH`, and an existing `PATH` is replaced at once, never
//! truncated first. An existing `PATH` is refused unless `--force` is
//! given. A PostgreSQL database is not copied here: the error says what to
//! use instead (`pg_dump`, or `corral copy` into a SQLite file).

use super::{CliError, outln, print_json, redact};
use crate::storage;
use clap::Args;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
#[command(after_help = "\
The copy is the database as it stood at one instant (every write acknowledged before the \
backup began is in it), taken while the server goes on serving and writing. It is a \
database like any other: serve it with `corral serve --database sqlite://PATH`, or move it \
back in place of the original while no server runs. Nothing is written to the database and \
no migration is applied, so a newer corral backs up an older server's database before an \
upgrade. The checkpoint folder needs no backup: it is rebuilt from the database.

For PostgreSQL, use pg_dump (`pg_dump -Fc DB > corral.dump`, restored with pg_restore), or \
`corral copy --from postgres://… --to sqlite://backup.db`.")]
pub struct BackupArgs {
    /// Where the copy goes: a new file, unless --force is given
    #[arg(long, value_name = "PATH")]
    to: PathBuf,
    /// Replace PATH if it exists (at once, once the copy is complete)
    #[arg(long)]
    force: bool,
    /// Print the outcome as one JSON object: {"to","bytes"}
    #[arg(long)]
    json: bool,
}

#[derive(serde::Serialize)]
struct Outcome<'a> {
    to: &'a str,
    bytes: u64,
}

/// Takes the backup of the database `database` names.
pub async fn run(args: BackupArgs, database: &str) -> Result<(), CliError> {
    if storage::is_postgres(database) {
        return Err(CliError::Usage(format!(
            "corral backup copies a SQLite database, and {} is PostgreSQL: back it up with \
             pg_dump (pg_dump -Fc DB > corral.dump, restored with pg_restore), or copy it into \
             a SQLite file with corral copy --from {} --to sqlite://backup.db",
            redact(database),
            redact(database)
        )));
    }
    let source = storage::sqlite_file(database).ok_or_else(|| {
        CliError::Usage(format!(
            "unsupported database URL {:?}: use sqlite://PATH",
            redact(database)
        ))
    })?;
    if !source.is_file() {
        return Err(CliError::Usage(format!(
            "there is no database at {}",
            source.display()
        )));
    }
    let to = &args.to;
    if same_file(&source, to) {
        return Err(CliError::Usage(format!(
            "{} is the database itself: back it up to another file",
            to.display()
        )));
    }
    if !args.force && to.symlink_metadata().is_ok() {
        return Err(CliError::Usage(format!(
            "{} exists: give --force to replace it",
            to.display()
        )));
    }
    let partial = Partial::create(to)?;
    let stop = super::signal::stop_requested();
    tokio::select! {
        copied = storage::backup_sqlite(&source, partial.path()) => copied?,
        () = stop => {
            return Err(CliError::Stopped(
                "stopped: no backup was written".to_owned(),
            ));
        }
    }
    let bytes = partial.finish(to, args.force)?;
    let shown = to.display().to_string();
    if args.json {
        return print_json(&Outcome { to: &shown, bytes });
    }
    outln!(
        "backed up {} to {shown} ({})",
        source.display(),
        size(bytes)
    )
}

/// Whether two paths name one file (the second may not exist).
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Bytes, as a person reads them.
fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// The copy being written, under a temporary name beside the target:
/// removed when dropped unless it was given the target's name.
struct Partial {
    path: PathBuf,
    kept: bool,
}

impl Partial {
    /// An empty private file beside `to`, for `VACUUM INTO` to fill.
    fn create(to: &Path) -> Result<Self, CliError> {
        let name = to
            .file_name()
            .ok_or_else(|| CliError::Usage(format!("{} names no file", to.display())))?;
        let mut partial = name.to_os_string();
        partial.push(format!(
            ".partial-{}",
            &crate::credentials::random_hex_id()[..12]
        ));
        let path = to.with_file_name(partial);
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| CliError::Usage(format!("cannot write {}: {e}", path.display())))?;
        Ok(Self { path, kept: false })
    }

    fn path(&self) -> &Path {
        &self.path
    }

    /// Syncs the copy and gives it the target's name: replacing what is
    /// there with `force`, else only if nothing is (a hard link fails on an
    /// existing name, so a file made meanwhile is not overwritten either).
    /// The copy's size.
    fn finish(mut self, to: &Path, force: bool) -> Result<u64, CliError> {
        let file = File::open(&self.path)?;
        file.sync_all()?;
        let bytes = file.metadata()?.len();
        if force {
            std::fs::rename(&self.path, to)?;
        } else {
            match std::fs::hard_link(&self.path, to) {
                Ok(()) => std::fs::remove_file(&self.path)?,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    return Err(CliError::Usage(format!(
                        "{} exists: give --force to replace it",
                        to.display()
                    )));
                }
                // A file system without hard links: the name was free a
                // moment ago.
                Err(_) => std::fs::rename(&self.path, to)?,
            }
        }
        self.kept = true;
        // The new name is durable once the folder is.
        let folder = match to.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        File::open(folder)?.sync_all()?;
        Ok(bytes)
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.kept {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_a_person_reads_them() {
        assert_eq!(size(12), "12 bytes");
        assert_eq!(size(2048), "2.0 KiB");
        assert_eq!(size(5 * 1024 * 1024 + 512 * 1024), "5.5 MiB");
    }
}
