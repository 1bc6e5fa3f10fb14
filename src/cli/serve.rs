//! `corral serve`: settings resolved (flag, then environment, then
//! `corral.toml`, then default), logging set up, the database opened and
//! migrated, the demo site made on request (its segments and audience in
//! [`demo`]), and the server run until SIGTERM or Ctrl-C.
//!
//! The demo site's credentials are kept in `PATH-demo.json` beside the SQLite
//! file (readable by its owner only): the database keeps only a digest of
//! each secret, and without the file every start would have to issue (and
//! leave behind) another key pair.

use super::admin::create_site;
use super::retention::HistoryRetention;
use super::{CliError, outln, redact};
use crate::clock::{Clock, SystemClock};
use crate::config::{FileConfig, LogFormat};
use crate::credentials::{KeyPair, secret_matches};
use crate::http::conn::ConnectionSettings;
use crate::http::{self, AppState, HttpSettings};
use crate::live::{CHECKPOINT_INTERVAL, CheckpointSettings};
use crate::storage::actor::Actor;
use crate::storage::{self, Site, Store};
use clap::Args;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tracing_subscriber::EnvFilter;

mod demo;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, env = "CORRAL_LISTEN")]
    listen: Option<String>,
    /// Create a demo site with sample segments (once) and print working credentials.
    #[arg(long)]
    demo: bool,
    /// Requests a minute per key pair on /fetch/* and /batch/*; 0 turns limiting off [default: 100]
    #[arg(long, env = "CORRAL_RATE_LIMIT_PER_MINUTE")]
    rate_limit_per_minute: Option<u32>,
    /// Requests an hour per key pair on /stats/*; 0 turns limiting off [default: 60]
    #[arg(long, env = "CORRAL_STATS_RATE_LIMIT_PER_HOUR")]
    stats_rate_limit_per_hour: Option<u32>,
    /// Failed authentications a minute per client address; over it the
    /// address is answered 429 whatever it sends; 0 turns this off [default: 30]
    #[arg(long, env = "CORRAL_AUTH_FAILURES_PER_MINUTE")]
    auth_failures_per_minute: Option<u32>,
    /// Seconds a request may take before it is answered 503 [default: 30]
    #[arg(long, env = "CORRAL_REQUEST_TIMEOUT_SECS")]
    request_timeout_secs: Option<u64>,
    /// Log format [default: pretty]
    #[arg(long, env = "CORRAL_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormat>,
    /// Log filter, e.g. "info" or "corral=debug,info" [default: info]
    #[arg(long, env = "CORRAL_LOG")]
    log_level: Option<String>,
    /// Seconds a request's head may take to arrive once begun [default: 10]
    #[arg(long, env = "CORRAL_HEADER_READ_TIMEOUT_SECS")]
    header_read_timeout_secs: Option<u64>,
    /// Seconds a request's body may send nothing while it is read; then 408 [default: 10]
    #[arg(long, env = "CORRAL_BODY_READ_TIMEOUT_SECS")]
    body_read_timeout_secs: Option<u64>,
    /// Seconds a connection with no request in flight may stay silent, and a response
    /// the client takes nothing of may wait [default: 60]
    #[arg(long, env = "CORRAL_KEEP_ALIVE_TIMEOUT_SECS")]
    keep_alive_timeout_secs: Option<u64>,
    /// Connections open at once; at the cap the longest idle one is closed [default: 10000]
    #[arg(long, env = "CORRAL_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Connections open at once from one client address; over it that address's longest idle
    /// one is closed, or else the new one; 0 for no such cap [default: 256]
    #[arg(long, env = "CORRAL_MAX_CONNECTIONS_PER_ADDRESS")]
    max_connections_per_address: Option<usize>,
    /// Directory for checkpoints of the in-memory audience, or "off"
    /// [default: beside the SQLite file, PATH-checkpoints]
    #[arg(long, env = "CORRAL_CHECKPOINT_DIR")]
    checkpoint_dir: Option<String>,
    /// Let webhooks send to loopback, private and link-local addresses
    /// (refused otherwise, when saved and at every delivery)
    #[arg(long, env = "CORRAL_ALLOW_PRIVATE_WEBHOOK_TARGETS")]
    allow_private_webhook_targets: bool,
    /// Sites to read at start and keep in memory: "all", or site UUIDs
    /// (separated by spaces or commas); /readyz answers 503 until they are
    /// read
    #[arg(long, env = "CORRAL_PRELOAD", num_args = 1.., value_delimiter = ',')]
    preload: Vec<String>,
    /// Days of membership history kept: older joins and leaves are deleted
    /// about hourly, and histories then begin that many days ago
    /// [default: kept forever]
    #[arg(
        long,
        env = "CORRAL_HISTORY_RETENTION_DAYS",
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    history_retention_days: Option<u32>,
}

