//! The paged tag and field lists: bounded pages, a cursor that continues
//! where a page ended, and a 422 for what is not a limit or a cursor.

use crate::helpers::*;
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};

const SUBSCRIBERS: &str = "/api/v1/batch/subscribers";
const TAGS: &str = "/api/v1/fetch/tags";
const FIELDS: &str = "/api/v1/fetch/fields";

/// Posts a batch and returns its counts.
async fn batch(app: &TestApp, path: &str, key: &str, items: Value) -> Value {
    let response = app
        .send_json(Method::POST, path, &json!({ key: items }))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn subscribers(app: &TestApp, items: Value) -> Value {
    batch(app, SUBSCRIBERS, "subscribers", items).await
}

/// A subscriber item with these fields.
fn subscriber_with(email: &str, mut fields: Map<String, Value>) -> Value {
    fields.insert("email".into(), json!(email));
    Value::Object(fields)
}

/// Every item of a paged list, following `meta.next_cursor`, and how many
/// pages it took.
async fn all_pages(app: &TestApp, path: &str, limit: usize) -> (Vec<Value>, usize) {
    let (mut items, mut pages) = (Vec::new(), 0);
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            None => format!("{path}?limit={limit}"),
            Some(c) => format!("{path}?limit={limit}&cursor={}", urlencode(c)),
        };
        let response = app.get(&url).await;
        assert_eq!(response.status(), StatusCode::OK);
        let page: Value = response.json().await.unwrap();
        let data = page["data"].as_array().unwrap();
        assert!(data.len() <= limit);
        items.extend(data.iter().cloned());
        pages += 1;
        match page["meta"]["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return (items, pages),
        }
    }
}

#[tokio::test]
async fn tags_and_fields_come_in_pages_that_cover_everything_once() {
    let app = TestApp::spawn().await;
    let names = ["delta", "Alpha", "charlie", "Echo", "bravo"];
    for name in names {
        app.send_json(Method::POST, TAGS, &json!({"tag": {"name": name}}))
            .await;
    }
    let fields: Map<String, Value> = names.iter().map(|n| (n.to_string(), json!(1))).collect();
    subscribers(&app, json!([subscriber_with("a@x.com", fields)])).await;

    // Without parameters (as Bento's SDKs ask): everything, one page.
    let whole: Value = app.get(TAGS).await.json().await.unwrap();
    assert_eq!(whole["data"].as_array().unwrap().len(), 5);
    assert_eq!(whole["meta"], json!({"next_cursor": null}));
    let whole: Value = app.get(FIELDS).await.json().await.unwrap();
    assert_eq!(whole["data"].as_array().unwrap().len(), 5);
    assert_eq!(whole["meta"], json!({"next_cursor": null}));

    let (tags, pages) = all_pages(&app, TAGS, 2).await;
    assert_eq!(pages, 3);
    let listed: Vec<&str> = tags
        .iter()
        .map(|t| t["attributes"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["Alpha", "bravo", "charlie", "delta", "Echo"]);
    let (fields, pages) = all_pages(&app, FIELDS, 2).await;
    assert_eq!(pages, 3);
    let listed: Vec<&str> = fields
        .iter()
        .map(|f| f["attributes"]["key"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["alpha", "bravo", "charlie", "delta", "echo"]);
    // A page exactly as long as what is left is the last.
    let (_, pages) = all_pages(&app, TAGS, 5).await;
    assert_eq!(pages, 1);
}

#[tokio::test]
async fn a_cursor_is_a_position_that_survives_writes_between_pages() {
    let app = TestApp::spawn().await;
    for name in ["b", "d", "f"] {
        app.send_json(Method::POST, TAGS, &json!({"tag": {"name": name}}))
            .await;
    }
    let first: Value = app
        .get(&format!("{TAGS}?limit=2"))
        .await
        .json()
        .await
        .unwrap();
    let cursor = first["meta"]["next_cursor"].as_str().unwrap().to_owned();
    // One tag before the cursor, one after it.
    for name in ["a", "e"] {
        app.send_json(Method::POST, TAGS, &json!({"tag": {"name": name}}))
            .await;
    }
    let rest: Value = app
        .get(&format!("{TAGS}?limit=2&cursor={}", urlencode(&cursor)))
        .await
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = rest["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["attributes"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["e", "f"]);
    assert_eq!(rest["meta"]["next_cursor"], Value::Null);
}

#[tokio::test]
async fn bad_limits_and_cursors_are_a_422() {
    let app = TestApp::spawn().await;
    app.send_json(Method::POST, TAGS, &json!({"tag": {"name": "a"}}))
        .await;
    app.send_json(Method::POST, TAGS, &json!({"tag": {"name": "b"}}))
        .await;
    app.send_json(Method::POST, FIELDS, &json!({"field": {"key": "a"}}))
        .await;
    app.send_json(Method::POST, FIELDS, &json!({"field": {"key": "b"}}))
        .await;
    let not_a_cursor = "is not a cursor this API gave out (use meta.next_cursor)";
    for (path, max) in [(TAGS, 10_000), (FIELDS, 1_000)] {
        let range = format!("must be a whole number from 1 to {max}");
        for limit in [
            "0".to_owned(),
            (max + 1).to_string(),
            "ten".into(),
            "-1".into(),
        ] {
            assert_invalid(
                app.get(&format!("{path}?limit={limit}")).await,
                &[("limit", range.as_str())],
            )
            .await;
        }
        for cursor in ["nope", "%2F%2F%2F", "YWZ0ZXI6MQ"] {
            assert_invalid(
                app.get(&format!("{path}?cursor={cursor}")).await,
                &[("cursor", not_a_cursor)],
            )
            .await;
        }
    }
    // A cursor of one list is not a cursor of the other.
    let tags: Value = app
        .get(&format!("{TAGS}?limit=1"))
        .await
        .json()
        .await
        .unwrap();
    let tag_cursor = tags["meta"]["next_cursor"].as_str().unwrap();
    assert_invalid(
        app.get(&format!("{FIELDS}?cursor={}", urlencode(tag_cursor)))
            .await,
        &[("cursor", not_a_cursor)],
    )
    .await;
    // An empty cursor is the first page.
    let first: Value = app
        .get(&format!("{FIELDS}?cursor="))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first["data"].as_array().unwrap().len(), 2);
}
