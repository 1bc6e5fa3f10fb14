//! The `corral` binary: site, key and segment commands, `serve --demo`,
//! shutdown on SIGTERM, and durability of acknowledged writes across a crash.

use crate::helpers::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_corral");

pub(crate) struct Cli {
    pub(crate) dir: tempfile::TempDir,
    database: String,
}

impl Cli {
    pub(crate) fn new() -> Self {
        if !on_postgres() {
            return Self::sqlite();
        }
        let dir = tempfile::tempdir().unwrap();
        let database = fresh_database_blocking(dir.path());
        Self { dir, database }
    }

    /// On a SQLite file, whichever backend the other tests run on: for what
    /// only the embedded backend has (files beside the database).
    pub(crate) fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let database = format!("sqlite://{}", dir.path().join("cli.db").display());
        Self { dir, database }
    }

    pub(crate) fn on(database: &str) -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            database: database.to_owned(),
        }
    }

    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .args(["--database", &self.database])
            .current_dir(self.dir.path())
            .env_remove("CORRAL_DATABASE_URL")
            .env_remove("CORRAL_CONFIG")
            .env_remove("CORRAL_LOG");
        if !self.database.starts_with("sqlite:") {
            // Where checkpoints go beside a SQLite file; a server on
            // PostgreSQL writes them only where it is told.
            command.env(
                "CORRAL_CHECKPOINT_DIR",
                self.dir.path().join("cli.db-checkpoints"),
            );
        }
        command
    }

    pub(crate) fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// Runs a command that must succeed and returns its stdout.
    pub(crate) fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args)).unwrap()
    }

    pub(crate) fn new_site(&self) -> Value {
        self.json(&["site", "create", "Shop", "--json"])
    }
}

/// Asserts a failure: non-zero exit, one line on stderr containing `needle`.
fn assert_fails(output: &Output, needle: &str) {
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(needle), "{stderr}");
}

#[test]
fn serve_refuses_to_preload_a_site_that_does_not_exist() {
    let cli = Cli::new();
    let site = cli.new_site();
    let uuid = site["site_uuid"].as_str().unwrap();
    for preload in [
        "0123456789abcdef0123456789abcdef",
        &format!("{uuid},nosuch"),
    ] {
        let output = cli.run(&[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--log-level",
            "warn",
            "--preload",
            preload,
        ]);
        assert_fails(&output, "--preload: no site has the UUID");
    }
    let output = cli.run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--log-level",
        "warn",
        "--preload",
        "all",
        uuid,
    ]);
    assert_fails(&output, "--preload takes \"all\" or site UUIDs, not both");
}

#[test]
fn site_create_json_prints_exactly_one_object_with_three_keys() {
    let cli = Cli::new();
    let stdout = cli.ok(&["site", "create", "My shop", "--json"]);
    assert_eq!(stdout.lines().count(), 1);
    assert!(stdout.starts_with("{\"site_uuid\":\""), "{stdout}");
    let value: Value = serde_json::from_str(&stdout).unwrap();
    let object = value.as_object().unwrap();
    assert_eq!(object.len(), 3);
    for key in ["site_uuid", "publishable_key", "secret_key"] {
        let text = object[key].as_str().unwrap();
        assert!((28..=36).contains(&text.len()), "{key}: {text}");
    }
    let listed = cli.ok(&["site", "list"]);
    assert!(listed.contains(object["site_uuid"].as_str().unwrap()));
    assert!(listed.contains("My shop"));
}

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

