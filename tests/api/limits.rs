//! The caps on audience data (fields and tags per subscriber, field keys and
//! tags per site, the size of a field value, of a subscriber's fields and of
//! an event's details) on every write path, and the paged tag and field
//! lists. A refused item is counted in `failed` with its index and the cap it
//! would break, changes nothing, and the rest of its batch is applied.

use crate::helpers::*;
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};

const EVENTS: &str = "/api/v1/batch/events";
const SUBSCRIBERS: &str = "/api/v1/batch/subscribers";
const COMMANDS: &str = "/api/v1/fetch/commands";
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

async fn events(app: &TestApp, items: Value) -> Value {
    batch(app, EVENTS, "events", items).await
}

async fn subscribers(app: &TestApp, items: Value) -> Value {
    batch(app, SUBSCRIBERS, "subscribers", items).await
}

async fn commands(app: &TestApp, items: Value) -> Value {
    batch(app, COMMANDS, "command", items).await
}

/// Asserts a batch's counts, and the index and message of each failed item.
fn assert_counts(answer: &Value, results: u64, failed: &[(u64, &str)]) {
    assert_eq!(answer["results"], results, "{answer}");
    assert_eq!(answer["failed"], failed.len() as u64, "{answer}");
    let errors: Vec<(u64, &str)> = answer["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["index"].as_u64().unwrap(), e["message"].as_str().unwrap()))
        .collect();
    assert_eq!(errors, failed, "{answer}");
}

/// `{"<prefix>0":1, "<prefix>1":1, …}`
fn numbered_fields(prefix: &str, count: usize) -> Map<String, Value> {
    (0..count)
        .map(|i| (format!("{prefix}{i}"), json!(1)))
        .collect()
}

/// `"<prefix>0,<prefix>1,…"`
fn numbered_tags(prefix: &str, count: usize) -> String {
    (0..count)
        .map(|i| format!("{prefix}{i}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A subscriber item with these fields.
fn subscriber_with(email: &str, mut fields: Map<String, Value>) -> Value {
    fields.insert("email".into(), json!(email));
    Value::Object(fields)
}

async fn fields_of(app: &TestApp, email: &str) -> Map<String, Value> {
    app.subscriber(email).await["attributes"]["fields"]
        .as_object()
        .cloned()
        .unwrap_or_default()
}

async fn tag_count_of(app: &TestApp, email: &str) -> usize {
    app.subscriber(email).await["attributes"]["cached_tag_ids"]
        .as_array()
        .unwrap()
        .len()
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

/// The keys of the site's fields (every page).
async fn field_keys(app: &TestApp) -> Vec<String> {
    let (fields, _) = all_pages(app, FIELDS, 1_000).await;
    fields
        .iter()
        .map(|f| f["attributes"]["key"].as_str().unwrap().to_owned())
        .collect()
}

/// The names of the site's tags (every page).
async fn tag_names(app: &TestApp) -> Vec<String> {
    let (tags, _) = all_pages(app, TAGS, 10_000).await;
    tags.iter()
        .map(|t| t["attributes"]["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_subscriber_holds_at_most_200_fields_whichever_path_writes_them() {
    let app = TestApp::spawn().await;
    // Events with `fields`: the second would be the 201st field.
    let answer = events(
        &app,
        json!([
            {"type": "t", "email": "a@x.com", "fields": numbered_fields("f", 200)},
            {"type": "t", "email": "a@x.com", "fields": {"extra": 1}},
            {"type": "t", "email": "b@x.com", "fields": {"plan": "pro"}},
        ]),
    )
    .await;
    assert_counts(
        &answer,
        2,
        &[(1, "subscriber would have 201 fields; at most 200")],
    );
    let a = fields_of(&app, "a@x.com").await;
    assert_eq!(a.len(), 200);
    assert!(!a.contains_key("extra"));
    assert_eq!(app.rows(Table::Events).await, 2);
    assert!(!field_keys(&app).await.contains(&"extra".to_owned()));
    assert_eq!(fields_of(&app, "b@x.com").await["plan"], "pro");

    // Subscribers: a new subscriber with 201 fields is not created at all.
    let answer = subscribers(
        &app,
        json!([
            subscriber_with("c@x.com", numbered_fields("f", 201)),
            {"email": "d@x.com", "plan": "team"},
        ]),
    )
    .await;
    assert_counts(
        &answer,
        1,
        &[(0, "subscriber would have 201 fields; at most 200")],
    );
    assert_eq!(app.subscriber("c@x.com").await, Value::Null);
    assert_eq!(fields_of(&app, "d@x.com").await["plan"], "team");

    // Commands: a new key is refused, changing or removing one is not.
    let answer = commands(
        &app,
        json!([
            {"command": "add_field", "email": "a@x.com", "query": {"key": "extra", "value": 1}},
            {"command": "add_field", "email": "a@x.com", "query": {"key": "f0", "value": "changed"}},
            {"command": "remove_field", "email": "a@x.com", "query": "f1"},
            {"command": "add_field", "email": "a@x.com", "query": {"key": "extra", "value": 1}},
        ]),
    )
    .await;
    assert_counts(
        &answer,
        3,
        &[(0, "subscriber would have 201 fields; at most 200")],
    );
    let a = fields_of(&app, "a@x.com").await;
    assert_eq!(a.len(), 200);
    assert_eq!(a["f0"], "changed");
    assert_eq!(a["extra"], 1);
    assert!(!a.contains_key("f1"));
}

#[tokio::test]
async fn a_subscriber_holds_at_most_500_tags_whichever_path_adds_them() {
    let app = TestApp::spawn().await;
    // Subscribers: the second item would be the 501st tag.
    let answer = subscribers(
        &app,
        json!([
            {"email": "a@x.com", "tags": numbered_tags("t", 500)},
            {"email": "a@x.com", "tags": "one-more"},
            {"email": "b@x.com", "tags": "vip"},
        ]),
    )
    .await;
    assert_counts(
        &answer,
        2,
        &[(1, "subscriber would have 501 tags; at most 500")],
    );
    assert_eq!(tag_count_of(&app, "a@x.com").await, 500);
    let names = tag_names(&app).await;
    assert_eq!(names.len(), 501);
    assert!(!names.contains(&"one-more".to_owned()));

    // `$tag` events: a new tag is refused (with its event), a held one is not.
    let answer = events(
        &app,
        json!([
            {"type": "$tag", "email": "a@x.com", "details": {"tag": "one-more"}},
            {"type": "$tag", "email": "a@x.com", "details": {"tag": "T0"}},
        ]),
    )
    .await;
    assert_counts(
        &answer,
        1,
        &[(0, "subscriber would have 501 tags; at most 500")],
    );
    assert_eq!(app.rows(Table::Events).await, 1);

    // Commands: room made by removing a tag can be used.
    let answer = commands(
        &app,
        json!([
            {"command": "add_tag", "email": "a@x.com", "query": "one-more"},
            {"command": "remove_tag", "email": "a@x.com", "query": "t0"},
            {"command": "add_tag", "email": "a@x.com", "query": "one-more"},
            {"command": "add_tag", "email": "a@x.com", "query": "and-another"},
        ]),
    )
    .await;
    assert_counts(
        &answer,
        2,
        &[
            (0, "subscriber would have 501 tags; at most 500"),
            (3, "subscriber would have 501 tags; at most 500"),
        ],
    );
    assert_eq!(tag_count_of(&app, "a@x.com").await, 500);
    let names = tag_names(&app).await;
    assert!(names.contains(&"one-more".to_owned()));
    assert!(!names.contains(&"and-another".to_owned()));
}

#[tokio::test]
async fn a_site_registers_at_most_1000_field_keys() {
    let app = TestApp::spawn().await;
    let five: Vec<Value> = (0..5)
        .map(|i| {
            subscriber_with(
                &format!("s{i}@x.com"),
                numbered_fields(&format!("k{i}_"), 200),
            )
        })
        .collect();
    assert_counts(&subscribers(&app, json!(five)).await, 5, &[]);
    assert_eq!(field_keys(&app).await.len(), 1_000);
    let refused = "site would have 1001 field keys; at most 1000";

    let answer = events(
        &app,
        json!([
            {"type": "t", "email": "new@x.com", "fields": {"brand_new": 1}},
            {"type": "t", "email": "new@x.com", "fields": {"k0_0": 2}},
        ]),
    )
    .await;
    assert_counts(&answer, 1, &[(0, refused)]);
    assert_eq!(
        fields_of(&app, "new@x.com").await,
        *json!({"k0_0": 2}).as_object().unwrap()
    );

    let answer = subscribers(&app, json!([{"email": "other@x.com", "brand_new": 1}])).await;
    assert_counts(&answer, 0, &[(0, refused)]);
    assert_eq!(app.subscriber("other@x.com").await, Value::Null);

    let answer = commands(
        &app,
        json!([{"command": "add_field", "email": "new@x.com", "query": {"key": "brand_new", "value": 1}}]),
    )
    .await;
    assert_counts(&answer, 0, &[(0, refused)]);

    // Registering a key: a new one is a 422, a registered one answers as ever.
    assert_invalid(
        app.send_json(
            Method::POST,
            FIELDS,
            &json!({"field": {"key": "Brand New"}}),
        )
        .await,
        &[("key", refused)],
    )
    .await;
    let existing = app
        .send_json(Method::POST, FIELDS, &json!({"field": {"key": "K0 0"}}))
        .await;
    assert_eq!(existing.status(), StatusCode::OK);
    let keys = field_keys(&app).await;
    assert_eq!(keys.len(), 1_000);
    assert!(!keys.contains(&"brand_new".to_owned()));
}

#[tokio::test]
async fn a_site_holds_at_most_10000_tags() {
    let app = TestApp::spawn().await;
    let twenty: Vec<Value> = (0..20)
        .map(|i| json!({"email": format!("s{i}@x.com"), "tags": numbered_tags(&format!("s{i}-"), 500)}))
        .collect();
    assert_counts(&subscribers(&app, json!(twenty)).await, 20, &[]);
    assert_eq!(tag_names(&app).await.len(), 10_000);
    let refused = "site would have 10001 tags; at most 10000";

    let answer = events(
        &app,
        json!([
            {"type": "$tag", "email": "new@x.com", "details": {"tag": "brand-new"}},
            {"type": "$tag", "email": "new@x.com", "details": {"tag": "S0-0"}},
        ]),
    )
    .await;
    assert_counts(&answer, 1, &[(0, refused)]);
    assert_eq!(tag_count_of(&app, "new@x.com").await, 1);

    let answer = subscribers(&app, json!([{"email": "other@x.com", "tags": "brand-new"}])).await;
    assert_counts(&answer, 0, &[(0, refused)]);
    assert_eq!(app.subscriber("other@x.com").await, Value::Null);

    let answer = commands(
        &app,
        json!([{"command": "add_tag", "email": "new@x.com", "query": "brand-new"}]),
    )
    .await;
    assert_counts(&answer, 0, &[(0, refused)]);

    // Creating a tag: a new one is a 422, an existing one answers as ever.
    assert_invalid(
        app.send_json(Method::POST, TAGS, &json!({"tag": {"name": "brand-new"}}))
            .await,
        &[("name", refused)],
    )
    .await;
    let existing = app
        .send_json(Method::POST, TAGS, &json!({"tag": {"name": "S0-0"}}))
        .await;
    assert_eq!(existing.status(), StatusCode::OK);
    let names = tag_names(&app).await;
    assert_eq!(names.len(), 10_000);
    assert!(!names.contains(&"brand-new".to_owned()));
}

#[tokio::test]
async fn values_details_and_a_subscribers_fields_have_a_size() {
    let app = TestApp::spawn().await;
    let long = "x".repeat(8 * 1024 - 1);
    let value_refused = "field \"bio\" would take 8193 bytes; at most 8192";
    let huge = "x".repeat(64 * 1024);
    let details_refused = "details would take 65544 bytes; at most 65536";
    let answer = events(
        &app,
        json!([
            {"type": "t", "email": "a@x.com", "fields": {"bio": long}},
            {"type": "t", "email": "a@x.com", "details": {"f": huge}},
            {"type": "t", "email": "a@x.com", "fields": {"bio": "short"}},
        ]),
    )
    .await;
    assert_counts(&answer, 1, &[(0, value_refused), (1, details_refused)]);
    assert_eq!(app.rows(Table::Events).await, 1);
    assert_eq!(fields_of(&app, "a@x.com").await["bio"], "short");

    let answer = subscribers(&app, json!([{"email": "b@x.com", "bio": long}])).await;
    assert_counts(&answer, 0, &[(0, value_refused)]);
    let answer = commands(
        &app,
        json!([{"command": "add_field", "email": "a@x.com", "query": {"key": "bio", "value": long}}]),
    )
    .await;
    assert_counts(&answer, 0, &[(0, value_refused)]);

    // Nine values of 8,000 bytes each fit one by one, not together.
    let nine: Map<String, Value> = (0..9)
        .map(|i| (format!("b{i}"), json!("y".repeat(8_000))))
        .collect();
    let bytes = serde_json::to_string(&nine).unwrap().len();
    assert!(bytes > 64 * 1024);
    let answer = subscribers(&app, json!([subscriber_with("c@x.com", nine)])).await;
    let message = format!("subscriber's fields would take {bytes} bytes; at most 65536");
    assert_counts(&answer, 0, &[(0, &message)]);
    assert_eq!(app.subscriber("c@x.com").await, Value::Null);
    assert_eq!(app.rows(Table::Subscribers).await, 1);
    assert_eq!(fields_of(&app, "a@x.com").await.len(), 1);
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
