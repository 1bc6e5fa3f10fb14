//! `corral segment stats|match|preview|members`: live evaluation from the
//! command line, on the database directly, with the API's answers (`--json`
//! prints exactly what the HTTP API would).
//!
//! `members` exports every member as CSV or JSON Lines, streaming: the
//! members are evaluated once (or, with `--at`, read from the segment's
//! journal as they were then), then written a thousand records at a time,
//! with a progress bar on a terminal, to stdout or to a file created for its
//! owner only.

use super::{CliError, outln, print_json, site_by_uuid};
use crate::clock::{Clock, SystemClock};
use crate::live::{CheckpointSettings, Evaluation, Heads, Live};
use crate::segment::{FieldErrors, QUERY_FIELD, SegmentId};
use crate::service::{EvaluationError, Evaluations};
use crate::storage::{Site, Store};
use crate::wire::audience::SubscriberResource;
use crate::wire::evaluation::{
    MatchEnvelope, MatchResult, MemberColumns, Preview, PreviewEnvelope,
};
use clap::ValueEnum;
use corral_core::audience::{Email, Subscriber};
use corral_core::engine::Node;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Member records fetched and written at a time by `members`.
const EXPORT_CHUNK: usize = 1_000;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    /// A header row, then uuid, email, created_at, unsubscribed_at and the fields (see --fields)
    Csv,
    /// One subscriber a line, as the API shows it
    Jsonl,
}

/// How a CSV export writes the members' fields.
#[derive(Debug, Clone, Copy, Default, ValueEnum)]
pub enum CsvFields {
    /// A field:KEY column per field key of the site, each value as text
    #[default]
    Columns,
    /// One fields column holding them as a JSON object
    Json,
}

/// How `members` writes: the format (by the output's name when not given)
/// and, in CSV, the fields.
#[derive(Debug, Clone, Copy)]
pub struct ExportAs {
    pub format: Option<ExportFormat>,
    pub fields: CsvFields,
}

/// Where a query to evaluate comes from.
pub enum Target {
    Saved(String),
    Unsaved(Option<PathBuf>),
}

/// A segment id as given on the command line.
fn segment_id(id: &str) -> Result<SegmentId, CliError> {
    SegmentId::parse(id).ok_or_else(|| CliError::Usage(format!("{id:?} is not a segment id")))
}

/// An evaluation's failure, in the command line's words.
fn failed(error: EvaluationError, id: Option<SegmentId>) -> CliError {
    match error {
        EvaluationError::SegmentNotFound => CliError::Usage(match id {
            Some(id) => format!("segment {id} not found on this site"),
            None => "segment not found on this site".into(),
        }),
        EvaluationError::Invalid(errors) => errors.into(),
        EvaluationError::Live(crate::live::LiveError::Storage(e)) => e.into(),
        EvaluationError::Live(crate::live::LiveError::NotEvaluable(e)) => {
            FieldErrors::from(crate::segment::FieldError::new(QUERY_FIELD, e.to_string())).into()
        }
    }
}

/// Live evaluation for one command: it reads the server's checkpoints in
/// `checkpoints` when there are any (and brings them up to the database's
/// position, as the server does), never writes them.
pub fn live(store: &Arc<dyn Store>, checkpoints: Option<PathBuf>) -> Live {
    let feed: Arc<dyn crate::storage::ChangeFeed> = store.clone();
    let heads = Arc::new(Heads::new(Arc::clone(&feed)));
    Live::with_heads(
        feed,
        heads,
        checkpoints.map(|dir| CheckpointSettings { dir, write: false }),
    )
}

/// The site (by uuid) and the members of a query of it, now: a saved
/// segment's, or a query read from a file and checked as saving would.
async fn evaluate(
    store: &Arc<dyn Store>,
    live: &Live,
    site: &str,
    target: Target,
) -> Result<(Site, Evaluation), CliError> {
    let site = site_by_uuid(store, site).await?;
    let evaluations = Evaluations::new(store.as_ref(), live);
    let now = SystemClock.now_ms();
    let evaluation = match target {
        Target::Saved(id) => {
            let id = segment_id(&id)?;
            evaluations
                .segment(site.id, id, now)
                .await
                .map_err(|e| failed(e, Some(id)))?
        }
        Target::Unsaved(path) => {
            let raw = super::query_input::read_query(path.as_deref())
                .map_err(|m| FieldErrors::from(crate::segment::FieldError::new(QUERY_FIELD, m)))?;
            evaluations
                .query(site.id, &raw, now)
                .await
                .map_err(|e| failed(e, None))?
        }
    };
    Ok((site, evaluation))
}