#[tokio::test]
async fn revoking_a_key_from_the_cli_locks_it_out_of_a_running_server_at_once() {
    let app = TestApp::spawn().await;
    let cli = Cli::on(&app.database_url);
    let second: Value =
        serde_json::from_str(&cli.ok(&["key", "create", "--site", &app.site.uuid, "--json"]))
            .unwrap();
    let second = TestSite {
        uuid: app.site.uuid.clone(),
        publishable_key: second["publishable_key"].as_str().unwrap().to_owned(),
        secret_key: second["secret_key"].as_str().unwrap().to_owned(),
    };
    let path = "/api/v1/fetch/segments";
    assert_eq!(
        app.as_site(&second, Method::GET, path)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let keys = cli.ok(&["key", "list", "--site", &app.site.uuid]);
    assert_eq!(keys.lines().count(), 2);
    cli.ok(&["key", "revoke", &second.publishable_key]);
    assert_eq!(
        app.as_site(&second, Method::GET, path)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.get(path).await.status(), StatusCode::OK);
    assert!(
        cli.ok(&["key", "list", "--site", &app.site.uuid])
            .contains("revoked")
    );
}

/// A `corral serve --demo` child process on a free port.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) base: String,
    pub(crate) curl: String,
    /// The demo banner, up to its last line (the curl line).
    pub(crate) banner: Vec<String>,
}

impl Server {
    /// The banner's `export SITE=… PK=… SK=… BASE=…` line.
    pub(crate) fn export_line(&self) -> &str {
        self.banner
            .iter()
            .map(|line| line.trim())
            .find(|line| line.starts_with("export SITE="))
            .expect("the demo banner has an export line")
    }

    /// (site_uuid, publishable_key, secret_key) as the banner shows them.
    fn banner_credentials(&self) -> [String; 3] {
        ["site_uuid:", "publishable_key:", "secret_key:"].map(|label| {
            self.banner
                .iter()
                .find_map(|line| line.trim().strip_prefix(label))
                .unwrap_or_else(|| panic!("no {label} in {:?}", self.banner))
                .trim()
                .to_owned()
        })
    }
}

