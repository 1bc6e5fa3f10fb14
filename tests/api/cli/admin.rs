//! Site and key administration: the `site` and `key` commands, a revoked key locked out at once.

use super::Cli;
use crate::helpers::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

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
