//! `corral segments pull|diff|push DIR` against the suite's server (bound on
//! port 0) over its API, and on its database directly.

use super::BIN;
use crate::helpers::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Output};

/// Runs `corral segments ARGS` against the app's server as `site`, keys
/// from the environment.
async fn segments(app: &TestApp, site: &TestSite, args: &[&str]) -> Output {
    let mut command = Command::new(BIN);
    command
        .arg("segments")
        .args(args)
        .args(["--url", &app.base, "--site", &site.uuid])
        .env("CORRAL_PUBLISHABLE_KEY", &site.publishable_key)
        .env("CORRAL_SECRET_KEY", &site.secret_key)
        .env_remove("CORRAL_DATABASE_URL")
        .env_remove("CORRAL_CONFIG");
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "status {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        stdout(output),
        stderr(output)
    );
    stdout(output)
}

/// Every file of the folder: (name, bytes), in name order.
fn folder(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

/// (id, name, query as saved, ETag) of every kept segment of `site`.
async fn kept(app: &TestApp, site: &TestSite) -> Vec<(String, String, String, String)> {
    let listed: Value = app
        .as_site(site, Method::GET, "/api/v1/fetch/segments")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut out = Vec::new();
    for item in listed["data"].as_array().unwrap() {
        let id = item["id"].as_str().unwrap();
        let one = app
            .as_site(site, Method::GET, &format!("/api/v1/fetch/segments/{id}"))
            .send()
            .await
            .unwrap();
        let etag = one.headers()["etag"].to_str().unwrap().to_owned();
        let text = one.text().await.unwrap();
        // The query's bytes as the server answers them.
        let start = text.find("\"visitor_event_query\":").unwrap() + 22;
        let query = raw_query(&text[start..]);
        out.push((
            id.to_owned(),
            item["attributes"]["name"].as_str().unwrap().to_owned(),
            query,
            etag,
        ));
    }
    out.sort();
    out
}

/// The JSON object at the start of `text`, as written.
fn raw_query(text: &str) -> String {
    let mut depth = 0;
    let mut in_string = false;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '{' | '[' => depth += 1,
            '}' | ']' => {
                depth -= 1;
                if depth == 0 {
                    return text[..=i].to_owned();
                }
            }
            _ => {}
        }
    }
    panic!("no object in {text}")
}

async fn create(app: &TestApp, site: &TestSite, name: &str, query: &str) -> String {
    let body = format!(r#"{{"segment":{{"name":{name:?},"visitor_event_query":{query}}}}}"#);
    let made = app
        .as_site(site, Method::POST, "/api/v1/fetch/segments")
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), StatusCode::CREATED);
    made.json::<Value>().await.unwrap()["data"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A fresh folder with the site's segments pulled into it.
async fn pulled(app: &TestApp, site: &TestSite) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    ok(&segments(app, site, &["pull", dir.path().to_str().unwrap()]).await);
    dir
}

/// Replaces `from` by `to` in the folder's `file`.
fn edit(dir: &Path, file: &str, from: &str, to: &str) {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{file} holds no {from}");
    std::fs::write(&path, text.replace(from, to)).unwrap();
}

