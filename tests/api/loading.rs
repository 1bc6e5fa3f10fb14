//! Reads that finish: a site's audience is read in a task of the site's
//! own, whatever happens to the requests waiting for it. Each test holds the
//! read back with a [`GatedFeed`] (a whole read waits until the test lets it
//! go), so nothing here depends on how fast anything runs: a request times
//! out because the read it waits for cannot end, not because it is slow.

use crate::helpers::*;
use corral::http::HttpSettings;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

/// Waits (at most a minute, polling) until `done` holds.
async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    for _ in 0..6000 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never happened: {what}");
}

/// A server whose requests time out after 300 ms, with one segment of
/// everyone and two subscribers.
async fn slow_site() -> (TestApp, std::sync::Arc<GatedFeed>, String) {
    let (app, gate) = TestApp::spawn_gated(HttpSettings {
        request_timeout: Duration::from_millis(300),
        ..HttpSettings::default()
    })
    .await;
    let segment = app.create_segment("Everyone", json!({})).await;
    for email in ["a@x.io", "b@x.io"] {
        let created = app
            .send_json(
                Method::POST,
                "/api/v1/fetch/subscribers",
                &json!({"subscriber": {"email": email}}),
            )
            .await;
        assert!(created.status().is_success());
    }
    let id = segment["id"].as_str().unwrap().to_owned();
    (app, gate, id)
}

fn stats_path(id: &str) -> String {
    format!("/api/v1/stats/segment?segment_id={id}")
}

/// Sends `n` stats requests of segment `id` at once, and waits until all of
/// them wait for the read of the test's site.
async fn waiting_requests(
    app: &TestApp,
    id: &str,
    n: usize,
) -> Vec<tokio::task::JoinHandle<reqwest::Response>> {
    let site_id = app.site_id(&app.site).await;
    let requests = (0..n)
        .map(|_| {
            let request = app.request(Method::GET, &stats_path(id));
            tokio::spawn(async move { request.send().await.unwrap() })
        })
        .collect();
    until("the requests wait for one read", async || {
        app.state
            .live
            .jobs()
            .get(&site_id)
            .is_some_and(|job| job.waiters == n)
    })
    .await;
    requests
}

