//! Per-key-pair rate limiting on /fetch/*, the `RateLimit-*` headers that
//! tell what is left of it, and the limit on failed authentications per
//! client address.

use crate::helpers::*;
use corral::clock::Clock;
use corral::credentials::KeyPair;
use corral::http::HttpSettings;
use corral::storage::actor::Actor;
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

/// The `(RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset)` of an
/// answer, or `None` when it has none of them (never only some).
fn allowance(response: &reqwest::Response) -> Option<(u64, u64, u64)> {
    let read = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().parse::<u64>().unwrap())
    };
    match (
        read("ratelimit-limit"),
        read("ratelimit-remaining"),
        read("ratelimit-reset"),
    ) {
        (Some(limit), Some(remaining), Some(reset)) => Some((limit, remaining, reset)),
        (None, None, None) => None,
        some => panic!("some of the RateLimit headers but not all: {some:?}"),
    }
}

fn retry_after(response: &reqwest::Response) -> u64 {
    response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn every_answer_of_a_limited_route_says_what_is_left_of_the_allowance() {
    // 5 a minute: one request given back every 12 s, far longer than the
    // few requests below take.
    let app = limited(5).await;
    let answers = [
        app.get(SEGMENTS).await,
        app.get(&format!("{SEGMENTS}/999")).await,
        app.send_json(Method::POST, SEGMENTS, &json!({"segment": {}}))
            .await,
        app.request(Method::POST, SEGMENTS)
            .header("content-type", "text/plain")
            .body("name=x")
            .send()
            .await
            .unwrap(),
        app.get(SEGMENTS).await,
    ];
    let statuses = [200, 404, 422, 415, 200];
    for (n, (response, status)) in answers.iter().zip(statuses).enumerate() {
        assert_eq!(response.status(), status, "request {n}");
        // The allowance is whole again once every request spent is given
        // back: 12 s each.
        let spent = n as u64 + 1;
        assert_eq!(
            allowance(response),
            Some((5, 5 - spent, 12 * spent)),
            "request {n} ({status})"
        );
    }
    // Used up: the 429 says when the next request is let in, the same
    // second in RateLimit-Reset as in Retry-After.
    let refused = app.get(SEGMENTS).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait = retry_after(&refused);
    assert!((1..=12).contains(&wait), "{wait}");
    assert_eq!(allowance(&refused), Some((5, 0, wait)));
}

#[tokio::test]
async fn the_stats_family_tells_its_own_allowance() {
    let app = TestApp::spawn_with(HttpSettings {
        rate_limit_per_minute: 5,
        stats_rate_limit_per_hour: 3,
        ..HttpSettings::default()
    })
    .await;
    const STATS: &str = "/api/v1/stats/site";
    // 3 an hour: one given back every 20 minutes.
    let first = app.get(STATS).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(allowance(&first), Some((3, 2, 1_200)));
    let fetch = app.get(SEGMENTS).await;
    assert_eq!(
        allowance(&fetch),
        Some((5, 4, 12)),
        "a stats request was counted against /fetch/*"
    );
    assert_eq!(allowance(&app.get(STATS).await), Some((3, 1, 2_400)));
    assert_eq!(allowance(&app.get(STATS).await), Some((3, 0, 3_600)));
    let refused = app.get(STATS).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait = retry_after(&refused);
    assert!((1..=1_200).contains(&wait), "{wait}");
    assert_eq!(allowance(&refused), Some((3, 0, wait)));
    // /fetch/* still has its own.
    let fetch = app.get(SEGMENTS).await;
    assert_eq!(fetch.status(), StatusCode::OK);
    assert_eq!(allowance(&fetch), Some((5, 3, 24)));
}

#[tokio::test]
async fn no_ratelimit_headers_where_nothing_is_limited() {
    let app = limited(1).await;
    // Routes outside the limited families.
    for path in [
        "/healthz",
        "/readyz",
        "/",
        "/console/app.js",
        "/api/openapi.json",
    ] {
        let response = app.bare(Method::GET, path).send().await.unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        assert_eq!(allowance(&response), None, "{path}");
    }
    // A request refused before its key pair is known counts against none.
    let unknown = app
        .bare(
            Method::GET,
            &format!("{SEGMENTS}?site_uuid={}", app.site.uuid),
        )
        .basic_auth(&app.site.publishable_key, Some("s-wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(allowance(&unknown), None);
    assert_eq!(allowance(&app.get(SEGMENTS).await), Some((1, 0, 60)));

    // Limits off: no headers on the families either.
    let unlimited = TestApp::spawn_with(HttpSettings {
        rate_limit_per_minute: 0,
        stats_rate_limit_per_hour: 0,
        ..HttpSettings::default()
    })
    .await;
    for path in [SEGMENTS, "/api/v1/stats/site", "/api/v1/fetch/tags"] {
        let response = unlimited.get(path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(allowance(&response), None, "{path}");
    }
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
        .add_key(site.id, &second, app.clock.now_ms(), &Actor::Cli)
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

/// A client whose connections leave from `address` (any of 127.0.0.0/8 is
/// this machine on Linux, so two addresses are two clients).
fn client_from(address: &str) -> reqwest::Client {
    corral::webhooks::delivery::install_tls();
    reqwest::Client::builder()
        .local_address(address.parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap()
}

#[tokio::test]
async fn failed_authentications_from_one_address_are_refused_while_other_addresses_are_served() {
    let app = TestApp::spawn_with(HttpSettings {
        rate_limit_per_minute: 0,
        auth_failures_per_minute: 5,
        ..HttpSettings::default()
    })
    .await;
    let (prober, neighbour) = (client_from("127.0.0.1"), client_from("127.0.0.2"));
    let url = format!("{}{SEGMENTS}?site_uuid={}", app.base, app.site.uuid);
    let send = |client: &reqwest::Client, secret: &str| {
        client
            .get(&url)
            .basic_auth(&app.site.publishable_key, Some(secret))
            .send()
    };
    let right = app.site.secret_key.clone();
    // The allowance: each wrong secret is an ordinary 401.
    for n in 0..5 {
        let response = send(&prober, &format!("s-guess-{n}")).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "guess {n}");
    }
    // Then the address is refused, the right secret too: a 429 that only
    // wrong guesses got would tell a right one.
    for secret in ["s-guess-5", right.as_str()] {
        let response = send(&prober, secret).await.unwrap();
        let retry_after: u64 = response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&retry_after), "{retry_after}");
        assert_json(
            response,
            StatusCode::TOO_MANY_REQUESTS,
            json!({"error": "Too Many Requests"}),
        )
        .await;
    }
    // Another address is served as before: let in with the right secret,
    // an ordinary 401 with a wrong one.
    assert_eq!(
        send(&neighbour, &right).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        send(&neighbour, "s-wrong").await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    // Once a failure has aged (a fifth of the minute), the first address
    // is let in again.
    app.clock.advance_ms(12_000);
    assert_eq!(
        send(&prober, &right).await.unwrap().status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn failed_authentications_are_counted_on_writes_and_every_kind_of_failure() {
    let app = TestApp::spawn_with(HttpSettings {
        rate_limit_per_minute: 0,
        auth_failures_per_minute: 3,
        ..HttpSettings::default()
    })
    .await;
    let site = &app.site;
    let body = json!({"segment": {"name": "n", "visitor_event_query": {}}});
    // No credentials, an unknown key, and a foreign site_uuid: three failures.
    let failures = [
        app.bare(Method::POST, &format!("{SEGMENTS}?site_uuid={}", site.uuid)),
        app.bare(Method::POST, &format!("{SEGMENTS}?site_uuid={}", site.uuid))
            .basic_auth("p-unknown", Some(&site.secret_key)),
        app.bare(
            Method::POST,
            &format!("{SEGMENTS}?site_uuid={}", "0".repeat(32)),
        )
        .basic_auth(&site.publishable_key, Some(&site.secret_key)),
    ];
    for attempt in failures {
        let response = attempt.json(&body).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let response = app.send_json(Method::POST, SEGMENTS, &body).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let stored = app
        .store
        .list_segments(1, Default::default())
        .await
        .unwrap();
    assert!(stored.is_empty(), "the refused write was stored");
}

#[tokio::test]
async fn successful_authentications_are_never_counted_as_failures() {
    let app = TestApp::spawn_with(HttpSettings {
        rate_limit_per_minute: 0,
        auth_failures_per_minute: 1,
        ..HttpSettings::default()
    })
    .await;
    for _ in 0..20 {
        assert_eq!(app.get(SEGMENTS).await.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn zero_turns_the_limit_on_failed_authentications_off() {
    let app = TestApp::spawn_with(HttpSettings {
        rate_limit_per_minute: 0,
        auth_failures_per_minute: 0,
        ..HttpSettings::default()
    })
    .await;
    let url = format!("{SEGMENTS}?site_uuid={}", app.site.uuid);
    for _ in 0..50 {
        let response = app
            .bare(Method::GET, &url)
            .basic_auth(&app.site.publishable_key, Some("s-wrong"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(app.get(SEGMENTS).await.status(), StatusCode::OK);
}
