//! What every route with a body admits: a body declared JSON (415 otherwise),
//! whose objects name no key twice at any depth (400 otherwise); a refused
//! body changes nothing.

use crate::helpers::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const SEGMENTS: &str = "/api/v1/fetch/segments";

async fn assert_duplicate(response: reqwest::Response, key: &str, at: &str) {
    let place = if at.is_empty() {
        "the top level".to_owned()
    } else {
        at.to_owned()
    };
    assert_json(
        response,
        StatusCode::BAD_REQUEST,
        json!({"error": format!("Duplicate key \"{key}\" at {place}")}),
    )
    .await;
}

/// The site's counts, to prove a refused batch stored nothing.
async fn site_counts(app: &TestApp) -> Value {
    app.get("/api/v1/stats/site").await.json().await.unwrap()
}

#[tokio::test]
async fn a_key_twice_inside_a_query_is_refused_naming_it_and_its_object() {
    let app = TestApp::spawn().await;
    let body =
        r#"{"segment":{"name":"x","visitor_event_query":{"tag":{"has":"a"},"tag":{"has":"b"}}}}"#;
    let response = app.send_raw(Method::POST, SEGMENTS, body).await;
    assert_duplicate(response, "tag", "/segment/visitor_event_query").await;
    assert!(app.listed_names().await.is_empty());
}

#[tokio::test]
async fn a_key_twice_at_the_top_level_is_refused() {
    let app = TestApp::spawn().await;
    let body = r#"{"visitor_event_query":{},"visitor_event_query":{"tag":{"has":"a"}}}"#;
    let response = app
        .send_raw(Method::POST, &format!("{SEGMENTS}/preview"), body)
        .await;
    assert_duplicate(response, "visitor_event_query", "").await;
    let body = r#"{"segment":{"name":"a","visitor_event_query":{}},"segment":{"name":"b","visitor_event_query":{}}}"#;
    let response = app.send_raw(Method::POST, SEGMENTS, body).await;
    assert_duplicate(response, "segment", "").await;
    assert!(app.listed_names().await.is_empty());
}

#[tokio::test]
async fn a_key_twice_inside_an_array_is_refused_with_the_index_in_its_pointer() {
    let app = TestApp::spawn().await;
    let body = r#"{"segment":{"name":"x","visitor_event_query":{"groups":[{"filters":[{"tag":{"has":"a"}},{"field":{"key":"plan","key":"tier","equals":"pro"}}]}]}}}"#;
    let response = app.send_raw(Method::POST, SEGMENTS, body).await;
    assert_duplicate(
        response,
        "key",
        "/segment/visitor_event_query/groups/0/filters/1/field",
    )
    .await;
    assert!(app.listed_names().await.is_empty());
}

#[tokio::test]
async fn a_foreign_query_kept_verbatim_still_names_each_key_once() {
    let app = TestApp::spawn().await;
    let body =
        r#"{"segment":{"name":"x","visitor_event_query":{"foreign":{"rules":[{"a":1,"a":2}]}}}}"#;
    let response = app.send_raw(Method::POST, SEGMENTS, body).await;
    assert_duplicate(
        response,
        "a",
        "/segment/visitor_event_query/foreign/rules/0",
    )
    .await;
    // A change is held to the same.
    let created = app
        .create_segment("kept", json!({"foreign": {"a": 1}}))
        .await;
    let path = format!("{SEGMENTS}/{}", created["id"].as_str().unwrap());
    let before = app.snapshot().await;
    let body = r#"{"segment":{"visitor_event_query":{"foreign":{"a":1,"a":2}}}}"#;
    let response = app.send_raw(Method::PATCH, &path, body).await;
    assert_duplicate(response, "a", "/segment/visitor_event_query/foreign").await;
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn a_batch_with_one_item_naming_a_key_twice_is_refused_whole() {
    let app = TestApp::spawn().await;
    let before = site_counts(&app).await;
    let body = r#"{"events":[
        {"type":"signup","email":"a@example.com"},
        {"type":"$purchase","email":"b@example.com","details":{"value":{"amount":1,"currency":"USD","amount":2}}}
    ]}"#;
    let response = app
        .send_raw(Method::POST, "/api/v1/batch/events", body)
        .await;
    assert_duplicate(response, "amount", "/events/1/details/value").await;
    let body = r#"{"subscribers":[{"email":"a@example.com","plan":"pro","plan":"free"}]}"#;
    let response = app
        .send_raw(Method::POST, "/api/v1/batch/subscribers", body)
        .await;
    assert_duplicate(response, "plan", "/subscribers/0").await;
    assert_eq!(site_counts(&app).await, before);
    assert!(app.subscriber("a@example.com").await.is_null());
}

