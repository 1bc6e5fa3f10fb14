//! `corral segments pull|diff|push DIR`: a site's kept segments as a folder
//! of JSON files, one a segment, to be reviewed, versioned and applied like
//! code, against a running server (`--url`, the site's keys) or a database
//! (`--database`).
//!
//! `pull` writes `DIR/<slug of the name>.json` (`id`, `name`,
//! `description`, `visitor_event_query`, pretty-printed with the query's
//! literals and key order as saved, references to other segments written
//! by name) and `DIR/segments.lock`, each segment's file and version (ETag)
//! at the pull; pulling twice writes the same bytes. `diff` prints what
//! `push` would do and exits 2 when it would do anything (0 when not, 1 on
//! error). `push` checks every file first and applies nothing if one is
//! invalid; then creates, updates with `If-Match` on the version pulled (a
//! segment changed on the server since is refused and named, the rest
//! applied), and discards segments without a file only with `--prune`.

mod remote;
mod text;

use super::{CliError, outln};
use crate::segment::{Description, SegmentName};
use crate::storage::Store;
use clap::Subcommand;
use remote::{Definition, Refused, Remote, Saved};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The lock file's name in a segments folder.
const LOCK: &str = "segments.lock";

#[derive(Debug, Subcommand)]
pub enum SegmentsCommand {
    /// Write every kept segment of the site to DIR/<slug>.json, and
    /// DIR/segments.lock with the version of each.
    Pull {
        /// The folder to write (made when missing).
        dir: PathBuf,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Print what `push` would do; exit 0 when nothing, 2 when something,
    /// 1 on error.
    Diff {
        /// The folder of segment files, as `pull` writes them.
        dir: PathBuf,
        /// Count segments without a file as to be discarded.
        #[arg(long)]
        prune: bool,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Make the site's segments what DIR says: create, update (refused for
    /// a segment changed on the site since the pull) and, with --prune,
    /// discard those without a file.
    Push {
        /// The folder of segment files, as `pull` writes them.
        dir: PathBuf,
        /// Discard the site's segments that have no file.
        #[arg(long)]
        prune: bool,
        /// Check and print the plan; change nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        target: TargetArgs,
    },
}

/// Which site, and where: a running server (`--url` and the site's keys),
/// or else the database (`--database`).
#[derive(Debug, clap::Args)]
pub struct TargetArgs {
    /// The site's uuid.
    #[arg(long = "site")]
    site: String,
    /// A running server's address (`http://HOST:PORT`); without it, the
    /// database is used directly.
    #[arg(long)]
    url: Option<String>,
    /// The site's publishable key (with --url).
    #[arg(long, env = "CORRAL_PUBLISHABLE_KEY")]
    publishable_key: Option<String>,
    /// The site's secret key (with --url).
    #[arg(long, env = "CORRAL_SECRET_KEY", hide_env_values = true)]
    secret_key: Option<String>,
}

impl SegmentsCommand {
    /// Whether the command goes to a server rather than a database.
    pub fn is_remote(&self) -> bool {
        self.target().url.is_some()
    }

    fn target(&self) -> &TargetArgs {
        match self {
            Self::Pull { target, .. } | Self::Diff { target, .. } | Self::Push { target, .. } => {
                target
            }
        }
    }
}

/// Runs the command against a server (`store` unused) or the database.
pub async fn run(command: SegmentsCommand, store: Option<&Arc<dyn Store>>) -> Result<(), CliError> {
    let target = command.target();
    let remote: Box<dyn Remote> = match (&target.url, store) {
        (Some(url), _) => {
            let (Some(pk), Some(sk)) = (&target.publishable_key, &target.secret_key) else {
                return Err(CliError::Usage(
                    "--url needs the site's keys: --publishable-key and --secret-key (or CORRAL_PUBLISHABLE_KEY and CORRAL_SECRET_KEY)".into(),
                ));
            };
            Box::new(remote::Server::new(
                url,
                &target.site,
                pk.clone(),
                sk.clone(),
            ))
        }
        (None, Some(store)) => {
            let site = super::site_by_uuid(store, &target.site).await?;
            // Segment writes record their members' changes over the audience.
            let journal: Arc<dyn crate::storage::journal::Evaluator> =
                Arc::new(super::evaluate::live(store, None));
            store.set_evaluator(Arc::downgrade(&journal));
            let now = crate::clock::Clock::now_ms(&crate::clock::SystemClock);
            let remote = remote::Database {
                store: Arc::clone(store),
                site_id: site.id,
                now,
            };
            // The evaluator lives as long as the command.
            let result = execute(command, &remote).await;
            drop(journal);
            return result;
        }
        (None, None) => unreachable!("the database is opened without --url"),
    };
    execute(command, remote.as_ref()).await
}

async fn execute(command: SegmentsCommand, remote: &dyn Remote) -> Result<(), CliError> {
    match command {
        SegmentsCommand::Pull { dir, .. } => pull(&dir, remote).await,
        SegmentsCommand::Diff { dir, prune, .. } => {
            let plan = plan(&dir, remote, prune).await?;
            print_plan(&plan)?;
            if plan.is_empty() {
                Ok(())
            } else {
                Err(CliError::Differs)
            }
        }
        SegmentsCommand::Push {
            dir,
            prune,
            dry_run,
            ..
        } => {
            let plan = plan(&dir, remote, prune).await?;
            print_plan(&plan)?;
            if dry_run || plan.is_empty() {
                return Ok(());
            }
            apply(&dir, remote, plan).await
        }
    }
}

// ---------------------------------------------------------------------------
// Files.

/// One segment file as read: its file name and what it says.
#[derive(Debug, Clone)]
struct File {
    name: String,
    id: Option<String>,
    definition: Definition,
}

/// The lock file: per segment file, the segment's id and version at the
/// last pull or push.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Lock {
    segments: Vec<Locked>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Locked {
    file: String,
    id: String,
    etag: String,
}

fn read_lock(dir: &Path) -> Result<Lock, CliError> {
    match std::fs::read_to_string(dir.join(LOCK)) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| {
            CliError::Usage(format!(
                "{}: not a segments lock file: {e}",
                dir.join(LOCK).display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Lock::default()),
        Err(e) => Err(e.into()),
    }
}

fn write_lock(dir: &Path, mut lock: Lock) -> Result<(), CliError> {
    lock.segments.sort_by(|a, b| a.file.cmp(&b.file));
    let mut text = serde_json::to_string_pretty(&lock).expect("the lock serialises");
    text.push('\n');
    write_if_changed(&dir.join(LOCK), &text)
}

fn write_if_changed(path: &Path, text: &str) -> Result<(), CliError> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(());
    }
    std::fs::write(path, text)?;
    Ok(())
}

/// A file name for a segment's name: lowercase letters and digits, words
/// joined by `-` (at most 60 characters; `segment` when none is left).
fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
        if out.len() >= 60 {
            break;
        }
    }
    let out = out.trim_end_matches('-');
    if out.is_empty() {
        "segment".to_owned()
    } else {
        out.to_owned()
    }
}

