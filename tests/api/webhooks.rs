//! Membership-change webhooks, through the real binary and a real receiver
//! (an HTTP server in the test): joins and leaves through each write path,
//! signatures checked with a stock HMAC library, retries keeping their
//! event ids, a crash between commit and delivery, a definition change
//! notifying exactly the difference, and the walls (private targets,
//! another site's segments).

use crate::cli::{Cli, Server, start_demo};
use crate::helpers::*;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Sha256;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a receiver was sent: each request's headers and body.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(HeaderMap, String)>>>);

impl Received {
    fn all(&self) -> Vec<(HeaderMap, String)> {
        self.0.lock().unwrap().clone()
    }

    /// Every notification received, in order, counting repeats.
    fn notifications(&self) -> Vec<Value> {
        self.all()
            .iter()
            .flat_map(|(_, body)| {
                let body: Value = serde_json::from_str(body).unwrap();
                body["data"].as_array().unwrap().clone()
            })
            .collect()
    }

    /// Waits until `count` notifications arrived (or fails after 20 s).
    async fn wait_for(&self, count: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = self.notifications();
            if got.len() >= count {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{count} notifications expected, {} arrived: {got:?}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A receiver on `port` (0 for any) that answers 500 to its first `fail`
/// requests, then 200.
async fn receiver(port: u16, fail: usize) -> (String, Received) {
    let received = Received::default();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let url = format!("http://{}/hooks/corral", listener.local_addr().unwrap());
    let seen = received.clone();
    let app = axum::Router::new().route(
        "/hooks/corral",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let seen = seen.clone();
            async move {
                let mut all = seen.0.lock().unwrap();
                all.push((headers, body));
                if all.len() <= fail {
                    AxumStatus::INTERNAL_SERVER_ERROR
                } else {
                    AxumStatus::OK
                }
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

/// A `serve --demo` that may send webhooks to loopback.
fn server(cli: &Cli) -> Server {
    start_demo(
        cli,
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--rate-limit-per-minute",
            "0",
            "--stats-rate-limit-per-hour",
            "0",
            "--allow-private-webhook-targets",
            "--demo",
        ],
    )
}

struct Site {
    keys: [String; 3],
    client: reqwest::Client,
}

impl Site {
    fn new(cli: &Cli) -> Self {
        let site = cli.new_site();
        Self {
            keys: ["site_uuid", "publishable_key", "secret_key"]
                .map(|k| site[k].as_str().unwrap().to_owned()),
            client: http_client(),
        }
    }

    async fn send(&self, server: &Server, method: Method, path: &str, body: Value) -> Value {
        let joiner = if path.contains('?') { '&' } else { '?' };
        let response = self
            .client
            .request(
                method,
                format!(
                    "{}/api/v1{path}{joiner}site_uuid={}",
                    server.base, self.keys[0]
                ),
            )
            .basic_auth(&self.keys[1], Some(&self.keys[2]))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {text}");
        serde_json::from_str(&text).unwrap()
    }

    async fn segment(&self, server: &Server, name: &str, query: Value) -> String {
        let created = self
            .send(
                server,
                Method::POST,
                "/fetch/segments",
                json!({"segment": {"name": name, "visitor_event_query": query}}),
            )
            .await;
        created["data"]["id"].as_str().unwrap().to_owned()
    }

    async fn webhook(&self, server: &Server, url: &str, segments: &[&str]) -> Value {
        self.send(
            server,
            Method::POST,
            "/fetch/webhooks",
            json!({"webhook": {"url": url, "segment_ids": segments}}),
        )
        .await["data"]
            .clone()
    }

    async fn commands(&self, server: &Server, commands: Value) {
        self.send(
            server,
            Method::POST,
            "/fetch/commands",
            json!({"command": commands}),
        )
        .await;
    }
}

/// (type, email, reason) of each notification.
fn summary(notifications: &[Value]) -> Vec<(String, String, String)> {
    notifications
        .iter()
        .map(|n| {
            (
                n["type"].as_str().unwrap().to_owned(),
                n["subscriber"]["email"].as_str().unwrap().to_owned(),
                n["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn triple(kind: &str, email: &str, reason: &str) -> (String, String, String) {
    (kind.into(), email.into(), reason.into())
}

#[tokio::test]
async fn joins_and_leaves_through_every_write_path_are_notified_signed() {
    let cli = Cli::new();
    let site = Site::new(&cli);
    let server = server(&cli);
    let vips = site
        .segment(&server, "vips", json!({"tag": {"has": "vip"}}))
        .await;
    site.commands(
        &server,
        json!([{"command": "add_tag", "email": "already@x.com", "query": "vip"}]),
    )
    .await;
    let (url, received) = receiver(0, 0).await;
    let webhook = site.webhook(&server, &url, &[&vips]).await;
    let secret = webhook["attributes"]["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{webhook}");
    let listed = site
        .send(&server, Method::GET, "/fetch/webhooks", json!({}))
        .await;
    assert!(
        listed["data"][0]["attributes"].get("secret").is_none(),
        "{listed}"
    );

    // A command, a batch of events, a subscriber import, and the CLI's
    // import in another process each make someone join.
    site.commands(
        &server,
        json!([{"command": "add_tag", "email": "cmd@x.com", "query": "VIP"}]),
    )
    .await;
    site.send(
        &server,
        Method::POST,
        "/batch/events",
        json!({"events": [{"type": "$tag", "email": "event@x.com", "details": {"tag": "vip"}}]}),
    )
    .await;
    site.send(
        &server,
        Method::POST,
        "/batch/subscribers",
        json!({"subscribers": [{"email": "import@x.com", "tags": "vip"}]}),
    )
    .await;
    let file = cli.dir.path().join("subscribers.jsonl");
    std::fs::write(&file, "{\"email\":\"cli@x.com\",\"tags\":\"vip\"}\n").unwrap();
    let imported = cli
        .command(&[
            "import",
            "subscribers",
            "--site",
            &site.keys[0],
            file.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(imported.status.success(), "{imported:?}");
    // And one leaves.
    site.commands(
        &server,
        json!([{"command": "remove_tag", "email": "already@x.com", "query": "vip"}]),
    )
    .await;

    let got = received.wait_for(5).await;
    let mut joined: Vec<_> = summary(&got);
    joined.sort();
    assert_eq!(
        joined,
        [
            triple("segment.member_added", "cli@x.com", "data"),
            triple("segment.member_added", "cmd@x.com", "data"),
            triple("segment.member_added", "event@x.com", "data"),
            triple("segment.member_added", "import@x.com", "data"),
            triple("segment.member_removed", "already@x.com", "data"),
        ]
    );
    // Nobody already in when the webhook was made was announced.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(received.notifications().len(), 5);

    for (headers, body) in received.all() {
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(
            headers["corral-webhook-id"],
            webhook["id"].as_str().unwrap()
        );
        // Checked as a receiver would, with the hmac crate.
        let signature = headers["corral-signature"].to_str().unwrap();
        let (t, v1) = signature
            .strip_prefix("t=")
            .and_then(|s| s.split_once(",v1="))
            .unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{t}.{body}").as_bytes());
        mac.verify_slice(&hex::decode(v1).unwrap())
            .expect("the signature verifies");
        let age = chrono::Utc::now().timestamp() - t.parse::<i64>().unwrap();
        assert!((0..60).contains(&age), "{age}");
    }
    for n in &got {
        assert_eq!(n["segment"], json!({"id": vips, "name": "vips"}));
        assert_eq!(n["subscriber"]["uuid"].as_str().unwrap().len(), 32);
        assert!(n["event_id"].as_str().unwrap().starts_with("evt_"));
    }
    let deliveries = site
        .send(
            &server,
            Method::GET,
            &format!(
                "/fetch/webhooks/{}/deliveries",
                webhook["id"].as_str().unwrap()
            ),
            json!({}),
        )
        .await;
    let deliveries = deliveries["data"].as_array().unwrap();
    assert_eq!(deliveries.len(), 5);
    assert!(
        deliveries
            .iter()
            .all(|d| d["attributes"]["status"] == "delivered"
                && d["attributes"]["last_response_code"] == 200)
    );
}

#[tokio::test]
async fn a_receiver_that_fails_twice_gets_the_same_event_ids_again() {
    let cli = Cli::new();
    let site = Site::new(&cli);
    let server = server(&cli);
    let vips = site
        .segment(&server, "vips", json!({"tag": {"has": "vip"}}))
        .await;
    let (url, received) = receiver(0, 2).await;
    let webhook = site.webhook(&server, &url, &[&vips]).await;
    site.commands(
        &server,
        json!([{"command": "add_tag", "email": "a@x.com", "query": "vip"},
               {"command": "add_tag", "email": "b@x.com", "query": "vip"}]),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while received.all().len() < 3 {
        assert!(
            Instant::now() < deadline,
            "{} requests",
            received.all().len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let bodies: Vec<String> = received.all().into_iter().map(|(_, b)| b).collect();
    let ids = |body: &str| -> Vec<String> {
        let body: Value = serde_json::from_str(body).unwrap();
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["event_id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&bodies[0]).len(), 2);
    assert_eq!(ids(&bodies[0]), ids(&bodies[1]));
    assert_eq!(ids(&bodies[0]), ids(&bodies[2]));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(received.all().len(), 3, "nothing after the 200");
    let deliveries = site
        .send(
            &server,
            Method::GET,
            &format!(
                "/fetch/webhooks/{}/deliveries",
                webhook["id"].as_str().unwrap()
            ),
            json!({}),
        )
        .await;
    // One delivery for each of the two notifications, each tried three times.
    let listed = deliveries["data"].as_array().unwrap();
    let mut listed_ids: Vec<String> = listed
        .iter()
        .map(|d| d["attributes"]["event_id"].as_str().unwrap().to_owned())
        .collect();
    listed_ids.sort();
    let mut sent_ids = ids(&bodies[0]);
    sent_ids.sort();
    assert_eq!(listed_ids, sent_ids, "{deliveries}");
    for d in listed {
        assert_eq!(d["attributes"]["attempts"], 3, "{d}");
        assert_eq!(d["attributes"]["status"], "delivered");
    }
}

#[tokio::test]
async fn a_definition_change_notifies_exactly_the_difference() {
    let cli = Cli::new();
    let site = Site::new(&cli);
    let server = server(&cli);
    site.commands(
        &server,
        json!([{"command": "add_tag", "email": "a@x.com", "query": "red"},
               {"command": "add_tag", "email": "b@x.com", "query": "red"},
               {"command": "add_tag", "email": "b@x.com", "query": "blue"},
               {"command": "add_tag", "email": "c@x.com", "query": "blue"}]),
    )
    .await;
    let colour = site
        .segment(&server, "colour", json!({"tag": {"has": "red"}}))
        .await;
    let (url, received) = receiver(0, 0).await;
    site.webhook(&server, &url, &[&colour]).await;
    site.send(
        &server,
        Method::PATCH,
        &format!("/fetch/segments/{colour}"),
        json!({"segment": {"visitor_event_query": {"tag": {"has": "blue"}}}}),
    )
    .await;
    let got = received.wait_for(2).await;
    let mut changes = summary(&got);
    changes.sort();
    assert_eq!(
        changes,
        [
            triple("segment.member_added", "c@x.com", "definition_changed"),
            triple("segment.member_removed", "a@x.com", "definition_changed"),
        ]
    );
    // Discarded, everyone leaves; restored, everyone is back.
    site.send(
        &server,
        Method::DELETE,
        &format!("/fetch/segments/{colour}"),
        json!({}),
    )
    .await;
    let got = received.wait_for(4).await;
    let mut left = summary(&got[2..]);
    left.sort();
    assert_eq!(
        left,
        [
            triple("segment.member_removed", "b@x.com", "segment_discarded"),
            triple("segment.member_removed", "c@x.com", "segment_discarded"),
        ]
    );
    site.send(
        &server,
        Method::POST,
        &format!("/fetch/segments/{colour}/restore"),
        json!({}),
    )
    .await;
    let got = received.wait_for(6).await;
    assert!(summary(&got[4..])
        .iter()
        .all(|(kind, _, reason)| kind == "segment.member_added" && reason == "segment_restored"));
}

#[tokio::test]
async fn notifications_committed_before_a_crash_are_delivered_after_it() {
    let cli = Cli::new();
    let site = Site::new(&cli);
    let mut first = server(&cli);
    let vips = site
        .segment(&first, "vips", json!({"tag": {"has": "vip"}}))
        .await;
    // Nothing listens there yet: the notifications wait in the outbox.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let webhook = site
        .webhook(
            &first,
            &format!("http://127.0.0.1:{port}/hooks/corral"),
            &[&vips],
        )
        .await;
    let id = webhook["id"].as_str().unwrap().to_owned();
    site.commands(
        &first,
        json!([{"command": "add_tag", "email": "a@x.com", "query": "vip"}]),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let pending = loop {
        let listed = site
            .send(
                &first,
                Method::GET,
                &format!("/fetch/webhooks/{id}/deliveries"),
                json!({}),
            )
            .await;
        if let Some(d) = listed["data"].as_array().unwrap().first() {
            break d.clone();
        }
        assert!(Instant::now() < deadline, "no notification was committed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_ne!(pending["attributes"]["status"], "delivered");
    first.child.kill().unwrap();
    first.child.wait().unwrap();

    let (_, received) = receiver(port, 0).await;
    let second = server(&cli);
    let got = received.wait_for(1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["event_id"], pending["attributes"]["event_id"]);
    assert_eq!(got[0]["subscriber"]["email"], "a@x.com");
    drop(second);
}

#[tokio::test]
async fn private_targets_and_other_sites_segments_are_refused() {
    let app = TestApp::spawn().await;
    let mine = app.create_segment("mine", json!({})).await;
    let other = app.new_site().await;
    let theirs = app.create_segment_for(&other, "theirs", json!({})).await;
    let create = |body: Value| {
        app.request(Method::POST, "/api/v1/fetch/webhooks")
            .json(&body)
            .send()
    };
    for url in [
        "http://127.0.0.1:9/x",
        "http://10.0.0.8/x",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/x",
        "http://localhost/x",
    ] {
        let refused = create(json!({"webhook": {"url": url, "segment_ids": [mine["id"]]}}))
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY, "{url}");
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["errors"][0]["field"], "url", "{url}: {body}");
    }
    let refused = create(json!({"webhook": {"url": "https://1.1.1.1/hook",
        "segment_ids": [theirs["id"]]}}))
    .await
    .unwrap();
    assert_invalid(
        refused,
        &[(
            "segment_ids",
            &format!("segment {} not found", theirs["id"].as_str().unwrap()),
        )],
    )
    .await;
    for (body, field) in [
        (
            json!({"webhook": {"url": "ftp://x.com/", "segment_ids": [mine["id"]]}}),
            "url",
        ),
        (
            json!({"webhook": {"url": "https://1.1.1.1/", "segment_ids": []}}),
            "segment_ids",
        ),
        (
            json!({"webhook": {"url": "https://1.1.1.1/", "segment_ids": [mine["id"]],
            "events": ["segment.member_moved"]}}),
            "events",
        ),
        (json!({"webhook": {"segment_ids": [mine["id"]]}}), "url"),
    ] {
        let refused = create(body.clone()).await.unwrap();
        assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let errors: Value = refused.json().await.unwrap();
        assert_eq!(errors["errors"][0]["field"], field, "{body}: {errors}");
    }
    // A public literal address is fine without any lookup; the other site
    // sees none of it.
    let made = create(json!({"webhook": {"url": "https://1.1.1.1/hook",
        "segment_ids": [mine["id"]], "events": ["segment.member_added"]}}))
    .await
    .unwrap();
    assert_eq!(made.status(), StatusCode::CREATED);
    let made: Value = made.json().await.unwrap();
    let path = format!(
        "/api/v1/fetch/webhooks/{}",
        made["data"]["id"].as_str().unwrap()
    );
    assert_eq!(
        app.as_site(&other, Method::GET, &path)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
    let theirs_list: Value = app
        .as_site(&other, Method::GET, "/api/v1/fetch/webhooks")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(theirs_list["data"], json!([]));
    assert_eq!(
        app.request(Method::DELETE, &path)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(app.get(&path).await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_cli_manages_webhooks_with_the_same_rules() {
    let cli = Cli::new();
    let site = Site::new(&cli);
    let server = server(&cli);
    let vips = site
        .segment(&server, "vips", json!({"tag": {"has": "vip"}}))
        .await;
    let uuid = site.keys[0].clone();
    let run = |args: &[&str]| cli.command(args).output().unwrap();
    let refused = run(&[
        "webhook",
        "create",
        "--site",
        &uuid,
        "--url",
        "http://127.0.0.1:9/x",
        "--segment",
        &vips,
    ]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("url") && stderr.contains("127.0.0.1"),
        "{stderr}"
    );
    let made = run(&[
        "webhook",
        "create",
        "--site",
        &uuid,
        "--url",
        "http://127.0.0.1:9/x",
        "--segment",
        &vips,
        "--event",
        "segment.member_added",
        "--allow-private",
        "--json",
    ]);
    assert!(made.status.success(), "{made:?}");
    let made: Value = serde_json::from_slice(&made.stdout).unwrap();
    assert!(
        made["data"]["attributes"]["secret"]
            .as_str()
            .unwrap()
            .starts_with("whsec_")
    );
    assert_eq!(
        made["data"]["attributes"]["events"],
        json!(["segment.member_added"])
    );
    // The server lists what the CLI made, without the secret.
    let listed = site
        .send(&server, Method::GET, "/fetch/webhooks", json!({}))
        .await;
    assert_eq!(listed["data"][0]["id"], made["data"]["id"]);
    assert!(listed["data"][0]["attributes"].get("secret").is_none());
    let id = made["data"]["id"].as_str().unwrap();
    let deliveries = run(&["webhook", "deliveries", "--site", &uuid, id, "--json"]);
    assert!(deliveries.status.success(), "{deliveries:?}");
    assert_eq!(
        serde_json::from_slice::<Value>(&deliveries.stdout).unwrap(),
        json!({"data": []})
    );
    assert!(
        run(&["webhook", "delete", "--site", &uuid, id])
            .status
            .success()
    );
    let listed = site
        .send(&server, Method::GET, "/fetch/webhooks", json!({}))
        .await;
    assert_eq!(listed["data"], json!([]));
    let gone = run(&["webhook", "delete", "--site", &uuid, id]);
    assert!(!gone.status.success());
}

/// The code block of `language` in docs/webhooks.md.
fn doc_snippet(language: &str) -> String {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/webhooks.md")).unwrap();
    let start = doc
        .find(&format!("```{language}\n"))
        .unwrap_or_else(|| panic!("no {language} block"))
        + language.len()
        + 4;
    let end = start + doc[start..].find("```").unwrap();
    doc[start..end].to_owned()
}

#[test]
fn the_documented_verification_snippets_accept_corrals_signatures_only() {
    let secret = "whsec_0123456789abcdef";
    let body = r#"{"data":[{"event_id":"evt_1","type":"segment.member_added"}]}"#;
    let now = chrono::Utc::now().timestamp();
    let header = corral::webhooks::delivery::signature(secret, now, body);
    let old = corral::webhooks::delivery::signature(secret, now - 3_600, body);
    let cases = [
        (header.as_str(), body, true),
        (
            header.as_str(),
            &body.replace("added", "removed")[..],
            false,
        ),
        (old.as_str(), body, false),
        ("t=1,v1=zz", body, false),
    ];
    let js = doc_snippet("js");
    let python = doc_snippet("python");
    for (header, body, expected) in cases {
        let arg = |s: &str| serde_json::to_string(s).unwrap();
        let node = std::process::Command::new("node")
            .arg("-e")
            .arg(format!(
                "{js}\nconsole.log(verifyCorralSignature({}, {}, {}));",
                arg(secret),
                arg(header),
                arg(body)
            ))
            .output()
            .expect("node runs");
        assert_eq!(
            String::from_utf8_lossy(&node.stdout).trim(),
            expected.to_string(),
            "node, {header}: {node:?}"
        );
        let py = std::process::Command::new("python3")
            .arg("-c")
            .arg(format!(
                "{python}\nprint(verify_corral_signature({}, {}, {}.encode()))",
                arg(secret),
                arg(header),
                arg(body)
            ))
            .output()
            .expect("python3 runs");
        let printed = if expected { "True" } else { "False" };
        assert_eq!(
            String::from_utf8_lossy(&py.stdout).trim(),
            printed,
            "python, {header}: {py:?}"
        );
    }
}

#[tokio::test]
async fn many_changes_go_out_in_batches_of_at_most_a_hundred_in_order() {
    let cli = Cli::new();
    let site = Site::new(&cli);
    let server = server(&cli);
    let vips = site
        .segment(&server, "vips", json!({"tag": {"has": "vip"}}))
        .await;
    let (url, received) = receiver(0, 0).await;
    site.webhook(&server, &url, &[&vips]).await;
    let emails: Vec<String> = (0..250).map(|i| format!("m{i:03}@x.com")).collect();
    site.send(
        &server,
        Method::POST,
        "/batch/subscribers",
        json!({"subscribers": emails.iter().map(|e| json!({"email": e, "tags": "vip"})).collect::<Vec<_>>()}),
    )
    .await;
    let got = received.wait_for(250).await;
    let sizes: Vec<usize> = received
        .all()
        .iter()
        .map(|(_, body)| {
            serde_json::from_str::<Value>(body).unwrap()["data"]
                .as_array()
                .unwrap()
                .len()
        })
        .collect();
    assert!(sizes.iter().all(|n| *n <= 100), "{sizes:?}");
    assert_eq!(sizes.iter().sum::<usize>(), 250);
    // In the order they joined (the order they were imported).
    let order: Vec<&str> = got
        .iter()
        .map(|n| n["subscriber"]["email"].as_str().unwrap())
        .collect();
    assert_eq!(order, emails.iter().map(String::as_str).collect::<Vec<_>>());
}

/// A tracker of this process's own, on the test server's store, driven by
/// the test's clock (the server's own tracker runs only in `corral serve`).
async fn track(app: &TestApp, store: &std::sync::Arc<dyn corral::storage::Store>) -> usize {
    let live = corral::live::Live::new(store.clone());
    corral::webhooks::tracker::Tracker::new(std::sync::Arc::clone(store))
        .tick(&live, app.clock.as_ref())
        .await
        .unwrap()
}

async fn notifications_of(app: &TestApp, webhook: &Value) -> Vec<Value> {
    let path = format!(
        "/api/v1/fetch/webhooks/{}/deliveries",
        webhook["data"]["id"].as_str().unwrap()
    );
    let listed: Value = app.get(&path).await.json().await.unwrap();
    listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["attributes"]["notification"].clone())
        .collect()
}

#[tokio::test]
async fn a_window_that_moves_with_the_clock_alone_is_a_time_window_change() {
    let app = TestApp::spawn().await;
    let recent = app
        .create_segment(
            "recent",
            json!({"event": {"type": "login", "when": {"within_last": {"days": 1}}}}),
        )
        .await;
    app.send_json(
        Method::POST,
        "/api/v1/batch/events",
        &json!({"events": [{"type": "login", "email": "a@x.com"}]}),
    )
    .await;
    let webhook: Value = app
        .send_json(
            Method::POST,
            "/api/v1/fetch/webhooks",
            &json!({"webhook": {"url": "https://1.1.1.1/hook", "segment_ids": [recent["id"]]}}),
        )
        .await
        .json()
        .await
        .unwrap();
    // Nothing moved: nothing to say, however often it is looked at.
    track(&app, &app.store).await;
    assert_eq!(notifications_of(&app, &webhook).await, Vec::<Value>::new());
    // Two days on, nobody wrote, and a@x.com has left.
    app.clock.advance_ms(2 * 86_400_000);
    assert_eq!(track(&app, &app.store).await, 1);
    let said = notifications_of(&app, &webhook).await;
    assert_eq!(said.len(), 1, "{said:?}");
    assert_eq!(said[0]["type"], "segment.member_removed");
    assert_eq!(said[0]["reason"], "time_window");
    assert_eq!(said[0]["subscriber"]["email"], "a@x.com");
}

#[tokio::test]
async fn of_several_servers_exactly_one_writes_each_change() {
    let Some(url) = fresh_postgres_database().await else {
        return eprintln!("several trackers: skipped, CORRAL_TEST_POSTGRES names no cluster");
    };
    let app = TestApp::spawn_on(url.clone()).await;
    let vips = app
        .create_segment("vips", json!({"tag": {"has": "vip"}}))
        .await;
    let webhook: Value = app
        .send_json(
            Method::POST,
            "/api/v1/fetch/webhooks",
            &json!({"webhook": {"url": "https://1.1.1.1/hook", "segment_ids": [vips["id"]]}}),
        )
        .await
        .json()
        .await
        .unwrap();
    app.send_json(
        Method::POST,
        "/api/v1/fetch/commands",
        &json!({"command": [{"command": "add_tag", "email": "a@x.com", "query": "vip"}]}),
    )
    .await;
    // Four servers' trackers (stores of their own) see the change at once.
    let mut stores = Vec::new();
    for _ in 0..4 {
        stores.push(corral::storage::open(&url).await.unwrap());
    }
    let written = futures_util::future::join_all(stores.iter().map(|s| track(&app, s))).await;
    assert_eq!(written.iter().sum::<usize>(), 1, "{written:?}");
    let said = notifications_of(&app, &webhook).await;
    assert_eq!(said.len(), 1, "{said:?}");
    assert_eq!(said[0]["reason"], "data");
}

#[tokio::test]
async fn malformed_webhook_requests_are_refused_field_by_field_and_change_nothing() {
    let app = TestApp::spawn().await;
    let mine = app.create_segment("mine", json!({})).await;
    for (body, field, message) in [
        (
            json!({"webhook": {"url": 7, "segment_ids": [mine["id"]]}}),
            "url",
            "must be a string",
        ),
        (
            json!({"webhook": {"url": "https://1.1.1.1/", "segment_ids": [1]}}),
            "segment_ids",
            "must be an array of string ids",
        ),
        (
            json!({"webhook": {"url": "https://1.1.1.1/", "segment_ids": ["x"]}}),
            "segment_ids",
            "must be segment ids",
        ),
        (
            json!({"webhook": {"url": "https://1.1.1.1/", "segment_ids": [mine["id"]], "events": "all"}}),
            "events",
            "must be an array of strings",
        ),
        (
            json!({"webhook": {"url": "https://1.1.1.1/", "segment_ids": [mine["id"]], "disabled": "no"}}),
            "disabled",
            "must be true or false",
        ),
        (
            json!({"webhook": {"url": "https://1.1.1.1/", "segment_ids": [mine["id"]], "colour": 1}}),
            "colour",
            "is not a known field",
        ),
        (json!({"hook": {}}), "hook", "is not a known field"),
    ] {
        let refused = app
            .send_json(Method::POST, "/api/v1/fetch/webhooks", &body)
            .await;
        assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let errors: Value = refused.json().await.unwrap();
        assert!(
            errors["errors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["field"] == field && e["message"] == message),
            "{body}: {errors}"
        );
    }
    let listed: Value = app
        .get("/api/v1/fetch/webhooks")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["data"], json!([]));
    let made: Value = app
        .send_json(
            Method::POST,
            "/api/v1/fetch/webhooks",
            &json!({"webhook": {"url": "https://1.1.1.1/", "segment_ids": [mine["id"]]}}),
        )
        .await
        .json()
        .await
        .unwrap();
    let path = format!(
        "/api/v1/fetch/webhooks/{}/deliveries",
        made["data"]["id"].as_str().unwrap()
    );
    for limit in ["0", "101", "x"] {
        assert_invalid(
            app.get(&format!("{path}?limit={limit}")).await,
            &[("limit", "must be a whole number from 1 to 100")],
        )
        .await;
    }
    let retry = format!(
        "/api/v1/fetch/webhooks/{}/deliveries/999/retry",
        made["data"]["id"].as_str().unwrap()
    );
    assert_json(
        app.send_json(Method::POST, &retry, &json!({})).await,
        StatusCode::NOT_FOUND,
        json!({"error": "Delivery not found"}),
    )
    .await;
}
