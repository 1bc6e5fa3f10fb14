//! What PostgreSQL adds: several servers on one database, a database server
//! restarted under a running Corral, and the differential of both backends
//! (the same writes through the API, every answer compared).
//!
//! These need a PostgreSQL cluster (`CORRAL_TEST_POSTGRES`, which
//! `scripts/test.sh` starts); without one they fail where PostgreSQL is
//! required (CI, or `CORRAL_REQUIRE_POSTGRES=1`), and elsewhere say that
//! they are skipped and pass.

use crate::cli::{Cli, Server, start_server};
use crate::helpers::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

fn skipped(test: &str) {
    eprintln!("{test}: skipped, CORRAL_TEST_POSTGRES names no PostgreSQL cluster");
}

/// A request to a server as a site, with `site_uuid` in the query string.
fn call(
    client: &reqwest::Client,
    base: &str,
    keys: &[String; 3],
    method: Method,
    path: &str,
) -> reqwest::RequestBuilder {
    let joiner = if path.contains('?') { '&' } else { '?' };
    client
        .request(
            method,
            format!("{base}/api/v1{path}{joiner}site_uuid={}", keys[0]),
        )
        .basic_auth(&keys[1], Some(&keys[2]))
}

async fn json_of(response: reqwest::Response) -> Value {
    let status = response.status();
    let body = response.text().await.unwrap();
    assert!(status.is_success(), "{status}: {body}");
    serde_json::from_str(&body).unwrap()
}