/// A segment's file: its fields in a fixed order, the query indented with
/// its literals as saved.
fn file_text(saved: &Saved, query: &str) -> String {
    let string = |s: &str| serde_json::to_string(s).expect("a string serialises");
    format!(
        "{{\n  \"id\": {},\n  \"name\": {},\n  \"description\": {},\n  \"visitor_event_query\": {}\n}}\n",
        string(&saved.id),
        string(&saved.name),
        saved
            .description
            .as_deref()
            .map_or("null".to_owned(), string),
        text::pretty(query, 1),
    )
}

/// `name:NAME` for a reference to a segment of `by_id`.
fn named_refs(query: &str, by_id: &HashMap<&str, &str>) -> Result<String, CliError> {
    text::rewrite_refs(query, |_, id| {
        Ok(by_id
            .get(id)
            .map_or_else(|| id.to_owned(), |name| format!("name:{name}")))
    })
    .map_err(CliError::Usage)
}

async fn pull(dir: &Path, remote: &dyn Remote) -> Result<(), CliError> {
    std::fs::create_dir_all(dir)?;
    let mut saved = remote.list().await?;
    saved.sort_by(|a, b| {
        a.name
            .to_lowercase()
            .cmp(&b.name.to_lowercase())
            .then(a.id.cmp(&b.id))
    });
    let by_id: HashMap<&str, &str> = saved
        .iter()
        .map(|s| (s.id.as_str(), s.name.as_str()))
        .collect();
    let old = read_lock(dir)?;
    let mut taken: HashMap<String, usize> = HashMap::new();
    for s in &saved {
        *taken.entry(slug(&s.name)).or_default() += 1;
    }
    let mut lock = Lock::default();
    for s in &saved {
        let base = slug(&s.name);
        // Two names with one slug: each file also says its id.
        let file = if taken[&base] > 1 {
            format!("{base}-{}.json", s.id)
        } else {
            format!("{base}.json")
        };
        let query = named_refs(&s.query, &by_id)?;
        write_if_changed(&dir.join(&file), &file_text(s, &query))?;
        lock.segments.push(Locked {
            file,
            id: s.id.clone(),
            etag: s.etag.clone(),
        });
    }
    // Files of segments no longer kept, that an earlier pull wrote.
    for gone in old
        .segments
        .iter()
        .filter(|o| !lock.segments.iter().any(|l| l.file == o.file))
    {
        match std::fs::remove_file(dir.join(&gone.file)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
    }
    let count = lock.segments.len();
    write_lock(dir, lock)?;
    outln!(
        "pulled {count} segment{} into {}",
        if count == 1 { "" } else { "s" },
        dir.display()
    )
}

/// Every `*.json` file of `dir`, in name order, checked: a JSON object of
/// `id` (optional), `name`, `description` (optional) and
/// `visitor_event_query`. Every problem is listed, each with its file and
/// JSON pointer.
fn read_files(dir: &Path) -> Result<Vec<File>, Vec<String>> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".json"))
            .collect(),
        Err(e) => return Err(vec![format!("{}: {e}", dir.display())]),
    };
    names.sort();
    let mut files = Vec::new();
    let mut problems = Vec::new();
    for name in names {
        let path = dir.join(&name);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) => {
                problems.push(format!("{name}: {e}"));
                continue;
            }
        };
        match read_file(&name, &text) {
            Ok(file) => files.push(file),
            Err(mut found) => problems.append(&mut found),
        }
    }
    if problems.is_empty() {
        Ok(files)
    } else {
        Err(problems)
    }
}

