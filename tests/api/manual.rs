//! Hand-made includes and excludes through the real server: membership is
//! `(the query's members ∪ includes) ∖ excludes` on every read route
//! (members, counts, CSV, match, a subscriber's segments, overlap, preview
//! of a query that refers to the segment), in segments that refer to it, in
//! the journal (reason `manual`) and the audit log, for a server that reads
//! the site afresh; bad input and other sites' segments change nothing.

use crate::helpers::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::BTreeSet;

const SEGMENTS: &str = "/api/v1/fetch/segments";

/// ann and bob are tagged vip; cy and dee are not.
async fn audience(app: &TestApp) {
    let response = app
        .send_json(
            Method::POST,
            "/api/v1/batch/subscribers",
            &json!({"subscribers": [
                {"email": "ann@example.com", "tags": "vip"},
                {"email": "bob@example.com", "tags": "vip"},
                {"email": "cy@example.com"},
                {"email": "dee@example.com"},
            ]}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
}

async fn edit(app: &TestApp, method: Method, id: &str, list: &str, emails: &[&str]) -> Value {
    let response = app
        .send_json(
            method,
            &format!("{SEGMENTS}/{id}/{list}"),
            &json!({ "emails": emails }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json::<Value>().await.unwrap()["data"].clone()
}

/// The emails of a segment's members, page by page.
async fn members(app: &TestApp, id: &str) -> BTreeSet<String> {
    members_of(app, &app.site, id).await
}

/// [`members`] of `site`'s segment, asked of `app`.
async fn members_of(app: &TestApp, site: &TestSite, id: &str) -> BTreeSet<String> {
    let mut all = BTreeSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            None => format!("{SEGMENTS}/{id}/members?limit=1"),
            Some(c) => format!("{SEGMENTS}/{id}/members?limit=1&cursor={c}"),
        };
        let response = app.as_site(site, Method::GET, &path).send().await.unwrap();
        let body: Value = response.json().await.unwrap();
        for s in body["data"].as_array().unwrap() {
            all.insert(s["attributes"]["email"].as_str().unwrap().to_owned());
        }
        match body["meta"]["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return all,
        }
    }
}

/// The emails of a list, page by page.
async fn listed(app: &TestApp, id: &str, list: &str) -> Vec<String> {
    let mut all = Vec::new();
    let mut counts = BTreeSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            None => format!("{SEGMENTS}/{id}/{list}?limit=1"),
            Some(c) => format!("{SEGMENTS}/{id}/{list}?limit=1&cursor={c}"),
        };
        let response = app.get(&path).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        counts.insert(body["meta"]["count"].as_i64().unwrap());
        for entry in body["data"].as_array().unwrap() {
            assert_eq!(entry["uuid"].as_str().unwrap().len(), 32, "{entry}");
            assert!(entry["added_at"].as_str().unwrap().ends_with('Z'));
            all.push(entry["email"].as_str().unwrap().to_owned());
        }
        match body["meta"]["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => {
                // Every page counts the whole list.
                assert_eq!(counts, BTreeSet::from([all.len() as i64]), "{all:?}");
                return all;
            }
        }
    }
}

fn emails(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|e| (*e).to_owned()).collect()
}

async fn count(app: &TestApp, id: &str) -> i64 {
    let body: Value = app
        .get(&format!("/api/v1/stats/segment?segment_id={id}"))
        .await
        .json()
        .await
        .unwrap();
    body["user_count"].as_i64().unwrap()
}

async fn matched(app: &TestApp, id: &str, email: &str) -> (bool, Option<String>) {
    matched_of(app, &app.site, id, email).await
}

