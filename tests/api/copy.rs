//! `corral copy`: a database copied to another, of either backend, answers
//! every read exactly as the original does, byte for byte, goes on handing
//! out ids above the copied ones, and a copy is all or nothing: a target
//! that holds a site, or the source itself, is refused, and a copy that fails
//! part way leaves the target as it was.

use crate::helpers::{START_MS, fresh_database, fresh_postgres_database, urlencode};
use corral::clock::{Clock, ManualClock};
use corral::credentials::{KeyPair, generate_site_uuid};
use corral::http::{self, AppState, HttpSettings};
use corral::storage::actor::Actor;
use corral::storage::transfer::{Rows, Table};
use corral::storage::webhooks::{Notification, Transition};
use corral::storage::{self, Store};
use reqwest::Method;
use serde_json::{Value, json};
use std::process::{Command, Output};
use std::sync::Arc;

const BIN: &str = env!("CARGO_BIN_EXE_corral");

/// A server on a database a test names (the copy's source or target).
struct Server {
    base: String,
    client: reqwest::Client,
    store: Arc<dyn Store>,
    clock: Arc<ManualClock>,
    state: AppState,
}

/// A site's uuid and its key pairs, the last one revoked.
#[derive(Clone, Debug)]
struct Site {
    uuid: String,
    keys: Vec<KeyPair>,
}

impl Site {
    fn key(&self) -> &KeyPair {
        &self.keys[0]
    }
}

impl Server {
    async fn start(database_url: &str) -> Self {
        let store = storage::open(database_url).await.expect("open database");
        let settings = HttpSettings {
            rate_limit_per_minute: 0,
            stats_rate_limit_per_hour: 0,
            ..HttpSettings::default()
        };
        let clock = ManualClock::new(START_MS);
        let state = AppState::new(store.clone(), clock.clone(), settings);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/api/v1", listener.local_addr().unwrap());
        tokio::spawn(http::serve(listener, state.clone(), std::future::pending()));
        Self {
            base,
            client: crate::helpers::http_client(),
            store,
            clock,
            state,
        }
    }

    /// Brings a site's audience into memory, as any read does: a segment
    /// write then records its journal at once (not at the next sweep).
    async fn resident(&self, site: &Site) {
        let site_id = self.store.find_site(&site.uuid).await.unwrap().unwrap().id;
        self.state.live.resident(site_id).await.unwrap();
    }

    fn request(
        &self,
        site: &Site,
        key: &KeyPair,
        method: Method,
        path: &str,
    ) -> reqwest::RequestBuilder {
        let separator = if path.contains('?') { '&' } else { '?' };
        self.client
            .request(
                method,
                format!("{}{path}{separator}site_uuid={}", self.base, site.uuid),
            )
            .basic_auth(&key.publishable_key, Some(&key.secret_key))
    }

