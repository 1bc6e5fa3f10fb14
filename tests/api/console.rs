//! The web console's files: served at `/` and `/console/…` without
//! credentials, with the security headers, while the API beside them still
//! asks for its keys. And the parser's vocabulary, kept in
//! `tests/console/vocabulary.json` for the browser tests, which build every
//! operator it lists in the console's builder.

use crate::helpers::*;
use corral_core::query::parse::VOCABULARY;
use reqwest::{Method, StatusCode};
use std::path::Path;

fn assert_console_headers(response: &reqwest::Response) {
    let headers = response.headers();
    let csp = headers["content-security-policy"].to_str().unwrap();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} missing from {csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "no-referrer");
}

#[tokio::test]
async fn the_console_is_served_at_the_root_without_credentials() {
    let app = TestApp::spawn().await;
    let response = app.bare(Method::GET, "/").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/html; charset=utf-8"
    );
    assert_console_headers(&response);
    let html = response.text().await.unwrap();
    assert!(html.contains(r#"<script type="module" src="/console/app.js">"#));
    assert!(!html.contains("<style"), "no inline styles");
}

#[tokio::test]
async fn every_console_file_is_served_with_its_type_and_the_headers() {
    let app = TestApp::spawn().await;
    for (path, content_type) in [
        ("/console/app.js", "text/javascript; charset=utf-8"),
        ("/console/builder.js", "text/javascript; charset=utf-8"),
        ("/console/style.css", "text/css; charset=utf-8"),
        ("/console/favicon.svg", "image/svg+xml"),
    ] {
        let response = app.bare(Method::GET, path).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(response.headers()["content-type"], content_type, "{path}");
        assert_console_headers(&response);
    }
}

#[tokio::test]
async fn every_file_of_the_console_folder_is_served_as_it_is_written() {
    let app = TestApp::spawn().await;
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http/console");
    let mut modules = 0;
    for entry in std::fs::read_dir(&folder).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let route = if name == "index.html" {
            "/".to_owned()
        } else {
            format!("/console/{name}")
        };
        let response = app.bare(Method::GET, &route).send().await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "{route}: is {name} in the list of src/http/console.rs?"
        );
        let served = response.text().await.unwrap();
        assert_eq!(served, std::fs::read_to_string(&path).unwrap(), "{route}");
        if name.ends_with(".js") {
            // TypeScript's checker reads every module (tests/console/tsconfig.json);
            // the comment also has editors check the file.
            assert!(served.starts_with("// @ts-check\n"), "{name}");
            modules += 1;
        }
    }
    assert!(modules >= 10, "only {modules} modules");
}

/// The file the browser tests read: every operator it lists is built in the
/// console's builder, and the query it makes is sent to the server.
const VOCABULARY_FILE: &str = "tests/console/vocabulary.json";

#[test]
fn the_vocabulary_the_builder_is_tested_on_is_the_parsers() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(VOCABULARY_FILE);
    let rendered = serde_json::to_string_pretty(&VOCABULARY).unwrap() + "\n";
    if std::env::var_os("CORRAL_UPDATE_VOCABULARY").is_some() {
        std::fs::write(&path, &rendered).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == rendered,
        "{VOCABULARY_FILE} is not what the query parser accepts (VOCABULARY in \
         crates/corral-core/src/query/parse.rs). Write it again with \
         `CORRAL_UPDATE_VOCABULARY=1 cargo test --test api console::the_vocabulary`, \
         then run the browser tests (tests/console/), which fail until the console's \
         builder can build every operator it lists.\n--- the parser's:\n{rendered}"
    );
}

#[tokio::test]
async fn an_unknown_console_file_is_the_json_404() {
    let app = TestApp::spawn().await;
    for path in ["/console/nope.js", "/console/", "/console/../Cargo.toml"] {
        let response = app.bare(Method::GET, path).send().await.unwrap();
        assert_json(
            response,
            StatusCode::NOT_FOUND,
            serde_json::json!({"error": "Not Found"}),
        )
        .await;
    }
}

#[tokio::test]
async fn the_api_beside_the_console_still_asks_for_keys() {
    let app = TestApp::spawn().await;
    let response = app
        .bare(Method::GET, "/api/v1/fetch/segments")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(
        response.headers().get("content-security-policy").is_none(),
        "the API's answers are not the console's"
    );
}
