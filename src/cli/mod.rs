//! The `corral` command line: `serve` runs the HTTP server; `site`, `key` and
//! `segment` administer the database directly, through the same
//! [`Store`] and the same validation as the API.
//!
//! Every command takes `--database URL` (env `CORRAL_DATABASE_URL`, default
//! `sqlite://corral.db`). Output meant for programs (`--json`) goes to stdout
//! in the API's shapes; a failure is one line on stderr and exit status 1.
//!
//! Everything meant for stdout goes through [`outln!`] (or, for the bulk of
//! `segment members`, a writer over [`std::io::stdout`]) and returns its
//! error: a reader that went away (`corral … | head`) surfaces as a
//! [`std::io::ErrorKind::BrokenPipe`] that [`main`] turns into a quiet exit
//! with status 0, as `grep` or `rg` do, rather than a panic.

mod admin;
mod audit;
mod backup;
mod code;
mod copy;
mod evaluate;
mod history;
mod import;
mod manual;
mod overlap;
mod query_input;
pub mod retention;
mod segment;
mod serve;
mod signal;
mod subscriber;
mod webhook;

use crate::config::{ConfigError, FileConfig};
use crate::segment::FieldErrors;
use crate::storage::{self, DEFAULT_DATABASE_URL, Site, StorageError, Store};
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Prints a line on stdout, like `println!`, but returns the failure
/// (`Result<(), CliError>`) instead of panicking, so that a closed pipe ends
/// the command quietly (see [`main`]).
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::write_line(::std::format_args!($($arg)*))
    };
}
pub(crate) use outln;

#[derive(Debug, Parser)]
#[command(
    name = "corral",
    version,
    about = "Self-hosted audience segments, speaking Bento's Segments API"
)]
pub struct Cli {
    /// Database URL: sqlite://PATH or postgres://USER:PASSWORD@HOST:PORT/DB
    /// [default: sqlite://corral.db]
    #[arg(long, global = true, env = "CORRAL_DATABASE_URL")]
    database: Option<String>,
    /// Settings file [default: ./corral.toml when present]
    #[arg(long, global = true, env = "CORRAL_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP server.
    Serve(serve::ServeArgs),
    /// Create and list sites.
    #[command(subcommand)]
    Site(admin::SiteCommand),
    /// Issue, list and revoke a site's API key pairs.
    #[command(subcommand)]
    Key(admin::KeyCommand),
    /// Manage a site's segments.
    #[command(subcommand)]
    Segment(segment::SegmentCommand),
    /// A site's segments as a folder of JSON files: pull, diff, push.
    #[command(subcommand)]
    Segments(code::SegmentsCommand),
    /// One subscriber: the segments they are in, their recent events.
    #[command(subcommand)]
    Subscriber(subscriber::SubscriberCommand),
    /// Manage a site's membership-change webhooks and see their deliveries.
    #[command(subcommand)]
    Webhook(webhook::WebhookCommand),
    /// Bulk-import subscribers or events from JSON Lines or CSV.
    #[command(subcommand)]
    Import(import::ImportCommand),
    /// A site's management actions, newest first: who did what, when.
    Audit(audit::AuditArgs),
    /// Copy a whole database into another (SQLite to PostgreSQL, or back).
    Copy(copy::CopyArgs),
    /// Back up a SQLite database while the server runs (a consistent copy).
    Backup(backup::BackupArgs),
    /// Generate a realistic synthetic audience (deterministic from a seed).
    #[command(long_about = corral_gen::GEN_ABOUT)]
    Gen {
        #[command(flatten)]
        args: corral_gen::GenArgs,
        #[command(flatten)]
        _unused: NoDatabase,
    },
}

/// `gen` touches no database and reads no settings, and `copy` names its two
/// databases itself, so their help does not offer `--database` and `--config`. They are still accepted, and ignored,
/// so that any `corral` command line takes `--database URL`: an argument of
/// a subcommand with a global argument's id keeps clap from adding the
/// global one there.
#[derive(Debug, clap::Args)]
#[allow(dead_code, reason = "parsed only to be ignored")]
struct NoDatabase {
    #[arg(long, hide = true)]
    database: Option<String>,
    #[arg(long, hide = true)]
    config: Option<PathBuf>,
}