pub async fn run(args: ServeArgs, file: &FileConfig, database: &str) -> Result<(), CliError> {
    let defaults = HttpSettings::default();
    let listen = args
        .listen
        .or_else(|| file.listen.clone())
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let settings = HttpSettings {
        rate_limit_per_minute: args
            .rate_limit_per_minute
            .or(file.rate_limit_per_minute)
            .unwrap_or(defaults.rate_limit_per_minute),
        stats_rate_limit_per_hour: args
            .stats_rate_limit_per_hour
            .or(file.stats_rate_limit_per_hour)
            .unwrap_or(defaults.stats_rate_limit_per_hour),
        auth_failures_per_minute: args
            .auth_failures_per_minute
            .or(file.auth_failures_per_minute)
            .unwrap_or(defaults.auth_failures_per_minute),
        request_timeout: args
            .request_timeout_secs
            .or(file.request_timeout_secs)
            .map_or(defaults.request_timeout, Duration::from_secs),
        checkpoints: checkpoint_dir(args.checkpoint_dir, file, database)
            .map(|dir| CheckpointSettings { dir, write: true }),
        connections: ConnectionSettings {
            header_read_timeout: args
                .header_read_timeout_secs
                .or(file.header_read_timeout_secs)
                .map_or(
                    defaults.connections.header_read_timeout,
                    Duration::from_secs,
                ),
            body_read_timeout: args
                .body_read_timeout_secs
                .or(file.body_read_timeout_secs)
                .map_or(defaults.connections.body_read_timeout, Duration::from_secs),
            idle_timeout: args
                .keep_alive_timeout_secs
                .or(file.keep_alive_timeout_secs)
                .map_or(defaults.connections.idle_timeout, Duration::from_secs),
            max_connections: args
                .max_connections
                .or(file.max_connections)
                .unwrap_or(defaults.connections.max_connections),
            max_connections_per_address: args
                .max_connections_per_address
                .or(file.max_connections_per_address)
                .unwrap_or(defaults.connections.max_connections_per_address),
        },
        allow_private_webhook_targets: args.allow_private_webhook_targets,
        ..defaults
    };
    let retention = history_retention(args.history_retention_days, file)?;
    init_logging(
        args.log_format.or(file.log_format).unwrap_or_default(),
        args.log_level
            .as_deref()
            .or(file.log_level.as_deref())
            .unwrap_or("info"),
    )?;

    // Before anything is printed or bound: SIGTERM from then on stops the
    // server gracefully.
    let stop = super::signal::stop_requested();
    let shutdown = async move {
        stop.await;
        tracing::info!("shutting down: finishing requests in flight");
    };
    // The port first: a start that cannot listen (a port in use) stops
    // before it creates or migrates a database, so it leaves no file
    // behind. Connections wait in the backlog until the server answers.
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|e| CliError::Usage(format!("cannot listen on {listen}: {e}")))?;
    let address = listener.local_addr()?;
    let store = super::open(database).await?;
    let preload = if args.preload.is_empty() {
        file.preload.clone().unwrap_or_default()
    } else {
        args.preload
    };
    let preload = preload_sites(&store, &preload).await?;
    if args.demo {
        let file = demo_credentials_path(database);
        let (site, keys) = demo_site(&store, file.as_deref()).await?;
        print_demo(&site, &keys, file.as_deref(), address)?;
    }
    tracing::info!(%address, database = %redact(database), rate_limit_per_minute = settings.rate_limit_per_minute, "corral listening");
    crate::faults::arm_from_env();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let state = AppState::new(store, Arc::clone(&clock), settings);
    if args.demo {
        // The demo's segments have their history from the first request:
        // their baselines are taken before anything is answered (the
        // sweeper would within seconds).
        let swept = crate::live::journal::sweep(state.store.as_ref(), &state.live, &*clock).await;
        if let Err(error) = swept {
            tracing::warn!(%error, "the demo's membership journal could not be begun");
        }
    }
    if !preload.is_empty() {
        tracing::info!(
            sites = preload.len(),
            "preloading: /readyz answers 503 until these sites are read"
        );
    }
    state.start_preload(preload);
    // Sites with checkpoints are read before the first request asks.
    let warm = state.clone();
    tokio::spawn(async move { warm.live.warm_up().await });
    // Reads in flight stop as soon as the server is asked to: the requests
    // waiting for them are answered 503 at once instead of holding the
    // shutdown up.
    let stopping = state.clone();
    let shutdown = async move {
        shutdown.await;
        stopping.live.stop();
    };
    let upkeep = state.clone();
    let maintenance = tokio::spawn(async move {
        let mut every = tokio::time::interval(MAINTENANCE_EVERY);
        every.tick().await;
        loop {
            every.tick().await;
            upkeep
                .live
                .maintain(clock.now_ms(), CHECKPOINT_INTERVAL)
                .await;
        }
    });
    let webhooks = spawn_webhooks(state.clone(), Arc::clone(&state.clock));
    let sweeping = state.clone();
    let sweeper = tokio::spawn(async move {
        let mut every = tokio::time::interval(SWEEP_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let (store, clock) = (sweeping.store.as_ref(), sweeping.clock.as_ref());
            if let Err(error) = crate::live::journal::sweep(store, &sweeping.live, clock).await {
                tracing::warn!(%error, "the membership journal could not be swept");
            }
        }
    });
    let trimmer = retention.map(|retention| {
        tracing::info!(
            days = retention.kept_days(),
            "membership history older than this many days is trimmed about hourly"
        );
        retention.spawn(Arc::clone(&state.store), Arc::clone(&state.clock))
    });
    http::serve(listener, state.clone(), shutdown).await?;
    maintenance.abort();
    sweeper.abort();
    if let Some(trimmer) = trimmer {
        trimmer.abort();
    }
    for task in webhooks {
        task.abort();
    }
    // The next start reads these instead of the whole audience.
    state.live.write_checkpoints(None).await;
    state.store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// The sites `--preload` names (id and uuid): every site for `all`, else
