//! What a hostile client sends at the HTTP edge: request ids that are too
//! long or carry unsafe bytes, names and emails with invisible or
//! direction-changing characters, bodies in an encoding the server does not
//! read or in broken chunks, requests hyper refuses before any route sees
//! them; and the modes of the files the server creates.

use crate::helpers::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

const SEGMENTS: &str = "/api/v1/fetch/segments";
const BIN: &str = env!("CARGO_BIN_EXE_corral");

/// A `corral serve --demo` child on a fresh SQLite file in `dir`, started
/// through `sh` with `umask`, its log (JSON, info) in `log`.
struct Served {
    child: Child,
    base: String,
    /// `(site_uuid, publishable key, secret key)` of the demo site.
    site: (String, String, String),
}

impl Served {
    fn start(dir: &std::path::Path, umask: &str, log: &std::path::Path) -> Self {
        let database = format!("sqlite://{}", dir.join("corral.db").display());
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!("umask {umask} && exec \"$0\" \"$@\""))
            .arg(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--demo"])
            .args(["--database", &database, "--log-format", "json"])
            .current_dir(dir)
            .env_remove("CORRAL_DATABASE_URL")
            .env_remove("CORRAL_CONFIG")
            .env_remove("CORRAL_CHECKPOINT_DIR")
            .env("CORRAL_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        // The banner ends with a curl line naming the address and the
        // demo site's credentials; the server listens before printing it.
        let reader = BufReader::new(child.stdout.take().unwrap());
        let mut banner = String::new();
        for line in reader.lines() {
            let line = line.unwrap();
            banner.push_str(&line);
            banner.push('\n');
            if line.trim_start().starts_with("curl ") {
                break;
            }
        }
        let after = |key: &str| -> String {
            let start = banner
                .find(key)
                .unwrap_or_else(|| panic!("no {key} in {banner}"))
                + key.len();
            banner[start..]
                .split(|c: char| c.is_whitespace() || c == '\'' || c == '&')
                .next()
                .unwrap()
                .to_owned()
        };
        let base = format!("http://{}", after("'http://").split('/').next().unwrap());
        let site = (after("SITE="), after("PK="), after("SK="));
        Self { child, base, site }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}?site_uuid={}", self.base, self.site.0)
    }

