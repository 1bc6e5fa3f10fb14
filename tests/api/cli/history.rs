//! Membership history on the command line: `segment history`, `segment
//! changes` and `segment members --at` read the journal a server wrote and
//! answer as the API does: `--json` byte for byte, the same refusals in the
//! same words, and tables with a header otherwise.

use super::{Cli, assert_fails};
use crate::helpers::*;
use corral::clock::{Clock, format_ms};
use reqwest::Method;
use serde_json::{Value, json};

const MINUTE: i64 = 60_000;

async fn tags(app: &TestApp, email: &str, add: bool) {
    let command = if add { "add_tag" } else { "remove_tag" };
    let response = app
        .send_json(
            Method::POST,
            "/api/v1/fetch/commands",
            &json!({"command": {"command": command, "email": email, "query": "vip"}}),
        )
        .await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["failed"], 0, "{body}");
}

/// The API's answer to a GET, as text.
async fn api(app: &TestApp, path: &str) -> String {
    app.get(path).await.text().await.unwrap()
}

/// The message the API gives for one refused field, as the CLI words it:
/// `field message`.
async fn api_refusal(app: &TestApp, path: &str) -> String {
    let response = app.get(path).await;
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    let error = &body["errors"][0];
    format!(
        "{} {}",
        error["field"].as_str().unwrap(),
        error["message"].as_str().unwrap()
    )
}