/// A site with three segments, one referring to another, and literals a
/// round trip through a JSON value would change.
async fn three(app: &TestApp, site: &TestSite) -> (String, String, String) {
    let vip = create(app, site, "VIP customers", r#"{"tag":{"has":"vip"}}"#).await;
    let big = create(
        app,
        site,
        "Big spenders",
        r#"{"event":{"type":"$purchase","sum":{"of":"value.amount","more_than":1.10}}}"#,
    )
    .await;
    let both = create(
        app,
        site,
        "Big VIPs",
        &format!(r#"{{"all":[{{"segment":{{"member_of":"{vip}"}}}},{{"segment":{{"member_of":"{big}"}}}}]}}"#),
    )
    .await;
    (vip, big, both)
}

#[tokio::test]
async fn pull_writes_a_file_a_segment_and_pushing_it_back_changes_nothing() {
    let app = TestApp::spawn().await;
    let site = app.site.clone();
    let (vip, _, _) = three(&app, &site).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let said = ok(&segments(&app, &site, &["pull", path]).await);
    assert!(said.contains("pulled 3 segments"), "{said}");
    let first = folder(dir.path());
    let names: Vec<&str> = first.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "big-spenders.json",
            "big-vips.json",
            "segments.lock",
            "vip-customers.json"
        ]
    );
    let vips = String::from_utf8(first[3].1.clone()).unwrap();
    assert_eq!(
        vips,
        format!(
            "{{\n  \"id\": \"{vip}\",\n  \"name\": \"VIP customers\",\n  \"description\": null,\n  \"visitor_event_query\": {{\n    \"tag\": {{\n      \"has\": \"vip\"\n    }}\n  }}\n}}\n"
        )
    );
    // Literals as saved, references by name.
    let big = String::from_utf8(first[0].1.clone()).unwrap();
    assert!(big.contains("\"more_than\": 1.10"), "{big}");
    let both = String::from_utf8(first[1].1.clone()).unwrap();
    assert!(
        both.contains("\"member_of\": \"name:VIP customers\""),
        "{both}"
    );
    assert!(
        both.contains("\"member_of\": \"name:Big spenders\""),
        "{both}"
    );

    // Pulling again writes the same bytes.
    ok(&segments(&app, &site, &["pull", path]).await);
    assert_eq!(folder(dir.path()), first);

    // Nothing to do: diff exits 0, push changes no version.
    let before = kept(&app, &site).await;
    let diff = segments(&app, &site, &["diff", path]).await;
    assert_eq!(diff.status.code(), Some(0), "{}", stderr(&diff));
    assert!(stdout(&diff).contains("0 to create, 0 to update, 0 to discard, 3 unchanged"));
    ok(&segments(&app, &site, &["push", path]).await);
    assert_eq!(kept(&app, &site).await, before);
}

#[tokio::test]
async fn an_edit_a_new_file_and_a_removed_one_are_pushed_as_planned() {
    let app = TestApp::spawn().await;
    let site = app.site.clone();
    let (vip, big, both) = three(&app, &site).await;
    let dir = pulled(&app, &site).await;
    let path = dir.path().to_str().unwrap();
    let before = kept(&app, &site).await;

    // VIPs are now tagged `gold`; a new segment refers to a new one by name.
    edit(dir.path(), "vip-customers.json", "\"vip\"", "\"gold\"");
    std::fs::write(
        dir.path().join("loyal.json"),
        r#"{"name":"Loyal","visitor_event_query":{"any":[{"segment":{"member_of":"name:Gold, new"}},{"tag":{"has":"loyal"}}]}}"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("new-gold.json"),
        r#"{"name":"Gold, new","description":"d","visitor_event_query":{"tag":{"has":"gold"}}}"#,
    )
    .unwrap();
    std::fs::remove_file(dir.path().join("big-spenders.json")).unwrap();

    let diff = segments(&app, &site, &["diff", path]).await;
    assert_eq!(diff.status.code(), Some(2), "{}", stderr(&diff));
    let plan = stdout(&diff);
    assert!(plan.contains("create   loyal.json  \"Loyal\""), "{plan}");
    assert!(
        plan.contains("create   new-gold.json  \"Gold, new\""),
        "{plan}"
    );
    assert!(
        plan.contains(&format!(
            "update   vip-customers.json  \"VIP customers\" (segment {vip})"
        )),
        "{plan}"
    );
    assert!(
        plan.contains("  -    \"has\": \"vip\"\n  +    \"has\": \"gold\""),
        "{plan}"
    );
    assert!(plan.contains(&format!("keep     segment {big}")), "{plan}");
    assert!(
        plan.contains("2 to create, 1 to update, 0 to discard, 1 unchanged"),
        "{plan}"
    );

    // A dry run changes nothing.
    ok(&segments(&app, &site, &["push", path, "--dry-run"]).await);
    assert_eq!(kept(&app, &site).await, before);

    // Without --prune, Big spenders stays (Big VIPs refers to it anyway).
    ok(&segments(&app, &site, &["push", path]).await);
    let after = kept(&app, &site).await;
    let by_name = |name: &str| after.iter().find(|s| s.1 == name).cloned().unwrap();
    assert_eq!(by_name("VIP customers").2, r#"{"tag":{"has":"gold"}}"#);
    let gold = by_name("Gold, new").0;
    assert_eq!(
        by_name("Loyal").2,
        format!(
            r#"{{"any":[{{"segment":{{"member_of":"{gold}"}}}},{{"tag":{{"has":"loyal"}}}}]}}"#
        )
    );
    assert_eq!(
        by_name("Big spenders"),
        before.iter().find(|s| s.0 == big).cloned().unwrap()
    );
    assert_eq!(
        by_name("Big VIPs"),
        before.iter().find(|s| s.0 == both).cloned().unwrap()
    );
    // Pushed: nothing more to do.
    let diff = segments(&app, &site, &["diff", path]).await;
    assert_eq!(diff.status.code(), Some(0), "{}", stdout(&diff));

    // With --prune: Big spenders has no file, but Big VIPs refers to it.
    let refused = segments(&app, &site, &["push", path, "--prune"]).await;
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("0 applied, 1 refused"),
        "{}",
        stderr(&refused)
    );
    // Without the reference, it goes.
    std::fs::remove_file(dir.path().join("big-vips.json")).unwrap();
    ok(&segments(&app, &site, &["push", path, "--prune"]).await);
    let names: Vec<String> = kept(&app, &site).await.into_iter().map(|s| s.1).collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(!names.contains(&"Big spenders".to_owned()));
}

