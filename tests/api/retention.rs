//! `corral serve --history-retention-days N`: the membership journal
//! trimmed to its last N days. Every segment's history then begins N days
//! ago (`meta.history_begins_at`), an instant before that is refused naming
//! it, a series starts there, and what is answered about later instants is
//! what was answered before the trim. A trim deletes a batch a transaction,
//! however many transitions go.

use crate::cli::{Cli, start_demo};
use crate::helpers::*;
use corral::cli::retention::HistoryRetention;
use corral::clock::{Clock, format_ms};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const MINUTE: i64 = 60_000;
const DAY: i64 = 86_400_000;

async fn batch(app: &TestApp, subscribers: Vec<Value>) {
    let response = app
        .send_json(
            Method::POST,
            "/api/v1/batch/subscribers",
            &json!({ "subscribers": subscribers }),
        )
        .await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["failed"], 0, "{body}");
}

async fn tag(app: &TestApp, email: &str, add: bool) {
    let key = if add { "tags" } else { "remove_tags" };
    batch(app, vec![json!({"email": email, key: "vip"})]).await;
}

/// A segment "VIP" created at START_MS with early@ in it, taken in memory
/// first so that its history begins then.
async fn vip(app: &TestApp) -> String {
    let site_id = app.site_id(&app.site).await;
    app.state.live.resident(site_id).await.unwrap();
    tag(app, "early@x.io", true).await;
    let segment = app
        .create_segment("VIP", json!({"tag": {"has": "vip"}}))
        .await;
    segment["id"].as_str().unwrap().to_owned()
}

async fn text(app: &TestApp, path: &str) -> (StatusCode, String) {
    let response = app.get(path).await;
    (response.status(), response.text().await.unwrap())
}

fn members_path(id: &str, at: i64) -> String {
    format!(
        "/api/v1/fetch/segments/{id}/members?at={}",
        urlencode(&format_ms(at))
    )
}

