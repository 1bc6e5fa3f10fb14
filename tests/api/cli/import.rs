//! `corral import`: JSON Lines and CSV, bad lines and lines over the caps skipped, a stop on request, a server following.

use super::{Cli, assert_fails};
use crate::helpers::*;
use serde_json::{Value, json};

#[tokio::test]
async fn importing_events_reports_bad_lines_by_number_and_keeps_the_rest() {
    let app = TestApp::spawn().await;
    let cli = Cli::on(&app.database_url);
    let file = cli.dir.path().join("events.jsonl");
    std::fs::write(
        &file,
        concat!(
            r#"{"type":"$pageview","email":"a@x.com","details":{"url":"/"}}"#, "\n",
            r#"{"type":"$tag","email":"a@x.com","details":{"tag":"imported"}}"#, "\n",
            "\n",
            r#"{"type":"$pageview","email":"not-an-email"}"#, "\n",
            "{broken\n",
            r#"{"type":"$purchase","email":"b@x.com","details":{"unique":{"key":"o1"},"value":{"amount":100}}}"#, "\n",
        ),
    )
    .unwrap();
    let output = cli.run(&[
        "import",
        "events",
        "--site",
        &app.site.uuid,
        file.to_str().unwrap(),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("line 4: email is invalid (skipped)"),
        "{stderr}"
    );
    assert!(stderr.contains("line 5: not valid JSON"), "{stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.starts_with("imported 3 events, skipped 2 bad lines"),
        "{stdout}"
    );
    assert_eq!(app.rows(Table::Events).await, 3);
    let a = app.subscriber("a@x.com").await;
    assert_eq!(
        a["attributes"]["cached_tag_ids"].as_array().unwrap().len(),
        1
    );
    // Importing the same file again stores the purchase only once.
    cli.run(&[
        "import",
        "events",
        "--site",
        &app.site.uuid,
        file.to_str().unwrap(),
    ]);
    let purchases = app.events().await;
    assert_eq!(
        purchases.iter().filter(|e| e.kind == "$purchase").count(),
        1
    );
}

#[tokio::test]
async fn importing_subscribers_reads_csv_with_typed_fields_and_stdin() {
    let app = TestApp::spawn().await;
    let cli = Cli::on(&app.database_url);
    let file = cli.dir.path().join("people.csv");
    std::fs::write(
        &file,
        "email,tags,First Name,seats,zip,beta\n\
         a@x.com,\"lead,vip\",Ada,3,01234,true\n\
         bad-email,,B,,,\n\
         b@x.com,,\"Smith, Jr.\",,,false\n",
    )
    .unwrap();
    let output = cli.run(&[
        "import",
        "subscribers",
        "--site",
        &app.site.uuid,
        file.to_str().unwrap(),
    ]);
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("line 3: email is invalid"), "{stderr}");
    let a = app.subscriber("a@x.com").await;
    assert_eq!(
        a["attributes"]["fields"],
        json!({"first_name": "Ada", "seats": 3, "zip": "01234", "beta": true})
    );
    assert_eq!(
        a["attributes"]["cached_tag_ids"].as_array().unwrap().len(),
        2
    );
    assert_eq!(
        app.subscriber("b@x.com").await["attributes"]["fields"]["first_name"],
        "Smith, Jr."
    );

    let piped = cli.run_with_stdin(
        &["import", "subscribers", "--site", &app.site.uuid, "-"],
        "{\"email\":\"c@x.com\",\"plan\":\"pro\"}\n",
    );
    assert!(piped.status.success());
    assert_eq!(
        app.subscriber("c@x.com").await["attributes"]["fields"]["plan"],
        "pro"
    );
    assert_fails(
        &cli.run(&["import", "events", "--site", "nope", file.to_str().unwrap()]),
        "no site has the uuid",
    );
    assert_fails(
        &cli.run(&[
            "import",
            "events",
            "--site",
            &app.site.uuid,
            "/nonexistent.jsonl",
        ]),
        "cannot read /nonexistent.jsonl",
    );
}

