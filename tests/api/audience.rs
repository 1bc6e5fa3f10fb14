//! Bento's audience endpoints: subscribers, tags, fields, events, commands,
//! batch imports and site stats.

use crate::helpers::*;
use corral::http::HttpSettings;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const EVENTS: &str = "/api/v1/batch/events";
const SUBSCRIBERS: &str = "/api/v1/batch/subscribers";
const COMMANDS: &str = "/api/v1/fetch/commands";

async fn results(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn track(app: &TestApp, events: Value) -> Value {
    results(
        app.send_json(Method::POST, EVENTS, &json!({ "events": events }))
            .await,
    )
    .await
}

async fn stats(app: &TestApp) -> Value {
    app.get("/api/v1/stats/site").await.json().await.unwrap()
}

#[tokio::test]
async fn creating_a_subscriber_makes_them_findable_by_email_and_uuid() {
    let app = TestApp::spawn().await;
    let response = app
        .send_json(
            Method::POST,
            "/api/v1/fetch/subscribers",
            &json!({"subscriber": {"email": " Ada@Example.com "}}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let created: Value = response.json().await.unwrap();
    let attributes = &created["data"]["attributes"];
    assert_eq!(created["data"]["type"], "visitors");
    assert_eq!(attributes["email"], "Ada@Example.com");
    assert_eq!(attributes["fields"], Value::Null);
    assert_eq!(attributes["cached_tag_ids"], json!([]));
    assert_eq!(attributes["unsubscribed_at"], Value::Null);
    let uuid = attributes["uuid"].as_str().unwrap();
    assert_eq!(uuid.len(), 32);
    assert_eq!(app.subscriber("ada@example.COM").await, created["data"]);
    let by_uuid: Value = app
        .get(&format!("/api/v1/fetch/subscribers?uuid={uuid}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(by_uuid["data"], created["data"]);
    // Creating again finds the same subscriber.
    let again: Value = app
        .send_json(
            Method::POST,
            "/api/v1/fetch/subscribers",
            &json!({"subscriber": {"email": "ADA@example.com"}}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["data"]["attributes"]["uuid"], uuid);
    assert_eq!(stats(&app).await["user_count"], 1);
}

#[tokio::test]
async fn unknown_subscribers_are_data_null() {
    let app = TestApp::spawn().await;
    assert_eq!(app.subscriber("nobody@example.com").await, Value::Null);
    let by_uuid: Value = app
        .get("/api/v1/fetch/subscribers?uuid=0000")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(by_uuid, json!({"data": null}));
}

#[tokio::test]
async fn a_lookup_needs_a_valid_email_or_a_uuid() {
    let app = TestApp::spawn().await;
    assert_invalid(
        app.get("/api/v1/fetch/subscribers").await,
        &[("email", "or uuid is required")],
    )
    .await;
    assert_invalid(
        app.get("/api/v1/fetch/subscribers?email=not-an-email")
            .await,
        &[("email", "is invalid")],
    )
    .await;
}

#[tokio::test]
async fn bad_subscriber_bodies_are_refused_and_store_nothing() {
    let app = TestApp::spawn().await;
    let path = "/api/v1/fetch/subscribers";
    let response = app.send_raw(Method::POST, path, "{\"subscriber\":").await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    for (body, errors) in [
        (
            json!({}),
            vec![("subscriber", "is required"), ("email", "can't be blank")],
        ),
        (json!({"subscriber": {}}), vec![("email", "can't be blank")]),
        (
            json!({"subscriber": {"email": 42}}),
            vec![("email", "must be a string")],
        ),
        (
            json!({"subscriber": {"email": "a@x.com", "age": 3}}),
            vec![("age", "is not a known field")],
        ),
        (
            json!({"subscriber": {"email": "nope"}}),
            vec![("email", "is invalid")],
        ),
        (
            json!({"subscriber": "a@x.com"}),
            vec![
                ("subscriber", "must be a JSON object"),
                ("email", "can't be blank"),
            ],
        ),
    ] {
        assert_invalid(app.send_json(Method::POST, path, &body).await, &errors).await;
    }
    assert_eq!(stats(&app).await["user_count"], 0);
}

#[tokio::test]
async fn tags_are_created_once_ignoring_case_and_listed_by_name() {
    let app = TestApp::spawn().await;
    let path = "/api/v1/fetch/tags";
    let first: Value = app
        .send_json(Method::POST, path, &json!({"tag": {"name": " VIP "}}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first["data"]["type"], "tags");
    assert_eq!(first["data"]["attributes"]["name"], "VIP");
    assert_eq!(first["data"]["attributes"]["discarded_at"], Value::Null);
    assert!(first["data"]["attributes"]["site_id"].is_number());
    let again: Value = app
        .send_json(Method::POST, path, &json!({"tag": {"name": "vip"}}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["data"]["id"], first["data"]["id"]);
    app.send_json(Method::POST, path, &json!({"tag": {"name": "alpha"}}))
        .await;
    let listed: Value = app.get(path).await.json().await.unwrap();
    let names: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["attributes"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alpha", "VIP"]);
    assert_invalid(
        app.send_json(Method::POST, path, &json!({"tag": {"name": "  "}}))
            .await,
        &[("name", "can't be blank")],
    )
    .await;
    assert_invalid(
        app.send_json(Method::POST, path, &json!({"tag": {"name": 1}}))
            .await,
        &[("name", "must be a string")],
    )
    .await;
}

#[tokio::test]
async fn field_keys_are_normalised() {
    let app = TestApp::spawn().await;
    let path = "/api/v1/fetch/fields";
    let created: Value = app
        .send_json(Method::POST, path, &json!({"field": {"key": "First Name"}}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(created["data"]["type"], "visitors-fields");
    assert_eq!(created["data"]["attributes"]["key"], "first_name");
    assert_eq!(created["data"]["attributes"]["name"], "First Name");
    assert_eq!(created["data"]["attributes"]["whitelisted"], Value::Null);
    let same: Value = app
        .send_json(Method::POST, path, &json!({"field": {"key": "first-name"}}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(same["data"]["id"], created["data"]["id"]);
    let listed: Value = app.get(path).await.json().await.unwrap();
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
    assert_invalid(
        app.send_json(Method::POST, path, &json!({"field": {}}))
            .await,
        &[("key", "can't be blank")],
    )
    .await;
}

#[tokio::test]
async fn tracking_an_event_creates_the_subscriber_and_merges_fields() {
    let app = TestApp::spawn().await;
    let answer = track(
        &app,
        json!([{"type": "$pageview", "email": "new@x.com", "details": {"url": "/pricing"}, "fields": {"First Name": "Ada", "plan": "pro"}}]),
    )
    .await;
    assert_eq!(answer, json!({"results": 1, "failed": 0, "errors": []}));
    track(&app, json!([{"type": "$update_fields", "email": "NEW@x.com", "fields": {"plan": "team", "seats": 5}}])).await;
    let subscriber = app.subscriber("new@x.com").await;
    assert_eq!(
        subscriber["attributes"]["fields"],
        json!({"first_name": "Ada", "plan": "team", "seats": 5})
    );
    assert_eq!(app.rows(Table::Events).await, 2);
    assert_eq!(app.rows(Table::Subscribers).await, 1);
}

#[tokio::test]
async fn events_keep_their_date_type_and_details_as_sent() {
    let app = TestApp::spawn().await;
    let body = r#"{"events": [
        {"type": "signup", "email": "a@x.com", "date": "2024-08-06T05:44:04.444Z", "details": { "b": 1.10, "a": [true, null] }},
        {"type": "login", "email": "a@x.com"}
    ]}"#;
    assert_eq!(
        app.send_raw(Method::POST, EVENTS, body).await.status(),
        StatusCode::OK
    );
    let events = app.events().await;
    let stored: Vec<(&str, i64, &str)> = events
        .iter()
        .map(|e| (e.kind.as_str(), e.occurred_at, e.details.as_str()))
        .collect();
    // The details exactly as sent, compacted: numbers as written, key order kept.
    assert_eq!(
        stored,
        [
            ("signup", 1_722_923_044_444, r#"{"b":1.10,"a":[true,null]}"#),
            ("login", START_MS, "{}"),
        ]
    );
}

#[tokio::test]
async fn special_events_change_tags_and_subscription() {
    let app = TestApp::spawn().await;
    let email = "s@x.com";
    track(
        &app,
        json!([{"type": "$tag", "email": email, "details": {"tag": "Customer"}}]),
    )
    .await;
    track(
        &app,
        json!([{"type": "$tag", "email": email, "details": {"tag": "lead"}}]),
    )
    .await;
    assert_eq!(
        app.subscriber(email).await["attributes"]["cached_tag_ids"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    track(
        &app,
        json!([{"type": "$remove_tag", "email": email, "details": {"tag": "LEAD"}}]),
    )
    .await;
    let tags = app.subscriber(email).await["attributes"]["cached_tag_ids"].clone();
    assert_eq!(tags.as_array().unwrap().len(), 1);
    track(
        &app,
        json!([{"type": "$unsubscribe", "email": email, "date": "2026-01-01T00:00:00.000Z"}]),
    )
    .await;
    assert_eq!(
        app.subscriber(email).await["attributes"]["unsubscribed_at"],
        "2026-01-01T00:00:00.000Z"
    );
    assert_eq!(
        stats(&app).await,
        json!({"user_count": 1, "subscriber_count": 0, "unsubscriber_count": 1})
    );
    track(
        &app,
        json!([{"type": "$subscribe", "email": email, "fields": {"source": "form"}}]),
    )
    .await;
    let back = app.subscriber(email).await;
    assert_eq!(back["attributes"]["unsubscribed_at"], Value::Null);
    assert_eq!(back["attributes"]["fields"]["source"], "form");
    assert_eq!(stats(&app).await["subscriber_count"], 1);
}

#[tokio::test]
async fn a_purchase_with_a_unique_key_is_stored_once_however_often_it_is_sent() {
    let app = TestApp::spawn().await;
    let purchase = json!({"type": "$purchase", "email": "buyer@x.com",
        "details": {"unique": {"key": "order-42"}, "value": {"currency": "usd", "amount": 12050}}});
    for _ in 0..3 {
        let answer = track(&app, json!([purchase.clone()])).await;
        assert_eq!(answer["results"], 1);
        assert_eq!(answer["failed"], 0);
    }
    let both = track(&app, json!([purchase.clone(), purchase])).await;
    assert_eq!(both["results"], 2);
    assert_eq!(app.rows(Table::Events).await, 1);
    assert_eq!(app.events().await[0].amount, Some(12050.0));
    // Without a unique key every purchase counts.
    let plain =
        json!({"type": "$purchase", "email": "buyer@x.com", "details": {"value": {"amount": 5}}});
    track(&app, json!([plain.clone(), plain])).await;
    assert_eq!(app.rows(Table::Events).await, 3);
}

#[tokio::test]
async fn invalid_items_fail_with_their_reason_and_valid_ones_are_stored() {
    let app = TestApp::spawn().await;
    let answer = track(
        &app,
        json!([
            {"type": "ok", "email": "good@x.com"},
            {"type": "missing email"},
            {"type": "bad", "email": "not-an-email"},
            {"type": 7, "email": "good@x.com"},
            {"type": "$purchase", "email": "good@x.com", "details": {"value": {"amount": "ten"}}},
            {"type": "dated", "email": "good@x.com", "date": "last tuesday"},
            "not an object"
        ]),
    )
    .await;
    assert_eq!(answer["results"], 1);
    assert_eq!(answer["failed"], 6);
    let errors: Vec<(u64, &str)> = answer["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["index"].as_u64().unwrap(), e["message"].as_str().unwrap()))
        .collect();
    assert_eq!(errors[0], (1, "email is required"));
    assert_eq!(errors[1], (2, "email is invalid"));
    assert_eq!(errors[2], (3, "type must be a string"));
    assert_eq!(errors[3], (4, "details.value.amount must be a number"));
    assert_eq!(errors[4].0, 5);
    assert_eq!(errors[5], (6, "must be a JSON object"));
    assert_eq!(app.rows(Table::Events).await, 1);
    assert_eq!(app.rows(Table::Subscribers).await, 1);
}

#[tokio::test]
async fn batches_hold_1_to_1000_items() {
    let app = TestApp::spawn().await;
    for (path, key) in [(EVENTS, "events"), (SUBSCRIBERS, "subscribers")] {
        assert_invalid(
            app.send_json(Method::POST, path, &json!({ key: [] })).await,
            &[(key, "must hold 1 to 1000 items")],
        )
        .await;
        let many: Vec<Value> = (0..1001)
            .map(|i| json!({"type": "t", "email": format!("u{i}@x.com")}))
            .collect();
        assert_invalid(
            app.send_json(Method::POST, path, &json!({ key: many }))
                .await,
            &[(key, "must hold 1 to 1000 items")],
        )
        .await;
        assert_invalid(
            app.send_json(Method::POST, path, &json!({ key: {"email": "a@x.com"} }))
                .await,
            &[(key, "must be a JSON array")],
        )
        .await;
        assert_invalid(
            app.send_json(Method::POST, path, &json!({})).await,
            &[(key, "is required")],
        )
        .await;
        assert_eq!(
            app.send_raw(Method::POST, path, "{\"events\": [")
                .await
                .status(),
            StatusCode::BAD_REQUEST
        );
    }
    let full: Vec<Value> = (0..1000)
        .map(|i| json!({"type": "t", "email": format!("u{i}@x.com")}))
        .collect();
    assert_eq!(track(&app, json!(full)).await["results"], 1000);
    assert_eq!(app.rows(Table::Subscribers).await, 1000);
}

#[tokio::test]
async fn a_full_batch_of_large_events_fits() {
    let app = TestApp::spawn().await;
    // 1,000 events of about 2 KiB each: over the 1 MiB other routes allow.
    let filler = "x".repeat(2 * 1024);
    let big: Vec<Value> = (0..1000)
        .map(|i| json!({"type": "t", "email": format!("u{i}@x.com"), "details": {"f": filler}}))
        .collect();
    let answer = track(&app, json!(big)).await;
    assert_eq!(answer["results"], 1000);
    assert_eq!(app.rows(Table::Events).await, 1000);
}

#[tokio::test]
async fn oversized_batches_are_a_413_and_store_nothing() {
    let app = TestApp::spawn().await;
    // 1,000 events of about 17 KiB each: over the 16 MiB a batch may carry.
    let filler = "x".repeat(17 * 1024);
    let big: Vec<Value> = (0..1000)
        .map(|_| json!({"type": "t", "email": "a@x.com", "details": {"f": filler}}))
        .collect();
    let response = app
        .send_json(Method::POST, EVENTS, &json!({ "events": big }))
        .await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(app.rows(Table::Events).await, 0);
}

#[tokio::test]
async fn importing_subscribers_sets_fields_and_tags() {
    let app = TestApp::spawn().await;
    let answer = results(
        app.send_json(
            Method::POST,
            SUBSCRIBERS,
            &json!({"subscribers": [
                {"email": "a@x.com", "tags": "lead, mql", "Company Size": 50, "plan": "pro"},
                {"email": "b@x.com"},
                {"name": "no email"}
            ]}),
        )
        .await,
    )
    .await;
    assert_eq!(answer["results"], 2);
    assert_eq!(answer["failed"], 1);
    let a = app.subscriber("a@x.com").await;
    assert_eq!(
        a["attributes"]["fields"],
        json!({"company_size": 50, "plan": "pro"})
    );
    assert_eq!(
        a["attributes"]["cached_tag_ids"].as_array().unwrap().len(),
        2
    );
    results(
        app.send_json(
            Method::POST,
            SUBSCRIBERS,
            &json!({"subscribers": [{"email": "a@x.com", "remove_tags": "LEAD", "plan": null}]}),
        )
        .await,
    )
    .await;
    let a = app.subscriber("a@x.com").await;
    assert_eq!(a["attributes"]["fields"], json!({"company_size": 50}));
    assert_eq!(
        a["attributes"]["cached_tag_ids"].as_array().unwrap().len(),
        1
    );
    let fields: Value = app.get("/api/v1/fetch/fields").await.json().await.unwrap();
    let keys: Vec<&str> = fields["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["attributes"]["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["company_size", "plan"]);
}

#[tokio::test]
async fn commands_change_subscribers() {
    let app = TestApp::spawn().await;
    let email = "c@x.com";
    let commands = json!({"command": [
        {"command": "add_tag", "email": email, "query": "vip"},
        {"command": "add_field", "email": email, "query": {"key": "Plan", "value": "pro"}},
        {"command": "add_field", "email": email, "query": {"key": "seats", "value": 3}},
        {"command": "remove_field", "email": email, "query": "seats"},
        {"command": "unsubscribe", "email": email}
    ]});
    let answer = results(app.send_json(Method::POST, COMMANDS, &commands).await).await;
    assert_eq!(answer["results"], 5);
    let c = app.subscriber(email).await;
    assert_eq!(c["attributes"]["fields"], json!({"plan": "pro"}));
    assert_eq!(
        c["attributes"]["cached_tag_ids"].as_array().unwrap().len(),
        1
    );
    assert!(c["attributes"]["unsubscribed_at"].is_string());
    let single = json!({"command": {"command": "subscribe", "email": email}});
    results(app.send_json(Method::POST, COMMANDS, &single).await).await;
    let remove = json!({"command": {"command": "remove_tag", "email": email, "query": "VIP"}});
    results(app.send_json(Method::POST, COMMANDS, &remove).await).await;
    let c = app.subscriber(email).await;
    assert_eq!(c["attributes"]["unsubscribed_at"], Value::Null);
    assert_eq!(c["attributes"]["cached_tag_ids"], json!([]));
}

#[tokio::test]
async fn change_email_keeps_the_subscriber_and_refuses_taken_or_unknown_emails() {
    let app = TestApp::spawn().await;
    track(
        &app,
        json!([{"type": "t", "email": "old@x.com"}, {"type": "t", "email": "other@x.com"}]),
    )
    .await;
    let uuid = app.subscriber("old@x.com").await["attributes"]["uuid"].clone();
    let change = |from: &str, to: &str| json!({"command": {"command": "change_email", "email": from, "query": to}});
    let answer = results(
        app.send_json(Method::POST, COMMANDS, &change("old@x.com", "New@x.com"))
            .await,
    )
    .await;
    assert_eq!(answer["results"], 1);
    assert_eq!(
        app.subscriber("new@x.com").await["attributes"]["uuid"],
        uuid
    );
    assert_eq!(app.subscriber("old@x.com").await, Value::Null);
    assert_eq!(app.rows(Table::Events).await, 2);
    let taken = results(
        app.send_json(Method::POST, COMMANDS, &change("new@x.com", "OTHER@x.com"))
            .await,
    )
    .await;
    assert_eq!(taken["failed"], 1);
    assert_eq!(
        taken["errors"][0]["message"],
        "email OTHER@x.com has already been taken"
    );
    let unknown = results(
        app.send_json(Method::POST, COMMANDS, &change("ghost@x.com", "g2@x.com"))
            .await,
    )
    .await;
    assert_eq!(unknown["failed"], 1);
    assert_eq!(app.rows(Table::Subscribers).await, 2);
}

#[tokio::test]
async fn unknown_and_malformed_commands_fail_alone() {
    let app = TestApp::spawn().await;
    let answer = results(
        app.send_json(
            Method::POST,
            COMMANDS,
            &json!({"command": [
                {"command": "frobnicate", "email": "a@x.com"},
                {"command": "add_tag", "email": "a@x.com"},
                {"command": "add_tag", "query": "x"},
                {"command": "add_tag", "email": "a@x.com", "query": "fine"}
            ]}),
        )
        .await,
    )
    .await;
    assert_eq!(answer["results"], 1);
    assert_eq!(answer["failed"], 3);
    assert!(
        answer["errors"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("unknown command \"frobnicate\"; known: add_tag")
    );
    assert_eq!(
        answer["errors"][1]["message"],
        "query must be a string for add_tag"
    );
    assert_eq!(answer["errors"][2]["message"], "email can't be blank");
    assert_invalid(
        app.send_json(Method::POST, COMMANDS, &json!({"commands": []}))
            .await,
        &[
            ("commands", "is not a known field"),
            ("command", "is required"),
        ],
    )
    .await;
    // One command is an object, several a list: anything else is refused
    // whole (it is not a command that failed).
    for not_commands in [json!("add_tag"), json!(7), json!(true)] {
        assert_invalid(
            app.send_json(Method::POST, COMMANDS, &json!({"command": not_commands}))
                .await,
            &[("command", "must be a JSON object or array")],
        )
        .await;
    }
}

#[tokio::test]
async fn another_sites_keys_see_none_of_this_sites_audience() {
    let app = TestApp::spawn().await;
    let other = app.new_site().await;
    track(&app, json!([{"type": "$tag", "email": "mine@x.com", "details": {"tag": "secret"}, "fields": {"f": 1}}])).await;
    let as_other = |path: &str| app.as_site(&other, Method::GET, path).send();
    let found: Value = as_other("/api/v1/fetch/subscribers?email=mine%40x.com")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(found, json!({"data": null}));
    let uuid = app.subscriber("mine@x.com").await["attributes"]["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    let by_uuid: Value = as_other(&format!("/api/v1/fetch/subscribers?uuid={uuid}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(by_uuid, json!({"data": null}));
    let tags: Value = as_other("/api/v1/fetch/tags")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tags, json!({"data": [], "meta": {"next_cursor": null}}));
    let fields: Value = as_other("/api/v1/fetch/fields")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(fields, json!({"data": [], "meta": {"next_cursor": null}}));
    let counts: Value = as_other("/api/v1/stats/site")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        counts,
        json!({"user_count": 0, "subscriber_count": 0, "unsubscriber_count": 0})
    );
    // The other site's commands cannot touch this site's subscriber.
    let cmd = json!({"command": {"command": "change_email", "email": "mine@x.com", "query": "stolen@x.com"}});
    let answer: Value = app
        .as_site(&other, Method::POST, COMMANDS)
        .json(&cmd)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["failed"], 1);
    assert_eq!(
        app.subscriber("mine@x.com").await["attributes"]["email"],
        "mine@x.com"
    );
}

#[tokio::test]
async fn audience_routes_need_credentials() {
    let app = TestApp::spawn().await;
    for (method, path) in [
        (Method::GET, "/api/v1/fetch/subscribers?email=a%40x.com"),
        (Method::POST, EVENTS),
        (Method::POST, SUBSCRIBERS),
        (Method::POST, COMMANDS),
        (Method::GET, "/api/v1/fetch/tags"),
        (Method::GET, "/api/v1/stats/site"),
    ] {
        let response = app
            .bare(
                method,
                &format!(
                    "{path}{}site_uuid={}",
                    if path.contains('?') { "&" } else { "?" },
                    app.site.uuid
                ),
            )
            .basic_auth(&app.site.publishable_key, Some("wrong"))
            .json(&json!({"events": [{"type": "t", "email": "a@x.com"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    assert_eq!(app.rows(Table::Subscribers).await, 0);
}

#[tokio::test]
async fn stats_have_their_own_hourly_allowance() {
    let app = TestApp::spawn_with(HttpSettings {
        rate_limit_per_minute: 100,
        stats_rate_limit_per_hour: 2,
        ..HttpSettings::default()
    })
    .await;
    assert_eq!(app.get("/api/v1/stats/site").await.status(), StatusCode::OK);
    assert_eq!(app.get("/api/v1/stats/site").await.status(), StatusCode::OK);
    let limited = app.get("/api/v1/stats/site").await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait > 60, "{wait}");
    assert_eq!(app.get("/api/v1/fetch/tags").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_retried_purchase_changes_nothing_whichever_path_it_takes() {
    let app = TestApp::spawn().await;
    let purchase = |email: &str, fields: Value| {
        json!({"type": "$purchase", "email": email, "fields": fields,
               "details": {"unique": {"key": "k1"}, "value": {"amount": 1}}})
    };
    track(&app, json!([purchase("first@x.com", json!(null))])).await;
    // The same key again, from other emails: once as a plain event (written in
    // bulk), once with fields (written item by item).
    let answer = track(
        &app,
        json!([
            purchase("second@x.com", json!(null)),
            purchase("third@x.com", json!({"f": 1}))
        ]),
    )
    .await;
    assert_eq!(answer["results"], 2);
    assert_eq!(app.subscriber("second@x.com").await, Value::Null);
    assert_eq!(app.subscriber("third@x.com").await, Value::Null);
    assert_eq!(app.rows(Table::Events).await, 1);
    assert_eq!(app.rows(Table::Subscribers).await, 1);
}

#[tokio::test]
async fn every_audience_write_refuses_malformed_and_oversized_bodies_and_stores_nothing() {
    let app = TestApp::spawn().await;
    let over = |limit: usize| format!(r#"{{"x":"{}"}}"#, "y".repeat(limit + 1));
    let (huge, huge_batch) = (over(1024 * 1024), over(16 * 1024 * 1024));
    for path in [
        "/api/v1/fetch/subscribers",
        "/api/v1/fetch/tags",
        "/api/v1/fetch/fields",
        COMMANDS,
        SUBSCRIBERS,
        EVENTS,
    ] {
        let malformed = app.send_raw(Method::POST, path, "{\"oops\":").await;
        assert_eq!(malformed.status(), StatusCode::BAD_REQUEST, "{path}");
        let body: Value = malformed.json().await.unwrap();
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .starts_with("Malformed JSON"),
            "{path}"
        );
        let body = if path.starts_with("/api/v1/batch/") {
            huge_batch.clone()
        } else {
            huge.clone()
        };
        let oversized = app.send_raw(Method::POST, path, body).await;
        assert_eq!(oversized.status(), StatusCode::PAYLOAD_TOO_LARGE, "{path}");
        let not_object = app.send_raw(Method::POST, path, "[1, 2]").await;
        assert_invalid(not_object, &[("body", "must be a JSON object")]).await;
    }
    for table in [
        Table::Subscribers,
        Table::Tags,
        Table::Fields,
        Table::Events,
    ] {
        assert_eq!(app.rows(table).await, 0, "{table:?}");
    }
}

#[tokio::test]
async fn concurrent_batches_each_get_their_own_counts() {
    let app = std::sync::Arc::new(TestApp::spawn().await);
    let mut tasks = Vec::new();
    for batch in 0..16 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let mut events: Vec<Value> = (0..50)
                .map(|i| json!({"type": "t", "email": format!("b{batch}-{i}@x.com")}))
                .collect();
            if batch % 4 == 0 {
                events.push(json!({"type": "t", "email": "broken"}));
            }
            let answer = track(&app, json!(events)).await;
            (batch, answer)
        }));
    }
    for task in tasks {
        let (batch, answer) = task.await.unwrap();
        let failed = u64::from(batch % 4 == 0);
        assert_eq!(answer["results"], 50, "{batch}: {answer}");
        assert_eq!(answer["failed"], failed, "{batch}: {answer}");
        if failed == 1 {
            assert_eq!(answer["errors"][0]["index"], 50);
        }
    }
    assert_eq!(app.rows(Table::Events).await, 16 * 50);
    assert_eq!(app.rows(Table::Subscribers).await, 16 * 50);
}

const TAGS: &str = "/api/v1/fetch/tags";

/// The site's tags as `GET /fetch/tags` lists them: (name, id).
async fn tags_of(app: &TestApp, site: &TestSite) -> Vec<(String, String)> {
    let listed: Value = app
        .as_site(site, Method::GET, TAGS)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["attributes"]["name"].as_str().unwrap().to_owned(),
                t["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The id of the site's tag of this name.
async fn tag_id(app: &TestApp, site: &TestSite, name: &str) -> String {
    tags_of(app, site)
        .await
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no tag {name:?}"))
        .1
}

/// `DELETE /fetch/tags/{id}` as the Node SDK sends it: `site_uuid` and the
/// name in the body, none in the query string.
async fn delete_tag(app: &TestApp, site: &TestSite, id: &str, body: Value) -> reqwest::Response {
    let mut body = body;
    body["site_uuid"] = json!(site.uuid);
    app.bare(Method::DELETE, &format!("{TAGS}/{id}"))
        .basic_auth(&site.publishable_key, Some(&site.secret_key))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// (type, reason, email) of each of a segment's changes, oldest first.
async fn segment_changes(app: &TestApp, id: &str) -> Vec<(String, String, String)> {
    let body: Value = app
        .get(&format!("/api/v1/fetch/segments/{id}/changes?limit=100"))
        .await
        .json()
        .await
        .unwrap();
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["type"].as_str().unwrap().to_owned(),
                c["reason"].as_str().unwrap().to_owned(),
                c["subscriber"]["email"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn segment_count(app: &TestApp, id: &str) -> i64 {
    let stats: Value = app
        .get(&format!("/api/v1/stats/segment?segment_id={id}"))
        .await
        .json()
        .await
        .unwrap();
    stats["user_count"].as_i64().unwrap()
}

#[tokio::test]
async fn deleting_a_tag_takes_it_off_every_subscriber_and_the_site_and_segments_follow() {
    let app = TestApp::spawn().await;
    let site_id = app.site_id(&app.site).await;
    app.state.live.resident(site_id).await.unwrap();
    results(
        app.send_json(
            Method::POST,
            SUBSCRIBERS,
            &json!({"subscribers": [
                {"email": "ann@example.com", "tags": "lead,vip"},
                {"email": "bob@example.com", "tags": "lead"},
                {"email": "cy@example.com", "tags": "vip"},
            ]}),
        )
        .await,
    )
    .await;
    let leads = app
        .create_segment("Leads", json!({"tag": {"has": "lead"}}))
        .await;
    let leads = leads["id"].as_str().unwrap().to_owned();
    let webhook: Value = app
        .send_json(
            Method::POST,
            "/api/v1/fetch/webhooks",
            &json!({"webhook": {"url": "https://1.1.1.1/hook", "segment_ids": [leads]}}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(segment_count(&app, &leads).await, 2);
    let lead = tag_id(&app, &app.site, "lead").await;
    let vip = tag_id(&app, &app.site, "vip").await;

    // The SDK's body names the tag, in any case.
    let deleted = delete_tag(&app, &app.site, &lead, json!({"tag": {"name": "LEAD"}})).await;
    assert_json(deleted, StatusCode::OK, json!({"message": "Tag deleted"})).await;

    let names: Vec<String> = tags_of(&app, &app.site)
        .await
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(names, ["vip"]);
    let held = |subscriber: Value| subscriber["attributes"]["cached_tag_ids"].clone();
    assert_eq!(held(app.subscriber("ann@example.com").await), json!([vip]));
    assert_eq!(held(app.subscriber("bob@example.com").await), json!([]));
    assert_eq!(held(app.subscriber("cy@example.com").await), json!([vip]));

    // This server's snapshot, the journal and webhooks follow: both leads
    // left, for a change of data.
    assert_eq!(segment_count(&app, &leads).await, 0);
    let left = |email: &str| {
        (
            "segment.member_removed".to_owned(),
            "data".to_owned(),
            email.to_owned(),
        )
    };
    assert_eq!(
        segment_changes(&app, &leads).await,
        [left("ann@example.com"), left("bob@example.com")]
    );
    corral::webhooks::tracker::Tracker::new(app.store.clone())
        .tick(app.clock.as_ref())
        .await
        .unwrap();
    let path = format!(
        "/api/v1/fetch/webhooks/{}/deliveries",
        webhook["data"]["id"].as_str().unwrap()
    );
    let deliveries: Value = app.get(&path).await.json().await.unwrap();
    let mut told: Vec<(String, String, String)> = deliveries["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| &d["attributes"]["notification"])
        .map(|n| {
            (
                n["type"].as_str().unwrap().to_owned(),
                n["reason"].as_str().unwrap().to_owned(),
                n["subscriber"]["email"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    told.sort();
    assert_eq!(told, [left("ann@example.com"), left("bob@example.com")]);

    // A server that reads the site afresh finds the same.
    let fresh = TestApp::spawn_on(app.database_url.clone()).await;
    let counted: Value = fresh
        .as_site(
            &app.site,
            Method::GET,
            &format!("/api/v1/stats/segment?segment_id={leads}"),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(counted["user_count"], 0);
    assert_eq!(tags_of(&fresh, &app.site).await.len(), 1);

    // Gone: its id is no tag any more; the name makes a new tag.
    assert_json(
        delete_tag(&app, &app.site, &lead, json!({})).await,
        StatusCode::NOT_FOUND,
        json!({"error": "Tag not found"}),
    )
    .await;
    results(
        app.send_json(
            Method::POST,
            COMMANDS,
            &json!({"command": {"command": "add_tag", "email": "bob@example.com", "query": "lead"}}),
        )
        .await,
    )
    .await;
    assert_ne!(tag_id(&app, &app.site, "lead").await, lead);
    assert_eq!(segment_count(&app, &leads).await, 1);
}

#[tokio::test]
async fn a_tag_delete_refuses_other_sites_tags_unknown_ids_and_another_name() {
    let app = TestApp::spawn().await;
    let other = app.new_site().await;
    for (site, email) in [(&app.site, "ann@example.com"), (&other, "ann@example.com")] {
        let response = app
            .as_site(site, Method::POST, COMMANDS)
            .json(&json!({"command": {"command": "add_tag", "email": email, "query": "vip"}}))
            .send()
            .await
            .unwrap();
        results(response).await;
    }
    let mine = tag_id(&app, &app.site, "vip").await;
    let theirs = tag_id(&app, &other, "vip").await;
    let not_found = json!({"error": "Tag not found"});

    // Another site's tag, and ids that are no tag: 404, the same answer.
    for id in [theirs.as_str(), "999999", "0", "-1", "abc", "1e3"] {
        assert_json(
            delete_tag(&app, &app.site, id, json!({})).await,
            StatusCode::NOT_FOUND,
            not_found.clone(),
        )
        .await;
    }
    // A body naming another tag: no tag of that id and name, nothing
    // deleted; one not read as a name: 422.
    assert_json(
        delete_tag(&app, &app.site, &mine, json!({"tag": {"name": "lead"}})).await,
        StatusCode::NOT_FOUND,
        not_found.clone(),
    )
    .await;
    assert_invalid(
        delete_tag(&app, &app.site, &mine, json!({"tag": {"name": 5}})).await,
        &[("name", "must be a string")],
    )
    .await;
    // A tag object without its name, as the schema says.
    assert_invalid(
        delete_tag(&app, &app.site, &mine, json!({"tag": {}})).await,
        &[("name", "can't be blank")],
    )
    .await;
    assert_invalid(
        delete_tag(&app, &app.site, &mine, json!({"tag": "vip"})).await,
        &[("tag", "must be a JSON object")],
    )
    .await;
    for site in [&app.site, &other] {
        assert_eq!(tags_of(&app, site).await.len(), 1);
        let ann: Value = app
            .as_site(
                site,
                Method::GET,
                "/api/v1/fetch/subscribers?email=ann@example.com",
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            ann["data"]["attributes"]["cached_tag_ids"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
    }
    // With no body at all (as curl sends it), the site_uuid in the query
    // string: deleted.
    let deleted = app
        .request(Method::DELETE, &format!("{TAGS}/{mine}"))
        .send()
        .await
        .unwrap();
    assert_json(deleted, StatusCode::OK, json!({"message": "Tag deleted"})).await;
    assert!(tags_of(&app, &app.site).await.is_empty());
    assert_eq!(
        tags_of(&app, &other).await.len(),
        1,
        "the other site's tag went too"
    );
}