/// A segment "VIP" whose history a server recorded: early@ in it from its
/// creation (START_MS), then ann joins, bob joins and ann leaves a minute
/// apart, and cy joins a day later. Returns the segment's id.
async fn recorded(app: &TestApp) -> String {
    let site_id = app.site_id(&app.site).await;
    // In memory, so that creating the segment takes its baseline at once.
    app.state.live.resident(site_id).await.unwrap();
    tags(app, "early@x.io", true).await;
    let segment = app
        .create_segment("VIP", json!({"tag": {"has": "vip"}}))
        .await;
    for (after, email, add) in [
        (MINUTE, "ann@x.io", true),
        (MINUTE, "bob@x.io", true),
        (MINUTE, "ann@x.io", false),
        (86_400_000, "cy@x.io", true),
    ] {
        app.clock.advance_ms(after);
        tags(app, email, add).await;
    }
    segment["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn segment_history_prints_the_apis_series_and_a_table() {
    let app = TestApp::spawn().await;
    let id = recorded(&app).await;
    let cli = Cli::on(&app.database_url);
    let site = app.site.uuid.as_str();
    let (from, to) = (
        format_ms(START_MS - 3_600_000),
        format_ms(app.clock.now_ms() + 1),
    );
    for interval in ["hour", "day", "week"] {
        let body = api(
            &app,
            &format!(
                "/api/v1/stats/segment/history?segment_id={id}&from={}&to={}&interval={interval}",
                urlencode(&from),
                urlencode(&to)
            ),
        )
        .await;
        assert!(body.starts_with(r#"{"data":[{"#), "{body}");
        let printed = cli.ok(&[
            "segment",
            "history",
            &id,
            "--site",
            site,
            "--from",
            &from,
            "--to",
            &to,
            "--interval",
            interval,
            "--json",
        ]);
        assert_eq!(printed.trim_end(), body, "{interval}");
    }
    // The day is the default interval.
    let args = [
        "segment", "history", &id, "--site", site, "--from", &from, "--to", &to,
    ];
    let day: Value = serde_json::from_str(&cli.ok(&[&args[..], &["--json"]].concat())).unwrap();
    let points: Vec<(i64, i64, i64)> = day["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let n = |k: &str| p[k].as_i64().unwrap();
            (n("members"), n("added"), n("removed"))
        })
        .collect();
    assert_eq!(points, [(2, 2, 1), (3, 1, 0)], "{day}");

    let table = cli.ok(&args);
    let lines: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines,
        [
            vec!["history", "begins", "at", &format_ms(START_MS)],
            vec!["at", "members", "added", "removed"],
            vec!["2026-11-26T00:00:00.000Z", "2", "2", "1"],
            vec!["2026-11-27T00:00:00.000Z", "3", "1", "0"],
        ],
        "{table}"
    );
}

#[tokio::test]
async fn segment_changes_pages_as_the_api_and_resumes_from_its_cursor() {
    let app = TestApp::spawn().await;
    let id = recorded(&app).await;
    let cli = Cli::on(&app.database_url);
    let site = app.site.uuid.as_str();
    let changes = format!("/api/v1/fetch/segments/{id}/changes");

    // Page by page: the same pages, the same cursors.
    let first = api(&app, &format!("{changes}?limit=3")).await;
    let printed = cli.ok(&[
        "segment", "changes", &id, "--site", site, "--limit", "3", "--json",
    ]);
    assert_eq!(printed.trim_end(), first);
    let cursor = serde_json::from_str::<Value>(&first).unwrap()["meta"]["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let second = api(&app, &format!("{changes}?limit=3&after={cursor}")).await;
    let printed = cli.ok(&[
        "segment", "changes", &id, "--site", site, "--limit", "3", "--after", &cursor, "--json",
    ]);
    assert_eq!(printed.trim_end(), second);
    let second: Value = serde_json::from_str(&second).unwrap();
    assert_eq!(second["data"].as_array().unwrap().len(), 1, "{second}");
    assert_eq!(second["data"][0]["subscriber"]["email"], "cy@x.io");
    // From an instant.
    let since = format_ms(START_MS + 2 * MINUTE);
    let body = api(&app, &format!("{changes}?since={}", urlencode(&since))).await;
    let printed = cli.ok(&[
        "segment", "changes", &id, "--site", site, "--since", &since, "--json",
    ]);
    assert_eq!(printed.trim_end(), body);

    // A table with a header; the cursor to resume from on stderr.
    let output = cli.run(&["segment", "changes", &id, "--site", site]);
    assert!(output.status.success());
    let table = String::from_utf8(output.stdout).unwrap();
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        ["occurred_at", "change", "reason", "subscriber", "email"]
    );
    let moves: Vec<(&str, &str, &str, &str)> =
        rows[1..].iter().map(|r| (r[0], r[1], r[2], r[4])).collect();
    let at = |ms: i64| format_ms(ms);
    let (one, two, three, day) = (
        at(START_MS + MINUTE),
        at(START_MS + 2 * MINUTE),
        at(START_MS + 3 * MINUTE),
        at(START_MS + 3 * MINUTE + 86_400_000),
    );
    assert_eq!(
        moves,
        [
            (one.as_str(), "added", "data", "ann@x.io"),
            (two.as_str(), "added", "data", "bob@x.io"),
            (three.as_str(), "removed", "data", "ann@x.io"),
            (day.as_str(), "added", "data", "cy@x.io"),
        ],
        "{table}"
    );
    let ann = app.subscriber("ann@x.io").await;
    assert_eq!(rows[1][3], ann["attributes"]["uuid"], "{table}");
    let stderr = String::from_utf8(output.stderr).unwrap();
    let last = serde_json::from_str::<Value>(&api(&app, &changes).await).unwrap();
    assert_eq!(
        stderr.trim_end(),
        format!(
            "resume with --after {}",
            last["meta"]["next_cursor"].as_str().unwrap()
        )
    );
}

#[tokio::test]
async fn segment_members_at_an_instant_exports_the_apis_members_then() {
    let app = TestApp::spawn().await;
    let id = recorded(&app).await;
    let cli = Cli::on(&app.database_url);
    let site = app.site.uuid.as_str();
    // Between bob's join and ann's leave: early, ann and bob; now: early,
    // bob and cy.
    let at = format_ms(START_MS + 2 * MINUTE + 30_000);
    let body: Value = app
        .get(&format!(
            "/api/v1/fetch/segments/{id}/members?at={}",
            urlencode(&at)
        ))
        .await
        .json()
        .await
        .unwrap();
    let jsonl = cli.ok(&["segment", "members", &id, "--site", site, "--at", &at]);
    let exported: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(Value::from(exported), body["data"]);
    let csv = cli.ok(&[
        "segment", "members", &id, "--site", site, "--at", &at, "--format", "csv",
    ]);
    let emails: Vec<&str> = csv
        .lines()
        .map(|line| line.split(',').nth(1).unwrap())
        .collect();
    assert_eq!(emails, ["email", "early@x.io", "ann@x.io", "bob@x.io"]);
    let now = cli.ok(&["segment", "members", &id, "--site", site, "--format", "csv"]);
    let emails: Vec<&str> = now
        .lines()
        .map(|line| line.split(',').nth(1).unwrap())
        .collect();
    assert_eq!(emails, ["email", "early@x.io", "bob@x.io", "cy@x.io"]);
}

#[tokio::test]
async fn the_history_commands_refuse_what_the_api_refuses_in_its_words() {
    let app = TestApp::spawn().await;
    let id = recorded(&app).await;
    let id = id.as_str();
    let cli = Cli::on(&app.database_url);
    let site = app.site.uuid.as_str();
    let cases: [(String, Vec<&str>); 5] = [
        (
            format!("/api/v1/fetch/segments/{id}/members?at=2001-01-01T00:00:00Z"),
            vec!["segment", "members", id, "--at", "2001-01-01T00:00:00Z"],
        ),
        (
            format!("/api/v1/stats/segment/history?segment_id={id}&interval=fortnight"),
            vec!["segment", "history", id, "--interval", "fortnight"],
        ),
        (
            format!(
                "/api/v1/stats/segment/history?segment_id={id}&interval=minute&from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z"
            ),
            vec![
                "segment",
                "history",
                id,
                "--interval",
                "minute",
                "--from",
                "2026-01-01T00:00:00Z",
                "--to",
                "2026-02-01T00:00:00Z",
            ],
        ),
        (
            format!("/api/v1/fetch/segments/{id}/changes?since=2026-01-01T00:00:00Z&after=nope"),
            vec![
                "segment",
                "changes",
                id,
                "--since",
                "2026-01-01T00:00:00Z",
                "--after",
                "nope",
            ],
        ),
        (
            format!("/api/v1/fetch/segments/{id}/changes?limit=0"),
            vec!["segment", "changes", id, "--limit", "0"],
        ),
    ];
    for (path, args) in cases {
        let refusal = api_refusal(&app, &path).await;
        let output = cli.run(&[&args[..], &["--site", site]].concat());
        assert_fails(&output, &refusal);
    }
    assert!(
        api_refusal(
            &app,
            &format!("/api/v1/fetch/segments/{id}/members?at=2001-01-01T00:00:00Z")
        )
        .await
        .contains(&format_ms(START_MS))
    );
    for command in ["history", "changes"] {
        assert_fails(
            &cli.run(&["segment", command, "99", "--site", site]),
            "segment 99 not found on this site",
        );
    }
}
