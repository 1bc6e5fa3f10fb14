//! One subscriber's segments and recent events
//! (`GET /fetch/subscribers/segments`, `GET /fetch/subscribers/events`),
//! the streamed CSV export of a segment's members
//! (`GET /fetch/segments/{id}/members.csv`), and the CLI commands beside
//! them.

use crate::cli::Cli;
use crate::helpers::*;
use corral::http::HttpSettings;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const DAY: i64 = 86_400_000;

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

/// ann: vip, bought twice, logged in; bob: lead, unsubscribed.
async fn audience(app: &TestApp) {
    let response = app
        .send_json(
            Method::POST,
            "/api/v1/batch/subscribers",
            &json!({"subscribers": [
                {"email": "ann@example.com", "tags": "vip", "plan": "pro"},
                {"email": "bob@example.com", "tags": "lead"},
            ]}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = app
        .send_json(
            Method::POST,
            "/api/v1/batch/events",
            &json!({"events": [
                {"type": "$purchase", "email": "ann@example.com", "date": days_ago(20),
                 "details": {"unique": {"key": "o1"}, "value": {"currency": "USD", "amount": 300}}},
                {"type": "$login", "email": "ann@example.com", "date": days_ago(1)},
                {"type": "$purchase", "email": "ann@example.com", "date": days_ago(5),
                 "details": {"unique": {"key": "o2"}, "value": {"currency": "USD", "amount": 250}}},
                {"type": "$unsubscribe", "email": "bob@example.com", "date": days_ago(3)},
            ]}),
        )
        .await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["failed"], 0, "{body}");
}

fn names(body: &Value) -> Vec<&str> {
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["attributes"]["name"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_subscriber_is_listed_in_exactly_the_kept_segments_whose_query_holds_for_them() {
    let app = app().await;
    audience(&app).await;
    let vip = app
        .create_segment("VIP", json!({"tag": {"has": "vip"}}))
        .await;
    app.create_segment(
        "buyers",
        json!({"event": {"type": "$purchase", "count": {"at_least": 2}}}),
    )
    .await;
    app.create_segment("Leads", json!({"tag": {"has": "lead"}}))
        .await;
    app.create_segment("everyone", json!({})).await;
    app.create_segment("Bento's own", json!({"foreign": {"anything": true}}))
        .await;
    let gone = app
        .create_segment("Gone", json!({"subscribed": true}))
        .await;
    let response = app
        .request(
            Method::DELETE,
            &format!("/api/v1/fetch/segments/{}", gone["id"].as_str().unwrap()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let response = app
        .get("/api/v1/fetch/subscribers/segments?email=ANN@example.com")
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    // Bento's order (by name, ignoring case); foreign and discarded left out.
    assert_eq!(names(&body), ["buyers", "everyone", "VIP"]);
    assert_eq!(
        body["data"][2], vip,
        "the segments are shown as the list shows them"
    );

    let body: Value = app
        .get("/api/v1/fetch/subscribers/segments?email=bob@example.com")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(names(&body), ["everyone", "Leads"]);
}

#[tokio::test]
async fn membership_follows_the_audience_live() {
    let app = app().await;
    audience(&app).await;
    app.create_segment("VIP", json!({"tag": {"has": "vip"}}))
        .await;
    let before: Value = app
        .get("/api/v1/fetch/subscribers/segments?email=bob@example.com")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(before, json!({"data": []}));
    app.send_json(
        Method::POST,
        "/api/v1/fetch/commands",
        &json!({"command": [{"command": "add_tag", "email": "bob@example.com", "query": "vip"}]}),
    )
    .await;
    let after: Value = app
        .get("/api/v1/fetch/subscribers/segments?email=bob@example.com")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(names(&after), ["VIP"]);
}

#[tokio::test]
async fn the_subscriber_routes_need_a_known_valid_email_of_this_site() {
    let app = app().await;
    audience(&app).await;
    let other = app.new_site().await;
    for route in ["segments", "events"] {
        let path = format!("/api/v1/fetch/subscribers/{route}");
        assert_invalid(app.get(&path).await, &[("email", "is required")]).await;
        let response = app.get(&format!("{path}?email=not-an-email")).await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_json(
            app.get(&format!("{path}?email=nobody@example.com")).await,
            StatusCode::NOT_FOUND,
            json!({"error": "Subscriber not found"}),
        )
        .await;
        // Every site is a wall: ann is not another site's subscriber.
        let response = app
            .as_site(
                &other,
                Method::GET,
                &format!("{path}?email=ann@example.com"),
            )
            .send()
            .await
            .unwrap();
        assert_json(
            response,
            StatusCode::NOT_FOUND,
            json!({"error": "Subscriber not found"}),
        )
        .await;
        let response = app
            .bare(Method::GET, &format!("{path}?email=ann@example.com"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn recent_events_come_latest_first_with_their_details_as_sent() {
    let app = app().await;
    audience(&app).await;
    let response = app
        .get("/api/v1/fetch/subscribers/events?email=ann@example.com")
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    let body: Value = response.json().await.unwrap();
    let events = body["data"].as_array().unwrap();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["attributes"]["type"].as_str().unwrap())
        .collect();
    // The import also recorded when ann was made ($subscribe is not sent:
    // only events that were sent are kept).
    assert_eq!(kinds[..3], ["$login", "$purchase", "$purchase"]);
    assert_eq!(events[0]["type"], "events");
    assert!(events[0]["id"].is_string());
    assert_eq!(events[0]["attributes"]["occurred_at"], days_ago(1));
    assert_eq!(
        events[1]["attributes"]["details"],
        json!({"unique": {"key": "o2"}, "value": {"currency": "USD", "amount": 250}})
    );
    assert_eq!(events[2]["attributes"]["occurred_at"], days_ago(20));

    let body: Value = app
        .get("/api/v1/fetch/subscribers/events?email=ann@example.com&limit=1")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["data"].as_array().unwrap().len(), 1);
    assert_eq!(body["data"][0]["attributes"]["type"], "$login");

    for limit in ["0", "101", "x", "-1"] {
        assert_invalid(
            app.get(&format!(
                "/api/v1/fetch/subscribers/events?email=ann@example.com&limit={limit}"
            ))
            .await,
            &[("limit", "must be a whole number from 1 to 100")],
        )
        .await;
    }
}

#[tokio::test]
async fn the_csv_export_streams_every_member_in_the_members_order() {
    let app = app().await;
    // More members than one chunk of the stream.
    for batch in 0..2 {
        let subscribers: Vec<Value> = (0..700)
            .map(|i| json!({"email": format!("m{batch}-{i:04}@example.com"), "n": i}))
            .collect();
        let response = app
            .send_json(
                Method::POST,
                "/api/v1/batch/subscribers",
                &json!({"subscribers": subscribers}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    let segment = app
        .create_segment("Odd", json!({"field": {"key": "n", "less_than": 650}}))
        .await;
    let id = segment["id"].as_str().unwrap();
    let response = app
        .get(&format!("/api/v1/fetch/segments/{id}/members.csv"))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/csv; charset=utf-8"
    );
    assert_eq!(
        response.headers()["content-disposition"],
        format!("attachment; filename=\"segment-{id}-members.csv\"")
    );
    let csv = response.text().await.unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("uuid,email,created_at,unsubscribed_at,field:n")
    );
    let exported: Vec<String> = lines
        .map(|line| line.split(',').nth(1).unwrap().to_owned())
        .collect();
    let mut paged = Vec::new();
    let mut cursor = String::new();
    loop {
        let page: Value = app
            .get(&format!(
                "/api/v1/fetch/segments/{id}/members?limit=1000&cursor={cursor}"
            ))
            .await
            .json()
            .await
            .unwrap();
        for member in page["data"].as_array().unwrap() {
            paged.push(member["attributes"]["email"].as_str().unwrap().to_owned());
        }
        match page["meta"]["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(exported.len(), 1300);
    assert_eq!(exported, paged);
}

#[tokio::test]
async fn the_csv_export_answers_like_the_other_evaluation_routes() {
    let app = app().await;
    assert_json(
        app.get("/api/v1/fetch/segments/999/members.csv").await,
        StatusCode::NOT_FOUND,
        json!({"error": "Segment not found"}),
    )
    .await;
    let foreign = app.create_segment("Foreign", json!({"foreign": {}})).await;
    let response = app
        .get(&format!(
            "/api/v1/fetch/segments/{}/members.csv",
            foreign["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let empty = app.create_segment("Nobody", json!({"any": []})).await;
    let csv = app
        .get(&format!(
            "/api/v1/fetch/segments/{}/members.csv",
            empty["id"].as_str().unwrap()
        ))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(csv, "uuid,email,created_at,unsubscribed_at\n");
}

#[test]
fn the_subscriber_commands_print_what_the_api_answers() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let app = app().await;
        audience(&app).await;
        app.create_segment("VIP", json!({"tag": {"has": "vip"}}))
            .await;
        app.create_segment("Leads", json!({"tag": {"has": "lead"}}))
            .await;
        let cli = Cli::on(&app.database_url);
        let uuid = app.site.uuid.clone();
        let site = ["--site", uuid.as_str(), "--email", "ann@example.com"];

        let api = app
            .get("/api/v1/fetch/subscribers/segments?email=ann@example.com")
            .await
            .text()
            .await
            .unwrap();
        let printed = cli.ok(&[&["subscriber", "segments"][..], &site, &["--json"]].concat());
        assert_eq!(printed.trim_end(), api);
        let printed = cli.ok(&[&["subscriber", "segments"][..], &site].concat());
        assert!(
            printed.contains("VIP") && !printed.contains("Leads"),
            "{printed}"
        );

        let api = app
            .get("/api/v1/fetch/subscribers/events?email=ann@example.com&limit=2")
            .await
            .text()
            .await
            .unwrap();
        let printed = cli.ok(&[
            &["subscriber", "events"][..],
            &site,
            &["--limit", "2", "--json"],
        ]
        .concat());
        assert_eq!(printed.trim_end(), api);
        let printed = cli.ok(&[&["subscriber", "events"][..], &site].concat());
        assert!(
            printed.lines().next().unwrap().contains("$login"),
            "{printed}"
        );

        let missing = cli.run(&[
            "subscriber",
            "segments",
            "--site",
            &uuid,
            "--email",
            "nobody@example.com",
        ]);
        assert!(!missing.status.success());
        assert!(String::from_utf8_lossy(&missing.stderr).contains("no such subscriber"));
    });
}

/// Emails the email rules accept that a spreadsheet would run as a formula,
/// each with the cell an export must hold (after a single quote, so that it
/// shows as text), and one written as it is. (An email cannot begin with
/// `@`, and the other cells are the server's own or a JSON object.)
pub(crate) const FORMULA_EMAILS: [(&str, &str); 4] = [
    (
        r#"=HYPERLINK("http://evil.example/x","click")@example.com"#,
        r#"'=HYPERLINK("http://evil.example/x","click")@example.com"#,
    ),
    ("+1@example.com", "'+1@example.com"),
    ("-2+3@example.com", "'-2+3@example.com"),
    ("plain@example.com", "plain@example.com"),
];

/// The email cell of every record of a members CSV, as a spreadsheet
/// would read it (quotes undone), sorted.
pub(crate) fn csv_emails(csv: &str) -> Vec<String> {
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    assert_eq!(
        reader.headers().unwrap(),
        vec!["uuid", "email", "created_at", "unsubscribed_at"]
    );
    let mut emails: Vec<String> = reader.records().map(|r| r.unwrap()[1].to_owned()).collect();
    emails.sort();
    emails
}

/// The cells [`FORMULA_EMAILS`] must come out as, sorted.
pub(crate) fn formula_cells() -> Vec<String> {
    let mut cells: Vec<String> = FORMULA_EMAILS
        .iter()
        .map(|(_, c)| (*c).to_owned())
        .collect();
    cells.sort();
    cells
}

#[tokio::test]
async fn the_csv_export_writes_a_cell_a_spreadsheet_would_run_as_text() {
    let app = app().await;
    let subscribers: Vec<Value> = FORMULA_EMAILS
        .iter()
        .map(|(email, _)| json!({"email": email}))
        .collect();
    let response = app
        .send_json(
            Method::POST,
            "/api/v1/batch/subscribers",
            &json!({"subscribers": subscribers}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let segment = app.create_segment("Everyone", json!({})).await;
    let id = segment["id"].as_str().unwrap();
    // The emails are stored as given: only the CSV writes them otherwise.
    let page: Value = app
        .get(&format!("/api/v1/fetch/segments/{id}/members?limit=100"))
        .await
        .json()
        .await
        .unwrap();
    let mut stored: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["attributes"]["email"].as_str().unwrap())
        .collect();
    stored.sort();
    let mut given: Vec<&str> = FORMULA_EMAILS.iter().map(|(e, _)| *e).collect();
    given.sort();
    assert_eq!(stored, given);
    let csv = app
        .get(&format!("/api/v1/fetch/segments/{id}/members.csv"))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(csv_emails(&csv), formula_cells(), "{csv}");
}

/// ann: four fields, one of them named as a fixed column; bob: one; cy:
/// none. And a segment of the three.
async fn fielded(app: &TestApp) -> String {
    let response = app
        .send_json(
            Method::POST,
            "/api/v1/batch/events",
            &json!({"events": [
                {"type": "$signup", "email": "ann@example.com", "fields": {
                    "plan": "pro", "seats": 12, "beta": true, "created_at": "-last week"}},
                {"type": "$signup", "email": "bob@example.com", "fields": {"plan": "free, then pro"}},
                {"type": "$signup", "email": "cy@example.com"},
            ]}),
        )
        .await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["failed"], 0, "{body}");
    let segment = app.create_segment("Everyone", json!({})).await;
    segment["id"].as_str().unwrap().to_owned()
}

/// Each record of a CSV by its email, as a map of its header's cells.
fn csv_records(csv: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    let records = reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect();
    (header, records)
}

#[tokio::test]
async fn the_csv_export_has_a_column_per_field_key_with_each_value_as_text() {
    let app = app().await;
    let id = fielded(&app).await;
    let csv = app
        .get(&format!("/api/v1/fetch/segments/{id}/members.csv"))
        .await
        .text()
        .await
        .unwrap();
    let (header, records) = csv_records(&csv);
    // A field named as a fixed column has a column of its own.
    assert_eq!(
        header,
        [
            "uuid",
            "email",
            "created_at",
            "unsubscribed_at",
            "field:beta",
            "field:created_at",
            "field:plan",
            "field:seats"
        ]
    );
    let ann = &records[0];
    assert_eq!(ann[1], "ann@example.com");
    assert_eq!(ann[2], corral::clock::format_ms(START_MS));
    // Text as it is (a formula after a quote), numbers and booleans as
    // JSON writes them.
    assert_eq!(ann[4..], ["true", "'-last week", "pro", "12"]);
    assert_eq!(records[1][4..], ["", "", "free, then pro", ""]);
    assert_eq!(
        records[2][1..],
        ["cy@example.com", &ann[2], "", "", "", "", ""]
    );
    assert_eq!(records.len(), 3);
}

#[tokio::test]
async fn the_csv_export_holds_the_fields_in_one_json_column_when_asked() {
    let app = app().await;
    let id = fielded(&app).await;
    let csv = app
        .get(&format!(
            "/api/v1/fetch/segments/{id}/members.csv?fields=json"
        ))
        .await
        .text()
        .await
        .unwrap();
    let (header, records) = csv_records(&csv);
    assert_eq!(
        header,
        ["uuid", "email", "created_at", "unsubscribed_at", "fields"]
    );
    let ann: Value = serde_json::from_str(&records[0][4]).unwrap();
    assert_eq!(
        ann,
        json!({"plan": "pro", "seats": 12, "beta": true, "created_at": "-last week"})
    );
    assert_eq!(records[2][4], "{}");
    // `columns` is the default, said aloud.
    let columns = app
        .get(&format!(
            "/api/v1/fetch/segments/{id}/members.csv?fields=columns"
        ))
        .await
        .text()
        .await
        .unwrap();
    assert!(columns.starts_with("uuid,email,created_at,unsubscribed_at,field:beta,"));
    assert_invalid(
        app.get(&format!(
            "/api/v1/fetch/segments/{id}/members.csv?fields=xml"
        ))
        .await,
        &[("fields", "must be columns or json")],
    )
    .await;
}

#[test]
fn the_cli_exports_the_csv_the_route_answers() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let app = app().await;
        let id = fielded(&app).await;
        let cli = Cli::on(&app.database_url);
        let uuid = app.site.uuid.clone();
        for (query, extra) in [("", &[][..]), ("?fields=json", &["--fields", "json"][..])] {
            let api = app
                .get(&format!("/api/v1/fetch/segments/{id}/members.csv{query}"))
                .await
                .text()
                .await
                .unwrap();
            let args = [
                &[
                    "segment",
                    "members",
                    id.as_str(),
                    "--site",
                    &uuid,
                    "--format",
                    "csv",
                ][..],
                extra,
            ]
            .concat();
            assert_eq!(cli.ok(&args), api, "{query}");
        }
    });
}