/// each UUID, which must name a site.
async fn preload_sites(
    store: &Arc<dyn Store>,
    names: &[String],
) -> Result<Vec<(i64, String)>, CliError> {
    let names: Vec<&str> = names
        .iter()
        .flat_map(|n| n.split_whitespace())
        .filter(|n| !n.is_empty())
        .collect();
    if names.contains(&"all") {
        if names.len() > 1 {
            return Err(CliError::Usage(
                "--preload takes \"all\" or site UUIDs, not both".into(),
            ));
        }
        return Ok(store
            .list_sites()
            .await?
            .into_iter()
            .map(|site| (site.id, site.uuid))
            .collect());
    }
    let mut sites = Vec::with_capacity(names.len());
    for uuid in names {
        let site = store
            .find_site(uuid)
            .await?
            .ok_or_else(|| CliError::Usage(format!("--preload: no site has the UUID {uuid:?}")))?;
        if !sites.iter().any(|(id, _)| *id == site.id) {
            sites.push((site.id, site.uuid));
        }
    }
    Ok(sites)
}

/// How long the membership journal is kept: the flag (or
/// `CORRAL_HISTORY_RETENTION_DAYS`), else `history_retention_days` of the
/// file, else forever (`None`); 0 is refused wherever it is given.
fn history_retention(
    flag: Option<u32>,
    file: &FileConfig,
) -> Result<Option<HistoryRetention>, CliError> {
    match flag.or(file.history_retention_days) {
        None => Ok(None),
        Some(days) => HistoryRetention::days(days).map(Some).ok_or_else(|| {
            CliError::Usage(
                "history_retention_days must be at least 1 (leave it out to keep history forever)"
                    .into(),
            )
        }),
    }
}

