//! Stable samples through the API: a holdout and the rest of a segment
//! partition it, with the members the documented hash gives (worked out
//! here with this file's own code), on whichever backend the suite runs,
//! from a server that reads the site from its checkpoint, from one that
//! reads it whole, and in the membership journal; the Python and the
//! JavaScript of `docs/query-language.md#sample` give the server's buckets;
//! a sample out of shape is refused at its pointer.

use crate::helpers::{TestApp, assert_invalid};
use corral::http::HttpSettings;
use corral::live::CheckpointSettings;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;

const SEGMENTS: &str = "/api/v1/fetch/segments";

/// A subscriber's bucket in hundredths, as the reference documents it.
fn bucket(salt: &str, uuid: &str) -> u16 {
    let digest = Sha256::digest(format!("{salt}:{uuid}"));
    let first: [u8; 8] = digest[..8].try_into().unwrap();
    (u64::from_be_bytes(first) % 10_000) as u16
}

fn settings(checkpoints: Option<CheckpointSettings>) -> HttpSettings {
    HttpSettings {
        rate_limit_per_minute: 0,
        stats_rate_limit_per_hour: 0,
        checkpoints,
        ..HttpSettings::default()
    }
}

/// Subscribers `first..first + n` (`s{i}@x.io`), every other one tagged
/// `customer`, in batches of 1,000.
async fn add_subscribers(app: &TestApp, first: usize, n: usize) {
    let all: Vec<Value> = (first..first + n)
        .map(|i| {
            let mut s = json!({"email": format!("s{i}@x.io")});
            if i % 2 == 0 {
                s["tags"] = json!("customer");
            }
            s
        })
        .collect();
    for batch in all.chunks(1_000) {
        let response = app
            .send_json(
                Method::POST,
                "/api/v1/batch/subscribers",
                &json!({ "subscribers": batch }),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["failed"], 0, "{body}");
    }
}

/// Every member of a segment: `(uuid, email)`, page by page.
async fn members(app: &TestApp, id: &str) -> BTreeSet<(String, String)> {
    let mut all = BTreeSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            None => format!("{SEGMENTS}/{id}/members?limit=1000"),
            Some(c) => format!("{SEGMENTS}/{id}/members?limit=1000&cursor={c}"),
        };
        let response = app.get(&path).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        for s in body["data"].as_array().unwrap() {
            let a = &s["attributes"];
            all.insert((
                a["uuid"].as_str().unwrap().to_owned(),
                a["email"].as_str().unwrap().to_owned(),
            ));
        }
        match body["meta"]["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return all,
        }
    }
}

fn sample(salt: &str, from: f64, to: f64) -> Value {
    json!({"sample": {"salt": salt, "from": from, "to": to}})
}

/// The members of the three segments: the customers, their holdout
/// `[0, 10)` and the rest `[10, 100)`.
type Three = [BTreeSet<(String, String)>; 3];

async fn three(app: &TestApp, ids: &[String; 3]) -> Three {
    [
        members(app, &ids[0]).await,
        members(app, &ids[1]).await,
        members(app, &ids[2]).await,
    ]
}

/// The holdout and the rest never share a member, hold every customer
/// together, and hold those the documented hash puts in their ranges.
fn partitioned(found: &Three, salt: &str) {
    let [customers, holdout, rest] = found;
    assert!(customers.len() > 100, "{} customers", customers.len());
    assert!(holdout.is_disjoint(rest), "the holdout and the rest share");
    let union: BTreeSet<_> = holdout.union(rest).cloned().collect();
    assert_eq!(&union, customers, "the holdout and the rest miss someone");
    let expected: BTreeSet<_> = customers
        .iter()
        .filter(|(uuid, _)| bucket(salt, uuid) < 1_000)
        .cloned()
        .collect();
    assert_eq!(holdout, &expected, "the holdout is not the documented one");
    assert!(!holdout.is_empty());
}

