//! `corral import subscribers|events --site UUID FILE`: bulk import from JSON
//! Lines or CSV (`-` for stdin), streaming.
//!
//! A reader thread parses lines into [`SubscriberChange`]s, the same way the
//! batch endpoints read their items, and hands them over in chunks through a
//! bounded channel; the main task applies each chunk in one transaction. So
//! memory stays flat however large the file, parsing and writing overlap, and
//! a bad line is reported with its line number and skipped without stopping
//! the rest. A progress bar shows on a terminal; a summary is printed at the end.
//!
//! Every batch records in its own transaction how far into the input it
//! reaches ([`crate::storage::imports`]), under the input's identity: a
//! fingerprint of the file (its size and first MiB), or the name given with
//! `--import-id` (the only way for stdin). However an import stops (Ctrl-C,
//! SIGTERM, `kill -9`, a crash), whole batches are stored and the record
//! names their last line: `--resume` goes on after it, storing nothing
//! twice; `--restart` imports the input again from its start. An input whose
//! import stopped, or that was imported whole, is not imported again without
//! one of them.
//!
//! Formats:
//! - JSON Lines: one item per line, exactly as in `POST /batch/events` or
//!   `POST /batch/subscribers`.
//! - CSV with a header row. Subscribers: `email`, optional `tags` and
//!   `remove_tags` (comma-separated names), every other column a field.
//!   Events: `type`, `email`, optional `date` (RFC 3339) and `details` (a JSON
//!   object), every other column a field. Empty cells are skipped; `true` and
//!   `false` become booleans and numbers without leading zeros become numbers
//!   (so `01234` stays text).

use super::{CliError, outln, site_by_uuid};
use crate::clock::{Clock, SystemClock};
use crate::storage::Store;
use crate::storage::imports::ImportMark;
use clap::{Args, Subcommand, ValueEnum};
use corral_core::audience::SubscriberChange;
use corral_core::audience::event::{parse_event, parse_subscriber};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Import subscribers (email, tags, fields).
    Subscribers(ImportArgs),
    /// Import events (type, email, date, details, fields).
    Events(ImportArgs),
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The site's uuid.
    #[arg(long)]
    site: String,
    /// The file to read; `-` for stdin.
    file: PathBuf,
    /// The file's format [default: from the extension; jsonl for stdin]
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Items applied per transaction.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    batch: u64,
    /// Go on after the lines an earlier import of this input stored.
    #[arg(long, conflicts_with = "restart")]
    resume: bool,
    /// Import the input from its start although an earlier import of it
    /// was recorded (stopped, or whole).
    #[arg(long)]
    restart: bool,
    /// The name this import's progress is kept under [default: a
    /// fingerprint of the file; for stdin, progress is kept only with a name]
    #[arg(long, value_name = "NAME")]
    import_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Jsonl,
    Csv,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Subscribers,
    Events,
}

/// One chunk from the reader: parsed items with their line numbers, lines
/// that could not be parsed, and how far into the input the reader is.
struct Chunk {
    items: Vec<(u64, SubscriberChange)>,
    bad: Vec<(u64, String)>,
    bytes_read: u64,
}

impl Chunk {
    /// The last line of the file the chunk holds an item of.
    fn last_line(&self) -> u64 {
        let items = self.items.iter().map(|(line, _)| *line);
        let bad = self.bad.iter().map(|(line, _)| *line);
        items.chain(bad).max().unwrap_or(0)
    }
}

/// How many bad lines are printed before only counting them.
const MAX_REPORTED: u64 = 100;