/// How often the server looks for sites whose journal is due a sweep.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// How often watched segments are worked out again, and the outbox looked at.
const TRACK_EVERY: Duration = Duration::from_millis(500);
const DELIVER_EVERY: Duration = Duration::from_millis(250);

/// The webhook tracker and deliverer, each on its own task (a slow
/// evaluation never holds a delivery back).
fn spawn_webhooks(state: AppState, clock: Arc<dyn Clock>) -> [tokio::task::JoinHandle<()>; 2] {
    let deliverer = crate::webhooks::delivery::Deliverer::new(
        Arc::clone(&state.store),
        state.settings.allow_private_webhook_targets,
    );
    let wake = Arc::clone(&deliverer.wake);
    let tracking = state.clone();
    let tracking_clock = Arc::clone(&clock);
    let tracker = tokio::spawn(async move {
        let tracker = crate::webhooks::tracker::Tracker::new(Arc::clone(&tracking.store));
        let mut every = tokio::time::interval(TRACK_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            match tracker.tick(tracking_clock.as_ref()).await {
                Ok(0) => {}
                Ok(_) => wake.notify_one(),
                Err(error) => tracing::warn!(%error, "watched segments could not be followed"),
            }
        }
    });
    let delivering = tokio::spawn(async move {
        let mut every = tokio::time::interval(DELIVER_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => {}
                () = deliverer.wake.notified() => {}
            }
            deliverer.tick(clock.now_ms()).await;
        }
    });
    [tracker, delivering]
}

/// Where checkpoints are kept: the flag (or `CORRAL_CHECKPOINT_DIR`), else
/// `checkpoint_dir` of the file, else beside the SQLite file; `off` for none.
pub(super) fn checkpoint_dir(
    flag: Option<String>,
    file: &FileConfig,
    database: &str,
) -> Option<PathBuf> {
    match flag.or_else(|| file.checkpoint_dir.clone()) {
        Some(dir) if dir == "off" => None,
        Some(dir) => Some(PathBuf::from(dir)),
        None => storage::default_checkpoint_dir(database),
    }
}

/// How often the change log is trimmed and moved snapshots are considered
/// for a checkpoint.
const MAINTENANCE_EVERY: Duration = Duration::from_secs(60);

fn init_logging(format: LogFormat, filter: &str) -> Result<(), CliError> {
    let filter = EnvFilter::try_new(filter)
        .map_err(|e| CliError::Usage(format!("invalid log filter {filter:?}: {e}")))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colours only on a terminal: not in files or journald.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Pretty => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    Ok(())
}

/// The demo site, made with its sample segments and audience on first use,
/// and its key pair: the one kept in `file` while it still works, else a
/// new one (then kept there).
async fn demo_site(
    store: &Arc<dyn Store>,
    file: Option<&Path>,
) -> Result<(Site, KeyPair), CliError> {
    if let Some(site) = store.find_demo_site().await? {
        if let Some(keys) = kept_demo_keys(store, &site, file).await? {
            return Ok((site, keys));
        }
        let keys = KeyPair::generate();
        store
            .add_key(site.id, &keys, SystemClock.now_ms(), &Actor::Cli)
            .await?;
        keep_demo_keys(file, &site, &keys);
        return Ok((site, keys));
    }
    let (site, keys) = create_site(store, "Demo", true).await?;
    keep_demo_keys(file, &site, &keys);
    demo::fill(store, &site).await?;
    Ok((site, keys))
}

/// Where the demo site's credentials are kept: `PATH-demo.json` beside a
/// SQLite file `PATH`; nowhere for other databases.
fn demo_credentials_path(database: &str) -> Option<PathBuf> {
    let path = storage::sqlite_file(database)?;
    Some(PathBuf::from(format!("{}-demo.json", path.to_str()?)))
}

/// The credentials file's contents: what `site create --json` prints.
#[derive(serde::Serialize, serde::Deserialize)]
struct DemoCredentials {
    site_uuid: String,
    publishable_key: String,
    secret_key: String,
}