fn read_file(name: &str, text: &str) -> Result<File, Vec<String>> {
    let problem = |pointer: &str, message: &str| format!("{name}: {pointer}: {message}");
    let fields: BTreeMap<String, Box<serde_json::value::RawValue>> = serde_json::from_str(text)
        .map_err(|e| vec![problem("", &format!("not a JSON object: {e}"))])?;
    let mut problems = Vec::new();
    for key in fields.keys() {
        if !["id", "name", "description", "visitor_event_query"].contains(&key.as_str()) {
            problems.push(problem(
                &format!("/{key}"),
                "is not a field of a segment file",
            ));
        }
    }
    let string = |key: &str, problems: &mut Vec<String>| -> Option<Option<String>> {
        let raw = fields.get(key)?;
        match serde_json::from_str::<Option<String>>(raw.get()) {
            Ok(value) => Some(value),
            Err(_) => {
                problems.push(problem(&format!("/{key}"), "must be a string"));
                None
            }
        }
    };
    let id = string("id", &mut problems).flatten();
    if let Some(id) = &id
        && corral_core::query::ast::segment_id(id).is_none()
    {
        problems.push(problem(
            "/id",
            "must be a segment id (a whole number from 1)",
        ));
    }
    let name_text = match string("name", &mut problems) {
        Some(Some(text)) => Some(text),
        _ => {
            if !fields.contains_key("name") {
                problems.push(problem("/name", "is required"));
            }
            None
        }
    };
    if let Some(text) = &name_text
        && let Err(message) = SegmentName::parse(text)
    {
        problems.push(problem("/name", &message));
    }
    let description = string("description", &mut problems).flatten();
    if let Some(text) = &description
        && let Err(message) = Description::parse(text)
    {
        problems.push(problem("/description", &message));
    }
    let query = match fields.get("visitor_event_query") {
        Some(raw) if raw.get().trim_start().starts_with('{') => Some(text::compact(raw.get())),
        Some(_) => {
            problems.push(problem("/visitor_event_query", "must be a JSON object"));
            None
        }
        None => {
            problems.push(problem("/visitor_event_query", "is required"));
            None
        }
    };
    match (name_text, query) {
        (Some(name_text), Some(query)) if problems.is_empty() => Ok(File {
            name: name.to_owned(),
            id,
            definition: Definition {
                name: name_text,
                description,
                query,
            },
        }),
        _ => Err(problems),
    }
}

