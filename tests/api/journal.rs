//! The membership journal through the real server: every join and leave of
//! every kept segment, recorded with its instant and reason when the write
//! that caused it commits; the changes feed, members at an instant and the
//! size series read from it.

use crate::helpers::*;
use corral::clock::Clock;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const COMMANDS: &str = "/api/v1/fetch/commands";

async fn command(app: &TestApp, command: Value) {
    let response = app
        .send_json(Method::POST, COMMANDS, &json!({ "command": command }))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["failed"], 0, "{body}");
}

async fn tag(app: &TestApp, email: &str, tag: &str) {
    command(
        app,
        json!({"command": "add_tag", "email": email, "query": tag}),
    )
    .await;
}

async fn untag(app: &TestApp, email: &str, tag: &str) {
    command(
        app,
        json!({"command": "remove_tag", "email": email, "query": tag}),
    )
    .await;
}

/// Brings the test site's audience into memory, as any read does: a
/// segment write then takes its baseline (or records its change) at once.
async fn resident(app: &TestApp) {
    let site_id = app.site_id(&app.site).await;
    app.state.live.resident(site_id).await.unwrap();
}

/// Every transition of a segment, page by page, from the beginning.
async fn feed(app: &TestApp, id: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            None => format!("/api/v1/fetch/segments/{id}/changes?limit=2"),
            Some(c) => format!("/api/v1/fetch/segments/{id}/changes?limit=2&after={c}"),
        };
        let response = app.get(&path).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        let page = body["data"].as_array().unwrap().clone();
        if page.is_empty() {
            return all;
        }
        all.extend(page);
        after = body["meta"]["next_cursor"].as_str().map(str::to_owned);
    }
}

