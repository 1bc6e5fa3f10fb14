//! The demo site of `corral serve --demo` as a new user meets it, through the
//! real binary and its API: an audience whose history holds together (every
//! subscriber created before their events and before any change of their
//! subscription) and sample segments that each select someone, and select
//! what their names say.

use crate::cli::{Cli, Server, start_server};
use crate::helpers::*;
use chrono::{DateTime, FixedOffset};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The demo site of a running `serve --demo`, as its banner's `export` line
/// gives it, and requests to its API.
pub(crate) struct DemoApi {
    client: reqwest::Client,
    /// `http://HOST/api/v1`.
    base: String,
    site: String,
    publishable: String,
    secret: String,
}

impl DemoApi {
    pub(crate) fn of(server: &Server) -> Self {
        let value = |name: &str| {
            server
                .export_line()
                .split_whitespace()
                .find_map(|word| word.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("no {name}= in {}", server.export_line()))
                .to_owned()
        };
        Self {
            client: http_client(),
            base: value("BASE"),
            site: value("SITE"),
            publishable: value("PK"),
            secret: value("SK"),
        }
    }

    /// `method` on `path` (under `/api/v1`, with or without a query string)
    /// of the demo site: its status and body.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> (StatusCode, String) {
        let separator = if path.contains('?') { '&' } else { '?' };
        let url = format!("{}{path}{separator}site_uuid={}", self.base, self.site);
        let mut request = self
            .client
            .request(method, url)
            .basic_auth(&self.publishable, Some(&self.secret));
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap();
        (response.status(), response.text().await.unwrap())
    }

    /// A JSON answer that must be 2xx.
    pub(crate) async fn json(&self, method: Method, path: &str, body: Option<&Value>) -> Value {
        let (status, text) = self.call(method, path, body).await;
        assert!(status.is_success(), "{path}: {status} {text}");
        serde_json::from_str(&text).unwrap()
    }

    /// How many subscribers `query` selects now (its preview's
    /// `user_count`), or the answer when it cannot be previewed.
    pub(crate) async fn count(&self, query: &Value) -> Result<i64, String> {
        let body = json!({"visitor_event_query": query, "sample": 0});
        let (status, text) = self
            .call(Method::POST, "/fetch/segments/preview", Some(&body))
            .await;
        if status != StatusCode::OK {
            return Err(format!("{status} {text}"));
        }
        let answer: Value = serde_json::from_str(&text).unwrap();
        Ok(answer["data"]["user_count"].as_i64().unwrap())
    }

    /// The ids of the site's kept segments, with their names.
    pub(crate) async fn segments(&self) -> Vec<(String, String)> {
        let listed = self.json(Method::GET, "/fetch/segments", None).await;
        listed["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let name = s["attributes"]["name"].as_str().unwrap().to_owned();
                (s["id"].as_str().unwrap().to_owned(), name)
            })
            .collect()
    }
}

fn instant(text: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

#[tokio::test]
async fn every_demo_subscriber_is_created_before_their_events_and_any_unsubscribe() {
    let cli = Cli::new();
    let server = start_server(&cli);
    let demo = DemoApi::of(&server);
    // Everyone, through a segment of its own, for the CSV's created_at.
    let created = demo
        .json(
            Method::POST,
            "/fetch/segments",
            Some(&json!({"segment": {"name": "Everyone", "visitor_event_query": {}}})),
        )
        .await;
    let id = created["data"]["id"].as_str().unwrap();
    let (status, csv) = demo
        .call(
            Method::GET,
            &format!("/fetch/segments/{id}/members.csv"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{csv}");
    let mut rows = csv::Reader::from_reader(csv.as_bytes());
    let mut checked = 0;
    let mut unsubscribed = 0;
    let mut problems = Vec::new();
    for row in rows.records() {
        let row = row.unwrap();
        let (email, created_at) = (&row[1], instant(&row[2]));
        if !row[3].is_empty() {
            unsubscribed += 1;
            if instant(&row[3]) < created_at {
                problems.push(format!(
                    "{email}: unsubscribed at {} before its creation at {}",
                    &row[3], &row[2]
                ));
            }
        }
        let events = demo
            .json(
                Method::GET,
                &format!(
                    "/fetch/subscribers/events?email={}&limit=100",
                    urlencode(email)
                ),
                None,
            )
            .await;
        let events = events["data"].as_array().unwrap();
        assert!(
            !events.is_empty() && events.len() < 100,
            "{email}: {} events",
            events.len()
        );
        for event in events {
            let occurred_at = event["attributes"]["occurred_at"].as_str().unwrap();
            if instant(occurred_at) < created_at {
                let kind = &event["attributes"]["type"];
                problems.push(format!(
                    "{email}: {kind} at {occurred_at} before its creation at {}",
                    &row[2]
                ));
            }
        }
        checked += 1;
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(checked, 40);
    assert!(unsubscribed > 0, "the demo has unsubscribes to check");
}

#[tokio::test]
async fn every_demo_segment_selects_someone_and_what_its_name_says() {
    let cli = Cli::new();
    let server = start_server(&cli);
    let demo = DemoApi::of(&server);
    let segments = demo.segments().await;
    assert_eq!(segments.len(), 4, "{segments:?}");
    for (id, name) in &segments {
        let stats = demo
            .json(
                Method::GET,
                &format!("/stats/segment?segment_id={id}"),
                None,
            )
            .await;
        assert!(
            stats["user_count"].as_i64().unwrap() >= 1,
            "{name}: {stats}"
        );
    }
    let id = |wanted: &str| {
        let (id, _) = segments.iter().find(|(_, name)| name == wanted).unwrap();
        id.clone()
    };
    let (vip, dormant) = (id("VIP customers"), id("Dormant trial users"));
    // VIP customers are customers, none on the free plan.
    let not_customers = json!({"not": {"tag": {"has": "customer"}}});
    assert_eq!(
        members_who(&demo, &vip, not_customers).await,
        0,
        "VIPs not tagged customer"
    );
    let free = json!({"field": {"key": "plan", "equals": "free"}});
    assert_eq!(
        members_who(&demo, &vip, free).await,
        0,
        "VIPs on the free plan"
    );
    let vip_tagged = json!({"tag": {"has": "vip"}});
    assert!(
        members_who(&demo, &vip, vip_tagged).await >= 1,
        "no VIP tagged vip"
    );
    // Dormant trial users are on the trial plan and have bought nothing.
    let not_trial = json!({"not": {"field": {"key": "plan", "equals": "trial"}}});
    assert_eq!(
        members_who(&demo, &dormant, not_trial).await,
        0,
        "dormant trial users not on the trial plan"
    );
    let bought = json!({"event": {"type": "$purchase"}});
    assert_eq!(
        members_who(&demo, &dormant, bought).await,
        0,
        "dormant trial users who bought"
    );
}

/// How many members of `segment` also hold `condition`.
async fn members_who(demo: &DemoApi, segment: &str, condition: Value) -> i64 {
    let query = json!({"all": [{"segment": {"member_of": segment}}, condition]});
    demo.count(&query).await.unwrap()
}
