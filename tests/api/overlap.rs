//! The overlap of segments (`POST /api/v1/stats/overlap`) and its CLI twin
//! (`corral segment overlap`): every region counted by hand over a small
//! audience, live after a write, in the order the segments are named; five
//! segments (one referring to another) against the stats of each and the
//! preview of each pairwise intersection; what is refused, and how; the
//! stats family's rate limit; and the CLI's `--json` byte for byte the API's.

use crate::cli::Cli;
use crate::helpers::{TestApp, TestSite, assert_invalid, assert_json};
use corral::http::HttpSettings;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const OVERLAP: &str = "/api/v1/stats/overlap";

async fn app() -> TestApp {
    TestApp::spawn_with(HttpSettings {
        rate_limit_per_minute: 0,
        stats_rate_limit_per_hour: 0,
        ..HttpSettings::default()
    })
    .await
}

/// s1: a; s2: a b; s3: a b c; s4: b; s5: c; s6: c; s7: none; s8: a c.
async fn audience(app: &TestApp) {
    let people = [
        ("s1", "a"),
        ("s2", "a,b"),
        ("s3", "a,b,c"),
        ("s4", "b"),
        ("s5", "c"),
        ("s6", "c"),
        ("s7", ""),
        ("s8", "a,c"),
    ];
    let subscribers: Vec<Value> = people
        .iter()
        .map(|(name, tags)| {
            let mut s = json!({"email": format!("{name}@example.com")});
            if !tags.is_empty() {
                s["tags"] = json!(tags);
            }
            s
        })
        .collect();
    let response = app
        .send_json(
            Method::POST,
            "/api/v1/batch/subscribers",
            &json!({ "subscribers": subscribers }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
}

async fn tag_segment(app: &TestApp, tag: &str) -> String {
    id(&app
        .create_segment(&format!("Tag {tag}"), json!({"tag": {"has": tag}}))
        .await)
}

fn id(segment: &Value) -> String {
    segment["id"].as_str().unwrap().to_owned()
}

async fn overlap(app: &TestApp, ids: &[&str]) -> Value {
    let response = app
        .send_json(Method::POST, OVERLAP, &json!({ "segment_ids": ids }))
        .await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn region(inside: &[&str], out: &[&str], n: u64) -> Value {
    json!({"in": inside, "out": out, "user_count": n})
}

#[tokio::test]
async fn every_region_of_three_segments_is_counted_in_the_order_named() {
    let app = app().await;
    audience(&app).await;
    let (a, b, c) = (
        tag_segment(&app, "a").await,
        tag_segment(&app, "b").await,
        tag_segment(&app, "c").await,
    );
    let (a, b, c) = (a.as_str(), b.as_str(), c.as_str());
    let response = app
        .send_json(Method::POST, OVERLAP, &json!({"segment_ids": [a, b, c]}))
        .await;
    assert_json(
        response,
        StatusCode::OK,
        json!({"data": {
            "segment_ids": [a, b, c],
            "regions": [
                region(&[a], &[b, c], 1),
                region(&[b], &[a, c], 1),
                region(&[c], &[a, b], 2),
                region(&[a, b], &[c], 1),
                region(&[a, c], &[b], 1),
                region(&[b, c], &[a], 0),
                region(&[a, b, c], &[], 1),
            ],
            "union": 7,
            "intersection": 1,
        }}),
    )
    .await;

    // Named the other way round, the regions follow.
    assert_eq!(
        overlap(&app, &[c, a]).await,
        json!({"data": {
            "segment_ids": [c, a],
            "regions": [region(&[c], &[a], 2), region(&[a], &[c], 2), region(&[c, a], &[], 2)],
            "union": 6,
            "intersection": 2,
        }})
    );
}

#[tokio::test]
async fn the_counts_are_live() {
    let app = app().await;
    audience(&app).await;
    let (b, c) = (tag_segment(&app, "b").await, tag_segment(&app, "c").await);
    let before = overlap(&app, &[&b, &c]).await;
    assert_eq!(
        before["data"]["regions"],
        json!([
            region(&[&b], &[&c], 2),
            region(&[&c], &[&b], 3),
            region(&[&b, &c], &[], 1)
        ])
    );
    // s6 is tagged b too, and s9 joins with b and c.
    let response = app
        .send_json(
            Method::POST,
            "/api/v1/batch/subscribers",
            &json!({"subscribers": [
                {"email": "s6@example.com", "tags": "b"},
                {"email": "s9@example.com", "tags": "b,c"},
            ]}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let after = overlap(&app, &[&b, &c]).await;
    assert_eq!(
        after["data"]["regions"],
        json!([
            region(&[&b], &[&c], 2),
            region(&[&c], &[&b], 2),
            region(&[&b, &c], &[], 3)
        ])
    );
    assert_eq!(after["data"]["union"], 7);
    assert_eq!(after["data"]["intersection"], 3);
}

async fn user_count(app: &TestApp, id: &str) -> u64 {
    let response = app
        .get(&format!("/api/v1/stats/segment?segment_id={id}"))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    body["user_count"].as_u64().unwrap()
}

async fn preview_count(app: &TestApp, query: Value) -> u64 {
    let response = app
        .send_json(
            Method::POST,
            "/api/v1/fetch/segments/preview",
            &json!({"visitor_event_query": query, "sample": 0}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    body["data"]["user_count"].as_u64().unwrap()
}

#[tokio::test]
async fn five_segments_agree_with_their_stats_and_the_previews_of_their_intersections() {
    let app = app().await;
    audience(&app).await;
    let a = tag_segment(&app, "a").await;
    let b = tag_segment(&app, "b").await;
    let c = tag_segment(&app, "c").await;
    let not_a = id(&app
        .create_segment("Not a", json!({"not": {"segment": {"member_of": a}}}))
        .await);
    let a_and_c = id(&app
        .create_segment(
            "a and c",
            json!({"all": [{"segment": {"member_of": a}}, {"tag": {"has": "c"}}]}),
        )
        .await);
    let ids = [
        a.as_str(),
        b.as_str(),
        c.as_str(),
        not_a.as_str(),
        a_and_c.as_str(),
    ];
    let body = overlap(&app, &ids).await;
    let data = &body["data"];
    let regions = data["regions"].as_array().unwrap();
    assert_eq!(regions.len(), 31);
    assert_eq!(data["segment_ids"], json!(ids));

    // Every region once: its `in` and `out` split the five.
    let mut seen = std::collections::BTreeSet::new();
    let mut sizes = Vec::new();
    for r in regions {
        let inside: Vec<&str> = r["in"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let out: Vec<&str> = r["out"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(!inside.is_empty());
        assert_eq!(inside.len() + out.len(), 5);
        let mask: u32 = inside
            .iter()
            .map(|s| 1 << ids.iter().position(|i| i == s).unwrap())
            .sum();
        assert!(seen.insert(mask), "region {mask:b} twice");
        sizes.push(inside.len());
    }
    assert!(sizes.windows(2).all(|w| w[0] <= w[1]), "{sizes:?}");
    let count_of = |mask: u32| -> u64 {
        regions
            .iter()
            .find(|r| {
                r["in"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| 1u32 << ids.iter().position(|i| *i == v).unwrap())
                    .sum::<u32>()
                    == mask
            })
            .unwrap()["user_count"]
            .as_u64()
            .unwrap()
    };

    // Each segment's members are the regions it is in.
    for (i, id) in ids.iter().enumerate() {
        let within: u64 = (1..32u32).filter(|m| m & (1 << i) != 0).map(count_of).sum();
        assert_eq!(within, user_count(&app, id).await, "segment {id}");
    }
    // Each pair's intersection is the preview of both.
    for i in 0..5 {
        for j in i + 1..5 {
            let both: u64 = (1..32u32)
                .filter(|m| m & (1 << i) != 0 && m & (1 << j) != 0)
                .map(count_of)
                .sum();
            let query = json!({"all": [
                {"segment": {"member_of": ids[i]}},
                {"segment": {"member_of": ids[j]}},
            ]});
            assert_eq!(
                both,
                preview_count(&app, query).await,
                "{} and {}",
                ids[i],
                ids[j]
            );
        }
    }
    // The union is everyone in one of them (a or not a: all eight); a
    // and not a share nobody, so neither does the whole.
    assert_eq!(data["union"], 8);
    assert_eq!(
        data["union"].as_u64().unwrap(),
        (1..32u32).map(count_of).sum::<u64>()
    );
    assert_eq!(data["intersection"], 0);
    assert_eq!(count_of(0b11111), 0);
}

async fn refused(app: &TestApp, site: &TestSite, body: Value) -> reqwest::Response {
    app.as_site(site, Method::POST, OVERLAP)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn what_is_not_two_to_five_kept_segments_of_the_site_is_refused() {
    let app = app().await;
    audience(&app).await;
    let a = tag_segment(&app, "a").await;
    let b = tag_segment(&app, "b").await;
    let site = app.site.clone();
    let site_id = app.site_id(&site).await;
    let not_found = json!({"error": "Segment not found"});

    // Before the site's audience is in memory, and after.
    for resident in [false, true] {
        assert_eq!(app.state.live.holds(site_id), resident);
        let response = refused(&app, &site, json!({"segment_ids": [a, "999999"]})).await;
        assert_json(response, StatusCode::NOT_FOUND, not_found.clone()).await;
        if !resident {
            overlap(&app, &[&a, &b]).await;
        }
    }

    assert_invalid(
        refused(&app, &site, json!({})).await,
        &[("segment_ids", "can't be blank")],
    )
    .await;
    assert_invalid(
        refused(&app, &site, json!({"segment_ids": "1,2"})).await,
        &[("segment_ids", "must be a list of segment ids")],
    )
    .await;
    assert_invalid(
        refused(&app, &site, json!({"segment_ids": [a]})).await,
        &[("segment_ids", "must name from 2 to 5 segments (1 named)")],
    )
    .await;
    assert_invalid(
        refused(&app, &site, json!({"segment_ids": []})).await,
        &[("segment_ids", "must name from 2 to 5 segments (0 named)")],
    )
    .await;
    let six: Vec<String> = (0..6).map(|i| (i + 100).to_string()).collect();
    assert_invalid(
        refused(&app, &site, json!({ "segment_ids": six })).await,
        &[("segment_ids", "must name from 2 to 5 segments (6 named)")],
    )
    .await;
    assert_invalid(
        refused(&app, &site, json!({"segment_ids": [a, b, a]})).await,
        &[("segment_ids/2", &format!("names segment {a} again"))],
    )
    .await;
    let not_an_id = "must be a segment id (a positive whole number, as a string)";
    assert_invalid(
        refused(&app, &site, json!({"segment_ids": [a, 2, "0", "x"]})).await,
        &[
            ("segment_ids/1", not_an_id),
            ("segment_ids/2", not_an_id),
            ("segment_ids/3", not_an_id),
        ],
    )
    .await;
    assert_invalid(
        refused(&app, &site, json!({"segment_ids": [a, b], "sample": 1})).await,
        &[("sample", "is not a known field")],
    )
    .await;

    // A discarded segment, and another site's, are not found.
    let response = app
        .request(Method::DELETE, &format!("/api/v1/fetch/segments/{b}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = refused(&app, &site, json!({"segment_ids": [a, b]})).await;
    assert_json(response, StatusCode::NOT_FOUND, not_found.clone()).await;
    let other = app.new_site().await;
    let theirs = id(&app
        .create_segment_for(&other, "Theirs", json!({"tag": {"has": "a"}}))
        .await);
    let response = refused(&app, &site, json!({"segment_ids": [a, theirs]})).await;
    assert_json(response, StatusCode::NOT_FOUND, not_found.clone()).await;
    let response = refused(&app, &other, json!({"segment_ids": [theirs, a]})).await;
    assert_json(response, StatusCode::NOT_FOUND, not_found).await;

    // A foreign segment is kept but never evaluated.
    let foreign = id(&app
        .create_segment("Foreign", json!({"foreign": {"rules": []}}))
        .await);
    assert_invalid(
        refused(&app, &site, json!({"segment_ids": [a, foreign]})).await,
        &[(
            "segment_ids/1",
            &format!(
                "segment {foreign} is foreign ({{\"foreign\": …}}): Corral keeps it as written but does not evaluate it"
            ),
        )],
    )
    .await;
}

#[tokio::test]
async fn overlap_is_a_stats_route_with_its_allowance_and_its_site() {
    let app = TestApp::spawn_with(HttpSettings {
        rate_limit_per_minute: 100,
        stats_rate_limit_per_hour: 2,
        ..HttpSettings::default()
    })
    .await;
    audience(&app).await;
    let a = tag_segment(&app, "a").await;
    let b = tag_segment(&app, "b").await;
    let body = json!({"segment_ids": [a, b]});

    // `site_uuid` in the body, as the Node SDK sends it, and not in the
    // query string.
    let response = app
        .bare(Method::POST, OVERLAP)
        .basic_auth(&app.site.publishable_key, Some(&app.site.secret_key))
        .json(&json!({"site_uuid": app.site.uuid, "segment_ids": [a, b]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // No credentials: 401, and nothing counted.
    let response = app
        .bare(Method::POST, OVERLAP)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // The second of the hour's two stats requests is Bento's segment stats;
    // the third is refused whichever stats route it is.
    assert_eq!(
        app.get(&format!("/api/v1/stats/segment?segment_id={a}"))
            .await
            .status(),
        StatusCode::OK
    );
    let limited = app.send_json(Method::POST, OVERLAP, &body).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers().contains_key("retry-after"));
    // The other families are not spent by it.
    assert_eq!(app.get("/api/v1/fetch/tags").await.status(), StatusCode::OK);
}

#[test]
fn the_cli_twin_answers_what_the_api_answers() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let app = app().await;
        audience(&app).await;
        let (a, b, c) = (
            tag_segment(&app, "a").await,
            tag_segment(&app, "b").await,
            tag_segment(&app, "c").await,
        );
        let uuid = app.site.uuid.clone();
        let cli = Cli::on(&app.database_url);
        let api = app
            .send_json(Method::POST, OVERLAP, &json!({"segment_ids": [a, b, c]}))
            .await
            .text()
            .await
            .unwrap();
        let printed = cli.ok(&["segment", "overlap", &a, &b, &c, "--site", &uuid, "--json"]);
        assert_eq!(printed.trim_end(), api);

        let text = cli.ok(&["segment", "overlap", &a, &c, "--site", &uuid]);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].ends_with("Tag a"), "{text}");
        assert!(lines[1].ends_with("Tag c"), "{text}");
        let rows: Vec<Vec<&str>> = lines
            .iter()
            .skip_while(|l| !l.trim_start().starts_with("members"))
            .skip(1)
            .take_while(|l| !l.is_empty())
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            rows,
            vec![
                vec!["2", a.as_str(), c.as_str()],
                vec!["2", c.as_str(), a.as_str()],
                vec!["2", &format!("{a},"), c.as_str(), "-"],
            ],
            "{text}"
        );
        assert!(text.contains("union:        6"), "{text}");
        assert!(text.contains("intersection: 2"), "{text}");

        for (args, needle) in [
            (
                vec![a.as_str(), "999999"],
                "segment 999999 not found on this site",
            ),
            (
                vec![a.as_str()],
                "segment_ids must name from 2 to 5 segments (1 named)",
            ),
            (
                vec![a.as_str(), "x"],
                "segment_ids/1 \"x\" is not a segment id",
            ),
        ] {
            let mut command = vec!["segment", "overlap"];
            command.extend(args);
            command.extend(["--site", &uuid]);
            let output = cli.run(&command);
            assert!(!output.status.success(), "{command:?}");
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(stderr.lines().count(), 1, "{stderr}");
            assert!(stderr.contains(needle), "{stderr}");
        }
    });
}
