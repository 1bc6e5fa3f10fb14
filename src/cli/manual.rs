//! `corral segment includes|excludes add|remove|list ID`: a kept segment's
//! hand-made includes and excludes on the database directly, through the
//! same service as `…/segments/{id}/includes` and `/excludes`
//! ([`crate::service::manual`]), recorded as made by `cli`. Emails come as
//! arguments and from `--from-file PATH` (one a line, `-` for stdin), and
//! are applied 1,000 at a time, each thousand one edit of its own; `--json`
//! prints the route's body (an edit's, every thousand's lists joined; a
//! list's, every page in one). Emails no subscriber of the site has are
//! named on stderr and make the exit status 3, so that a script tells them
//! from an error (1).

use super::SiteArg;
use super::{CliError, outln, parse_id, print_json, site_by_uuid};
use crate::clock::{Clock, SystemClock, format_ms};
use crate::segment::SegmentId;
use crate::segment::manual::{MAX_EMAILS_PER_EDIT, ManualEdit, ManualEntry, ManualList};
use crate::service::manual::{self, ManualError};
use crate::storage::Store;
use crate::storage::audit::Actor;
use crate::wire::manual::{ManualEntryResource, ManualPage, ManualPageMeta, manual_edit_body};
use clap::{Args, Subcommand};
use corral_core::audience::Email;
use std::collections::HashSet;
use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How a list is read: subscribers a page at a time.
const PAGE: usize = 1_000;

const EDIT_HELP: &str = "\
Emails are given as arguments, or one a line in --from-file (blank lines are skipped), or \
both; an email named twice counts once. Every email is checked before anything is applied. \
They are applied 1,000 at a time, each thousand in a transaction of its own: after an error, \
the thousands before it are applied, and the same command can simply be run again (an email \
already in the list, or already out of it, is left unchanged).

Prints one line per email, `changed EMAIL` or `unchanged EMAIL`, then a summary; with --json, \
the API's answer {\"data\":{\"segment_id\",\"list\",\"changed\",\"unchanged\",\"unknown\"}}.

Exit status: 0 when every email is a subscriber of the site; 3 when some are not: each is \
named on stderr (`unknown EMAIL`), nothing is created for them, and the others are applied; \
1 on an error.";

/// `add`, `remove` or `list` of one of a segment's hand-made lists.
#[derive(Debug, Subcommand)]
pub enum ManualCommand {
    /// Put subscribers in the list, by email.
    #[command(after_help = EDIT_HELP)]
    Add(EditArgs),
    /// Take subscribers out of the list, by email.
    #[command(after_help = EDIT_HELP)]
    Remove(EditArgs),
    /// Every subscriber in the list: email, uuid and when each was put in.
    ///
    /// Under a header, in the API's order (the subscriber's id).
    List {
        /// The segment's id.
        id: String,
        #[command(flatten)]
        site: SiteArg,
        /// Print {"data":[{"uuid","email","added_at"}],"meta":{"count","next_cursor":null}}
        /// as the API's GET does, every page in one.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct EditArgs {
    /// The segment's id.
    id: String,
    /// The subscribers' emails.
    #[arg(value_name = "EMAIL")]
    emails: Vec<String>,
    #[command(flatten)]
    site: SiteArg,
    /// Read emails from this file too, one a line; `-`: stdin
    #[arg(long, value_name = "PATH|-")]
    from_file: Option<PathBuf>,
    /// Print the API's answer, every thousand's lists joined.
    #[arg(long)]
    json: bool,
}

/// `segment includes …` (`list` is the includes) or `segment excludes …`.
pub async fn run(
    store: &Arc<dyn Store>,
    list: ManualList,
    command: ManualCommand,
) -> Result<(), CliError> {
    match command {
        ManualCommand::Add(args) => edit(store, list, args, true).await,
        ManualCommand::Remove(args) => edit(store, list, args, false).await,
        ManualCommand::List { id, site, json } => show(store, list, &id, &site.uuid, json).await,
    }
}

/// The service's error as the command line says it.
fn manual_error(error: ManualError, id: SegmentId) -> CliError {
    match error {
        ManualError::SegmentNotFound => {
            CliError::Usage(format!("segment {id} not found on this site"))
        }
        ManualError::Invalid(errors) => errors.into(),
        ManualError::Storage(e) => e.into(),
    }
}

async fn edit(
    store: &Arc<dyn Store>,
    list: ManualList,
    args: EditArgs,
    add: bool,
) -> Result<(), CliError> {
    let site = site_by_uuid(store, &args.site.uuid).await?;
    let id = parse_id(&args.id)?;
    let emails = read_emails(&args.emails, args.from_file.as_deref())?;
    let mut outcome = ManualEdit::default();
    let mut done = 0;
    for chunk in emails.chunks(MAX_EMAILS_PER_EDIT) {
        let now = SystemClock.now_ms();
        let edit = manual::edit(
            store.as_ref(),
            site.id,
            id,
            list,
            chunk,
            add,
            now,
            &Actor::Cli,
        )
        .await
        .map_err(|e| match manual_error(e, id) {
            e if done == 0 => e,
            e => CliError::Usage(format!(
                "{e}; the first {done} of {} emails were applied before it (running the \
                 command again is safe)",
                emails.len()
            )),
        })?;
        done += chunk.len();
        outcome.changed.extend(edit.changed);
        outcome.unchanged.extend(edit.unchanged);
        outcome.unknown.extend(edit.unknown);
    }
    let unknown = outcome.unknown.clone();
    if args.json {
        print_json(&manual_edit_body(id, list, outcome))?;
    } else {
        for email in &outcome.changed {
            outln!("changed    {email}")?;
        }
        for email in &outcome.unchanged {
            outln!("unchanged  {email}")?;
        }
        let (changed, unchanged) = match (list, add) {
            (ManualList::Includes, true) => ("included", "already included"),
            (ManualList::Includes, false) => ("taken out", "not included"),
            (ManualList::Excludes, true) => ("excluded", "already excluded"),
            (ManualList::Excludes, false) => ("taken out", "not excluded"),
        };
        outln!(
            "segment {id} {}: {} {changed}, {} {unchanged}, {} unknown",
            list.as_str(),
            outcome.changed.len(),
            outcome.unchanged.len(),
            unknown.len()
        )?;
    }
    for email in &unknown {
        eprintln!("unknown    {email}");
    }
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(CliError::SomeUnknown {
            unknown: unknown.len(),
            asked: emails.len(),
        })
    }
}