/// `segment stats`: Bento's three counts.
pub async fn stats(
    store: &Arc<dyn Store>,
    live: &Live,
    site: &str,
    id: String,
    json: bool,
) -> Result<(), CliError> {
    let (_, evaluation) = evaluate(store, live, site, Target::Saved(id)).await?;
    let counts = evaluation.counts();
    if json {
        return print_json(&counts);
    }
    outln!("members:      {}", counts.user_count)?;
    outln!("subscribed:   {}", counts.subscriber_count)?;
    outln!("unsubscribed: {}", counts.unsubscriber_count)
}

/// `segment match`: one subscriber's outcome, and why.
pub async fn explain(
    store: &Arc<dyn Store>,
    live: &Live,
    site: &str,
    id: String,
    who: Result<String, String>,
    json: bool,
) -> Result<(), CliError> {
    let site = site_by_uuid(store, site).await?;
    let segment = segment_id(&id)?;
    let evaluations = Evaluations::new(store.as_ref(), live);
    // The segment first: an unknown segment is told before an unknown
    // subscriber.
    evaluations
        .saved_query(site.id, segment)
        .await
        .map_err(|e| failed(e, Some(segment)))?;
    let subscriber = match &who {
        Ok(email) => {
            let email = Email::parse(email)
                .map_err(|m| FieldErrors::from(crate::segment::FieldError::new("email", m)))?;
            store.subscriber_by_email(site.id, &email).await?
        }
        Err(uuid) => store.subscriber_by_uuid(site.id, uuid.trim()).await?,
    }
    .ok_or_else(|| CliError::Usage("no such subscriber on this site".into()))?;
    let explanation = evaluations
        .explain_segment(site.id, segment, subscriber.id, SystemClock.now_ms())
        .await
        .map_err(|e| failed(e, Some(segment)))?
        .ok_or_else(|| CliError::Usage("no such subscriber on this site".into()))?;
    if json {
        let envelope = MatchEnvelope {
            data: MatchResult {
                segment_id: id,
                matched: explanation.matched,
                subscriber: SubscriberResource::from(&subscriber),
                manual: explanation.manual.map(|m| m.as_str()),
                explanation: explanation.root,
            },
        };
        return print_json(&envelope);
    }
    outln!(
        "{} is {}in segment {id}",
        subscriber.email,
        if explanation.matched { "" } else { "not " }
    )?;
    if let Some(manual) = explanation.manual {
        outln!("{}, whatever the query says", manual.as_str())?;
    }
    print_node(&explanation.root, 0)
}

fn print_node(node: &Node, depth: usize) -> Result<(), CliError> {
    let mark = if node.matched { "yes" } else { "no " };
    let at = if node.at.is_empty() {
        "(query)"
    } else {
        &node.at
    };
    let facts = node
        .facts
        .as_ref()
        .map(|f| format!("  {f}"))
        .unwrap_or_default();
    outln!(
        "{mark} {}{} {at}{facts}",
        "  ".repeat(depth),
        node.condition
    )?;
    for child in &node.children {
        print_node(child, depth + 1)?;
    }
    Ok(())
}

/// `segment preview`: what an unsaved query would select.
pub async fn preview(
    store: &Arc<dyn Store>,
    live: &Live,
    site: &str,
    query: Option<PathBuf>,
    sample: usize,
    json: bool,
) -> Result<(), CliError> {
    let (site, evaluation) = evaluate(store, live, site, Target::Unsaved(query)).await?;
    let (ids, _) = evaluation.page(None, sample);
    let counts = evaluation.counts();
    drop(evaluation);
    let sample = store.subscribers_by_ids(site.id, &ids).await?;
    if json {
        let envelope = PreviewEnvelope {
            data: Preview {
                user_count: counts.user_count,
                subscriber_count: counts.subscriber_count,
                unsubscriber_count: counts.unsubscriber_count,
                sample: sample.iter().map(SubscriberResource::from).collect(),
            },
        };
        return print_json(&envelope);
    }
    outln!(
        "members: {} ({} subscribed, {} unsubscribed)",
        counts.user_count,
        counts.subscriber_count,
        counts.unsubscriber_count
    )?;
    for s in &sample {
        outln!("  {} {}", s.uuid, s.email)?;
    }
    Ok(())
}

