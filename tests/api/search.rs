//! The subscribers' search (`GET /fetch/subscribers/search`): by the start
//! of an email or of a name field, or by a tag's whole name, in email
//! order, a page at a time; and the caller's site (`GET /fetch/site`).

use crate::helpers::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const SEARCH: &str = "/api/v1/fetch/subscribers/search";

async fn import(app: &TestApp, subscribers: Value) {
    let response = app
        .send_json(
            Method::POST,
            "/api/v1/batch/subscribers",
            &json!({ "subscribers": subscribers }),
        )
        .await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["failed"], 0, "{body}");
}

/// The answer to a search, which must succeed.
async fn search(app: &TestApp, query: &str) -> Value {
    let response = app.get(&format!("{SEARCH}?{query}")).await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{query}: {body}");
    body
}

/// The emails of a page, in its order.
fn emails(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["attributes"]["email"].as_str().unwrap().to_owned())
        .collect()
}

/// Every email a search finds, following `meta.next_cursor` page by page.
async fn every_page(app: &TestApp, q: &str, limit: usize) -> Vec<String> {
    let mut found = Vec::new();
    let mut cursor = String::new();
    for _ in 0..1000 {
        let page = search(
            app,
            &format!("q={}&limit={limit}&cursor={cursor}", urlencode(q)),
        )
        .await;
        let emails = emails(&page);
        assert!(emails.len() <= limit, "{page}");
        found.extend(emails);
        match page["meta"]["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => return found,
        }
    }
    panic!("the pages never end");
}

fn sorted(emails: &[&str]) -> Vec<String> {
    let mut emails: Vec<String> = emails.iter().map(|e| (*e).to_owned()).collect();
    emails.sort_by_key(|e| e.to_lowercase());
    emails
}

#[tokio::test]
async fn an_email_prefix_finds_the_emails_that_start_with_it_ignoring_case() {
    let app = TestApp::spawn().await;
    import(
        &app,
        json!([
            {"email": "Ann@Example.com"}, {"email": "annie@example.com"},
            {"email": "joann@example.com"}, {"email": "an@example.com"},
            {"email": "anna@example.org"}, {"email": "bob@example.com"},
            {"email": "ann\u{10FFFF}x@example.com"}, {"email": "ano@example.com"},
        ]),
    )
    .await;
    let found = emails(&search(&app, "q=ANN").await);
    assert_eq!(
        found,
        [
            "Ann@Example.com",
            "anna@example.org",
            "annie@example.com",
            "ann\u{10FFFF}x@example.com"
        ]
    );
    assert_eq!(
        emails(&search(&app, "q=ann%40example").await),
        ["Ann@Example.com"]
    );
    assert!(emails(&search(&app, "q=nn").await).is_empty());
    // Spaces around the text are not part of it.
    assert_eq!(
        emails(&search(&app, "q=%20%20BOB%20").await),
        ["bob@example.com"]
    );
}

#[tokio::test]
async fn a_name_field_finds_who_it_starts_with_on_the_name_fields_the_site_has() {
    let app = TestApp::spawn().await;
    import(
        &app,
        json!([
            {"email": "a@x.com", "first_name": "Grace", "last_name": "Hopper"},
            {"email": "b@x.com", "first_name": "Ada", "last_name": "Lovelace"},
            {"email": "c@x.com", "name": "grace o'malley"},
            {"email": "d@x.com", "nickname": "Grace"},
            {"email": "e@x.com", "name": 42},
            {"email": "f@x.com", "name": "O\"Brien \\ Éva"},
            {"email": "g@x.com", "name": "Élodie"},
            {"email": "h@x.com", "name": "Nul\u{0}", "company": {"name": "Acme"}},
            {"email": "i@x.com", "company_name": "Acme", "note": "x\u{0}"},
            {"email": "grace@x.com"},
        ]),
    )
    .await;
    // The first name, the last name or the name; then the email.
    assert_eq!(
        emails(&search(&app, "q=gRaCe").await),
        ["a@x.com", "c@x.com", "grace@x.com"]
    );
    assert_eq!(emails(&search(&app, "q=hop").await), ["a@x.com"]);
    assert_eq!(emails(&search(&app, "q=ada%20").await), ["b@x.com"]);
    // The start of the field, not of a word inside it.
    assert!(emails(&search(&app, "q=malley").await).is_empty());
    // Only text is a name.
    assert!(emails(&search(&app, "q=4").await).is_empty());
    // Quotes and backslashes are part of the name like any character;
    // case is ignored beyond A to Z too.
    let q = urlencode("o\"brien \\ é");
    assert_eq!(emails(&search(&app, &format!("q={q}")).await), ["f@x.com"]);
    // Case is ignored beyond A to Z too.
    for q in ["Élo", "éLO"] {
        assert_eq!(
            emails(&search(&app, &format!("q={}", urlencode(q))).await),
            ["g@x.com"],
            "{q}"
        );
    }
    // A name inside another field, or another key ending in `name`, is
    // not a name field.
    assert!(emails(&search(&app, "q=acme").await).is_empty());
    // A field holding NUL (which PostgreSQL's JSON cannot turn into text)
    // is read like any other.
    assert_eq!(emails(&search(&app, "q=nul").await), ["h@x.com"]);
}