/// Whatever a command can fail with; printed as one line.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Storage(#[from] StorageError),
    #[error("{0}")]
    Invalid(#[from] FieldErrors),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Segment(#[from] crate::service::SegmentError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A copy failed part way (`step`: "writing events", "committing"):
    /// its transaction was rolled back, the target is as it was.
    #[error("the copy failed while {step}, so nothing was copied: {source}")]
    CopyFailed { step: String, source: StorageError },
    /// Stopped on request (Ctrl-C, SIGTERM), saying how far it got.
    #[error("{0}")]
    Stopped(String),
    /// `corral segments diff` found something to do (exit status 2, as
    /// `diff` and `terraform plan -detailed-exitcode`); its plan is printed.
    #[error("there are changes to push")]
    Differs,
    /// An edit of a segment's includes or excludes named emails no
    /// subscriber has (exit status 3); the others were applied.
    #[error(
        "{unknown} of {asked} emails named no subscriber of the site: nothing was made for \
         them, and the others were applied"
    )]
    SomeUnknown { unknown: usize, asked: usize },
}

/// Runs the command line and turns its outcome into an exit status.
///
/// A closed stdout is not a failure: the reader took what it wanted.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // A server arms them once it is up (its start writes too).
    if !matches!(cli.command, Command::Serve(_)) {
        crate::faults::arm_from_env();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        // As a shell reports a command stopped by Ctrl-C.
        Err(e @ CliError::Stopped(_)) => {
            eprintln!("{e}");
            ExitCode::from(130)
        }
        Err(CliError::Differs) => ExitCode::from(2),
        // Not a failure: what could be done was; the unknown emails are
        // named on stderr before this line.
        Err(e @ CliError::SomeUnknown { .. }) => {
            eprintln!("{e}");
            ExitCode::from(3)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), CliError> {
    if let Command::Gen { args, .. } = &cli.command {
        return outln!("{}", corral_gen::run(args)?);
    }
    if let Command::Copy(args) = cli.command {
        // It names its two databases itself and reads no settings file.
        return copy::run(args).await;
    }
    let file = FileConfig::load(cli.config.as_deref())?;
    let database = cli
        .database
        .or_else(|| file.database_url.clone())
        .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
    if !matches!(cli.command, Command::Serve(_))
        && let Ok(filter) = std::env::var("CORRAL_LOG")
    {
        // Other commands are quiet unless asked: `CORRAL_LOG=info corral …`.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
            .try_init();
    }
    if let Command::Backup(args) = cli.command {
        // Reads the file as it stands: no migration, nothing written.
        return backup::run(args, &database).await;
    }
    if let Command::Serve(args) = cli.command {
        return serve::run(args, &file, &database).await;
    }
    if let Command::Segments(command) = &cli.command
        && command.is_remote()
    {
        // A server's segments: no database is opened.
        let Command::Segments(command) = cli.command else {
            unreachable!("matched above")
        };
        return code::run(command, None).await;
    }
    let store = open(&database).await?;
    let result = match cli.command {
        Command::Site(command) => admin::site(command, &store).await,
        Command::Key(command) => admin::key(command, &store).await,
        Command::Segment(command) => {
            // Evaluating commands read the server's checkpoints (never write
            // them): a whole read of a large audience takes seconds.
            let checkpoints = serve::checkpoint_dir(
                std::env::var("CORRAL_CHECKPOINT_DIR").ok(),
                &file,
                &database,
            );
            segment::run(command, &store, checkpoints).await
        }
        Command::Subscriber(command) => {
            let checkpoints = serve::checkpoint_dir(
                std::env::var("CORRAL_CHECKPOINT_DIR").ok(),
                &file,
                &database,
            );
            subscriber::run(command, &store, checkpoints).await
        }
        Command::Webhook(command) => {
            let checkpoints = serve::checkpoint_dir(
                std::env::var("CORRAL_CHECKPOINT_DIR").ok(),
                &file,
                &database,
            );
            webhook::run(command, &store, checkpoints).await
        }
        Command::Segments(command) => code::run(command, Some(&store)).await,
        Command::Import(command) => import::run(command, &store).await,
        Command::Audit(args) => audit::run(args, &store).await,
        Command::Serve(_) | Command::Gen { .. } | Command::Copy(_) | Command::Backup(_) => {
            unreachable!("handled before the database is opened")
        }
    };
    // Also after a failure: what was committed is folded into the file.
    store.close().await;
    result
}

/// `n` things, the noun as one or many: `1 bad line`, `2 bad lines`.
pub(crate) fn counted(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `--site UUID`: the site a command acts on.
#[derive(Debug, clap::Args)]
pub struct SiteArg {
    /// The site's uuid.
    #[arg(long = "site")]
    pub(crate) uuid: String,
}

/// Opens (and migrates) the database, or says which one could not be opened.
pub(crate) async fn open(database: &str) -> Result<Arc<dyn Store>, CliError> {
    storage::open(database).await.map_err(|e| {
        let reason = match e {
            // Its message repeats the URL as given, password included.
            StorageError::UnsupportedUrl(_) => {
                return CliError::Usage(format!(
                    "unsupported database URL {:?}: use sqlite://PATH or postgres://USER@HOST:PORT/DB",
                    redact(database)
                ));
            }
            // The database's own words ("unable to open database file").
            StorageError::Database(message) => message,
            other => other.to_string(),
        };
        CliError::Usage(format!(
            "cannot open the database {}: {reason}",
            redact(database)
        ))
    })
}

/// A database URL fit for a message or a log line: no password, whether in
/// the user information (`postgres://user:pw@host/db`) or in the query
/// (`?password=…`). A SQLite URL names a file, whose path may hold an `@`.
pub(crate) fn redact(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut redacted = match (base.find("://"), base.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme && !base.starts_with("sqlite:") => {
            format!("{}://***{}", &base[..scheme], &base[at..])
        }
        _ => base.to_owned(),
    };
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        redacted.push('?');
        redacted.push_str(&pairs.join("&"));
    }
    redacted
}

/// The site a `--site UUID` names, or a clear error.
async fn site_by_uuid(store: &Arc<dyn Store>, uuid: &str) -> Result<Site, CliError> {
    store
        .find_site(uuid)
        .await?
        .ok_or_else(|| CliError::Usage(format!("no site has the uuid {uuid:?}")))
}

/// Writes one line on stdout; the body of [`outln!`].
pub(crate) fn write_line(args: std::fmt::Arguments<'_>) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_fmt(args)?;
    out.write_all(b"\n")?;
    Ok(())
}

/// Prints a value as one line of JSON.
fn print_json(value: &impl serde::Serialize) -> Result<(), CliError> {
    let text = serde_json::to_string(value)
        .map_err(|e| CliError::Usage(format!("cannot print the answer as JSON: {e}")))?;
    outln!("{text}")
}

/// A segment id as given on the command line.
pub(crate) fn parse_id(id: &str) -> Result<crate::segment::SegmentId, CliError> {
    crate::segment::SegmentId::parse(id)
        .ok_or_else(|| CliError::Usage(format!("{id:?} is not a segment id")))
}

/// A segment service's error, a missing segment named by its id.
pub(crate) fn segment_error(
    error: crate::service::SegmentError,
    id: crate::segment::SegmentId,
) -> CliError {
    match error {
        crate::service::SegmentError::NotFound => {
            CliError::Usage(format!("segment {id} not found on this site"))
        }
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_from_urls() {
        assert_eq!(redact("postgres://u:pw@host/db"), "postgres://***@host/db");
        assert_eq!(
            redact("postgres://u@host/db?sslmode=require&password=pw"),
            "postgres://***@host/db?sslmode=require&password=***"
        );
        assert_eq!(redact("sqlite://corral.db"), "sqlite://corral.db");
        assert_eq!(redact("sqlite://a.db?mode=rwc"), "sqlite://a.db?mode=rwc");
        assert_eq!(redact("sqlite:///home/a@b/x.db"), "sqlite:///home/a@b/x.db");
        assert_eq!(redact("postgres://u:p/w@host/db"), "postgres://***@host/db");
    }
}

#[cfg(test)]
mod help_tests {
    use super::Cli;
    use clap::CommandFactory;

    /// Every argument of every command says what it is for in `--help`.
    #[test]
    fn every_flag_and_argument_has_help() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") || arg.is_hide_set() {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in command.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "corral", &mut missing);
        assert!(missing.is_empty(), "without help:\n{}", missing.join("\n"));
    }
}