/// The emails of the arguments, then of the file, each checked, each once
/// (as first given); at least one.
fn read_emails(given: &[String], file: Option<&Path>) -> Result<Vec<Email>, CliError> {
    let mut named: Vec<(String, String)> = given
        .iter()
        .enumerate()
        .map(|(i, e)| (format!("argument {}", i + 1), e.clone()))
        .collect();
    if let Some(path) = file {
        let (source, reader): (String, Box<dyn BufRead>) = if path.as_os_str() == "-" {
            if std::io::stdin().is_terminal() {
                // Otherwise the command would seem to hang.
                eprintln!("reading emails from stdin, one a line; end with Ctrl-D");
            }
            ("stdin".into(), Box::new(std::io::stdin().lock()))
        } else {
            let file = std::fs::File::open(path)
                .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", path.display())))?;
            (
                path.display().to_string(),
                Box::new(std::io::BufReader::new(file)),
            )
        };
        for (n, line) in reader.lines().enumerate() {
            let line = line.map_err(|e| CliError::Usage(format!("cannot read {source}: {e}")))?;
            if !line.trim().is_empty() {
                named.push((format!("line {} of {source}", n + 1), line));
            }
        }
    }
    if named.is_empty() {
        return Err(CliError::Usage(
            "name the subscribers' emails, as arguments or with --from-file PATH".into(),
        ));
    }
    let mut emails = Vec::with_capacity(named.len());
    let mut invalid = Vec::new();
    let mut seen = HashSet::new();
    for (place, text) in &named {
        match Email::parse(text) {
            Ok(email) => {
                if seen.insert(email.key()) {
                    emails.push(email);
                }
            }
            Err(message) => invalid.push(format!("{place}: {:?} {message}", text.trim())),
        }
    }
    match invalid.as_slice() {
        [] => Ok(emails),
        [one] => Err(CliError::Usage(format!("{one}; nothing was applied"))),
        [first, rest @ ..] => Err(CliError::Usage(format!(
            "{first} (and {} more not emails); nothing was applied",
            rest.len()
        ))),
    }
}

/// `list`: every page, under a header or as one JSON body.
async fn show(
    store: &Arc<dyn Store>,
    list: ManualList,
    id: &str,
    site: &str,
    json: bool,
) -> Result<(), CliError> {
    let site = site_by_uuid(store, site).await?;
    let id = parse_id(id)?;
    let mut after = None;
    let mut all: Vec<ManualEntry> = Vec::new();
    loop {
        let (entries, more) = manual::page(store.as_ref(), site.id, id, list, after, PAGE)
            .await
            .map_err(|e| manual_error(e, id))?;
        if json {
            all.extend(entries);
            after = all.last().map(|e| e.subscriber_id);
        } else {
            // Once the segment is known to be there.
            if after.is_none() {
                outln!("{:<32}  {:<32}  added_at", "email", "uuid")?;
            }
            after = entries.last().map(|e| e.subscriber_id);
            for e in &entries {
                outln!("{:<32}  {:<32}  {}", e.email, e.uuid, format_ms(e.added_at))?;
            }
        }
        if !more {
            break;
        }
    }
    if json {
        return print_json(&ManualPage {
            data: all.iter().map(ManualEntryResource::from).collect(),
            meta: ManualPageMeta {
                count: all.len() as i64,
                next_cursor: None,
            },
        });
    }
    Ok(())
}