#[tokio::test]
async fn a_holdout_and_the_rest_partition_a_segment_on_every_server_and_in_the_journal() {
    let checkpoints = tempfile::tempdir().unwrap();
    let written = CheckpointSettings {
        dir: checkpoints.path().to_owned(),
        write: true,
    };
    let app = TestApp::spawn_with(settings(Some(written.clone()))).await;
    let site_id = app.site_id(&app.site).await;
    add_subscribers(&app, 0, 1_500).await;
    // Resident, so that the segments' journals begin when they are saved.
    app.state.live.resident(site_id).await.unwrap();
    let salt = "spring-test";
    let customers = app
        .create_segment("Customers", json!({"tag": {"has": "customer"}}))
        .await;
    let customers = customers["id"].as_str().unwrap().to_owned();
    let of_customers = |from: f64, to: f64| json!({"all": [{"segment": {"member_of": customers}}, sample(salt, from, to)]});
    let holdout = app.create_segment("Holdout", of_customers(0.0, 10.0)).await;
    let rest = app.create_segment("Rest", of_customers(10.0, 100.0)).await;
    let ids = [
        customers.clone(),
        holdout["id"].as_str().unwrap().to_owned(),
        rest["id"].as_str().unwrap().to_owned(),
    ];
    let before = three(&app, &ids).await;
    partitioned(&before, salt);

    // A checkpoint, then subscribers it does not hold.
    app.state.live.write_checkpoints(None).await;
    add_subscribers(&app, 1_500, 500).await;
    let now = three(&app, &ids).await;
    partitioned(&now, salt);
    assert!(now[0].len() > before[0].len());

    // The journal (each write's transitions, worked out over the touched
    // subscribers alone) added to the holdout exactly its new members.
    let mut joined = BTreeSet::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            None => format!("{SEGMENTS}/{}/changes?limit=100", ids[1]),
            Some(c) => format!("{SEGMENTS}/{}/changes?limit=100&after={c}", ids[1]),
        };
        let body: Value = app.get(&path).await.json().await.unwrap();
        let page = body["data"].as_array().unwrap().clone();
        if page.is_empty() {
            break;
        }
        for change in page {
            assert_eq!(change["type"], "segment.member_added", "{change}");
            let s = &change["subscriber"];
            joined.insert((
                s["uuid"].as_str().unwrap().to_owned(),
                s["email"].as_str().unwrap().to_owned(),
            ));
        }
        after = body["meta"]["next_cursor"].as_str().map(str::to_owned);
    }
    let new: BTreeSet<_> = now[1].difference(&before[1]).cloned().collect();
    assert!(!new.is_empty());
    assert_eq!(joined, new, "the journal's holdout joins");

    // A second server reads the site from the checkpoint and the log since.
    let read_only = CheckpointSettings {
        write: false,
        ..written
    };
    let mut second =
        TestApp::spawn_on_with(app.database_url.clone(), settings(Some(read_only))).await;
    second.site = app.site.clone();
    let from_checkpoint = three(&second, &ids).await;
    let stats = second.state.live.site_stats(site_id).unwrap();
    assert_eq!((stats.checkpoint_reads, stats.full_reads), (1, 0));
    assert_eq!(from_checkpoint, now, "after a restart from the checkpoint");

    // And a third reads it whole.
    let mut third = TestApp::spawn_on_with(app.database_url.clone(), settings(None)).await;
    third.site = app.site.clone();
    let whole = three(&third, &ids).await;
    let stats = third.state.live.site_stats(site_id).unwrap();
    assert_eq!((stats.checkpoint_reads, stats.full_reads), (0, 1));
    assert_eq!(whole, now, "after a restart reading the site whole");
}

/// The fenced block of `language` that follows `## \`sample\`` in the
/// reference.
fn snippet(language: &str) -> String {
    let doc = include_str!("../../docs/query-language.md");
    let section = doc
        .split("\n## `sample`\n")
        .nth(1)
        .expect("the reference has a sample section");
    let fence = format!("```{language}\n");
    let block = section.split(&fence).nth(1).expect("a fenced block");
    block.split("```").next().unwrap().to_owned()
}

/// Runs a program with `input` on its standard input; its standard output.
fn run(program: &str, file: &std::path::Path, input: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new(program)
        .arg(file)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} cannot be run ({e}): the tests need it"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{program} {}: {}",
        file.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test]