#[tokio::test]
async fn a_name_is_found_behind_any_number_of_lookalikes_on_a_small_page() {
    let app = TestApp::spawn().await;
    // Fields that read like a name beginning "sam" without being one,
    // before the one that is, in email order.
    import(
        &app,
        json!([
            {"email": "a@x.com", "nickname": "Sam"},
            {"email": "b@x.com", "company": {"name": "Sam & Co"}},
            {"email": "c@x.com", "company_name": "Samsung"},
            {"email": "d@x.com", "bio": "name\":\"sam"},
            {"email": "e@x.com", "first_name": "Ann", "last_name": "Samuels"},
        ]),
    )
    .await;
    for limit in [1, 2, 25] {
        assert_eq!(every_page(&app, "sam", limit).await, ["e@x.com"], "{limit}");
    }
}

#[tokio::test]
async fn a_tag_finds_its_holders_by_its_whole_name_ignoring_case() {
    let app = TestApp::spawn().await;
    import(
        &app,
        json!([
            {"email": "zed@x.com", "tags": "VIP Customer"},
            {"email": "amy@x.com", "tags": "vip customer,lead"},
            {"email": "vip@x.com"},
            {"email": "vip-customer@x.com", "tags": "vip"},
        ]),
    )
    .await;
    assert_eq!(
        emails(&search(&app, &format!("q={}", urlencode("Vip customer"))).await),
        ["amy@x.com", "zed@x.com"]
    );
    // A tag's name is matched whole: "vip" finds the holders of `vip`
    // and the emails starting with it, once each.
    assert_eq!(
        emails(&search(&app, "q=VIP").await),
        ["vip-customer@x.com", "vip@x.com"]
    );
    assert!(emails(&search(&app, "q=lea").await).is_empty());
    assert_eq!(emails(&search(&app, "q=lead").await), ["amy@x.com"]);
}

#[tokio::test]
async fn no_text_lists_every_subscriber_in_email_order_a_page_at_a_time() {
    let app = TestApp::spawn().await;
    let all = [
        "Carol@x.com",
        "alice@x.com",
        "bob@x.com",
        "dave@x.com",
        "Eve@x.com",
    ];
    import(
        &app,
        Value::Array(all.iter().map(|e| json!({"email": e})).collect()),
    )
    .await;
    let first = search(&app, "").await;
    assert_eq!(emails(&first), sorted(&all));
    assert_eq!(first["meta"]["next_cursor"], Value::Null);
    for limit in [1, 2, 3, 5] {
        assert_eq!(every_page(&app, "", limit).await, sorted(&all), "{limit}");
    }
    let page = search(&app, "limit=2").await;
    assert_eq!(emails(&page), ["alice@x.com", "bob@x.com"]);
    assert!(page["meta"]["next_cursor"].is_string());
}

#[tokio::test]
async fn pages_follow_one_email_order_whichever_way_each_subscriber_was_found() {
    let app = TestApp::spawn().await;
    // Found by tag, name and email, interleaved in email order.
    import(
        &app,
        json!([
            {"email": "a1@x.com", "tags": "sam"},
            {"email": "b1@x.com", "first_name": "Sam"},
            {"email": "sam.c@x.com"},
            {"email": "d1@x.com", "last_name": "Samson", "tags": "sam"},
            {"email": "e1@x.com", "name": "Sammy"},
            {"email": "sam.f@x.com", "tags": "SAM"},
            {"email": "g1@x.com"},
            {"email": "h1@x.com", "tags": "samuel"},
            {"email": "samuel@y.com"},
        ]),
    )
    .await;
    let whole = [
        "a1@x.com",
        "b1@x.com",
        "d1@x.com",
        "e1@x.com",
        "sam.c@x.com",
        "sam.f@x.com",
        "samuel@y.com",
    ];
    assert_eq!(emails(&search(&app, "q=sam&limit=100").await), whole);
    for limit in 1..=4 {
        assert_eq!(every_page(&app, "sam", limit).await, whole, "{limit}");
    }
}