#[tokio::test]
async fn two_servers_on_one_database_answer_each_others_writes_at_once() {
    let Some(url) = fresh_postgres_database().await else {
        return skipped("two_servers");
    };
    let cli = Cli::on(&url);
    let site = cli.new_site();
    let keys = ["site_uuid", "publishable_key", "secret_key"]
        .map(|k| site[k].as_str().unwrap().to_owned());
    let (a, b) = (start_server(&cli), start_server(&cli));
    let client = http_client();
    let at = |server: &Server, method: Method, path: &str| {
        call(&client, &server.base, &keys, method, path)
    };

    // A segment saved through A is listed by B, and B's edit is what A shows.
    let created = json_of(
        at(&a, Method::POST, "/fetch/segments")
            .json(&json!({"segment": {"name": "buyers", "visitor_event_query":
                {"event": {"type": "$purchase", "count": {"at_least": 1}}}}}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let id = created["data"]["id"].as_str().unwrap().to_owned();
    let listed = json_of(at(&b, Method::GET, "/fetch/segments").send().await.unwrap()).await;
    assert_eq!(listed["data"][0]["id"], id.as_str());
    let stats = format!("/stats/segment?segment_id={id}");
    let counted = |server: &Server| {
        let request = at(server, Method::GET, &stats).send();
        async move { json_of(request.await.unwrap()).await["user_count"].clone() }
    };
    assert_eq!(counted(&a).await, 0);
    assert_eq!(counted(&b).await, 0);

    // Writes through either server count on the other's next answer.
    for (server, email) in [(&b, "bo@x.com"), (&a, "al@x.com"), (&b, "cy@x.com")] {
        let written = at(server, Method::POST, "/batch/events")
            .json(&json!({"events": [{"type": "$purchase", "email": email,
                "details": {"value": {"amount": 5}}}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(written.status(), StatusCode::OK);
        let other = if std::ptr::eq(server, &a) { &b } else { &a };
        let expected = counted(server).await;
        assert_eq!(counted(other).await, expected);
    }
    assert_eq!(counted(&a).await, 3);
    let site_stats = json_of(at(&a, Method::GET, "/stats/site").send().await.unwrap()).await;
    assert_eq!(site_stats["user_count"], 3);
    let members = json_of(
        at(&a, Method::GET, &format!("/fetch/segments/{id}/members"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let emails: Vec<&str> = members["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["attributes"]["email"].as_str().unwrap())
        .collect();
    // In the order they joined the audience.
    assert_eq!(emails, ["bo@x.com", "al@x.com", "cy@x.com"]);
    let matched = json_of(
        at(&a, Method::POST, &format!("/fetch/segments/{id}/match"))
            .json(&json!({"email": "cy@x.com"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(matched["data"]["matched"], true);

    // B renames; A serves the new name (A had the segment cached).
    let patched = at(&b, Method::PATCH, &format!("/fetch/segments/{id}"))
        .json(&json!({"segment": {"name": "customers"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), StatusCode::OK);
    let shown = json_of(
        at(&a, Method::GET, &format!("/fetch/segments/{id}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(shown["data"]["attributes"]["name"], "customers");

    // A key revoked on the database stops working on both at once.
    for server in [&a, &b] {
        assert_eq!(
            at(server, Method::GET, "/stats/site")
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::OK
        );
    }
    let revoked = cli.command(&["key", "revoke", &keys[1]]).output().unwrap();
    assert!(revoked.status.success(), "{revoked:?}");
    for server in [&a, &b] {
        assert_eq!(
            at(server, Method::GET, "/stats/site")
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::UNAUTHORIZED
        );
    }
}

/// A PostgreSQL cluster of the test's own, which it may stop and start.
struct OwnCluster {
    dir: tempfile::TempDir,
    bin: std::path::PathBuf,
    port: u16,
}

impl OwnCluster {
    /// Made with the binaries of the cluster `scripts/postgres.sh` started
    /// (`CORRAL_TEST_POSTGRES_CTL`); `None` without one.
    fn start() -> Option<Self> {
        let Some(ctl) = std::env::var_os("CORRAL_TEST_POSTGRES_CTL") else {
            without_postgres("CORRAL_TEST_POSTGRES_CTL");
            return None;
        };
        let bin = std::path::Path::new(&ctl).parent()?.to_owned();
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cluster = Self { dir, bin, port };
        if as_root() {
            let status = Command::new("chown")
                .args(["postgres", cluster.dir.path().to_str().unwrap()])
                .status()
                .unwrap();
            assert!(status.success());
        }
        let data = cluster.data();
        cluster.run(&[
            "initdb", "-D", &data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
        ]);
        let conf = format!(
            "port = {}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nfsync = off\n",
            cluster.port,
            cluster.dir.path().display()
        );
        let path = cluster.dir.path().join("data/postgresql.conf");
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str(&conf);
        std::fs::write(&path, text).unwrap();
        cluster.up();
        Some(cluster)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Runs a PostgreSQL program (as `postgres` when the tests run as root).
    fn run(&self, args: &[&str]) {
        let program = self.bin.join(args[0]);
        let mut command = if as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let output = command.args(&args[1..]).output().unwrap();
        assert!(output.status.success(), "{args:?}: {output:?}");
    }

    fn up(&self) {
        let log = self.dir.path().join("server.log").display().to_string();
        self.run(&["pg_ctl", "-D", &self.data(), "-l", &log, "-w", "start"]);
    }

    /// Stops the server as a crash would: no shutdown checkpoint.
    fn crash(&self) {
        self.run(&[
            "pg_ctl",
            "-D",
            &self.data(),
            "-m",
            "immediate",
            "-w",
            "stop",
        ]);
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let data = self.data();
        let _ =
            std::panic::catch_unwind(|| self.run(&["pg_ctl", "-D", &data, "-m", "fast", "stop"]));
    }
}

fn as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// Polls `url` until it answers `status`, for at most `within`; returns how
/// long that took.
async fn until_status(url: &str, status: StatusCode, within: Duration) -> Duration {
    let client = http_client();
    let started = Instant::now();
    loop {
        let answered = client
            .get(url)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map(|r| r.status());
        if answered.as_ref().is_ok_and(|s| *s == status) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "{url} did not answer {status} within {within:?}: {answered:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_database_restart_is_a_503_meanwhile_and_service_resumes_with_every_write() {
    let Some(cluster) = OwnCluster::start() else {
        return skipped("restart");
    };
    let cli = Cli::on(&cluster.url());
    let site = cli.new_site();
    let keys = ["site_uuid", "publishable_key", "secret_key"]
        .map(|k| site[k].as_str().unwrap().to_owned());
    let server = start_server(&cli);
    let client = {
        corral::webhooks::delivery::install_tls();
        reqwest::Client::builder()
    }
    .timeout(Duration::from_secs(40))
    .build()
    .unwrap();
    let write = |i: usize| {
        call(
            &client,
            &server.base,
            &keys,
            Method::POST,
            "/batch/subscribers",
        )
        .json(&json!({"subscribers": [{"email": format!("s{i}@x.com")}]}))
        .send()
    };
    let mut acknowledged = 0;
    for i in 0..20 {
        assert_eq!(write(i).await.unwrap().status(), StatusCode::OK);
        acknowledged += 1;
    }

    cluster.crash();
    let ready = format!("{}/readyz", server.base);
    until_status(
        &ready,
        StatusCode::SERVICE_UNAVAILABLE,
        Duration::from_secs(10),
    )
    .await;
    // Eight writers at once while it is gone: each is told the database is
    // unavailable, with when to try again, once its own wait (5 s in all,
    // however many wait before it) is over; not one after another, where
    // the last would have met the request timeout's 503 instead.
    let writes = (0..8).map(|i| write(200 + i));
    for refused in futures_util::future::join_all(writes).await {
        let refused = refused.unwrap();
        let status = refused.status();
        let retry_after = refused.headers().get("retry-after").cloned();
        let body: Value = refused.json().await.unwrap();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body, json!({"error": "Service Unavailable"}));
        assert_eq!(retry_after.unwrap(), "1");
    }
    // Eight writers at once while it is gone: each is told the database is
    // unavailable, with when to try again, once its own wait (5 s in all,
    // however many wait before it) is over; not one after another, where
    // the last would have met the request timeout's 503 instead.
    let writes = (0..8).map(|i| write(200 + i));
    for refused in futures_util::future::join_all(writes).await {
        let refused = refused.unwrap();
        let status = refused.status();
        let retry_after = refused.headers().get("retry-after").cloned();
        let body: Value = refused.json().await.unwrap();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body, json!({"error": "Service Unavailable"}));
        assert_eq!(retry_after.unwrap(), "1");
    }
    // While it is gone every request is a 503 that says to retry, and none
    // hangs: the pool waits 5 s for a connection at most.
    for i in 0..3 {
        let started = Instant::now();
        let refused = write(100 + i).await.unwrap();
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(refused.headers()["retry-after"], "1");
        assert!(started.elapsed() < Duration::from_secs(30));
        let read = call(&client, &server.base, &keys, Method::GET, "/stats/site")
            .send()
            .await
            .unwrap();
        assert_eq!(read.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    cluster.up();
    until_status(&ready, StatusCode::OK, Duration::from_secs(30)).await;
    for i in 20..30 {
        assert_eq!(write(i).await.unwrap().status(), StatusCode::OK);
        acknowledged += 1;
    }
    let stats = json_of(
        call(&client, &server.base, &keys, Method::GET, "/stats/site")
            .send()
            .await
            .unwrap(),
    )
    .await;
    // Every acknowledged write, and none of the refused ones.
    assert_eq!(stats["user_count"], acknowledged);
}

/// What differs between two databases by nature, replaced: subscriber
/// uuids (random per database) by their emails, and notifications' event
/// ids (random) by one placeholder.
fn normalized(mut answer: String, uuids: &[(String, String)]) -> String {
    for (uuid, name) in uuids {
        answer = answer.replace(uuid, name);
    }
    let mut out = String::with_capacity(answer.len());
    let mut rest = answer.as_str();
    while let Some(at) = rest.find("evt_") {
        out.push_str(&rest[..at]);
        out.push_str("evt_?");
        rest = rest[at + 4..].trim_start_matches(|c: char| c.is_ascii_hexdigit());
    }
    out.push_str(rest);
    out
}

/// Every JSON `"uuid":"…"` value blanked (a subscriber's is random per
/// database), where the answer does not say whose it is otherwise.
fn blank_uuids(answer: String) -> String {
    let mut out = String::with_capacity(answer.len());
    let mut rest = answer.as_str();
    while let Some(at) = rest.find("\"uuid\":\"") {
        let value = at + "\"uuid\":\"".len();
        out.push_str(&rest[..value]);
        rest = rest[value..].trim_start_matches(|c: char| c.is_ascii_hexdigit());
    }
    out.push_str(rest);
    out
}

/// A response as the differential compares it: status and body.
async fn answer_of(response: reqwest::Response) -> String {
    let status = response.status();
    format!("{status} {}", response.text().await.unwrap())
}

/// Every page of a listing paged by `meta.next_cursor`, `limit` at a time,
/// each under its own key.
async fn every_page(app: &TestApp, path: &str, limit: usize, out: &mut BTreeMap<String, String>) {
    let joiner = if path.contains('?') { '&' } else { '?' };
    let mut cursor: Option<String> = None;
    for page in 0.. {
        assert!(page < 200, "{path}: more pages than members");
        let mut url = format!("{path}{joiner}limit={limit}");
        if let Some(cursor) = &cursor {
            url.push_str(&format!("&cursor={}", urlencode(cursor)));
        }
        let response = app.get(&url).await;
        let answer = answer_of(response).await;
        let body: Value = answer
            .split_once(' ')
            .and_then(|(_, b)| b.split_once(' '))
            .and_then(|(_, b)| serde_json::from_str(b).ok())
            .unwrap_or(Value::Null);
        out.insert(format!("{path} page {page} of {limit}"), answer);
        match body["meta"]["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
}

/// Every page of a segment's changes feed since `since`, `limit` at a time,
/// each under its own key: the first by `since`, the next ones `after` the
/// cursor the one before gave, until one is empty (the feed always gives a
/// cursor, to poll from).
async fn every_change(
    app: &TestApp,
    id: &str,
    since: i64,
    limit: usize,
    out: &mut BTreeMap<String, String>,
) {
    let path = format!("/api/v1/fetch/segments/{id}/changes");
    let mut from = format!("since={}", urlencode(&iso(since)));
    for page in 0.. {
        assert!(page < 200, "{path}: more pages than changes");
        let response = app.get(&format!("{path}?{from}&limit={limit}")).await;
        let answer = answer_of(response).await;
        let body: Value = answer
            .split_once(' ')
            .and_then(|(_, b)| b.split_once(' '))
            .and_then(|(_, b)| serde_json::from_str(b).ok())
            .unwrap_or(Value::Null);
        out.insert(
            format!("{path} since {since} page {page} of {limit}"),
            answer,
        );
        let more = body["data"].as_array().is_some_and(|d| !d.is_empty());
        match body["meta"]["next_cursor"].as_str() {
            Some(next) if more => from = format!("after={}", urlencode(next)),
            _ => break,
        }
    }
}

/// Six hours a step of the differential: `created` and the relative
/// windows move.
const STEP_MS: i64 = 6 * 3_600_000;

/// An instant as the API takes it.
fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The answers every read route gives a site, keyed by request: lists and
/// their every page, each subscriber's lookups and membership history, each
/// segment's definition and versions, its includes and excludes, stats and the size series, members
/// (every page, as CSV, and at instants before, during and after the
/// writes), the changes feed (every page), matches with their explanations
/// and previews, the audit log (every page), the webhooks and their
/// deliveries.
async fn every_answer(app: &TestApp, emails: &[String]) -> BTreeMap<String, String> {
    let mut answers = BTreeMap::new();
    // Each server's site has its own uuid and key pair (the audit log's
    // and the versions' actor).
    let mut uuids = vec![
        (app.site.uuid.clone(), "site-uuid".to_owned()),
        (
            app.site.publishable_key.clone(),
            "publishable-key".to_owned(),
        ),
    ];
    let mut paths = vec![
        "/api/v1/fetch/segments".to_owned(),
        "/api/v1/fetch/segments?state=discarded".to_owned(),
        "/api/v1/stats/site".to_owned(),
        "/api/v1/fetch/tags".to_owned(),
        "/api/v1/fetch/fields".to_owned(),
        "/api/v1/fetch/webhooks".to_owned(),
    ];
    every_page(app, "/api/v1/fetch/tags", 2, &mut answers).await;
    every_page(app, "/api/v1/fetch/fields", 2, &mut answers).await;
    every_page(app, "/api/v1/fetch/audit", 4, &mut answers).await;
    let since = urlencode(&iso(START_MS + 3 * STEP_MS));
    every_page(
        app,
        &format!("/api/v1/fetch/audit?since={since}"),
        4,
        &mut answers,
    )
    .await;
    for email in emails {
        let path = format!("/api/v1/fetch/subscribers?email={}", urlencode(email));
        let body: Value = app.get(&path).await.json().await.unwrap();
        if let Some(uuid) = body["data"]["attributes"]["uuid"].as_str() {
            uuids.push((uuid.to_owned(), format!("uuid-of-{email}")));
        }
        paths.push(path);
        let email = urlencode(email);
        paths.push(format!("/api/v1/fetch/subscribers/segments?email={email}"));
        paths.push(format!("/api/v1/fetch/subscribers/events?email={email}"));
        paths.push(format!(
            "/api/v1/fetch/subscribers/events?email={email}&limit=3"
        ));
        paths.push(format!("/api/v1/fetch/subscribers/history?email={email}"));
        paths.push(format!(
            "/api/v1/fetch/subscribers/history?email={email}&limit=2"
        ));
    }
    let mut ids = Vec::new();
    for state in ["", "?state=discarded"] {
        let listed: Value = app
            .get(&format!("/api/v1/fetch/segments{state}"))
            .await
            .json()
            .await
            .unwrap();
        for segment in listed["data"].as_array().unwrap() {
            let id = segment["id"].as_str().unwrap().to_owned();
            let query = segment["attributes"]["visitor_event_query"].clone();
            ids.push((id, query));
        }
    }
    for (id, query) in &ids {
        paths.push(format!("/api/v1/fetch/segments/{id}"));
        paths.push(format!("/api/v1/stats/segment?segment_id={id}"));
        paths.push(format!("/api/v1/fetch/segments/{id}/members"));
        paths.push(format!("/api/v1/fetch/segments/{id}/members.csv"));
        every_page(
            app,
            &format!("/api/v1/fetch/segments/{id}/members"),
            3,
            &mut answers,
        )
        .await;
        paths.push(format!("/api/v1/fetch/segments/{id}/versions"));
        // Its hand-made includes and excludes (a discarded segment's are a
        // 404).
        for list in ["includes", "excludes"] {
            every_page(
                app,
                &format!("/api/v1/fetch/segments/{id}/{list}"),
                2,
                &mut answers,
            )
            .await;
        }
        // Before the history begins (a 422 naming when), between steps,
        // and after the last.
        for at in [
            START_MS - 3_600_000,
            START_MS + 5 * STEP_MS + 3_600_000,
            START_MS + 17 * STEP_MS,
            START_MS + 50 * 86_400_000,
        ] {
            let at = urlencode(&iso(at));
            every_page(
                app,
                &format!("/api/v1/fetch/segments/{id}/members?at={at}"),
                5,
                &mut answers,
            )
            .await;
        }
        for since in [START_MS - 86_400_000, START_MS + 11 * STEP_MS] {
            every_change(app, id, since, 7, &mut answers).await;
        }
        // The size series by hour over the writes, by day and by week
        // past the last (at most 1,000 points).
        let from = urlencode(&iso(START_MS));
        for (interval, to) in [
            ("hour", START_MS + 30 * STEP_MS),
            ("day", START_MS + 45 * 86_400_000),
            ("week", START_MS + 45 * 86_400_000),
        ] {
            let to = urlencode(&iso(to));
            paths.push(format!(
                "/api/v1/stats/segment/history?segment_id={id}&from={from}&to={to}&interval={interval}"
            ));
        }
        for email in emails.iter().take(8) {
            let response = app
                .send_json(
                    Method::POST,
                    &format!("/api/v1/fetch/segments/{id}/match"),
                    &json!({"email": email}),
                )
                .await;
            answers.insert(format!("match {id} {email}"), answer_of(response).await);
        }
        let response = app
            .send_json(
                Method::POST,
                "/api/v1/fetch/segments/preview",
                &json!({"visitor_event_query": query, "sample": 5}),
            )
            .await;
        answers.insert(format!("preview of {id}"), answer_of(response).await);
    }
    let webhooks: Value = app
        .get("/api/v1/fetch/webhooks")
        .await
        .json()
        .await
        .unwrap();
    for webhook in webhooks["data"].as_array().unwrap() {
        let id = webhook["id"].as_str().unwrap();
        paths.push(format!("/api/v1/fetch/webhooks/{id}"));
        paths.push(format!("/api/v1/fetch/webhooks/{id}/deliveries"));
        paths.push(format!("/api/v1/fetch/webhooks/{id}/deliveries?limit=2"));
    }
    for path in paths {
        let response = app.get(&path).await;
        answers.insert(path, answer_of(response).await);
    }
    for answer in answers.values_mut() {
        *answer = normalized(std::mem::take(answer), &uuids);
    }
    answers
}

/// The reads made between writes, so that each is answered by a snapshot
/// brought forward from the change log (not read whole): every kept
/// segment's counts, the site's, and a preview.
async fn quick_answers(app: &TestApp) -> Vec<String> {
    let mut answers = vec![answer_of(app.get("/api/v1/stats/site").await).await];
    let listed: Value = app
        .get("/api/v1/fetch/segments")
        .await
        .json()
        .await
        .unwrap();
    for segment in listed["data"].as_array().unwrap() {
        let id = segment["id"].as_str().unwrap();
        let path = format!("/api/v1/stats/segment?segment_id={id}");
        answers.push(format!("{id}: {}", answer_of(app.get(&path).await).await));
    }
    let preview = app
        .send_json(
            Method::POST,
            "/api/v1/fetch/segments/preview",
            &json!({"visitor_event_query": {"event": {"type": "view", "count": {"at_least": 2}}}, "sample": 3}),
        )
        .await;
    answers.push(answer_of(preview).await);
    answers.into_iter().map(blank_uuids).collect()
}

/// One random write through the API: events (some purchases, some sent
/// twice), subscribers with fields and tags, or commands.
fn random_write(rng: &mut StdRng, emails: &[String], now: i64) -> (&'static str, Value) {
    let email = |rng: &mut StdRng| emails[rng.random_range(0..emails.len())].clone();
    match rng.random_range(0..4) {
        0 | 1 => {
            let events: Vec<Value> = (0..rng.random_range(1..12))
                .map(|_| {
                    let kind = ["signup", "login", "$purchase", "view"][rng.random_range(0..4)];
                    let days = rng.random_range(0..90_i64);
                    let date = chrono::DateTime::from_timestamp_millis(now - days * 86_400_000)
                        .unwrap()
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                    let mut details = json!({"plan": (["free", "pro"][rng.random_range(0..2)]),
                        "value": {"amount": rng.random_range(1..200), "currency": "USD"}});
                    if kind == "$purchase" {
                        details["unique"] = json!({"key": format!("o{}", rng.random_range(0..15))});
                    }
                    json!({"type": kind, "email": email(rng), "date": date, "details": details})
                })
                .collect();
            ("/api/v1/batch/events", json!({"events": events}))
        }
        2 => {
            let subscribers: Vec<Value> = (0..rng.random_range(1..6))
                .map(|_| {
                    let mut s = json!({"email": email(rng)});
                    if rng.random_bool(0.5) {
                        s["company_size"] = json!(rng.random_range(1..100));
                    }
                    if rng.random_bool(0.4) {
                        s["tags"] = json!(["lead", "vip", "agency"][rng.random_range(0..3)]);
                    }
                    if rng.random_bool(0.2) {
                        s["remove_tags"] = json!("lead");
                    }
                    s
                })
                .collect();
            (
                "/api/v1/batch/subscribers",
                json!({"subscribers": subscribers}),
            )
        }
        _ => {
            let commands: Vec<Value> = (0..rng.random_range(1..5))
                .map(|_| match rng.random_range(0..6) {
                    0 => json!({"command": "add_tag", "email": email(rng), "query": "VIP"}),
                    1 => json!({"command": "remove_tag", "email": email(rng), "query": "vip"}),
                    2 => json!({"command": "add_field", "email": email(rng),
                                 "query": {"key": "plan", "value": (["team", "solo"][rng.random_range(0..2)])}}),
                    3 => json!({"command": "unsubscribe", "email": email(rng)}),
                    4 => json!({"command": "subscribe", "email": email(rng)}),
                    _ => json!({"command": "change_email", "email": email(rng), "query": email(rng)}),
                })
                .collect();
            ("/api/v1/fetch/commands", json!({"command": commands}))
        }
    }
}

/// Hand-made includes and excludes, made at some steps of the differential
/// besides its random write: `(step, add, list, segment name, emails)`. An
/// unknown email; an exclude of a member of a segment another refers to;
/// an exclude of an included subscriber (the exclude wins); an include
/// and an exclude taken out again.
const MANUAL: [(i64, bool, &str, &str, &[&str]); 6] = [
    (
        7,
        true,
        "excludes",
        "buyers",
        &["p3@x.com", "p4@x.com", "p5@x.com"],
    ),
    (
        8,
        true,
        "includes",
        "vips",
        &["p1@x.com", "p2@x.com", "nobody@x.com"],
    ),
    (10, true, "excludes", "vips", &["p2@x.com"]),
    (11, true, "includes", "buyers", &["p3@x.com", "p6@x.com"]),
    (15, false, "includes", "vips", &["p1@x.com", "p2@x.com"]),
    (19, false, "excludes", "buyers", &["p4@x.com", "p7@x.com"]),
];

/// The segments both sites are asked about: every kind of condition (tag,
/// field, subscribed, email, created, an event's when, where, count, sum,
/// first and last, a count alone, segment references), and every way of
/// combining them (all, any, not, groups). `refer` gives the id a site
/// gave a segment named before.
fn segments(refer: &dyn Fn(&str) -> String) -> Vec<(&'static str, Value)> {
    vec![
        ("everyone", json!({})),
        (
            "buyers",
            json!({"event": {"type": "$purchase", "sum": {"of": "value.amount", "at_least": 100}}}),
        ),
        (
            "recent pros",
            json!({"event": {"type": "login", "when": {"within_last": {"days": 30}},
            "where": {"plan": {"equals": "pro"}}}}),
        ),
        (
            "vips",
            json!({"all": [{"tag": {"has": "vip"}}, {"subscribed": true}]}),
        ),
        (
            "big or team",
            json!({"groups": [
            {"filters": [{"field": {"key": "company_size", "more_than": 50}}]},
            {"filters": [{"field": {"key": "plan", "equals": "team"}}]}]}),
        ),
        ("not leads", json!({"not": {"tag": {"has": "lead"}}})),
        (
            "first seen",
            json!({"event": {"type": "signup", "first": {"within_last": {"days": 20}}}}),
        ),
        (
            "lapsed",
            json!({"event": {"type": "login", "last": {"older_than": {"days": 30}}}}),
        ),
        (
            "regulars",
            json!({"event": {"type": "view", "count": {"at_least": 3}}}),
        ),
        ("new", json!({"created": {"within_last": {"days": 3}}})),
        (
            "some addresses or solo",
            json!({"any": [
                {"email": {"ends_with": "3@x.com"}},
                {"email": {"in": ["p1@x.com", "p20@x.com"]}},
                {"field": {"key": "plan", "equals": "solo"}}]}),
        ),
        (
            "buyers but not vips",
            json!({"all": [
                {"segment": {"member_of": refer("buyers")}},
                {"segment": {"not_member_of": refer("vips")}}]}),
        ),
    ]
}

/// The differential: the same writes through the API of a server on SQLite
/// and one on PostgreSQL, every answer compared. Reads, the webhook
/// tracker and the journal's sweep run between writes, so PostgreSQL's
/// snapshots are brought forward from its change log step by step (as in
/// service), not only read whole at the end, and both journals hold joins
/// and leaves of every reason the writes give (data, time windows,
/// hand-made includes and excludes, an edited definition, a discarded
/// segment).
#[tokio::test]
async fn both_backends_give_the_same_answers_to_the_same_writes() {
    if postgres_cluster().is_none() {
        return skipped("differential");
    }
    const STEPS: i64 = 24;
    for seed in 1..=3_u64 {
        let dir = tempfile::tempdir().unwrap();
        let sqlite =
            TestApp::spawn_on(format!("sqlite://{}", dir.path().join("a.db").display())).await;
        let postgres = TestApp::spawn_on(fresh_postgres_database().await.unwrap()).await;
        let apps = [&sqlite, &postgres];
        let mut rng = StdRng::seed_from_u64(seed);
        let emails: Vec<String> = (0..24).map(|i| format!("p{i}@x.com")).collect();
        // Each site's segment ids by name (the same on both).
        let mut named = Vec::new();
        for app in apps {
            // In order: a reference names a segment made before it.
            let mut ids: BTreeMap<String, String> = BTreeMap::new();
            let mut made = Vec::new();
            let count = segments(&|_| String::new()).len();
            for i in 0..count {
                let refer = |n: &str| ids.get(n).cloned().unwrap_or_default();
                let (name, query) = segments(&refer).swap_remove(i);
                let data = app.create_segment(name, query).await;
                ids.insert(name.to_owned(), data["id"].as_str().unwrap().to_owned());
                made.push((name, data));
            }
            named.push(ids.clone());
            let id = &made.last().unwrap().1["id"];
            // Two webhooks: one on the first segments, every event; one on
            // the referring segment, joins only.
            let all: Vec<&Value> = made[..6].iter().map(|(_, d)| &d["id"]).collect();
            for body in [
                json!({"webhook": {"url": "https://1.1.1.1/all", "segment_ids": all}}),
                json!({"webhook": {"url": "https://1.1.1.1/joins", "segment_ids": [id],
                    "events": ["segment.member_added"]}}),
            ] {
                let made = app
                    .send_json(Method::POST, "/api/v1/fetch/webhooks", &body)
                    .await;
                assert_eq!(made.status(), StatusCode::CREATED);
            }
        }
        assert_eq!(named[0], named[1]);
        let trackers = apps.map(|app| corral::webhooks::tracker::Tracker::new(app.store.clone()));
        for step in 0..STEPS {
            let now = START_MS + step * STEP_MS;
            let (path, body) = random_write(&mut rng, &emails, now);
            let mut answers = Vec::new();
            for (app, tracker) in apps.iter().zip(&trackers) {
                app.clock.set_ms(now);
                let response = app.send_json(Method::POST, path, &body).await;
                let mut written = answer_of(response).await;
                for (_, add, list, name, emails) in MANUAL.iter().filter(|m| m.0 == step) {
                    let method = if *add { Method::POST } else { Method::DELETE };
                    let path = format!("/api/v1/fetch/segments/{}/{list}", named[0][*name]);
                    let response = app
                        .send_json(method, &path, &json!({ "emails": emails }))
                        .await;
                    assert_eq!(response.status(), StatusCode::OK, "{path}");
                    written.push_str(&answer_of(response).await);
                }
                let tracked = tracker.tick(app.clock.as_ref()).await.unwrap();
                // The journal's sweep, as a server runs it: relative windows
                // moved make transitions of their own.
                let swept = app.sweep().await;
                answers.push((written, tracked, swept, quick_answers(app).await));
            }
            assert_eq!(
                answers[0], answers[1],
                "seed {seed}, step {step}: {path} {body}"
            );
            if step == STEPS / 2 {
                compare(&sqlite, &postgres, &emails, seed).await;
            }
        }
        // An edited segment (a second version, its members moved by the
        // definition), a discarded one, and time moving on (relative
        // windows).
        for (app, tracker) in apps.iter().zip(&trackers) {
            let listed: Value = app
                .get("/api/v1/fetch/segments")
                .await
                .json()
                .await
                .unwrap();
            let id_of = |name: &str| {
                listed["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|s| s["attributes"]["name"] == name)
                    .unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            };
            let edited = app
                .send_json(
                    Method::PATCH,
                    &format!("/api/v1/fetch/segments/{}", id_of("not leads")),
                    &json!({"segment": {"visitor_event_query": {"not": {"tag": {"has": "vip"}}}}}),
                )
                .await;
            assert_eq!(edited.status(), StatusCode::OK);
            let id = id_of("regulars");
            let discarded = app
                .request(Method::DELETE, &format!("/api/v1/fetch/segments/{id}"))
                .send()
                .await
                .unwrap();
            assert_eq!(discarded.status(), StatusCode::OK);
            app.clock.set_ms(START_MS + 40 * 86_400_000);
            app.sweep().await;
            tracker.tick(app.clock.as_ref()).await.unwrap();
        }
        compare(&sqlite, &postgres, &emails, seed).await;
        // The answers came from snapshots the change log brought forward,
        // step by step: each site was read whole once.
        for app in apps {
            let site = app.site_id(&app.site).await;
            let stats = app.state.live.site_stats(site).unwrap();
            assert_eq!(stats.full_reads, 1, "seed {seed}: {stats:?}");
            assert!(stats.catch_ups >= STEPS as u64, "seed {seed}: {stats:?}");
        }
    }
}

/// Every read route of both servers, answer by answer.
async fn compare(sqlite: &TestApp, postgres: &TestApp, emails: &[String], seed: u64) {
    let (a, b) = (
        every_answer(sqlite, emails).await,
        every_answer(postgres, emails).await,
    );
    for (request, answer) in &a {
        assert_eq!(Some(answer), b.get(request), "seed {seed}: {request}");
    }
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "seed {seed}"
    );
}

#[tokio::test]
async fn concurrent_writers_on_one_database_lose_nothing_and_store_nothing_twice() {
    let Some(url) = fresh_postgres_database().await else {
        return skipped("concurrent writers");
    };
    // Two servers with pools of their own, on one database; the second
    // serves the first's site.
    let a = TestApp::spawn_on(url.clone()).await;
    let b = TestApp::spawn_on(url).await;
    let site = a.site.clone();
    let fields = |i: usize| json!({"subscribers": [{"email": "shared@x.com", format!("f{i}"): i}]});
    let purchase = json!({"events": [{"type": "$purchase", "email": "buyer@x.com",
        "details": {"unique": {"key": "order-1"}, "value": {"amount": 10, "currency": "USD"}}}]});
    let mut writes = Vec::new();
    for i in 0..40 {
        let app = if i % 2 == 0 { &a } else { &b };
        writes.push(
            app.as_site(&site, Method::POST, "/api/v1/batch/subscribers")
                .json(&fields(i))
                .send(),
        );
        writes.push(
            app.as_site(&site, Method::POST, "/api/v1/batch/events")
                .json(&purchase)
                .send(),
        );
        if i < 10 {
            writes.push(
                app.as_site(&site, Method::POST, "/api/v1/fetch/segments")
                    .json(&json!({"segment": {"name": "Same Name", "visitor_event_query": {}}}))
                    .send(),
            );
        }
    }
    let answers = futures_util::future::join_all(writes).await;
    let mut created = 0;
    for answer in answers {
        let status = answer.unwrap().status();
        assert!(
            status == StatusCode::OK
                || status == StatusCode::CREATED
                || status == StatusCode::UNPROCESSABLE_ENTITY,
            "{status}"
        );
        created += usize::from(status == StatusCode::CREATED);
    }
    // One segment of that name; every field merged in; the purchase once.
    assert_eq!(created, 1);
    let subscriber: Value = b
        .as_site(
            &site,
            Method::GET,
            "/api/v1/fetch/subscribers?email=shared@x.com",
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let stored = subscriber["data"]["attributes"]["fields"]
        .as_object()
        .unwrap();
    assert_eq!(stored.len(), 40, "{stored:?}");
    let purchases = a
        .events()
        .await
        .into_iter()
        .filter(|e| e.kind == "$purchase")
        .count();
    assert_eq!(purchases, 1);
}

#[tokio::test]
async fn every_read_of_a_burst_after_a_write_on_another_server_sees_it() {
    let Some(url) = fresh_postgres_database().await else {
        return skipped("bursts of reads");
    };
    // Reads of one site that arrive together share one read of its head;
    // none may share one that began before it arrived. A segment's answer
    // is cached under the head, so a read that shared an older head would
    // show the older name.
    let a = TestApp::spawn_on(url.clone()).await;
    let b = TestApp::spawn_on(url).await;
    let site = a.site.clone();
    let segment = a.create_segment("name 0", json!({})).await;
    let path = format!("/api/v1/fetch/segments/{}", segment["id"].as_str().unwrap());
    // Reads of B kept in flight all along, so that every burst arrives while
    // one that began before the write may still be running.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hammers: Vec<_> = (0..4)
        .map(|_| {
            let (client, base, site, stop, path) = (
                b.client.clone(),
                b.base.clone(),
                site.clone(),
                std::sync::Arc::clone(&stop),
                path.clone(),
            );
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = client
                        .get(format!("{base}{path}?site_uuid={}", site.uuid))
                        .basic_auth(&site.publishable_key, Some(&site.secret_key))
                        .send()
                        .await;
                }
            })
        })
        .collect();
    for i in 1..=15 {
        let name = format!("name {i}");
        let renamed = a
            .as_site(&site, Method::PATCH, &path)
            .json(&json!({"segment": {"name": name}}))
            .send()
            .await
            .unwrap();
        assert_eq!(renamed.status(), StatusCode::OK);
        let burst = (0..16).map(|_| b.as_site(&site, Method::GET, &path).send());
        for answer in futures_util::future::join_all(burst).await {
            let shown: Value = answer.unwrap().json().await.unwrap();
            assert_eq!(
                shown["data"]["attributes"]["name"],
                name.as_str(),
                "{shown}"
            );
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for hammer in hammers {
        hammer.await.unwrap();
    }
}
