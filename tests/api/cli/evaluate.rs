//! Evaluation: `segment stats`, `match`, `preview` and `members` answer what the API answers.

use super::{Cli, assert_fails};
use crate::helpers::*;
use reqwest::Method;
use serde_json::{Value, json};

#[test]
fn evaluation_from_the_cli_answers_what_the_api_answers() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let app = TestApp::spawn().await;
        app.send_json(
            Method::POST,
            "/api/v1/batch/subscribers",
            &json!({"subscribers": [
                {"email": "ann@example.com", "tags": "vip"},
                {"email": "bob@example.com"},
                {"email": "cy@example.com", "tags": "VIP"},
            ]}),
        )
        .await;
        let segment = app
            .create_segment("VIP", json!({"tag": {"has": "vip"}}))
            .await;
        let id = segment["id"].as_str().unwrap();
        let uuid = app.site.uuid.clone();
        let cli = Cli::on(&app.database_url);

        let api = app
            .get(&format!("/api/v1/stats/segment?segment_id={id}"))
            .await
            .text()
            .await
            .unwrap();
        let printed = cli.ok(&["segment", "stats", id, "--site", &uuid, "--json"]);
        assert_eq!(printed.trim_end(), api);
        assert!(
            cli.ok(&["segment", "stats", id, "--site", &uuid])
                .contains("members:      2")
        );

        let api = app
            .send_json(
                Method::POST,
                &format!("/api/v1/fetch/segments/{id}/match"),
                &json!({"email": "bob@example.com"}),
            )
            .await
            .text()
            .await
            .unwrap();
        let printed = cli.ok(&[
            "segment",
            "match",
            id,
            "--site",
            &uuid,
            "--email",
            "bob@example.com",
            "--json",
        ]);
        assert_eq!(printed.trim_end(), api);
        let printed = cli.ok(&[
            "segment",
            "match",
            id,
            "--site",
            &uuid,
            "--email",
            "ann@example.com",
        ]);
        assert!(
            printed.starts_with("ann@example.com is in segment"),
            "{printed}"
        );

        let csv = cli.ok(&["segment", "members", id, "--site", &uuid, "--format", "csv"]);
        let emails: Vec<&str> = csv
            .lines()
            .map(|line| line.split(',').nth(1).unwrap())
            .collect();
        assert_eq!(emails, ["email", "ann@example.com", "cy@example.com"]);
        let jsonl = cli.ok(&["segment", "members", id, "--site", &uuid]);
        let first: Value = serde_json::from_str(jsonl.lines().next().unwrap()).unwrap();
        assert_eq!(first["attributes"]["email"], "ann@example.com");

        let preview = cli.run_with_stdin(
            &["segment", "preview", "--site", &uuid, "--json"],
            r#"{"tag": {"none_of": ["vip"]}}"#,
        );
        let preview: Value = serde_json::from_slice(&preview.stdout).unwrap();
        assert_eq!(preview["data"]["user_count"], 1);
        assert_fails(
            &cli.run_with_stdin(
                &["segment", "preview", "--site", &uuid],
                r#"{"tag": {"hasnt": "vip"}}"#,
            ),
            "visitor_event_query/tag/hasnt unknown operator \"hasnt\"",
        );

        // A referenced segment cannot be discarded from the CLI either.
        app.create_segment(
            "Subscribed VIP",
            json!({"all": [{"segment": {"member_of": id}}, {"subscribed": true}]}),
        )
        .await;
        assert_fails(
            &cli.run(&["segment", "discard", id, "--site", &uuid]),
            "is referred to by segment",
        );
    });
}

