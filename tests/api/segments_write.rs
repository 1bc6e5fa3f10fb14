//! Corral's segment management: create, change, discard, restore, and the
//! rule that a refused request changes nothing.

use crate::helpers::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const SEGMENTS: &str = "/api/v1/fetch/segments";

fn path(segment: &Value) -> String {
    format!("{SEGMENTS}/{}", segment["id"].as_str().unwrap())
}

async fn data(response: reqwest::Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status);
    response.json::<Value>().await.unwrap()["data"].clone()
}

#[tokio::test]
async fn create_answers_201_with_the_segment_its_location_and_tag() {
    let app = TestApp::spawn().await;
    let response = app.send_json(Method::POST, SEGMENTS, &json!({"segment": {"name": "  VIP  ", "description": "Big spenders", "visitor_event_query": {"foreign": {"x": [1]}}}})).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let id = response.json::<Value>().await.unwrap()["data"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = app
        .send_json(
            Method::POST,
            SEGMENTS,
            &json!({"segment": {"name": "Other", "visitor_event_query": {}}}),
        )
        .await;
    assert_eq!(
        response.headers()["location"].to_str().unwrap(),
        format!("{SEGMENTS}/{}", id.parse::<i64>().unwrap() + 1)
    );
    assert!(response.headers().contains_key("etag"));
    let shown = data(app.get(&format!("{SEGMENTS}/{id}")).await, StatusCode::OK).await;
    assert_eq!(shown["attributes"]["name"], "VIP");
    assert_eq!(shown["attributes"]["description"], "Big spenders");
    assert_eq!(
        shown["attributes"]["visitor_event_query"],
        json!({"foreign": {"x": [1]}})
    );
}

#[tokio::test]
async fn site_uuid_may_come_in_the_json_body() {
    let app = TestApp::spawn().await;
    let response = app
        .bare(Method::POST, SEGMENTS)
        .basic_auth(&app.site.publishable_key, Some(&app.site.secret_key))
        .json(&json!({"site_uuid": app.site.uuid, "segment": {"name": "from body", "visitor_event_query": {}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(app.listed_names().await, ["from body"]);
}

#[tokio::test]
async fn names_are_unique_among_kept_segments_ignoring_case() {
    let app = TestApp::spawn().await;
    let first = app.create_segment("Straße VIP", json!({})).await;
    let before = app.snapshot().await;
    let response = app.send_json(Method::POST, SEGMENTS, &json!({"segment": {"name": " STRASSE vip ".replace("SS", "ẞ"), "visitor_event_query": {}}})).await;
    assert_invalid(response, &[("name", "has already been taken")]).await;
    assert_eq!(app.snapshot().await, before);
    // Once the first is discarded its name is free again.
    app.request(Method::DELETE, &path(&first))
        .send()
        .await
        .unwrap();
    app.create_segment("straße vip", json!({})).await;
}

#[tokio::test]
async fn another_sites_names_do_not_collide() {
    let app = TestApp::spawn().await;
    let other = app.new_site().await;
    app.create_segment_for(&other, "Shared name", json!({}))
        .await;
    app.create_segment("Shared name", json!({})).await;
}

#[tokio::test]
async fn name_length_is_checked_after_trimming_in_characters() {
    let app = TestApp::spawn().await;
    let ok = format!("  {}  ", "é".repeat(255));
    app.create_segment(&ok, json!({})).await;
    let response = app
        .send_json(
            Method::POST,
            SEGMENTS,
            &json!({"segment": {"name": "x".repeat(256), "visitor_event_query": {}}}),
        )
        .await;
    assert_invalid(
        response,
        &[("name", "is too long (maximum is 255 characters)")],
    )
    .await;
}

#[tokio::test]
async fn blank_and_non_string_names_are_refused() {
    let app = TestApp::spawn().await;
    for (name, message) in [
        (json!("   "), "can't be blank"),
        (json!(null), "can't be blank"),
        (json!(42), "must be a string"),
        (json!(["a"]), "must be a string"),
        (json!("tab\tinside"), "must not contain control characters"),
    ] {
        let response = app
            .send_json(
                Method::POST,
                SEGMENTS,
                &json!({"segment": {"name": name, "visitor_event_query": {}}}),
            )
            .await;
        assert_invalid(response, &[("name", message)]).await;
    }
    assert!(app.listed_names().await.is_empty());
}

#[tokio::test]
async fn descriptions_are_optional_and_at_most_2000_characters() {
    let app = TestApp::spawn().await;
    let response = app.send_json(Method::POST, SEGMENTS, &json!({"segment": {"name": "long", "description": "d".repeat(2_000), "visitor_event_query": {}}})).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let response = app.send_json(Method::POST, SEGMENTS, &json!({"segment": {"name": "longer", "description": "d".repeat(2_001), "visitor_event_query": {}}})).await;
    assert_invalid(
        response,
        &[("description", "is too long (maximum is 2000 characters)")],
    )
    .await;
    let response = app
        .send_json(
            Method::POST,
            SEGMENTS,
            &json!({"segment": {"name": "typed", "description": 7, "visitor_event_query": {}}}),
        )
        .await;
    assert_invalid(response, &[("description", "must be a string or null")]).await;
}

#[tokio::test]
async fn the_query_is_required_and_must_be_an_object() {
    let app = TestApp::spawn().await;
    for (segment, message) in [
        (json!({"name": "q"}), "is required"),
        (
            json!({"name": "q", "visitor_event_query": null}),
            "is required",
        ),
        (
            json!({"name": "q", "visitor_event_query": []}),
            "must be a JSON object",
        ),
        (
            json!({"name": "q", "visitor_event_query": "{}"}),
            "must be a JSON object",
        ),
        (
            json!({"name": "q", "visitor_event_query": 1}),
            "must be a JSON object",
        ),
    ] {
        let response = app
            .send_json(Method::POST, SEGMENTS, &json!({"segment": segment}))
            .await;
        assert_invalid(response, &[("visitor_event_query", message)]).await;
    }
    assert!(app.listed_names().await.is_empty());
}

#[tokio::test]
async fn queries_over_64_kib_are_refused() {
    let app = TestApp::spawn().await;
    // {"foreign":{"k":"…"}} is 20 bytes plus the filler.
    let at_limit = json!({"foreign": {"k": "x".repeat(65_536 - 20)}});
    app.create_segment("at limit", at_limit).await;
    let over = json!({"foreign": {"k": "x".repeat(65_536 - 19)}});
    let response = app
        .send_json(
            Method::POST,
            SEGMENTS,
            &json!({"segment": {"name": "over", "visitor_event_query": over}}),
        )
        .await;
    assert_invalid(
        response,
        &[(
            "visitor_event_query",
            "is too large (65537 bytes; the maximum is 65536 bytes)",
        )],
    )
    .await;
    assert_eq!(app.listed_names().await, ["at limit"]);
}

#[tokio::test]
async fn unknown_fields_are_named_together_with_every_other_problem() {
    let app = TestApp::spawn().await;
    let response = app.send_json(Method::POST, SEGMENTS, &json!({"colour": "red", "segment": {"name": "", "size": 3, "visitor_event_query": {}}})).await;
    assert_invalid(
        response,
        &[
            ("colour", "is not a known field"),
            ("size", "is not a known field"),
            ("name", "can't be blank"),
        ],
    )
    .await;
    assert!(app.listed_names().await.is_empty());
}

#[tokio::test]
async fn a_body_without_a_segment_object_is_refused() {
    let app = TestApp::spawn().await;
    let response = app
        .send_raw(Method::POST, SEGMENTS, r#"{"segment": "VIP"}"#)
        .await;
    assert_invalid(
        response,
        &[
            ("segment", "must be a JSON object"),
            ("name", "can't be blank"),
            ("visitor_event_query", "is required"),
        ],
    )
    .await;
    let response = app.send_raw(Method::POST, SEGMENTS, "[]").await;
    assert_invalid(response, &[("body", "must be a JSON object")]).await;
}

#[tokio::test]
async fn malformed_json_is_a_400() {
    let app = TestApp::spawn().await;
    for body in ["{\"segment\":", "", "not json", "{\"segment\":{}}trailing"] {
        let response = app.send_raw(Method::POST, SEGMENTS, body).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body:?}");
        let error: Value = response.json().await.unwrap();
        assert!(
            error["error"]
                .as_str()
                .unwrap()
                .starts_with("Malformed JSON: "),
            "{error}"
        );
    }
    assert!(app.listed_names().await.is_empty());
}

#[tokio::test]
async fn bodies_over_1_mib_are_a_413() {
    let app = TestApp::spawn().await;
    let huge = format!(
        r#"{{"segment":{{"name":"huge","visitor_event_query":{{"k":"{}"}}}}}}"#,
        "x".repeat(1024 * 1024)
    );
    let response = app.send_raw(Method::POST, SEGMENTS, huge.clone()).await;
    assert_json(
        response,
        StatusCode::PAYLOAD_TOO_LARGE,
        json!({"error": "Payload Too Large"}),
    )
    .await;
    // Without a declared length (chunked), the limit still holds.
    let status = chunked_post(&app, SEGMENTS, huge.as_bytes()).await;
    assert_eq!(status, 413);
    assert!(app.listed_names().await.is_empty());
}

#[tokio::test]
async fn a_client_still_sending_an_oversized_body_reads_the_413() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn().await;
    let host = app.base.trim_start_matches("http://");
    let auth = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("{}:{}", app.site.publishable_key, app.site.secret_key),
    );
    // Just over a segment's 1 MiB, and far over a batch's 16 MiB: the
    // server refuses each from its declared length, before reading it.
    for (path, size) in [
        (SEGMENTS.to_owned(), 1024 * 1024 + 100 * 1024),
        ("/api/v1/batch/events".to_owned(), 20 * 1024 * 1024),
    ] {
        let mut socket = tokio::net::TcpStream::connect(host).await.unwrap();
        let head = format!(
            "POST {path}?site_uuid={} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Basic {auth}\r\n\
             Content-Type: application/json\r\nContent-Length: {size}\r\n\r\n",
            app.site.uuid
        );
        socket.write_all(head.as_bytes()).await.unwrap();
        // The whole body goes through: the server reads and drops it
        // rather than closing on unread data (which would reset the
        // connection under the client's feet, answer unread).
        let chunk = vec![b' '; 64 * 1024];
        let mut sent = 0;
        while sent < size {
            let n = chunk.len().min(size - sent);
            socket
                .write_all(&chunk[..n])
                .await
                .unwrap_or_else(|e| panic!("{path}: the send broke off after {sent} bytes: {e}"));
            sent += n;
        }
        let mut answer = Vec::new();
        socket.read_to_end(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer).to_ascii_lowercase();
        assert!(answer.starts_with("http/1.1 413"), "{path}: {answer}");
        assert!(answer.contains("connection: close"), "{path}: {answer}");
        assert!(
            answer.ends_with(r#"{"error":"payload too large"}"#),
            "{path}: {answer}"
        );
    }
    assert!(app.listed_names().await.is_empty());
}

/// Posts `body` with `Transfer-Encoding: chunked` over a plain socket and
/// returns the status code.
async fn chunked_post(app: &TestApp, path: &str, body: &[u8]) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = app.base.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(host).await.unwrap();
    let auth = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("{}:{}", app.site.publishable_key, app.site.secret_key),
    );
    let head = format!(
        "POST {path}?site_uuid={} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Basic {auth}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        app.site.uuid
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    for chunk in body.chunks(64 * 1024) {
        let frame = [format!("{:x}\r\n", chunk.len()).as_bytes(), chunk, b"\r\n"].concat();
        // The server may answer and close before the whole body is sent.
        if socket.write_all(&frame).await.is_err() {
            break;
        }
    }
    let _ = socket.write_all(b"0\r\n\r\n").await;
    let mut response = Vec::new();
    let _ = socket.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response);
    text.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn patch_changes_fields_and_moves_updated_at_only() {
    let app = TestApp::spawn().await;
    let created = app
        .create_segment("before", json!({"foreign": {"v": 1}}))
        .await;
    app.clock.advance_ms(1_500);
    let response = app.send_json(Method::PATCH, &path(&created), &json!({"segment": {"name": "after", "description": "now described", "visitor_event_query": {"foreign": {"v": 2}}}})).await;
    let changed = data(response, StatusCode::OK).await;
    assert_eq!(changed["id"], created["id"]);
    assert_eq!(changed["attributes"]["name"], "after");
    assert_eq!(changed["attributes"]["description"], "now described");
    assert_eq!(
        changed["attributes"]["visitor_event_query"],
        json!({"foreign": {"v": 2}})
    );
    assert_eq!(
        changed["attributes"]["created_at"],
        "2026-11-26T09:00:00.000Z"
    );
    assert_eq!(
        changed["attributes"]["updated_at"],
        "2026-11-26T09:00:01.500Z"
    );
    let shown = data(app.get(&path(&created)).await, StatusCode::OK).await;
    assert_eq!(shown, changed);
}

#[tokio::test]
async fn updated_at_moves_even_within_the_same_millisecond() {
    let app = TestApp::spawn().await;
    let created = app.create_segment("a", json!({})).await;
    let changed = data(
        app.send_json(
            Method::PATCH,
            &path(&created),
            &json!({"segment": {"name": "b"}}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        changed["attributes"]["updated_at"],
        "2026-11-26T09:00:00.001Z"
    );
}

#[tokio::test]
async fn a_patch_that_changes_nothing_leaves_updated_at_alone() {
    let app = TestApp::spawn().await;
    let created = app
        .create_segment("same", json!({"foreign": {"a": 1}}))
        .await;
    app.clock.advance_ms(60_000);
    for body in [
        json!({"segment": {}}),
        json!({"segment": {"name": " same ", "visitor_event_query": {"foreign": {"a": 1}}, "description": null}}),
    ] {
        let unchanged = data(
            app.request(Method::PATCH, &path(&created))
                .json(&body)
                .send()
                .await
                .unwrap(),
            StatusCode::OK,
        )
        .await;
        assert_eq!(unchanged, created);
    }
}

#[tokio::test]
async fn patch_with_null_description_clears_it() {
    let app = TestApp::spawn().await;
    let created = data(
        app.send_json(
            Method::POST,
            SEGMENTS,
            &json!({"segment": {"name": "d", "description": "x", "visitor_event_query": {}}}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let cleared = data(
        app.send_json(
            Method::PATCH,
            &path(&created),
            &json!({"segment": {"description": null}}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(cleared["attributes"]["description"], Value::Null);
}

#[tokio::test]
async fn patch_to_a_taken_name_is_refused_and_changes_nothing() {
    let app = TestApp::spawn().await;
    app.create_segment("taken", json!({})).await;
    let other = app
        .create_segment("other", json!({"foreign": {"keep": true}}))
        .await;
    let before = app.snapshot().await;
    let response = app
        .send_json(
            Method::PATCH,
            &path(&other),
            &json!({"segment": {"name": "TAKEN", "visitor_event_query": {"foreign": {"keep": false}}}}),
        )
        .await;
    assert_invalid(response, &[("name", "has already been taken")]).await;
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn patch_validates_like_create() {
    let app = TestApp::spawn().await;
    let seg = app.create_segment("v", json!({})).await;
    let before = app.snapshot().await;
    let response = app
        .send_json(
            Method::PATCH,
            &path(&seg),
            &json!({"segment": {"name": "", "visitor_event_query": [1], "extra": 1}}),
        )
        .await;
    assert_invalid(
        response,
        &[
            ("extra", "is not a known field"),
            ("name", "can't be blank"),
            ("visitor_event_query", "must be a JSON object"),
        ],
    )
    .await;
    let response = app.send_raw(Method::PATCH, &path(&seg), "{oops").await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn discard_answers_the_discarded_record_and_hides_it() {
    let app = TestApp::spawn().await;
    let seg = app.create_segment("bye", json!({})).await;
    app.clock.advance_ms(10);
    let discarded = data(
        app.request(Method::DELETE, &path(&seg))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        discarded["attributes"]["discarded_at"],
        "2026-11-26T09:00:00.010Z"
    );
    assert_eq!(
        discarded["attributes"]["updated_at"],
        "2026-11-26T09:00:00.010Z"
    );
    assert_eq!(app.get(&path(&seg)).await.status(), StatusCode::NOT_FOUND);
    // Discarding again: it is no longer a kept segment.
    let again = app
        .request(Method::DELETE, &path(&seg))
        .send()
        .await
        .unwrap();
    assert_json(
        again,
        StatusCode::NOT_FOUND,
        json!({"error": "Segment not found"}),
    )
    .await;
    // Changing it: likewise.
    let patch = app
        .send_json(
            Method::PATCH,
            &path(&seg),
            &json!({"segment": {"name": "x"}}),
        )
        .await;
    assert_eq!(patch.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn discard_and_restore_take_no_body_but_site_uuid() {
    let app = TestApp::spawn().await;
    let seg = app.create_segment("kept", json!({})).await;
    let before = app.snapshot().await;
    for body in [
        json!({"segment": {"name": "x"}}),
        json!([app.site.uuid]),
        json!(null),
    ] {
        let response = app.send_json(Method::DELETE, &path(&seg), &body).await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}"
        );
    }
    assert_invalid(
        app.send_json(
            Method::POST,
            &format!("{}/restore", path(&seg)),
            &json!({"site_uuid": app.site.uuid, "force": true}),
        )
        .await,
        &[("force", "is not a known field")],
    )
    .await;
    assert_eq!(app.snapshot().await, before);
    // As the Node SDK sends it.
    let sdk = json!({"site_uuid": app.site.uuid});
    let response = app.send_json(Method::DELETE, &path(&seg), &sdk).await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = app
        .send_json(Method::POST, &format!("{}/restore", path(&seg)), &sdk)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn discarded_segments_are_listed_on_request_and_restorable() {
    let app = TestApp::spawn().await;
    let seg = app
        .create_segment("phoenix", json!({"foreign": {"q": 1}}))
        .await;
    app.request(Method::DELETE, &path(&seg))
        .send()
        .await
        .unwrap();
    let listed: Value = app
        .get("/api/v1/fetch/segments?state=discarded")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["data"][0]["id"], seg["id"]);
    assert!(listed["data"][0]["attributes"]["discarded_at"].is_string());
    app.clock.advance_ms(5);
    let restored = data(
        app.request(Method::POST, &format!("{}/restore", path(&seg)))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert!(restored["attributes"].get("discarded_at").is_none());
    assert_eq!(
        restored["attributes"]["visitor_event_query"],
        json!({"foreign": {"q": 1}})
    );
    assert_eq!(app.listed_names().await, ["phoenix"]);
    // Restoring a kept segment changes nothing.
    let again = data(
        app.request(Method::POST, &format!("{}/restore", path(&seg)))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(again, restored);
}

#[tokio::test]
async fn restoring_a_segment_whose_name_is_taken_is_refused() {
    let app = TestApp::spawn().await;
    let old = app.create_segment("Name", json!({})).await;
    app.request(Method::DELETE, &path(&old))
        .send()
        .await
        .unwrap();
    app.create_segment("NAME", json!({})).await;
    let before = app.snapshot().await;
    let response = app
        .request(Method::POST, &format!("{}/restore", path(&old)))
        .send()
        .await
        .unwrap();
    assert_invalid(response, &[("name", "has already been taken")]).await;
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn another_sites_segments_cannot_be_changed_discarded_or_restored() {
    let app = TestApp::spawn().await;
    let other = app.new_site().await;
    let theirs = app.create_segment_for(&other, "theirs", json!({})).await;
    let gone = app.create_segment_for(&other, "gone", json!({})).await;
    app.as_site(&other, Method::DELETE, &path(&gone))
        .send()
        .await
        .unwrap();
    let before_theirs = app
        .as_site(&other, Method::GET, SEGMENTS)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let attempts = [
        app.request(Method::PATCH, &path(&theirs))
            .json(&json!({"segment": {"name": "mine"}})),
        app.request(Method::DELETE, &path(&theirs)),
        app.request(Method::POST, &format!("{}/restore", path(&gone))),
        app.request(Method::GET, &path(&theirs)),
    ];
    for attempt in attempts {
        let response = attempt.send().await.unwrap();
        assert_json(
            response,
            StatusCode::NOT_FOUND,
            json!({"error": "Segment not found"}),
        )
        .await;
    }
    let after_theirs = app
        .as_site(&other, Method::GET, SEGMENTS)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(before_theirs, after_theirs);
    assert!(app.listed_names().await.is_empty());
}

#[tokio::test]
async fn concurrent_writers_and_readers_all_succeed() {
    let app = std::sync::Arc::new(TestApp::spawn().await);
    let mut tasks = Vec::new();
    for i in 0..40 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let created = app.send_json(Method::POST, SEGMENTS, &json!({"segment": {"name": format!("s{i:02}"), "visitor_event_query": {"foreign": {"i": i}}}})).await
                .status();
            let listed = app.get(SEGMENTS).await.status();
            (created, listed)
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), (StatusCode::CREATED, StatusCode::OK));
    }
    assert_eq!(app.listed_names().await.len(), 40);
}

/// What the probe's clients did: Python's urllib (it sends the whole body,
/// then reads) and reqwest (hyper's client), 50 times each, a segment just
/// over its 1.1 MiB and a batch of 20 MiB: every try reads the 413, none
/// breaks off with a reset.
#[tokio::test]
async fn oversized_bodies_are_answered_413_every_time_to_two_clients() {
    let app = TestApp::spawn().await;
    let tries = 50;
    let routes = [
        (
            format!("{SEGMENTS}?site_uuid={}", app.site.uuid),
            1024 * 1024 + 100 * 1024,
        ),
        (
            format!("/api/v1/batch/events?site_uuid={}", app.site.uuid),
            20 * 1024 * 1024,
        ),
    ];
    let script = r#"
import base64, sys, urllib.error, urllib.request
url, user, password, size, tries = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
body = b" " * size
auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
statuses = []
for _ in range(tries):
    request = urllib.request.Request(url, data=body, method="POST",
        headers={"Content-Type": "application/json", "Authorization": auth})
    try:
        urllib.request.urlopen(request, timeout=60)
        statuses.append("200")
    except urllib.error.HTTPError as error:
        statuses.append(str(error.code))
    except Exception as error:
        statuses.append(type(error).__name__)
print(" ".join(statuses))
"#;
    for (path, size) in &routes {
        let url = format!("{}{path}", app.base);
        let args = [
            "-c".to_owned(),
            script.to_owned(),
            url.clone(),
            app.site.publishable_key.clone(),
            app.site.secret_key.clone(),
            size.to_string(),
            tries.to_string(),
        ];
        let output = tokio::task::spawn_blocking(move || {
            std::process::Command::new("python3").args(args).output()
        })
        .await
        .unwrap()
        .expect("python3 runs");
        let statuses = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(
            statuses.trim(),
            vec!["413"; tries].join(" "),
            "urllib, {size} bytes to {path}"
        );

        let client = http_client();
        let body = vec![b' '; *size];
        for i in 0..tries {
            let answer = client
                .post(&url)
                .basic_auth(&app.site.publishable_key, Some(&app.site.secret_key))
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .unwrap_or_else(|e| panic!("reqwest, try {i}, {size} bytes to {path}: {e}"));
            assert_eq!(
                answer.status(),
                413,
                "reqwest, try {i}, {size} bytes to {path}"
            );
        }
    }
    assert!(app.listed_names().await.is_empty());
}
