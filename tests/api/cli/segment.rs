//! Segment management in the API's shapes, followed by a running server; a query typed on a terminal.

use super::Cli;
use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::process::Command;

#[test]
fn segments_are_managed_from_the_command_line_in_the_apis_shape() {
    let cli = Cli::new();
    let site = cli.new_site();
    let uuid = site["site_uuid"].as_str().unwrap();
    let created = cli.run_with_stdin(
        &[
            "segment",
            "create",
            "--site",
            uuid,
            "--name",
            "VIP",
            "--description",
            "big",
            "--json",
        ],
        r#"{"foreign": {"z": 1.10, "a": 12345678901234567890}}"#,
    );
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let created: Value = serde_json::from_slice(&created.stdout).unwrap();
    assert_eq!(created["data"]["type"], "segments");
    let id = created["data"]["id"].as_str().unwrap().to_owned();

    let query_file = cli.dir.path().join("q.json");
    std::fs::write(&query_file, r#"{"tag": {"has": "changed"}}"#).unwrap();
    let updated = cli.json(&[
        "segment",
        "update",
        &id,
        "--site",
        uuid,
        "--name",
        "VIP 2",
        "--query",
        query_file.to_str().unwrap(),
        "--clear-description",
        "--json",
    ]);
    assert_eq!(updated["data"]["attributes"]["name"], "VIP 2");
    assert_eq!(updated["data"]["attributes"]["description"], Value::Null);
    assert_eq!(
        updated["data"]["attributes"]["visitor_event_query"],
        json!({"tag": {"has": "changed"}})
    );

    let listed = cli.json(&["segment", "list", "--site", uuid, "--json"]);
    assert_eq!(listed["data"][0], updated["data"]);
    let shown = cli.ok(&["segment", "show", &id, "--site", uuid]);
    assert!(
        shown.contains("VIP 2") && shown.contains(r#"{"tag":{"has":"changed"}}"#),
        "{shown}"
    );

    cli.ok(&["segment", "discard", &id, "--site", uuid]);
    assert_eq!(
        cli.json(&["segment", "list", "--site", uuid, "--json"]),
        json!({"data": []})
    );
    let discarded = cli.json(&["segment", "list", "--site", uuid, "--discarded", "--json"]);
    assert_eq!(discarded["data"][0]["id"], id.as_str());
    cli.ok(&["segment", "restore", &id, "--site", uuid]);
    assert_eq!(
        cli.json(&["segment", "list", "--site", uuid, "--json"])["data"][0]["id"],
        id.as_str()
    );
}

#[test]
fn cli_output_matches_the_api_byte_for_byte() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let app = TestApp::spawn().await;
        app.create_segment("Same", json!({"foreign": {"n": 1.10}}))
            .await;
        let api = app
            .get("/api/v1/fetch/segments")
            .await
            .text()
            .await
            .unwrap();
        let cli = Cli::on(&app.database_url);
        let printed = cli.ok(&["segment", "list", "--site", &app.site.uuid, "--json"]);
        assert_eq!(printed.trim_end(), api);
    });
}

#[tokio::test]
async fn changes_made_by_the_cli_are_served_by_a_running_server_at_once() {
    let app = TestApp::spawn().await;
    let kept = app.create_segment("kept", json!({})).await;
    let kept_path = format!("/api/v1/fetch/segments/{}", kept["id"].as_str().unwrap());
    // Warm whatever the server keeps in memory.
    assert_eq!(app.listed_names().await, ["kept"]);
    assert_eq!(app.get(&kept_path).await.status(), StatusCode::OK);
    let cli = Cli::on(&app.database_url);
    let created = cli.run_with_stdin(
        &[
            "segment",
            "create",
            "--site",
            &app.site.uuid,
            "--name",
            "from cli",
            "--json",
        ],
        r#"{"foreign": {"via": "cli"}}"#,
    );
    assert!(created.status.success());
    assert_eq!(app.listed_names().await, ["from cli", "kept"]);
    cli.ok(&[
        "segment",
        "update",
        kept["id"].as_str().unwrap(),
        "--site",
        &app.site.uuid,
        "--name",
        "renamed",
    ]);
    let shown: Value = app.get(&kept_path).await.json().await.unwrap();
    assert_eq!(shown["data"]["attributes"]["name"], "renamed");
    cli.ok(&[
        "segment",
        "discard",
        kept["id"].as_str().unwrap(),
        "--site",
        &app.site.uuid,
    ]);
    assert_eq!(app.get(&kept_path).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.listed_names().await, ["from cli"]);
}