/// `(type, reason, email)` of each transition.
fn moves(feed: &[Value]) -> Vec<(String, String, String)> {
    feed.iter()
        .map(|c| {
            (
                c["type"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("segment.member_")
                    .to_owned(),
                c["reason"].as_str().unwrap().to_owned(),
                c["subscriber"]["email"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn mv(kind: &str, reason: &str, email: &str) -> (String, String, String) {
    (kind.to_owned(), reason.to_owned(), email.to_owned())
}

async fn members_at(app: &TestApp, id: &str, at: &str) -> Vec<String> {
    let response = app
        .get(&format!(
            "/api/v1/fetch/segments/{id}/members?at={}",
            urlencode(at)
        ))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["attributes"]["email"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_tag_added_and_removed_10_ms_apart_gives_both_transitions_in_order() {
    let app = TestApp::spawn().await;
    resident(&app).await;
    tag(&app, "early@x.io", "vip").await;
    let segment = app
        .create_segment("VIP", json!({"tag": {"has": "vip"}}))
        .await;
    let id = segment["id"].as_str().unwrap().to_owned();
    // The member before the segment was created is its baseline: no
    // transition announces it.
    assert!(feed(&app, &id).await.is_empty());
    tag(&app, "ann@x.io", "vip").await;
    app.clock.advance_ms(10);
    untag(&app, "ann@x.io", "vip").await;
    tag(&app, "bob@x.io", "other").await;
    let changes = feed(&app, &id).await;
    assert_eq!(
        moves(&changes),
        [
            mv("added", "data", "ann@x.io"),
            mv("removed", "data", "ann@x.io")
        ]
    );
    // The webhook notification's object, with a stable event id.
    let first = &changes[0];
    assert_eq!(first["segment"], json!({"id": id, "name": "VIP"}));
    assert!(first["event_id"].as_str().unwrap().starts_with("evt_"));
    assert_ne!(first["event_id"], changes[1]["event_id"]);
    let (joined, left) = (
        first["occurred_at"].as_str().unwrap().to_owned(),
        changes[1]["occurred_at"].as_str().unwrap().to_owned(),
    );
    assert!(joined < left, "{joined} then {left}");
    // Members at each instant: ann only between the two writes.
    assert_eq!(
        members_at(&app, &id, &joined).await,
        ["early@x.io", "ann@x.io"]
    );
    assert_eq!(members_at(&app, &id, &left).await, ["early@x.io"]);
    // The feed resumes from its cursor without repeats, and `since` starts
    // at an instant.
    let since = app
        .get(&format!(
            "/api/v1/fetch/segments/{id}/changes?since={}",
            urlencode(&left)
        ))
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(
        moves(since["data"].as_array().unwrap()),
        [mv("removed", "data", "ann@x.io")]
    );
}

#[tokio::test]
async fn definition_changes_discards_and_restores_are_recorded_with_their_reason() {
    let app = TestApp::spawn().await;
    resident(&app).await;
    tag(&app, "a@x.io", "vip").await;
    tag(&app, "b@x.io", "pro").await;
    let segment = app
        .create_segment("Paying", json!({"tag": {"has": "vip"}}))
        .await;
    let id = segment["id"].as_str().unwrap().to_owned();
    // A segment that refers to it moves with it.
    let referrer = app
        .create_segment("Paying, referred", json!({"segment": {"member_of": id}}))
        .await;
    let referrer_id = referrer["id"].as_str().unwrap().to_owned();
    let response = app
        .send_json(
            Method::PATCH,
            &format!("/api/v1/fetch/segments/{id}"),
            &json!({"segment": {"visitor_event_query": {"tag": {"has": "pro"}}}}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    // One transition per subscriber whose membership flipped, in
    // subscriber order.
    let expected = [
        mv("removed", "definition_changed", "a@x.io"),
        mv("added", "definition_changed", "b@x.io"),
    ];
    assert_eq!(moves(&feed(&app, &id).await), expected);
    assert_eq!(moves(&feed(&app, &referrer_id).await), expected);
    // Discard the referrer, then restore it.
    let discard = app
        .request(
            Method::DELETE,
            &format!("/api/v1/fetch/segments/{referrer_id}"),
        )
        .send()
        .await
        .unwrap();
    assert!(discard.status().is_success());
    let restore = app
        .request(
            Method::POST,
            &format!("/api/v1/fetch/segments/{referrer_id}/restore"),
        )
        .send()
        .await
        .unwrap();
    assert!(restore.status().is_success());
    assert_eq!(
        moves(&feed(&app, &referrer_id).await)[2..],
        [
            mv("removed", "segment_discarded", "b@x.io"),
            mv("added", "segment_restored", "b@x.io"),
        ]
    );
}

#[tokio::test]
async fn the_size_series_counts_joins_and_leaves_per_interval() {
    let app = TestApp::spawn().await;
    resident(&app).await;
    tag(&app, "base@x.io", "vip").await;
    let segment = app
        .create_segment("VIP", json!({"tag": {"has": "vip"}}))
        .await;
    let id = segment["id"].as_str().unwrap().to_owned();
    for email in ["a@x.io", "b@x.io", "c@x.io"] {
        app.clock.advance_ms(60_000);
        tag(&app, email, "vip").await;
    }
    app.clock.advance_ms(60_000);
    untag(&app, "a@x.io", "vip").await;
    app.clock.advance_ms(30_000);
    let body: Value = app
        .get(&format!(
            "/api/v1/stats/segment/history?segment_id={id}&interval=day"
        ))
        .await
        .json()
        .await
        .unwrap();
    let points = body["data"].as_array().unwrap();
    // The history begins today: one point.
    assert_eq!(points.len(), 1, "{body}");
    assert_eq!(points[0]["members"], 3);
    assert_eq!(
        (points[0]["added"].clone(), points[0]["removed"].clone()),
        (json!(3), json!(1))
    );
    assert!(body["meta"]["history_begins_at"].is_string());
    // By minute over the last hour: the points before the history began are
    // left out; the members at each point's end add up.
    let body: Value = app
        .get(&format!(
            "/api/v1/stats/segment/history?segment_id={id}&interval=minute&from={}",
            urlencode(&corral::clock::format_ms(START_MS - 3_600_000))
        ))
        .await
        .json()
        .await
        .unwrap();
    let points: Vec<(i64, i64, i64)> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let n = |k: &str| p[k].as_i64().unwrap();
            (n("members"), n("added"), n("removed"))
        })
        .collect();
    // The history began at the start minute; one join a minute, then a
    // leave in the minute now is in.
    assert_eq!(
        points,
        [(1, 0, 0), (2, 1, 0), (3, 1, 0), (4, 1, 0), (3, 0, 1)],
        "{body}"
    );
    assert_eq!(
        body["data"][0]["at"],
        corral::clock::format_ms(START_MS),
        "{body}"
    );
}

/// A 422 whose one error names `field` with a message starting so.
async fn assert_refused(response: reqwest::Response, errors: &[(&str, &str)]) {
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let got = body["errors"].as_array().unwrap();
    assert_eq!(got.len(), errors.len(), "{body}");
    for (error, (field, start)) in got.iter().zip(errors) {
        assert_eq!(error["field"], *field, "{body}");
        assert!(
            error["message"].as_str().unwrap().starts_with(start),
            "{body}"
        );
    }
}

#[tokio::test]
async fn bad_parameters_and_other_sites_segments_are_refused() {
    let app = TestApp::spawn().await;
    let segment = app
        .create_segment("VIP", json!({"tag": {"has": "vip"}}))
        .await;
    let id = segment["id"].as_str().unwrap().to_owned();
    let other = app.new_site().await;
    for path in [
        format!("/api/v1/fetch/segments/{id}/changes"),
        format!("/api/v1/stats/segment/history?segment_id={id}"),
        format!("/api/v1/fetch/segments/{id}/members?at=2026-01-01T00:00:00Z"),
    ] {
        let response = app
            .as_site(&other, Method::GET, &path)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }
    assert_refused(
        app.get(&format!(
            "/api/v1/fetch/segments/{id}/members?at=2001-01-01T00:00:00Z"
        ))
        .await,
        &[("at", "is before the segment's history begins (")],
    )
    .await;
    assert_refused(
        app.get(&format!(
            "/api/v1/stats/segment/history?segment_id={id}&interval=minute&from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z"
        ))
        .await,
        &[("interval", "would give 44640 points")],
    )
    .await;
    assert_refused(
        app.get(&format!(
            "/api/v1/stats/segment/history?segment_id={id}&interval=fortnight"
        ))
        .await,
        &[("interval", "must be minute, hour, day, week or month")],
    )
    .await;
    assert_refused(
        app.get(&format!(
            "/api/v1/fetch/segments/{id}/changes?since=2026-01-01T00:00:00Z&after=nope"
        ))
        .await,
        &[("after", "is not a cursor this API gave out")],
    )
    .await;
}

#[tokio::test]
async fn a_subscribers_joins_and_leaves_are_listed_newest_first_with_their_segment() {
    let app = TestApp::spawn().await;
    resident(&app).await;
    let vip = app
        .create_segment("VIP", json!({"tag": {"has": "vip"}}))
        .await;
    let pro = app
        .create_segment("Pro", json!({"tag": {"has": "pro"}}))
        .await;
    tag(&app, "ann@x.io", "vip").await;
    app.clock.advance_ms(1_000);
    tag(&app, "ann@x.io", "pro").await;
    app.clock.advance_ms(1_000);
    untag(&app, "ann@x.io", "vip").await;
    tag(&app, "bob@x.io", "vip").await;
    let response = app
        .get("/api/v1/fetch/subscribers/history?email=ANN@x.io")
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let got: Vec<(String, String)> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["type"].as_str().unwrap().to_owned(),
                c["segment"]["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let (vip, pro) = (vip["id"].as_str().unwrap(), pro["id"].as_str().unwrap());
    assert_eq!(
        got,
        [
            ("segment.member_removed".to_owned(), vip.to_owned()),
            ("segment.member_added".to_owned(), pro.to_owned()),
            ("segment.member_added".to_owned(), vip.to_owned()),
        ]
    );
    let other = app.new_site().await;
    let response = app
        .as_site(
            &other,
            Method::GET,
            "/api/v1/fetch/subscribers/history?email=ann@x.io",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_segment_created_while_the_audience_is_not_in_memory_begins_at_the_next_sweep() {
    let app = TestApp::spawn().await;
    tag(&app, "ann@x.io", "vip").await;
    let segment = app
        .create_segment("VIP", json!({"tag": {"has": "vip"}}))
        .await;
    let id = segment["id"].as_str().unwrap().to_owned();
    // The write did not read the whole audience holding the site's write
    // turn: the segment has no history yet, and a write meanwhile is
    // left to the baseline.
    tag(&app, "bob@x.io", "vip").await;
    let body: Value = app
        .get(&format!("/api/v1/stats/segment/history?segment_id={id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        body,
        json!({"data": [], "meta": {"history_begins_at": null}})
    );
    assert_refused(
        app.get(&format!(
            "/api/v1/fetch/segments/{id}/members?at=2026-11-26T09:00:00Z"
        ))
        .await,
        &[(
            "at",
            "is before the segment's history begins (it has not begun yet",
        )],
    )
    .await;
    app.clock.advance_ms(5_000);
    assert_eq!(app.sweep().await, 1);
    let now = corral::clock::format_ms(START_MS + 5_000);
    assert_eq!(members_at(&app, &id, &now).await, ["ann@x.io", "bob@x.io"]);
    assert!(feed(&app, &id).await.is_empty());
    // From then on, writes are recorded.
    untag(&app, "bob@x.io", "vip").await;
    assert_eq!(
        moves(&feed(&app, &id).await),
        [mv("removed", "data", "bob@x.io")]
    );
    // A sweep with nothing to do (the time windows were just swept) reads
    // nothing.
    assert_eq!(app.sweep().await, 0);
}

#[tokio::test]
async fn a_relative_window_moving_past_a_member_is_recorded_by_the_sweep() {
    let app = TestApp::spawn().await;
    resident(&app).await;
    let segment = app
        .create_segment(
            "Active",
            json!({"event": {"type": "$login", "when": {"within_last": {"hours": 1}}}}),
        )
        .await;
    let id = segment["id"].as_str().unwrap().to_owned();
    let response = app
        .send_json(
            Method::POST,
            "/api/v1/batch/events",
            &json!({"events": [{"type": "$login", "email": "ann@x.io"}]}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        moves(&feed(&app, &id).await),
        [mv("added", "data", "ann@x.io")]
    );
    app.clock.advance_ms(30 * 60_000);
    app.sweep().await;
    assert_eq!(feed(&app, &id).await.len(), 1);
    app.clock.advance_ms(31 * 60_000);
    assert_eq!(app.sweep().await, 1);
    assert_eq!(
        moves(&feed(&app, &id).await),
        [
            mv("added", "data", "ann@x.io"),
            mv("removed", "time_window", "ann@x.io")
        ]
    );
}

#[tokio::test]
async fn a_webhook_is_told_of_a_join_and_leave_10_ms_apart_as_the_feed_lists_them() {
    let app = TestApp::spawn_with(corral::http::HttpSettings {
        rate_limit_per_minute: 0,
        allow_private_webhook_targets: true,
        ..corral::http::HttpSettings::default()
    })
    .await;
    let segment = app
        .create_segment("VIP", json!({"tag": {"has": "vip"}}))
        .await;
    let id = segment["id"].as_str().unwrap().to_owned();
    // Creating the webhook reads the audience: the segment's journal begins
    // then, so that nothing after it goes untold.
    let response = app
        .send_json(
            Method::POST,
            "/api/v1/fetch/webhooks",
            &json!({"webhook": {"url": "http://127.0.0.1:9/hook", "segment_ids": [id]}}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let webhook: Value = response.json().await.unwrap();
    let webhook = webhook["data"]["id"].as_str().unwrap().to_owned();
    tag(&app, "ann@x.io", "vip").await;
    app.clock.advance_ms(10);
    untag(&app, "ann@x.io", "vip").await;
    let tracker = corral::webhooks::tracker::Tracker::new(app.store.clone());
    assert_eq!(tracker.tick(app.clock.as_ref()).await.unwrap(), 1);
    assert_eq!(tracker.tick(app.clock.as_ref()).await.unwrap(), 0);
    let listed: Value = app
        .get(&format!("/api/v1/fetch/webhooks/{webhook}/deliveries"))
        .await
        .json()
        .await
        .unwrap();
    // Newest first: the leave, then the join.
    let mut told: Vec<Value> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["attributes"]["notification"].clone())
        .collect();
    told.reverse();
    let changes = feed(&app, &id).await;
    assert_eq!(told, changes, "each notification is the feed's object");
    assert_eq!(
        moves(&told),
        [
            mv("added", "data", "ann@x.io"),
            mv("removed", "data", "ann@x.io")
        ]
    );
}

#[tokio::test]
async fn two_servers_on_one_database_record_each_transition_once() {
    let first = TestApp::spawn().await;
    resident(&first).await;
    let segment = first
        .create_segment("VIP", json!({"tag": {"has": "vip"}}))
        .await;
    let id = segment["id"].as_str().unwrap().to_owned();
    let second = TestApp::spawn_on(first.database_url.clone()).await;
    let emails = ["a@x.io", "b@x.io", "c@x.io"];
    // Tags given and taken at once, through both servers.
    let (first_ref, site) = (&first, &first.site);
    let writes = (0..36).map(|i| {
        let app = if i % 2 == 0 { first_ref } else { &second };
        let command = if (i / 3) % 2 == 0 {
            "add_tag"
        } else {
            "remove_tag"
        };
        let body = json!({"command": {"command": command, "email": emails[i % 3], "query": "vip"}});
        async move {
            let response = app
                .as_site(site, Method::POST, COMMANDS)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
        }
    });
    futures_util::future::join_all(writes).await;
    let changes = feed(&first, &id).await;
    assert!(!changes.is_empty());
    let mut ids = std::collections::BTreeSet::new();
    let mut last: std::collections::HashMap<String, String> = Default::default();
    for change in &changes {
        assert!(
            ids.insert(change["event_id"].as_str().unwrap().to_owned()),
            "twice: {change}"
        );
        let email = change["subscriber"]["email"].as_str().unwrap().to_owned();
        let kind = change["type"].as_str().unwrap().to_owned();
        let before = last.insert(email.clone(), kind.clone());
        let expected_before = match kind.as_str() {
            "segment.member_added" => "segment.member_removed",
            _ => "segment.member_added",
        };
        assert!(
            before.as_deref().is_none_or(|b| b == expected_before),
            "{email}: {kind} after {before:?}"
        );
        if before.is_none() {
            assert_eq!(kind, "segment.member_added", "{email} left before joining");
        }
    }
    // The journal's members now are the segment's members now.
    let now = corral::clock::format_ms(first.clock.now_ms() + 1);
    let mut journal = members_at(&first, &id, &now).await;
    journal.sort();
    let live: Value = first
        .get(&format!("/api/v1/fetch/segments/{id}/members"))
        .await
        .json()
        .await
        .unwrap();
    let mut live: Vec<String> = live["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["attributes"]["email"].as_str().unwrap().to_owned())
        .collect();
    live.sort();
    assert_eq!(journal, live);
}

/// The emails of a members CSV (its second column), after the header.
async fn csv_emails(app: &TestApp, path: &str) -> (StatusCode, Vec<String>) {
    let response = app.get(path).await;
    let status = response.status();
    let text = response.text().await.unwrap();
    if status != StatusCode::OK {
        return (status, vec![text]);
    }
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("uuid,email,created_at,unsubscribed_at"),
        "{header}"
    );
    let emails = lines
        .map(|line| line.split(',').nth(1).unwrap().to_owned())
        .collect();
    (status, emails)
}

#[tokio::test]
async fn the_members_csv_at_an_instant_holds_the_members_then() {
    let app = TestApp::spawn().await;
    resident(&app).await;
    tag(&app, "early@x.io", "vip").await;
    let segment = app
        .create_segment("VIP", json!({"tag": {"has": "vip"}}))
        .await;
    let id = segment["id"].as_str().unwrap().to_owned();
    let created = crate::helpers::START_MS;
    app.clock.advance_ms(1_000);
    tag(&app, "ann@x.io", "vip").await;
    let with_ann = app.clock.now_ms();
    app.clock.advance_ms(1_000);
    untag(&app, "early@x.io", "vip").await;
    let csv = |at: i64| {
        format!(
            "/api/v1/fetch/segments/{id}/members.csv?at={}",
            urlencode(&corral::clock::format_ms(at))
        )
    };
    assert_eq!(
        csv_emails(&app, &csv(with_ann)).await,
        (StatusCode::OK, vec!["early@x.io".into(), "ann@x.io".into()])
    );
    assert_eq!(
        csv_emails(&app, &csv(app.clock.now_ms())).await,
        (StatusCode::OK, vec!["ann@x.io".into()])
    );
    // Now, without `at`: the same as the latest instant.
    assert_eq!(
        csv_emails(&app, &format!("/api/v1/fetch/segments/{id}/members.csv")).await,
        (StatusCode::OK, vec!["ann@x.io".into()])
    );
    // Before the history begins: a 422 naming when it begins.
    let (status, body) = csv_emails(&app, &csv(created - 86_400_000)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body[0].contains("history begins"), "{body:?}");
}