    /// Sends a request as the site's first key: what came back, whole.
    async fn answer(
        &self,
        site: &Site,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Answer {
        self.answer_as(site, site.key(), method, path, body).await
    }

    async fn answer_as(
        &self,
        site: &Site,
        key: &KeyPair,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Answer {
        let mut request = self.request(site, key, method.clone(), path);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        Answer {
            request: format!("{method} {path}"),
            status: response.status().as_u16(),
            content_type: header("content-type"),
            etag: header("etag"),
            body: response.text().await.unwrap(),
        }
    }

    /// Sends a write that must succeed; its JSON answer.
    async fn write(&self, site: &Site, method: Method, path: &str, body: Value) -> Value {
        let body = (!body.is_null()).then_some(body);
        let answer = self.answer(site, method, path, body.as_ref()).await;
        assert!(answer.status < 300, "{answer:?}");
        if answer.body.is_empty() {
            return Value::Null;
        }
        let answer: Value = serde_json::from_str(&answer.body).unwrap();
        // A batch answers 200 with what it could not apply.
        assert!(
            answer.get("failed").is_none_or(|failed| failed == 0),
            "{answer}"
        );
        answer
    }

    /// A site with three key pairs, the third revoked.
    async fn new_site(&self, name: &str) -> Site {
        let uuid = generate_site_uuid();
        let keys = vec![
            KeyPair::generate(),
            KeyPair::generate(),
            KeyPair::generate(),
        ];
        let site = self
            .store
            .create_site(name, &uuid, &keys[0], false, START_MS)
            .await
            .unwrap();
        for key in &keys[1..] {
            self.store
                .add_key(site.id, key, START_MS, &Actor::Cli)
                .await
                .unwrap();
        }
        self.store
            .revoke_key(&keys[2].publishable_key, START_MS, &Actor::Cli)
            .await
            .unwrap();
        Site { uuid, keys }
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Answer {
    request: String,
    status: u16,
    content_type: Option<String>,
    etag: Option<String>,
    body: String,
}

fn days_ago(days: i64) -> String {
    corral::clock::format_ms(START_MS - days * 86_400_000)
}

fn id(segment: &Value) -> String {
    segment["data"]["id"].as_str().unwrap().to_owned()
}

/// Emails asked about: members and not, unsubscribed, one whose email
/// changed (under both emails), and no one.
const EMAILS: [&str; 6] = [
    "ada@x.com",
    "bob@x.com",
    "cy@x.com",
    "cyrus@x.com",
    "dee@x.com",
    "nobody@x.com",
];

/// Two sites, written through the API: fields, tags, subscribers (one
/// unsubscribed, one whose email changed), events with details and
/// purchases, segments (one referencing another, one changed, one
/// discarded, one foreign), hand-made includes and excludes (of the
/// referenced segment, and of the discarded one before it was discarded),
/// and joins and leaves in the membership journal over a day.
async fn populate(server: &Server) -> Vec<Site> {
    let a = server.new_site("Shop").await;
    server
        .write(
            &a,
            Method::POST,
            "/fetch/fields",
            json!({"field": {"key": "Company Size"}}),
        )
        .await;
    server
        .write(
            &a,
            Method::POST,
            "/fetch/tags",
            json!({"tag": {"name": "Lead"}}),
        )
        .await;
    server
        .write(
            &a,
            Method::POST,
            "/batch/subscribers",
            json!({"subscribers": [
                {"email": "Ada@x.com", "tags": "lead,vip", "company_size": 120},
                {"email": "bob@x.com", "first_name": "Bob", "tags": "vip"},
                {"email": "cy@x.com", "tags": "lead"},
                {"email": "dee@x.com", "plan": "pro"}
            ]}),
        )
        .await;
    server
        .write(
            &a,
            Method::POST,
            "/batch/events",
            json!({"events": [
                {"type": "$purchase", "email": "ada@x.com", "date": days_ago(3),
                 "details": {"unique": {"key": "o-1"}, "value": {"currency": "USD", "amount": 30000}}},
                {"type": "$purchase", "email": "cy@x.com", "date": days_ago(40),
                 "details": {"unique": {"key": "o-2"}, "value": {"currency": "EUR", "amount": 1250.5}}},
                {"type": "$pageview", "email": "bob@x.com", "date": days_ago(1),
                 "details": {"url": "/pricing", "ref": {"utm": ["a", "b"]}, "n": 1.10}},
                {"type": "$pageview", "email": "dee@x.com", "details": {"url": "/"}},
                {"type": "$login", "email": "ada@x.com", "date": days_ago(2)}
            ]}),
        )
        .await;
    server
        .write(
            &a,
            Method::POST,
            "/fetch/commands",
            json!({"command": [
                {"command": "unsubscribe", "email": "bob@x.com"},
                {"command": "change_email", "email": "cy@x.com", "query": "cyrus@x.com"}
            ]}),
        )
        .await;
    server.resident(&a).await;
    let segments = "/fetch/segments";
    let buyers = server
        .write(&a, Method::POST, segments, json!({"segment": {"name": "Buyers",
            "visitor_event_query": {"event": {"type": "$purchase", "when": {"within_last": {"days": 30}},
                "sum": {"of": "value.amount", "at_least": 1000}}}}}))
        .await;
    server
        .write(&a, Method::POST, segments, json!({"segment": {"name": "lead buyers",
            "description": "Leads who bought",
            "visitor_event_query": {"all": [{"segment": {"member_of": id(&buyers)}}, {"tag": {"has": "lead"}}]}}}))
        .await;
    let leads = server
        .write(
            &a,
            Method::POST,
            segments,
            json!({"segment": {"name": "Leads",
            "visitor_event_query": {"tag": {"has": "lead"}}}}),
        )
        .await;
    server
        .write(
            &a,
            Method::PATCH,
            &format!("{segments}/{}", id(&leads)),
            json!({"segment": {"description": "Tagged lead", "visitor_event_query": {"any": [
                {"tag": {"has": "lead"}}, {"field": {"key": "company_size", "more_than": 100}}]}}}),
        )
        .await;
    server
        .write(
            &a,
            Method::POST,
            segments,
            json!({"segment": {"name": "Bento's own",
            "visitor_event_query": {"foreign": {"z": 1.10, "a": 12345678901234567890u64}}}}),
        )
        .await;
    let old = server
        .write(
            &a,
            Method::POST,
            segments,
            json!({"segment": {"name": "Old", "visitor_event_query": {}}}),
        )
        .await;
    // "Buyers" gains dee, who bought nothing, by hand, and loses ada, its
    // only buyer, by hand, so "lead buyers", which refers to it, loses her
    // too; "Old" keeps an exclude while discarded. An email no subscriber
    // has creates nothing.
    let buyers_at = format!("{segments}/{}", id(&buyers));
    let included = server
        .write(
            &a,
            Method::POST,
            &format!("{buyers_at}/includes"),
            json!({"emails": ["dee@x.com", "bob@x.com", "nobody@x.com"]}),
        )
        .await;
    assert_eq!(included["data"]["unknown"], json!(["nobody@x.com"]));
    server
        .write(
            &a,
            Method::DELETE,
            &format!("{buyers_at}/includes"),
            json!({"emails": ["bob@x.com"]}),
        )
        .await;
    for (path, email) in [
        (format!("{buyers_at}/excludes"), "ada@x.com"),
        (format!("{segments}/{}/excludes", id(&old)), "cyrus@x.com"),
    ] {
        server
            .write(&a, Method::POST, &path, json!({ "emails": [email] }))
            .await;
    }
    server
        .write(
            &a,
            Method::DELETE,
            &format!("{segments}/{}", id(&old)),
            Value::Null,
        )
        .await;

    // The membership journal: "Leads" gains dee and loses her a minute
    // later, and loses cyrus a day after, so that its changes feed, its
    // series by hour and by day, and its members at each instant have
    // something to tell.
    for (after_ms, item) in [
        (60_000, json!({"email": "dee@x.com", "tags": "lead"})),
        (60_000, json!({"email": "dee@x.com", "remove_tags": "lead"})),
        (
            86_400_000,
            json!({"email": "cyrus@x.com", "remove_tags": "lead"}),
        ),
    ] {
        server.clock.advance_ms(after_ms);
        server
            .write(
                &a,
                Method::POST,
                "/batch/subscribers",
                json!({ "subscribers": [item] }),
            )
            .await;
    }

    // A webhook watching "Leads": its watch and members are stored when it
    // is made; a notification is planted in its outbox as a change of
    // members would write it (no server here works changes out).
    let hook = server
        .write(
            &a,
            Method::POST,
            "/fetch/webhooks",
            json!({"webhook": {
            "url": "https://1.1.1.1/hook", "segment_ids": [id(&leads)]}}),
        )
        .await;
    let hook_id: i64 = hook["data"]["id"].as_str().unwrap().parse().unwrap();
    let site_id = server.store.find_site(&a.uuid).await.unwrap().unwrap().id;
    let (_, watch) = server
        .store
        .watches()
        .await
        .unwrap()
        .into_iter()
        .next()
        .unwrap();
    let written = server
        .store
        .commit_transition(
            site_id,
            &Transition {
                from: watch,
                to: watch,
                at: 0,
                notifications: vec![Notification {
                    webhook_id: hook_id,
                    event_id: "evt_copied".into(),
                    body: r#"{"type":"segment.member_added","n":1.10}"#.into(),
                }],
            },
        )
        .await
        .unwrap();
    assert!(written);

    let b = server.new_site("Other shop").await;
    server
        .write(
            &b,
            Method::POST,
            "/batch/events",
            json!({"events": [
            {"type": "$signup", "email": "ada@x.com", "fields": {"plan": "free"}}]}),
        )
        .await;
    server
        .write(
            &b,
            Method::POST,
            segments,
            json!({"segment": {"name": "Everyone", "visitor_event_query": {}}}),
        )
        .await;
    vec![a, b]
}

/// Every read route's answer, for every site: segment listings, each
/// segment and its stats, members (page by page) and matches, site stats,
/// subscribers by email, tags and fields; and the revoked key's refusal.
async fn every_answer(server: &Server, sites: &[Site]) -> Vec<Answer> {
    let mut answers = Vec::new();
    for site in sites {
        let get = async |path: String| server.answer(site, Method::GET, &path, None).await;
        let kept = get("/fetch/segments".into()).await;
        let discarded = get("/fetch/segments?state=discarded".into()).await;
        let mut ids = Vec::new();
        for listing in [&kept, &discarded] {
            let body: Value = serde_json::from_str(&listing.body).unwrap();
            for segment in body["data"].as_array().unwrap() {
                ids.push(segment["id"].as_str().unwrap().to_owned());
            }
        }
        answers.push(kept);
        answers.push(discarded);
        for id in &ids {
            answers.push(get(format!("/fetch/segments/{id}")).await);
            answers.push(get(format!("/stats/segment?segment_id={id}")).await);
            let mut page = format!("/fetch/segments/{id}/members?limit=2");
            loop {
                let answer = get(page.clone()).await;
                let body: Value = serde_json::from_str(&answer.body).unwrap();
                answers.push(answer);
                match body["meta"]["next_cursor"].as_str() {
                    Some(cursor) => {
                        page = format!("/fetch/segments/{id}/members?limit=2&cursor={cursor}")
                    }
                    None => break,
                }
            }
            // Its membership history: the changes feed page by page, the
            // series by day and by hour, and the members at each instant a
            // change was recorded, between two, and before the history
            // began (a 422 naming when it begins).
            let mut page = format!("/fetch/segments/{id}/changes?limit=2");
            let mut instants = vec![days_ago(1), corral::clock::format_ms(START_MS + 90_000)];
            loop {
                let answer = get(page.clone()).await;
                let body: Value = serde_json::from_str(&answer.body).unwrap();
                answers.push(answer);
                let changes = body["data"].as_array().unwrap();
                for change in changes {
                    instants.push(change["occurred_at"].as_str().unwrap().to_owned());
                }
                match body["meta"]["next_cursor"].as_str() {
                    Some(cursor) if !changes.is_empty() => {
                        page = format!("/fetch/segments/{id}/changes?limit=2&after={cursor}")
                    }
                    _ => break,
                }
            }
            answers.push(get(format!("/stats/segment/history?segment_id={id}")).await);
            answers.push(
                get(format!(
                    "/stats/segment/history?segment_id={id}&interval=hour&from={}",
                    urlencode(&days_ago(1))
                ))
                .await,
            );
            for at in instants {
                answers.push(
                    get(format!(
                        "/fetch/segments/{id}/members?at={}",
                        urlencode(&at)
                    ))
                    .await,
                );
            }
            // Its hand-made includes and excludes, a page of one at a
            // time (a discarded segment's are a 404).
            for list in ["includes", "excludes"] {
                let mut page = format!("/fetch/segments/{id}/{list}?limit=1");
                loop {
                    let answer = get(page.clone()).await;
                    let body: Value = serde_json::from_str(&answer.body).unwrap();
                    answers.push(answer);
                    match body["meta"]["next_cursor"].as_str() {
                        Some(cursor) => {
                            page = format!("/fetch/segments/{id}/{list}?limit=1&cursor={cursor}")
                        }
                        None => break,
                    }
                }
            }
            for email in EMAILS {
                let path = format!("/fetch/segments/{id}/match");
                let body = json!({ "email": email });
                answers.push(server.answer(site, Method::POST, &path, Some(&body)).await);
            }
        }
        answers.push(get("/stats/site".into()).await);
        for email in EMAILS {
            answers.push(get(format!("/fetch/subscribers?email={}", urlencode(email))).await);
        }
        let hooks = get("/fetch/webhooks".into()).await;
        let body: Value = serde_json::from_str(&hooks.body).unwrap();
        for hook in body["data"].as_array().unwrap() {
            let id = hook["id"].as_str().unwrap();
            answers.push(get(format!("/fetch/webhooks/{id}")).await);
            answers.push(get(format!("/fetch/webhooks/{id}/deliveries")).await);
        }
        answers.push(hooks);
        answers.push(get("/fetch/tags".into()).await);
        answers.push(get("/fetch/fields".into()).await);
        for key in &site.keys {
            let answer = server
                .answer_as(site, key, Method::GET, "/stats/site", None)
                .await;
            answers.push(answer);
        }
    }
    answers
}

/// Asserts the two servers answer alike, one request at a time (so that a
/// difference names its request).
async fn assert_same_answers(original: &Server, copy: &Server, sites: &[Site]) {
    let expected = every_answer(original, sites).await;
    let got = every_answer(copy, sites).await;
    for (expected, got) in expected.iter().zip(&got) {
        assert_eq!(expected, got);
    }
    assert_eq!(expected.len(), got.len());
    // The comparison saw what it was meant to: members, a revoked key.
    assert!(
        expected
            .iter()
            .any(|a| a.request.contains("members") && a.body.contains("ada@x.com"))
    );
    // And the journal's: leaves in a changes feed, dee in the members
    // between her join and leave, an instant before the history began
    // refused, a join counted in an hour of a series.
    let journal = |route: &str, status: u16, text: &str| {
        expected
            .iter()
            .any(|a| a.request.contains(route) && a.status == status && a.body.contains(text))
    };
    assert!(journal("/changes", 200, "segment.member_removed"));
    assert!(journal("/members?at=", 200, "dee@x.com"));
    assert!(journal("/members?at=", 422, "history begins"));
    assert!(journal("interval=hour", 200, r#""added":1"#));
    // And the hand-made lists: dee included in "Buyers" and a member of it,
    // ada excluded from it and from "lead buyers" through it, both said by
    // match, and the manual joins and leaves in the changes feed.
    assert!(journal("/includes?limit=1", 200, "dee@x.com"));
    assert!(journal("/excludes?limit=1", 200, "Ada@x.com"));
    assert!(journal("/match", 200, "included by hand"));
    assert!(journal("/match", 200, "excluded by hand"));
    assert!(journal("/changes", 200, r#""reason":"manual""#));
    let members = |name: &str| -> Vec<String> {
        let listing: Value = serde_json::from_str(&expected[0].body).unwrap();
        let id = listing["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["attributes"]["name"] == name)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let mut emails = Vec::new();
        for answer in &expected {
            if answer
                .request
                .starts_with(&format!("GET /fetch/segments/{id}/members?limit="))
            {
                let body: Value = serde_json::from_str(&answer.body).unwrap();
                for member in body["data"].as_array().unwrap() {
                    emails.push(member["attributes"]["email"].as_str().unwrap().to_owned());
                }
            }
        }
        emails
    };
    assert_eq!(members("Buyers"), ["dee@x.com"]);
    assert_eq!(members("lead buyers"), Vec::<String>::new());
    let site_stats: Vec<u16> = expected
        .iter()
        .filter(|a| a.request == "GET /stats/site")
        .map(|a| a.status)
        .collect();
    assert!(
        site_stats.contains(&401) && site_stats.contains(&200),
        "{site_stats:?}"
    );
}

/// Each row of a page, as text.
fn row_texts(rows: &Rows) -> Vec<String> {
    fn texts<T: std::fmt::Debug>(rows: &[T]) -> Vec<String> {
        rows.iter().map(|row| format!("{row:?}")).collect()
    }
    match rows {
        Rows::Sites(rows) => texts(rows),
        Rows::ApiKeys(rows) => texts(rows),
        Rows::Segments(rows) => texts(rows),
        Rows::Subscribers(rows) => texts(rows),
        Rows::Tags(rows) => texts(rows),
        Rows::SubscriberTags(rows) => texts(rows),
        Rows::Fields(rows) => texts(rows),
        Rows::Events(rows) => texts(rows),
        Rows::Webhooks(rows) => texts(rows),
        Rows::SegmentWatches(rows) => texts(rows),
        Rows::SegmentMembers(rows) => texts(rows),
        Rows::WebhookDeliveries(rows) => texts(rows),
        Rows::SegmentVersions(rows) => texts(rows),
        Rows::SegmentManual(rows) => texts(rows),
        Rows::AuditLog(rows) => texts(rows),
        Rows::SegmentJournals(rows) => texts(rows),
        Rows::JournalSites(rows) => texts(rows),
        Rows::JournalDays(rows) => texts(rows),
        Rows::JournalMembers(rows) => texts(rows),
        Rows::SegmentTransitions(rows) => texts(rows),
        Rows::ChangeHeads(rows) => texts(rows),
    }
}

/// Every row of every table the copy moves, as text, sorted (the backends
/// page in different key orders).
async fn every_row(store: &Arc<dyn Store>) -> Vec<(Table, Vec<String>)> {
    let mut reader = store.begin_read().await.unwrap();
    let mut all = Vec::new();
    for table in Table::ALL {
        let mut texts = Vec::new();
        let mut after = None;
        loop {
            let page = reader.read_page(table, after, 3).await.unwrap();
            texts.extend(row_texts(&page.rows));
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        texts.sort();
        all.push((table, texts));
    }
    all
}

/// Asserts the copy holds every row of the original, column for column,
/// and that the original had some of every table (so none went untested),
/// but `segment_members`: the watches' members of the release before
/// webhooks followed the journal, kept for a rollback and no longer written.
async fn assert_same_rows(original: &Server, copy: &Server) {
    let expected = every_row(&original.store).await;
    let got = every_row(&copy.store).await;
    for ((table, expected), (_, got)) in expected.iter().zip(&got) {
        let unwritten = *table == Table::SegmentMembers;
        assert!(
            !expected.is_empty() || unwritten,
            "the test writes no {}",
            table.name()
        );
        assert_eq!(expected, got, "{}", table.name());
    }
}

fn copy(from: &str, to: &str, extra: &[&str]) -> Output {
    Command::new(BIN)
        .args(["copy", "--from", from, "--to", to])
        .args(extra)
        .env_remove("CORRAL_DATABASE_URL")
        .env_remove("CORRAL_CONFIG")
        .output()
        .unwrap()
}

fn copied(from: &str, to: &str, extra: &[&str]) -> String {
    let output = copy(from, to, extra);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Asserts a refusal: exit 1, one line on stderr containing `needle`.
fn assert_refused(output: &Output, needle: &str) {
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(needle), "{stderr}");
}

/// Copies a populated `from` into `to` (pages of two rows, so that every
/// table takes several), then checks the copy answers as the original, and
/// goes on alike after the same writes on both.
async fn copy_answers_as_the_original(from: &str, to: &str) {
    let original = Server::start(from).await;
    let sites = populate(&original).await;
    copied(from, to, &["--page", "2"]);
    let copy = Server::start(to).await;
    // The copy's server at the original's time, so that answers counted
    // up to now (a series' last point) are the same.
    copy.clock.set_ms(original.clock.now_ms());
    assert_same_rows(&original, &copy).await;
    assert_same_answers(&original, &copy, &sites).await;

    // The same writes on both: new ids come after the copied ones, on the
    // copy as on the original, and the copy keeps answering alike (new
    // subscribers would not: their uuids are random).
    let site = &sites[0];
    let mut new_ids = Vec::new();
    for server in [&original, &copy] {
        let created = server
            .write(site, Method::POST, "/fetch/segments", json!({"segment": {"name": "New",
                "visitor_event_query": {"event": {"type": "$purchase", "count": {"at_least": 1}}}}}))
            .await;
        new_ids.push(id(&created).parse::<i64>().unwrap());
        server
            .write(
                site,
                Method::POST,
                "/fetch/tags",
                json!({"tag": {"name": "fresh"}}),
            )
            .await;
        server
            .write(
                site,
                Method::POST,
                "/batch/events",
                json!({"events": [
                {"type": "$purchase", "email": "dee@x.com", "date": days_ago(1),
                 "details": {"unique": {"key": "o-3"}, "value": {"amount": 5000}}},
                {"type": "$purchase", "email": "bob@x.com", "details": {"value": {"amount": 1}}}]}),
            )
            .await;
    }
    assert_eq!(new_ids[0], new_ids[1]);
    assert!(new_ids[1] > 6, "{new_ids:?}");
    assert_same_answers(&original, &copy, &sites).await;
    let stats = copy
        .answer(
            site,
            Method::GET,
            &format!("/stats/segment?segment_id={}", new_ids[1]),
            None,
        )
        .await;
    assert_eq!(
        serde_json::from_str::<Value>(&stats.body).unwrap()["user_count"],
        4,
        "the copy's new events count: {stats:?}"
    );
    original.store.close().await;
    copy.store.close().await;
}

fn sqlite_url(dir: &tempfile::TempDir, name: &str) -> String {
    format!("sqlite://{}", dir.path().join(name).display())
}

#[tokio::test]
async fn a_copy_answers_every_read_as_the_original_and_goes_on_alike() {
    let dir = tempfile::tempdir().unwrap();
    let from = fresh_database(dir.path()).await;
    copy_answers_as_the_original(&from, &sqlite_url(&dir, "copy.db")).await;
}

#[tokio::test]
async fn a_sqlite_database_copied_to_postgresql_answers_as_the_original() {
    let Some(to) = fresh_postgres_database().await else {
        eprintln!("skipped: CORRAL_TEST_POSTGRES names no PostgreSQL cluster");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    copy_answers_as_the_original(&sqlite_url(&dir, "corral.db"), &to).await;
}

#[tokio::test]
async fn a_postgresql_database_copied_to_sqlite_answers_as_the_original() {
    let Some(from) = fresh_postgres_database().await else {
        eprintln!("skipped: CORRAL_TEST_POSTGRES names no PostgreSQL cluster");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    copy_answers_as_the_original(&from, &sqlite_url(&dir, "copy.db")).await;
}

/// The sites of a database, as `corral site list` prints them.
fn site_list(database: &str) -> String {
    let output = Command::new(BIN)
        .args(["site", "list", "--database", database])
        .env_remove("CORRAL_CONFIG")
        .output()
        .unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout).unwrap()
}

/// A target with a site of its own, and more segments than the source has
/// (so its ids run further), is refused; `--replace` empties it and copies,
/// and the ids it hands out next are the source's again.
async fn a_target_holding_a_site_is_refused_unless_replaced(to: &str) {
    let dir = tempfile::tempdir().unwrap();
    let from = fresh_database(dir.path()).await;
    let original = Server::start(&from).await;
    let sites = populate(&original).await;
    let target = Server::start(to).await;
    let theirs = target.new_site("Theirs").await;
    for n in 0..10 {
        target
            .write(
                &theirs,
                Method::POST,
                "/fetch/segments",
                json!({"segment": {
                "name": format!("theirs {n}"), "visitor_event_query": {}}}),
            )
            .await;
    }
    target.store.close().await;
    let before = site_list(to);

    let refused = copy(&from, to, &[]);
    assert_refused(&refused, "already holds 1 site");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--replace"));
    assert_eq!(site_list(to), before);

    let counts: Value = serde_json::from_str(&copied(&from, to, &["--replace", "--json"])).unwrap();
    assert_eq!(counts["sites"], 2);
    assert_eq!(counts["segments"], 6);
    assert_eq!(counts["events"], 6);
    assert_eq!(counts["segment_manual"], 3);
    let after = site_list(to);
    assert!(!after.contains(&theirs.uuid), "{after}");
    assert!(sites.iter().all(|s| after.contains(&s.uuid)), "{after}");

    let copy = Server::start(to).await;
    let mut next = Vec::new();
    for server in [&original, &copy] {
        let created = server
            .write(
                &sites[0],
                Method::POST,
                "/fetch/segments",
                json!({"segment": {
                "name": "Next", "visitor_event_query": {}}}),
            )
            .await;
        next.push(id(&created));
    }
    assert_eq!(next, ["7", "7"]);
    copy.store.close().await;
    original.store.close().await;
}

#[tokio::test]
async fn a_sqlite_target_holding_a_site_is_refused_and_left_as_it_was_unless_replaced() {
    let dir = tempfile::tempdir().unwrap();
    a_target_holding_a_site_is_refused_unless_replaced(&sqlite_url(&dir, "target.db")).await;
}

#[tokio::test]
async fn a_postgresql_target_holding_a_site_is_refused_and_left_as_it_was_unless_replaced() {
    let Some(to) = fresh_postgres_database().await else {
        eprintln!("skipped: CORRAL_TEST_POSTGRES names no PostgreSQL cluster");
        return;
    };
    a_target_holding_a_site_is_refused_unless_replaced(&to).await;
}

#[test]
fn the_same_database_is_refused_under_any_url() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("one.db");
    let url = format!("sqlite://{}", path.display());
    Command::new(BIN)
        .args(["site", "create", "Mine", "--database", &url])
        .env_remove("CORRAL_CONFIG")
        .output()
        .unwrap();
    let before = site_list(&url);
    assert_refused(&copy(&url, &url, &["--replace"]), "the same database");
    // Another spelling of the same file: its database id tells.
    let other = format!("sqlite:{}", path.display());
    assert_refused(&copy(&url, &other, &["--replace"]), "the same database");
    assert_eq!(site_list(&url), before);
}

#[test]
fn a_missing_sqlite_source_is_refused_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("typo.db");
    let output = copy(
        &format!("sqlite://{}", missing.display()),
        &sqlite_url(&dir, "to.db"),
        &[],
    );
    assert_refused(&output, "no database to copy");
    assert!(!missing.exists());
}

/// Makes every insert into `events` fail on the target, after its schema
/// is in place: a copy gets as far as the events and fails there.
async fn refuse_events(target: &str) {
    storage::open(target).await.unwrap().close().await;
    if target.starts_with("postgres") {
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(target)
            .await
            .unwrap();
        sqlx::raw_sql(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS
                 $$ BEGIN RAISE EXCEPTION 'events are refused here'; END $$;
             CREATE TRIGGER refuse BEFORE INSERT ON events EXECUTE FUNCTION refuse();",
        )
        .execute(&mut conn)
        .await
        .unwrap();
    } else {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(target.trim_start_matches("sqlite://"));
        let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect_with(&options)
            .await
            .unwrap();
        sqlx::raw_sql(
            "CREATE TRIGGER refuse BEFORE INSERT ON events
             BEGIN SELECT RAISE(ABORT, 'events are refused here'); END;",
        )
        .execute(&mut conn)
        .await
        .unwrap();
    }
}

async fn a_copy_failing_part_way_leaves_the_target_empty(to: &str) {
    let dir = tempfile::tempdir().unwrap();
    let from = fresh_database(dir.path()).await;
    let original = Server::start(&from).await;
    populate(&original).await;
    refuse_events(to).await;
    let output = copy(&from, to, &["--page", "2"]);
    assert_refused(&output, "while writing events, so nothing was copied");
    assert!(String::from_utf8_lossy(&output.stderr).contains("events are refused here"));
    assert_eq!(site_list(to), "");
    let target = Server::start(to).await;
    let sites = target.store.list_sites().await.unwrap();
    assert!(sites.is_empty(), "{sites:?}");
    target.store.close().await;
    original.store.close().await;
}

#[tokio::test]
async fn a_copy_failing_part_way_leaves_a_sqlite_target_empty() {
    let dir = tempfile::tempdir().unwrap();
    a_copy_failing_part_way_leaves_the_target_empty(&sqlite_url(&dir, "target.db")).await;
}

#[tokio::test]
async fn a_copy_failing_part_way_leaves_a_postgresql_target_empty() {
    let Some(to) = fresh_postgres_database().await else {
        eprintln!("skipped: CORRAL_TEST_POSTGRES names no PostgreSQL cluster");
        return;
    };
    a_copy_failing_part_way_leaves_the_target_empty(&to).await;
}

#[test]
fn the_summary_counts_every_table_and_the_help_says_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let from = sqlite_url(&dir, "from.db");
    Command::new(BIN)
        .args(["site", "create", "Mine", "--database", &from])
        .env_remove("CORRAL_CONFIG")
        .output()
        .unwrap();
    let to = sqlite_url(&dir, "to.db");
    let summary = copied(&from, &to, &[]);
    let lines: Vec<&str> = summary.lines().collect();
    assert_eq!(lines.len(), 23, "{summary}");
    // A header, then the counts right-aligned in one column.
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["table", "rows", "copied"]
    );
    let ends: std::collections::BTreeSet<usize> = lines[..22].iter().map(|l| l.len()).collect();
    assert_eq!(ends.len(), 1, "the counts are aligned: {summary}");
    for (line, (table, rows)) in lines[1..].iter().zip([
        ("sites", 1),
        ("api_keys", 1),
        ("segments", 0),
        ("subscribers", 0),
        ("tags", 0),
        ("subscriber_tags", 0),
        ("fields", 0),
        ("events", 0),
        ("webhooks", 0),
        ("segment_watches", 0),
        ("segment_members", 0),
        ("webhook_deliveries", 0),
        ("segment_versions", 0),
        ("segment_manual", 0),
        // The site's first key pair, added with it.
        ("audit_log", 1),
        ("segment_journals", 0),
        ("journal_sites", 0),
        ("journal_days", 0),
        ("journal_members", 0),
        ("segment_transitions", 0),
        ("change_heads", 1),
    ]) {
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(words, [table, &rows.to_string()], "{summary}");
    }
    assert!(
        lines[22].starts_with(&format!("copied {from} to {to} in ")),
        "{summary}"
    );
    let help = Command::new(BIN).args(["copy", "--help"]).output().unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    assert!(
        help.contains("all or nothing") && help.contains("--replace"),
        "{help}"
    );
    assert!(!help.contains("--database"), "{help}");
}