/// Runs the binary with its stdin a terminal (a pseudo-terminal made by
/// python3) on which `typed` is typed and then Ctrl-D; stdout and stderr are
/// pipes. Returns (success, stdout, stderr).
fn run_on_a_terminal(cli: &Cli, args: &[&str], typed: &str) -> (bool, String, String) {
    const ON_A_PTY: &str = r#"
import json, os, subprocess, sys
master, slave = os.openpty()
child = subprocess.Popen(sys.argv[2:], stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
os.close(slave)
os.write(master, sys.argv[1].encode() + b"\n\x04")
out, err = child.communicate(timeout=60)
print(json.dumps({"ok": child.returncode == 0, "out": out.decode(), "err": err.decode()}))
"#;
    let command = cli.command(args);
    let program = command.get_program().to_owned();
    let full: Vec<std::ffi::OsString> = command.get_args().map(|a| a.to_owned()).collect();
    let output = Command::new("python3")
        .arg("-c")
        .arg(ON_A_PTY)
        .arg(typed)
        .arg(program)
        .args(full)
        .current_dir(cli.dir.path())
        .env_remove("CORRAL_DATABASE_URL")
        .env_remove("CORRAL_CONFIG")
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: Value = serde_json::from_slice(&output.stdout).unwrap();
    (
        result["ok"].as_bool().unwrap(),
        result["out"].as_str().unwrap().to_owned(),
        result["err"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn a_query_awaited_on_a_terminal_is_announced_on_stderr_and_only_there() {
    let cli = Cli::new();
    let site = cli.new_site();
    let uuid = site["site_uuid"].as_str().unwrap();
    let hint = "reading the query (visitor_event_query JSON) from stdin; end with Ctrl-D\n";
    let (ok, out, err) = run_on_a_terminal(
        &cli,
        &[
            "segment", "create", "--site", uuid, "--name", "All", "--json",
        ],
        "{}",
    );
    assert!(ok, "{err}");
    assert_eq!(err, hint);
    let created: Value = serde_json::from_str(&out).unwrap();
    let id = created["data"]["id"].as_str().unwrap();
    let (ok, _, err) = run_on_a_terminal(
        &cli,
        &["segment", "update", id, "--site", uuid, "--query", "-"],
        r#"{"tag": {"has": "x"}}"#,
    );
    assert!(ok, "{err}");
    assert_eq!(err, hint);
    let (ok, out, err) = run_on_a_terminal(&cli, &["segment", "preview", "--site", uuid], "{}");
    assert!(ok, "{err}");
    assert_eq!(err, hint);
    assert!(out.starts_with("members: 0"), "{out}");
    // Piped, the query comes without a word on stderr.
    let piped = cli.run_with_stdin(&["segment", "preview", "--site", uuid], "{}");
    assert!(piped.status.success());
    assert_eq!(String::from_utf8_lossy(&piped.stderr), "");
    // Without --query, update leaves the query alone and reads nothing.
    let (ok, _, err) = run_on_a_terminal(
        &cli,
        &["segment", "update", id, "--site", uuid, "--name", "Renamed"],
        "",
    );
    assert!(ok, "{err}");
    assert_eq!(err, "");
    let shown = cli.json(&["segment", "show", id, "--site", uuid, "--json"]);
    assert_eq!(
        shown["data"]["attributes"]["visitor_event_query"],
        json!({"tag": {"has": "x"}})
    );
    let help = cli.ok(&["segment", "update", "--help"]);
    assert!(help.contains("absent: the query is unchanged"), "{help}");
}
