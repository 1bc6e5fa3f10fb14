//! Health checks, unknown routes, request ids and the OpenAPI document.

use crate::helpers::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[tokio::test]
async fn health_and_readiness_answer_ok() {
    let app = TestApp::spawn().await;
    let health = app.bare(Method::GET, "/healthz").send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let ready = app.bare(Method::GET, "/readyz").send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    assert_eq!(
        ready.json::<Value>().await.unwrap(),
        json!({"status": "ready"})
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let app = TestApp::spawn().await;
    let missing = app.get("/api/v1/fetch/nothing").await;
    assert_json(
        missing,
        StatusCode::NOT_FOUND,
        json!({"error": "Not Found"}),
    )
    .await;
    let wrong = app
        .request(Method::PUT, "/api/v1/fetch/segments")
        .send()
        .await
        .unwrap();
    assert_json(
        wrong,
        StatusCode::METHOD_NOT_ALLOWED,
        json!({"error": "Method Not Allowed"}),
    )
    .await;
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_keeps_the_clients() {
    let app = TestApp::spawn().await;
    let generated = app.get("/api/v1/fetch/segments").await;
    assert!(!generated.headers()["x-request-id"].is_empty());
    let kept = app
        .request(Method::GET, "/api/v1/fetch/segments")
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(kept.headers()["x-request-id"], "trace-me-42");
}

#[tokio::test]
async fn the_openapi_document_is_served_and_matches_its_snapshot() {
    let app = TestApp::spawn().await;
    let response = app
        .bare(Method::GET, "/api/openapi.json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let document: Value = response.json().await.unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
    insta::assert_json_snapshot!("openapi", document);
}
