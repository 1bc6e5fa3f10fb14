//! Live evaluation through the API: Bento's segment stats, match with its
//! reasons, members by cursor, preview, and the checks made when a query is
//! saved. The audience is small and made by hand, so every answer below was
//! worked out by hand.

use crate::helpers::{START_MS, TestApp, assert_invalid, assert_json};
use corral::http::HttpSettings;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const DAY: i64 = 86_400_000;
const SEGMENTS: &str = "/api/v1/fetch/segments";

fn days_ago(days: i64) -> String {
    corral::clock::format_ms(START_MS - days * DAY)
}

async fn app() -> TestApp {
    TestApp::spawn_with(HttpSettings {
        rate_limit_per_minute: 0,
        stats_rate_limit_per_hour: 0,
        ..HttpSettings::default()
    })
    .await
}

fn purchase(email: &str, key: &str, amount: i64, days: i64) -> Value {
    json!({"type": "$purchase", "email": email, "date": days_ago(days),
           "details": {"unique": {"key": key}, "value": {"currency": "USD", "amount": amount}}})
}

/// ann: vip, pro, 120 people; bought 300 (5 days ago) and 250 (40 days ago);
/// logged in 1, 2 and 3 days ago.
/// bob: lead, free; bought 99 (10 days ago); logged in and signed up (from
/// Ads, on a trial) 100 days ago.
/// cy@gmail.com: team; unsubscribed.
/// dee@gmail.com: customer; bought 600 (89 days ago) and 1000 (91 days ago).
async fn audience(app: &TestApp) {
    let response = app
        .send_json(
            Method::POST,
            "/api/v1/batch/subscribers",
            &json!({"subscribers": [
                {"email": "ann@example.com", "tags": "vip", "plan": "pro", "company_size": 120},
                {"email": "bob@example.com", "tags": "lead", "plan": "free"},
                {"email": "cy@gmail.com", "plan": "team"},
                {"email": "dee@gmail.com", "tags": "customer"},
            ]}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = app
        .send_json(
            Method::POST,
            "/api/v1/batch/events",
            &json!({"events": [
                purchase("ann@example.com", "o1", 300, 5),
                purchase("ann@example.com", "o2", 250, 40),
                {"type": "$login", "email": "ann@example.com", "date": days_ago(1)},
                {"type": "$login", "email": "ann@example.com", "date": days_ago(2)},
                {"type": "$login", "email": "ann@example.com", "date": days_ago(3)},
                purchase("bob@example.com", "o3", 99, 10),
                {"type": "$login", "email": "bob@example.com", "date": days_ago(100)},
                {"type": "$signup", "email": "bob@example.com", "date": days_ago(100),
                 "details": {"source": "Ads", "trial": true, "score": 2.5, "plan": {"id": 7}, "note": null}},
                {"type": "$unsubscribe", "email": "cy@gmail.com", "date": days_ago(7)},
                purchase("dee@gmail.com", "o4", 600, 89),
                purchase("dee@gmail.com", "o5", 1000, 91),
            ]}),
        )
        .await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["failed"], 0, "{body}");
}

async fn stats(app: &TestApp, id: &str) -> Value {
    let response = app
        .get(&format!("/api/v1/stats/segment?segment_id={id}"))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

fn id(segment: &Value) -> String {
    segment["id"].as_str().unwrap().to_owned()
}

fn counts(users: i64, subscribed: i64) -> Value {
    json!({"user_count": users, "subscriber_count": subscribed, "unsubscriber_count": users - subscribed})
}

#[tokio::test]
async fn segment_stats_are_live_and_follow_the_clock() {
    let app = app().await;
    audience(&app).await;
    let spenders = app
        .create_segment(
            "Big spenders",
            json!({"groups": [{"filters": [{"event": {"type": "$purchase",
                "when": {"within_last": {"days": 90}},
                "sum": {"of": "value.amount", "more_than": 500}}}]}]}),
        )
        .await;
    assert_eq!(stats(&app, &id(&spenders)).await, counts(2, 2));

    // Two days later dee's 600 is 91 days old: out of the window.
    app.clock.advance_ms(2 * DAY);
    assert_eq!(stats(&app, &id(&spenders)).await, counts(1, 1));

    // A new purchase counts at once.
    let response = app
        .send_json(
            Method::POST,
            "/api/v1/batch/events",
            &json!({"events": [purchase("bob@example.com", "o6", 1000, 0)]}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(stats(&app, &id(&spenders)).await, counts(2, 2));

    let gmail = app
        .create_segment("Gmail", json!({"email": {"domain": "GMAIL.com"}}))
        .await;
    assert_eq!(stats(&app, &id(&gmail)).await, counts(2, 1));
    let everyone = app.create_segment("Everyone", json!({})).await;
    assert_eq!(stats(&app, &id(&everyone)).await, counts(4, 3));
}

#[tokio::test]
async fn every_construct_counts_what_was_worked_out_by_hand() {
    let app = app().await;
    audience(&app).await;
    let cases = [
        (json!({"tag": {"any_of": ["VIP", "customer"]}}), 2),
        (json!({"tag": {"none_of": ["vip", "lead", "customer"]}}), 1),
        (json!({"field": {"key": "Plan", "in": ["pro", "team"]}}), 2),
        (
            json!({"field": {"key": "company_size", "at_least": 100}}),
            1,
        ),
        (json!({"field": {"key": "plan", "exists": false}}), 1),
        (json!({"subscribed": false}), 1),
        (json!({"created": {"within_last": {"hours": 1}}}), 4),
        (
            json!({"event": {"type": "$login", "when": {"within_last": {"days": 30}}, "count": {"at_least": 3}}}),
            1,
        ),
        (
            json!({"not": {"event": {"type": "$login", "when": {"within_last": {"days": 30}}}}}),
            3,
        ),
        (
            json!({"event": {"type": "$purchase", "count": {"equals": 0}}}),
            1,
        ),
        (
            json!({"event": {"type": "$purchase", "where": {"value.amount": {"more_than": 500}}}}),
            1,
        ),
        (
            json!({"event": {"type": "$purchase", "first": {"within_last": {"days": 30}}}}),
            1,
        ),
        (
            json!({"event": {"type": "$purchase", "last": {"older_than": {"days": 30}}}}),
            1,
        ),
        (
            json!({"event": {"type": "$signup", "where": {"source": {"equals": "ADS"}, "trial": {"equals": true}, "score": {"more_than": 2}}}}),
            1,
        ),
        (
            json!({"event": {"type": "$signup", "where": {"trial": {"equals": 1}}}}),
            0,
        ),
        (
            json!({"event": {"type": "$signup", "where": {"plan.id": {"equals": 7}, "plan": {"exists": true}, "note": {"exists": true}}}}),
            1,
        ),
        (
            json!({"event": {"type": "$signup", "where": {"note": {"not_equals": "x"}}}}),
            0,
        ),
        (
            json!({"event": {"where": {"value.currency": {"equals": "usd"}}, "count": {"at_least": 2}}}),
            2,
        ),
        (
            json!({"any": [{"tag": {"has": "lead"}}, {"all": [{"subscribed": false}, {"field": {"key": "plan", "equals": "TEAM"}}]}]}),
            2,
        ),
    ];
    for (query, expected) in cases {
        let response = app
            .send_json(
                Method::POST,
                &format!("{SEGMENTS}/preview"),
                &json!({"visitor_event_query": query}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK, "{query}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["data"]["user_count"], expected, "{query}");
    }
}

#[tokio::test]
async fn segment_stats_refuse_what_they_cannot_answer() {
    let app = app().await;
    audience(&app).await;
    let response = app.get("/api/v1/stats/segment").await;
    assert_invalid(response, &[("segment_id", "is required")]).await;
    for unknown in ["999", "abc", "-1"] {
        let response = app
            .get(&format!("/api/v1/stats/segment?segment_id={unknown}"))
            .await;
        assert_json(
            response,
            StatusCode::NOT_FOUND,
            json!({"error": "Segment not found"}),
        )
        .await;
    }
    let other = app.new_site().await;
    let theirs = app.create_segment_for(&other, "theirs", json!({})).await;
    let response = app
        .get(&format!("/api/v1/stats/segment?segment_id={}", id(&theirs)))
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    let foreign = app
        .create_segment("Bento's own", json!({"foreign": {"conditions": [1, 2]}}))
        .await;
    let response = app
        .get(&format!(
            "/api/v1/stats/segment?segment_id={}",
            id(&foreign)
        ))
        .await;
    assert_invalid(
        response,
        &[(
            "visitor_event_query",
            "the query is foreign ({\"foreign\": …}): Corral keeps it as written but does not evaluate it",
        )],
    )
    .await;
}

#[tokio::test]
async fn match_says_why_for_every_condition() {
    let app = app().await;
    audience(&app).await;
    let segment = app
        .create_segment(
            "VIP buyers",
            json!({"groups": [
                {"filters": [{"tag": {"has": "vip"}}, {"event": {"type": "$purchase", "sum": {"of": "value.amount", "more_than": 500}}}]},
                {"filters": [{"field": {"key": "plan", "equals": "team"}}]}
            ]}),
        )
        .await;
    let path = format!("{SEGMENTS}/{}/match", id(&segment));
    let response = app
        .send_json(Method::POST, &path, &json!({"email": "ANN@example.com"}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let data = &body["data"];
    assert_eq!(data["matched"], true);
    assert_eq!(data["subscriber"]["attributes"]["email"], "ann@example.com");
    let groups = &data["explanation"];
    assert_eq!(groups["condition"], "groups");
    assert_eq!(groups["children"][0]["at"], "/groups/0");
    assert_eq!(groups["children"][0]["matched"], true);
    let filters = &groups["children"][0]["children"];
    assert_eq!(filters[0]["at"], "/groups/0/filters/0");
    assert_eq!(filters[0]["facts"], json!({"tags": ["vip"]}));
    assert_eq!(filters[1]["at"], "/groups/0/filters/1");
    assert_eq!(filters[1]["facts"]["count"], 2);
    assert_eq!(filters[1]["facts"]["sum"], 550.0);
    assert_eq!(groups["children"][1]["matched"], false);
    assert_eq!(
        groups["children"][1]["children"][0]["facts"],
        json!({"present": true, "value": "pro"})
    );

    // By uuid; cy matches through the second group.
    let cy: Value = app
        .get("/api/v1/fetch/subscribers?email=cy@gmail.com")
        .await
        .json()
        .await
        .unwrap();
    let uuid = cy["data"]["attributes"]["uuid"].as_str().unwrap();
    let body: Value = app
        .send_json(Method::POST, &path, &json!({"uuid": uuid}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["data"]["matched"], true);
    assert_eq!(body["data"]["explanation"]["children"][0]["matched"], false);

    let body: Value = app
        .send_json(Method::POST, &path, &json!({"email": "bob@example.com"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["data"]["matched"], false);

    // Nobody, and another site's subscriber, are the same 404.
    let other = app.new_site().await;
    app.as_site(&other, Method::POST, "/api/v1/batch/subscribers")
        .json(&json!({"subscribers": [{"email": "theirs@example.com"}]}))
        .send()
        .await
        .unwrap();
    for email in ["nobody@example.com", "theirs@example.com"] {
        let response = app
            .send_json(Method::POST, &path, &json!({"email": email}))
            .await;
        assert_json(
            response,
            StatusCode::NOT_FOUND,
            json!({"error": "Subscriber not found"}),
        )
        .await;
    }
    let response = app.send_json(Method::POST, &path, &json!({})).await;
    assert_invalid(response, &[("email", "or uuid is required")]).await;
    let response = app
        .send_json(Method::POST, &path, &json!({"email": 5, "colour": "red"}))
        .await;
    assert_invalid(
        response,
        &[
            ("colour", "is not a known field"),
            ("email", "must be a string"),
        ],
    )
    .await;
    let response = app.send_raw(Method::POST, &path, "{oops").await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let response = app
        .send_json(
            Method::POST,
            &format!("{SEGMENTS}/999/match"),
            &json!({"email": "ann@example.com"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

async fn page(app: &TestApp, path: &str) -> (Vec<String>, Value) {
    let response = app.get(path).await;
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    let body: Value = response.json().await.unwrap();
    let emails = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["attributes"]["email"].as_str().unwrap().to_owned())
        .collect();
    (emails, body["meta"].clone())
}

#[tokio::test]
async fn members_come_in_pages_with_a_stable_cursor() {
    let app = app().await;
    audience(&app).await;
    let everyone = app.create_segment("Everyone", json!({})).await;
    let base = format!("{SEGMENTS}/{}/members", id(&everyone));
    let (first, meta) = page(&app, &format!("{base}?limit=2")).await;
    assert_eq!(first, ["ann@example.com", "bob@example.com"]);
    assert_eq!(meta["count"], 4);
    let cursor = meta["next_cursor"].as_str().unwrap().to_owned();

    // A subscriber who joins between pages is on a page still to come, and
    // nobody already seen comes again.
    app.send_json(
        Method::POST,
        "/api/v1/batch/subscribers",
        &json!({"subscribers": [{"email": "zed@example.com"}]}),
    )
    .await;
    let (second, meta) = page(&app, &format!("{base}?limit=2&cursor={cursor}")).await;
    assert_eq!(second, ["cy@gmail.com", "dee@gmail.com"]);
    assert_eq!(meta["count"], 5);
    let cursor = meta["next_cursor"].as_str().unwrap().to_owned();
    let (third, meta) = page(&app, &format!("{base}?limit=2&cursor={cursor}")).await;
    assert_eq!(third, ["zed@example.com"]);
    assert_eq!(meta["next_cursor"], Value::Null);

    let (all, meta) = page(&app, &base).await;
    assert_eq!(all.len(), 5);
    assert_eq!(meta["next_cursor"], Value::Null);

    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=x", "limit"),
        ("cursor=bogus", "cursor"),
    ] {
        let response = app.get(&format!("{base}?{query}")).await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{query}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["errors"][0]["field"], field);
    }
}

#[tokio::test]
async fn preview_counts_and_samples_or_points_at_every_problem() {
    let app = app().await;
    audience(&app).await;
    let path = format!("{SEGMENTS}/preview");
    let response = app
        .send_json(
            Method::POST,
            &path,
            &json!({"visitor_event_query": {"email": {"ends_with": "@gmail.com"}}, "sample": 1}),
        )
        .await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["user_count"], 2);
    assert_eq!(body["data"]["unsubscriber_count"], 1);
    assert_eq!(body["data"]["sample"].as_array().unwrap().len(), 1);
    assert_eq!(
        body["data"]["sample"][0]["attributes"]["email"],
        "cy@gmail.com"
    );

    let response = app
        .send_json(
            Method::POST,
            &path,
            &json!({"visitor_event_query": {"all": [
                {"event": {"type": "$login", "count": {"gte": 3}}},
                {"tag": {"has": ""}},
                {"segment": {"member_of": "77"}}
            ]}}),
        )
        .await;
    assert_invalid(
        response,
        &[
            (
                "visitor_event_query/all/0/event/count/gte",
                "unknown operator \"gte\"; the operators here are equals, not_equals, more_than, at_least, less_than, at_most",
            ),
            (
                "visitor_event_query/all/1/tag/has",
                "is not a tag name: can't be blank",
            ),
        ],
    )
    .await;
    let response = app
        .send_json(
            Method::POST,
            &path,
            &json!({"visitor_event_query": {"segment": {"member_of": "77"}}}),
        )
        .await;
    assert_invalid(
        response,
        &[(
            "visitor_event_query/segment/member_of",
            "refers to segment 77, which does not exist or is discarded",
        )],
    )
    .await;
    let response = app
        .send_json(
            Method::POST,
            &path,
            &json!({"visitor_event_query": {"foreign": {}}}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let response = app
        .send_json(Method::POST, &path, &json!({"sample": 500}))
        .await;
    assert_invalid(
        response,
        &[
            ("sample", "must be a whole number from 0 to 100"),
            ("visitor_event_query", "is required"),
        ],
    )
    .await;
}

#[tokio::test]
async fn saving_refuses_bad_queries_with_every_problem_and_changes_nothing() {
    let app = app().await;
    let before = app.snapshot().await;
    let response = app
        .send_json(
            Method::POST,
            SEGMENTS,
            &json!({"segment": {"name": "bad", "visitor_event_query": {"groups": [{"filters": [
                {"field": {"key": "plan", "contains": "p", "more_than": 1}},
                {"created": {"within_last": {"fortnights": 2}}},
                {"colour": "red"}
            ]}]}}}),
        )
        .await;
    assert_invalid(
        response,
        &[
            (
                "visitor_event_query/groups/0/filters/0/field",
                "mixes text (contains, starts_with, ends_with) and number (more_than, at_least, less_than, at_most) operators: a value has one type, so it could never pass them all",
            ),
            (
                "visitor_event_query/groups/0/filters/1/created/within_last/fortnights",
                "unknown operator \"fortnights\"; the operators here are hours, days, weeks, months",
            ),
            (
                "visitor_event_query/groups/0/filters/2/colour",
                "unknown condition \"colour\"; the conditions are all, any, not, groups, email, subscribed, created, tag, field, event, segment, sample. To keep a query Corral does not evaluate, save it as {\"foreign\": …}",
            ),
        ],
    )
    .await;
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn references_must_name_kept_evaluable_segments_without_cycles() {
    let app = app().await;
    audience(&app).await;
    let vip = app
        .create_segment("VIP", json!({"tag": {"has": "vip"}}))
        .await;
    let vip_id = id(&vip);
    let subscribed_vip = app
        .create_segment(
            "Subscribed VIP",
            json!({"all": [{"segment": {"member_of": vip_id}}, {"subscribed": true}]}),
        )
        .await;
    assert_eq!(stats(&app, &id(&subscribed_vip)).await, counts(1, 1));
    let not_vip = app
        .create_segment(
            "Not VIP",
            json!({"segment": {"not_member_of": vip_id.parse::<i64>().unwrap()}}),
        )
        .await;
    assert_eq!(stats(&app, &id(&not_vip)).await, counts(3, 2));

    // VIP → Subscribed VIP → VIP would be a cycle; VIP → VIP too.
    let response = app
        .send_json(
            Method::PATCH,
            &format!("{SEGMENTS}/{vip_id}"),
            &json!({"segment": {"visitor_event_query": {"any": [
                {"segment": {"member_of": id(&subscribed_vip)}},
                {"segment": {"member_of": vip_id}}
            ]}}}),
        )
        .await;
    assert_invalid(
        response,
        &[
            (
                "visitor_event_query/any/0/segment/member_of",
                &format!(
                    "refers to segment {}, which leads back to this segment (cycle {vip_id} → {} → {vip_id})",
                    id(&subscribed_vip),
                    id(&subscribed_vip)
                ),
            ),
            (
                "visitor_event_query/any/1/segment/member_of",
                &format!("refers to segment {vip_id}, the segment being saved: a segment cannot contain itself"),
            ),
        ],
    )
    .await;

    // A referenced segment cannot be discarded.
    let response = app
        .request(Method::DELETE, &format!("{SEGMENTS}/{vip_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["field"], "id");
    assert!(app.listed_names().await.contains(&"VIP".to_owned()));

    // Discarded, foreign and other sites' segments cannot be referenced.
    let gone = app.create_segment("Gone", json!({})).await;
    app.request(Method::DELETE, &format!("{SEGMENTS}/{}", id(&gone)))
        .send()
        .await
        .unwrap();
    let foreign = app
        .create_segment("Foreign", json!({"foreign": {"x": 1}}))
        .await;
    let other = app.new_site().await;
    let theirs = app.create_segment_for(&other, "Theirs", json!({})).await;
    let response = app
        .send_json(
            Method::POST,
            SEGMENTS,
            &json!({"segment": {"name": "refs", "visitor_event_query": {"any": [
                {"segment": {"member_of": id(&gone)}},
                {"segment": {"member_of": id(&foreign)}},
                {"segment": {"member_of": id(&theirs)}}
            ]}}}),
        )
        .await;
    assert_invalid(
        response,
        &[
            (
                "visitor_event_query/any/0/segment/member_of",
                &format!(
                    "refers to segment {}, which does not exist or is discarded",
                    id(&gone)
                ),
            ),
            (
                "visitor_event_query/any/1/segment/member_of",
                &format!(
                    "refers to segment {}, whose query is foreign and cannot be evaluated",
                    id(&foreign)
                ),
            ),
            (
                "visitor_event_query/any/2/segment/member_of",
                &format!(
                    "refers to segment {}, which does not exist or is discarded",
                    id(&theirs)
                ),
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn the_query_schema_is_served() {
    let app = app().await;
    let response = app
        .bare(Method::GET, "/api/query-language.schema.json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "application/schema+json"
    );
    let schema: Value = response.json().await.unwrap();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
}

#[tokio::test]
async fn a_snapshot_refreshed_after_writes_answers_what_a_fresh_one_does() {
    let app = app().await;
    audience(&app).await;
    let queries = [
        json!({}),
        json!({"event": {"type": "$purchase", "sum": {"of": "value.amount", "more_than": 500}}}),
        json!({"event": {"type": "$purchase", "where": {"value.amount": {"at_least": 600}}}}),
        json!({"event": {"type": "$login", "count": {"at_least": 2}}}),
        json!({"all": [{"tag": {"has": "vip"}}, {"subscribed": true}]}),
    ];
    let mut ids = Vec::new();
    for (i, q) in queries.iter().enumerate() {
        ids.push(id(&app.create_segment(&format!("q{i}"), q.clone()).await));
    }
    let writes = [
        json!({"events": [purchase("bob@example.com", "r1", 700, 1),
                          {"type": "$login", "email": "eve@example.com", "date": days_ago(1)}]}),
        json!({"events": [{"type": "$login", "email": "eve@example.com", "date": days_ago(2)},
                          {"type": "$tag", "email": "eve@example.com", "details": {"tag": "vip"}},
                          {"type": "$unsubscribe", "email": "ann@example.com"}]}),
        json!({"events": [purchase("eve@example.com", "r2", 1000, 0)]}),
    ];
    for write in writes.iter().map(Some).chain([None]) {
        for (q, id) in queries.iter().zip(&ids) {
            // The server's snapshot was read before the last write and is
            // brought up to date; a new evaluator reads everything afresh.
            let served = stats(&app, id).await;
            let fresh = corral::live::Live::new(app.store.clone())
                .evaluate(
                    1,
                    &corral_core::query::parse(&q.to_string()).unwrap(),
                    START_MS,
                )
                .await
                .unwrap()
                .counts();
            assert_eq!(served, serde_json::to_value(fresh).unwrap(), "{q}");
        }
        if let Some(write) = write {
            let response = app
                .send_json(Method::POST, "/api/v1/batch/events", write)
                .await;
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["failed"], 0, "{body}");
        }
    }
    let everyone = stats(&app, &ids[0]).await;
    assert_eq!(everyone, counts(5, 3));
}

#[tokio::test]
async fn evaluation_routes_refuse_broken_bodies_and_other_sites() {
    let app = app().await;
    audience(&app).await;
    let preview = format!("{SEGMENTS}/preview");
    let response = app
        .send_raw(Method::POST, &preview, "{\"visitor_event_query\":")
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let response = app.send_raw(Method::POST, &preview, "[1]").await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let huge = format!(
        r#"{{"visitor_event_query":{{"foreign":"{}"}}}}"#,
        "x".repeat(1024 * 1024)
    );
    let response = app.send_raw(Method::POST, &preview, huge).await;
    assert_json(
        response,
        StatusCode::PAYLOAD_TOO_LARGE,
        json!({"error": "Payload Too Large"}),
    )
    .await;
    let response = app
        .send_json(
            Method::POST,
            &preview,
            &json!({"visitor_event_query": [1], "sample": "ten"}),
        )
        .await;
    assert_invalid(
        response,
        &[
            ("sample", "must be a whole number from 0 to 100"),
            ("visitor_event_query", "must be a JSON object"),
        ],
    )
    .await;

    // Another site's keys see none of this site's segments or subscribers.
    let mine = app.create_segment("Mine", json!({})).await;
    let other = app.new_site().await;
    for (method, path, body) in [
        (
            Method::GET,
            format!("/api/v1/stats/segment?segment_id={}", id(&mine)),
            None,
        ),
        (
            Method::POST,
            format!("{SEGMENTS}/{}/match", id(&mine)),
            Some(json!({"email": "ann@example.com"})),
        ),
        (
            Method::GET,
            format!("{SEGMENTS}/{}/members", id(&mine)),
            None,
        ),
    ] {
        let mut request = app.as_site(&other, method, &path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        assert_json(
            response,
            StatusCode::NOT_FOUND,
            json!({"error": "Segment not found"}),
        )
        .await;
    }
    let response = app
        .as_site(&other, Method::POST, &preview)
        .json(&json!({"visitor_event_query": {}}))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["data"]["user_count"], 0,
        "the other site has no subscribers"
    );
    let response = app
        .bare(
            Method::GET,
            &format!(
                "/api/v1/stats/segment?segment_id={}&site_uuid={}",
                id(&mine),
                app.site.uuid
            ),
        )
        .basic_auth(&other.publishable_key, Some(&other.secret_key))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "another site's keys on this site"
    );
    // Two Authorization headers, one of them valid: whose request is it? Nobody's.
    let response = app
        .request(
            Method::GET,
            &format!("/api/v1/stats/segment?segment_id={}", id(&mine)),
        )
        .basic_auth(&other.publishable_key, Some(&other.secret_key))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "two sets of credentials"
    );
}

#[tokio::test]
async fn a_query_too_expensive_to_evaluate_is_refused_saying_by_how_much() {
    let app = TestApp::spawn_with(HttpSettings {
        rate_limit_per_minute: 0,
        stats_rate_limit_per_hour: 0,
        eval_limits: corral_core::engine::cost::Budget { max: 30, heavy: 10 },
        ..HttpSettings::default()
    })
    .await;
    audience(&app).await;
    // More different event tests than any query may hold, whatever the data.
    let many: Vec<Value> = (0..65)
        .map(|i| json!({"event": {"where": {"url": {"contains": format!("zz{i}")}}}}))
        .collect();
    let response = app
        .send_json(
            Method::POST,
            "/api/v1/fetch/segments",
            &json!({"segment": {"name": "many", "visitor_event_query": {"any": many}}}),
        )
        .await;
    assert_invalid(
        response,
        &[(
            "visitor_event_query",
            "has 65 different event tests; a query holds at most 64 (each is a pass over events; the same test written twice counts once)",
        )],
    )
    .await;

    // Over the budget for this audience: preview says so...
    let costly = json!({"all": [{"event": {"where": {"url": {"exists": true}}}},
                                {"event": {"where": {"url": {"exists": false}}}}]});
    let response = app
        .send_json(
            Method::POST,
            "/api/v1/fetch/segments/preview",
            &json!({"visitor_event_query": costly}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = response.json().await.unwrap();
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert_eq!(body["errors"][0]["field"], "visitor_event_query");
    assert!(
        message.starts_with("is too expensive to evaluate: it would examine about "),
        "{message}"
    );
    assert!(
        message.contains("2 event test(s)") && message.contains("the 30 allowed"),
        "{message}"
    );
    // ...and so does saving, now that the server holds this audience.
    let response = app
        .send_json(
            Method::POST,
            "/api/v1/fetch/segments",
            &json!({"segment": {"name": "costly", "visitor_event_query": costly}}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(app.listed_names().await.is_empty());
    // A cheap query of the same site is answered as ever.
    let cheap = app
        .create_segment("cheap", json!({"subscribed": true}))
        .await;
    let counts = stats(&app, &id(&cheap)).await;
    assert!(counts["user_count"].as_i64().unwrap() > 0, "{counts}");
}