#[tokio::test]
async fn a_request_that_times_out_is_told_to_come_back_and_the_read_goes_on() {
    let (app, gate, id) = slow_site().await;
    assert_eq!(gate.reads_started(), 0, "saving reads no audience");

    let response = app.get(&stats_path(&id)).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    let body: Value = response.json().await.unwrap();
    let message = body["error"].as_str().unwrap();
    assert!(
        message.starts_with("The site's audience is being loaded"),
        "{message}"
    );
    assert_eq!(gate.reads_started(), 1);

    // Nobody waits any more; the read, once let go, still finishes and is
    // written to its checkpoint.
    gate.release(1);
    let site_id = app.site_id(&app.site).await;
    let checkpoint = app.checkpoint_dir().join(format!("site-{site_id}.ckpt"));
    until("the checkpoint is written", async || checkpoint.exists()).await;
    let stats = app.state.live.site_stats(site_id).unwrap();
    assert_eq!((stats.full_reads, stats.failed_jobs), (1, 0));

    let response = app.get(&stats_path(&id)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user_count"], 2);
    assert_eq!(
        gate.reads_started(),
        1,
        "the first read was not thrown away"
    );
}

#[tokio::test]
async fn requests_that_arrive_during_a_read_wait_for_it_instead_of_starting_another() {
    let (app, gate) = TestApp::spawn_gated(HttpSettings::default()).await;
    let segment = app.create_segment("Everyone", json!({})).await;
    let id = segment["id"].as_str().unwrap().to_owned();
    let site_id = app.site_id(&app.site).await;

    let requests = waiting_requests(&app, &id, 5).await;
    assert_eq!(gate.reads_started(), 1);

    gate.release(1);
    for request in requests {
        let response = request.await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(gate.reads_started(), 1);
    assert_eq!(app.state.live.site_stats(site_id).unwrap().full_reads, 1);
}

#[tokio::test]
async fn a_read_that_fails_fails_every_waiter_and_the_next_request_reads_again() {
    let (app, gate) = TestApp::spawn_gated(HttpSettings::default()).await;
    let segment = app.create_segment("Everyone", json!({})).await;
    let id = segment["id"].as_str().unwrap().to_owned();
    let site_id = app.site_id(&app.site).await;

    gate.fail_next("disk I/O error");
    let requests = waiting_requests(&app, &id, 3).await;
    gate.release(1);
    for request in requests {
        assert_json(
            request.await.unwrap(),
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error": "Internal Server Error"}),
        )
        .await;
    }
    assert_eq!(gate.reads_started(), 1);
    let stats = app.state.live.site_stats(site_id).unwrap();
    assert_eq!((stats.full_reads, stats.failed_jobs), (0, 1));

    gate.release(1);
    let response = app.get(&stats_path(&id)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(gate.reads_started(), 2);
}

#[tokio::test]
async fn readyz_waits_for_preloaded_sites_and_says_how_far_they_are() {
    let (app, gate) = TestApp::spawn_gated(HttpSettings::default()).await;
    let site_id = app.site_id(&app.site).await;
    app.state
        .start_preload(vec![(site_id, app.site.uuid.clone())]);

    let loading = async || {
        let response = app.bare(Method::GET, "/readyz").send().await.unwrap();
        let status = response.status();
        (status, response.json::<Value>().await.unwrap())
    };
    until("the preloaded site is being read", async || {
        let (status, body) = loading().await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        body["sites"][0]["state"] == "loading"
    })
    .await;
    let (_, body) = loading().await;
    assert_eq!(body["status"], "loading");
    assert_eq!(body["error"], "1 of 1 preloaded site is not resident yet");
    let site = &body["sites"][0];
    assert_eq!(site["site_uuid"], app.site.uuid.as_str());
    assert_eq!(site["unit"], "rows");
    assert!(site["seconds"].as_f64().unwrap() >= 0.0, "{site}");
    assert!(site["read"].is_u64(), "{site}");
    let health = app.bare(Method::GET, "/healthz").send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);

    gate.release(1);
    until("the preloaded site is resident", async || {
        loading().await.0 == StatusCode::OK
    })
    .await;
    assert_eq!(loading().await.1, json!({"status": "ready"}));
    assert_eq!(gate.reads_started(), 1);
}

#[tokio::test]
async fn a_preloaded_site_whose_read_fails_is_shown_failed_and_tried_again() {
    let (app, gate) = TestApp::spawn_gated(HttpSettings::default()).await;
    let site_id = app.site_id(&app.site).await;
    gate.fail_next("could not open the database file");
    gate.release(1);
    app.state
        .start_preload(vec![(site_id, app.site.uuid.clone())]);
    until("the failure is shown", async || {
        let response = app.bare(Method::GET, "/readyz").send().await.unwrap();
        let body: Value = response.json().await.unwrap();
        body["sites"][0]["state"] == "failed"
    })
    .await;
    let response = app.bare(Method::GET, "/readyz").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = response.json().await.unwrap();
    let error = body["sites"][0]["error"].as_str().unwrap();
    assert!(
        error.contains("could not open the database file"),
        "{error}"
    );

    gate.release(1);
    until("the retry makes it resident", async || {
        let response = app.bare(Method::GET, "/readyz").send().await.unwrap();
        response.status() == StatusCode::OK
    })
    .await;
    assert_eq!(gate.reads_started(), 2);
}

#[tokio::test]
async fn stopping_ends_a_read_in_flight_and_installs_nothing() {
    let (app, _gate) = TestApp::spawn_gated(HttpSettings::default()).await;
    let segment = app.create_segment("Everyone", json!({})).await;
    let id = segment["id"].as_str().unwrap().to_owned();
    let site_id = app.site_id(&app.site).await;

    let waiting = waiting_requests(&app, &id, 1).await;
    app.state.live.stop();
    // Answered while the read is still held back: the stop ended it.
    let [waiting] = <[_; 1]>::try_from(waiting).unwrap();
    assert_json(
        waiting.await.unwrap(),
        StatusCode::SERVICE_UNAVAILABLE,
        json!({"error": "Service Unavailable"}),
    )
    .await;
    assert!(app.state.live.jobs().is_empty());
    let stats = app.state.live.site_stats(site_id).unwrap();
    assert_eq!((stats.position, stats.full_reads), (None, 0));
    app.state.live.write_checkpoints(None).await;
    let written: Vec<_> = std::fs::read_dir(app.checkpoint_dir())
        .map(|dir| dir.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(written.is_empty(), "{written:?}");
}

#[tokio::test]
async fn a_catch_up_that_outlasts_its_request_goes_on_and_is_kept() {
    let (app, gate, id) = slow_site().await;
    let site_id = app.site_id(&app.site).await;
    gate.release(1);
    let response = app.get(&stats_path(&id)).await;
    assert_eq!(response.status(), StatusCode::OK);

    gate.hold(&[Held::Changes]);
    let created = app
        .send_json(
            Method::POST,
            "/api/v1/fetch/subscribers",
            &json!({"subscriber": {"email": "c@x.io"}}),
        )
        .await;
    assert!(created.status().is_success());
    let response = app.get(&stats_path(&id)).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("The site's audience is being loaded")
    );

    gate.release(1);
    until("the catch-up is applied", async || {
        app.state.live.site_stats(site_id).unwrap().catch_ups == 1
    })
    .await;
    let response = app.get(&stats_path(&id)).await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user_count"], 3);
    assert_eq!(gate.started_of(Held::Changes), 1);
    let stats = app.state.live.site_stats(site_id).unwrap();
    assert_eq!((stats.full_reads, stats.catch_ups), (1, 1));
}

#[tokio::test]
async fn a_column_of_event_details_that_outlasts_its_request_is_read_once() {
    let (app, gate, _) = slow_site().await;
    gate.hold(&[Held::Details]);
    let tracked = app
        .send_json(
            Method::POST,
            "/api/v1/batch/events",
            &json!({"events": [{"type": "$purchase", "email": "a@x.io",
                "details": {"value": {"amount": 900}}}]}),
        )
        .await;
    assert_eq!(tracked.status(), StatusCode::OK);
    let big_spenders = json!({"visitor_event_query": {"event": {"type": "$purchase",
        "where": {"value.amount": {"more_than": 500}}}}});
    let preview = async || {
        app.send_json(
            Method::POST,
            "/api/v1/fetch/segments/preview",
            &big_spenders,
        )
        .await
    };
    let response = preview().await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("retry-after"));

    gate.release(1);
    let site_id = app.site_id(&app.site).await;
    until("the column is read", async || {
        !app.state.live.jobs().contains_key(&site_id) && gate.started_of(Held::Details) == 1
    })
    .await;
    let response = preview().await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["user_count"], 1);
    assert_eq!(gate.started_of(Held::Details), 1);
}
