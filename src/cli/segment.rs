//! `corral segment …`: segment management on the database directly, with the
//! API's rules and, with `--json`, the API's output shape (`{"data":…}`).
//! Every change is recorded as made by `cli` (the site's audit log, a
//! segment's versions). A segment's hand-made includes and excludes are
//! `segment includes|excludes …` ([`super::manual`]).

use super::query_input::read_query;
use super::{CliError, SiteArg, outln, parse_id, segment_error, site_by_uuid};
use crate::clock::{Clock, SystemClock, format_ms};
use crate::segment::manual::ManualList;
use crate::segment::{Listing, Segment};
use crate::service::segments::SegmentDraft;
use crate::service::{SegmentError, Segments};
use crate::storage::audit::{Actor, SegmentVersion};
use crate::storage::{Precondition, Store};
use crate::wire::history::version_list_body;
use crate::wire::segments::{segment_body, segment_list_body};
use clap::Subcommand;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Subcommand)]
pub enum SegmentCommand {
    /// List a site's kept (or discarded) segments in name order.
    List {
        #[command(flatten)]
        site: SiteArg,
        /// List discarded segments instead.
        #[arg(long)]
        discarded: bool,
        /// Print the answer as the API's JSON body, not as text.
        #[arg(long)]
        json: bool,
    },
    /// Show one segment with its query.
    Show {
        /// The segment's id.
        id: String,
        #[command(flatten)]
        site: SiteArg,
        /// Print the answer as the API's JSON body, not as text.
        #[arg(long)]
        json: bool,
    },
    /// Create a segment; the query is read from --query FILE, or stdin.
    Create {
        #[command(flatten)]
        site: SiteArg,
        /// The segment's name: unique among the site's kept segments, ignoring case.
        #[arg(long)]
        name: String,
        /// A description, for people.
        #[arg(long)]
        description: Option<String>,
        /// File holding the visitor_event_query JSON object; `-` or absent: stdin
        #[arg(long, value_name = "FILE|-")]
        query: Option<PathBuf>,
        /// Print the answer as the API's JSON body, not as text.
        #[arg(long)]
        json: bool,
    },
    /// Change a segment's name, description or query; what is not given is
    /// left as it is.
    Update {
        /// The segment's id.
        id: String,
        #[command(flatten)]
        site: SiteArg,
        /// A new name.
        #[arg(long)]
        name: Option<String>,
        /// A new description.
        #[arg(long, conflicts_with = "clear_description")]
        description: Option<String>,
        /// Remove the description.
        #[arg(long)]
        clear_description: bool,
        /// File holding the new query; `-`: stdin; absent: the query is unchanged
        #[arg(long, value_name = "FILE|-")]
        query: Option<PathBuf>,
        /// Print the answer as the API's JSON body, not as text.
        #[arg(long)]
        json: bool,
    },
    /// Discard (soft-delete) a segment.
    Discard {
        /// The segment's id.
        id: String,
        #[command(flatten)]
        site: SiteArg,
        /// Print the answer as the API's JSON body, not as text.
        #[arg(long)]
        json: bool,
    },
    /// Restore a discarded segment.
    Restore {
        /// The segment's id.
        id: String,
        #[command(flatten)]
        site: SiteArg,
        /// Print the answer as the API's JSON body, not as text.
        #[arg(long)]
        json: bool,
    },
    /// List every definition a segment was saved with, oldest first.
    Versions {
        /// The segment's id.
        id: String,
        #[command(flatten)]
        site: SiteArg,
        /// Print the answer as the API's JSON body, not as text.
        #[arg(long)]
        json: bool,
    },
    /// Make an earlier version's definition the segment's current one (as a
    /// new version).
    RestoreVersion {
        /// The segment's id.
        id: String,
        /// The version to restore, as `segment versions` lists it.
        version: String,
        #[command(flatten)]
        site: SiteArg,
        /// Print the answer as the API's JSON body, not as text.
        #[arg(long)]
        json: bool,
    },
    /// A segment's size over time, from its journal: one row per interval,
    /// the members at its end and the joins and leaves within it.
    History {
        /// The segment's id.
        id: String,
        #[command(flatten)]
        site: SiteArg,
        /// The series' start (ISO 8601 with a time zone) [default: --to less 30 days]
        #[arg(long, value_name = "ISO")]
        from: Option<String>,
        /// The series' end [default: now]
        #[arg(long, value_name = "ISO")]
        to: Option<String>,
        /// minute, hour, day, week (from Monday) or month; at most 1,000 rows [default: day]
        #[arg(long)]
        interval: Option<String>,
        /// Print {"data":[…],"meta":{"history_begins_at":…}} as the API does.
        #[arg(long)]
        json: bool,
    },
    /// A segment's joins and leaves in commit order, each with its instant
    /// and reason (what webhooks deliver).
    Changes {
        /// The segment's id.
        id: String,
        #[command(flatten)]
        site: SiteArg,
        /// Changes at or after this instant (ISO 8601 with a time zone) [default: from the first]
        #[arg(long, value_name = "ISO")]
        since: Option<String>,
        /// `meta.next_cursor` of the page before: the changes after it
        #[arg(long, value_name = "CURSOR")]
        after: Option<String>,
        /// Changes on the page, 1 to 1,000 [default: 100]
        #[arg(long, value_name = "N")]
        limit: Option<String>,
        /// Print {"data":[…],"meta":{"next_cursor":…}} as the API does.
        #[arg(long)]
        json: bool,
    },
    /// Count a segment's members now (Bento's segment stats).
    Stats {
        /// The segment's id.
        id: String,
        #[command(flatten)]
        site: SiteArg,
        /// Print the answer as the API's JSON body, not as text.
        #[arg(long)]
        json: bool,
    },
    /// How the members of 2 to 5 segments overlap now: every region of their
    /// Venn diagram, with the union and the intersection.
    Overlap {
        /// The segments' ids, 2 to 5.
        #[arg(required = true)]
        ids: Vec<String>,
        #[command(flatten)]
        site: SiteArg,
        /// Print {"data":{"segment_ids","regions","union","intersection"}} as the API does.
        #[arg(long)]
        json: bool,
    },
    /// Whether a subscriber is in a segment, and the outcome of every condition.
    Match {
        /// The segment's id.
        id: String,
        #[command(flatten)]
        site: SiteArg,
        /// The subscriber's email.
        #[arg(
            long,
            required_unless_present = "subscriber",
            conflicts_with = "subscriber"
        )]
        email: Option<String>,
        /// The subscriber's uuid.
        #[arg(long = "uuid")]
        subscriber: Option<String>,
        /// Print the answer as the API's JSON body, not as text.
        #[arg(long)]
        json: bool,
    },
    /// What an unsaved query would select: counts and a sample.
    Preview {
        #[command(flatten)]
        site: SiteArg,
        /// File holding the query; `-` or absent: stdin
        #[arg(long, value_name = "FILE|-")]
        query: Option<PathBuf>,
        /// How many members to show.
        #[arg(long, default_value_t = 10)]
        sample: usize,
        /// Print the answer as the API's JSON body, not as text.
        #[arg(long)]
        json: bool,
    },
    /// A segment's hand-made includes: subscribers who are members whatever
    /// the query says, unless excluded.
    #[command(subcommand)]
    Includes(super::manual::ManualCommand),
    /// A segment's hand-made excludes: subscribers who are never members,
    /// whatever the query says and even when included.
    #[command(subcommand)]
    Excludes(super::manual::ManualCommand),
    /// Export every member of a segment.
    Members {
        /// The segment's id.
        id: String,
        #[command(flatten)]
        site: SiteArg,
        /// Output format [default: csv for an --output ending in .csv, else jsonl]
        #[arg(long, value_enum)]
        format: Option<super::evaluate::ExportFormat>,
        /// How CSV writes the fields: a field:KEY column per field key of the
        /// site, or one fields column of JSON
        #[arg(long, value_enum, default_value_t, value_name = "HOW")]
        fields: super::evaluate::CsvFields,
        /// Write here instead of stdout (`-`: stdout)
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// The members at this instant (ISO 8601 with a time zone), as the
        /// segment's journal recorded them, rather than now
        #[arg(long, value_name = "ISO")]
        at: Option<String>,
    },
}