#[tokio::test]
async fn an_invalid_file_refuses_the_whole_push_naming_file_and_pointer() {
    let app = TestApp::spawn().await;
    let site = app.site.clone();
    three(&app, &site).await;
    let dir = pulled(&app, &site).await;
    let path = dir.path().to_str().unwrap();
    let before = kept(&app, &site).await;
    edit(dir.path(), "vip-customers.json", "\"vip\"", "\"gold\"");
    std::fs::write(
        dir.path().join("broken.json"),
        r#"{"name":"Broken","visitor_event_query":{"all":[{"tag":{"hass":"x"}}]}}"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("dangling.json"),
        r#"{"name":"Dangling","visitor_event_query":{"segment":{"member_of":"name:Nobody"}}}"#,
    )
    .unwrap();
    let refused = segments(&app, &site, &["push", path]).await;
    assert_eq!(refused.status.code(), Some(1));
    let said = stderr(&refused);
    assert!(said.contains("nothing was applied: "), "{said}");
    assert!(
        said.contains("broken.json: /visitor_event_query/all/0/tag"),
        "{said}"
    );
    assert!(
        said.contains(
            "dangling.json: /visitor_event_query/segment/member_of: no segment is named \"Nobody\""
        ),
        "{said}"
    );
    assert_eq!(kept(&app, &site).await, before);
}

