//! Basic auth plus `site_uuid`: every failure is the same 401.

use crate::helpers::*;
use corral::clock::Clock;
use corral::credentials::KeyPair;
use corral::storage::actor::Actor;
use reqwest::{Method, StatusCode};
use serde_json::json;

const SEGMENTS: &str = "/api/v1/fetch/segments";

async fn assert_unauthorized(response: reqwest::Response) {
    assert_eq!(
        response.headers()["www-authenticate"],
        "Basic realm=\"corral\""
    );
    assert_json(
        response,
        StatusCode::UNAUTHORIZED,
        json!({"error": "Unauthorized"}),
    )
    .await;
}

#[tokio::test]
async fn the_right_credentials_are_let_in() {
    let app = TestApp::spawn().await;
    assert_eq!(app.get(SEGMENTS).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn every_credential_problem_is_the_same_401() {
    let app = TestApp::spawn().await;
    let other = app.new_site().await;
    let site = &app.site;
    let with_query = |path: &str| format!("{path}?site_uuid={}", site.uuid);
    let attempts = [
        // No Authorization header.
        app.bare(Method::GET, &with_query(SEGMENTS)),
        // Wrong secret.
        app.bare(Method::GET, &with_query(SEGMENTS))
            .basic_auth(&site.publishable_key, Some("s-not-the-secret")),
        // Empty secret.
        app.bare(Method::GET, &with_query(SEGMENTS))
            .basic_auth(&site.publishable_key, None::<&str>),
        // Unknown publishable key.
        app.bare(Method::GET, &with_query(SEGMENTS))
            .basic_auth("p-unknown", Some(&site.secret_key)),
        // Another site's secret with this site's publishable key.
        app.bare(Method::GET, &with_query(SEGMENTS))
            .basic_auth(&site.publishable_key, Some(&other.secret_key)),
        // No site_uuid.
        app.bare(Method::GET, SEGMENTS)
            .basic_auth(&site.publishable_key, Some(&site.secret_key)),
        // Another site's uuid with these keys.
        app.as_site(
            &TestSite {
                uuid: other.uuid.clone(),
                ..site.clone()
            },
            Method::GET,
            SEGMENTS,
        ),
        // An unknown site uuid.
        app.as_site(
            &TestSite {
                uuid: "0".repeat(32),
                ..site.clone()
            },
            Method::GET,
            SEGMENTS,
        ),
        // Not Basic.
        app.bare(Method::GET, &with_query(SEGMENTS))
            .bearer_auth(&site.secret_key),
        // Garbage in the header.
        app.bare(Method::GET, &with_query(SEGMENTS))
            .header("authorization", "Basic ###"),
    ];
    for attempt in attempts {
        assert_unauthorized(attempt.send().await.unwrap()).await;
    }
}

#[tokio::test]
async fn writes_are_refused_without_credentials_and_change_nothing() {
    let app = TestApp::spawn().await;
    let response = app
        .bare(
            Method::POST,
            &format!("{SEGMENTS}?site_uuid={}", app.site.uuid),
        )
        .basic_auth(&app.site.publishable_key, Some("wrong"))
        .json(&json!({"segment": {"name": "sneaky", "visitor_event_query": {}}}))
        .send()
        .await
        .unwrap();
    assert_unauthorized(response).await;
    assert!(app.listed_names().await.is_empty());
}

#[tokio::test]
async fn a_foreign_site_uuid_in_the_body_is_refused() {
    let app = TestApp::spawn().await;
    let other = app.new_site().await;
    let response = app
        .bare(Method::POST, SEGMENTS)
        .basic_auth(&app.site.publishable_key, Some(&app.site.secret_key))
        .json(
            &json!({"site_uuid": other.uuid, "segment": {"name": "x", "visitor_event_query": {}}}),
        )
        .send()
        .await
        .unwrap();
    assert_unauthorized(response).await;
}

#[tokio::test]
async fn a_site_uuid_in_the_body_must_be_the_query_strings() {
    let app = TestApp::spawn().await;
    let other = app.new_site().await;
    let tag = |site_uuid: serde_json::Value| json!({"site_uuid": site_uuid, "tag": {"name": "x"}});
    let path = "/api/v1/fetch/tags";
    // The same in both places: one site, no doubt.
    let same = app
        .send_json(Method::POST, path, &tag(json!(app.site.uuid)))
        .await;
    assert_eq!(same.status(), StatusCode::OK);
    // Anything else in the body is doubt about the site: another site's
    // uuid, an unknown one, or not a string at all.
    for body_site in [
        json!(other.uuid),
        json!("0".repeat(32)),
        json!(null),
        json!(5),
    ] {
        let response = app.send_json(Method::POST, path, &tag(body_site)).await;
        assert_unauthorized(response).await;
    }
    // Also when the body's is right and the query string's is not.
    let response = app
        .as_site(
            &TestSite {
                uuid: other.uuid.clone(),
                ..app.site.clone()
            },
            Method::POST,
            path,
        )
        .json(&tag(json!(app.site.uuid)))
        .send()
        .await
        .unwrap();
    assert_unauthorized(response).await;
}

#[tokio::test]
async fn site_uuid_twice_in_the_query_string_is_refused() {
    let app = TestApp::spawn().await;
    let response = app
        .get(&format!("{SEGMENTS}?site_uuid={}", app.site.uuid))
        .await;
    assert_unauthorized(response).await;
}

#[tokio::test]
async fn a_user_name_longer_than_any_key_is_refused() {
    let app = TestApp::spawn().await;
    let response = app
        .bare(
            Method::GET,
            &format!("{SEGMENTS}?site_uuid={}", app.site.uuid),
        )
        .basic_auth("p".repeat(10_000), Some(&app.site.secret_key))
        .send()
        .await
        .unwrap();
    assert_unauthorized(response).await;
}

#[tokio::test]
async fn a_key_created_after_it_was_refused_is_let_in() {
    let app = TestApp::spawn().await;
    let site = app.store.find_site(&app.site.uuid).await.unwrap().unwrap();
    let later = KeyPair::generate();
    let as_later = TestSite {
        uuid: app.site.uuid.clone(),
        publishable_key: later.publishable_key.clone(),
        secret_key: later.secret_key.clone(),
    };
    // Refused, and then remembered as unknown.
    for _ in 0..2 {
        let response = app
            .as_site(&as_later, Method::GET, SEGMENTS)
            .send()
            .await
            .unwrap();
        assert_unauthorized(response).await;
    }
    app.store
        .add_key(site.id, &later, app.clock.now_ms(), &Actor::Cli)
        .await
        .unwrap();
    let response = app
        .as_site(&as_later, Method::GET, SEGMENTS)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_second_key_pair_works_and_revoking_one_leaves_the_other() {
    let app = TestApp::spawn().await;
    let site = app.store.find_site(&app.site.uuid).await.unwrap().unwrap();
    let second = KeyPair::generate();
    app.store
        .add_key(site.id, &second, app.clock.now_ms(), &Actor::Cli)
        .await
        .unwrap();
    let second_site = TestSite {
        uuid: app.site.uuid.clone(),
        publishable_key: second.publishable_key.clone(),
        secret_key: second.secret_key.clone(),
    };
    assert_eq!(
        app.as_site(&second_site, Method::GET, SEGMENTS)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    app.store
        .revoke_key(&app.site.publishable_key, app.clock.now_ms(), &Actor::Cli)
        .await
        .unwrap();
    assert_unauthorized(app.get(SEGMENTS).await).await;
    assert_eq!(
        app.as_site(&second_site, Method::GET, SEGMENTS)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn credentials_are_checked_before_the_body() {
    let app = TestApp::spawn().await;
    let response = app
        .bare(
            Method::POST,
            &format!("{SEGMENTS}?site_uuid={}", app.site.uuid),
        )
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_unauthorized(response).await;
}