    /// Stops the server with SIGTERM and waits for it to exit.
    fn stop(mut self) {
        let stopped = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(stopped.success());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{status}");
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// Request ids.

/// The id the server made itself: its process prefix and a counter.
fn is_fresh(id: &str) -> bool {
    let (prefix, counter) = id.split_once('-').unwrap_or_default();
    prefix.len() == 12
        && counter.len() == 10
        && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

async fn answered_id(app: &TestApp, sent: &[&[u8]]) -> String {
    let mut request = app.request(Method::GET, SEGMENTS);
    for id in sent {
        request = request.header(
            "x-request-id",
            reqwest::header::HeaderValue::from_bytes(id).unwrap(),
        );
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let ids: Vec<_> = response
        .headers()
        .get_all("x-request-id")
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    ids[0].clone()
}

#[tokio::test]
async fn a_clients_request_id_is_kept_only_when_short_and_made_of_safe_characters() {
    let app = TestApp::spawn().await;
    for good in [
        "trace-me-42",
        "0f8c2d4e-8a7b-4c1d-9e2f-3a4b5c6d7e8f",
        "01J9ZQ:span_7.retry-2",
        &"a".repeat(64),
    ] {
        assert_eq!(answered_id(&app, &[good.as_bytes()]).await, good);
    }
    let long = "x".repeat(3_000);
    for bad in [
        long.as_bytes(),
        "a".repeat(65).as_bytes(),
        b"two words",
        b"tab\there",
        b"\"quoted\"",
        b"caf\xe9",
        b"<script>",
    ] {
        let answered = answered_id(&app, &[bad]).await;
        assert!(
            is_fresh(&answered),
            "{:.70?} ({} bytes) came back as {answered:.70?} ({} bytes)",
            String::from_utf8_lossy(bad),
            bad.len(),
            answered.len()
        );
    }
    // Two ids: whose would it be? A fresh one.
    let answered = answered_id(&app, &[b"first", b"second"]).await;
    assert!(is_fresh(&answered), "{answered}");
}

#[tokio::test]
async fn a_refused_request_id_is_not_written_to_the_log_the_fresh_one_is() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("serve.log");
    let server = Served::start(dir.path(), "022", &log);
    let (_, pk, sk) = server.site.clone();
    let long = "L".repeat(3_000);
    let response = http_client()
        .get(server.url(SEGMENTS))
        .basic_auth(&pk, Some(&sk))
        .header("x-request-id", &long)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let fresh = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(is_fresh(&fresh), "{fresh:.70} ({} bytes)", fresh.len());
    // The request's log line is written before its answer is sent.
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        !logged.contains(&"L".repeat(65)),
        "the client's id was logged"
    );
    let lines: Vec<Value> = logged
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .filter(|line: &Value| line.to_string().contains(&fresh))
        .collect();
    assert!(!lines.is_empty(), "no log line names {fresh}:\n{logged}");
    server.stop();
}

// Invisible and direction-changing characters.

const HIDDEN_IN_NAME: &str = "must not contain invisible or direction-changing characters (U+200B)";
const HIDDEN_IN_EMAIL: &str =
    "must not contain invisible or direction-changing characters (U+202E)";

#[tokio::test]
async fn segment_names_and_descriptions_with_hidden_characters_are_refused() {
    let app = TestApp::spawn().await;
    app.create_segment("VIP customers", json!({})).await;
    let app = &app;
    let create = |segment: Value| {
        let body = json!({"segment": segment});
        async move { app.send_json(Method::POST, SEGMENTS, &body).await }
    };
    assert_invalid(
        create(json!({"name": "VIP\u{200b} customers", "visitor_event_query": {}})).await,
        &[("name", HIDDEN_IN_NAME)],
    )
    .await;
    assert_invalid(
        create(json!({"name": "x", "description": "a\u{202e}b", "visitor_event_query": {}})).await,
        &[(
            "description",
            "must not contain invisible or direction-changing characters (U+202E)",
        )],
    )
    .await;
    // Renaming is held to the same rule.
    let id = app.create_segment("plain", json!({})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_invalid(
        app.send_json(
            Method::PATCH,
            &format!("{SEGMENTS}/{id}"),
            &json!({"segment": {"name": "\u{feff}plain"}}),
        )
        .await,
        &[(
            "name",
            "must not contain invisible or direction-changing characters (U+FEFF)",
        )],
    )
    .await;
    assert_eq!(app.listed_names().await, ["plain", "VIP customers"]);
    // A query may still name a tag stored before hidden characters were
    // refused.
    app.create_segment("old tag", json!({"tag": {"has": "VIP\u{200b} customers"}}))
        .await;
    // A joiner between two emoji is part of the name, not hidden.
    app.create_segment(
        "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467} families",
        json!({}),
    )
    .await;
}

#[tokio::test]
async fn emails_and_tag_names_with_hidden_characters_are_refused_on_every_route() {
    let app = TestApp::spawn().await;
    let evil = "u\u{202e}evil@example.com";
    // One subscriber, and one tag.
    assert_invalid(
        app.send_json(
            Method::POST,
            "/api/v1/fetch/subscribers",
            &json!({"subscriber": {"email": evil}}),
        )
        .await,
        &[("email", HIDDEN_IN_EMAIL)],
    )
    .await;
    assert_invalid(
        app.send_json(
            Method::POST,
            "/api/v1/fetch/tags",
            &json!({"tag": {"name": "VIP\u{200b} customers"}}),
        )
        .await,
        &[("name", HIDDEN_IN_NAME)],
    )
    .await;
    // Batches: the item fails alone, saying why.
    let batch: Value = app
        .send_json(
            Method::POST,
            "/api/v1/batch/subscribers",
            &json!({"subscribers": [
                {"email": evil},
                {"email": "ok@example.com", "tags": "VIP\u{200b} customers"},
                {"email": "fine@example.com", "tags": "vip"},
            ]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(batch["results"], 1, "{batch}");
    assert_eq!(batch["failed"], 2, "{batch}");
    let messages: Vec<&str> = batch["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages[0], format!("email {HIDDEN_IN_EMAIL}"));
    assert!(messages[1].ends_with(HIDDEN_IN_NAME), "{messages:?}");
    let events: Value = app
        .send_json(
            Method::POST,
            "/api/v1/batch/events",
            &json!({"events": [{"type": "$pageview", "email": evil}]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(events["failed"], 1, "{events}");
    assert_eq!(
        events["errors"][0]["message"],
        format!("email {HIDDEN_IN_EMAIL}")
    );
    let commands: Value = app
        .send_json(
            Method::POST,
            "/api/v1/fetch/commands",
            &json!({"command": [{"command": "add_tag", "email": evil, "query": "vip"}]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(commands["failed"], 1, "{commands}");
    assert_eq!(app.rows(Table::Subscribers).await, 1);
}

#[tokio::test]
async fn corral_import_skips_lines_with_hidden_characters_and_counts_them() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("subscribers.jsonl");
    std::fs::write(
        &file,
        concat!(
            "{\"email\":\"ok@example.com\"}\n",
            "{\"email\":\"u\u{202e}evil@example.com\"}\n",
            "{\"email\":\"tagged@example.com\",\"tags\":\"VIP\u{200b} customers\"}\n",
        ),
    )
    .unwrap();
    let output = Command::new(BIN)
        .args(["import", "subscribers", "--site", &app.site.uuid])
        .arg(&file)
        .args(["--database", &app.database_url])
        .env_remove("CORRAL_DATABASE_URL")
        .env_remove("CORRAL_CONFIG")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("line 2: email {HIDDEN_IN_EMAIL} (skipped)")),
        "{stderr}"
    );
    assert!(
        stderr.contains("line 3: ") && stderr.contains(HIDDEN_IN_NAME),
        "{stderr}"
    );
    assert!(
        stdout.starts_with("imported 1 subscriber, skipped 2 bad lines"),
        "{stdout}"
    );
    assert_eq!(app.rows(Table::Subscribers).await, 1);
}

// The modes of the files the server creates.

/// Every file and directory under `dir` (itself left out), with its mode;
/// one that goes while it is listed (a checkpoint's temporary file, renamed)
/// is left out.
fn modes(dir: &std::path::Path) -> Vec<(String, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else {
            continue;
        };
        let name = entry.file_name().to_string_lossy().into_owned();
        found.push((name.clone(), meta.permissions().mode() & 0o777));
        if meta.is_dir() {
            for (inner, mode) in modes(&entry.path()) {
                found.push((format!("{name}/{inner}"), mode));
            }
        }
    }
    found.sort();
    found
}

#[tokio::test]
async fn the_database_its_log_and_the_checkpoints_are_created_for_their_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    // With no umask at all, a file made with the default mode would be
    // readable (and writable) by everyone.
    let server = Served::start(dir.path(), "000", &logs.path().join("serve.log"));
    let (_, pk, sk) = server.site.clone();
    let client = http_client();
    let written = client
        .post(server.url("/api/v1/batch/events"))
        .basic_auth(&pk, Some(&sk))
        .json(&json!({"events": [{"type": "$pageview", "email": "ada@example.com"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(written.status(), StatusCode::OK);
    // A segment's members: the site's audience is read into memory, and
    // its checkpoint written when the server stops.
    let segments: Value = client
        .get(server.url(SEGMENTS))
        .basic_auth(&pk, Some(&sk))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = segments["data"][0]["id"].as_str().unwrap().to_owned();
    let members = client
        .get(server.url(&format!("{SEGMENTS}/{id}/members")))
        .basic_auth(&pk, Some(&sk))
        .send()
        .await
        .unwrap();
    assert_eq!(members.status(), StatusCode::OK);
    let running = modes(dir.path());
    let names: Vec<&str> = running.iter().map(|(name, _)| name.as_str()).collect();
    for file in ["corral.db", "corral.db-wal", "corral.db-shm"] {
        assert!(names.contains(&file), "{file} is not there: {running:?}");
    }
    for (name, mode) in &running {
        assert_eq!(*mode & 0o077, 0, "{name} is {mode:04o} while serving");
    }
    server.stop();
    let stopped = modes(dir.path());
    assert!(
        stopped.iter().any(|(name, _)| name.ends_with(".ckpt")),
        "no checkpoint was written: {stopped:?}"
    );
    for (name, mode) in &stopped {
        assert_eq!(*mode & 0o077, 0, "{name} is {mode:04o} once stopped");
    }
}

#[tokio::test]
async fn an_existing_database_keeps_the_mode_its_owner_gave_it_with_a_warning() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let database = dir.path().join("corral.db");
    std::fs::File::create(&database).unwrap();
    std::fs::set_permissions(&database, std::fs::Permissions::from_mode(0o640)).unwrap();
    let log = logs.path().join("serve.log");
    let server = Served::start(dir.path(), "022", &log);
    server.stop();
    let mode = std::fs::metadata(&database).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("other users may read the database file") && logged.contains("0640"),
        "{logged}"
    );
}

// Bodies the server cannot read as sent.

/// Sends `request` on a fresh connection and reads until the server closes
/// it: the status line and the body, after the head.
async fn exchange(app: &TestApp, request: &[u8]) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(15),
        stream.read_to_end(&mut answer),
    )
    .await;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    (head.to_owned(), body.to_owned())
}

fn basic(app: &TestApp) -> String {
    use base64::Engine;
    let pair = format!("{}:{}", app.site.publishable_key, app.site.secret_key);
    base64::engine::general_purpose::STANDARD.encode(pair)
}

#[tokio::test]
async fn a_body_in_a_content_encoding_is_refused_with_415_not_read_as_plain() {
    let app = TestApp::spawn().await;
    for coding in ["gzip", "br", "identity, deflate"] {
        let response = app
            .request(Method::POST, SEGMENTS)
            .header("content-type", "application/json")
            .header("content-encoding", coding)
            .body(r#"{"segment":{"name":"plain after all","visitor_event_query":{}}}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["accept-encoding"], "identity");
        let named = coding.rsplit(", ").next().unwrap();
        assert_json(
            response,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            json!({"error": format!("Unsupported Content-Encoding \"{named}\": send the body as it is")}),
        )
        .await;
    }
    let plain = app
        .request(Method::POST, SEGMENTS)
        .header("content-type", "application/json")
        .header("content-encoding", "identity")
        .body(r#"{"segment":{"name":"plain","visitor_event_query":{}}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), StatusCode::CREATED);
    assert_eq!(app.listed_names().await, ["plain"]);
}

#[tokio::test]
async fn a_broken_chunk_is_a_400_and_a_body_cut_short_is_not_a_413() {
    let app = TestApp::spawn().await;
    let head = |framing: &str| {
        format!(
            "POST {SEGMENTS}?site_uuid={} HTTP/1.1\r\nHost: corral\r\nAuthorization: Basic {}\r\n\
             Content-Type: application/json\r\n{framing}\r\n\r\n",
            app.site.uuid,
            basic(&app)
        )
    };
    let malformed = |detail: &str| json!({"error": format!("Malformed body: {detail}")});
    // A chunk size that is not hexadecimal.
    let (status, body) = exchange(
        &app,
        format!(
            "{}zz\r\n{{}}\r\n0\r\n\r\n",
            head("Transfer-Encoding: chunked")
        )
        .as_bytes(),
    )
    .await;
    assert!(status.starts_with("HTTP/1.1 400 "), "{status}");
    assert!(
        status.to_ascii_lowercase().contains("connection: close"),
        "{status}"
    );
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        malformed("its chunked encoding is broken")
    );
    // A body that ends (the client shuts its side) before its length.
    let (status, body) = {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(app.base.trim_start_matches("http://"))
            .await
            .unwrap();
        stream
            .write_all(format!("{}{{\"segm", head("Content-Length: 100")).as_bytes())
            .await
            .unwrap();
        stream.shutdown().await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        (head.to_owned(), body.to_owned())
    };
    assert!(status.starts_with("HTTP/1.1 400 "), "{status}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        malformed("it ended before its declared length")
    );
    assert!(app.listed_names().await.is_empty());
}