/// Reads the demo banner of a `serve --demo` child up to its curl line,
/// which names the port it bound, and waits until it answers.
fn read_banner(mut child: Child) -> Server {
    let reader = BufReader::new(child.stdout.take().unwrap());
    let mut banner = Vec::new();
    for line in reader.lines() {
        let line = line.unwrap();
        let last = line.trim_start().starts_with("curl ");
        banner.push(line);
        if last {
            break;
        }
    }
    let curl = banner
        .last()
        .filter(|line| line.trim_start().starts_with("curl "))
        .unwrap_or_else(|| panic!("the demo banner has no curl line: {banner:?}"))
        .trim()
        .to_owned();
    let host = curl
        .split("'http://")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap();
    let base = format!("http://{host}");
    wait_healthy(&base);
    Server {
        child,
        base,
        curl,
        banner,
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the server and reads its demo banner.
pub(crate) fn start_server(cli: &Cli) -> Server {
    start_demo(
        cli,
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--rate-limit-per-minute",
            "0",
            "--demo",
        ],
    )
}

/// Starts `corral ARGS` (a `serve --demo`) and reads its banner.
pub(crate) fn start_demo(cli: &Cli, args: &[&str]) -> Server {
    let child = cli
        .command(args)
        .env("CORRAL_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    read_banner(child)
}

fn wait_healthy(base: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(mut stream) = std::net::TcpStream::connect(base.trim_start_matches("http://")) {
            let _ =
                stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let mut reply = String::new();
            let _ = std::io::Read::read_to_string(&mut stream, &mut reply);
            if reply.starts_with("HTTP/1.1 200") {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("server at {base} never became healthy");
}

#[tokio::test]
async fn serve_demo_prints_a_curl_line_that_works_as_printed() {
    let cli = Cli::new();
    let server = start_server(&cli);
    let output = Command::new("sh")
        .arg("-c")
        .arg(&server.curl)
        .output()
        .unwrap();
    let body: Value = serde_json::from_slice(&output.stdout).expect("curl printed JSON");
    assert_eq!(body["data"].as_array().unwrap().len(), 4, "{body}");
    // It names the console, served where it says.
    let console = server
        .banner
        .iter()
        .position(|line| line.starts_with("Console"))
        .map(|i| server.banner[i + 1].trim().to_owned())
        .expect("the banner names the console");
    assert_eq!(console, format!("{}/", server.base));
    let page = reqwest::get(&console).await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("/console/app.js"));
    // The demo site comes with a sample audience.
    let stats = server.curl.replace("/fetch/segments?", "/stats/site?");
    let output = Command::new("sh").arg("-c").arg(&stats).output().unwrap();
    let counts: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(counts["user_count"], 40, "{counts}");
    assert!(counts["unsubscriber_count"].as_i64().unwrap() > 0);
    drop(server);
    // A second start keeps the one demo site and its working keys.
    let again = start_server(&cli);
    let output = Command::new("sh")
        .arg("-c")
        .arg(&again.curl)
        .output()
        .unwrap();
    let body: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(body["data"].as_array().unwrap().len(), 4);
    drop(again);
    assert_eq!(cli.ok(&["site", "list"]).lines().count(), 1);
}

#[tokio::test]
async fn acknowledged_writes_survive_a_crash_and_sigterm_stops_cleanly() {
    let cli = Cli::new();
    let site = cli.new_site();
    let uuid = site["site_uuid"].as_str().unwrap().to_owned();
    let mut server = start_server(&cli);
    let client = http_client();
    for i in 0..20 {
        let response = client
            .post(format!("{}/api/v1/fetch/segments?site_uuid={uuid}", server.base))
            .basic_auth(site["publishable_key"].as_str().unwrap(), site["secret_key"].as_str())
            .json(&json!({"segment": {"name": format!("durable {i}"), "visitor_event_query": {"foreign": {"i": i}}}}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    // SIGKILL: no chance to flush anything.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let listed = cli.json(&["segment", "list", "--site", &uuid, "--json"]);
    assert_eq!(listed["data"].as_array().unwrap().len(), 20);

    let mut server = start_server(&cli);
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = server.child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    if !cli.database.starts_with("sqlite:") {
        return;
    }
    // Stopped cleanly, the database file alone holds every write: the
    // write-ahead log was folded into it and removed. A command too.
    let wal = cli.dir.path().join("cli.db-wal");
    assert!(!wal.exists(), "{} left behind by serve", wal.display());
    cli.json(&["segment", "list", "--site", &uuid, "--json"]);
    assert!(!wal.exists(), "{} left behind by a command", wal.display());
    let alone = tempfile::tempdir().unwrap();
    std::fs::copy(cli.dir.path().join("cli.db"), alone.path().join("copy.db")).unwrap();
    let copy = Cli::on(&format!(
        "sqlite://{}",
        alone.path().join("copy.db").display()
    ));
    let listed = copy.json(&["segment", "list", "--site", &uuid, "--json"]);
    assert_eq!(listed["data"].as_array().unwrap().len(), 20);
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

/// A `corral serve` child process on `cli`'s database with its log (info)
/// in `log`, on a free port.
fn serve_logging(cli: &Cli, log: &std::path::Path) -> Server {
    let child = cli
        .command(&[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--rate-limit-per-minute",
            "0",
            "--stats-rate-limit-per-hour",
            "0",
            "--log-format",
            "json",
            "--demo",
        ])
        .env("CORRAL_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    read_banner(child)
}

#[tokio::test]
async fn after_a_crash_the_checkpoint_and_the_log_give_every_acknowledged_write() {
    let cli = Cli::new();
    let site = cli.new_site();
    let uuid = site["site_uuid"].as_str().unwrap().to_owned();
    let (pk, sk) = (
        site["publishable_key"].as_str().unwrap().to_owned(),
        site["secret_key"].as_str().unwrap().to_owned(),
    );
    let client = http_client();
    let log = cli.dir.path().join("serve.log");
    let mut server = serve_logging(&cli, &log);
    let call = |server: &Server, method: Method, path: &str, body: Option<Value>| {
        let joiner = if path.contains('?') { '&' } else { '?' };
        let mut request = client
            .request(
                method,
                format!("{}/api/v1{path}{joiner}site_uuid={uuid}", server.base),
            )
            .basic_auth(&pk, Some(&sk));
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send()
    };
    let segment: Value = call(
        &server,
        Method::POST,
        "/fetch/segments",
        Some(json!({"segment": {"name": "buyers", "visitor_event_query":
            {"event": {"type": "$purchase", "sum": {"of": "value.amount", "at_least": 10}}}}})),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let stats = format!(
        "/stats/segment?segment_id={}",
        segment["data"]["id"].as_str().unwrap()
    );
    let buy = |n: usize| {
        json!({"events": (0..n).map(|i| json!({"type": "$purchase", "email": format!("p{i}@x.com"),
            "details": {"value": {"amount": 10 + i}}})).collect::<Vec<_>>()})
    };
    let counted = |server: &Server| {
        let request = call(server, Method::GET, &stats, None);
        async move {
            let counts: Value = request.await.unwrap().json().await.unwrap();
            counts["user_count"].as_i64().unwrap()
        }
    };
    call(&server, Method::POST, "/batch/events", Some(buy(2)))
        .await
        .unwrap();
    assert_eq!(counted(&server).await, 2);
    // The first whole read is followed by a checkpoint.
    let checkpoints = cli.dir.path().join("cli.db-checkpoints");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_dir(&checkpoints).map_or(true, |d| {
        !d.flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with(".ckpt"))
    }) {
        assert!(Instant::now() < deadline, "no checkpoint was written");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Acknowledged, then killed before any request could apply it in memory.
    let response = call(&server, Method::POST, "/batch/events", Some(buy(5)))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    // And more written while no server runs.
    let events = cli.dir.path().join("more.jsonl");
    std::fs::write(
        &events,
        r#"{"type":"$purchase","email":"late@x.com","details":{"value":{"amount":99}}}"#,
    )
    .unwrap();
    cli.ok(&[
        "import",
        "events",
        "--site",
        &uuid,
        events.to_str().unwrap(),
    ]);

    let log = cli.dir.path().join("serve-again.log");
    let mut server = serve_logging(&cli, &log);
    assert_eq!(counted(&server).await, 6);
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("read from its checkpoint and the change log"),
        "the restart did not use the checkpoint: {logged}"
    );
    assert!(!logged.contains("read from the database"), "{logged}");
    // SIGTERM writes the checkpoint of where it stands.
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(server.child.wait().unwrap().success());
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("checkpoint written")
    );
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
fn serve_demo_with_no_reader_for_its_banner_ends_quietly_and_successfully() {
    let cli = Cli::new();
    let mut child = cli
        .command(&["serve", "--listen", "127.0.0.1:0", "--demo"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve kept running with nobody to read its banner");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{:?}", output.status);
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
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
        csv.starts_with("uuid,email,created_at,unsubscribed_at,fields\n"),
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

#[test]
fn json_lists_print_one_data_object_and_credentials_one_bare_object() {
    let cli = Cli::new();
    let site = cli.new_site();
    let uuid = site["site_uuid"].as_str().unwrap();
    let second = cli.ok(&["key", "create", "--site", uuid, "--json"]);
    // Exactly as `site create --json` prints: one object, the same keys in
    // the same order.
    assert_eq!(second.lines().count(), 1);
    let order: Vec<usize> = ["\"site_uuid\":", "\"publishable_key\":", "\"secret_key\":"]
        .map(|key| second.find(key).expect(key))
        .to_vec();
    assert!(order.is_sorted() && order[0] == 1, "{second}");
    let second: Value = serde_json::from_str(&second).unwrap();
    assert_eq!(second.as_object().unwrap().len(), 3);
    assert_eq!(second["site_uuid"], uuid);
    cli.ok(&["key", "revoke", second["publishable_key"].as_str().unwrap()]);

    let sites = cli.ok(&["site", "list", "--json"]);
    assert_eq!(sites.lines().count(), 1);
    let sites: Value = serde_json::from_str(&sites).unwrap();
    let data = sites["data"].as_array().unwrap();
    assert_eq!(data.len(), 1);
    assert_eq!(data[0]["site_uuid"], uuid);
    assert_eq!(data[0]["name"], "Shop");

    let keys = cli.ok(&["key", "list", "--site", uuid, "--json"]);
    assert_eq!(keys.lines().count(), 1);
    let keys: Value = serde_json::from_str(&keys).unwrap();
    let data = keys["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[0]["publishable_key"], site["publishable_key"]);
    assert_eq!(data[0]["revoked_at"], Value::Null);
    assert_eq!(data[1]["publishable_key"], second["publishable_key"]);
    assert!(data[1]["revoked_at"].is_string());
    assert!(data.iter().all(|k| k.get("secret_key").is_none()));

    let empty = Cli::new();
    assert_eq!(empty.json(&["site", "list", "--json"]), json!({"data": []}));
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

#[test]
fn gen_offers_no_database_options_but_every_other_command_takes_them_anywhere() {
    let cli = Cli::new();
    let help = cli.ok(&["gen", "--help"]);
    assert!(
        !help.contains("--database") && !help.contains("--config"),
        "{help}"
    );
    // Its help says the year ends on a fixed date, and how to end it now.
    assert!(help.contains("2026-11-01T00:00:00Z"), "{help}");
    assert!(help.contains("--until now"), "{help}");
    // Given anyway (as scripts that add it to every command do), it is ignored.
    let out = cli.dir.path().join("data");
    let wrote = cli.ok(&[
        "gen",
        "--subscribers",
        "3",
        "--events",
        "3",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(wrote.contains("dated from 2025-11-01"), "{wrote}");
    assert!(!cli.dir.path().join("cli.db").exists());
    let now = cli.ok(&[
        "gen",
        "--subscribers",
        "3",
        "--events",
        "3",
        "--until",
        "now",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!now.contains("to 2026-11-01T00:00:00.000Z"), "{now}");

    for args in [
        &["site", "list", "--help"][..],
        &["segment", "members", "--help"][..],
        &["serve", "--help"][..],
    ] {
        let help = cli.ok(args);
        assert!(
            help.contains("--database") && help.contains("--config"),
            "{args:?}: {help}"
        );
    }
    let database = format!("sqlite://{}", cli.dir.path().join("anywhere.db").display());
    for args in [
        &["--database", &database, "site", "create", "A"][..],
        &["site", "--database", &database, "create", "B"][..],
        &["site", "create", "C", "--database", &database][..],
    ] {
        let output = Command::new(BIN)
            .args(args)
            .env_remove("CORRAL_CONFIG")
            .current_dir(cli.dir.path())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let listed = Cli::on(&database).ok(&["site", "list"]);
    assert_eq!(listed.lines().count(), 3, "{listed}");
}

/// Starts `serve --demo` on `cli`'s database, returns its banner's
/// credentials (site_uuid, publishable_key, secret_key), and stops it.
fn demo_credentials(cli: &Cli) -> [String; 3] {
    start_server(cli).banner_credentials()
}

#[test]
fn serve_demo_restarts_print_the_same_credentials_while_they_work() {
    let cli = Cli::sqlite();
    let first = demo_credentials(&cli);
    let kept = cli.dir.path().join("cli.db-demo.json");
    let file: Value = serde_json::from_slice(&std::fs::read(&kept).unwrap()).unwrap();
    assert_eq!(
        file,
        json!({"site_uuid": first[0], "publishable_key": first[1], "secret_key": first[2]})
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&kept).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    assert_eq!(demo_credentials(&cli), first);
    let keys = cli.json(&["key", "list", "--site", &first[0], "--json"]);
    assert_eq!(keys["data"].as_array().unwrap().len(), 1, "{keys}");

    // Revoked, the pair is replaced, and the file with it.
    cli.ok(&["key", "revoke", &first[1]]);
    let second = demo_credentials(&cli);
    assert_eq!(second[0], first[0]);
    assert_ne!(second[1], first[1]);
    let file: Value = serde_json::from_slice(&std::fs::read(&kept).unwrap()).unwrap();
    assert_eq!(file["publishable_key"], second[1].as_str());
    assert_eq!(demo_credentials(&cli), second);
    // A file that does not hold working keys is replaced too.
    std::fs::write(&kept, "{\"site_uuid\":\"x\"}").unwrap();
    let third = demo_credentials(&cli);
    assert_ne!(third[1], second[1]);
    let keys = cli.json(&["key", "list", "--site", &first[0], "--json"]);
    let active = keys["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["revoked_at"].is_null())
        .count();
    assert_eq!(active, 2, "{keys}");
}