#[tokio::test]
async fn a_cursor_names_a_position_that_holds_while_the_audience_changes() {
    let app = TestApp::spawn().await;
    import(
        &app,
        json!([{"email": "kim1@x.com"}, {"email": "kim3@x.com"}, {"email": "kim5@x.com"}]),
    )
    .await;
    let first = search(&app, "q=kim&limit=2").await;
    assert_eq!(emails(&first), ["kim1@x.com", "kim3@x.com"]);
    let cursor = first["meta"]["next_cursor"].as_str().unwrap().to_owned();
    // One before the position, one after.
    import(
        &app,
        json!([{"email": "kim2@x.com"}, {"email": "kim4@x.com"}]),
    )
    .await;
    let next = search(&app, &format!("q=kim&limit=2&cursor={cursor}")).await;
    assert_eq!(emails(&next), ["kim4@x.com", "kim5@x.com"]);
    assert_eq!(next["meta"]["next_cursor"], Value::Null);
}

#[tokio::test]
async fn subscribers_come_as_the_lookup_answers_them_and_only_the_sites_own() {
    let app = TestApp::spawn().await;
    import(
        &app,
        json!([{"email": "ann@x.com", "tags": "vip", "plan": "pro", "first_name": "Ann"}]),
    )
    .await;
    let other = app.new_site().await;
    let response = app
        .as_site(&other, Method::POST, "/api/v1/batch/subscribers")
        .json(&json!({"subscribers": [{"email": "ann.other@x.com", "tags": "vip"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let found = search(&app, "q=ann").await;
    let looked_up: Value = app
        .get("/api/v1/fetch/subscribers?email=ann@x.com")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(found["data"], json!([looked_up["data"]]));
    assert_eq!(
        looked_up["data"]["attributes"]["created_at"],
        corral::clock::format_ms(START_MS)
    );
    assert_eq!(emails(&search(&app, "q=vip").await), ["ann@x.com"]);
    assert_eq!(emails(&search(&app, "").await), ["ann@x.com"]);
}

#[tokio::test]
async fn a_bad_text_limit_or_cursor_is_refused_naming_it() {
    let app = TestApp::spawn().await;
    import(&app, json!([{"email": "a@x.com"}, {"email": "b@x.com"}])).await;
    for limit in ["0", "101", "x", "-1", ""] {
        assert_invalid(
            app.get(&format!("{SEARCH}?limit={limit}")).await,
            &[("limit", "must be a whole number from 1 to 100")],
        )
        .await;
    }
    assert_eq!(emails(&search(&app, "limit=100").await).len(), 2);
    assert_eq!(emails(&search(&app, "limit=1").await).len(), 1);
    let not_ours = "is not a cursor this API gave out (use meta.next_cursor)";
    // Garbage, another list's cursor, and a forged one holding NUL.
    for cursor in ["nope!", "YWZ0ZXI6Mw", "c2VhcmNoOgA"] {
        assert_invalid(
            app.get(&format!("{SEARCH}?cursor={cursor}")).await,
            &[("cursor", not_ours)],
        )
        .await;
    }
    assert_invalid(
        app.get(&format!("{SEARCH}?q={}", "a".repeat(256))).await,
        &[("q", "is too long (at most 255 characters)")],
    )
    .await;
    assert_eq!(
        emails(&search(&app, &format!("q={}", "a".repeat(255))).await).len(),
        0
    );
    for q in ["a%00", "%07b", "a%0Ab"] {
        assert_invalid(
            app.get(&format!("{SEARCH}?q={q}")).await,
            &[("q", "must not contain control characters")],
        )
        .await;
    }
    // Like every route, it needs the key pair.
    let response = app.bare(Method::GET, SEARCH).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_site_route_answers_the_callers_site_by_name() {
    let app = TestApp::spawn().await;
    assert_json(
        app.get("/api/v1/fetch/site").await,
        StatusCode::OK,
        json!({"data": {
            "uuid": app.site.uuid,
            "name": "Test site",
            "created_at": corral::clock::format_ms(START_MS),
        }}),
    )
    .await;
    let keys = corral::credentials::KeyPair::generate();
    let uuid = corral::credentials::generate_site_uuid();
    app.store
        .create_site("Acme newsletter", &uuid, &keys, false, START_MS + 1_000)
        .await
        .unwrap();
    let acme = TestSite {
        uuid: uuid.clone(),
        publishable_key: keys.publishable_key,
        secret_key: keys.secret_key,
    };
    let response = app
        .as_site(&acme, Method::GET, "/api/v1/fetch/site")
        .send()
        .await
        .unwrap();
    assert_json(
        response,
        StatusCode::OK,
        json!({"data": {
            "uuid": uuid,
            "name": "Acme newsletter",
            "created_at": corral::clock::format_ms(START_MS + 1_000),
        }}),
    )
    .await;
    let response = app
        .bare(Method::GET, "/api/v1/fetch/site")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}
