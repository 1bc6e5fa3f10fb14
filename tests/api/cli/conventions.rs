//! What every command shares: settings, the database URL, one-line errors, a reader that goes away.

use super::{BIN, Cli, assert_fails};
use crate::helpers::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::process::{Command, Stdio};

#[test]
fn cli_errors_are_one_line_and_a_failing_exit() {
    let cli = Cli::new();
    let site = cli.new_site();
    let uuid = site["site_uuid"].as_str().unwrap();
    assert_fails(
        &cli.run(&["segment", "list", "--site", "nope"]),
        "no site has the uuid",
    );
    assert_fails(
        &cli.run_with_stdin(
            &["segment", "create", "--site", uuid, "--name", "x"],
            "[1, 2]",
        ),
        "visitor_event_query must be a JSON object",
    );
    assert_fails(
        &cli.run_with_stdin(
            &["segment", "create", "--site", uuid, "--name", "x"],
            "{oops",
        ),
        "visitor_event_query is not valid JSON",
    );
    assert_fails(
        &cli.run_with_stdin(
            &["segment", "create", "--site", uuid, "--name", "x"],
            r#"{"event": {"type": "$login", "count": {"gte": 3}}}"#,
        ),
        "visitor_event_query/event/count/gte unknown operator \"gte\"",
    );
    assert_fails(
        &cli.run_with_stdin(&["segment", "create", "--site", uuid, "--name", "  "], "{}"),
        "name can't be blank",
    );
    cli.run_with_stdin(
        &["segment", "create", "--site", uuid, "--name", "Taken"],
        "{}",
    );
    assert_fails(
        &cli.run_with_stdin(
            &["segment", "create", "--site", uuid, "--name", "TAKEN"],
            "{}",
        ),
        "name has already been taken",
    );
    assert_fails(
        &cli.run(&["segment", "show", "12345", "--site", uuid]),
        "segment 12345 not found",
    );
    assert_fails(
        &cli.run(&["segment", "show", "x1", "--site", uuid]),
        "is not a segment id",
    );
    assert_fails(
        &cli.run(&["key", "revoke", "p-unknown"]),
        "no key pair has the publishable key",
    );
    assert_fails(
        &Command::new(BIN)
            .args(["site", "list", "--database", "mysql://localhost/db"])
            .output()
            .unwrap(),
        "unsupported database URL",
    );
    // Only the one segment that was valid exists.
    assert_eq!(
        cli.json(&["segment", "list", "--site", uuid, "--json"])["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn a_config_file_supplies_the_database_and_flags_override_it() {
    let cli = Cli::new();
    let from_file = cli.dir.path().join("from-file.db");
    std::fs::write(
        cli.dir.path().join("corral.toml"),
        format!("database_url = \"sqlite://{}\"\n", from_file.display()),
    )
    .unwrap();
    let run = |extra: &[&str]| {
        let mut command = Command::new(BIN);
        command
            .args(["site", "create", "S", "--json"])
            .args(extra)
            .current_dir(cli.dir.path())
            .env_remove("CORRAL_DATABASE_URL");
        command.output().unwrap()
    };
    assert!(run(&[]).status.success());
    assert!(from_file.exists());
    let flagged = cli.dir.path().join("flag.db");
    assert!(
        run(&["--database", &format!("sqlite://{}", flagged.display())])
            .status
            .success()
    );
    assert!(flagged.exists());
    std::fs::write(cli.dir.path().join("corral.toml"), "databse_url = 1\n").unwrap();
    assert_fails(&run(&[]), "corral.toml");
}

/// Runs `command` with its stdout a pipe whose reader takes the first `take`
/// bytes (none: it closes the pipe at once) and then goes away, as
/// `corral … | head -c N` does. Returns the exit status and stderr.
fn run_into_closed_pipe(mut command: Command, take: usize) -> (std::process::ExitStatus, String) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    if take > 0 {
        let mut head = vec![0; take];
        std::io::Read::read_exact(&mut stdout, &mut head).unwrap();
    }
    drop(stdout);
    let output = child.wait_with_output().unwrap();
    (
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_reader_that_goes_away_ends_every_command_quietly_and_successfully() {
    let app = TestApp::spawn().await;
    // More than a pipe holds (64 KiB), so the writer is still writing when
    // the reader leaves: segments with large queries, sites with long names,
    // members with a long field.
    for i in 0..3 {
        app.create_segment(
            &format!("big {i}"),
            json!({"foreign": {"pad": "x".repeat(40_000)}}),
        )
        .await;
    }
    let everyone = app.create_segment("everyone", json!({})).await;
    let everyone = everyone["id"].as_str().unwrap().to_owned();
    for i in 0..20 {
        app.store
            .create_site(
                &format!("site {i} {}", "n".repeat(5_000)),
                &corral::credentials::generate_site_uuid(),
                &corral::credentials::KeyPair::generate(),
                false,
                START_MS,
            )
            .await
            .unwrap();
    }
    let people: Vec<Value> = (0..1_000)
        .map(|i| json!({"email": format!("p{i}@example.com"), "bio": "b".repeat(300)}))
        .collect();
    let response = app
        .send_json(
            Method::POST,
            "/api/v1/batch/subscribers",
            &json!({ "subscribers": people }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let cli = Cli::on(&app.database_url);
    let uuid = app.site.uuid.as_str();
    let out = cli.dir.path().join("gen");
    let commands: &[&[&str]] = &[
        &["segment", "list", "--site", uuid, "--json"],
        &["segment", "list", "--site", uuid],
        &["site", "list"],
        &["site", "list", "--json"],
        &["segment", "members", &everyone, "--site", uuid],
        &[
            "segment", "members", &everyone, "--site", uuid, "--format", "csv",
        ],
        &["segment", "show", &everyone, "--site", uuid],
        &["segment", "stats", &everyone, "--site", uuid, "--json"],
        &["key", "list", "--site", uuid, "--json"],
        &["site", "create", "Piped", "--json"],
        &[
            "gen",
            "--subscribers",
            "5",
            "--events",
            "5",
            "--out",
            out.to_str().unwrap(),
        ],
    ];
    for args in commands {
        for take in [0, 5] {
            // The short answers fit in the pipe: only a reader gone before
            // the first write shows them a closed pipe.
            let large = matches!(
                args[..2],
                ["segment", "list"] | ["segment", "members"] | ["site", "list"]
            );
            if take > 0 && !large {
                continue;
            }
            let (status, stderr) = run_into_closed_pipe(cli.command(args), take);
            assert!(
                status.success(),
                "{args:?} after {take} bytes: {status:?} {stderr}"
            );
            assert_eq!(stderr, "", "{args:?} after {take} bytes");
        }
    }
}

#[test]
fn a_database_that_cannot_be_opened_is_named_without_its_password() {
    let output = Command::new(BIN)
        .args([
            "site",
            "list",
            "--database",
            "sqlite:///nonexistent/dir/x.db",
        ])
        .env_remove("CORRAL_CONFIG")
        .output()
        .unwrap();
    assert_fails(
        &output,
        "error: cannot open the database sqlite:///nonexistent/dir/x.db: unable to open database file",
    );
    let output = Command::new(BIN)
        .args([
            "site",
            "list",
            "--database",
            "postgres://ann:hunter2@db.example/corral",
        ])
        .env_remove("CORRAL_CONFIG")
        .output()
        .unwrap();
    assert_fails(
        &output,
        "error: cannot open the database postgres://***@db.example/corral: \
         cannot reach the PostgreSQL server",
    );
    assert!(!String::from_utf8_lossy(&output.stderr).contains("hunter2"));
    let output = Command::new(BIN)
        .args([
            "site",
            "list",
            "--database",
            "mysql://ann:hunter2@db.example/corral",
        ])
        .env_remove("CORRAL_CONFIG")
        .output()
        .unwrap();
    assert_fails(
        &output,
        "unsupported database URL \"mysql://***@db.example/corral\"",
    );
    assert!(!String::from_utf8_lossy(&output.stderr).contains("hunter2"));
}