#[tokio::test]
async fn importing_skips_lines_over_the_caps_and_keeps_the_rest() {
    let app = TestApp::spawn().await;
    let cli = Cli::on(&app.database_url);
    let numbered = |prefix: &str, count: usize| -> Vec<String> {
        (0..count).map(|i| format!("{prefix}{i}")).collect()
    };
    let with_fields = |email: &str, keys: &[String]| {
        let mut item = serde_json::Map::new();
        item.insert("email".into(), json!(email));
        for key in keys {
            item.insert(key.clone(), json!(1));
        }
        Value::Object(item).to_string()
    };
    let mut lines = vec![
        // Lines 1 to 4: one cap each, per subscriber and per value.
        with_fields("a@x.com", &numbered("f", 201)),
        json!({"email": "b@x.com", "tags": numbered("t", 501).join(",")}).to_string(),
        json!({"email": "c@x.com", "bio": "x".repeat(8 * 1024)}).to_string(),
        json!({"email": "d@x.com", "plan": "pro", "tags": "vip"}).to_string(),
    ];
    // Lines 5 to 9 bring the site to 1,000 field keys (`plan` is one);
    // line 10 would be the 1,001st.
    for i in 0..5 {
        let keys = numbered(&format!("k{i}_"), if i == 4 { 199 } else { 200 });
        lines.push(with_fields(&format!("k{i}@x.com"), &keys));
    }
    lines.push(with_fields("e@x.com", &["brand_new".to_owned()]));
    // Lines 11 to 30 bring the site to 10,000 tags (`vip` is one); line 31
    // would be one more.
    for i in 0..20 {
        let tags = numbered(&format!("s{i}-"), if i == 19 { 499 } else { 500 }).join(",");
        lines.push(json!({"email": format!("s{i}@x.com"), "tags": tags}).to_string());
    }
    lines.push(json!({"email": "f@x.com", "tags": "brand-new"}).to_string());
    let file = cli.dir.path().join("people.jsonl");
    std::fs::write(&file, lines.join("\n")).unwrap();

    let output = cli.run(&[
        "import",
        "subscribers",
        "--site",
        &app.site.uuid,
        file.to_str().unwrap(),
    ]);
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    for skipped in [
        "line 1: subscriber would have 201 fields; at most 200 (skipped)",
        "line 2: subscriber would have 501 tags; at most 500 (skipped)",
        "line 3: field \"bio\" would take 8194 bytes; at most 8192 (skipped)",
        "line 10: site would have 1001 field keys; at most 1000 (skipped)",
        "line 31: site would have 10001 tags; at most 10000 (skipped)",
    ] {
        assert!(stderr.contains(skipped), "{skipped}: {stderr}");
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.starts_with("imported 26 subscribers, skipped 5 bad lines"),
        "{stdout}"
    );
    for email in ["a@x.com", "b@x.com", "c@x.com", "e@x.com", "f@x.com"] {
        assert_eq!(app.subscriber(email).await, Value::Null, "{email}");
    }
    assert_eq!(
        app.subscriber("d@x.com").await["attributes"]["fields"],
        json!({"plan": "pro"})
    );

    // Events: details over 64 KiB, and a tag the site has no room for.
    let events = [
        json!({"type": "t", "email": "d@x.com", "details": {"f": "x".repeat(64 * 1024)}}),
        json!({"type": "$tag", "email": "d@x.com", "details": {"tag": "brand-new"}}),
        json!({"type": "$tag", "email": "d@x.com", "details": {"tag": "S0-0"}}),
    ];
    let lines: Vec<String> = events.iter().map(Value::to_string).collect();
    let file = cli.dir.path().join("events.jsonl");
    std::fs::write(&file, lines.join("\n")).unwrap();
    let output = cli.run(&[
        "import",
        "events",
        "--site",
        &app.site.uuid,
        file.to_str().unwrap(),
    ]);
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("line 1: details would take 65544 bytes; at most 65536 (skipped)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("line 2: site would have 10001 tags; at most 10000 (skipped)"),
        "{stderr}"
    );
    assert_eq!(app.rows(Table::Events).await, 1);
    assert_eq!(
        app.subscriber("d@x.com").await["attributes"]["cached_tag_ids"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

/// `user_count` of a segment, as the running server answers it now.
async fn members_now(app: &TestApp, id: &str) -> i64 {
    let counts: Value = app
        .get(&format!("/api/v1/stats/segment?segment_id={id}"))
        .await
        .json()
        .await
        .unwrap();
    counts["user_count"].as_i64().unwrap()
}

#[tokio::test]
async fn a_running_servers_answers_follow_writes_by_another_process_at_once() {
    let app = TestApp::spawn().await;
    let signed_up = app
        .create_segment("signed up", json!({"event": {"type": "signup"}}))
        .await;
    let signed_up = signed_up["id"].as_str().unwrap().to_owned();
    let vip = app
        .create_segment("vip", json!({"tag": {"has": "vip"}}))
        .await;
    let vip = vip["id"].as_str().unwrap().to_owned();
    let both = app
        .create_segment(
            "vip sign-ups",
            json!({"all": [{"segment": {"member_of": vip.parse::<i64>().unwrap()}},
                           {"segment": {"member_of": signed_up.parse::<i64>().unwrap()}}]}),
        )
        .await;
    let both = both["id"].as_str().unwrap().to_owned();
    // The audience is resident from here on.
    assert_eq!(members_now(&app, &signed_up).await, 0);

    let cli = Cli::on(&app.database_url);
    let events = cli.dir.path().join("events.jsonl");
    std::fs::write(
        &events,
        ["a", "b", "c"]
            .map(|n| format!(r#"{{"type":"signup","email":"{n}@example.com"}}"#))
            .join("\n"),
    )
    .unwrap();
    cli.ok(&[
        "import",
        "events",
        "--site",
        &app.site.uuid,
        events.to_str().unwrap(),
    ]);
    assert_eq!(members_now(&app, &signed_up).await, 3);

    let people = cli.dir.path().join("people.jsonl");
    std::fs::write(
        &people,
        r#"{"email":"a@example.com","tags":"vip"}
{"email":"z@example.com","tags":"vip"}"#,
    )
    .unwrap();
    cli.ok(&[
        "import",
        "subscribers",
        "--site",
        &app.site.uuid,
        people.to_str().unwrap(),
    ]);
    assert_eq!(members_now(&app, &vip).await, 2);
    assert_eq!(members_now(&app, &both).await, 1);

    // A segment's query changed by the CLI: those referring to it follow.
    let query = cli.dir.path().join("query.json");
    std::fs::write(&query, r#"{"tag": {"has_not": "vip"}}"#).unwrap();
    cli.ok(&[
        "segment",
        "update",
        &vip,
        "--site",
        &app.site.uuid,
        "--query",
        query.to_str().unwrap(),
    ]);
    assert_eq!(members_now(&app, &vip).await, 2);
    assert_eq!(members_now(&app, &both).await, 2);
}

#[tokio::test]
async fn an_import_stopped_on_request_finishes_its_batch_and_says_how_far_it_got() {
    let app = TestApp::spawn().await;
    let cli = Cli::on(&app.database_url);
    let uuid = app.site.uuid.clone();
    let (child, stdin) = import_in_the_middle(
        &app,
        &cli,
        &["import", "events", "--site", &uuid, "--batch", "1000", "-"],
    )
    .await;
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    drop(stdin);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("stopped on request: imported 5000 events and skipped 0 bad lines, every line up to line 5000 done"),
        "{stderr}"
    );
    // Exactly the batches it reported, nothing of the unfinished one.
    assert_eq!(app.rows(Table::Events).await, 5_000);
}

/// Starts `corral ARGS` reading events from a stdin kept open, writes five
/// whole batches of 1,000 and the start of a sixth that never completes,
/// and waits until the five are stored: the import is certainly in the
/// middle of its work.
async fn import_in_the_middle(
    app: &TestApp,
    cli: &Cli,
    args: &[&str],
) -> (std::process::Child, std::process::ChildStdin) {
    use std::io::Write as _;
    use std::process::Stdio;
    let mut child = cli
        .command(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for i in 0..5_300 {
        writeln!(stdin, "{}", event_line(i)).unwrap();
    }
    stdin.flush().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while app.rows(Table::Events).await < 5_000 {
        assert!(
            std::time::Instant::now() < deadline,
            "the batches never landed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    (child, stdin)
}

/// `n` of every stored event, sorted.
async fn stored_ns(app: &TestApp) -> Vec<i64> {
    let mut ns: Vec<i64> = app
        .events()
        .await
        .iter()
        .map(|e| {
            serde_json::from_str::<Value>(&e.details).unwrap()["n"]
                .as_i64()
                .unwrap()
        })
        .collect();
    ns.sort_unstable();
    ns
}

fn event_line(i: usize) -> String {
    format!(
        r#"{{"type":"$pageview","email":"u{}@x.com","details":{{"n":{i}}}}}"#,
        i % 50
    )
}

#[tokio::test]
async fn an_import_killed_outright_resumes_after_exactly_what_it_stored() {
    let app = TestApp::spawn().await;
    let cli = Cli::on(&app.database_url);
    let args = |resume: bool| {
        let mut args = vec![
            "import",
            "events",
            "--site",
            app.site.uuid.as_str(),
            "--batch",
            "1000",
            "--import-id",
            "nightly-2026-12-07",
        ];
        if resume {
            args.push("--resume");
        }
        args.push("-");
        args
    };
    let (mut child, stdin) = import_in_the_middle(&app, &cli, &args(false)).await;
    // Killed with no chance to say anything.
    child.kill().unwrap();
    child.wait().unwrap();
    drop(stdin);
    assert_eq!(app.rows(Table::Events).await, 5_000);

    // Without --resume nothing is written, and the error says what to do.
    let input: String = (0..8_000).map(|i| event_line(i) + "\n").collect();
    let refused = cli.run_with_stdin(&args(false), &input);
    assert_fails(
        &refused,
        "stopped after line 5000 (5000 events stored); --resume",
    );
    assert_eq!(app.rows(Table::Events).await, 5_000);

    // The whole input again, resumed: every line once.
    let resumed = cli.run_with_stdin(&args(true), &input);
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success(), "{stderr}");
    assert!(
        stderr.contains("resuming after line 5000 (5000 events imported"),
        "{stderr}"
    );
    assert!(
        String::from_utf8_lossy(&resumed.stdout)
            .starts_with("imported 8000 events, skipped 0 bad lines"),
        "{}",
        String::from_utf8_lossy(&resumed.stdout)
    );
    assert_eq!(stored_ns(&app).await, (0..8_000).collect::<Vec<i64>>());

    // Done: resuming again does nothing.
    let again = cli.run_with_stdin(&args(true), &input);
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("imported whole already"));
    assert_eq!(app.rows(Table::Events).await, 8_000);
}

#[tokio::test]
async fn a_file_imported_whole_is_imported_again_only_when_asked() {
    let app = TestApp::spawn().await;
    let cli = Cli::on(&app.database_url);
    let path = cli.dir.path().join("events.jsonl");
    let input: String = (0..30).map(|i| event_line(i) + "\n").collect();
    std::fs::write(&path, &input).unwrap();
    let path = path.to_str().unwrap();
    let import = |extra: &[&str]| {
        let mut args = vec!["import", "events", "--site", app.site.uuid.as_str()];
        args.extend_from_slice(extra);
        args.push(path);
        cli.run(&args)
    };
    assert!(import(&[]).status.success());
    assert_eq!(app.rows(Table::Events).await, 30);
    // The same file (same fingerprint) again: refused, nothing written.
    assert_fails(
        &import(&[]),
        "was imported whole (30 events stored); --resume",
    );
    assert_eq!(app.rows(Table::Events).await, 30);
    assert!(import(&["--resume"]).status.success());
    assert_eq!(app.rows(Table::Events).await, 30);
    // Asked for: imported again, whole.
    assert!(import(&["--restart"]).status.success());
    assert_eq!(app.rows(Table::Events).await, 60);
    // A changed file is another input.
    std::fs::write(path, input + &event_line(30) + "\n").unwrap();
    assert!(import(&[]).status.success());
    assert_eq!(app.rows(Table::Events).await, 91);
}