pub async fn run(command: ImportCommand, store: &Arc<dyn Store>) -> Result<(), CliError> {
    let (kind, args) = match command {
        ImportCommand::Subscribers(args) => (Kind::Subscribers, args),
        ImportCommand::Events(args) => (Kind::Events, args),
    };
    let site = site_by_uuid(store, &args.site).await?;
    let stdin = args.file.as_os_str() == "-";
    let (what, one) = match kind {
        Kind::Subscribers => ("subscribers", "subscriber"),
        Kind::Events => ("events", "event"),
    };
    let key = match (&args.import_id, stdin) {
        (Some(name), _) => Some(format!("id:{name}")),
        (None, false) => Some(fingerprint(&args.file)?),
        (None, true) => None,
    };
    if key.is_none() && (args.resume || args.restart) {
        return Err(CliError::Usage(
            "--resume and --restart need --import-id when the input is stdin".into(),
        ));
    }
    let mut skip_through = 0u64;
    let (mut imported, mut failed) = (0u64, 0u64);
    if let Some(key) = &key {
        let earlier = store.import_progress(site.id, key).await?;
        match earlier {
            Some(earlier) if args.restart => {
                store.forget_import(site.id, key).await?;
                eprintln!(
                    "importing {} again from its start (an earlier import stored {} {what} of it)",
                    args.file.display(),
                    earlier.imported
                );
            }
            Some(earlier) if args.resume && earlier.finished_at.is_some() => {
                outln!(
                    "{} was imported whole already ({} {what}, {} lines skipped): nothing to do",
                    args.file.display(),
                    earlier.imported,
                    earlier.skipped
                )?;
                return Ok(());
            }
            Some(earlier) if args.resume => {
                skip_through = earlier.line;
                imported = earlier.imported;
                failed = earlier.skipped;
                eprintln!(
                    "resuming after line {} ({} {what} imported and {} lines skipped before)",
                    earlier.line, earlier.imported, earlier.skipped
                );
            }
            Some(earlier) => {
                let how = match earlier.finished_at {
                    Some(_) => "was imported whole".to_owned(),
                    None => format!("stopped after line {}", earlier.line),
                };
                return Err(CliError::Usage(format!(
                    "an earlier import of {} {how} ({} {what} stored); --resume goes on after \
                     what it stored, --restart imports it all again",
                    args.file.display(),
                    earlier.imported
                )));
            }
            None if args.resume => {
                return Err(CliError::Usage(format!(
                    "no earlier import of {} is recorded: nothing to resume",
                    args.file.display()
                )));
            }
            None => {}
        }
    }
    let format = args
        .format
        .unwrap_or(if !stdin && has_extension(&args.file, "csv") {
            Format::Csv
        } else {
            Format::Jsonl
        });
    let (input, total): (Box<dyn Read + Send>, Option<u64>) = if stdin {
        (Box::new(std::io::stdin()), None)
    } else {
        let file = std::fs::File::open(&args.file)
            .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", args.file.display())))?;
        let size = file.metadata().ok().map(|m| m.len());
        (Box::new(file), size)
    };

    let progress = match total {
        Some(bytes) => ProgressBar::new(bytes).with_style(
            ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}",
            )
            .expect("valid template"),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {bytes} read {msg}").expect("valid template"),
        ),
    };

    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Result<Chunk, String>>(4);
    let batch = args.batch as usize;
    let reader = std::thread::spawn(move || {
        let result = read_chunks(input, format, kind, batch, skip_through, &sender);
        if let Err(message) = result {
            let _ = sender.blocking_send(Err(message));
        }
    });

    let started = Instant::now();
    let earlier = imported;
    // Ctrl-C or SIGTERM: the batch being written is finished (one
    // transaction), then the import stops and says how far it got.
    let stop = super::signal::stop_requested();
    tokio::pin!(stop);
    let mut done_to = 0u64;
    let mut stopped = false;
    loop {
        let chunk = tokio::select! {
            biased;
            () = &mut stop => {
                stopped = true;
                break;
            }
            chunk = receiver.recv() => match chunk {
                Some(chunk) => chunk.map_err(CliError::Usage)?,
                None => break,
            },
        };
        if chunk.items.is_empty() && chunk.bad.is_empty() {
            progress.set_position(chunk.bytes_read);
            continue;
        }
        let last_line = chunk.last_line();
        let mut bad = chunk.bad;
        let (lines, changes): (Vec<u64>, Vec<SubscriberChange>) = chunk.items.into_iter().unzip();
        let now = SystemClock.now_ms();
        let outcomes = match &key {
            Some(key) => {
                let mark = ImportMark {
                    key: key.clone(),
                    kind: what,
                    line: last_line,
                    unreadable: bad.len() as u64,
                };
                store
                    .apply_import_batch(site.id, changes, now, mark)
                    .await?
            }
            None => store.apply_changes(site.id, changes, now).await?,
        };
        for (line, outcome) in lines.into_iter().zip(outcomes) {
            match outcome {
                corral_core::audience::Outcome::Failed(reason) => bad.push((line, reason)),
                _ => imported += 1,
            }
        }
        bad.sort_by_key(|(line, _)| *line);
        for (line, reason) in bad {
            failed += 1;
            if failed <= MAX_REPORTED {
                progress.suspend(|| eprintln!("line {line}: {reason} (skipped)"));
            }
        }
        progress.set_position(chunk.bytes_read);
        progress.set_message(format!("{imported} imported, {failed} skipped"));
        done_to = done_to.max(last_line);
    }
    progress.finish_and_clear();
    if stopped {
        // The reader may be blocked sending the next chunk: not waited for.
        drop(receiver);
        let done_to = done_to.max(skip_through);
        let next = match &key {
            Some(_) => "the same command with --resume goes on after it".to_owned(),
            None => format!(
                "to go on, import what follows line {done_to} (with --import-id NAME, \
                 --resume would)"
            ),
        };
        return Err(CliError::Stopped(format!(
            "stopped on request: imported {} and skipped {}, \
             every line up to line {done_to} done (whole batches; nothing after it was \
             written); {next}",
            super::counted(imported, one, what),
            super::counted(failed, "bad line", "bad lines")
        )));
    }
    let _ = reader.join();
    if let Some(key) = &key {
        store
            .finish_import(site.id, key, what, SystemClock.now_ms())
            .await?;
    }
    if failed > MAX_REPORTED {
        eprintln!(
            "… and {} more",
            super::counted(failed - MAX_REPORTED, "bad line", "bad lines")
        );
    }
    let seconds = started.elapsed().as_secs_f64();
    let now_imported = imported - earlier;
    outln!(
        "imported {}, skipped {}, in {seconds:.1} s ({:.0} {what}/s)",
        super::counted(imported, one, what),
        super::counted(failed, "bad line", "bad lines"),
        now_imported as f64 / seconds.max(1e-9)
    )
}

