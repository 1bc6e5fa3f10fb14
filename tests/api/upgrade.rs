//! Upgrades: a database written by an earlier release opens with this one,
//! is migrated, and gives the answers that release gave; its webhook goes
//! on notifying; a checkpoint of another format version is set aside (the
//! site read from the database) and written again in this one.
//!
//! Each fixture under `tests/fixtures/upgrade/<release>/` was made by
//! `scripts/upgrade-fixture.sh` with that release's binary: a SQLite
//! database written through its CLI and API, the checkpoint it wrote when it
//! stopped, and every answer it gave (`answers/manifest.json` names each
//! path and its file); a `-postgres` fixture holds the same made on
//! PostgreSQL, as a plain SQL dump. Every schema change must keep these
//! tests green.

use crate::helpers::{fresh_postgres_database, http_client};
use corral::clock::{Clock, SystemClock};
use corral::http::{self, AppState, HttpSettings};
use corral::live::CheckpointSettings;
use corral::live::checkpoint::VERSION;
use corral::live::journal::sweep;
use corral::webhooks::delivery::Deliverer;
use corral::webhooks::tracker::Tracker;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/upgrade");

/// The releases a fixture was made with, by the commit each was built from.
const RELEASES: [&str; 1] = ["5181515"];
/// The same on PostgreSQL: `<commit>-postgres/corral.sql`, a plain dump.
const POSTGRES_RELEASES: [&str; 1] = ["5181515-postgres"];

/// What may differ from the recorded answers, and why: the release that
/// made the fixture went on trying to deliver the waiting notification (to
/// an address where nothing answers) between recording its answers and
/// stopping, so how that delivery stands moved on. Nothing else may differ.
const MOVED_ON: [(&str, &str); 5] = [
    ("webhook_deliveries", "status"),
    ("webhook_deliveries", "attempts"),
    ("webhook_deliveries", "next_attempt_at"),
    ("webhook_deliveries", "last_response_code"),
    ("webhook_deliveries", "last_error"),
];

/// Attributes added to a resource since the fixtures were made: an answer
/// may hold them beside what was recorded.
const ADDED_SINCE: [(&str, &str); 1] = [("visitors", "created_at")];

/// A server of this release on a copy of a fixture.
struct Upgraded {
    base: String,
    client: reqwest::Client,
    state: AppState,
    site: [String; 3],
    site_id: i64,
    dir: tempfile::TempDir,
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn fixture(release: &str) -> PathBuf {
    Path::new(FIXTURES).join(release)
}

/// The checkpoint file of the fixture's one site, in `dir`.
fn checkpoint_in(dir: &Path, site_id: i64) -> PathBuf {
    dir.join("corral.db-checkpoints")
        .join(format!("site-{site_id}.ckpt"))
}

impl Upgraded {
    /// A copy of the release's fixture, changed by `prepare` (given the
    /// copy's directory) before this release opens it.
    async fn start(release: &str, prepare: impl FnOnce(&Path)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&fixture(release), dir.path());
        prepare(dir.path());
        let url = format!("sqlite://{}", dir.path().join("corral.db").display());
        Self::open(dir, &url).await
    }

    /// A new database on the test cluster loaded from the release's dump,
    /// if a cluster is set up.
    async fn start_on_postgres(release: &str) -> Option<Self> {
        let url = fresh_postgres_database().await?;
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&fixture(release), dir.path());
        let dump = std::fs::read_to_string(dir.path().join("corral.sql")).unwrap();
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
            .await
            .unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(dump))
            .execute(&mut conn)
            .await
            .expect("the dump loads");
        drop(conn);
        Some(Self::open(dir, &url).await)
    }

    /// This release's server on the database `url` names (migrated as it
    /// opens), with checkpoints in `dir` where `corral serve` keeps them
    /// beside a SQLite file.
    async fn open(dir: tempfile::TempDir, url: &str) -> Self {
        let store = corral::storage::open(url)
            .await
            .expect("the database opens");
        let settings = HttpSettings {
            rate_limit_per_minute: 0,
            stats_rate_limit_per_hour: 0,
            checkpoints: Some(CheckpointSettings {
                dir: dir.path().join("corral.db-checkpoints"),
                write: true,
            }),
            // The fixture's webhook may be pointed at a receiver on loopback.
            allow_private_webhook_targets: true,
            ..HttpSettings::default()
        };
        let state = AppState::new(store.clone(), Arc::new(SystemClock), settings);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(http::serve(listener, state.clone(), std::future::pending()));
        let credentials: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("site.json")).unwrap()).unwrap();
        let site = ["site_uuid", "publishable_key", "secret_key"]
            .map(|k| credentials[k].as_str().unwrap().to_owned());
        let site_id = store.find_site(&site[0]).await.unwrap().unwrap().id;
        Self {
            base,
            client: http_client(),
            state,
            site,
            site_id,
            dir,
        }
    }

    async fn get(&self, path: &str) -> Value {
        let joiner = if path.contains('?') { '&' } else { '?' };
        let response = self
            .client
            .get(format!(
                "{}{path}{joiner}site_uuid={}",
                self.base, self.site[0]
            ))
            .basic_auth(&self.site[1], Some(&self.site[2]))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {text}");
        serde_json::from_str(&text).unwrap()
    }

    /// Sends `body` to `path`, which must succeed: the answer.
    async fn send(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let response = self
            .client
            .request(
                method,
                format!("{}{path}?site_uuid={}", self.base, self.site[0]),
            )
            .basic_auth(&self.site[1], Some(&self.site[2]))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {text}");
        serde_json::from_str(&text).unwrap()
    }

    /// Asks every recorded path again and compares the answers.
    async fn answers_as_recorded(&self, release: &str) {
        let answers = fixture(release).join("answers");
        let manifest: Vec<Value> =
            serde_json::from_slice(&std::fs::read(answers.join("manifest.json")).unwrap()).unwrap();
        assert!(manifest.len() > 30, "{manifest:?}");
        for entry in manifest {
            let path = entry["path"].as_str().unwrap();
            let file = entry["file"].as_str().unwrap();
            let recorded: Value =
                serde_json::from_slice(&std::fs::read(answers.join(file)).unwrap()).unwrap();
            let now = self.get(path).await;
            assert_eq!(
                without_moved_on(now),
                without_moved_on(recorded),
                "{release}: {path} answers otherwise than it did"
            );
        }
    }

    fn stats(&self) -> corral::live::SiteStats {
        self.state.live.site_stats(self.site_id).unwrap()
    }
}