#[tokio::test]
async fn a_segment_changed_on_the_server_since_the_pull_is_refused_and_the_rest_applied() {
    let app = TestApp::spawn().await;
    let site = app.site.clone();
    let (vip, big, _) = three(&app, &site).await;
    let dir = pulled(&app, &site).await;
    let path = dir.path().to_str().unwrap();
    // Someone renames VIP customers meanwhile.
    let changed = app
        .as_site(
            &site,
            Method::PATCH,
            &format!("/api/v1/fetch/segments/{vip}"),
        )
        .json(&json!({"segment": {"description": "changed meanwhile"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), StatusCode::OK);
    edit(dir.path(), "vip-customers.json", "\"vip\"", "\"gold\"");
    edit(dir.path(), "big-spenders.json", "1.10", "2.20");
    let refused = segments(&app, &site, &["push", path]).await;
    assert_eq!(refused.status.code(), Some(1));
    let said = stderr(&refused);
    assert!(said.contains("1 applied, 1 refused"), "{said}");
    assert!(
        said.contains("vip-customers.json: the segment changed on the site since it was pulled"),
        "{said}"
    );
    assert!(stdout(&refused).contains(&format!("updated segment {big} from big-spenders.json")));
    let now = kept(&app, &site).await;
    let of = |id: &str| now.iter().find(|s| s.0 == id).cloned().unwrap();
    assert_eq!(of(&vip).2, r#"{"tag":{"has":"vip"}}"#);
    assert!(of(&big).2.contains("2.20"), "{:?}", of(&big));
}

#[tokio::test]
async fn a_folder_pushed_to_another_site_resolves_its_references_by_name() {
    let app = TestApp::spawn().await;
    let site = app.site.clone();
    three(&app, &site).await;
    let dir = pulled(&app, &site).await;
    // The folder, without the first site's lock and ids.
    let copy = tempfile::tempdir().unwrap();
    for (name, bytes) in folder(dir.path()) {
        if name.ends_with(".json") {
            let mut file: Value = serde_json::from_slice(&bytes).unwrap();
            file.as_object_mut().unwrap().remove("id");
            std::fs::write(copy.path().join(name), file.to_string()).unwrap();
        }
    }
    let other = app.new_site().await;
    let copy_path = copy.path().to_str().unwrap();
    ok(&segments(&app, &other, &["push", copy_path]).await);
    let made = kept(&app, &other).await;
    let id_of = |name: &str| made.iter().find(|s| s.1 == name).unwrap().0.clone();
    let both = made.iter().find(|s| s.1 == "Big VIPs").unwrap();
    assert_eq!(
        both.2,
        format!(
            r#"{{"all":[{{"segment":{{"member_of":"{}"}}}},{{"segment":{{"member_of":"{}"}}}}]}}"#,
            id_of("VIP customers"),
            id_of("Big spenders")
        )
    );
    // Pulled from there, the folder reads the same as from the first site
    // but for the ids.
    let back = tempfile::tempdir().unwrap();
    ok(&segments(&app, &other, &["pull", back.path().to_str().unwrap()]).await);
    let strip = |files: Vec<(String, Vec<u8>)>| -> Vec<(String, Value)> {
        files
            .into_iter()
            .filter(|(n, _)| n.ends_with(".json"))
            .map(|(n, b)| {
                let mut v: Value = serde_json::from_slice(&b).unwrap();
                v.as_object_mut().unwrap().remove("id");
                (n, v)
            })
            .collect()
    };
    assert_eq!(strip(folder(back.path())), strip(folder(dir.path())));
}

#[tokio::test]
async fn on_the_database_directly_pull_writes_what_the_server_gives() {
    let app = TestApp::spawn().await;
    let site = app.site.clone();
    three(&app, &site).await;
    let over_http = tempfile::tempdir().unwrap();
    ok(&segments(&app, &site, &["pull", over_http.path().to_str().unwrap()]).await);
    let direct = tempfile::tempdir().unwrap();
    let mut command = Command::new(BIN);
    command
        .args(["segments", "pull", direct.path().to_str().unwrap()])
        .args(["--site", &site.uuid, "--database", &app.database_url])
        .env_remove("CORRAL_DATABASE_URL")
        .env_remove("CORRAL_CONFIG");
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    ok(&output);
    assert_eq!(folder(direct.path()), folder(over_http.path()));
    // Without keys, --url is refused with what to give.
    let mut command = Command::new(BIN);
    command
        .args(["segments", "pull", direct.path().to_str().unwrap()])
        .args(["--site", &site.uuid, "--url", &app.base])
        .env_remove("CORRAL_PUBLISHABLE_KEY")
        .env_remove("CORRAL_SECRET_KEY");
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("--url needs the site's keys"));
}
