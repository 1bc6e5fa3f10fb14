//! `corral serve`: preloading, the demo's banner and keys, SIGTERM, acknowledged writes across a crash.

use super::{Cli, Server, assert_fails, read_banner, start_server};
use crate::helpers::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
fn a_start_on_a_busy_port_leaves_no_database_behind() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(super::BIN)
        .args(["serve", "--demo", "--listen", &port, "--log-level", "warn"])
        .args(["--database", "sqlite://x.db"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {port}")),
        "{stderr}"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "a failed start left {left:?}");
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

/// What a server sends on `stream` until it closes it.
async fn read_to_close(stream: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer))
        .await
        .expect("the server closed the connection")
        .unwrap();
    String::from_utf8(answer).unwrap()
}

#[tokio::test]
async fn sigterm_answers_every_request_in_flight_and_accepts_no_new_one() {
    use base64::Engine;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let cli = Cli::new();
    // The bodies wait as long as the test needs.
    let mut server = super::start_demo(
        &cli,
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--rate-limit-per-minute",
            "0",
            "--body-read-timeout-secs",
            "600",
            "--demo",
        ],
    );
    let [site, publishable, secret] = server.banner_credentials();
    let address = server.base.trim_start_matches("http://").to_owned();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{publishable}:{secret}"));
    // Four writes of 50 events each, begun: the server has read each head
    // and waits for the body (100 Continue), of which it has half.
    let mut in_flight = Vec::new();
    for i in 0..4 {
        let events: Vec<Value> = (0..50)
            .map(|j| json!({"type": "$sigterm", "email": format!("w{i}-{j}@x.com")}))
            .collect();
        let body = json!({ "events": events }).to_string().into_bytes();
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        let head = format!(
            "POST /api/v1/batch/events?site_uuid={site} HTTP/1.1\r\nHost: corral\r\n\
             Authorization: Basic {basic}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nExpect: 100-continue\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut go_on = [0u8; 64];
        let n = stream.read(&mut go_on).await.unwrap();
        assert!(
            go_on[..n].starts_with(b"HTTP/1.1 100 Continue"),
            "{}",
            String::from_utf8_lossy(&go_on[..n])
        );
        let (first, rest) = body.split_at(body.len() / 2);
        stream.write_all(first).await.unwrap();
        in_flight.push((stream, rest.to_vec()));
    }

    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // Once the server has taken the signal, a new connection is refused,
    // while those four are still waiting for the rest of their bodies.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let connect = tokio::net::TcpStream::connect(&address);
        match tokio::time::timeout(Duration::from_secs(1), connect).await {
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
            // Queued as the listening socket closed, and reset with it.
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Ok(Err(e)) => panic!("{e}"),
            // Taken, or queued where nobody takes it.
            Ok(Ok(_)) | Err(_) => {}
        }
        assert!(
            Instant::now() < deadline,
            "connections still accepted after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Every request begun is answered whole, 200.
    for (mut stream, rest) in in_flight {
        stream.write_all(&rest).await.unwrap();
        let answer = read_to_close(&mut stream).await;
        let (head, body) = answer.split_once("\r\n\r\n").expect("a whole answer");
        assert!(head.starts_with("HTTP/1.1 200"), "{answer}");
        let length: usize = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().unwrap())
            })
            .expect("a content length");
        assert_eq!(body.len(), length, "{answer}");
        let result: Value = serde_json::from_str(body).unwrap();
        assert_eq!(result["results"], 50, "{body}");
    }
    let exit = server.child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");

    // And their writes are stored: 200 subscribers beside the demo's 40.
    let again = start_server(&cli);
    let stats: Value = http_client()
        .get(format!("{}/api/v1/stats/site?site_uuid={site}", again.base))
        .basic_auth(&publishable, Some(&secret))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["user_count"], 240, "{stats}");
}

/// A connection to `address` whose receive buffer is a few KiB: a response
/// it does not read stays on the server's side after that.
async fn narrow_connection(address: &str) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(address.parse().unwrap()).await.unwrap()
}