pub async fn run(
    command: SegmentCommand,
    store: &Arc<dyn Store>,
    checkpoints: Option<std::path::PathBuf>,
) -> Result<(), CliError> {
    let live = || super::evaluate::live(store, checkpoints.clone());
    // Segment writes record their members' changes over this audience.
    let journal: Arc<dyn crate::storage::journal::Evaluator> = Arc::new(live());
    store.set_evaluator(Arc::downgrade(&journal));
    let now = SystemClock.now_ms();
    match command {
        SegmentCommand::List {
            site,
            discarded,
            json,
        } => {
            let site = site_by_uuid(store, &site.uuid).await?;
            let listing = if discarded {
                Listing::Discarded
            } else {
                Listing::Kept
            };
            let segments = store.list_segments(site.id, listing).await?;
            if json {
                outln!("{}", String::from_utf8_lossy(&segment_list_body(&segments)))?;
            } else {
                outln!("{:>6}  {:<24}  name", "id", "updated_at")?;
                for s in &segments {
                    outln!("{:>6}  {:<24}  {}", s.id, format_ms(s.updated_at), s.name)?;
                }
            }
        }
        SegmentCommand::Show { id, site, json } => {
            let site = site_by_uuid(store, &site.uuid).await?;
            let id = parse_id(&id)?;
            let segment = store
                .get_segment(site.id, id)
                .await?
                .ok_or_else(|| segment_error(SegmentError::NotFound, id))?;
            print_segment(&segment, json)?;
        }
        SegmentCommand::Create {
            site,
            name,
            description,
            query,
            json,
        } => {
            let site = site_by_uuid(store, &site.uuid).await?;
            let draft = SegmentDraft {
                name: Some(Ok(name)),
                description: description.map(|d| Ok(Some(d))),
                query: Some(read_query(query.as_deref())),
                ..SegmentDraft::default()
            };
            let segment = Segments::new(store.as_ref())
                .create(site.id, draft, now, &Actor::Cli)
                .await?;
            print_segment(&segment, json)?;
        }
        SegmentCommand::Update {
            id,
            site,
            name,
            description,
            clear_description,
            query,
            json,
        } => {
            let site = site_by_uuid(store, &site.uuid).await?;
            let id = parse_id(&id)?;
            let draft = SegmentDraft {
                name: name.map(Ok),
                description: if clear_description {
                    Some(Ok(None))
                } else {
                    description.map(|d| Ok(Some(d)))
                },
                query: query.map(|path| read_query(Some(&path))),
                ..SegmentDraft::default()
            };
            let segment = Segments::new(store.as_ref())
                .update(site.id, id, draft, &Precondition::None, now, &Actor::Cli)
                .await
                .map_err(|e| segment_error(e, id))?;
            print_segment(&segment, json)?;
        }
        SegmentCommand::Discard { id, site, json } => {
            let site = site_by_uuid(store, &site.uuid).await?;
            let id = parse_id(&id)?;
            let segment = Segments::new(store.as_ref())
                .discard(site.id, id, &Precondition::None, now, &Actor::Cli)
                .await
                .map_err(|e| segment_error(e, id))?;
            print_segment(&segment, json)?;
        }
        SegmentCommand::Versions { id, site, json } => {
            let site = site_by_uuid(store, &site.uuid).await?;
            let id = parse_id(&id)?;
            let versions = Segments::new(store.as_ref())
                .versions(site.id, id)
                .await
                .map_err(|e| segment_error(e, id))?;
            print_versions(&versions, json)?;
        }
        SegmentCommand::RestoreVersion {
            id,
            version,
            site,
            json,
        } => {
            let site = site_by_uuid(store, &site.uuid).await?;
            let id = parse_id(&id)?;
            let n = corral_core::query::ast::segment_id(&version).ok_or_else(|| {
                CliError::Usage(format!(
                    "{version:?} is not a version (a whole number from 1)"
                ))
            })?;
            let segment = Segments::new(store.as_ref())
                .restore_version(site.id, id, n, &Precondition::None, now, &Actor::Cli)
                .await
                .map_err(|e| match e {
                    SegmentError::VersionNotFound => {
                        CliError::Usage(format!("segment {id} has no version {n}"))
                    }
                    other => segment_error(other, id),
                })?;
            print_segment(&segment, json)?;
        }
        SegmentCommand::History {
            id,
            site,
            from,
            to,
            interval,
            json,
        } => {
            let args = super::history::HistoryArgs {
                from,
                to,
                interval,
                json,
            };
            return super::history::history(store, &site.uuid, &id, args).await;
        }
        SegmentCommand::Changes {
            id,
            site,
            since,
            after,
            limit,
            json,
        } => {
            let args = super::history::ChangesArgs {
                since,
                after,
                limit,
                json,
            };
            return super::history::changes(store, &site.uuid, &id, args).await;
        }
        SegmentCommand::Stats { id, site, json } => {
            return super::evaluate::stats(store, &live(), &site.uuid, id, json).await;
        }
        SegmentCommand::Overlap { ids, site, json } => {
            return super::overlap::run(store, &live(), &site.uuid, &ids, json).await;
        }
        SegmentCommand::Match {
            id,
            site,
            email,
            subscriber,
            json,
        } => {
            let who = email.ok_or_else(|| subscriber.unwrap_or_default());
            return super::evaluate::explain(store, &live(), &site.uuid, id, who, json).await;
        }
        SegmentCommand::Preview {
            site,
            query,
            sample,
            json,
        } => {
            return super::evaluate::preview(store, &live(), &site.uuid, query, sample, json).await;
        }
        SegmentCommand::Members {
            id,
            site,
            format,
            fields,
            output,
            at,
        } => {
            return super::evaluate::members(
                store,
                &live(),
                &site.uuid,
                id,
                at.as_deref(),
                super::evaluate::ExportAs { format, fields },
                output.as_deref(),
            )
            .await;
        }
        SegmentCommand::Includes(command) => {
            return super::manual::run(store, ManualList::Includes, command).await;
        }
        SegmentCommand::Excludes(command) => {
            return super::manual::run(store, ManualList::Excludes, command).await;
        }
        SegmentCommand::Restore { id, site, json } => {
            let site = site_by_uuid(store, &site.uuid).await?;
            let id = parse_id(&id)?;
            let segment = Segments::new(store.as_ref())
                .restore(site.id, id, &Precondition::None, now, &Actor::Cli)
                .await
                .map_err(|e| segment_error(e, id))?;
            print_segment(&segment, json)?;
        }
    }
    Ok(())
}