/// The key pair kept in `file`, if it belongs to the demo site and still
/// authenticates (it exists, is not revoked, and its secret matches).
async fn kept_demo_keys(
    store: &Arc<dyn Store>,
    site: &Site,
    file: Option<&Path>,
) -> Result<Option<KeyPair>, CliError> {
    let Some(kept) = file
        .and_then(|path| std::fs::read(path).ok())
        .and_then(|bytes| serde_json::from_slice::<DemoCredentials>(&bytes).ok())
        .filter(|kept| kept.site_uuid == site.uuid)
    else {
        return Ok(None);
    };
    let works = store
        .credentials(&kept.publishable_key)
        .await?
        .is_some_and(|stored| {
            stored.site_id == site.id
                && !stored.revoked
                && secret_matches(&kept.secret_key, &stored.secret_hash)
        });
    Ok(works.then_some(KeyPair {
        publishable_key: kept.publishable_key,
        secret_key: kept.secret_key,
    }))
}

/// Keeps the demo site's key pair in `file`, readable by its owner only. A
/// failure is logged, not fatal: the next start then issues another pair.
fn keep_demo_keys(file: Option<&Path>, site: &Site, keys: &KeyPair) {
    let Some(path) = file else { return };
    let credentials = DemoCredentials {
        site_uuid: site.uuid.clone(),
        publishable_key: keys.publishable_key.clone(),
        secret_key: keys.secret_key.clone(),
    };
    if let Err(e) = write_private(path, &serde_json::to_vec(&credentials).unwrap_or_default()) {
        tracing::warn!(path = %path.display(), error = %e, "cannot keep the demo credentials");
    }
}

/// Replaces `path` with `bytes`, with mode 0600 from the start: written to a
/// new file beside it, then renamed over it.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    let _ = std::fs::remove_file(&temporary);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&temporary)?;
    file.write_all(bytes)?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}

/// The demo banner: credentials, the console's URL, the `export` line the
/// README's examples expect, and, last, a `curl` line that works as printed.
fn print_demo(
    site: &Site,
    keys: &KeyPair,
    file: Option<&Path>,
    address: SocketAddr,
) -> Result<(), CliError> {
    let host = if address.ip().is_unspecified() {
        SocketAddr::new([127, 0, 0, 1].into(), address.port())
    } else {
        address
    };
    outln!("Corral demo site")?;
    outln!("  site_uuid:        {}", site.uuid)?;
    outln!("  publishable_key:  {}", keys.publishable_key)?;
    outln!("  secret_key:       {}", keys.secret_key)?;
    if let Some(path) = file {
        outln!(
            "  (kept in {}: every `serve --demo` prints the same keys)",
            path.display()
        )?;
    }
    outln!("Console (sign in with the three values above):")?;
    outln!("  http://{host}/")?;
    outln!("For the README's API examples:")?;
    outln!(
        "  export SITE={} PK={} SK={} BASE=http://{host}/api/v1",
        site.uuid,
        keys.publishable_key,
        keys.secret_key
    )?;
    outln!("List its segments:")?;
    outln!(
        "  curl -u '{}:{}' 'http://{host}/api/v1/fetch/segments?site_uuid={}'",
        keys.publishable_key,
        keys.secret_key,
        site.uuid
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_credentials_are_kept_beside_a_sqlite_file() {
        assert_eq!(
            demo_credentials_path("sqlite:///var/lib/corral.db"),
            Some(PathBuf::from("/var/lib/corral.db-demo.json"))
        );
        assert_eq!(
            demo_credentials_path("corral.db"),
            Some(PathBuf::from("corral.db-demo.json"))
        );
        assert_eq!(demo_credentials_path("postgres://u@host/db"), None);
    }

    #[test]
    fn history_retention_takes_the_flag_then_the_file_and_refuses_zero() {
        let file = FileConfig {
            history_retention_days: Some(30),
            ..FileConfig::default()
        };
        let days = |r: Option<HistoryRetention>| r.map(HistoryRetention::kept_days);
        assert_eq!(
            days(history_retention(None, &FileConfig::default()).unwrap()),
            None
        );
        assert_eq!(days(history_retention(None, &file).unwrap()), Some(30));
        assert_eq!(days(history_retention(Some(7), &file).unwrap()), Some(7));
        let zero = FileConfig {
            history_retention_days: Some(0),
            ..FileConfig::default()
        };
        let refused = history_retention(None, &zero).unwrap_err().to_string();
        assert!(refused.contains("at least 1"), "{refused}");
    }
}