/// The identity of a file's import: its name, size and a hash of its first
/// MiB (a file appended to is another input; a file renamed keeps its
/// identity only with `--import-id`).
fn fingerprint(path: &Path) -> Result<String, CliError> {
    use sha2::Digest;
    let unreadable =
        |e: std::io::Error| CliError::Usage(format!("cannot read {}: {e}", path.display()));
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let size = file.metadata().map_err(unreadable)?.len();
    let mut head = Vec::with_capacity(1 << 20);
    file.take(1 << 20)
        .read_to_end(&mut head)
        .map_err(unreadable)?;
    let hash = sha2::Sha256::digest(&head);
    let name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    Ok(format!("file:{name}:{size}:{}", hex::encode(&hash[..12])))
}

pub(super) fn has_extension(path: &Path, extension: &str) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case(extension))
}

/// Counts the bytes the parser has consumed, for the progress bar.
struct Counting<R> {
    inner: R,
    count: Arc<std::sync::atomic::AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

fn read_chunks(
    input: Box<dyn Read + Send>,
    format: Format,
    kind: Kind,
    batch: usize,
    skip_through: u64,
    sender: &tokio::sync::mpsc::Sender<Result<Chunk, String>>,
) -> Result<(), String> {
    let count = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let input = Counting {
        inner: input,
        count: count.clone(),
    };
    let now = SystemClock.now_ms();
    let parse = |text: &str| -> Result<SubscriberChange, String> {
        let raw: Box<RawValue> =
            serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
        match kind {
            Kind::Subscribers => parse_subscriber(&raw),
            Kind::Events => parse_event(&raw, now),
        }
    };
    let mut chunk = Chunk {
        items: Vec::with_capacity(batch),
        bad: Vec::new(),
        bytes_read: 0,
    };
    let push = |line: u64,
                item: Result<SubscriberChange, String>,
                chunk: &mut Chunk|
     -> Result<(), String> {
        // Stored by the import resumed.
        if line <= skip_through {
            return Ok(());
        }
        match item {
            Ok(change) => chunk.items.push((line, change)),
            Err(reason) => chunk.bad.push((line, reason)),
        }
        if chunk.items.len() + chunk.bad.len() >= batch {
            let full = std::mem::replace(
                chunk,
                Chunk {
                    items: Vec::with_capacity(batch),
                    bad: Vec::new(),
                    bytes_read: 0,
                },
            );
            send(sender, full, &count)?;
        }
        Ok(())
    };
    match format {
        Format::Jsonl => {
            let mut reader = BufReader::with_capacity(1 << 20, input);
            let mut line = String::new();
            let mut number = 0u64;
            loop {
                line.clear();
                let n = reader
                    .read_line(&mut line)
                    .map_err(|e| format!("cannot read input: {e}"))?;
                if n == 0 {
                    break;
                }
                number += 1;
                if number <= skip_through || line.trim().is_empty() {
                    continue;
                }
                push(number, parse(&line), &mut chunk)?;
            }
        }
        Format::Csv => {
            let mut reader = csv::ReaderBuilder::new()
                .flexible(false)
                .from_reader(BufReader::with_capacity(1 << 20, input));
            let headers = reader
                .headers()
                .map_err(|e| format!("cannot read the CSV header: {e}"))?
                .clone();
            let mut record = csv::StringRecord::new();
            loop {
                match reader.read_record(&mut record) {
                    Ok(false) => break,
                    Ok(true) => {
                        let line = record.position().map_or(0, |p| p.line());
                        let item = csv_item(&headers, &record, kind).and_then(|text| parse(&text));
                        push(line, item, &mut chunk)?;
                    }
                    Err(error) => {
                        let line = error.position().map_or(0, |p| p.line());
                        if matches!(error.kind(), csv::ErrorKind::Io(_)) {
                            return Err(format!("cannot read input: {error}"));
                        }
                        push(line, Err(format!("not valid CSV: {error}")), &mut chunk)?;
                    }
                }
            }
        }
    }
    send(sender, chunk, &count)
}

fn send(
    sender: &tokio::sync::mpsc::Sender<Result<Chunk, String>>,
    mut chunk: Chunk,
    count: &std::sync::atomic::AtomicU64,
) -> Result<(), String> {
    chunk.bytes_read = count.load(std::sync::atomic::Ordering::Relaxed);
    sender
        .blocking_send(Ok(chunk))
        .map_err(|_| "the importer stopped".to_owned())
}

/// A CSV record as the JSON item the batch endpoints take.
fn csv_item(
    headers: &csv::StringRecord,
    record: &csv::StringRecord,
    kind: Kind,
) -> Result<String, String> {
    let mut item = Map::new();
    let mut fields = Map::new();
    for (header, cell) in headers.iter().zip(record.iter()) {
        let header = header.trim();
        if cell.is_empty() {
            continue;
        }
        let fixed = match (kind, header) {
            (_, "email") => Some(Value::from(cell)),
            (Kind::Subscribers, "tags" | "remove_tags") => Some(Value::from(cell)),
            (Kind::Events, "type" | "date") => Some(Value::from(cell)),
            (Kind::Events, "details") => Some(
                serde_json::from_str::<Value>(cell)
                    .map_err(|e| format!("details is not valid JSON: {e}"))?,
            ),
            _ => None,
        };
        match fixed {
            Some(value) => {
                item.insert(header.to_owned(), value);
            }
            None => {
                fields.insert(header.to_owned(), infer(cell));
            }
        }
    }
    match kind {
        Kind::Subscribers => item.extend(fields),
        Kind::Events => {
            if !fields.is_empty() {
                item.insert("fields".into(), Value::Object(fields));
            }
        }
    }
    Ok(Value::Object(item).to_string())
}

/// A CSV cell's value: booleans and plain numbers typed, the rest text.
fn infer(cell: &str) -> Value {
    match cell {
        "true" => return Value::Bool(true),
        "false" => return Value::Bool(false),
        _ => {}
    }
    let digits = cell.strip_prefix('-').unwrap_or(cell);
    let leading_zero = digits.len() > 1 && digits.starts_with('0') && !digits.starts_with("0.");
    if !leading_zero && digits.starts_with(|c: char| c.is_ascii_digit()) {
        if let Ok(n) = cell.parse::<i64>() {
            return Value::from(n);
        }
        if let Ok(x) = cell.parse::<f64>()
            && x.is_finite()
        {
            return Value::from(x);
        }
    }
    Value::from(cell)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_typed_conservatively() {
        assert_eq!(infer("42"), Value::from(42));
        assert_eq!(infer("-3.5"), Value::from(-3.5));
        assert_eq!(infer("0.25"), Value::from(0.25));
        assert_eq!(infer("01234"), Value::from("01234"));
        assert_eq!(infer("true"), Value::from(true));
        assert_eq!(infer("1e3x"), Value::from("1e3x"));
        assert_eq!(infer("NaN"), Value::from("NaN"));
        assert_eq!(infer("inf"), Value::from("inf"));
    }

    #[test]
    fn csv_rows_become_batch_items() {
        let headers = csv::StringRecord::from(vec!["email", "tags", "Plan", "seats", "zip"]);
        let record = csv::StringRecord::from(vec!["a@x.com", "lead,vip", "pro", "3", ""]);
        let item: Value =
            serde_json::from_str(&csv_item(&headers, &record, Kind::Subscribers).unwrap()).unwrap();
        assert_eq!(
            item,
            serde_json::json!({"email": "a@x.com", "tags": "lead,vip", "Plan": "pro", "seats": 3})
        );
        let headers = csv::StringRecord::from(vec!["type", "email", "details", "plan"]);
        let record = csv::StringRecord::from(vec!["$pageview", "a@x.com", r#"{"url":"/"}"#, "pro"]);
        let item: Value =
            serde_json::from_str(&csv_item(&headers, &record, Kind::Events).unwrap()).unwrap();
        assert_eq!(
            item,
            serde_json::json!({"type": "$pageview", "email": "a@x.com", "details": {"url": "/"}, "fields": {"plan": "pro"}})
        );
    }
}