#[tokio::test]
async fn members_are_exported_in_the_format_the_output_file_is_named_for() {
    let app = TestApp::spawn().await;
    app.send_json(
        Method::POST,
        "/api/v1/batch/subscribers",
        &json!({"subscribers": [{"email": "ann@example.com"}, {"email": "bob@example.com"}]}),
    )
    .await;
    let segment = app.create_segment("everyone", json!({})).await;
    let id = segment["id"].as_str().unwrap();
    let cli = Cli::on(&app.database_url);
    let export = |name: &str, extra: &[&str]| {
        let path = cli.dir.path().join(name);
        let mut args = vec!["segment", "members", id, "--site", &app.site.uuid];
        args.extend(["--output", path.to_str().unwrap()]);
        args.extend(extra);
        cli.ok(&args);
        std::fs::read_to_string(&path).unwrap()
    };
    let csv = export("m.csv", &[]);
    assert!(
        csv.starts_with("uuid,email,created_at,unsubscribed_at\n"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 3);
    assert!(export("M.CSV", &[]).starts_with("uuid,email,"));
    for name in ["m.jsonl", "m.json", "members"] {
        let jsonl = export(name, &[]);
        let first: Value = serde_json::from_str(jsonl.lines().next().unwrap()).unwrap();
        assert_eq!(first["attributes"]["email"], "ann@example.com", "{name}");
    }
    // --format wins over the name.
    let jsonl = export("forced.csv", &["--format", "jsonl"]);
    assert!(jsonl.starts_with('{'), "{jsonl}");
    let csv = export("forced.jsonl", &["--format", "csv"]);
    assert!(csv.starts_with("uuid,"), "{csv}");
    // Stdout, including `--output -`, is JSON Lines unless told otherwise.
    for extra in [&[][..], &["--output", "-"][..]] {
        let mut args = vec!["segment", "members", id, "--site", &app.site.uuid];
        args.extend(extra);
        assert!(cli.ok(&args).starts_with('{'));
    }
}

/// An export holds subscriber data: the file is its owner's only, even
/// under a umask that would let every user read (and write) it.
#[tokio::test]
async fn an_exported_file_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let app = TestApp::spawn().await;
    app.send_json(
        Method::POST,
        "/api/v1/batch/subscribers",
        &json!({"subscribers": [{"email": "ann@example.com"}]}),
    )
    .await;
    let segment = app.create_segment("everyone", json!({})).await;
    let id = segment["id"].as_str().unwrap();
    let cli = Cli::on(&app.database_url);
    for name in ["members.csv", "members.jsonl"] {
        let path = cli.dir.path().join(name);
        // The command as `Cli` runs it, through `sh` with no umask.
        let inner = cli.command(&[
            "segment",
            "members",
            id,
            "--site",
            &app.site.uuid,
            "--output",
            path.to_str().unwrap(),
        ]);
        let mut command = std::process::Command::new("sh");
        command
            .arg("-c")
            .arg("umask 000 && exec \"$0\" \"$@\"")
            .arg(inner.get_program())
            .args(inner.get_args())
            .current_dir(cli.dir.path());
        for (key, value) in inner.get_envs() {
            match value {
                Some(value) => command.env(key, value),
                None => command.env_remove(key),
            };
        }
        let output = command.output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .contains("ann@example.com")
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(format!("{mode:o}"), "600", "{name}");
    }
}

/// `--output x.csv` writes what `members.csv` does: a cell a spreadsheet
/// would run as a formula comes after a single quote.
#[tokio::test]
async fn an_exported_csv_writes_a_cell_a_spreadsheet_would_run_as_text() {
    use crate::subscribers::{FORMULA_EMAILS, csv_emails, formula_cells};
    let app = TestApp::spawn().await;
    let subscribers: Vec<Value> = FORMULA_EMAILS
        .iter()
        .map(|(email, _)| json!({"email": email}))
        .collect();
    app.send_json(
        Method::POST,
        "/api/v1/batch/subscribers",
        &json!({"subscribers": subscribers}),
    )
    .await;
    let segment = app.create_segment("everyone", json!({})).await;
    let id = segment["id"].as_str().unwrap();
    let cli = Cli::on(&app.database_url);
    let path = cli.dir.path().join("x.csv");
    cli.ok(&[
        "segment",
        "members",
        id,
        "--site",
        &app.site.uuid,
        "--output",
        path.to_str().unwrap(),
    ]);
    let csv = std::fs::read_to_string(&path).unwrap();
    assert_eq!(csv_emails(&csv), formula_cells(), "{csv}");
}
