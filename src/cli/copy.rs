//! `corral copy --from URL --to URL`: moves a whole database to another, of
//! either backend (SQLite to PostgreSQL when moving up, or back), through
//! [`crate::storage::transfer`]. The source is read as one consistent
//! snapshot (it may stay in use meanwhile), a page at a time in each table's
//! key order, on a task of its own, while the target writes the pages before
//! in one transaction: memory stays bounded however large the audience, and
//! the copy is all or nothing, since only the last step commits; a failure or
//! Ctrl-C leaves the target as it was. A target that already holds a site is
//! refused unless `--replace` is given, and then it is emptied inside that
//! same transaction. Ids, uuids, versions, timestamps and the change heads
//! are copied as they are, so the copy answers every request as the source
//! did; the change log's entries are not (a server on the copy reads each
//! site whole once), and the target is given a new database id of its own.

use super::{CliError, outln, print_json, redact};
use crate::storage::transfer::{Cursor, Rows, Table, TransferReader};
use crate::storage::{self, StorageError, Store};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, Args)]
#[command(after_help = "\
The copy is all or nothing: it is written in one transaction on the target, committed \
only at the end, so a failure or Ctrl-C leaves the target as it was. The source may stay \
in use: what is copied is the source as it stood when the copy began.

Copied: sites, API keys (revoked ones too), segments (discarded ones too), subscribers, \
tags, fields, events, and webhooks with their secrets, the members of the segments they \
watch and their notifications (delivered and waiting), segment versions, the segments' \
hand-made includes and excludes, the audit log and the membership journal (every join and \
leave, with its event id), with their ids, uuids, versions and timestamps, and each site's \
change-log position. Not copied: the change log's entries and the database's own id; \
checkpoints are never copied either, so a server on the copy reads each site whole once.")]
pub struct CopyArgs {
    /// The database to copy: sqlite://PATH or postgres://USER@HOST:PORT/DB
    #[arg(long, value_name = "URL")]
    from: String,
    /// The database to copy into, created or migrated as needed; it must hold
    /// no site, unless --replace is given
    #[arg(long, value_name = "URL")]
    to: String,
    /// Delete everything the target holds first, in the same transaction as
    /// the copy (so a copy that fails keeps the target's data)
    #[arg(long)]
    replace: bool,
    /// Print the rows copied as one JSON object
    #[arg(long)]
    json: bool,
    /// Rows read and written at a time
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    page: u64,
    /// Accepted and ignored, as by `gen`: the two databases are named above.
    #[command(flatten)]
    _unused: super::NoDatabase,
}

/// Rows copied, per table, in [`Table::ALL`]'s order.
#[derive(Debug, Default, serde::Serialize)]
struct Counts {
    sites: u64,
    api_keys: u64,
    segments: u64,
    subscribers: u64,
    tags: u64,
    subscriber_tags: u64,
    fields: u64,
    events: u64,
    webhooks: u64,
    segment_watches: u64,
    segment_members: u64,
    webhook_deliveries: u64,
    segment_versions: u64,
    segment_manual: u64,
    audit_log: u64,
    segment_journals: u64,
    journal_sites: u64,
    journal_days: u64,
    journal_members: u64,
    segment_transitions: u64,
    change_heads: u64,
}

impl Counts {
    fn of(&mut self, table: Table) -> &mut u64 {
        match table {
            Table::Sites => &mut self.sites,
            Table::ApiKeys => &mut self.api_keys,
            Table::Segments => &mut self.segments,
            Table::Subscribers => &mut self.subscribers,
            Table::Tags => &mut self.tags,
            Table::SubscriberTags => &mut self.subscriber_tags,
            Table::Fields => &mut self.fields,
            Table::Events => &mut self.events,
            Table::Webhooks => &mut self.webhooks,
            Table::SegmentWatches => &mut self.segment_watches,
            Table::SegmentMembers => &mut self.segment_members,
            Table::WebhookDeliveries => &mut self.webhook_deliveries,
            Table::SegmentVersions => &mut self.segment_versions,
            Table::SegmentManual => &mut self.segment_manual,
            Table::AuditLog => &mut self.audit_log,
            Table::SegmentJournals => &mut self.segment_journals,
            Table::JournalSites => &mut self.journal_sites,
            Table::JournalDays => &mut self.journal_days,
            Table::JournalMembers => &mut self.journal_members,
            Table::SegmentTransitions => &mut self.segment_transitions,
            Table::ChangeHeads => &mut self.change_heads,
        }
    }
}

/// What the reading task sends the writer.
enum Read {
    /// A table begins, with its number of rows.
    Table(Table, u64),
    Rows(Rows),
    /// The last message: the ids the source has handed out.
    HandedOut(Vec<(Table, i64)>),
}

