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
            } else if template.contains("/tags/") {
                "Tag not found"
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

// Requests the HTTP parser would refuse before any route sees them.

/// Sends `request` on a fresh connection and reads until the server closes
/// it.
async fn raw_exchange(app: &TestApp, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(30),
        stream.read_to_end(&mut answer),
    )
    .await
    .expect("the server closed the connection")
    .unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

/// Splits what a server sent into its answers: (status line and headers,
/// body), by their `Content-Length`s.
fn split_answers(mut sent: &str) -> Vec<(String, String)> {
    let mut answers = Vec::new();
    while !sent.is_empty() {
        let (head, rest) = sent.split_once("\r\n\r\n").expect("a whole head");
        let length: usize = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().unwrap())
            })
            .unwrap_or(0);
        answers.push((head.to_owned(), rest[..length].to_owned()));
        sent = &rest[length..];
    }
    answers
}

/// Asserts an answer: its status line begins with `status`, it closes the
/// connection, and its body is `body` as JSON.
fn assert_refused(answer: &(String, String), status: &str, body: Value) {
    let (head, sent) = answer;
    assert!(head.starts_with(&format!("HTTP/1.1 {status}")), "{head}");
    let head = head.to_ascii_lowercase();
    assert!(head.contains("\r\nconnection: close"), "{head}");
    assert!(
        head.contains("\r\ncontent-type: application/json; charset=utf-8"),
        "{head}"
    );
    assert_eq!(
        serde_json::from_str::<Value>(sent).unwrap_or(Value::Null),
        body,
        "{head}"
    );
}

#[tokio::test]
async fn a_request_the_parser_refuses_is_answered_in_json_and_closed() {
    let app = TestApp::spawn().await;
    let malformed = |detail: &str| json!({"error": format!("Malformed request: {detail}")});
    let many_headers: String = (0..101).map(|i| format!("X-{i}: y\r\n")).collect();
    let cases = [
        (
            "GET /api/v1/fetch/segments\0 HTTP/1.1\r\nHost: corral\r\n\r\n".to_owned(),
            "400 ",
            malformed("its target cannot be read"),
        ),
        (
            "GET /healthz HTTP/1.1\r\nHost: corral\r\nNo colon here\r\n\r\n".to_owned(),
            "400 ",
            malformed("a header line cannot be read"),
        ),
        (
            "POST /api/v1/fetch/segments HTTP/1.1\r\nHost: corral\r\nContent-Length: 2\r\n\
             Content-Length: 3\r\n\r\n{}"
                .to_owned(),
            "400 ",
            malformed("it has two different Content-Lengths"),
        ),
        (
            format!(
                "GET /{} HTTP/1.1\r\nHost: corral\r\n\r\n",
                "a".repeat(70_000)
            ),
            "414 ",
            json!({"error": "URI Too Long"}),
        ),
        (
            format!("GET /healthz HTTP/1.1\r\nHost: corral\r\n{many_headers}\r\n"),
            "431 ",
            json!({"error": "Request Header Fields Too Large"}),
        ),
        // Far over the 400 KiB the parser reads of a head: the rest is read
        // and dropped while the answer is sent and after, so that the
        // client's sending does not fail and it reads the answer.
        (
            format!(
                "GET /healthz HTTP/1.1\r\nHost: corral\r\nX-Big: {}\r\n\r\n",
                "a".repeat(16 * 1024 * 1024)
            ),
            "431 ",
            json!({"error": "Request Header Fields Too Large"}),
        ),
    ];
    for (request, status, body) in cases {
        let sent = raw_exchange(&app, request.as_bytes()).await;
        let answers = split_answers(&sent);
        assert_eq!(answers.len(), 1, "{sent}");
        assert_refused(&answers[0], status, body);
    }
    // The server goes on answering.
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_bad_head_after_requests_on_one_connection_is_answered_after_theirs() {
    use base64::Engine;
    let app = TestApp::spawn().await;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        app.site.publishable_key, app.site.secret_key
    ));
    let create =
        |name: &str| format!(r#"{{"segment":{{"name":"{name}","visitor_event_query":{{}}}}}}"#);
    let post = format!(
        "POST /api/v1/fetch/segments?site_uuid={} HTTP/1.1\r\nHost: corral\r\n\
         Authorization: Basic {basic}\r\nContent-Type: application/json\r\n",
        app.site.uuid
    );
    // Pipelined at once: a body sized by its length, one sent in chunks (a
    // body read as a head would be refused: `{` begins no method), then a
    // head with a NUL, then a request after it that is never read.
    let sized = create("sized");
    let chunked = create("chunked");
    let (first, second) = chunked.split_at(20);
    let pipelined = format!(
        "{post}Content-Length: {}\r\n\r\n{sized}\
         {post}Transfer-Encoding: chunked\r\n\r\n{:x};ext=1\r\n{first}\r\n{:x}\r\n{second}\r\n0\r\n\r\n\
         GET /healthz\0 HTTP/1.1\r\nHost: corral\r\n\r\n\
         GET /healthz HTTP/1.1\r\nHost: corral\r\n\r\n",
        sized.len(),
        first.len(),
        second.len(),
    );
    let sent = raw_exchange(&app, pipelined.as_bytes()).await;
    let answers = split_answers(&sent);
    assert_eq!(answers.len(), 3, "{sent}");
    assert!(answers[0].0.starts_with("HTTP/1.1 201 "), "{sent}");
    assert!(answers[1].0.starts_with("HTTP/1.1 201 "), "{sent}");
    assert_refused(
        &answers[2],
        "400 ",
        json!({"error": "Malformed request: its target cannot be read"}),
    );
    let mut names = app.listed_names().await;
    names.sort();
    assert_eq!(names, ["chunked", "sized"]);

    // On a connection kept alive: the bad head comes after an answer read.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: corral\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 12];
    stream.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: corral\r\nNo colon here\r\n\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(30),
        stream.read_to_end(&mut rest),
    )
    .await
    .expect("the server closed the connection")
    .unwrap();
    let sent = format!("HTTP/1.1 200{}", String::from_utf8_lossy(&rest));
    let answers = split_answers(&sent);
    assert_eq!(answers.len(), 2, "{sent}");
    assert_refused(
        &answers[1],
        "400 ",
        json!({"error": "Malformed request: a header line cannot be read"}),
    );
}