#[tokio::test]
async fn a_trimmed_history_begins_n_days_ago_and_answers_later_instants_as_before() {
    let app = TestApp::spawn().await;
    let id = vip(&app).await;
    // ann and bob join on the first day; ten days later ann leaves and cy
    // joins; ten days after that dee joins.
    for (after, email, add) in [
        (MINUTE, "ann@x.io", true),
        (MINUTE, "bob@x.io", true),
        (10 * DAY, "ann@x.io", false),
        (0, "cy@x.io", true),
        (10 * DAY, "dee@x.io", true),
    ] {
        app.clock.advance_ms(after);
        tag(&app, email, add).await;
    }
    let now = app.clock.now_ms();
    let retention = HistoryRetention::days(15).unwrap();
    let cutoff = retention.cutoff(now);
    assert_eq!(cutoff, START_MS + 2 * MINUTE + 5 * DAY);

    // What later instants are answered with before the trim.
    let later = [cutoff, cutoff + 6 * DAY, now];
    let mut before = Vec::new();
    for at in later {
        before.push(text(&app, &members_path(&id, at)).await);
    }
    let since = format!(
        "/api/v1/fetch/segments/{id}/changes?since={}",
        urlencode(&format_ms(cutoff))
    );
    let (_, changes_since) = text(&app, &since).await;
    let series = format!("/api/v1/stats/segment/history?segment_id={id}");
    let old: Value = app.get(&series).await.json().await.unwrap();
    assert_eq!(old["meta"]["history_begins_at"], format_ms(START_MS));
    let (status, _) = text(&app, &members_path(&id, START_MS + 90_000)).await;
    assert_eq!(status, StatusCode::OK);

    let deleted = retention
        .trim(app.store.as_ref(), app.clock.as_ref())
        .await
        .unwrap();
    assert_eq!(deleted, 2, "ann's and bob's joins on the first day");

    // The history begins at the cutoff.
    let new: Value = app.get(&series).await.json().await.unwrap();
    assert_eq!(new["meta"]["history_begins_at"], format_ms(cutoff));
    // Before it: refused, naming it.
    for at in [START_MS + 90_000, cutoff - 1] {
        let response = app.get(&members_path(&id, at)).await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["errors"][0]["field"], "at", "{body}");
        assert_eq!(
            body["errors"][0]["message"],
            format!(
                "is before the segment's history begins ({})",
                format_ms(cutoff)
            ),
            "{body}"
        );
    }
    // After it: as before.
    for (at, answer) in later.iter().zip(&before) {
        assert_eq!(&text(&app, &members_path(&id, *at)).await, answer);
    }
    assert!(before[0].1.contains("ann@x.io") && before[0].1.contains("bob@x.io"));
    // The feed from its beginning is what came from the cutoff on.
    let (_, feed) = text(&app, &format!("/api/v1/fetch/segments/{id}/changes")).await;
    assert_eq!(feed, changes_since);
    assert_eq!(
        serde_json::from_str::<Value>(&feed).unwrap()["data"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    // The series starts on the cutoff's day; its points from then on are
    // the ones answered before.
    let first_day = cutoff.div_euclid(DAY) * DAY;
    let kept: Vec<&Value> = old["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["at"].as_str().unwrap() >= format_ms(first_day).as_str())
        .collect();
    let points: Vec<&Value> = new["data"].as_array().unwrap().iter().collect();
    assert_eq!(points[0]["at"], format_ms(first_day), "{new}");
    assert_eq!(points, kept, "{new}");
    assert_eq!(points.last().unwrap()["members"], 4, "{new}");

    // Trimmed again at the same instant: nothing more goes, nothing moves.
    let again = retention
        .trim(app.store.as_ref(), app.clock.as_ref())
        .await
        .unwrap();
    assert_eq!(again, 0);
    let same: Value = app.get(&series).await.json().await.unwrap();
    assert_eq!(same, new);
}

#[tokio::test]
async fn a_trim_deletes_every_old_transition_of_every_segment_a_batch_at_a_time() {
    let app = TestApp::spawn().await;
    let vip = vip(&app).await;
    let everyone = app.create_segment("Everyone", json!({})).await;
    let everyone = everyone["id"].as_str().unwrap().to_owned();
    // 6,000 join both segments: more than one transaction deletes.
    app.clock.advance_ms(MINUTE);
    for chunk in 0..6 {
        let subscribers = (0..1_000)
            .map(|i| json!({"email": format!("s{chunk}-{i}@x.io"), "tags": "vip"}))
            .collect();
        batch(&app, subscribers).await;
    }
    app.clock.advance_ms(10 * DAY);
    tag(&app, "late@x.io", true).await;
    let retention = HistoryRetention::days(5).unwrap();
    let deleted = retention
        .trim(app.store.as_ref(), app.clock.as_ref())
        .await
        .unwrap();
    assert_eq!(deleted, 12_000);
    for id in [&vip, &everyone] {
        let feed: Value = app
            .get(&format!("/api/v1/fetch/segments/{id}/changes"))
            .await
            .json()
            .await
            .unwrap();
        let emails: Vec<&str> = feed["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["subscriber"]["email"].as_str().unwrap())
            .collect();
        assert_eq!(emails, ["late@x.io"], "segment {id}");
        let members = app
            .get(&format!("/api/v1/fetch/segments/{id}/members?limit=1"))
            .await
            .json::<Value>()
            .await
            .unwrap();
        assert_eq!(members["meta"]["count"], 6_002, "segment {id}");
    }
}

/// A GET of the API as the test's site on another server.
async fn get_on(app: &TestApp, base: &str, path: &str) -> reqwest::Response {
    app.client
        .get(format!("{base}{path}&site_uuid={}", app.site.uuid))
        .basic_auth(&app.site.publishable_key, Some(&app.site.secret_key))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn serve_with_history_retention_days_trims_at_start() {
    let app = TestApp::spawn().await;
    let id = vip(&app).await;
    app.clock.advance_ms(MINUTE);
    tag(&app, "ann@x.io", true).await;
    // The server runs on the wall clock, days after START_MS: with a day
    // of retention, everything recorded here is older.
    let earliest = corral::clock::SystemClock.now_ms() - DAY;
    let cli = Cli::on(&app.database_url);
    let server = start_demo(
        &cli,
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--rate-limit-per-minute",
            "0",
            "--stats-rate-limit-per-hour",
            "0",
            "--history-retention-days",
            "1",
            "--demo",
        ],
    );
    let series = format!("/api/v1/stats/segment/history?segment_id={id}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let begins_at = loop {
        let body: Value = get_on(&app, &server.base, &series)
            .await
            .json()
            .await
            .unwrap();
        let begins_at = body["meta"]["history_begins_at"]
            .as_str()
            .unwrap()
            .to_owned();
        if begins_at != format_ms(START_MS) {
            break begins_at;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the history was not trimmed: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let latest = corral::clock::SystemClock.now_ms() - DAY;
    let begins = corral::wire::history::instant(&begins_at).unwrap();
    assert!(
        (earliest..=latest).contains(&begins),
        "{begins_at} is not a day before the trim"
    );
    let response = get_on(&app, &server.base, &members_path(&id, START_MS + MINUTE)).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains(&begins_at),
        "{body}"
    );
    // No days of history is refused before anything starts (the address
    // could not be listened on either, were it reached).
    let refused = cli.run(&[
        "serve",
        "--listen",
        "256.0.0.1:1",
        "--history-retention-days",
        "0",
    ]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("--history-retention-days"), "{stderr}");
}