async fn matched_of(
    app: &TestApp,
    site: &TestSite,
    id: &str,
    email: &str,
) -> (bool, Option<String>) {
    let response = app
        .as_site(site, Method::POST, &format!("{SEGMENTS}/{id}/match"))
        .json(&json!({ "email": email }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let data = &body["data"];
    (
        data["matched"].as_bool().unwrap(),
        data["manual"].as_str().map(str::to_owned),
    )
}

fn id(segment: &Value) -> String {
    segment["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn includes_and_excludes_decide_over_the_query_on_every_read_route() {
    let app = TestApp::spawn().await;
    audience(&app).await;
    let vip = app
        .create_segment("VIP", json!({"tag": {"has": "vip"}}))
        .await;
    let vip = id(&vip);
    let refers = app
        .create_segment(
            "VIP and subscribed",
            json!({"all": [{"segment": {"member_of": vip}}, {"subscribed": true}]}),
        )
        .await;
    let refers = id(&refers);
    assert_eq!(
        members(&app, &vip).await,
        emails(&["ann@example.com", "bob@example.com"])
    );

    // cy in by hand; bob out by hand; dee both (the exclude wins); one
    // email nobody has, and one named twice.
    let done = edit(
        &app,
        Method::POST,
        &vip,
        "includes",
        &[
            "CY@example.com",
            "dee@example.com",
            "nobody@example.com",
            "cy@example.com",
        ],
    )
    .await;
    assert_eq!(
        done,
        json!({"segment_id": vip, "list": "includes",
               "changed": ["CY@example.com", "dee@example.com"], "unchanged": [],
               "unknown": ["nobody@example.com"]})
    );
    let done = edit(
        &app,
        Method::POST,
        &vip,
        "excludes",
        &["bob@example.com", "dee@example.com"],
    )
    .await;
    assert_eq!(
        done["changed"],
        json!(["bob@example.com", "dee@example.com"])
    );
    // Again: nothing changes.
    let again = edit(&app, Method::POST, &vip, "excludes", &["bob@example.com"]).await;
    assert_eq!(again["changed"], json!([]));
    assert_eq!(again["unchanged"], json!(["bob@example.com"]));

    let want = emails(&["ann@example.com", "cy@example.com"]);
    assert_eq!(members(&app, &vip).await, want, "members");
    assert_eq!(count(&app, &vip).await, 2, "stats");
    let csv = app
        .get(&format!("{SEGMENTS}/{vip}/members.csv"))
        .await
        .text()
        .await
        .unwrap();
    let in_csv: BTreeSet<String> = want.iter().filter(|e| csv.contains(*e)).cloned().collect();
    assert_eq!(in_csv, want, "{csv}");
    assert!(!csv.contains("bob@example.com") && !csv.contains("dee@example.com"));
    // References see them: bob is out of the referring segment too.
    assert_eq!(members(&app, &refers).await, want, "a referring segment");
    // A preview of a query that refers to the segment.
    let preview: Value = app
        .send_json(
            Method::POST,
            &format!("{SEGMENTS}/preview"),
            &json!({"visitor_event_query": {"segment": {"member_of": vip}}}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(preview["data"]["user_count"], 2, "{preview}");
    // Match says why.
    assert_eq!(
        matched(&app, &vip, "cy@example.com").await,
        (true, Some("included by hand".into()))
    );
    assert_eq!(
        matched(&app, &vip, "bob@example.com").await,
        (false, Some("excluded by hand".into()))
    );
    assert_eq!(
        matched(&app, &vip, "dee@example.com").await,
        (false, Some("excluded by hand".into()))
    );
    assert_eq!(matched(&app, &vip, "ann@example.com").await, (true, None));
    // A subscriber's segments.
    let body: Value = app
        .get("/api/v1/fetch/subscribers/segments?email=cy@example.com")
        .await
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["attributes"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["VIP", "VIP and subscribed"]);
    // Overlap.
    let overlap: Value = app
        .send_json(
            Method::POST,
            "/api/v1/stats/overlap",
            &json!({"segment_ids": [vip, refers]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(overlap["data"]["intersection"], 2, "{overlap}");
    assert_eq!(overlap["data"]["union"], 2, "{overlap}");

    // The lists, by subscriber.
    assert_eq!(
        listed(&app, &vip, "includes").await,
        ["cy@example.com", "dee@example.com"]
    );
    assert_eq!(
        listed(&app, &vip, "excludes").await,
        ["bob@example.com", "dee@example.com"]
    );

    // Taken out again: the query decides.
    let done = edit(
        &app,
        Method::DELETE,
        &vip,
        "excludes",
        &["bob@example.com", "ann@example.com"],
    )
    .await;
    assert_eq!(done["changed"], json!(["bob@example.com"]));
    assert_eq!(done["unchanged"], json!(["ann@example.com"]));
    edit(&app, Method::DELETE, &vip, "includes", &["cy@example.com"]).await;
    assert_eq!(
        members(&app, &vip).await,
        emails(&["ann@example.com", "bob@example.com"])
    );
    assert_eq!(matched(&app, &vip, "cy@example.com").await, (false, None));
    // Nobody was created for the unknown email.
    let response = app
        .get("/api/v1/fetch/subscribers?email=nobody@example.com")
        .await;
    let body: Value = response.json().await.unwrap();
    assert!(body["data"].is_null(), "{body}");

    // A server that reads the site afresh (from the database) agrees.
    // Bob back in by the query; dee still out by hand.
    let fresh = TestApp::spawn_on(app.database_url.clone()).await;
    assert_eq!(
        members_of(&fresh, &app.site, &vip).await,
        emails(&["ann@example.com", "bob@example.com"])
    );
    assert_eq!(
        matched_of(&fresh, &app.site, &vip, "dee@example.com").await,
        (false, Some("excluded by hand".into()))
    );
}

#[tokio::test]
async fn the_journal_and_the_audit_log_record_edits_by_hand() {
    let app = TestApp::spawn().await;
    audience(&app).await;
    let site_id = app.site_id(&app.site).await;
    app.state.live.resident(site_id).await.unwrap();
    let vip = app
        .create_segment("VIP", json!({"tag": {"has": "vip"}}))
        .await;
    let vip = id(&vip);
    edit(&app, Method::POST, &vip, "includes", &["cy@example.com"]).await;
    edit(&app, Method::POST, &vip, "excludes", &["ann@example.com"]).await;
    edit(&app, Method::DELETE, &vip, "excludes", &["ann@example.com"]).await;
    // An include of a member moves nobody.
    edit(&app, Method::POST, &vip, "includes", &["bob@example.com"]).await;

    let body: Value = app
        .get(&format!("{SEGMENTS}/{vip}/changes?limit=100"))
        .await
        .json()
        .await
        .unwrap();
    let moves: Vec<(String, String, String)> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["type"].as_str().unwrap().to_owned(),
                c["reason"].as_str().unwrap().to_owned(),
                c["subscriber"]["email"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let manual = |kind: &str, email: &str| {
        (
            format!("segment.member_{kind}"),
            "manual".to_owned(),
            email.to_owned(),
        )
    };
    assert_eq!(
        moves,
        [
            manual("added", "cy@example.com"),
            manual("removed", "ann@example.com"),
            manual("added", "ann@example.com"),
        ]
    );

    let body: Value = app
        .get("/api/v1/fetch/audit?limit=10")
        .await
        .json()
        .await
        .unwrap();
    let edits: Vec<&Value> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "segment.manual_changed")
        .collect();
    assert_eq!(edits.len(), 4, "{body}");
    // Newest first.
    assert_eq!(edits[0]["subject"], json!({"type": "segment", "id": vip}));
    assert_eq!(
        edits[0]["details"],
        json!({"list": "includes", "operation": "add", "emails": ["bob@example.com"]})
    );
    assert_eq!(
        edits[1]["details"],
        json!({"list": "excludes", "operation": "remove", "emails": ["ann@example.com"]})
    );
    assert_eq!(edits[0]["actor"], app.site.publishable_key.as_str());
}

#[tokio::test]
async fn bad_edits_and_other_sites_segments_change_nothing() {
    let app = TestApp::spawn().await;
    audience(&app).await;
    let vip = app
        .create_segment("VIP", json!({"tag": {"has": "vip"}}))
        .await;
    let vip = id(&vip);
    let path = format!("{SEGMENTS}/{vip}/includes");

    for (body, errors) in [
        (json!({}), vec![("emails", "can't be blank")]),
        (
            json!({"emails": []}),
            vec![("emails", "can't be blank (name 1 to 1,000 emails)")],
        ),
        (
            json!({"emails": "cy@example.com"}),
            vec![("emails", "must be a list of emails")],
        ),
        (
            json!({"emails": ["cy@example.com", 7, "not an email"]}),
            vec![
                ("emails/1", "must be an email (a string)"),
                ("emails/2", "is invalid"),
            ],
        ),
    ] {
        let response = app.send_json(Method::POST, &path, &body).await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}"
        );
        let answer: Value = response.json().await.unwrap();
        for (field, message) in errors {
            let found =
                answer["errors"].as_array().unwrap().iter().any(|e| {
                    e["field"] == field && e["message"].as_str().unwrap().contains(message)
                });
            assert!(found, "{field}: {message} in {answer}");
        }
    }
    let many: Vec<String> = (0..1_001).map(|i| format!("s{i}@example.com")).collect();
    let response = app
        .send_json(Method::POST, &path, &json!({ "emails": many }))
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(listed(&app, &vip, "includes").await.is_empty());

    // Another site's segment is no segment of this one; a discarded one
    // neither.
    let other = app.new_site().await;
    let theirs = app
        .create_segment_for(&other, "Theirs", json!({"tag": {"has": "vip"}}))
        .await;
    for method in [Method::POST, Method::DELETE] {
        let response = app
            .request(method, &format!("{SEGMENTS}/{}/includes", id(&theirs)))
            .json(&json!({"emails": ["ann@example.com"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
    let response = app
        .get(&format!("{SEGMENTS}/{}/excludes", id(&theirs)))
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    // Their segment, edited by them with our subscriber's email: unknown.
    let response = app
        .as_site(
            &other,
            Method::POST,
            &format!("{SEGMENTS}/{}/includes", id(&theirs)),
        )
        .json(&json!({"emails": ["ann@example.com"]}))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["unknown"], json!(["ann@example.com"]));

    let response = app
        .request(Method::DELETE, &format!("{SEGMENTS}/{vip}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = app
        .send_json(Method::POST, &path, &json!({"emails": ["cy@example.com"]}))
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = app.get(&path).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = app.get(&format!("{SEGMENTS}/999999/includes")).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}