/// A segment's versions, oldest first: one line each (version, when, who,
/// name), its query on the next.
fn print_versions(versions: &[SegmentVersion], json: bool) -> Result<(), CliError> {
    if json {
        return outln!("{}", String::from_utf8_lossy(&version_list_body(versions)));
    }
    for v in versions {
        let by = v.saved_by.as_ref().map_or("unknown", Actor::as_str);
        outln!(
            "{:>6}  {}  {:<32}  {}",
            v.version,
            format_ms(v.saved_at),
            by,
            v.definition.name
        )?;
        outln!("        {}", v.definition.query.as_str())?;
    }
    Ok(())
}

fn print_segment(segment: &Segment, json: bool) -> Result<(), CliError> {
    if json {
        return outln!("{}", String::from_utf8_lossy(&segment_body(segment)));
    }
    outln!("id:           {}", segment.id)?;
    outln!("name:         {}", segment.name)?;
    outln!(
        "description:  {}",
        segment.description.as_deref().unwrap_or("-")
    )?;
    outln!("created_at:   {}", format_ms(segment.created_at))?;
    outln!("updated_at:   {}", format_ms(segment.updated_at))?;
    if let Some(at) = segment.discarded_at {
        outln!("discarded_at: {}", format_ms(at))?;
    }
    outln!("query:        {}", segment.query.as_str())
}
