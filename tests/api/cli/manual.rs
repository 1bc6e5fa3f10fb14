//! `segment includes|excludes add|remove|list`: hand-made includes and excludes from the command line, seen by a running server and by the CLI's own evaluation; unknown emails named and told by the exit status; lists from a file a thousand at a time.

use super::Cli;
use crate::helpers::*;
use corral::storage::transfer::Table;
use reqwest::Method;
use serde_json::{Value, json};
use std::process::Output;

/// The emails of a segment's members as the server answers them.
async fn api_members(app: &TestApp, id: &str) -> Vec<String> {
    let body: Value = app
        .get(&format!("/api/v1/fetch/segments/{id}/members?limit=1000"))
        .await
        .json()
        .await
        .unwrap();
    let mut emails: Vec<String> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["attributes"]["email"].as_str().unwrap().to_owned())
        .collect();
    emails.sort();
    emails
}

/// The emails of a segment's members as `corral segment members` exports them.
fn cli_members(cli: &Cli, site: &str, id: &str) -> Vec<String> {
    let mut emails: Vec<String> = cli
        .ok(&["segment", "members", id, "--site", site])
        .lines()
        .map(|line| {
            let member: Value = serde_json::from_str(line).unwrap();
            member["attributes"]["email"].as_str().unwrap().to_owned()
        })
        .collect();
    emails.sort();
    emails
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts an edit that named unknown emails: exit status 3, each unknown
/// one named on stderr, then the line that counts them.
fn assert_some_unknown(output: &Output, unknown: &[&str], asked: usize) {
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    let mut expected: Vec<String> = unknown.iter().map(|e| format!("unknown    {e}")).collect();
    expected.push(format!(
        "{} of {asked} emails named no subscriber of the site: nothing was made for them, \
         and the others were applied",
        unknown.len()
    ));
    assert_eq!(stderr.lines().collect::<Vec<_>>(), expected, "{stderr}");
}

#[tokio::test]
async fn includes_and_excludes_made_on_the_command_line_change_the_members_everywhere() {
    let app = TestApp::spawn().await;
    app.send_json(
        Method::POST,
        "/api/v1/batch/subscribers",
        &json!({"subscribers": [
            {"email": "ann@example.com", "tags": "vip"},
            {"email": "bob@example.com"},
            {"email": "cy@example.com", "tags": "vip"},
        ]}),
    )
    .await;
    let vip = app
        .create_segment("VIP", json!({"tag": {"has": "vip"}}))
        .await;
    let id = vip["id"].as_str().unwrap();
    let site = app.site.uuid.clone();
    let cli = Cli::on(&app.database_url);
    // Read once, so that the server's answers after the CLI's writes come
    // from its snapshot brought forward by the change log.
    assert_eq!(
        api_members(&app, id).await,
        ["ann@example.com", "cy@example.com"]
    );

    // bob is included (named twice, in two cases), an unknown email is
    // named and nothing is made for it.
    let output = cli.run(&[
        "segment",
        "includes",
        "add",
        id,
        "bob@example.com",
        "nobody@example.com",
        "BOB@example.com",
        "--site",
        &site,
    ]);
    assert_some_unknown(&output, &["nobody@example.com"], 2);
    assert_eq!(
        text(&output.stdout),
        format!(
            "changed    bob@example.com\n\
             segment {id} includes: 1 included, 0 already included, 1 unknown\n"
        )
    );
    assert_eq!(app.rows(Table::Subscribers).await, 3);
    let with_bob = ["ann@example.com", "bob@example.com", "cy@example.com"];
    assert_eq!(api_members(&app, id).await, with_bob);
    assert_eq!(cli_members(&cli, &site, id), with_bob);

    // ann is excluded, with --json: the route's answer.
    let printed = cli.ok(&[
        "segment",
        "excludes",
        "add",
        id,
        "ann@example.com",
        "--site",
        &site,
        "--json",
    ]);
    let answer: Value = serde_json::from_str(&printed).unwrap();
    assert_eq!(
        answer,
        json!({"data": {"segment_id": id, "list": "excludes", "changed": ["ann@example.com"],
            "unchanged": [], "unknown": []}})
    );
    let now = ["bob@example.com", "cy@example.com"];
    assert_eq!(api_members(&app, id).await, now);
    assert_eq!(cli_members(&cli, &site, id), now);
    let why = cli.ok(&[
        "segment",
        "match",
        id,
        "--site",
        &site,
        "--email",
        "ann@example.com",
        "--json",
    ]);
    assert!(why.contains("excluded by hand"), "{why}");

    // The lists: a header and a line each, or the route's body byte for
    // byte.
    let listed = cli.ok(&["segment", "includes", "list", id, "--site", &site]);
    let lines: Vec<Vec<&str>> = listed
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let bob = app.subscriber("bob@example.com").await;
    let bob_uuid = bob["attributes"]["uuid"].as_str().unwrap();
    assert_eq!(lines.len(), 2, "{listed}");
    assert_eq!(lines[0], ["email", "uuid", "added_at"]);
    assert_eq!(lines[1][..2], ["bob@example.com", bob_uuid]);
    assert!(lines[1][2].ends_with('Z'), "{listed}");
    for list in ["includes", "excludes"] {
        let api = app
            .get(&format!("/api/v1/fetch/segments/{id}/{list}"))
            .await
            .text()
            .await
            .unwrap();
        let printed = cli.ok(&["segment", list, "list", id, "--site", &site, "--json"]);
        assert_eq!(printed.trim_end(), api);
    }

    // Taken out again: bob is not a member, ann is; taking out what is not
    // in the list changes nothing.
    let output = cli.ok(&[
        "segment",
        "includes",
        "remove",
        id,
        "bob@example.com",
        "cy@example.com",
        "--site",
        &site,
    ]);
    assert_eq!(
        output,
        format!(
            "changed    bob@example.com\n\
             unchanged  cy@example.com\n\
             segment {id} includes: 1 taken out, 1 not included, 0 unknown\n"
        )
    );
    cli.ok(&[
        "segment",
        "excludes",
        "remove",
        id,
        "ann@example.com",
        "--site",
        &site,
    ]);
    let back = ["ann@example.com", "cy@example.com"];
    assert_eq!(api_members(&app, id).await, back);
    assert_eq!(cli_members(&cli, &site, id), back);
    let listed = cli.ok(&["segment", "excludes", "list", id, "--site", &site]);
    assert_eq!(listed.lines().count(), 1, "{listed}");
}

#[tokio::test]
async fn a_file_of_more_emails_than_one_edit_takes_is_applied_a_thousand_at_a_time() {
    let app = TestApp::spawn().await;
    let cli = Cli::on(&app.database_url);
    let site = app.site.uuid.clone();
    let emails: Vec<String> = (0..1_500).map(|i| format!("s{i:04}@x.com")).collect();
    let file = cli.dir.path().join("subscribers.jsonl");
    let lines: Vec<String> = emails
        .iter()
        .map(|e| json!({ "email": e }).to_string())
        .collect();
    std::fs::write(&file, lines.join("\n")).unwrap();
    cli.ok(&[
        "import",
        "subscribers",
        "--site",
        &site,
        file.to_str().unwrap(),
    ]);
    let nobody = app
        .create_segment("Nobody", json!({"email": {"equals": "none@x.com"}}))
        .await;
    let id = nobody["id"].as_str().unwrap();

    // Every email a line, blank lines between, and two unknown ones last.
    let list = cli.dir.path().join("emails.txt");
    let mut lines = emails.join("\n\n");
    lines.push_str("\n  gone@x.com  \nlost@x.com\n");
    std::fs::write(&list, lines).unwrap();
    let path = list.to_str().unwrap();
    let output = cli.run(&[
        "segment",
        "includes",
        "add",
        id,
        "--from-file",
        path,
        "--site",
        &site,
        "--json",
    ]);
    assert_some_unknown(&output, &["gone@x.com", "lost@x.com"], 1_502);
    let answer: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(answer["data"]["changed"].as_array().unwrap().len(), 1_500);
    assert_eq!(answer["data"]["changed"][1_499], "s1499@x.com");
    assert_eq!(
        answer["data"]["unknown"],
        json!(["gone@x.com", "lost@x.com"])
    );
    // Two edits, each of its own in the audit log.
    let audit: Value =
        serde_json::from_str(&cli.ok(&["audit", "--site", &site, "--json"])).unwrap();
    let edits: Vec<usize> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "segment.manual_changed")
        .map(|e| e["details"]["emails"].as_array().unwrap().len())
        .collect();
    assert_eq!(edits, [500, 1_000], "newest first");

    let stats: Value = app
        .get(&format!("/api/v1/stats/segment?segment_id={id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(stats["user_count"], 1_500);
    // The list, every page in one (the CLI reads it 1,000 at a time).
    let listed: Value = serde_json::from_str(
        &cli.ok(&["segment", "includes", "list", id, "--site", &site, "--json"]),
    )
    .unwrap();
    assert_eq!(listed["data"].as_array().unwrap().len(), 1_500);
    assert_eq!(listed["meta"], json!({"count": 1_500, "next_cursor": null}));
    let plain = cli.ok(&["segment", "includes", "list", id, "--site", &site]);
    assert_eq!(plain.lines().count(), 1_501);

    // From stdin, the same emails again: nothing changes.
    let stdin = emails[..1_200].join("\n");
    let output = cli.run_with_stdin(
        &[
            "segment",
            "includes",
            "remove",
            id,
            "s0000@x.com",
            "--from-file",
            "-",
            "--site",
            &site,
        ],
        &stdin,
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let out = text(&output.stdout);
    assert_eq!(out.lines().count(), 1_201, "{}", &out[..200]);
    assert!(
        out.ends_with(&format!(
            "segment {id} includes: 1200 taken out, 0 not included, 0 unknown\n"
        )),
        "{}",
        &out[out.len() - 200..]
    );
    let stats: Value = app
        .get(&format!("/api/v1/stats/segment?segment_id={id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(stats["user_count"], 300);
}

#[tokio::test]
async fn emails_that_are_not_emails_or_a_missing_segment_apply_nothing() {
    let app = TestApp::spawn().await;
    let cli = Cli::on(&app.database_url);
    let site = app.site.uuid.clone();
    app.send_json(
        Method::POST,
        "/api/v1/batch/subscribers",
        &json!({"subscribers": [{"email": "ann@example.com"}]}),
    )
    .await;
    let segment = app.create_segment("All", json!({})).await;
    let id = segment["id"].as_str().unwrap();
    let file = cli.dir.path().join("emails.txt");
    std::fs::write(&file, "ann@example.com\n\nnot-an-email\nalso bad\n").unwrap();
    let path = file.to_str().unwrap();
    let output = cli.run(&[
        "segment",
        "excludes",
        "add",
        id,
        "ann@example.com",
        "--from-file",
        path,
        "--site",
        &site,
    ]);
    super::assert_fails(
        &output,
        &format!(
            "line 3 of {path}: \"not-an-email\" is invalid (and 1 more not emails); nothing was \
             applied"
        ),
    );
    assert_eq!(output.status.code(), Some(1));
    let listed = cli.ok(&["segment", "excludes", "list", id, "--site", &site]);
    assert_eq!(listed.lines().count(), 1, "{listed}");

    for args in [
        vec!["segment", "includes", "add", "99", "ann@example.com"],
        vec!["segment", "includes", "list", "99"],
    ] {
        let mut args = args;
        args.extend(["--site", &site]);
        let output = cli.run(&args);
        super::assert_fails(&output, "segment 99 not found on this site");
        assert!(output.stdout.is_empty(), "{}", text(&output.stdout));
    }
    super::assert_fails(
        &cli.run(&["segment", "includes", "add", id, "--site", &site]),
        "name the subscribers' emails",
    );
}