/// `segment members`: every member, exported.
pub async fn members(
    store: &Arc<dyn Store>,
    live: &Live,
    site: &str,
    id: String,
    at: Option<&str>,
    export: ExportAs,
    output: Option<&Path>,
) -> Result<(), CliError> {
    let output = output.filter(|path| path.as_os_str() != "-");
    let format = export
        .format
        .unwrap_or_else(|| ExportFormat::for_output(output));
    let (site, ids) = match at {
        Some(at) => super::history::members_at(store, site, &id, at).await?,
        None => {
            let (site, evaluation) = evaluate(store, live, site, Target::Saved(id)).await?;
            (site, evaluation.member_ids())
        }
    };
    let total = ids.len();
    let columns = match (format, export.fields) {
        (ExportFormat::Csv, CsvFields::Columns) => {
            Some(MemberColumns::PerField(store.field_keys(site.id).await?))
        }
        (ExportFormat::Csv, CsvFields::Json) => Some(MemberColumns::FieldsJson),
        (ExportFormat::Jsonl, _) => None,
    };
    let out: Box<dyn Write> = match output {
        Some(path) => Box::new(
            private_file(path)
                .map_err(|e| CliError::Usage(format!("cannot write {}: {e}", path.display())))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let progress = ProgressBar::new(total as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} members {per_sec} eta {eta}")
            .expect("valid template"),
    );
    let mut written = 0usize;
    let result: Result<(), CliError> = async {
        let mut sink = Sink::new(columns, out)?;
        for chunk in ids.chunks(EXPORT_CHUNK) {
            let rows = store.subscribers_by_ids(site.id, chunk).await?;
            for s in &rows {
                sink.write(s)?;
            }
            written += rows.len();
            progress.set_position(written as u64);
        }
        sink.flush()
    }
    .await;
    progress.finish_and_clear();
    // A closed pipe (`… | head`) ends the command quietly, in `cli::main`.
    result?;
    eprintln!(
        "{} exported",
        super::counted(written as u64, "member", "members")
    );
    Ok(())
}

/// The file an export is written to, emptied: created readable and
/// writable by its owner only (it holds subscribers' data, and `File::create`
/// would let every local user read it, 0666 less the umask). A file that was
/// there keeps the mode its owner gave it.
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

impl ExportFormat {
    /// The format an export takes when none is given: CSV for a file named
    /// `*.csv`, JSON Lines otherwise (`*.jsonl`, `*.json`, stdout).
    fn for_output(output: Option<&Path>) -> Self {
        match output {
            Some(path) if super::import::has_extension(path, "csv") => Self::Csv,
            _ => Self::Jsonl,
        }
    }
}

/// Where exported members go, in their format: CSV in its columns, or
/// JSON Lines.
enum Sink {
    Csv(Box<csv::Writer<Box<dyn Write>>>, MemberColumns),
    Jsonl(std::io::BufWriter<Box<dyn Write>>),
}

impl Sink {
    /// CSV in `columns` when given, else JSON Lines.
    fn new(columns: Option<MemberColumns>, out: Box<dyn Write>) -> Result<Self, CliError> {
        Ok(match columns {
            Some(columns) => {
                let mut w = csv::Writer::from_writer(out);
                w.write_record(columns.header()).map_err(csv_error)?;
                Self::Csv(Box::new(w), columns)
            }
            None => Self::Jsonl(std::io::BufWriter::new(out)),
        })
    }

    fn write(&mut self, s: &Subscriber) -> Result<(), CliError> {
        match self {
            Self::Csv(w, columns) => w.write_record(columns.record(s)).map_err(csv_error),
            Self::Jsonl(out) => {
                serde_json::to_writer(&mut *out, &SubscriberResource::from(s)).map_err(
                    |e| match e.io_error_kind() {
                        Some(kind) => CliError::Io(kind.into()),
                        None => CliError::Usage(e.to_string()),
                    },
                )?;
                out.write_all(b"\n")?;
                Ok(())
            }
        }
    }

    fn flush(&mut self) -> Result<(), CliError> {
        match self {
            Self::Csv(w, _) => w.flush()?,
            Self::Jsonl(out) => out.flush()?,
        }
        Ok(())
    }
}

/// A CSV writer's error, keeping an I/O error as one (a closed pipe must
/// still be recognised as such).
fn csv_error(e: csv::Error) -> CliError {
    if !e.is_io_error() {
        return CliError::Usage(e.to_string());
    }
    match e.into_kind() {
        csv::ErrorKind::Io(e) => CliError::Io(e),
        other => CliError::Usage(format!("{other:?}")),
    }
}