/// The answer without the fields of [`MOVED_ON`] and [`ADDED_SINCE`] (in
/// resources of their type, wherever they are).
fn without_moved_on(mut value: Value) -> Value {
    fn strip(value: &mut Value) {
        match value {
            Value::Object(map) => {
                let kind = map.get("type").and_then(Value::as_str).map(str::to_owned);
                if let (Some(kind), Some(Value::Object(attributes))) =
                    (kind, map.get_mut("attributes"))
                {
                    for &(of, field) in MOVED_ON.iter().chain(&ADDED_SINCE) {
                        if of == kind {
                            attributes.remove(field);
                        }
                    }
                }
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut value);
    value
}

/// Rewrites a checkpoint's format version (the four bytes after its magic)
/// and seals it again (its last four bytes: the CRC-32C of all before), so
/// that the version is all that is wrong with it.
fn set_version(file: &Path, version: u32) {
    let mut bytes = std::fs::read(file).unwrap();
    assert_eq!(&bytes[..8], b"CORRALCK");
    bytes[8..12].copy_from_slice(&version.to_le_bytes());
    let sealed = bytes.len() - 4;
    let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI).checksum(&bytes[..sealed]);
    bytes[sealed..].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(file, bytes).unwrap();
}

fn version_of(file: &Path) -> u32 {
    let bytes = std::fs::read(file).unwrap();
    u32::from_le_bytes(bytes[8..12].try_into().unwrap())
}

#[tokio::test]
async fn a_database_of_an_earlier_release_gives_the_answers_it_gave() {
    for release in RELEASES {
        // As the release left it, its checkpoint beside it.
        let upgraded = Upgraded::start(release, |_| {}).await;
        upgraded.answers_as_recorded(release).await;
        let stats = upgraded.stats();
        assert_eq!(stats.full_reads + stats.checkpoint_reads, 1, "{stats:?}");
        // And read whole from the database, without a checkpoint.
        let upgraded = Upgraded::start(release, |dir| {
            std::fs::remove_dir_all(dir.join("corral.db-checkpoints")).unwrap();
        })
        .await;
        upgraded.answers_as_recorded(release).await;
        let stats = upgraded.stats();
        assert_eq!(
            (stats.full_reads, stats.checkpoint_reads),
            (1, 0),
            "{stats:?}"
        );
    }
}

#[tokio::test]
async fn a_postgresql_database_of_an_earlier_release_gives_the_answers_it_gave() {
    for release in POSTGRES_RELEASES {
        let Some(upgraded) = Upgraded::start_on_postgres(release).await else {
            return eprintln!(
                "upgrades on PostgreSQL: skipped, CORRAL_TEST_POSTGRES names no cluster"
            );
        };
        upgraded.answers_as_recorded(release).await;
        // Its checkpoint was written for the dumped database (its id came
        // along in the dump), so it is used, and the answers still match.
        let stats = upgraded.stats();
        assert_eq!(stats.full_reads + stats.checkpoint_reads, 1, "{stats:?}");
    }
}

#[tokio::test]
async fn a_checkpoint_of_another_format_version_is_set_aside_and_written_again() {
    let release = RELEASES[0];
    for version in [VERSION - 1, VERSION + 1] {
        let mut site_id = 0;
        let upgraded = Upgraded::start(release, |dir| {
            let checkpoints: Vec<PathBuf> = std::fs::read_dir(dir.join("corral.db-checkpoints"))
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            assert_eq!(checkpoints.len(), 1, "{checkpoints:?}");
            set_version(&checkpoints[0], version);
            site_id = checkpoints[0]
                .file_stem()
                .unwrap()
                .to_str()
                .unwrap()
                .strip_prefix("site-")
                .unwrap()
                .parse()
                .unwrap();
        })
        .await;
        assert_eq!(upgraded.site_id, site_id);
        // The answers are right, and they came from the database.
        upgraded.answers_as_recorded(release).await;
        let stats = upgraded.stats();
        assert_eq!(
            (stats.full_reads, stats.checkpoint_reads),
            (1, 0),
            "version {version}: {stats:?}"
        );
        // Written again, in this release's format …
        upgraded.state.live.write_checkpoints(None).await;
        let file = checkpoint_in(upgraded.dir.path(), site_id);
        assert_eq!(version_of(&file), VERSION);
        // … which the next start reads instead of the database.
        let url = format!(
            "sqlite://{}",
            upgraded.dir.path().join("corral.db").display()
        );
        let again = Upgraded::open(upgraded.dir, &url).await;
        again.answers_as_recorded(release).await;
        let stats = again.stats();
        assert_eq!(
            (stats.full_reads, stats.checkpoint_reads),
            (0, 1),
            "version {version}: {stats:?}"
        );
    }
}

/// A receiver on loopback: its URL, and every notification it was sent,
/// in order.
async fn receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    let seen = Arc::clone(&got);
    let app = axum::Router::new().route(
        "/hooks",
        axum::routing::post(move |body: String| {
            let seen = Arc::clone(&seen);
            async move {
                let batch: Value = serde_json::from_str(&body).unwrap();
                seen.lock()
                    .unwrap()
                    .extend(batch["data"].as_array().unwrap().iter().cloned());
                axum::http::StatusCode::OK
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

/// The webhook the earlier release left (watching VIP, one notification
/// waiting) goes on notifying after the upgrade moved watches onto the
/// membership journal: a subscriber who joins VIP now is announced, after
/// the waiting notification, and nobody else is.
async fn still_notifies(upgraded: Upgraded) {
    let (url, got) = receiver().await;
    upgraded
        .send(
            reqwest::Method::PATCH,
            "/api/v1/fetch/webhooks/1",
            json!({"webhook": {"url": url}}),
        )
        .await;
    // As `corral serve` runs them: the journal's sweep, the tracker, the
    // deliverer (here one turn each, and the sends waited for).
    let store = Arc::clone(&upgraded.state.store);
    let clock = SystemClock;
    let tracker = Tracker::new(Arc::clone(&store));
    let deliverer = Deliverer::new(Arc::clone(&store), true);
    let turn = async || {
        sweep(store.as_ref(), &upgraded.state.live, &clock)
            .await
            .unwrap();
        let written = tracker.tick(&clock).await.unwrap();
        deliverer.tick(clock.now_ms()).await;
        deliverer.idle().await;
        written
    };
    turn().await;
    upgraded
        .send(
            reqwest::Method::POST,
            "/api/v1/fetch/commands",
            json!({"command": [{"command": "add_tag", "email": "grace@example.com", "query": "vip"}]}),
        )
        .await;
    assert!(
        turn().await >= 1,
        "the join was not turned into notifications"
    );
    let notified: Vec<(String, String, String)> = got
        .lock()
        .unwrap()
        .iter()
        .map(|n| {
            let field = |v: &Value| v.as_str().unwrap().to_owned();
            (
                field(&n["type"]),
                field(&n["segment"]["name"]),
                field(&n["subscriber"]["email"]),
            )
        })
        .collect();
    let joined = |email: &str| ("segment.member_added".into(), "VIP".into(), email.into());
    assert_eq!(
        notified,
        [joined("linus@example.com"), joined("grace@example.com")]
    );
    let deliveries = upgraded.get("/api/v1/fetch/webhooks/1/deliveries").await;
    assert!(
        deliveries["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["attributes"]["status"] == "delivered"),
        "{deliveries}"
    );
}

#[tokio::test]
async fn the_webhook_of_an_earlier_release_still_notifies() {
    for release in RELEASES {
        still_notifies(Upgraded::start(release, |_| {}).await).await;
    }
}

#[tokio::test]
async fn the_webhook_of_an_earlier_release_on_postgresql_still_notifies() {
    for release in POSTGRES_RELEASES {
        let Some(upgraded) = Upgraded::start_on_postgres(release).await else {
            return eprintln!(
                "upgrades on PostgreSQL: skipped, CORRAL_TEST_POSTGRES names no cluster"
            );
        };
        still_notifies(upgraded).await;
    }
}
