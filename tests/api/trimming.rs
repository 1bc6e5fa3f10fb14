//! The change log trimmed while something is behind it (on the suite's
//! backend, so on SQLite and, in the second run, PostgreSQL): a snapshot
//! left behind the trimmed entries is read again whole, and webhooks, which
//! follow the membership journal rather than the log, lose nothing: every
//! join and leave is told with the reason it was recorded with.

use crate::helpers::*;
use corral::clock::Clock;
use corral::webhooks::tracker::Tracker;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

const DAY: i64 = 86_400_000;

async fn commands(app: &TestApp, commands: Value) {
    let done = app
        .send_json(
            Method::POST,
            "/api/v1/fetch/commands",
            &json!({ "command": commands }),
        )
        .await;
    assert_eq!(done.status(), StatusCode::OK);
}

/// (type, segment, email, reason) of every notification of the webhook,
/// sorted.
async fn notified(app: &TestApp, webhook: &str) -> Vec<(String, String, String, String)> {
    let listed: Value = app
        .get(&format!("/api/v1/fetch/webhooks/{webhook}/deliveries"))
        .await
        .json()
        .await
        .unwrap();
    let mut all: Vec<_> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let n = &d["attributes"]["notification"];
            let text = |v: &Value| v.as_str().unwrap().to_owned();
            (
                text(&n["type"]),
                text(&n["segment"]["name"]),
                text(&n["subscriber"]["email"]),
                text(&n["reason"]),
            )
        })
        .collect();
    all.sort();
    all
}