#[tokio::test]
async fn every_route_with_a_body_checks_its_keys() {
    let app = TestApp::spawn().await;
    let created = app.create_segment("one", json!({})).await;
    let id = created["id"].as_str().unwrap();
    let routes = [
        (Method::POST, "/api/v1/fetch/subscribers".to_owned()),
        (Method::POST, "/api/v1/fetch/tags".to_owned()),
        (Method::POST, "/api/v1/fetch/fields".to_owned()),
        (Method::POST, "/api/v1/fetch/commands".to_owned()),
        (Method::POST, format!("{SEGMENTS}/{id}/match")),
        (Method::DELETE, format!("{SEGMENTS}/{id}")),
        (Method::POST, format!("{SEGMENTS}/{id}/restore")),
        (Method::GET, SEGMENTS.to_owned()),
    ];
    for (method, path) in routes {
        let response = app
            .send_raw(method.clone(), &path, r#"{"x":{"y":1,"y":1}}"#)
            .await;
        assert_eq!(
            response.status(),
            StatusCode::BAD_REQUEST,
            "{method} {path}"
        );
        assert_duplicate(response, "y", "/x").await;
    }
    assert_eq!(app.listed_names().await, ["one"]);
}

#[tokio::test]
async fn site_uuid_twice_in_the_body_is_refused() {
    let app = TestApp::spawn().await;
    let body = format!(
        r#"{{"site_uuid":"{0}","site_uuid":"{0}","tag":{{"name":"x"}}}}"#,
        app.site.uuid
    );
    let response = app.send_raw(Method::POST, "/api/v1/fetch/tags", body).await;
    assert_duplicate(response, "site_uuid", "").await;
}

/// Posts `body` to create a segment with this `Content-Type` (none when
/// `None`).
async fn create_typed(app: &TestApp, content_type: Option<&str>, body: &str) -> reqwest::Response {
    let mut request = app.request(Method::POST, SEGMENTS).body(body.to_owned());
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn a_body_not_declared_json_is_refused_with_415_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let body = r#"{"segment":{"name":"x","visitor_event_query":{}}}"#;
    for content_type in [
        Some("text/plain"),
        Some("text/plain; charset=utf-8"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=XyZ"),
        Some("application/xml"),
        Some("application/json; charset=iso-8859-1"),
        None,
    ] {
        let response = create_typed(&app, content_type, body).await;
        assert_json(
            response,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            json!({"error": "Unsupported Media Type"}),
        )
        .await;
    }
    let form = app
        .request(Method::POST, "/api/v1/batch/subscribers")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("email=a%40example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let multipart = app
        .request(Method::POST, "/api/v1/fetch/tags")
        .header("content-type", "multipart/form-data; boundary=b")
        .body("--b\r\nContent-Disposition: form-data; name=\"tag\"\r\n\r\nx\r\n--b--\r\n")
        .send()
        .await
        .unwrap();
    assert_eq!(multipart.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(app.listed_names().await.is_empty());
    assert!(app.subscriber("a@example.com").await.is_null());
}

#[tokio::test]
async fn json_is_accepted_with_parameters_and_as_a_structured_suffix() {
    let app = TestApp::spawn().await;
    for (i, content_type) in [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON;charset=UTF-8",
        "application/vnd.api+json",
    ]
    .into_iter()
    .enumerate()
    {
        let body = format!(r#"{{"segment":{{"name":"s{i}","visitor_event_query":{{}}}}}}"#);
        let response = create_typed(&app, Some(content_type), &body).await;
        assert_eq!(response.status(), StatusCode::CREATED, "{content_type}");
    }
    assert_eq!(app.listed_names().await.len(), 4);
}

#[tokio::test]
async fn requests_without_a_body_need_no_content_type() {
    let app = TestApp::spawn().await;
    let created = app.create_segment("one", json!({})).await;
    let path = format!("{SEGMENTS}/{}", created["id"].as_str().unwrap());
    let discarded = app.request(Method::DELETE, &path).send().await.unwrap();
    assert_eq!(discarded.status(), StatusCode::OK);
    let restored = app
        .request(Method::POST, &format!("{path}/restore"))
        .send()
        .await
        .unwrap();
    assert_eq!(restored.status(), StatusCode::OK);
    // An empty body under any declared type is no body.
    let typed = app
        .request(Method::GET, &path)
        .header("content-type", "text/plain")
        .send()
        .await
        .unwrap();
    assert_eq!(typed.status(), StatusCode::OK);
}

#[tokio::test]
async fn credentials_are_checked_before_the_content_type() {
    let app = TestApp::spawn().await;
    let response = app
        .bare(
            Method::POST,
            &format!("{SEGMENTS}?site_uuid={}", app.site.uuid),
        )
        .basic_auth(&app.site.publishable_key, Some("wrong"))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}
