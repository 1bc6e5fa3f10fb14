//! Membership-change webhooks, through the real binary and a real receiver
//! (an HTTP server in the test): joins and leaves through each write path,
//! signatures checked by hand with a stock HMAC library and with the
//! Standard Webhooks libraries of npm and PyPI (the tests named
//! `standard_webhooks_…`; tests/standardwebhooks/), retries keeping their
//! event ids and their `webhook-id`, a crash between commit and delivery, a
//! definition change notifying exactly the difference, and the walls
//! (private targets, another site's segments).

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
        self.wait_for_within(count, Duration::from_secs(20)).await
    }

    /// Waits until `count` notifications arrived (or fails after `within`).
    async fn wait_for_within(&self, count: usize, within: Duration) -> Vec<Value> {
        let deadline = Instant::now() + within;
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

/// A site of the CLI's database, and a client signed in to it.
pub(crate) struct Site {
    keys: [String; 3],
    client: reqwest::Client,
}

impl Site {
    pub(crate) fn new(cli: &Cli) -> Self {
        let site = cli.new_site();
        Self {
            keys: ["site_uuid", "publishable_key", "secret_key"]
                .map(|k| site[k].as_str().unwrap().to_owned()),
            client: http_client(),
        }
    }

    /// Sends `body` to `/api/v1{path}` of `server`: the status and the
    /// answer (`null` when it is not JSON), or what kept it from coming.
    pub(crate) async fn try_send(
        &self,
        server: &Server,
        method: Method,
        path: &str,
        body: &Value,
    ) -> reqwest::Result<(StatusCode, Value)> {
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
            .timeout(Duration::from_secs(30))
            .json(body)
            .send()
            .await?;
        let status = response.status();
        let text = response.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    /// [`Site::try_send`], which must succeed.
    pub(crate) async fn send(
        &self,
        server: &Server,
        method: Method,
        path: &str,
        body: Value,
    ) -> Value {
        let (status, answer) = self.try_send(server, method, path, &body).await.unwrap();
        assert!(status.is_success(), "{path}: {status} {answer}");
        answer
    }

    pub(crate) async fn segment(&self, server: &Server, name: &str, query: Value) -> String {
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

    pub(crate) async fn webhook(&self, server: &Server, url: &str, segments: &[&str]) -> Value {
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
    // Membership by a tag while subscribed, by email, by a field and by a
    // count of events.
    let vips = site
        .segment(
            &server,
            "vips",
            json!({"all": [{"tag": {"has": "vip"}}, {"subscribed": true}]}),
        )
        .await;
    let insiders = site
        .segment(
            &server,
            "insiders",
            json!({"email": {"ends_with": "@inside.com"}}),
        )
        .await;
    let pros = site
        .segment(
            &server,
            "pros",
            json!({"field": {"key": "plan", "equals": "pro"}}),
        )
        .await;
    let frequent = site
        .segment(
            &server,
            "frequent",
            json!({"event": {"type": "login", "count": {"at_least": 2}}}),
        )
        .await;
    // Before the webhook: three members of vips, one tagged but unsubscribed,
    // one to change email, one login on the way to two.
    site.commands(
        &server,
        json!([{"command": "add_tag", "email": "already@x.com", "query": "vip"},
               {"command": "add_tag", "email": "loyal@x.com", "query": "vip"},
               {"command": "add_tag", "email": "stay@x.com", "query": "vip"},
               {"command": "add_tag", "email": "sleeper@x.com", "query": "vip"},
               {"command": "unsubscribe", "email": "sleeper@x.com"},
               {"command": "add_field", "email": "mover@x.com", "query": {"key": "plan", "value": "free"}}]),
    )
    .await;
    site.send(
        &server,
        Method::POST,
        "/batch/events",
        json!({"events": [{"type": "login", "email": "freq@x.com"}]}),
    )
    .await;
    let (url, received) = receiver(0, 0).await;
    let webhook = site
        .webhook(&server, &url, &[&vips, &insiders, &pros, &frequent])
        .await;
    let secret = webhook["attributes"]["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{webhook}");
    let listed = site
        .send(&server, Method::GET, "/fetch/webhooks", json!({}))
        .await;
    assert!(
        listed["data"][0]["attributes"].get("secret").is_none(),
        "{listed}"
    );

    // Every write path: commands of each kind, a batch of events (a `$tag`
    // and a second login), a subscriber import, a subscriber's creation,
    // and the CLI's imports of subscribers and of events in another process.
    site.commands(
        &server,
        json!([{"command": "add_tag", "email": "cmd@x.com", "query": "VIP"},
               {"command": "remove_tag", "email": "already@x.com", "query": "vip"},
               {"command": "unsubscribe", "email": "stay@x.com"},
               {"command": "subscribe", "email": "sleeper@x.com"},
               {"command": "change_email", "email": "mover@x.com", "query": "mover@inside.com"},
               {"command": "add_field", "email": "field@x.com", "query": {"key": "plan", "value": "pro"}}]),
    )
    .await;
    site.send(
        &server,
        Method::POST,
        "/batch/events",
        json!({"events": [{"type": "$tag", "email": "event@x.com", "details": {"tag": "vip"}},
                          {"type": "login", "email": "freq@x.com"}]}),
    )
    .await;
    site.send(
        &server,
        Method::POST,
        "/batch/subscribers",
        json!({"subscribers": [{"email": "import@x.com", "tags": "vip"}]}),
    )
    .await;
    site.send(
        &server,
        Method::POST,
        "/fetch/subscribers",
        json!({"subscriber": {"email": "new@inside.com"}}),
    )
    .await;
    for (kind, lines) in [
        (
            "subscribers",
            "{\"email\":\"cli@x.com\",\"tags\":\"vip\"}\n",
        ),
        (
            "events",
            "{\"type\":\"login\",\"email\":\"cli-events@x.com\"}\n\
             {\"type\":\"login\",\"email\":\"cli-events@x.com\"}\n",
        ),
    ] {
        let file = cli.dir.path().join(format!("{kind}.jsonl"));
        std::fs::write(&file, lines).unwrap();
        let imported = cli
            .command(&[
                "import",
                kind,
                "--site",
                &site.keys[0],
                file.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(imported.status.success(), "{imported:?}");
    }
    let expected = [
        ("segment.member_added", "vips", "cmd@x.com"),
        ("segment.member_added", "vips", "event@x.com"),
        ("segment.member_added", "vips", "import@x.com"),
        ("segment.member_added", "vips", "cli@x.com"),
        ("segment.member_added", "vips", "sleeper@x.com"),
        ("segment.member_removed", "vips", "already@x.com"),
        ("segment.member_removed", "vips", "stay@x.com"),
        ("segment.member_added", "insiders", "new@inside.com"),
        ("segment.member_added", "insiders", "mover@inside.com"),
        ("segment.member_added", "pros", "field@x.com"),
        ("segment.member_added", "frequent", "freq@x.com"),
        ("segment.member_added", "frequent", "cli-events@x.com"),
    ];
    received.wait_for(expected.len()).await;
    // A sentinel: one more change, written after all of the above were
    // delivered. A webhook's notifications go out in the order they were
    // written, so once it arrives, anything the writes above caused has
    // arrived too: whoever is not listed was not announced (nobody already
    // in a segment when the webhook was made, nobody twice).
    site.commands(
        &server,
        json!([{"command": "add_tag", "email": "sentinel@x.com", "query": "vip"}]),
    )
    .await;
    let got = received.wait_for(expected.len() + 1).await;
    let last = got.last().unwrap();
    assert_eq!(last["subscriber"]["email"], "sentinel@x.com", "{got:?}");
    let mut said: Vec<(String, String, String, String)> = got[..got.len() - 1]
        .iter()
        .map(|n| {
            (
                n["type"].as_str().unwrap().to_owned(),
                n["segment"]["name"].as_str().unwrap().to_owned(),
                n["subscriber"]["email"].as_str().unwrap().to_owned(),
                n["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    said.sort();
    let mut expected: Vec<(String, String, String, String)> = expected
        .iter()
        .map(|(kind, segment, email)| {
            (
                kind.to_string(),
                segment.to_string(),
                email.to_string(),
                "data".into(),
            )
        })
        .collect();
    expected.sort();
    assert_eq!(said, expected);

    let mut message_ids = std::collections::HashSet::new();
    for (headers, body) in received.all() {
        assert_eq!(headers["content-type"], "application/json");
        // Checked as a receiver would by hand, following the Standard
        // Webhooks specification, with the hmac and base64 crates.
        assert!(standard_signature_holds(&secret, &headers, &body));
        assert!(message_ids.insert(headers["webhook-id"].clone()));
        let t: i64 = headers["webhook-timestamp"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let age = chrono::Utc::now().timestamp() - t;
        assert!((0..60).contains(&age), "{age}");
        // Corral's own deprecated headers, still sent beside them.
        assert_eq!(
            headers["corral-webhook-id"],
            webhook["id"].as_str().unwrap()
        );
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
    let ids = [&vips, &insiders, &pros, &frequent];
    for n in &got {
        let segment = n["segment"]["id"].as_str().unwrap();
        assert!(ids.iter().any(|id| id.as_str() == segment), "{n}");
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
    assert_eq!(deliveries.len(), got.len());
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
    // Every attempt at the batch is the same message: one webhook-id, each
    // attempt signed at its own time.
    let attempts = received.all();
    let message_id = &attempts[0].0["webhook-id"];
    let secret = webhook["attributes"]["secret"].as_str().unwrap();
    for (headers, body) in &attempts[..3] {
        assert_eq!(&headers["webhook-id"], message_id);
        assert!(standard_signature_holds(secret, headers, body));
    }
    // A sentinel written after the 200: once its notification arrives, a
    // repeat of the delivered batch (which would go before it) has not come.
    site.commands(
        &server,
        json!([{"command": "add_tag", "email": "c@x.com", "query": "vip"}]),
    )
    .await;
    received.wait_for(7).await;
    let all = received.all();
    assert_eq!(all.len(), 4, "nothing after the 200 but the sentinel");
    assert_ne!(
        &all[3].0["webhook-id"], message_id,
        "another batch, another id"
    );
    let sentinel: Value = serde_json::from_str(&all[3].1).unwrap();
    assert_eq!(sentinel["data"].as_array().unwrap().len(), 1, "{sentinel}");
    assert_eq!(sentinel["data"][0]["subscriber"]["email"], "c@x.com");
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
    // One delivery for each of the two notifications, each tried three
    // times (after the sentinel's, listed first: newest first).
    let listed = &deliveries["data"].as_array().unwrap()[1..];
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
    // The receiver's address is held from now to the end. Until the crash
    // it refuses every request (503, so the notification stays waiting).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let refusing = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stopped = stopped;
        loop {
            tokio::select! {
                _ = &mut stopped => return listener,
                accepted = listener.accept() => {
                    let Ok((mut stream, _)) = accepted else { continue };
                    tokio::spawn(async move {
                        let mut buf = [0u8; 4096];
                        let _ = stream.read(&mut buf).await;
                        let _ = stream
                            .write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                            .await;
                    });
                }
            }
        }
    });
    let webhook = site
        .webhook(&first, &format!("http://{address}/hooks/corral"), &[&vips])
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
        // Once an attempt is recorded, no send holds the webhook (the next
        // one waits about a second): the kill lands between two sends.
        if let Some(d) = listed["data"].as_array().unwrap().first()
            && d["attributes"]["attempts"].as_i64() >= Some(1)
        {
            break d.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no notification was committed and tried"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_ne!(pending["attributes"]["status"], "delivered");
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    // What the dead server had connected and was not accepted yet is
    // dropped unanswered; from here on only the second server sends, and
    // it is answered 200.
    stop.send(()).unwrap();
    let listener = refusing.await.unwrap().into_std().unwrap();
    while listener.accept().is_ok() {}
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    let received = Received::default();
    let seen = received.clone();
    let app = axum::Router::new().route(
        "/hooks/corral",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let seen = seen.clone();
            async move {
                seen.0.lock().unwrap().push((headers, body));
                AxumStatus::OK
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let second = server(&cli);
    // Should the kill still have landed in a send, the dead server's lease
    // holds the webhook up to a minute.
    let got = received.wait_for_within(1, Duration::from_secs(90)).await;
    assert_eq!(got[0]["event_id"], pending["attributes"]["event_id"]);
    assert_eq!(got[0]["subscriber"]["email"], "a@x.com");
    // A sentinel written after that delivery: once it arrives, a repeat of
    // a@x.com's notification (which would go before it) has not come.
    site.commands(
        &second,
        json!([{"command": "add_tag", "email": "b@x.com", "query": "vip"}]),
    )
    .await;
    let got = received.wait_for(2).await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0]["event_id"], pending["attributes"]["event_id"]);
    assert_eq!(got[1]["subscriber"]["email"], "b@x.com");
    assert_ne!(got[1]["event_id"], got[0]["event_id"]);
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
    // The error says what to do: the one flag, on both commands.
    assert!(
        stderr.contains("`corral serve --allow-private-webhook-targets`")
            && stderr.contains("the same flag on `corral webhook create`"),
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
        "--allow-private-webhook-targets",
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

/// Whether `headers` carry a Standard Webhooks signature of `body` by
/// `secret`, checked by hand as the specification says (what a receiver
/// without a library does): the HMAC-SHA256 of `{webhook-id}.{webhook-
/// timestamp}.{body}`, keyed with the bytes the base64 after `whsec_`
/// stands for, is one of the `v1,<base64>` of `webhook-signature`.
fn standard_signature_holds(secret: &str, headers: &HeaderMap, body: &str) -> bool {
    use base64::Engine as _;
    let base64 = base64::engine::general_purpose::STANDARD;
    let header = |name: &str| headers[name].to_str().unwrap();
    let key = base64
        .decode(secret.strip_prefix("whsec_").expect("a whsec_ secret"))
        .expect("a secret's key is base64");
    header("webhook-signature").split(' ').any(|signature| {
        let Some(given) = signature.strip_prefix("v1,") else {
            return false;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
        mac.update(
            format!(
                "{}.{}.{body}",
                header("webhook-id"),
                header("webhook-timestamp")
            )
            .as_bytes(),
        );
        base64
            .decode(given)
            .is_ok_and(|given| mac.verify_slice(&given).is_ok())
    })
}

/// Where the Standard Webhooks reference verifiers are pinned and
/// installed (`scripts/standardwebhooks.sh`).
const VERIFIERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/standardwebhooks");

/// Whether the verifiers are installed. Where they must be (under CI, or
/// with `CORRAL_REQUIRE_STANDARDWEBHOOKS=1`, as `scripts/test.sh` sets it
/// once it has installed them), a test finding them missing fails; else it
/// says it is skipped, straight to the terminal as the tests that need
/// PostgreSQL do, and goes on to skip.
fn verifiers_installed() -> bool {
    let dir = std::path::Path::new(VERIFIERS);
    let installed = dir
        .join("node_modules/standardwebhooks/package.json")
        .is_file()
        && dir.join(".venv/.requirements.sha256").is_file();
    if !installed {
        let set =
            |name| std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
        let test = std::thread::current().name().unwrap_or("a test").to_owned();
        assert!(
            !(set("CORRAL_REQUIRE_STANDARDWEBHOOKS") || set("CI")),
            "{test} needs the Standard Webhooks verifiers, which are required here \
             (CI or CORRAL_REQUIRE_STANDARDWEBHOOKS=1): bash scripts/standardwebhooks.sh \
             --install-only installs them"
        );
        use std::io::Write;
        let line = format!(
            "skipped: {test} needs the Standard Webhooks verifiers \
             (bash scripts/standardwebhooks.sh installs them)\n"
        );
        let _ = std::io::stderr().write_all(line.as_bytes());
    }
    installed
}

/// A Standard Webhooks reference library, run as a receiver runs it.
#[derive(Clone, Copy, Debug)]
enum Verifier {
    /// npm's `standardwebhooks`, through tests/standardwebhooks/verify.mjs.
    Node,
    /// PyPI's `standardwebhooks`, through tests/standardwebhooks/verify.py.
    Python,
}

const BOTH: [Verifier; 2] = [Verifier::Node, Verifier::Python];

/// The headers of a request as a receiver hands them on: name to value.
fn header_object(headers: &HeaderMap) -> Value {
    headers
        .iter()
        .map(|(name, value)| (name.to_string(), json!(value.to_str().unwrap())))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// What `verifier`'s `Webhook(secret).verify(body, headers)` made of each
/// request: the payload it answered, or why it refused.
fn verify(verifier: Verifier, requests: &[(&str, &HeaderMap, &str)]) -> Vec<Result<Value, String>> {
    use std::io::Write;
    let input: Vec<Value> = requests
        .iter()
        .map(|(secret, headers, body)| {
            json!({"secret": secret, "headers": header_object(headers), "body": body})
        })
        .collect();
    let mut command = match verifier {
        Verifier::Node => {
            let mut node = std::process::Command::new("node");
            node.arg(format!("{VERIFIERS}/verify.mjs"));
            node
        }
        Verifier::Python => {
            let mut python = std::process::Command::new(format!("{VERIFIERS}/.venv/bin/python"));
            python.arg(format!("{VERIFIERS}/verify.py"));
            python
        }
    };
    let mut child = command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{verifier:?} runs: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(&input).unwrap().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{verifier:?}: {output:?}");
    let answers: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(answers.len(), requests.len(), "{verifier:?}");
    answers
        .into_iter()
        .map(|answer| match answer.get("payload") {
            Some(payload) => Ok(payload.clone()),
            None => Err(answer["refused"].as_str().unwrap().to_owned()),
        })
        .collect()
}

const FORGED: &str = "WebhookVerificationError: No matching signature found";
const TOO_OLD: &str = "WebhookVerificationError: Message timestamp too old";

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

/// Runs the documentation's verification snippet of `verifier` on one
/// request: the `data` it read, or what it printed when it refused (a
/// snippet throws then).
fn run_doc_snippet(
    verifier: Verifier,
    secret: &str,
    headers: &HeaderMap,
    body: &str,
) -> Result<Value, String> {
    let body_text = serde_json::to_string(body).unwrap();
    let headers = header_object(headers);
    let output = match verifier {
        // An ES module, run where the package is installed; the snippet's
        // import is hoisted above the request given it.
        Verifier::Node => std::process::Command::new("node")
            .args(["--input-type=module", "-e"])
            .arg(format!(
                "const headers = {headers};\nconst rawBody = Buffer.from({body_text}, \"utf8\");\n{}\nconsole.log(JSON.stringify(data));",
                doc_snippet("js")
            ))
            .current_dir(VERIFIERS)
            .env("CORRAL_WEBHOOK_SECRET", secret)
            .output(),
        Verifier::Python => std::process::Command::new(format!("{VERIFIERS}/.venv/bin/python"))
            .arg("-c")
            .arg(format!(
                "import json\nheaders = json.loads({})\nraw_body = json.loads({}).encode()\n{}\nprint(json.dumps(data))",
                serde_json::to_string(&headers.to_string()).unwrap(),
                serde_json::to_string(&body_text).unwrap(),
                doc_snippet("python")
            ))
            .env("CORRAL_WEBHOOK_SECRET", secret)
            .output(),
    }
    .unwrap();
    if output.status.success() {
        Ok(serde_json::from_slice(&output.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// A real `corral serve` delivers to a receiver, which hands the request
/// to npm's and PyPI's Standard Webhooks libraries (and to the
/// documentation's snippets using them): each accepts it, unchanged, and
/// refuses the same request with its body tampered with, or checked with
/// another secret.
#[tokio::test]
async fn standard_webhooks_libraries_verify_real_deliveries_and_refuse_a_tampered_body_and_another_secret()
 {
    if !verifiers_installed() {
        return;
    }
    let cli = Cli::new();
    let site = Site::new(&cli);
    let server = server(&cli);
    let vips = site
        .segment(&server, "vips", json!({"tag": {"has": "vip"}}))
        .await;
    let (url, received) = receiver(0, 0).await;
    let webhook = site.webhook(&server, &url, &[&vips]).await;
    let secret = webhook["attributes"]["secret"].as_str().unwrap();
    site.commands(
        &server,
        json!([{"command": "add_tag", "email": "ann@x.com", "query": "vip"}]),
    )
    .await;
    received.wait_for(1).await;
    let (headers, body) = received.all().remove(0);
    let sent: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(sent["data"][0]["subscriber"]["email"], "ann@x.com");
    let tampered = body.replace("ann@x.com", "eve@x.com");
    let another = corral::webhooks::signing::new_secret();
    for verifier in BOTH {
        let answers = verify(
            verifier,
            &[
                (secret, &headers, &body),
                (secret, &headers, &tampered),
                (&another, &headers, &body),
            ],
        );
        assert_eq!(
            answers,
            [Ok(sent.clone()), Err(FORGED.into()), Err(FORGED.into())],
            "{verifier:?}"
        );
        assert_eq!(
            run_doc_snippet(verifier, secret, &headers, &body),
            Ok(sent["data"].clone()),
            "{verifier:?}'s documented snippet"
        );
        let refused = run_doc_snippet(verifier, secret, &headers, &tampered)
            .expect_err("the documented snippet refuses a tampered body");
        assert!(
            refused.contains("No matching signature found"),
            "{verifier:?}: {refused}"
        );
    }
}

/// An attempt signed longer ago than the libraries' tolerance (5 minutes)
/// is refused for that alone, its signature being right, and the retry of
/// the same notifications, signed at its own time under the same
/// `webhook-id`, is accepted. The server's deliverer runs on the test's
/// clock: the first attempt at ten minutes ago (answered 500), the retry now.
#[tokio::test]
async fn standard_webhooks_libraries_refuse_an_old_timestamp_and_take_the_retry_under_the_same_id()
{
    if !verifiers_installed() {
        return;
    }
    let app = private_app().await;
    let vips = app
        .create_segment("vips", json!({"tag": {"has": "vip"}}))
        .await;
    let (url, received) = receiver(0, 1).await;
    let webhook = create_webhook(&app, &url, &vips).await;
    let secret = webhook["data"]["attributes"]["secret"].as_str().unwrap();
    tag(&app, "ann@x.com", "vip").await;
    assert_eq!(track(&app, &app.store).await, 1);
    let deliverer = deliverer(&app, &app.store);
    let now = chrono::Utc::now().timestamp_millis();
    let then = now - 600_000;
    for at in [then, now] {
        app.clock.set_ms(at);
        assert_eq!(deliverer.tick(at).await, 1);
        deliverer.idle().await;
    }
    let requests = received.all();
    assert_eq!(requests.len(), 2);
    let (old_headers, old_body) = &requests[0];
    let (headers, body) = &requests[1];
    assert_eq!(old_body, body, "the retry carries the same notifications");
    assert_eq!(old_headers["webhook-id"], headers["webhook-id"]);
    assert_eq!(
        old_headers["webhook-timestamp"],
        (then / 1000).to_string().as_str()
    );
    assert_eq!(
        headers["webhook-timestamp"],
        (now / 1000).to_string().as_str()
    );
    assert!(standard_signature_holds(secret, old_headers, old_body));
    let sent: Value = serde_json::from_str(body).unwrap();
    for verifier in BOTH {
        assert_eq!(
            verify(
                verifier,
                &[(secret, old_headers, old_body), (secret, headers, body)]
            ),
            [Err(TOO_OLD.into()), Ok(sent.clone())],
            "{verifier:?}"
        );
    }
}

/// A webhook made before Corral followed Standard Webhooks (its secret
/// `whsec_` and 32 hex digits) keeps working: the earlier release's
/// upgrade fixture is served by this release's `corral serve`, the
/// webhook it left is pointed at a receiver, and the notification it left
/// waiting arrives signed both ways with the secret as it stands, which
/// the libraries read as base64 of a 24-byte key.
#[tokio::test]
async fn standard_webhooks_libraries_verify_a_webhook_made_before_with_its_hex_secret() {
    if !verifiers_installed() {
        return;
    }
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/upgrade/5181515"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(format!("{fixture}/corral.db"), dir.path().join("corral.db")).unwrap();
    let database = format!("sqlite://{}", dir.path().join("corral.db").display());
    let credentials: Value =
        serde_json::from_slice(&std::fs::read(format!("{fixture}/site.json")).unwrap()).unwrap();
    let keys = ["site_uuid", "publishable_key", "secret_key"]
        .map(|k| credentials[k].as_str().unwrap().to_owned());
    let secret = {
        let store = corral::storage::open(&database).await.unwrap();
        let site_id = store.find_site(&keys[0]).await.unwrap().unwrap().id;
        store.get_webhook(site_id, 1).await.unwrap().unwrap().secret
    };
    // Failing since long ago, as the fixture's webhook is once it was made
    // three days before: the server's first attempt, to the fixture's
    // address, disables it, unless the enabling PATCH below came first.
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(dir.path().join("corral.db"));
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect_with(&options)
        .await
        .unwrap();
    sqlx::raw_sql("UPDATE webhooks SET failing_since = 1 WHERE id = 1")
        .execute(&mut conn)
        .await
        .unwrap();
    drop(conn);
    let hex = secret.strip_prefix("whsec_").unwrap();
    assert!(
        hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        "{secret}"
    );
    let cli = Cli::on(&database);
    let server = server(&cli);
    let site = Site {
        keys,
        client: http_client(),
    };
    let (url, received) = receiver(0, 0).await;
    // Enabled too (see above).
    site.send(
        &server,
        Method::PATCH,
        "/fetch/webhooks/1",
        json!({"webhook": {"url": url, "disabled": false}}),
    )
    .await;
    received.wait_for(1).await;
    let (headers, body) = received.all().remove(0);
    let sent: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(sent["data"][0]["subscriber"]["email"], "linus@example.com");
    for verifier in BOTH {
        assert_eq!(
            verify(verifier, &[(&secret, &headers, &body)]),
            [Ok(sent.clone())],
            "{verifier:?}"
        );
    }
    assert!(standard_signature_holds(&secret, &headers, &body));
    // The deprecated header, as the earlier release signed it.
    let signature = headers["corral-signature"].to_str().unwrap();
    let (t, v1) = signature
        .strip_prefix("t=")
        .and_then(|s| s.split_once(",v1="))
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    mac.verify_slice(&hex::decode(v1).unwrap())
        .expect("Corral-Signature verifies as before");
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

/// The journal's sweep and a tracker of this process's own, on the test
/// server's store, driven by the test's clock (the server's own run only in
/// `corral serve`).
async fn track(app: &TestApp, store: &std::sync::Arc<dyn corral::storage::Store>) -> usize {
    corral::live::journal::sweep(store.as_ref(), &app.state.live, app.clock.as_ref())
        .await
        .unwrap();
    corral::webhooks::tracker::Tracker::new(std::sync::Arc::clone(store))
        .tick(app.clock.as_ref())
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

/// A receiver that holds every request until the test lets it answer 200,
/// on raw TCP so that it sees a sender give up: it tells when a request
/// arrives (its body), and counts the requests whose sender closed the
/// connection while they were held.
struct Holding {
    url: String,
    arrived: tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<String>>,
    bodies: Arc<Mutex<Vec<String>>>,
    release: Arc<tokio::sync::Semaphore>,
    abandoned: Arc<std::sync::atomic::AtomicUsize>,
}

impl Holding {
    async fn start() -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks/held", listener.local_addr().unwrap());
        let (tell, arrived) = tokio::sync::mpsc::unbounded_channel();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let release = Arc::new(tokio::sync::Semaphore::new(0));
        let abandoned = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (seen, gate, gave_up) = (bodies.clone(), release.clone(), abandoned.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let (tell, seen, gate, gave_up) =
                    (tell.clone(), seen.clone(), gate.clone(), gave_up.clone());
                tokio::spawn(async move {
                    // The head, then the body its Content-Length names.
                    let mut request = Vec::new();
                    let mut buf = [0u8; 8192];
                    let head_end = loop {
                        let n = stream.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        request.extend_from_slice(&buf[..n]);
                        if let Some(i) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                    };
                    let head = String::from_utf8_lossy(&request[..head_end]).to_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .map_or(0, |v| v.trim().parse().unwrap());
                    while request.len() < head_end + length {
                        let n = stream.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        request.extend_from_slice(&buf[..n]);
                    }
                    let body = String::from_utf8(request[head_end..].to_vec()).unwrap();
                    seen.lock().unwrap().push(body.clone());
                    let _ = tell.send(body);
                    tokio::select! {
                        permit = gate.acquire() => {
                            permit.unwrap().forget();
                            let _ = stream
                                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                                .await;
                        }
                        _ = stream.read(&mut buf) => {
                            gave_up.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        }
                    }
                });
            }
        });
        Self {
            url,
            arrived: tokio::sync::Mutex::new(arrived),
            bodies,
            release,
            abandoned,
        }
    }

    /// The next request's body (or fails after 20 s).
    async fn next(&self) -> String {
        tokio::time::timeout(Duration::from_secs(20), self.arrived.lock().await.recv())
            .await
            .expect("a request arrives")
            .unwrap()
    }

    /// Lets `n` held requests (or ones yet to come) be answered 200.
    fn answer(&self, n: usize) {
        self.release.add_permits(n);
    }

    fn abandoned(&self) -> usize {
        self.abandoned.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn received(&self) -> usize {
        self.bodies.lock().unwrap().len()
    }
}

/// The event ids of a request's body, in order.
fn event_ids(body: &str) -> Vec<String> {
    let body: Value = serde_json::from_str(body).unwrap();
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["event_id"].as_str().unwrap().to_owned())
        .collect()
}

/// A test server that may send webhooks to loopback (its own tracker and
/// deliverer do not run: the test drives them on its clock).
async fn private_app() -> TestApp {
    TestApp::spawn_with(corral::http::HttpSettings {
        rate_limit_per_minute: 0,
        stats_rate_limit_per_hour: 0,
        allow_private_webhook_targets: true,
        ..corral::http::HttpSettings::default()
    })
    .await
}

async fn create_webhook(app: &TestApp, url: &str, segment: &Value) -> Value {
    let made = app
        .send_json(
            Method::POST,
            "/api/v1/fetch/webhooks",
            &json!({"webhook": {"url": url, "segment_ids": [segment["id"]]}}),
        )
        .await;
    assert_eq!(made.status(), StatusCode::CREATED);
    made.json().await.unwrap()
}

async fn tag(app: &TestApp, email: &str, tag: &str) {
    let done = app
        .send_json(
            Method::POST,
            "/api/v1/fetch/commands",
            &json!({"command": [{"command": "add_tag", "email": email, "query": tag}]}),
        )
        .await;
    assert_eq!(done.status(), StatusCode::OK);
}

/// A deliverer of this process's own on `store`, on the test's clock.
fn deliverer(
    app: &TestApp,
    store: &std::sync::Arc<dyn corral::storage::Store>,
) -> corral::webhooks::delivery::Deliverer {
    corral::webhooks::delivery::Deliverer::with_clock(
        std::sync::Arc::clone(store),
        true,
        app.clock.clone(),
    )
}

/// The webhook's deliveries as the API lists them, oldest first.
async fn deliveries_of(app: &TestApp, webhook: &Value) -> Vec<Value> {
    let path = format!(
        "/api/v1/fetch/webhooks/{}/deliveries",
        webhook["data"]["id"].as_str().unwrap()
    );
    let listed: Value = app.get(&path).await.json().await.unwrap();
    let mut all: Vec<Value> = listed["data"].as_array().unwrap().clone();
    all.reverse();
    all
}

#[tokio::test]
async fn a_hanging_receiver_holds_back_no_other_webhook() {
    let app = private_app().await;
    let vips = app
        .create_segment("vips", json!({"tag": {"has": "vip"}}))
        .await;
    let hanging = Holding::start().await;
    let (url, answering) = receiver(0, 0).await;
    // The hanging one first: a deliverer going one webhook after another
    // would reach it first and wait.
    let held = create_webhook(&app, &hanging.url, &vips).await;
    let other = create_webhook(&app, &url, &vips).await;
    tag(&app, "a@x.com", "vip").await;
    assert_eq!(track(&app, &app.store).await, 1);

    let deliverer = deliverer(&app, &app.store);
    let (started, ()) = tokio::join!(deliverer.tick(START_MS), async {
        hanging.next().await;
        // The other webhook's notification arrives while the first is
        // held: its sender has not given up on it, and it is unanswered.
        let got = answering.wait_for(1).await;
        assert_eq!(got[0]["subscriber"]["email"], "a@x.com");
        assert_eq!(
            hanging.abandoned(),
            0,
            "the other webhook was sent to only after the hanging one gave up"
        );
    });
    assert_eq!(started, 2);
    hanging.answer(1);
    deliverer.idle().await;
    for webhook in [&held, &other] {
        let listed = deliveries_of(&app, webhook).await;
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(listed[0]["attributes"]["status"], "delivered");
    }
}

#[tokio::test]
async fn a_deliverer_sends_to_at_most_its_bound_of_webhooks_at_once() {
    let app = private_app().await;
    let vips = app
        .create_segment("vips", json!({"tag": {"has": "vip"}}))
        .await;
    let hanging = Holding::start().await;
    let webhooks = [
        create_webhook(&app, &hanging.url, &vips).await,
        create_webhook(&app, &hanging.url, &vips).await,
        create_webhook(&app, &hanging.url, &vips).await,
    ];
    tag(&app, "a@x.com", "vip").await;
    assert_eq!(track(&app, &app.store).await, 1);
    let deliverer = deliverer(&app, &app.store).at_most(2);
    assert_eq!(deliverer.tick(START_MS).await, 2);
    hanging.next().await;
    hanging.next().await;
    // Both slots are held: nothing more starts, however often it ticks.
    assert_eq!(deliverer.tick(START_MS).await, 0);
    assert_eq!(hanging.received(), 2);
    hanging.answer(3);
    deliverer.idle().await;
    // A slot is free again: the third goes now.
    assert_eq!(deliverer.tick(START_MS).await, 1);
    hanging.next().await;
    deliverer.idle().await;
    for webhook in &webhooks {
        let listed = deliveries_of(&app, webhook).await;
        assert_eq!(listed[0]["attributes"]["status"], "delivered", "{listed:?}");
    }
}

#[tokio::test]
async fn two_deliverers_never_send_one_batch_twice_at_once() {
    // Two servers on one database: each its own store (connections) and
    // deliverer; on PostgreSQL with CORRAL_TEST_BACKEND=postgres.
    let app = private_app().await;
    let vips = app
        .create_segment("vips", json!({"tag": {"has": "vip"}}))
        .await;
    let hanging = Holding::start().await;
    let webhook = create_webhook(&app, &hanging.url, &vips).await;
    tag(&app, "a@x.com", "vip").await;
    tag(&app, "b@x.com", "vip").await;
    assert!(track(&app, &app.store).await >= 1);
    let first_store = corral::storage::open(&app.database_url).await.unwrap();
    let second_store = corral::storage::open(&app.database_url).await.unwrap();
    let first = deliverer(&app, &first_store);
    let second = deliverer(&app, &second_store);

    assert_eq!(first.tick(START_MS).await, 1);
    let batch = event_ids(&hanging.next().await);
    assert_eq!(batch.len(), 2, "{batch:?}");
    // The first send is held by the receiver. The second server finds the
    // webhook taken: whatever it starts finishes without sending, before
    // any second copy could arrive.
    second.tick(START_MS).await;
    tokio::select! {
        () = second.idle() => {}
        body = hanging.next() => panic!(
            "a second copy was sent while the first was in flight: {:?}",
            event_ids(&body)
        ),
    }
    assert_eq!(hanging.received(), 1);
    hanging.answer(1);
    first.idle().await;
    // Delivered once: neither server has anything left to send.
    assert_eq!(second.tick(START_MS).await, 0);
    assert_eq!(first.tick(START_MS).await, 0);
    assert_eq!(hanging.received(), 1);
    let listed = deliveries_of(&app, &webhook).await;
    assert!(
        listed
            .iter()
            .all(|d| d["attributes"]["status"] == "delivered" && d["attributes"]["attempts"] == 1),
        "{listed:?}"
    );
}

#[tokio::test]
async fn a_webhook_failing_for_three_days_is_disabled_and_enabling_it_sends_all_it_kept() {
    let app = private_app().await;
    let vips = app
        .create_segment("vips", json!({"tag": {"has": "vip"}}))
        .await;
    let failing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let received = Received::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/corral", listener.local_addr().unwrap());
    let (seen, broken) = (received.clone(), failing.clone());
    let app_router = axum::Router::new().route(
        "/hooks/corral",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let (seen, broken) = (seen.clone(), broken.clone());
            async move {
                if broken.load(std::sync::atomic::Ordering::SeqCst) {
                    return AxumStatus::SERVICE_UNAVAILABLE;
                }
                seen.0.lock().unwrap().push((headers, body));
                AxumStatus::OK
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app_router).await.unwrap() });
    let webhook = create_webhook(&app, &url, &vips).await;
    let path = format!(
        "/api/v1/fetch/webhooks/{}",
        webhook["data"]["id"].as_str().unwrap()
    );
    let deliverer = deliverer(&app, &app.store);
    let day = 86_400_000;
    let attempt = || async {
        let started = deliverer.tick(app.clock.now_ms()).await;
        deliverer.idle().await;
        started
    };
    let disabled_at = || async {
        let shown: Value = app.get(&path).await.json().await.unwrap();
        shown["data"]["attributes"]["disabled_at"].clone()
    };
    use corral::clock::Clock as _;

    tag(&app, "a@x.com", "vip").await;
    assert_eq!(track(&app, &app.store).await, 1);
    assert_eq!(attempt().await, 1);
    // Failing for a day and a half: tried again, still enabled.
    app.clock.advance_ms(day + day / 2);
    tag(&app, "b@x.com", "vip").await;
    assert_eq!(track(&app, &app.store).await, 1);
    assert_eq!(attempt().await, 1);
    assert_eq!(disabled_at().await, Value::Null);
    // Past three days of failing: disabled at this attempt.
    app.clock.advance_ms(day + day / 2 + 60_000);
    assert_eq!(attempt().await, 1);
    assert_ne!(disabled_at().await, Value::Null);
    // Disabled, it is sent nothing, but what happens is still kept.
    tag(&app, "c@x.com", "vip").await;
    assert_eq!(track(&app, &app.store).await, 1);
    app.clock.advance_ms(day);
    assert_eq!(attempt().await, 0);
    let kept = deliveries_of(&app, &webhook).await;
    assert_eq!(kept.len(), 3, "{kept:?}");
    assert!(
        kept.iter()
            .all(|d| d["attributes"]["status"] != "delivered"),
        "{kept:?}"
    );

    // The receiver is mended and the webhook enabled: everything kept goes,
    // in order, once.
    failing.store(false, std::sync::atomic::Ordering::SeqCst);
    let enabled = app
        .send_json(
            Method::PATCH,
            &path,
            &json!({"webhook": {"disabled": false}}),
        )
        .await;
    assert_eq!(enabled.status(), StatusCode::OK);
    assert_eq!(disabled_at().await, Value::Null);
    assert_eq!(attempt().await, 1);
    let got = received.notifications();
    let emails: Vec<&str> = got
        .iter()
        .map(|n| n["subscriber"]["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails, ["a@x.com", "b@x.com", "c@x.com"]);
    let ids: Vec<&Value> = kept.iter().map(|d| &d["attributes"]["event_id"]).collect();
    let sent: Vec<&Value> = got.iter().map(|n| &n["event_id"]).collect();
    assert_eq!(sent, ids);
    assert!(
        deliveries_of(&app, &webhook)
            .await
            .iter()
            .all(|d| d["attributes"]["status"] == "delivered")
    );
}

/// A proxy named in the server's environment is not used: it would resolve
/// the target's host itself, past the address check. The server runs with
/// every proxy variable pointing at a listener that answers 200 to
/// anything (a delivery through it would count as delivered), and the
/// notification reaches the receiver directly.
#[tokio::test]
async fn deliveries_go_straight_to_the_receiver_whatever_proxy_the_environment_names() {
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    let proxied = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = Arc::clone(&proxied);
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        loop {
            let (mut stream, _) = proxy.accept().await.unwrap();
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let mut head = vec![0; 4096];
                let n = stream.read(&mut head).await.unwrap_or(0);
                seen.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&head[..n]).into_owned());
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            });
        }
    });

    let cli = Cli::new();
    let site = Site::new(&cli);
    let mut command = cli.command(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--rate-limit-per-minute",
        "0",
        "--allow-private-webhook-targets",
        "--demo",
    ]);
    for name in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"] {
        command
            .env(name, &proxy_url)
            .env(name.to_lowercase(), &proxy_url);
    }
    command
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .env("CORRAL_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let server = crate::cli::read_banner(command.spawn().unwrap());
    let vips = site
        .segment(&server, "vips", json!({"tag": {"has": "vip"}}))
        .await;
    let (url, received) = receiver(0, 0).await;
    site.webhook(&server, &url, &[&vips]).await;
    site.commands(
        &server,
        json!([{"command": "add_tag", "email": "ann@x.com", "query": "vip"}]),
    )
    .await;
    // The one delivery goes one way or the other: wait for either.
    let deadline = Instant::now() + Duration::from_secs(20);
    while received.all().is_empty() && proxied.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the delivery went nowhere");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        *proxied.lock().unwrap(),
        Vec::<String>::new(),
        "the delivery went through the proxy"
    );
    assert_eq!(
        summary(&received.wait_for(1).await),
        [triple("segment.member_added", "ann@x.com", "data")]
    );
}