#[tokio::test]
async fn webhooks_behind_a_trimmed_log_are_told_every_move_with_its_reason() {
    let app = TestApp::spawn().await;
    let site = app.site_id(&app.site).await;
    let vips = app
        .create_segment("vips", json!({"tag": {"has": "vip"}}))
        .await;
    let recent = app
        .create_segment(
            "recent",
            json!({"event": {"type": "login", "when": {"within_last": {"days": 1}}}}),
        )
        .await;
    commands(
        &app,
        json!([
            {"command": "add_tag", "email": "c@x.com", "query": "vip"},
            {"command": "add_tag", "email": "d@x.com", "query": "vip"},
        ]),
    )
    .await;
    let logged_in = app
        .send_json(
            Method::POST,
            "/api/v1/batch/events",
            &json!({"events": [{"type": "login", "email": "d@x.com"}]}),
        )
        .await;
    assert_eq!(logged_in.status(), StatusCode::OK);
    let made = app
        .send_json(
            Method::POST,
            "/api/v1/fetch/webhooks",
            &json!({"webhook": {"url": "https://1.1.1.1/hook",
                "segment_ids": [vips["id"], recent["id"]]}}),
        )
        .await;
    assert_eq!(made.status(), StatusCode::CREATED);
    let webhook = made.json::<Value>().await.unwrap()["data"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Nothing moved since the webhook began: nothing to tell.
    let tracker = Tracker::new(app.store.clone());
    tracker.tick(app.clock.as_ref()).await.unwrap();
    assert_eq!(notified(&app, &webhook).await, []);

    // Then, while nothing follows the log: a and b join the vips, c
    // leaves, each in a write of its own...
    app.clock.advance_ms(60_000);
    for command in [
        json!({"command": "add_tag", "email": "a@x.com", "query": "vip"}),
        json!({"command": "add_tag", "email": "b@x.com", "query": "vip"}),
        json!({"command": "remove_tag", "email": "c@x.com", "query": "vip"}),
    ] {
        commands(&app, json!([command])).await;
    }
    // ...and two days on (d's login has left the window) upkeep trims
    // every entry but the newest, those writes' among them.
    app.clock.advance_ms(2 * DAY);
    let head = app.store.site_head(site).await.unwrap().seq;
    app.state
        .live
        .maintain(app.clock.now_ms(), Duration::ZERO)
        .await;
    assert!(app.store.log_entry(site, head - 1).await.unwrap().is_none());
    assert!(app.store.log_entry(site, head).await.unwrap().is_some());

    // The journal recorded each write's moves when it committed; the sweep
    // records the window's.
    assert_eq!(app.sweep().await, 1);
    let written = tracker.tick(app.clock.as_ref()).await.unwrap();
    assert_eq!(written, 2, "one run of transitions for each watch");
    let four = |kind: &str, segment: &str, email: &str, reason: &str| {
        (
            format!("segment.member_{kind}"),
            segment.to_owned(),
            email.to_owned(),
            reason.to_owned(),
        )
    };
    let mut expected = vec![
        four("added", "vips", "a@x.com", "data"),
        four("added", "vips", "b@x.com", "data"),
        four("removed", "vips", "c@x.com", "data"),
        four("removed", "recent", "d@x.com", "time_window"),
    ];
    expected.sort();
    assert_eq!(notified(&app, &webhook).await, expected);

    // Caught up: nothing more to say.
    assert_eq!(tracker.tick(app.clock.as_ref()).await.unwrap(), 0);
    assert_eq!(notified(&app, &webhook).await.len(), 4);
}

/// The membership history trimmed while a webhook's watch has not read it
/// (a server down longer than the retention): the transitions it has not
/// turned into notifications stay until it has, so every move is told; the
/// segment's history begins where the watch had read to, and the next trim,
/// the watch caught up, cuts at the retention as usual.
#[tokio::test]
async fn a_history_trim_keeps_what_a_webhook_has_not_been_told() {
    let app = TestApp::spawn().await;
    let vips = app
        .create_segment("vips", json!({"tag": {"has": "vip"}}))
        .await;
    let made = app
        .send_json(
            Method::POST,
            "/api/v1/fetch/webhooks",
            &json!({"webhook": {"url": "https://1.1.1.1/hook", "segment_ids": [vips["id"]]}}),
        )
        .await;
    assert_eq!(made.status(), StatusCode::CREATED);
    let webhook = made.json::<Value>().await.unwrap()["data"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let began = app.clock.now_ms();

    // Nobody follows the journal for ten days: a joins on the first, b on
    // the fifth, a leaves on the ninth.
    for (day, command) in [
        (
            1,
            json!({"command": "add_tag", "email": "a@x.com", "query": "vip"}),
        ),
        (
            5,
            json!({"command": "add_tag", "email": "b@x.com", "query": "vip"}),
        ),
        (
            9,
            json!({"command": "remove_tag", "email": "a@x.com", "query": "vip"}),
        ),
    ] {
        app.clock.set_ms(began + day * DAY);
        commands(&app, json!([command])).await;
    }
    app.clock.set_ms(began + 10 * DAY);

    // A retention of three days would cut on the seventh: the watch has
    // read nothing since the webhook began, so nothing goes.
    let cutoff = app.clock.now_ms() - 3 * DAY;
    assert_eq!(app.store.trim_journal(cutoff).await.unwrap(), 0);
    let tracker = Tracker::new(app.store.clone());
    assert_eq!(tracker.tick(app.clock.as_ref()).await.unwrap(), 1);
    let told = |kind: &str, email: &str| {
        (
            format!("segment.member_{kind}"),
            "vips".to_owned(),
            email.to_owned(),
            "data".to_owned(),
        )
    };
    let mut expected = vec![
        told("added", "a@x.com"),
        told("added", "b@x.com"),
        told("removed", "a@x.com"),
    ];
    expected.sort();
    assert_eq!(notified(&app, &webhook).await, expected);

    // Told: the same trim now cuts at the retention, and the history
    // begins there.
    assert_eq!(app.store.trim_journal(cutoff).await.unwrap(), 2);
    let history: Value = app
        .get(&format!(
            "/api/v1/stats/segment/history?segment_id={}",
            vips["id"].as_str().unwrap()
        ))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        history["meta"]["history_begins_at"],
        json!(corral::clock::format_ms(cutoff)),
        "{history}"
    );
}
