//! A running server on a fresh database, and the requests tests make of it.

use corral::clock::ManualClock;
use corral::credentials::{KeyPair, generate_site_uuid};
use corral::http::{self, AppState, HttpSettings};
use corral::storage::changes::{Changes, Loaded};
use corral::storage::progress::ReadProgress;
pub use corral::storage::transfer::{EventRow, Rows, Table};
use corral::storage::{self, ChangeFeed, Store};
use corral_core::columns::Val;
use corral_core::query::ast::DetailPath;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use std::sync::{Arc, Once};
use tempfile::TempDir;

/// The time every test starts at: 2026-11-26T09:00:00.000Z.
pub const START_MS: i64 = 1_795_683_600_000;

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub store: Arc<dyn Store>,
    pub clock: Arc<ManualClock>,
    pub site: TestSite,
    pub database_url: String,
    /// The running server's state (its live snapshots among it).
    pub state: AppState,
    _dir: TempDir,
}

#[derive(Clone, Debug)]
pub struct TestSite {
    pub uuid: String,
    pub publishable_key: String,
    pub secret_key: String,
}

fn init_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter("debug")
                .with_test_writer()
                .try_init();
        }
    });
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(HttpSettings {
            rate_limit_per_minute: 0,
            ..HttpSettings::default()
        })
        .await
    }

    pub async fn spawn_with(settings: HttpSettings) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let database_url = fresh_database(dir.path()).await;
        Self::spawn_in(dir, database_url, settings).await
    }

    /// A server on the database `database_url` names (whichever backend),
    /// with rate limits off.
    pub async fn spawn_on(database_url: String) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let settings = HttpSettings {
            rate_limit_per_minute: 0,
            stats_rate_limit_per_hour: 0,
            ..HttpSettings::default()
        };
        Self::spawn_in(dir, database_url, settings).await
    }

    /// A server on the database `database_url` names, with `settings`.
    pub async fn spawn_on_with(database_url: String, settings: HttpSettings) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::spawn_in(dir, database_url, settings).await
    }

    async fn spawn_in(dir: TempDir, database_url: String, settings: HttpSettings) -> Self {
        init_logs();
        let store = storage::open(&database_url).await.expect("open database");
        Self::serve(dir, database_url, store.clone(), store, settings).await
    }

    /// A server whose snapshots are read through a [`GatedFeed`]: every
    /// whole read of a site waits until the test lets it go. Rate limits
    /// off; checkpoints in the test's directory.
    pub async fn spawn_gated(settings: HttpSettings) -> (Self, Arc<GatedFeed>) {
        init_logs();
        let dir = tempfile::tempdir().expect("temp dir");
        let database_url = fresh_database(dir.path()).await;
        let store = storage::open(&database_url).await.expect("open database");
        let gate = Arc::new(GatedFeed::new(store.clone()));
        let settings = HttpSettings {
            rate_limit_per_minute: 0,
            stats_rate_limit_per_hour: 0,
            checkpoints: Some(corral::live::CheckpointSettings {
                dir: dir.path().join("checkpoints"),
                write: true,
            }),
            ..settings
        };
        let app = Self::serve(dir, database_url, store, gate.clone(), settings).await;
        (app, gate)
    }

    async fn serve(
        dir: TempDir,
        database_url: String,
        store: Arc<dyn Store>,
        feed: Arc<dyn ChangeFeed>,
        settings: HttpSettings,
    ) -> Self {
        let clock = ManualClock::new(START_MS);
        let state = AppState::with_feed(store.clone(), feed, clock.clone(), settings);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(http::serve(listener, state.clone(), std::future::pending()));
        let site = new_site(&store).await;
        Self {
            base,
            client: http_client(),
            store,
            clock,
            site,
            database_url,
            state,
            _dir: dir,
        }
    }

    /// The directory of this server's checkpoints (with [`TestApp::spawn_gated`]).
    /// Runs the membership journal's sweep as `corral serve` does about
    /// every ten seconds: baselines, what was left for a server, and time
    /// windows when due. How many sites it swept.
    pub async fn sweep(&self) -> usize {
        corral::live::journal::sweep(self.store.as_ref(), &self.state.live, self.clock.as_ref())
            .await
            .expect("the journal's sweep")
    }

    pub fn checkpoint_dir(&self) -> std::path::PathBuf {
        self._dir.path().join("checkpoints")
    }

    /// The store's id of a site.
    pub async fn site_id(&self, site: &TestSite) -> i64 {
        self.store.find_site(&site.uuid).await.unwrap().unwrap().id
    }

    /// Another site on the same server.
    pub async fn new_site(&self) -> TestSite {
        new_site(&self.store).await
    }

    /// A request with no credentials at all.
    pub fn bare(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{}", self.base, path))
    }

    /// A request as `site`, with `site_uuid` in the query string.
    pub fn as_site(&self, site: &TestSite, method: Method, path: &str) -> RequestBuilder {
        let separator = if path.contains('?') { '&' } else { '?' };
        self.bare(method, &format!("{path}{separator}site_uuid={}", site.uuid))
            .basic_auth(&site.publishable_key, Some(&site.secret_key))
    }

    /// A request as the test's own site.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.as_site(&self.site, method, path)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path).send().await.unwrap()
    }

    /// Creates a segment through the API and returns its `data`.
    pub async fn create_segment(&self, name: &str, query: Value) -> Value {
        self.create_segment_for(&self.site, name, query).await
    }

    pub async fn create_segment_for(&self, site: &TestSite, name: &str, query: Value) -> Value {
        let response = self
            .as_site(site, Method::POST, "/api/v1/fetch/segments")
            .json(&json!({"segment": {"name": name, "visitor_event_query": query}}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json::<Value>().await.unwrap()["data"].clone()
    }

    /// Sends a JSON body as the test's own site.
    pub async fn send_json(&self, method: Method, path: &str, body: &Value) -> Response {
        self.request(method, path).json(body).send().await.unwrap()
    }

    /// Posts raw bytes as JSON.
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        body: impl Into<reqwest::Body>,
    ) -> Response {
        self.request(method, path)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// The names in Bento's list, in order.
    pub async fn listed_names(&self) -> Vec<String> {
        let body: Value = self
            .get("/api/v1/fetch/segments")
            .await
            .json()
            .await
            .unwrap();
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["attributes"]["name"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The raw bytes of Bento's list, to prove a request changed nothing.
    pub async fn snapshot(&self) -> (String, String) {
        let kept = self
            .get("/api/v1/fetch/segments")
            .await
            .text()
            .await
            .unwrap();
        let discarded = self
            .get("/api/v1/fetch/segments?state=discarded")
            .await
            .text()
            .await
            .unwrap();
        (kept, discarded)
    }
}

/// Which of a site's reads a [`GatedFeed`] holds back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// Whole reads (`load_snapshot`).
    Snapshots,
    /// Catch-ups, and the log read after a checkpoint (`read_changes`).
    Changes,
    /// Columns of event details (`load_details`).
    Details,
}

/// The store as live snapshots read it, except that the reads it holds
/// (whole reads, unless [`GatedFeed::hold`] says otherwise) first wait for
/// the test: [`GatedFeed::release`] lets reads go, [`GatedFeed::fail_next`]
/// makes the next one fail. Nothing is timed: a read waits for as long as
/// the test holds it.
pub struct GatedFeed {
    inner: Arc<dyn Store>,
    held: std::sync::Mutex<Vec<Held>>,
    permits: tokio::sync::Semaphore,
    started: std::sync::Mutex<Vec<Held>>,
    fail: std::sync::Mutex<Option<String>>,
}

impl GatedFeed {
    fn new(inner: Arc<dyn Store>) -> Self {
        Self {
            inner,
            held: std::sync::Mutex::new(vec![Held::Snapshots]),
            permits: tokio::sync::Semaphore::new(0),
            started: Default::default(),
            fail: Default::default(),
        }
    }

    /// Holds back these reads from now on (and no others).
    pub fn hold(&self, reads: &[Held]) {
        *self.held.lock().unwrap() = reads.to_vec();
    }

    /// Lets `reads` more held reads go on.
    pub fn release(&self, reads: usize) {
        self.permits.add_permits(reads);
    }

    /// The next held read that is let go fails with a database error.
    pub fn fail_next(&self, message: &str) {
        *self.fail.lock().unwrap() = Some(message.to_owned());
    }

    /// How many whole reads have begun (waiting or not).
    pub fn reads_started(&self) -> usize {
        self.started_of(Held::Snapshots)
    }

    /// How many held reads of a kind have begun (waiting or not).
    pub fn started_of(&self, kind: Held) -> usize {
        self.started
            .lock()
            .unwrap()
            .iter()
            .filter(|k| **k == kind)
            .count()
    }

    /// Waits for the test when `kind` is held.
    async fn gate(&self, kind: Held) -> storage::Result<()> {
        if !self.held.lock().unwrap().contains(&kind) {
            return Ok(());
        }
        self.started.lock().unwrap().push(kind);
        self.permits
            .acquire()
            .await
            .expect("the gate is never closed")
            .forget();
        match self.fail.lock().unwrap().take() {
            Some(message) => Err(storage::StorageError::Database(message)),
            None => Ok(()),
        }
    }
}

#[async_trait::async_trait]
impl ChangeFeed for GatedFeed {
    fn change_signal(&self) -> Option<storage::Signal> {
        self.inner.change_signal()
    }

    async fn site_head(&self, site_id: i64) -> storage::Result<storage::SiteHead> {
        self.inner.site_head(site_id).await
    }

    async fn load_snapshot(
        &self,
        site_id: i64,
        progress: &ReadProgress,
    ) -> storage::Result<Loaded> {
        self.gate(Held::Snapshots).await?;
        self.inner.load_snapshot(site_id, progress).await
    }

    async fn read_changes(
        &self,
        site_id: i64,
        since: storage::Position,
        columns: &[(String, DetailPath)],
        with_segments: bool,
        progress: &ReadProgress,
    ) -> storage::Result<Changes> {
        self.gate(Held::Changes).await?;
        self.inner
            .read_changes(site_id, since, columns, with_segments, progress)
            .await
    }

    async fn load_details(
        &self,
        site_id: i64,
        kind: &str,
        path: &DetailPath,
        progress: &ReadProgress,
    ) -> storage::Result<Vec<Val>> {
        self.gate(Held::Details).await?;
        self.inner.load_details(site_id, kind, path, progress).await
    }

    async fn log_entry(&self, site_id: i64, seq: i64) -> storage::Result<Option<(i64, String)>> {
        self.inner.log_entry(site_id, seq).await
    }

    async fn trim_log(&self, before: i64) -> storage::Result<u64> {
        self.inner.trim_log(before).await
    }

    async fn database_id(&self) -> storage::Result<String> {
        self.inner.database_id().await
    }
}

async fn new_site(store: &Arc<dyn Store>) -> TestSite {
    let keys = KeyPair::generate();
    let uuid = generate_site_uuid();
    store
        .create_site("Test site", &uuid, &keys, false, START_MS)
        .await
        .unwrap();
    TestSite {
        uuid,
        publishable_key: keys.publishable_key,
        secret_key: keys.secret_key,
    }
}

/// Asserts status and JSON body together.
pub async fn assert_json(response: Response, status: StatusCode, body: Value) {
    assert_eq!(response.status(), status);
    assert_eq!(
        response.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    assert_eq!(response.json::<Value>().await.unwrap(), body);
}

/// Asserts a 422 naming exactly these (field, message) pairs.
pub async fn assert_invalid(response: Response, errors: &[(&str, &str)]) {
    let expected: Vec<Value> = errors
        .iter()
        .map(|(field, message)| json!({"field": field, "message": message}))
        .collect();
    assert_json(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        json!({"errors": expected}),
    )
    .await;
}

/// An HTTP client for the tests (the process's TLS provider chosen first,
/// as the server does before it sends a webhook).
pub fn http_client() -> reqwest::Client {
    corral::webhooks::delivery::install_tls();
    reqwest::Client::new()
}

/// The PostgreSQL cluster the tests may use, when `CORRAL_TEST_POSTGRES`
/// names one (an administrator's URL, as `scripts/test.sh` sets it);
/// without one, see [`without_postgres`].
pub fn postgres_cluster() -> Option<String> {
    let url = std::env::var("CORRAL_TEST_POSTGRES")
        .ok()
        .filter(|url| !url.is_empty());
    if url.is_none() {
        without_postgres("CORRAL_TEST_POSTGRES");
    }
    url
}

/// Whether the tests that need PostgreSQL must run: under CI (`CI` set) or
/// with `CORRAL_REQUIRE_POSTGRES=1` (`scripts/test.sh` sets it).
pub fn postgres_required() -> bool {
    let set = |name| std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
    set("CORRAL_REQUIRE_POSTGRES") || set("CI")
}

/// What a test that needs PostgreSQL does without it (`missing` is the
/// variable that is not set): where PostgreSQL is required
/// ([`postgres_required`]) it fails; elsewhere it says that it is skipped,
/// straight to the terminal, so that a plain `cargo test` shows the line
/// (output a test prints is shown only when it fails), and goes on to skip.
pub fn without_postgres(missing: &str) {
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    assert!(
        !postgres_required(),
        "{test} needs PostgreSQL and {missing} is not set; PostgreSQL is required here \
         (CI or CORRAL_REQUIRE_POSTGRES=1): scripts/postgres.sh's pg_throwaway_start \
         starts a throwaway cluster and sets it"
    );
    use std::io::Write;
    // One write, so that the line is not cut by the test runner's own.
    let line = format!("skipped: {test} needs PostgreSQL ({missing} not set)\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// Whether the tests run on PostgreSQL (`CORRAL_TEST_BACKEND=postgres`)
/// rather than SQLite.
pub fn on_postgres() -> bool {
    std::env::var("CORRAL_TEST_BACKEND").is_ok_and(|b| b == "postgres")
}

/// A database no other test uses: with [`on_postgres`], a new database on
/// the cluster of [`postgres_cluster`], else a SQLite file in `dir`.
pub async fn fresh_database(dir: &std::path::Path) -> String {
    if !on_postgres() {
        return format!("sqlite://{}", dir.join("corral.db").display());
    }
    fresh_postgres_database()
        .await
        .expect("CORRAL_TEST_BACKEND=postgres needs CORRAL_TEST_POSTGRES")
}

/// A new database on the cluster of [`postgres_cluster`], if there is one.
pub async fn fresh_postgres_database() -> Option<String> {
    let admin = postgres_cluster()?;
    let name = format!("corral_test_{}", corral::credentials::random_hex_id());
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
        .await
        .expect("the test cluster answers");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create a test database");
    let (server, _) = admin.rsplit_once('/').expect("a database URL");
    Some(format!("{server}/{name}"))
}

/// [`fresh_database`] for code that does not await (on a thread of its
/// own, so that it works inside a runtime too).
pub fn fresh_database_blocking(dir: &std::path::Path) -> String {
    let dir = dir.to_owned();
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(fresh_database(&dir))
    })
    .join()
    .unwrap()
}

impl TestApp {
    /// How many rows a table holds, to prove what was (not) stored: read
    /// through the store's own copying interface, the same on either
    /// backend (no test reads a database file or runs SQL of its own).
    pub async fn rows(&self, table: Table) -> i64 {
        let mut reader = self.store.begin_read().await.unwrap();
        reader.count(table).await.unwrap() as i64
    }

    /// Every stored event, in id order, as the store reads it.
    pub async fn events(&self) -> Vec<EventRow> {
        let mut reader = self.store.begin_read().await.unwrap();
        let mut events = Vec::new();
        let mut after = None;
        loop {
            let page = reader.read_page(Table::Events, after, 1_000).await.unwrap();
            let Rows::Events(rows) = page.rows else {
                panic!("events were asked for")
            };
            events.extend(rows);
            match page.next {
                Some(next) => after = Some(next),
                None => return events,
            }
        }
    }

    /// `GET /fetch/subscribers?email=…` as the test's site: the `data`.
    pub async fn subscriber(&self, email: &str) -> Value {
        let body: Value = self
            .get(&format!(
                "/api/v1/fetch/subscribers?email={}",
                urlencode(email)
            ))
            .await
            .json()
            .await
            .unwrap();
        body["data"].clone()
    }
}

/// Percent-encodes a query value.
pub fn urlencode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