#[tokio::test]
async fn sigterm_answers_a_stalled_body_sends_a_download_whole_and_drops_one_never_read() {
    use base64::Engine;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let cli = Cli::new();
    let site = cli.new_site();
    let uuid = site["site_uuid"].as_str().unwrap().to_owned();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        site["publishable_key"].as_str().unwrap(),
        site["secret_key"].as_str().unwrap()
    ));
    // 30,000 members of about 330 bytes of CSV each (10 MB): far more than
    // the socket buffers between the server and a client that reads nothing.
    const MEMBERS: usize = 30_000;
    let note = "n".repeat(256);
    let lines: String = (0..MEMBERS)
        .map(|i| {
            format!(
                "{}\n",
                json!({"email": format!("s{i}@example.com"), "i": i, "note": note})
            )
        })
        .collect();
    let file = cli.dir.path().join("members.jsonl");
    std::fs::write(&file, lines).unwrap();
    cli.ok(&[
        "import",
        "subscribers",
        "--site",
        &uuid,
        file.to_str().unwrap(),
    ]);
    let query = cli.dir.path().join("everyone.json");
    std::fs::write(
        &query,
        json!({"groups": [{"filters": [{"field": {"key": "i", "at_least": 0}}]}]}).to_string(),
    )
    .unwrap();
    let segment = cli.json(&[
        "segment",
        "create",
        "--site",
        &uuid,
        "--name",
        "Everyone",
        "--query",
        query.to_str().unwrap(),
        "--json",
    ]);
    let id = segment["data"]["id"].as_str().unwrap().to_owned();

    // Requests are bounded by 15 s and bodies that stop by 2 s: the
    // shutdown by their sum. A response nobody reads is otherwise closed
    // after the keep-alive timeout, here longer than the test.
    let mut server = super::start_demo(
        &cli,
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--rate-limit-per-minute",
            "0",
            "--request-timeout-secs",
            "15",
            "--body-read-timeout-secs",
            "2",
            "--keep-alive-timeout-secs",
            "600",
            "--demo",
        ],
    );
    let address = server.base.trim_start_matches("http://").to_owned();
    // A write whose body stops half way.
    let mut stalled = tokio::net::TcpStream::connect(&address).await.unwrap();
    let body = json!({"events": [{"type": "$stalled", "email": "a@x.com"}]}).to_string();
    let head = format!(
        "POST /api/v1/batch/events?site_uuid={uuid} HTTP/1.1\r\nHost: corral\r\n\
         Authorization: Basic {basic}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    stalled.write_all(head.as_bytes()).await.unwrap();
    stalled
        .write_all(&body.as_bytes()[..body.len() / 2])
        .await
        .unwrap();
    // Two downloads of every member, both begun (their status line read):
    // one read after the signal, one never read.
    let download = format!(
        "GET /api/v1/fetch/segments/{id}/members.csv?site_uuid={uuid} HTTP/1.1\r\n\
         Host: corral\r\nAuthorization: Basic {basic}\r\n\r\n"
    );
    let mut begun = Vec::new();
    for _ in 0..2 {
        let mut stream = narrow_connection(&address).await;
        stream.write_all(download.as_bytes()).await.unwrap();
        let mut status = [0u8; 12];
        stream.read_exact(&mut status).await.unwrap();
        assert_eq!(
            &status,
            b"HTTP/1.1 200",
            "{}",
            String::from_utf8_lossy(&status)
        );
        begun.push(stream);
    }
    let (mut late, never) = (begun.remove(0), begun.remove(0));

    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // Once the signal is taken (a new connection is refused)…
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match tokio::net::TcpStream::connect(&address).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "connections still accepted after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // …the download read from then on arrives whole: every member, and the
    // chunked body's last chunk.
    let mut csv = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), late.read_to_end(&mut csv))
        .await
        .expect("the server closed the connection")
        .unwrap();
    let csv = String::from_utf8_lossy(&csv);
    assert!(
        csv.ends_with("\r\n0\r\n\r\n"),
        "the download was cut short: {} bytes",
        csv.len()
    );
    let rows = csv
        .lines()
        .filter(|line| line.contains("@example.com"))
        .count();
    assert_eq!(rows, MEMBERS);
    // The stalled body is answered 408.
    let answer = read_to_close(&mut stalled).await;
    let (head, body) = answer.split_once("\r\n\r\n").expect("a whole answer");
    assert!(head.starts_with("HTTP/1.1 408"), "{answer}");
    assert_eq!(
        serde_json::from_str::<Value>(body).unwrap(),
        json!({"error": "Request Timeout"})
    );
    // And the download nobody reads does not keep the server from stopping.
    let deadline = Instant::now() + Duration::from_secs(120);
    let exit = loop {
        if let Some(exit) = server.child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "the server did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "{exit:?}");
    drop(never);
}
