//! Bento's two read routes: the list and one segment.

use crate::helpers::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[tokio::test]
async fn a_new_site_lists_an_empty_data_array() {
    let app = TestApp::spawn().await;
    let response = app.get("/api/v1/fetch/segments").await;
    assert_json(response, StatusCode::OK, json!({"data": []})).await;
}

#[tokio::test]
async fn a_segment_has_bentos_resource_shape() {
    let app = TestApp::spawn().await;
    let created = app
        .create_segment("VIP", json!({"foreign": {"a": 1}}))
        .await;
    let id = created["id"].as_str().expect("id is a string").to_owned();
    let body: Value = app
        .get("/api/v1/fetch/segments")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        body,
        json!({"data": [{
            "id": id,
            "type": "segments",
            "attributes": {
                "name": "VIP",
                "description": null,
                "visitor_event_query": {"foreign": {"a": 1}},
                "created_at": "2026-11-26T09:00:00.000Z",
                "updated_at": "2026-11-26T09:00:00.000Z"
            }
        }]})
    );
}

#[tokio::test]
async fn the_list_is_ordered_by_unicode_lowercase_name() {
    let app = TestApp::spawn().await;
    for name in [
        "zebra",
        "Éclair",
        "banana",
        "Apple",
        "eclair",
        "apple pie",
        "Zoo",
    ] {
        app.create_segment(name, json!({})).await;
    }
    assert_eq!(
        app.listed_names().await,
        [
            "Apple",
            "apple pie",
            "banana",
            "eclair",
            "zebra",
            "Zoo",
            "Éclair"
        ]
    );
}

#[tokio::test]
async fn names_that_differ_only_in_case_are_ordered_by_exact_name_then_id() {
    let app = TestApp::spawn().await;
    // Equal keys can only meet among discarded segments: names are unique
    // among kept ones.
    let mut ids = Vec::new();
    for name in ["b", "B", "b", "A"] {
        let seg = app.create_segment(name, json!({})).await;
        let id = seg["id"].as_str().unwrap().to_owned();
        app.request(Method::DELETE, &format!("/api/v1/fetch/segments/{id}"))
            .send()
            .await
            .unwrap();
        ids.push(id);
    }
    let body: Value = app
        .get("/api/v1/fetch/segments?state=discarded")
        .await
        .json()
        .await
        .unwrap();
    let listed: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [&ids[3], &ids[1], &ids[0], &ids[2]]);
}

#[tokio::test]
async fn discarded_segments_are_left_out_of_the_list() {
    let app = TestApp::spawn().await;
    app.create_segment("kept", json!({})).await;
    let gone = app.create_segment("gone", json!({})).await;
    app.request(
        Method::DELETE,
        &format!("/api/v1/fetch/segments/{}", gone["id"].as_str().unwrap()),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(app.listed_names().await, ["kept"]);
}

#[tokio::test]
async fn the_query_comes_back_exactly_as_it_was_written() {
    let app = TestApp::spawn().await;
    let query = r#"{"foreign":{"zeta":12345678901234567890,"alpha":1.10,"nested":{"b":[1,2.50,-0.0e+5,true,null,{"é":"日本語 \u00e9 \"q\""}],"a":{}},"emoji":"🐄"}}"#;
    let body = format!(r#"{{"segment":{{"name":"verbatim","visitor_event_query":{query}}}}}"#);
    let response = app
        .send_raw(Method::POST, "/api/v1/fetch/segments", body)
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let id = response.json::<Value>().await.unwrap()["data"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let text = app
        .get(&format!("/api/v1/fetch/segments/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(&format!(r#""visitor_event_query":{query},"#)),
        "{text}"
    );
}

#[tokio::test]
async fn whitespace_between_tokens_is_dropped_but_not_inside_strings() {
    let app = TestApp::spawn().await;
    let body = "{\"segment\":{\"name\":\"spaces\",\"visitor_event_query\":{ \"foreign\" : { \"a\" : [ 1 , \"x  y\" ] } }\n}}";
    let response = app
        .send_raw(Method::POST, "/api/v1/fetch/segments", body)
        .await;
    let text = response.text().await.unwrap();
    assert!(
        text.contains(r#""visitor_event_query":{"foreign":{"a":[1,"x  y"]}}"#),
        "{text}"
    );
}

#[tokio::test]
async fn deeply_nested_queries_round_trip() {
    let app = TestApp::spawn().await;
    let depth = 5_000;
    let query = format!(
        r#"{{"foreign":{}{{}}{}}}"#,
        r#"{"a":"#.repeat(depth),
        "}".repeat(depth)
    );
    let body = format!(r#"{{"segment":{{"name":"deep","visitor_event_query":{query}}}}}"#);
    let response = app
        .send_raw(Method::POST, "/api/v1/fetch/segments", body)
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let text = app
        .get("/api/v1/fetch/segments")
        .await
        .text()
        .await
        .unwrap();
    assert!(text.contains(&query));
}

#[tokio::test]
async fn unknown_discarded_and_foreign_ids_are_indistinguishable() {
    let app = TestApp::spawn().await;
    let other = app.new_site().await;
    let foreign = app.create_segment_for(&other, "theirs", json!({})).await;
    let discarded = app.create_segment("gone", json!({})).await;
    let discarded_id = discarded["id"].as_str().unwrap();
    app.request(
        Method::DELETE,
        &format!("/api/v1/fetch/segments/{discarded_id}"),
    )
    .send()
    .await
    .unwrap();
    for id in [
        "999999",
        discarded_id,
        foreign["id"].as_str().unwrap(),
        "abc",
        "0",
        "-1",
        "99999999999999999999999",
    ] {
        let response = app.get(&format!("/api/v1/fetch/segments/{id}")).await;
        assert!(response.headers().get("etag").is_none());
        assert_json(
            response,
            StatusCode::NOT_FOUND,
            json!({"error": "Segment not found"}),
        )
        .await;
    }
}

#[tokio::test]
async fn get_works_with_the_headers_every_sdk_sends() {
    let app = TestApp::spawn().await;
    let created = app.create_segment("one", json!({})).await;
    let path = format!("/api/v1/fetch/segments/{}", created["id"].as_str().unwrap());
    // Node: no content type, Accept */*.
    let node = app
        .request(Method::GET, &path)
        .header("accept", "*/*")
        .send()
        .await
        .unwrap();
    assert_eq!(node.status(), StatusCode::OK);
    // Go, Ruby, PHP, .NET, Rust: a JSON content type and an empty body.
    let others = app
        .request(Method::GET, &path)
        .header("content-type", "application/json")
        .header("user-agent", "bento-php-1.0")
        .body("")
        .send()
        .await
        .unwrap();
    assert_eq!(others.status(), StatusCode::OK);
}

#[tokio::test]
async fn unknown_query_parameters_are_ignored() {
    let app = TestApp::spawn().await;
    app.create_segment("one", json!({})).await;
    let response = app
        .get("/api/v1/fetch/segments?page=2&foo=bar&utf8=%E2%9C%93")
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<Value>().await.unwrap()["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn an_unknown_listing_state_is_refused() {
    let app = TestApp::spawn().await;
    let response = app.get("/api/v1/fetch/segments?state=everything").await;
    assert_invalid(response, &[("state", "must be kept or discarded")]).await;
}

#[tokio::test]
async fn head_requests_answer_without_a_body() {
    let app = TestApp::spawn().await;
    let response = app
        .request(Method::HEAD, "/api/v1/fetch/segments")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().contains_key("etag"));
    assert!(response.bytes().await.unwrap().is_empty());
}
