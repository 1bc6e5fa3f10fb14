//! Every error is JSON in Bento's shapes, whatever part of the request is
//! wrong: walked over every operation of the OpenAPI document, so a route
//! added later is walked too.

use crate::helpers::*;
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

/// Asserts an error answer in one of Bento's two shapes.
async fn assert_bento_error(response: Response, status: StatusCode, what: &str) -> Value {
    assert_eq!(response.status(), status, "{what}");
    assert_eq!(
        response.headers()["content-type"],
        "application/json; charset=utf-8",
        "{what}"
    );
    let body: Value = response.json().await.unwrap();
    let shaped = body["error"].is_string()
        || body["errors"].as_array().is_some_and(|e| {
            e.iter()
                .all(|e| e["field"].is_string() && e["message"].is_string())
        });
    assert!(shaped, "{what}: {body}");
    body
}

/// Every operation of the document: (method, path template, query
/// parameters other than `site_uuid`).
async fn operations(app: &TestApp) -> Vec<(Method, String, Vec<String>)> {
    let document: Value = app
        .bare(Method::GET, "/api/openapi.json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut operations = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let parameters = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "query" && p["name"] != "site_uuid")
                .map(|p| p["name"].as_str().unwrap().to_owned())
                .collect();
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            operations.push((method, path.clone(), parameters));
        }
    }
    assert!(operations.len() >= 20, "{operations:?}");
    operations
}

#[tokio::test]
async fn a_query_string_that_cannot_be_read_is_a_json_400_on_every_route() {
    // Every route answers a 401 here: none may be refused as an address
    // that failed too often.
    let app = TestApp::spawn_with(corral::http::HttpSettings {
        rate_limit_per_minute: 0,
        auth_failures_per_minute: 0,
        ..corral::http::HttpSettings::default()
    })
    .await;
    let segment = app.create_segment("one", json!({})).await;
    let id = segment["id"].as_str().unwrap();
    let mut walked = 0;
    for (method, template, parameters) in operations(&app).await {
        let path = template.replace("{id}", id);
        for parameter in parameters {
            let what = format!("{method} {template} with {parameter} twice");
            let response = app
                .request(
                    method.clone(),
                    &format!("{path}?{parameter}=1&{parameter}=2"),
                )
                .send()
                .await
                .unwrap();
            let body = assert_bento_error(response, StatusCode::BAD_REQUEST, &what).await;
            assert_eq!(
                body["error"],
                format!("Invalid query string: duplicate field `{parameter}`"),
                "{what}"
            );
            walked += 1;
        }
        if template.starts_with("/api/v1/") {
            // `site_uuid` twice leaves the site in doubt.
            let what = format!("{method} {template} with site_uuid twice");
            let response = app
                .request(
                    method.clone(),
                    &format!("{path}?site_uuid={}", app.site.uuid),
                )
                .send()
                .await
                .unwrap();
            assert_bento_error(response, StatusCode::UNAUTHORIZED, &what).await;
        }
    }
    assert!(walked >= 5, "only {walked} parameters walked");
}

#[tokio::test]
async fn a_path_id_that_is_not_utf8_is_a_json_404_on_every_route() {
    let app = TestApp::spawn().await;
    let mut walked = 0;
    for (method, template, _) in operations(&app).await {
        if !template.contains("{id}") {
            continue;
        }
        for id in ["%ff", "%C3%28", "abc", "0", "99999999999999999999"] {
            let what = format!("{method} {template} with id {id}");
            let mut request = app.request(method.clone(), &template.replace("{id}", id));
            if method != Method::GET {
                request = request.json(&json!({"email": "a@example.com"}));
            }
            let response = request.send().await.unwrap();
            let body = assert_bento_error(response, StatusCode::NOT_FOUND, &what).await;
            let missing = if template.contains("/webhooks/") {
                "Webhook not found"
            } else {
                "Segment not found"
            };
            assert_eq!(body, json!({"error": missing}), "{what}");
        }
        walked += 1;
    }
    assert!(walked >= 5, "only {walked} routes with an id");
    // Outside any route's `{id}`, such a path is no route at all.
    let response = app.get("/api/v1/fetch/%ff").await;
    let body = assert_bento_error(response, StatusCode::NOT_FOUND, "/fetch/%ff").await;
    assert_eq!(body, json!({"error": "Not Found"}));
}

#[tokio::test]
async fn a_wrong_method_is_a_json_405_on_every_route() {
    let app = TestApp::spawn().await;
    let segment = app.create_segment("one", json!({})).await;
    let id = segment["id"].as_str().unwrap();
    let operations = operations(&app).await;
    for (_, template, _) in &operations {
        let allowed: Vec<&Method> = operations
            .iter()
            .filter(|(_, t, _)| t == template)
            .map(|(m, _, _)| m)
            .collect();
        for method in [Method::PUT, Method::PATCH, Method::DELETE, Method::POST] {
            if allowed.contains(&&method) {
                continue;
            }
            let what = format!("{method} {template}");
            let response = app
                .request(method.clone(), &template.replace("{id}", id))
                .send()
                .await
                .unwrap();
            let body = assert_bento_error(response, StatusCode::METHOD_NOT_ALLOWED, &what).await;
            assert_eq!(body, json!({"error": "Method Not Allowed"}), "{what}");
        }
    }
}

#[tokio::test]
async fn a_body_that_is_not_json_is_a_json_400_on_every_route_with_a_body() {
    let app = TestApp::spawn().await;
    let segment = app.create_segment("one", json!({})).await;
    let id = segment["id"].as_str().unwrap();
    for (method, template, _) in operations(&app).await {
        if !template.starts_with("/api/v1/") || method == Method::GET {
            continue;
        }
        let what = format!("{method} {template}");
        let response = app
            .send_raw(method.clone(), &template.replace("{id}", id), "{\"a\":")
            .await;
        let body = assert_bento_error(response, StatusCode::BAD_REQUEST, &what).await;
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .starts_with("Malformed JSON: "),
            "{what}: {body}"
        );
    }
}
