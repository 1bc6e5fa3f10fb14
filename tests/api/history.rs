//! A site's history through the real server and the `corral` binary: every
//! saved definition of a segment (`…/versions`, `…/versions/{n}/restore`)
//! with who saved it and when, and the audit log of management actions
//! (`/fetch/audit`), which never holds a secret and never shows another
//! site's actions. Also: a database of an earlier release gets a baseline
//! version of each of its segments when it is migrated.

use crate::cli::Cli;
use crate::helpers::*;
use corral::http::HttpSettings;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A server whose webhooks may target this machine (nothing need answer:
/// only their management is recorded here).
async fn spawn() -> TestApp {
    TestApp::spawn_with(HttpSettings {
        rate_limit_per_minute: 0,
        allow_private_webhook_targets: true,
        ..HttpSettings::default()
    })
    .await
}

/// Creates a segment from a query's exact text (`json!` would not keep
/// `1.10` as written); its `data`.
async fn create_raw(app: &TestApp, name: &str, query: &str) -> Value {
    let body = format!(r#"{{"segment":{{"name":"{name}","visitor_event_query":{query}}}}}"#);
    let response = app
        .send_raw(Method::POST, "/api/v1/fetch/segments", body)
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json::<Value>().await.unwrap()["data"].clone()
}

/// Changes a segment's query to this exact text.
async fn patch_raw(app: &TestApp, id: &str, fields: &str) -> reqwest::Response {
    app.send_raw(
        Method::PATCH,
        &format!("/api/v1/fetch/segments/{id}"),
        format!(r#"{{"segment":{{{fields}}}}}"#),
    )
    .await
}

fn id(segment: &Value) -> String {
    segment["id"].as_str().unwrap().to_owned()
}

/// A segment's versions as the API answers them: status and raw body.
async fn versions_text(app: &TestApp, id: &str) -> (StatusCode, String) {
    let response = app
        .get(&format!("/api/v1/fetch/segments/{id}/versions"))
        .await;
    (response.status(), response.text().await.unwrap())
}

async fn versions(app: &TestApp, id: &str) -> Vec<Value> {
    let (status, text) = versions_text(app, id).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    body["data"].as_array().unwrap().clone()
}

async fn patch(app: &TestApp, id: &str, segment: Value) -> reqwest::Response {
    app.send_json(
        Method::PATCH,
        &format!("/api/v1/fetch/segments/{id}"),
        &json!({ "segment": segment }),
    )
    .await
}

async fn restore_version(
    app: &TestApp,
    id: &str,
    n: &str,
    if_match: Option<&str>,
) -> reqwest::Response {
    let mut request = app.request(
        Method::POST,
        &format!("/api/v1/fetch/segments/{id}/versions/{n}/restore"),
    );
    if let Some(tag) = if_match {
        request = request.header("if-match", tag);
    }
    request.send().await.unwrap()
}

/// The site's audit log, as `path`'s query asks: status and raw body.
async fn audit_text(app: &TestApp, site: &TestSite, query: &str) -> (StatusCode, String) {
    let response = app
        .as_site(site, Method::GET, &format!("/api/v1/fetch/audit{query}"))
        .send()
        .await
        .unwrap();
    (response.status(), response.text().await.unwrap())
}

async fn audit(app: &TestApp, query: &str) -> Value {
    let (status, text) = audit_text(app, &app.site, query).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    serde_json::from_str(&text).unwrap()
}

fn actions(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect()
}

const ISO_START: &str = "2026-11-26T09:00:00.000Z";

#[tokio::test]
async fn every_saved_definition_is_kept_with_who_saved_it_and_when() {
    let app = spawn().await;
    let key = app.site.publishable_key.clone();
    let created = create_raw(&app, "VIP", r#"{"field":{"key":"spend","equals":1.10}}"#).await;
    let seg = id(&created);
    app.clock.advance_ms(1_000);
    let changed = patch_raw(
        &app,
        &seg,
        r#""description":"big spenders","visitor_event_query":{"field":{"key":"spend","equals":2.50}}"#,
    )
    .await;
    assert_eq!(changed.status(), StatusCode::OK);
    // A change that changes nothing, a discard and a restore save no
    // definition (the last two still move the ETag's version).
    assert_eq!(
        patch(&app, &seg, json!({"name": "VIP"})).await.status(),
        StatusCode::OK
    );
    app.clock.advance_ms(1_000);
    for path in ["", "/restore"] {
        let method = if path.is_empty() {
            Method::DELETE
        } else {
            Method::POST
        };
        let answer = app
            .request(method, &format!("/api/v1/fetch/segments/{seg}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
    }
    // The command line saves the next one.
    app.clock.advance_ms(1_000);
    let cli = Cli::on(&app.database_url);
    let query = cli.dir.path().join("q.json");
    std::fs::write(&query, r#"{"tag":{"has":"vip"}}"#).unwrap();
    cli.ok(&[
        "segment",
        "update",
        &seg,
        "--site",
        &app.site.uuid,
        "--name",
        "VIPs",
        "--query",
        query.to_str().unwrap(),
    ]);

    let (status, text) = versions_text(&app, &seg).await;
    assert_eq!(status, StatusCode::OK);
    // Query literals exactly as they were saved.
    assert!(
        text.contains(r#""visitor_event_query":{"field":{"key":"spend","equals":1.10}}"#),
        "{text}"
    );
    assert!(text.contains(r#""equals":2.50}"#), "{text}");
    let listed: Value = serde_json::from_str(&text).unwrap();
    let listed = listed["data"].as_array().unwrap();
    let summary: Vec<(i64, &str, Option<&str>, &str)> = listed
        .iter()
        .map(|v| {
            (
                v["version"].as_i64().unwrap(),
                v["name"].as_str().unwrap(),
                v["description"].as_str(),
                v["saved_by"].as_str().unwrap(),
            )
        })
        .collect();
    // Versions 3 and 4 were the discard and the restore.
    assert_eq!(
        summary,
        [
            (1, "VIP", None, key.as_str()),
            (2, "VIP", Some("big spenders"), key.as_str()),
            (5, "VIPs", Some("big spenders"), "cli"),
        ]
    );
    assert_eq!(listed[0]["saved_at"], ISO_START);
    assert_eq!(listed[1]["saved_at"], "2026-11-26T09:00:01.000Z");
    assert_eq!(
        listed[2]["visitor_event_query"],
        json!({"tag": {"has": "vip"}})
    );
    // The last version is the segment as it stands, ETag and all.
    let now = app.get(&format!("/api/v1/fetch/segments/{seg}")).await;
    assert_eq!(now.headers()["etag"], format!("\"{seg}-5\""));
    // A discarded segment keeps its versions.
    app.request(Method::DELETE, &format!("/api/v1/fetch/segments/{seg}"))
        .send()
        .await
        .unwrap();
    assert_eq!(versions(&app, &seg).await.len(), 3);
}

#[tokio::test]
async fn restoring_a_version_honours_if_match_and_saves_a_new_version() {
    let app = spawn().await;
    let created = create_raw(&app, "Leads", r#"{"field":{"key":"score","equals":1.10}}"#).await;
    let seg = id(&created);
    let changed = patch(
        &app,
        &seg,
        json!({"name": "Hot leads", "visitor_event_query": {"tag": {"has": "hot"}}}),
    )
    .await;
    assert_eq!(changed.headers()["etag"], format!("\"{seg}-2\""));

    // A stale tag: refused, and nothing saved.
    let stale = restore_version(&app, &seg, "1", Some(&format!("\"{seg}-1\""))).await;
    assert_json(
        stale,
        StatusCode::PRECONDITION_FAILED,
        json!({"error": "Precondition Failed"}),
    )
    .await;
    assert_eq!(versions(&app, &seg).await.len(), 2);

    app.clock.advance_ms(5_000);
    let restored = restore_version(&app, &seg, "1", Some(&format!("\"{seg}-2\""))).await;
    assert_eq!(restored.status(), StatusCode::OK);
    assert_eq!(restored.headers()["etag"], format!("\"{seg}-3\""));
    let text = restored.text().await.unwrap();
    assert!(
        text.contains(r#""visitor_event_query":{"field":{"key":"score","equals":1.10}}"#),
        "{text}"
    );
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["data"]["attributes"]["name"], "Leads");
    // As the segment's read answers.
    let read = app.get(&format!("/api/v1/fetch/segments/{seg}")).await;
    assert_eq!(read.text().await.unwrap(), text);

    let listed = versions(&app, &seg).await;
    assert_eq!(listed.len(), 3);
    assert_eq!(listed[2]["version"], 3);
    assert_eq!(listed[2]["name"], "Leads");
    assert_eq!(listed[2]["saved_at"], "2026-11-26T09:00:05.000Z");
    assert_eq!(listed[2]["saved_by"], app.site.publishable_key.as_str());
    let log = audit(&app, "").await;
    assert_eq!(log["data"][0]["action"], "segment.version_restored");
    assert_eq!(log["data"][0]["details"]["restored_version"], 1);
    assert_eq!(log["data"][0]["details"]["before"]["name"], "Hot leads");

    // The definition it has already: nothing changes.
    let again = restore_version(&app, &seg, "1", None).await;
    assert_eq!(again.headers()["etag"], format!("\"{seg}-3\""));
    assert_eq!(versions(&app, &seg).await.len(), 3);

    // No such version; a discarded segment, as PATCH answers it.
    for n in ["9", "2x", "0", "-1"] {
        assert_json(
            restore_version(&app, &seg, n, None).await,
            StatusCode::NOT_FOUND,
            json!({"error": "Version not found"}),
        )
        .await;
    }
    app.request(Method::DELETE, &format!("/api/v1/fetch/segments/{seg}"))
        .send()
        .await
        .unwrap();
    assert_json(
        restore_version(&app, &seg, "2", None).await,
        StatusCode::NOT_FOUND,
        json!({"error": "Segment not found"}),
    )
    .await;
    assert_eq!(versions(&app, &seg).await.len(), 3);
}

#[tokio::test]
async fn the_audit_log_names_each_action_and_its_actor_and_never_a_secret() {
    let app = spawn().await;
    let key = app.site.publishable_key.clone();
    let seg = id(&app
        .create_segment("VIP", json!({"tag": {"has": "vip"}}))
        .await);
    app.clock.advance_ms(1_000);
    patch(
        &app,
        &seg,
        json!({"visitor_event_query": {"tag": {"has": "gold"}}}),
    )
    .await;
    app.request(Method::DELETE, &format!("/api/v1/fetch/segments/{seg}"))
        .send()
        .await
        .unwrap();
    app.request(
        Method::POST,
        &format!("/api/v1/fetch/segments/{seg}/restore"),
    )
    .send()
    .await
    .unwrap();
    restore_version(&app, &seg, "1", None).await;
    let made = app
        .send_json(
            Method::POST,
            "/api/v1/fetch/webhooks",
            &json!({"webhook": {"url": "http://127.0.0.1:9/hook", "segment_ids": [seg]}}),
        )
        .await;
    assert_eq!(made.status(), StatusCode::CREATED);
    let made: Value = made.json().await.unwrap();
    let webhook_secret = made["data"]["attributes"]["secret"]
        .as_str()
        .or_else(|| made["data"]["secret"].as_str())
        .expect("the secret is shown on create")
        .to_owned();
    let hook = made["data"]["id"].as_str().unwrap().to_owned();
    let changed = app
        .send_json(
            Method::PATCH,
            &format!("/api/v1/fetch/webhooks/{hook}"),
            &json!({"webhook": {"url": "http://127.0.0.1:9/other"}}),
        )
        .await;
    assert_eq!(changed.status(), StatusCode::OK);
    let deleted = app
        .request(Method::DELETE, &format!("/api/v1/fetch/webhooks/{hook}"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::OK);
    // Key pairs are managed on the command line.
    let cli = Cli::on(&app.database_url);
    let added: Value =
        serde_json::from_str(&cli.ok(&["key", "create", "--site", &app.site.uuid, "--json"]))
            .unwrap();
    let new_key = added["publishable_key"].as_str().unwrap();
    let new_secret = added["secret_key"].as_str().unwrap();
    cli.ok(&["key", "revoke", new_key]);
    // Revoking it again records nothing.
    cli.ok(&["key", "revoke", new_key]);

    let (status, text) = audit_text(&app, &app.site, "").await;
    assert_eq!(status, StatusCode::OK);
    for secret in [
        webhook_secret.as_str(),
        new_secret,
        app.site.secret_key.as_str(),
    ] {
        assert!(!text.contains(secret), "a secret in the audit log: {text}");
    }
    let log: Value = serde_json::from_str(&text).unwrap();
    let entries = log["data"].as_array().unwrap();
    let seen: Vec<(&str, &str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["actor"].as_str().unwrap(),
                e["subject"]["id"].as_str().unwrap(),
            )
        })
        .collect();
    // Newest first; the site's first key pair came with the site.
    let first_key = app.site.publishable_key.as_str();
    assert_eq!(
        seen,
        [
            ("key.revoked", "cli", new_key),
            ("key.added", "cli", new_key),
            ("webhook.deleted", key.as_str(), hook.as_str()),
            ("webhook.updated", key.as_str(), hook.as_str()),
            ("webhook.created", key.as_str(), hook.as_str()),
            ("segment.version_restored", key.as_str(), seg.as_str()),
            ("segment.restored", key.as_str(), seg.as_str()),
            ("segment.discarded", key.as_str(), seg.as_str()),
            ("segment.updated", key.as_str(), seg.as_str()),
            ("segment.created", key.as_str(), seg.as_str()),
            ("key.added", "cli", first_key),
        ]
    );
    assert_eq!(log["meta"]["next_cursor"], Value::Null);
    // When, and what changed: the definitions before and after, verbatim.
    let updated = &entries[8];
    assert_eq!(updated["at"], "2026-11-26T09:00:01.000Z");
    assert_eq!(updated["subject"]["type"], "segment");
    assert_eq!(updated["details"]["version"], 2);
    assert_eq!(
        updated["details"]["before"]["visitor_event_query"],
        json!({"tag": {"has": "vip"}})
    );
    assert_eq!(
        updated["details"]["after"]["visitor_event_query"],
        json!({"tag": {"has": "gold"}})
    );
    assert_eq!(entries[9]["details"]["definition"]["name"], "VIP");
    let webhook_changed = &entries[3]["details"];
    assert_eq!(webhook_changed["before"]["url"], "http://127.0.0.1:9/hook");
    assert_eq!(webhook_changed["after"]["url"], "http://127.0.0.1:9/other");
    assert_eq!(webhook_changed["after"]["segment_ids"], json!([seg]));
    assert_eq!(entries[0]["subject"]["type"], "key");
}

#[tokio::test]
async fn another_sites_history_is_walled_off() {
    let app = spawn().await;
    let other = app.new_site().await;
    let theirs = id(&app.create_segment_for(&other, "theirs", json!({})).await);
    let mine = id(&app.create_segment("mine", json!({})).await);
    for path in [
        format!("/api/v1/fetch/segments/{theirs}/versions"),
        format!("/api/v1/fetch/segments/{theirs}/versions/1/restore"),
    ] {
        let method = if path.ends_with("restore") {
            Method::POST
        } else {
            Method::GET
        };
        assert_json(
            app.request(method, &path).send().await.unwrap(),
            StatusCode::NOT_FOUND,
            json!({"error": "Segment not found"}),
        )
        .await;
    }
    let subjects = |text: &str| -> Vec<String> {
        let body: Value = serde_json::from_str(text).unwrap();
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["subject"]["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, ours) = audit_text(&app, &app.site, "").await;
    let (_, their_log) = audit_text(&app, &other, "").await;
    assert_eq!(
        subjects(&ours),
        [mine.as_str(), app.site.publishable_key.as_str()]
    );
    assert_eq!(
        subjects(&their_log),
        [theirs.as_str(), other.publishable_key.as_str()]
    );
}

#[tokio::test]
async fn bad_input_is_answered_in_bentos_shapes_and_changes_nothing() {
    let app = spawn().await;
    let seg = id(&app.create_segment("one", json!({})).await);
    for n in 0..4 {
        patch(&app, &seg, json!({"name": format!("one {n}")})).await;
        app.clock.advance_ms(60_000);
    }
    let before = audit(&app, "").await;
    assert_eq!(before["data"].as_array().unwrap().len(), 6);

    for limit in ["0", "1001", "ten", "-1"] {
        assert_invalid(
            app.get(&format!("/api/v1/fetch/audit?limit={limit}")).await,
            &[("limit", "must be a whole number from 1 to 1000")],
        )
        .await;
    }
    let not_iso = "must be an ISO 8601 time with a time zone, such as 2026-11-26T09:00:00Z";
    for since in ["yesterday", "2026-11-26", "2026-11-26T09:00:00"] {
        assert_invalid(
            app.get(&format!("/api/v1/fetch/audit?since={since}")).await,
            &[("since", not_iso)],
        )
        .await;
    }
    assert_invalid(
        app.get("/api/v1/fetch/audit?since=x&limit=0&cursor=bogus")
            .await,
        &[
            ("since", not_iso),
            ("limit", "must be a whole number from 1 to 1000"),
            (
                "cursor",
                "is not a cursor this API gave out (use meta.next_cursor)",
            ),
        ],
    )
    .await;
    assert_json(
        app.request(
            Method::POST,
            &format!("/api/v1/fetch/segments/{seg}/versions/two/restore"),
        )
        .send()
        .await
        .unwrap(),
        StatusCode::NOT_FOUND,
        json!({"error": "Version not found"}),
    )
    .await;
    assert_json(
        app.get("/api/v1/fetch/segments/x1/versions").await,
        StatusCode::NOT_FOUND,
        json!({"error": "Segment not found"}),
    )
    .await;
    assert_eq!(audit(&app, "").await, before);
    assert_eq!(versions(&app, &seg).await.len(), 5);

    // Pages of two, newest first, walk the whole log once.
    let mut walked = Vec::new();
    let mut query = "?limit=2".to_owned();
    loop {
        let page = audit(&app, &query).await;
        assert!(page["data"].as_array().unwrap().len() <= 2);
        walked.extend(page["data"].as_array().unwrap().iter().cloned());
        match page["meta"]["next_cursor"].as_str() {
            Some(cursor) => query = format!("?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(Value::from(walked), before["data"]);
    // Since an instant: what happened then and after.
    let since = audit(&app, "?since=2026-11-26T09:02:00Z").await;
    assert_eq!(actions(&since), ["segment.updated", "segment.updated"]);
    let since = audit(&app, "?since=2026-11-26T10:02:00%2B01:00").await;
    assert_eq!(since["data"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn the_cli_twins_answer_as_the_api_does() {
    let app = spawn().await;
    let seg = id(&create_raw(&app, "one", r#"{"field":{"key":"n","equals":1.10}}"#).await);
    patch(&app, &seg, json!({"visitor_event_query": {}})).await;
    let cli = Cli::on(&app.database_url);
    let site = app.site.uuid.as_str();

    let (_, api) = versions_text(&app, &seg).await;
    let printed = cli.ok(&["segment", "versions", &seg, "--site", site, "--json"]);
    assert_eq!(printed.trim_end(), api);
    let table = cli.ok(&["segment", "versions", &seg, "--site", site]);
    assert!(
        table.contains(r#"{"field":{"key":"n","equals":1.10}}"#),
        "{table}"
    );
    assert!(table.contains(&app.site.publishable_key), "{table}");

    let restored = cli.ok(&[
        "segment",
        "restore-version",
        &seg,
        "1",
        "--site",
        site,
        "--json",
    ]);
    assert!(
        restored.contains(r#""visitor_event_query":{"field":{"key":"n","equals":1.10}}"#),
        "{restored}"
    );
    let listed = versions(&app, &seg).await;
    assert_eq!(listed.last().unwrap()["saved_by"], "cli");
    assert_eq!(listed.last().unwrap()["version"], 3);
    let refused = cli.run(&["segment", "restore-version", &seg, "7", "--site", site]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains(&format!("segment {seg} has no version 7"))
    );
    let refused = cli.run(&["segment", "restore-version", &seg, "x", "--site", site]);
    assert!(!refused.status.success());

    let (_, api) = audit_text(&app, &app.site, "").await;
    let printed = cli.ok(&["audit", "--site", site, "--json"]);
    assert_eq!(printed.trim_end(), api);
    let two = cli.ok(&[
        "audit", "--site", site, "--json", "--limit", "2", "--since", ISO_START,
    ]);
    let two: Value = serde_json::from_str(&two).unwrap();
    assert_eq!(
        actions(&two),
        ["segment.version_restored", "segment.updated"]
    );
    // Page by page as the API: the same pages, the same cursors.
    let (_, first) = audit_text(&app, &app.site, "?limit=2").await;
    assert_eq!(
        cli.ok(&["audit", "--site", site, "--json", "--limit", "2"])
            .trim_end(),
        first
    );
    let first: Value = serde_json::from_str(&first).unwrap();
    let cursor = first["meta"]["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let (_, second) = audit_text(&app, &app.site, &format!("?limit=2&cursor={cursor}")).await;
    assert_eq!(
        cli.ok(&[
            "audit", "--site", site, "--json", "--limit", "2", "--cursor", &cursor
        ])
        .trim_end(),
        second
    );
    let lines = cli.ok(&["audit", "--site", site]);
    assert_eq!(lines.lines().count(), 4, "{lines}");
    assert!(
        lines
            .lines()
            .next()
            .unwrap()
            .contains("segment.version_restored"),
        "{lines}"
    );
    let refused = cli.run(&["audit", "--site", site, "--limit", "0"]);
    assert!(!refused.status.success());
    let refused = cli.run(&["audit", "--site", site, "--since", "monday"]);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("since must be an ISO 8601 time"));
}

/// The segments of the fixture of an earlier release each have one version
/// once migrated: their definition then, saved when they were last
/// changed, by no one known; and its audit log starts empty.
async fn assert_baselines(store: &dyn corral::storage::Store, site_uuid: &str) {
    use corral::segment::Listing;
    let site = store.find_site(site_uuid).await.unwrap().unwrap();
    let mut segments = store.list_segments(site.id, Listing::Kept).await.unwrap();
    segments.extend(
        store
            .list_segments(site.id, Listing::Discarded)
            .await
            .unwrap(),
    );
    assert!(segments.len() >= 3, "{segments:?}");
    assert!(segments.iter().any(|s| !s.is_kept()));
    for segment in &segments {
        let versions = store.segment_versions(site.id, segment.id).await.unwrap();
        assert_eq!(versions.len(), 1, "{segment:?}");
        let v = &versions[0];
        assert_eq!(
            (v.version, v.saved_at, v.saved_by.as_ref()),
            (segment.version, segment.updated_at, None)
        );
        assert_eq!(v.definition.name, segment.name);
        assert_eq!(v.definition.description, segment.description);
        assert_eq!(v.definition.query, segment.query);
    }
    let query = corral::storage::audit::AuditQuery {
        since: None,
        before: None,
        limit: 10,
    };
    assert!(store.audit_log(site.id, &query).await.unwrap().is_empty());
}

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/upgrade/5181515"
);

fn fixture_site() -> String {
    let site: Value =
        serde_json::from_slice(&std::fs::read(format!("{FIXTURE}/site.json")).unwrap()).unwrap();
    site["site_uuid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn an_upgraded_database_has_a_baseline_version_of_each_segment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corral.db");
    std::fs::copy(format!("{FIXTURE}/corral.db"), &path).unwrap();
    let store = corral::storage::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    assert_baselines(store.as_ref(), &fixture_site()).await;
    store.close().await;

    // The same on PostgreSQL, from the release's dump.
    let Some(url) = fresh_postgres_database().await else {
        return;
    };
    let dump = std::fs::read_to_string(format!("{FIXTURE}-postgres/corral.sql")).unwrap();
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(dump))
        .execute(&mut conn)
        .await
        .expect("the dump loads");
    drop(conn);
    let store = corral::storage::open(&url).await.unwrap();
    let site: Value =
        serde_json::from_slice(&std::fs::read(format!("{FIXTURE}-postgres/site.json")).unwrap())
            .unwrap();
    assert_baselines(store.as_ref(), site["site_uuid"].as_str().unwrap()).await;
}
