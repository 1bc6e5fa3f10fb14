//! ETags, If-None-Match and If-Match.

use crate::helpers::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

const SEGMENTS: &str = "/api/v1/fetch/segments";

fn etag(response: &reqwest::Response) -> String {
    response.headers()["etag"].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_list_answers_304_only_to_a_client_that_sent_its_tag() {
    let app = TestApp::spawn().await;
    app.create_segment("a", json!({})).await;
    let first = app.get(SEGMENTS).await;
    assert_eq!(first.status(), StatusCode::OK);
    let tag = etag(&first);
    let again = app
        .request(Method::GET, SEGMENTS)
        .header("if-none-match", &tag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(etag(&again), tag);
    assert!(again.bytes().await.unwrap().is_empty());
    // A client that never sends the header always gets the body.
    assert_eq!(app.get(SEGMENTS).await.status(), StatusCode::OK);
    // After a change the old tag no longer matches.
    app.create_segment("b", json!({})).await;
    let changed = app
        .request(Method::GET, SEGMENTS)
        .header("if-none-match", &tag)
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), StatusCode::OK);
    assert_ne!(etag(&changed), tag);
}

#[tokio::test]
async fn one_segment_answers_304_for_its_current_tag() {
    let app = TestApp::spawn().await;
    let seg = app.create_segment("a", json!({})).await;
    let path = format!("{SEGMENTS}/{}", seg["id"].as_str().unwrap());
    let tag = etag(&app.get(&path).await);
    let again = app
        .request(Method::GET, &path)
        .header("if-none-match", format!("\"other\", W/{tag}"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    app.send_json(Method::PATCH, &path, &json!({"segment": {"name": "b"}}))
        .await;
    let changed = app
        .request(Method::GET, &path)
        .header("if-none-match", &tag)
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_stale_if_match_refuses_every_kind_of_write() {
    let app = TestApp::spawn().await;
    let seg = app.create_segment("a", json!({})).await;
    let path = format!("{SEGMENTS}/{}", seg["id"].as_str().unwrap());
    let stale = etag(&app.get(&path).await);
    // Another editor changes it.
    app.send_json(
        Method::PATCH,
        &path,
        &json!({"segment": {"name": "theirs"}}),
    )
    .await;
    let before = app.snapshot().await;
    let attempts = [
        app.request(Method::PATCH, &path)
            .json(&json!({"segment": {"name": "mine"}})),
        app.request(Method::DELETE, &path),
    ];
    for attempt in attempts {
        let response = attempt.header("if-match", &stale).send().await.unwrap();
        assert_json(
            response,
            StatusCode::PRECONDITION_FAILED,
            json!({"error": "Precondition Failed"}),
        )
        .await;
    }
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn the_current_tag_lets_writes_through_and_each_write_gives_a_new_one() {
    let app = TestApp::spawn().await;
    let seg = app.create_segment("a", json!({})).await;
    let path = format!("{SEGMENTS}/{}", seg["id"].as_str().unwrap());
    let tag = etag(&app.get(&path).await);
    let changed = app
        .request(Method::PATCH, &path)
        .header("if-match", &tag)
        .json(&json!({"segment": {"name": "b"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), StatusCode::OK);
    let tag2 = etag(&changed);
    assert_ne!(tag2, tag);
    let discarded = app
        .request(Method::DELETE, &path)
        .header("if-match", &tag2)
        .send()
        .await
        .unwrap();
    assert_eq!(discarded.status(), StatusCode::OK);
    let tag3 = etag(&discarded);
    // Restore honours the tag of the discarded record.
    let refused = app
        .request(Method::POST, &format!("{path}/restore"))
        .header("if-match", &tag2)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::PRECONDITION_FAILED);
    let restored = app
        .request(Method::POST, &format!("{path}/restore"))
        .header("if-match", &tag3)
        .send()
        .await
        .unwrap();
    assert_eq!(restored.status(), StatusCode::OK);
    let star = app
        .request(Method::PATCH, &path)
        .header("if-match", "*")
        .json(&json!({"segment": {"name": "c"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(star.status(), StatusCode::OK);
}
