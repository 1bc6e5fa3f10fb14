//! The real `corral serve` killed at each named crash point of the write
//! paths (`corral::faults::POINTS`, armed through `FAILPOINTS`: the process
//! aborts on the spot where the point fires, as `kill -9` would there, on a
//! later pass than its first so that writes were acknowledged before), then
//! started again: every write it acknowledged is stored, the segment holds
//! exactly the subscribers written, and the webhook receiver is told of
//! every member once the server is back (a notification sent again keeps
//! its id and body).

use crate::cli::{Cli, Server, read_banner};
use crate::webhooks::Site;
use axum::http::StatusCode as AxumStatus;
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `corral serve` on the CLI's database, with `FAILPOINTS` set to `points`
/// when given.
fn serve(cli: &Cli, points: Option<&str>) -> Server {
    let mut command = cli.command(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--rate-limit-per-minute",
        "0",
        "--allow-private-webhook-targets",
        "--demo",
    ]);
    command
        .env("CORRAL_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    match points {
        Some(points) => command.env("FAILPOINTS", points),
        None => command.env_remove("FAILPOINTS"),
    };
    read_banner(command.spawn().unwrap())
}

/// How many passes an armed point lets by before it fires.
const PASSES_BEFORE: u32 = 3;

/// Every notification body a receiver was sent, in order, repeats included.
type Bodies = Arc<Mutex<Vec<Value>>>;

async fn receiver() -> (String, Bodies) {
    let bodies = Bodies::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let seen = Arc::clone(&bodies);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let seen = Arc::clone(&seen);
            async move {
                let batch: Value = serde_json::from_str(&body).unwrap();
                seen.lock()
                    .unwrap()
                    .extend(batch["data"].as_array().unwrap().iter().cloned());
                AxumStatus::OK
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, bodies)
}

/// The emails of every member of `segment`, through every page.
async fn members(site: &Site, server: &Server, segment: &str) -> BTreeSet<String> {
    let mut all = BTreeSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/fetch/segments/{segment}/members?limit=100&cursor={c}"),
            None => format!("/fetch/segments/{segment}/members?limit=100"),
        };
        let page = site.send(server, Method::GET, &path, Value::Null).await;
        for member in page["data"].as_array().unwrap() {
            all.insert(member["attributes"]["email"].as_str().unwrap().to_owned());
        }
        match page["meta"]["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return all,
        }
    }
}

/// Kills the server at `point` while tagging subscribers one by one, starts
/// it again, and checks what survived.
async fn crash_at(point: &str) {
    let cli = Cli::new();
    let site = Site::new(&cli);
    let (url, bodies) = receiver().await;
    let mut first = serve(&cli, None);
    let segment = site
        .segment(&first, "vips", json!({"tag": {"has": "vip"}}))
        .await;
    site.webhook(&first, &url, &[&segment]).await;
    first.child.kill().unwrap();
    first.child.wait().unwrap();

    // Armed: the point lets its first passes by and fires on a later one,
    // so that writes were acknowledged before the crash (the audience's
    // points pass once a tagging; the tracker's and the deliverer's, and
    // the other writes', once a tagging is followed and sent).
    let mut armed = serve(&cli, Some(&format!("{point}={PASSES_BEFORE}*off->panic")));
    let mut acknowledged = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut n = 0;
    let status = loop {
        if let Some(status) = armed.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "{point} never fired");
        n += 1;
        let email = format!("p{n}@crash.example");
        let tagged = site
            .try_send(
                &armed,
                Method::POST,
                "/fetch/commands",
                &json!({"command": [{"command": "add_tag", "email": email, "query": "vip"}]}),
            )
            .await;
        match tagged {
            Ok((status, _)) if status.is_success() => {
                acknowledged.insert(email);
            }
            // The server died with the request in flight.
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
        if n % 10 == 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    assert_eq!(
        status.signal(),
        Some(6),
        "{point}: the server ended {status:?}, not at the point"
    );

    // Something was acknowledged, or "nothing acknowledged was lost" would
    // hold of an empty set.
    assert!(
        !acknowledged.is_empty(),
        "{point}: the server died before it acknowledged a write"
    );

    let second = serve(&cli, None);
    let stored = members(&site, &second, &segment).await;
    let missing: Vec<_> = acknowledged.difference(&stored).collect();
    assert!(
        missing.is_empty(),
        "{point}: acknowledged and lost: {missing:?}"
    );
    for email in &stored {
        assert!(
            email.starts_with('p') && email.ends_with("@crash.example"),
            "{email}"
        );
    }
    // Every member is announced, each event id with one body, and nobody
    // else joined. (A server that died while sending held its webhook's
    // lease: the next send waits for it to run out, up to a minute.)
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let got = bodies.lock().unwrap().clone();
        let mut by_id: BTreeMap<String, Value> = BTreeMap::new();
        for body in &got {
            let id = body["event_id"].as_str().unwrap().to_owned();
            if let Some(first) = by_id.get(&id) {
                assert_eq!(first, body, "{point}: {id} came again changed");
            }
            by_id.insert(id, body.clone());
        }
        let joined: BTreeSet<String> = by_id
            .values()
            .filter(|b| b["type"] == "segment.member_added")
            .map(|b| b["subscriber"]["email"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            joined.len(),
            by_id.len(),
            "{point}: one join a member and nothing else: {by_id:?}"
        );
        assert!(
            joined.is_subset(&stored),
            "{point}: {joined:?} not all in {stored:?}"
        );
        if joined == stored {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{point}: {} of {} members announced",
            joined.len(),
            stored.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(second);
}

#[tokio::test]
async fn a_server_killed_at_each_crash_point_loses_nothing_it_acknowledged() {
    for point in corral::faults::POINTS {
        crash_at(point).await;
    }
}