async fn the_documented_python_and_javascript_give_the_servers_buckets() {
    let app = TestApp::spawn_with(settings(None)).await;
    add_subscribers(&app, 0, 1_000).await;
    let salts = ["spring-test", "Ünï holdout 2027", "a:b"];
    let all = app
        .create_segment(
            "Three samples",
            json!({"all": salts.iter().map(|s| sample(s, 0.0, 100.0)).collect::<Vec<_>>()}),
        )
        .await;
    let everyone = app.create_segment("Everyone", json!({})).await;
    let people: Vec<String> = members(&app, everyone["id"].as_str().unwrap())
        .await
        .into_iter()
        .map(|(uuid, _)| uuid)
        .collect();
    assert_eq!(people.len(), 1_000);

    // The server's buckets, from the facts `match` gives each sample.
    let path = format!("{SEGMENTS}/{}/match", all["id"].as_str().unwrap());
    let mut served: Vec<String> = Vec::new();
    for chunk in people.chunks(25) {
        let answers = futures_util::future::join_all(chunk.iter().map(|uuid| {
            app.request(Method::POST, &path)
                .json(&json!({ "uuid": uuid }))
                .send()
        }))
        .await;
        for answer in answers {
            let answer = answer.unwrap();
            assert_eq!(answer.status(), StatusCode::OK);
            let body: Value = answer.json().await.unwrap();
            let samples = body["data"]["explanation"]["children"].as_array().unwrap();
            assert_eq!(samples.len(), salts.len());
            for node in samples {
                assert_eq!(node["condition"], "sample");
                served.push(node["facts"]["bucket"].to_string());
            }
        }
    }

    // The reference's code, each line `salt<TAB>uuid` read from stdin.
    let input: String = people
        .iter()
        .flat_map(|uuid| salts.iter().map(move |salt| format!("{salt}\t{uuid}\n")))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let python = dir.path().join("bucket.py");
    std::fs::write(
        &python,
        snippet("python")
            + "\nimport sys\nfor line in sys.stdin:\n    salt, uuid = line.rstrip(\"\\n\").split(\"\\t\")\n    print(bucket(salt, uuid))\n",
    )
    .unwrap();
    let javascript = dir.path().join("bucket.mjs");
    std::fs::write(
        &javascript,
        snippet("js")
            + "\nimport { readFileSync } from 'node:fs';\nfor (const line of readFileSync(0, 'utf8').split('\\n')) {\n  if (!line) continue;\n  const [salt, uuid] = line.split('\\t');\n  console.log(bucket(salt, uuid));\n}\n",
    )
    .unwrap();
    let as_numbers = |lines: &[&str]| -> Vec<f64> {
        lines
            .iter()
            .map(|l| l.trim().parse::<f64>().unwrap())
            .collect()
    };
    let served = as_numbers(&served.iter().map(String::as_str).collect::<Vec<_>>());
    for (program, file) in [("python3", &python), ("node", &javascript)] {
        let output = run(program, file, &input);
        let lines: Vec<&str> = output.lines().collect();
        // After the snippet's own example, a bucket a line.
        let computed = as_numbers(&lines[1..]);
        assert_eq!(computed.len(), served.len(), "{program}");
        let differing = computed.iter().zip(&served).filter(|(a, b)| a != b).count();
        assert_eq!(
            differing, 0,
            "{program}: {differing} buckets differ from the server's"
        );
        assert_eq!(lines[0], "48.12", "{program}: the example's answer");
    }
    // And this file's own reading of the reference agrees with both.
    let ours: Vec<f64> = people
        .iter()
        .flat_map(|uuid| {
            salts
                .iter()
                .map(move |salt| f64::from(bucket(salt, uuid)) / 100.0)
        })
        .collect();
    assert_eq!(ours, served);
}

#[tokio::test]
async fn a_sample_out_of_shape_is_refused_at_its_pointer() {
    let app = TestApp::spawn_with(settings(None)).await;
    let save = |query: Value| {
        app.request(Method::POST, SEGMENTS)
            .json(&json!({"segment": {"name": "Sample", "visitor_event_query": query}}))
            .send()
    };
    assert_invalid(
        save(json!({"all": [{"subscribed": true}, sample("spring-test", 10.0, 10.0)]}))
            .await
            .unwrap(),
        &[(
            "visitor_event_query/all/1/sample",
            "is empty: \"from\" (10) must be below \"to\" (10); a sample holds the buckets \
             from \"from\" (included) up to \"to\" (not included)",
        )],
    )
    .await;
    assert_invalid(
        save(json!({"sample": {"salt": "", "from": 0.005, "to": 10}}))
            .await
            .unwrap(),
        &[
            (
                "visitor_event_query/sample/salt",
                "must be text of 1 to 255 characters, hashed as written; found empty text",
            ),
            (
                "visitor_event_query/sample/from",
                "must be a number from 0 to 100 with at most two decimals (buckets are a \
                 hundredth wide); found 0.005",
            ),
        ],
    )
    .await;
    let response = app
        .send_json(
            Method::POST,
            &format!("{SEGMENTS}/preview"),
            &json!({"visitor_event_query": sample("spring-test", 0.0, 10.0), "sample": 0}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
}