pub async fn run(args: CopyArgs) -> Result<(), CliError> {
    if args.from == args.to {
        return Err(CliError::Usage(
            "--from and --to name the same database".into(),
        ));
    }
    // Opening a SQLite URL creates the file: a misspelt source would be
    // copied as an empty database.
    if let Some(path) = storage::sqlite_file(&args.from)
        && !path.exists()
    {
        return Err(CliError::Usage(format!(
            "no database to copy at {}",
            path.display()
        )));
    }
    let source = super::open(&args.from).await?;
    let target = match super::open(&args.to).await {
        Ok(target) => target,
        Err(e) => {
            source.close().await;
            return Err(e);
        }
    };
    let started = Instant::now();
    let result = tokio::select! {
        result = copy(&source, &target, &args) => result,
        _ = tokio::signal::ctrl_c() => Err(CliError::Usage(
            "interrupted: nothing was copied, the target is as it was".into(),
        )),
    };
    // After the copy's transactions are dropped (rolled back unless committed).
    source.close().await;
    target.close().await;
    let counts = result?;
    if args.json {
        return print_json(&counts);
    }
    let mut counts = counts;
    let width = Table::ALL.iter().map(|t| t.name().len()).max().unwrap_or(0);
    outln!("{:<width$}  {:>12}", "table", "rows copied")?;
    for table in Table::ALL {
        outln!("{:<width$}  {:>12}", table.name(), counts.of(table))?;
    }
    outln!(
        "copied {} to {} in {:.1} s",
        redact(&args.from),
        redact(&args.to),
        started.elapsed().as_secs_f64()
    )
}

async fn copy(
    source: &Arc<dyn Store>,
    target: &Arc<dyn Store>,
    args: &CopyArgs,
) -> Result<Counts, CliError> {
    // The same database under two URLs (another host name, a symbolic link):
    // its id says so.
    if source.database_id().await? == target.database_id().await? {
        return Err(CliError::Usage(
            "--from and --to name the same database".into(),
        ));
    }
    let mut writer = target.begin_write().await?;
    let sites = writer.count_sites().await?;
    if sites > 0 {
        if !args.replace {
            return Err(CliError::Usage(format!(
                "{} already holds {sites} site{}: copy into an empty database, or pass \
                 --replace to delete everything it holds first",
                redact(&args.to),
                if sites == 1 { "" } else { "s" }
            )));
        }
        writer.clear().await?;
    }

    let reader = source.begin_read().await?;
    // One page read ahead while the one before is written.
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Result<Read, StorageError>>(1);
    let page = args.page as usize;
    let reading = tokio::spawn(async move {
        if let Err(e) = read_all(reader, page, &sender).await {
            let _ = sender.send(Err(e)).await;
        }
    });

    let mut counts = Counts::default();
    let mut progress: Option<(Table, ProgressBar)> = None;
    let mut handed_out = Vec::new();
    let result = async {
        while let Some(read) = receiver.recv().await {
            match read? {
                Read::Table(table, rows) => {
                    if let Some((_, bar)) = progress.take() {
                        bar.finish_and_clear();
                    }
                    progress = Some((table, table_bar(table, rows)));
                }
                Read::Rows(rows) => {
                    let table = rows.table();
                    writer
                        .write(&rows)
                        .await
                        .map_err(|source| CliError::CopyFailed {
                            step: format!("writing {}", table.name()),
                            source,
                        })?;
                    *counts.of(table) += rows.len() as u64;
                    if let Some((_, bar)) = &progress {
                        bar.inc(rows.len() as u64);
                    }
                }
                Read::HandedOut(ids) => handed_out = ids,
            }
        }
        Ok::<_, CliError>(())
    }
    .await;
    if let Some((_, bar)) = progress.take() {
        bar.finish_and_clear();
    }
    // A write that failed leaves the reader waiting on a full channel.
    drop(receiver);
    let _ = reading.await;
    result?;
    writer
        .finish(&handed_out)
        .await
        .map_err(|source| CliError::CopyFailed {
            step: "committing".into(),
            source,
        })?;
    Ok(counts)
}

/// Reads every table of the snapshot, page by page, into `sender`.
async fn read_all(
    mut reader: Box<dyn TransferReader>,
    page: usize,
    sender: &tokio::sync::mpsc::Sender<Result<Read, StorageError>>,
) -> Result<(), StorageError> {
    let stopped = || StorageError::ReadFailed("the writer has stopped".into());
    for table in Table::ALL {
        let rows = reader.count(table).await?;
        sender
            .send(Ok(Read::Table(table, rows)))
            .await
            .map_err(|_| stopped())?;
        let mut after: Option<Cursor> = None;
        loop {
            let page = reader.read_page(table, after, page).await?;
            if !page.rows.is_empty() {
                sender
                    .send(Ok(Read::Rows(page.rows)))
                    .await
                    .map_err(|_| stopped())?;
            }
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
    }
    let handed_out = reader.handed_out().await?;
    sender
        .send(Ok(Read::HandedOut(handed_out)))
        .await
        .map_err(|_| stopped())?;
    Ok(())
}

/// A table's progress bar on stderr (drawn only on a terminal).
fn table_bar(table: Table, rows: u64) -> ProgressBar {
    ProgressBar::new(rows)
        .with_style(
            ProgressStyle::with_template(
                "{prefix:>16} {bar:40} {human_pos}/{human_len} {per_sec} eta {eta}",
            )
            .expect("valid template"),
        )
        .with_prefix(table.name())
}