// ---------------------------------------------------------------------------
// The plan.

#[derive(Debug)]
enum Step {
    Create {
        file: String,
        definition: Definition,
    },
    Update {
        file: String,
        saved: Saved,
        /// The version pulled: the update's `If-Match`.
        etag: String,
        definition: Definition,
    },
    Discard {
        saved: Saved,
        etag: String,
    },
}

#[derive(Debug, Default)]
struct Plan {
    steps: Vec<Step>,
    unchanged: usize,
    /// Segments without a file, kept without --prune.
    kept: Vec<Saved>,
}

impl Plan {
    fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

/// What pushing `dir` would do. The files' references by name are
/// resolved to the ids of the site's segments (a file's own segment's name
/// stands for it); those naming a segment a file creates are left as
/// `name:` and resolved when it exists.
async fn plan(dir: &Path, remote: &dyn Remote, prune: bool) -> Result<Plan, CliError> {
    let files = read_files(dir).map_err(|problems| {
        CliError::Usage(format!(
            "nothing was applied: {} problem{} in {}:\n  {}",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" },
            dir.display(),
            problems.join("\n  ")
        ))
    })?;
    let lock = read_lock(dir)?;
    let saved = remote.list().await?;
    let by_id: HashMap<&str, &Saved> = saved.iter().map(|s| (s.id.as_str(), s)).collect();
    let by_name: HashMap<String, &Saved> =
        saved.iter().map(|s| (s.name.to_lowercase(), s)).collect();
    let locked: HashMap<&str, &Locked> =
        lock.segments.iter().map(|l| (l.file.as_str(), l)).collect();
    let locked_etag: HashMap<&str, &str> = lock
        .segments
        .iter()
        .map(|l| (l.id.as_str(), l.etag.as_str()))
        .collect();
    // Which segment each file is: its id, else the lock's, else its name.
    let mut matched: Vec<(File, Option<&Saved>)> = Vec::new();
    let mut problems = Vec::new();
    let mut names: HashMap<String, &str> = HashMap::new();
    for file in &files {
        if let Some(other) = names.insert(file.definition.name.to_lowercase(), &file.name) {
            problems.push(format!(
                "{}: /name: {:?} is also the name in {other}",
                file.name, file.definition.name
            ));
        }
    }
    for file in files.iter().cloned() {
        let id = file
            .id
            .clone()
            .or_else(|| locked.get(file.name.as_str()).map(|l| l.id.clone()));
        let target = match &id {
            Some(id) => by_id.get(id.as_str()).copied(),
            None => by_name.get(&file.definition.name.to_lowercase()).copied(),
        };
        matched.push((file, target));
    }
    // References by name: to a file's segment (its id, or left for when it
    // is created), else to a kept segment of the site.
    let file_targets: HashMap<String, Option<String>> = matched
        .iter()
        .map(|(f, t)| (f.definition.name.to_lowercase(), t.map(|s| s.id.clone())))
        .collect();
    let saved_names: HashMap<String, &str> = saved
        .iter()
        .map(|s| (s.name.to_lowercase(), s.id.as_str()))
        .collect();
    for (file, _) in &mut matched {
        let resolved = text::rewrite_refs(&file.definition.query, |pointer, value| {
            let Some(name) = value.strip_prefix("name:") else {
                return Ok(value.to_owned());
            };
            let key = name.to_lowercase();
            match (file_targets.get(&key), saved_names.get(&key)) {
                (Some(Some(id)), _) => Ok(id.clone()),
                (Some(None), _) => Ok(value.to_owned()),
                (None, Some(id)) => Ok((*id).to_owned()),
                (None, None) => Err(format!(
                    "{}: /visitor_event_query{pointer}: no segment is named {name:?}",
                    file.name
                )),
            }
        });
        match resolved {
            Ok(query) => {
                // The grammar, with a reference still by name standing for
                // some segment (the site checks which when it is saved).
                let standing = text::rewrite_refs(&query, |_, value| {
                    Ok(if value.starts_with("name:") {
                        "1".into()
                    } else {
                        value.to_owned()
                    })
                })
                .unwrap_or_else(|_| query.clone());
                let mut errors = crate::segment::FieldErrors::default();
                let raw = corral_core::query::RawQuery::from_stored(standing);
                crate::segment::check_query(&raw, &mut errors);
                for error in errors.0 {
                    let pointer = error
                        .field
                        .strip_prefix(crate::segment::QUERY_FIELD)
                        .unwrap_or(&error.field);
                    problems.push(format!(
                        "{}: /visitor_event_query{pointer}: {}",
                        file.name, error.message
                    ));
                }
                file.definition.query = query;
            }
            Err(problem) => problems.push(problem),
        }
    }
    if !problems.is_empty() {
        return Err(CliError::Usage(format!(
            "nothing was applied: {} problem{} in {}:\n  {}",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" },
            dir.display(),
            problems.join("\n  ")
        )));
    }
    let mut plan = Plan::default();
    let mut seen = Vec::new();
    for (file, target) in matched {
        match target {
            None => plan.steps.push(Step::Create {
                file: file.name,
                definition: file.definition,
            }),
            Some(saved) => {
                seen.push(saved.id.clone());
                let same = saved.name == file.definition.name
                    && saved.description == file.definition.description
                    && saved.query == file.definition.query;
                if same {
                    plan.unchanged += 1;
                } else {
                    let etag = locked_etag
                        .get(saved.id.as_str())
                        .map_or_else(|| saved.etag.clone(), |e| (*e).to_owned());
                    plan.steps.push(Step::Update {
                        file: file.name,
                        saved: saved.clone(),
                        etag,
                        definition: file.definition,
                    });
                }
            }
        }
    }
    for s in &saved {
        if seen.contains(&s.id) {
            continue;
        }
        if prune {
            let etag = locked_etag
                .get(s.id.as_str())
                .map_or_else(|| s.etag.clone(), |e| (*e).to_owned());
            plan.steps.push(Step::Discard {
                saved: s.clone(),
                etag,
            });
        } else {
            plan.kept.push(s.clone());
        }
    }
    Ok(plan)
}

fn print_plan(plan: &Plan) -> Result<(), CliError> {
    for step in &plan.steps {
        match step {
            Step::Create { file, definition } => {
                outln!("create   {file}  {:?}", definition.name)?;
            }
            Step::Update {
                file,
                saved,
                definition,
                ..
            } => {
                outln!(
                    "update   {file}  {:?} (segment {})",
                    definition.name,
                    saved.id
                )?;
                print_changes(saved, definition)?;
            }
            Step::Discard { saved, .. } => {
                outln!("discard  segment {}  {:?} (no file)", saved.id, saved.name)?;
            }
        }
    }
    for s in &plan.kept {
        outln!(
            "keep     segment {}  {:?} has no file (--prune discards it)",
            s.id,
            s.name
        )?;
    }
    let (create, update, discard) = plan.steps.iter().fold((0, 0, 0), |(c, u, d), s| match s {
        Step::Create { .. } => (c + 1, u, d),
        Step::Update { .. } => (c, u + 1, d),
        Step::Discard { .. } => (c, u, d + 1),
    });
    outln!(
        "{create} to create, {update} to update, {discard} to discard, {} unchanged",
        plan.unchanged
    )
}

/// The fields that differ, the query as a unified diff of its indented
/// form.
fn print_changes(saved: &Saved, definition: &Definition) -> Result<(), CliError> {
    if saved.name != definition.name {
        outln!("  name: {:?} -> {:?}", saved.name, definition.name)?;
    }
    if saved.description != definition.description {
        outln!(
            "  description: {:?} -> {:?}",
            saved.description,
            definition.description
        )?;
    }
    if saved.query != definition.query {
        let old = text::pretty(&saved.query, 0) + "\n";
        let new = text::pretty(&definition.query, 0) + "\n";
        let diff = similar::TextDiff::from_lines(&old, &new);
        let unified = diff
            .unified_diff()
            .context_radius(3)
            .header("site", "file")
            .to_string();
        for line in unified.lines() {
            outln!("  {line}")?;
        }
    }
    Ok(())
}

async fn apply(dir: &Path, remote: &dyn Remote, plan: Plan) -> Result<(), CliError> {
    let mut lock = read_lock(dir)?;
    let mut applied = Vec::new();
    let mut refused = Vec::new();
    let record = |lock: &mut Lock, file: &str, saved: &Saved| {
        lock.segments.retain(|l| l.file != file && l.id != saved.id);
        lock.segments.push(Locked {
            file: file.to_owned(),
            id: saved.id.clone(),
            etag: saved.etag.clone(),
        });
    };
    // Creations first, a segment named by another's reference before it.
    let mut creates: Vec<(String, Definition)> = Vec::new();
    let mut others = Vec::new();
    for step in plan.steps {
        match step {
            Step::Create { file, definition } => creates.push((file, definition)),
            other => others.push(other),
        }
    }
    // Discards last, a segment before those it refers to (a segment
    // another refers to cannot be discarded).
    let refers = |step: &Step, id: &str| match step {
        Step::Discard { saved, .. } => refs_of(&saved.query).iter().any(|r| r == id),
        _ => false,
    };
    let mut ordered = Vec::with_capacity(others.len());
    let (mut discards, updates): (Vec<Step>, Vec<Step>) = others
        .into_iter()
        .partition(|s| matches!(s, Step::Discard { .. }));
    ordered.extend(updates);
    while !discards.is_empty() {
        let free = discards
            .iter()
            .position(|d| {
                let Step::Discard { saved, .. } = d else {
                    return true;
                };
                !discards.iter().any(|other| refers(other, &saved.id))
            })
            .unwrap_or(0);
        ordered.push(discards.remove(free));
    }
    let others = ordered;
    let mut created: HashMap<String, String> = HashMap::new();
    while !creates.is_empty() {
        let ready = creates.iter().position(|(_, d)| {
            pending_names(&d.query)
                .iter()
                .all(|n| created.contains_key(n))
        });
        let Some(at) = ready else {
            for (file, _) in &creates {
                refused.push(format!(
                    "{file}: refers by name to a segment that could not be created (or to itself)"
                ));
            }
            break;
        };
        let (file, mut definition) = creates.remove(at);
        definition.query = resolve_created(&definition.query, &created);
        match remote.create(&definition).await {
            Ok(saved) => {
                created.insert(definition.name.to_lowercase(), saved.id.clone());
                record(&mut lock, &file, &saved);
                applied.push(format!("created {file} as segment {}", saved.id));
            }
            Err(why) => refused.push(refusal(&file, why)?),
        }
    }
    for step in others {
        match step {
            Step::Update {
                file,
                saved,
                etag,
                mut definition,
            } => {
                definition.query = resolve_created(&definition.query, &created);
                match remote.update(&saved.id, &etag, &definition).await {
                    Ok(new) => {
                        record(&mut lock, &file, &new);
                        applied.push(format!("updated segment {} from {file}", saved.id));
                    }
                    Err(why) => refused.push(refusal(&file, why)?),
                }
            }
            Step::Discard { saved, etag } => match remote.discard(&saved.id, &etag).await {
                Ok(()) => {
                    lock.segments.retain(|l| l.id != saved.id);
                    applied.push(format!("discarded segment {} {:?}", saved.id, saved.name));
                }
                Err(why) => refused.push(refusal(&format!("segment {}", saved.id), why)?),
            },
            Step::Create { .. } => unreachable!("creations were taken out"),
        }
    }
    write_lock(dir, lock)?;
    for line in &applied {
        outln!("{line}")?;
    }
    if refused.is_empty() {
        return Ok(());
    }
    Err(CliError::Usage(format!(
        "{} applied, {} refused:\n  {}",
        applied.len(),
        refused.len(),
        refused.join("\n  ")
    )))
}

/// A refused step as one line; a failure of the call ends the push.
fn refusal(what: &str, why: Refused) -> Result<String, CliError> {
    match why {
        Refused::Changed => Ok(format!(
            "{what}: the segment changed on the site since it was pulled (pull again, then push)"
        )),
        Refused::Invalid(message) => Ok(format!("{what}: {message}")),
        Refused::Failed(error) => Err(error),
    }
}

/// The targets of `query`'s references, as written.
fn refs_of(query: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let _ = text::rewrite_refs(query, |_, value| {
        targets.push(value.to_owned());
        Ok(value.to_owned())
    });
    targets
}

/// The names `name:` references of `query` still wait for (lowercase).
fn pending_names(query: &str) -> Vec<String> {
    let mut names = Vec::new();
    let _ = text::rewrite_refs(query, |_, value| {
        if let Some(name) = value.strip_prefix("name:") {
            names.push(name.to_lowercase());
        }
        Ok(value.to_owned())
    });
    names
}

/// `query` with its `name:` references to segments just created as their
/// ids.
fn resolve_created(query: &str, created: &HashMap<String, String>) -> String {
    text::rewrite_refs(query, |_, value| {
        Ok(value
            .strip_prefix("name:")
            .and_then(|name| created.get(&name.to_lowercase()))
            .cloned()
            .unwrap_or_else(|| value.to_owned()))
    })
    .unwrap_or_else(|_| query.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_lowercase_words_joined_by_dashes() {
        assert_eq!(slug("VIP customers"), "vip-customers");
        assert_eq!(slug("  Big spenders (H2) -- 2026!"), "big-spenders-h2-2026");
        assert_eq!(slug("日本"), "segment");
        assert_eq!(slug(&"a".repeat(100)).len(), 60);
    }

    #[test]
    fn a_file_must_hold_a_segment_and_says_where_it_does_not() {
        let problems = read_file(
            "x.json",
            r#"{"id":"x","name":"","colour":1,"visitor_event_query":[]}"#,
        )
        .unwrap_err();
        assert_eq!(
            problems,
            [
                "x.json: /colour: is not a field of a segment file",
                "x.json: /id: must be a segment id (a whole number from 1)",
                "x.json: /name: can't be blank",
                "x.json: /visitor_event_query: must be a JSON object",
            ]
        );
        let file = read_file(
            "ok.json",
            "{\"name\": \"VIP\",\n \"visitor_event_query\": {\"tag\": {\"has\": \"vip\"}}}",
        )
        .unwrap();
        assert_eq!(file.definition.query, r#"{"tag":{"has":"vip"}}"#);
        assert_eq!(file.id, None);
    }
}
