//! Per-key-pair rate limiting on /fetch/*.

use crate::helpers::*;
use corral::clock::Clock;
use corral::credentials::KeyPair;
use corral::http::HttpSettings;
use reqwest::{Method, StatusCode};
use serde_json::json;

const SEGMENTS: &str = "/api/v1/fetch/segments";

async fn limited(per_minute: u32) -> TestApp {
    TestApp::spawn_with(HttpSettings {
        rate_limit_per_minute: per_minute,
        ..HttpSettings::default()
    })
    .await
}

#[tokio::test]
async fn over_the_limit_answers_429_with_retry_after() {
    let app = limited(3).await;
    for _ in 0..3 {
        assert_eq!(app.get(SEGMENTS).await.status(), StatusCode::OK);
    }
    let response = app.get(SEGMENTS).await;
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&retry_after), "{retry_after}");
    assert_json(
        response,
        StatusCode::TOO_MANY_REQUESTS,
        json!({"error": "Too Many Requests"}),
    )
    .await;
}

#[tokio::test]
async fn writes_count_and_a_refused_write_changes_nothing() {
    let app = limited(1).await;
    app.create_segment("first", json!({})).await;
    let response = app
        .send_json(
            Method::POST,
            SEGMENTS,
            &json!({"segment": {"name": "second", "visitor_event_query": {}}}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let names = app
        .store
        .list_segments(1, Default::default())
        .await
        .unwrap();
    assert_eq!(names.len(), 1);
}

#[tokio::test]
async fn each_key_pair_has_its_own_allowance() {
    let app = limited(2).await;
    let site = app.store.find_site(&app.site.uuid).await.unwrap().unwrap();
    let second = KeyPair::generate();
    app.store
        .add_key(site.id, &second, app.clock.now_ms())
        .await
        .unwrap();
    // The same site, through its second key pair.
    let other_pair = TestSite {
        uuid: app.site.uuid.clone(),
        publishable_key: second.publishable_key,
        secret_key: second.secret_key,
    };
    let get_as = |pair: &TestSite| app.as_site(pair, Method::GET, SEGMENTS).send();
    for _ in 0..2 {
        assert_eq!(get_as(&app.site).await.unwrap().status(), StatusCode::OK);
    }
    assert_eq!(
        get_as(&app.site).await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    for _ in 0..2 {
        assert_eq!(
            get_as(&other_pair).await.unwrap().status(),
            StatusCode::OK,
            "the first pair's requests were counted against the second's"
        );
    }
    assert_eq!(
        get_as(&other_pair).await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the second pair has an allowance of its own, not an unlimited one"
    );
}

#[tokio::test]
async fn another_site_has_its_own_allowance() {
    let app = limited(2).await;
    let other = app.new_site().await;
    app.get(SEGMENTS).await;
    app.get(SEGMENTS).await;
    assert_eq!(
        app.get(SEGMENTS).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    let theirs = app
        .as_site(&other, Method::GET, SEGMENTS)
        .send()
        .await
        .unwrap();
    assert_eq!(theirs.status(), StatusCode::OK);
}

#[tokio::test]
async fn zero_turns_limiting_off() {
    let app = limited(0).await;
    for _ in 0..150 {
        assert_eq!(app.get(SEGMENTS).await.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn health_checks_are_not_limited() {
    let app = limited(1).await;
    for _ in 0..5 {
        assert_eq!(
            app.bare(Method::GET, "/healthz")
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::OK
        );
    }
}

#[tokio::test]
async fn the_default_is_bentos_100_a_minute() {
    assert_eq!(HttpSettings::default().rate_limit_per_minute, 100);
    let app = limited(HttpSettings::default().rate_limit_per_minute).await;
    for _ in 0..100 {
        assert_eq!(app.get(SEGMENTS).await.status(), StatusCode::OK);
    }
    assert_eq!(
        app.get(SEGMENTS).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}
