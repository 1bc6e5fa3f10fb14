//! Slow and idle clients: half-sent requests, idle keep-alive connections
//! and responses nobody reads are closed, stalled bodies are answered 408,
//! one address holds at most its cap of connections, and at the connection
//! cap the server still answers.

use crate::helpers::TestApp;
use corral::http::HttpSettings;
use corral::http::conn::ConnectionSettings;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn app(connections: ConnectionSettings) -> TestApp {
    TestApp::spawn_with(HttpSettings {
        rate_limit_per_minute: 0,
        connections,
        ..HttpSettings::default()
    })
    .await
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Whether the server closes the connection (reads reach the end) within
/// a generous bound; whatever it sends first is read and dropped.
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: corral\r\n\r\n";

#[tokio::test]
async fn a_half_sent_request_is_closed_after_the_header_read_timeout() {
    let app = app(ConnectionSettings {
        header_read_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_secs(60),
        max_connections: 100,
        ..ConnectionSettings::default()
    })
    .await;
    let mut stream = connect(&app).await;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: corral\r\n")
        .await
        .unwrap();
    assert!(closed_by_server(&mut stream).await);
}

#[tokio::test]
async fn a_head_dribbled_a_byte_at_a_time_is_closed_too() {
    let app = app(ConnectionSettings {
        header_read_timeout: Duration::from_millis(500),
        idle_timeout: Duration::from_secs(60),
        max_connections: 100,
        ..ConnectionSettings::default()
    })
    .await;
    let mut stream = connect(&app).await;
    let head = b"GET /healthz HTTP/1.1\r\nHost: corral\r\nX-Slow: ".to_vec();
    let mut closed = false;
    for byte in head.iter().chain(std::iter::repeat(&b'a')).take(400) {
        if stream.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        closed || closed_by_server(&mut stream).await,
        "a dribbled head was never closed"
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_and_a_busy_one_is_not() {
    let app = app(ConnectionSettings {
        header_read_timeout: Duration::from_secs(60),
        idle_timeout: Duration::from_millis(300),
        max_connections: 100,
        ..ConnectionSettings::default()
    })
    .await;
    let mut stream = connect(&app).await;
    // Requests keep it alive well past the idle timeout...
    for _ in 0..8 {
        stream.write_all(HEALTHZ).await.unwrap();
        let mut buf = [0u8; 1024];
        let n = stream.read(&mut buf).await.unwrap();
        assert!(
            buf[..n].starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&buf[..n])
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // ...silence ends it.
    assert!(closed_by_server(&mut stream).await);
}

#[tokio::test]
async fn at_the_connection_cap_the_server_still_answers() {
    let app = app(ConnectionSettings {
        header_read_timeout: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(60),
        max_connections: 4,
        ..ConnectionSettings::default()
    })
    .await;
    let mut silent = Vec::new();
    for _ in 0..6 {
        silent.push(connect(&app).await);
    }
    // Silent connections fill the cap; a new client is still answered,
    // repeatedly, because the longest idle ones make room. (A new connection
    // each time: at the cap, an idle kept-alive one may be the one to go.)
    let client = {
        corral::webhooks::delivery::install_tls();
        reqwest::Client::builder()
    }
    .pool_max_idle_per_host(0)
    .build()
    .unwrap();
    for _ in 0..3 {
        let request = client.get(format!("{}/healthz", app.base)).send();
        let response = tokio::time::timeout(Duration::from_secs(15), request)
            .await
            .expect("answered at the cap")
            .unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::OK);
    }
    let mut closed = 0;
    for stream in &mut silent {
        let mut buf = [0u8; 1];
        if let Ok(Ok(0)) =
            tokio::time::timeout(Duration::from_millis(50), stream.read(&mut buf)).await
        {
            closed += 1;
        }
    }
    assert!(closed >= 2, "only {closed} silent connections made room");
}

/// A connection from `local` (a loopback address of its own, such as
/// 127.0.0.2: another client as far as the server can tell).
async fn connect_from(app: &TestApp, local: [u8; 4]) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(std::net::SocketAddr::from((local, 0))).unwrap();
    let server = app.base.trim_start_matches("http://").parse().unwrap();
    socket.connect(server).await.unwrap()
}

/// The head of a write whose body (`Content-Length: 1000`) the client
/// sends later, asking the server to say when it reads it.
const SLOW_BODY_HEAD: &[u8] = b"POST /api/v1/batch/events HTTP/1.1\r\nHost: corral\r\n\
    Content-Type: application/json\r\nContent-Length: 1000\r\nExpect: 100-continue\r\n\r\n";

/// What the server says first on `stream`: the text it sent, or `None` when
/// it closed the connection without a word.
async fn first_words(stream: &mut TcpStream) -> Option<String> {
    let mut buf = [0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(15), stream.read(&mut buf))
        .await
        .expect("the server answered or closed");
    match read {
        Ok(0) | Err(_) => None,
        Ok(n) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
    }
}

/// Whether the server has sent nothing on `stream` and not closed it.
fn silent_and_open(stream: &TcpStream) -> bool {
    let mut buf = [0u8; 64];
    matches!(stream.try_read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

#[tokio::test]
async fn slow_bodies_from_one_address_leave_room_for_everyone_else() {
    let app = app(ConnectionSettings {
        header_read_timeout: Duration::from_secs(60),
        body_read_timeout: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(60),
        max_connections: 6,
        max_connections_per_address: 4,
    })
    .await;
    // One host starts six writes and sends a byte of each body: the server
    // reads the first four (it says 100 Continue when it waits for the
    // body), and closes the fifth and sixth at once.
    let mut slow = Vec::new();
    let mut refused = 0;
    for _ in 0..6 {
        let mut stream = connect_from(&app, [127, 0, 0, 2]).await;
        let _ = stream.write_all(SLOW_BODY_HEAD).await;
        match first_words(&mut stream).await {
            Some(words) => {
                assert!(words.starts_with("HTTP/1.1 100 Continue"), "{words}");
                stream.write_all(b"{").await.unwrap();
                slow.push(stream);
            }
            None => refused += 1,
        }
    }
    // Every other client is still answered, while the slow ones are open and
    // waiting for their bodies.
    let client = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 1]))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    for _ in 0..3 {
        let request = client.get(format!("{}/healthz", app.base)).send();
        let response = tokio::time::timeout(Duration::from_secs(15), request)
            .await
            .expect("/healthz answered beside the slow bodies")
            .unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::OK);
    }
    for stream in &slow {
        assert!(silent_and_open(stream), "a slow body was cut");
    }
    assert_eq!((slow.len(), refused), (4, 2));
    // The slow host still cannot open another, and its requests go on: one
    // sent whole is answered.
    let mut more = connect_from(&app, [127, 0, 0, 2]).await;
    let _ = more.write_all(SLOW_BODY_HEAD).await;
    assert_eq!(first_words(&mut more).await, None);
    let rest = vec![b' '; 999];
    slow[0].write_all(&rest).await.unwrap();
    let answer = first_words(&mut slow[0]).await.expect("an answer");
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
}

#[tokio::test]
async fn a_body_that_stops_arriving_is_answered_408_and_one_that_trickles_is_not() {
    let app = app(ConnectionSettings {
        header_read_timeout: Duration::from_secs(60),
        body_read_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(60),
        max_connections: 100,
        max_connections_per_address: 100,
    })
    .await;
    let mut stalled = connect(&app).await;
    stalled.write_all(SLOW_BODY_HEAD).await.unwrap();
    let go_on = first_words(&mut stalled).await.expect("100 Continue");
    assert!(go_on.starts_with("HTTP/1.1 100 Continue"), "{go_on}");
    stalled.write_all(b"{").await.unwrap();
    let answer = first_words(&mut stalled).await.expect("an answer");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let head = answer.to_ascii_lowercase();
    assert!(head.contains("connection: close"), "{answer}");
    assert!(head.contains("content-type: application/json"), "{answer}");
    assert!(
        answer.ends_with(r#"{"error":"Request Timeout"}"#),
        "{answer}"
    );
    assert!(closed_by_server(&mut stalled).await);

    // A body whose bytes keep coming, each well within the timeout, is read
    // to its end however long it takes in all.
    let body = r#"{"events":[]}"#;
    let mut trickle = connect(&app).await;
    trickle
        .write_all(
            format!(
                "POST /api/v1/batch/events HTTP/1.1\r\nHost: corral\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len() * 8
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    for byte in body.repeat(8).bytes() {
        trickle.write_all(&[byte]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    let answer = first_words(&mut trickle).await.expect("an answer");
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
}

#[tokio::test]
async fn a_body_that_keeps_the_request_past_its_timeout_is_told_when_to_retry() {
    let app = TestApp::spawn_with(HttpSettings {
        rate_limit_per_minute: 0,
        request_timeout: Duration::from_millis(500),
        connections: ConnectionSettings {
            body_read_timeout: Duration::from_secs(60),
            ..ConnectionSettings::default()
        },
        ..HttpSettings::default()
    })
    .await;
    let mut stream = connect(&app).await;
    stream.write_all(SLOW_BODY_HEAD).await.unwrap();
    let go_on = first_words(&mut stream).await.expect("100 Continue");
    assert!(go_on.starts_with("HTTP/1.1 100 Continue"), "{go_on}");
    stream.write_all(b"{").await.unwrap();
    let answer = first_words(&mut stream).await.expect("an answer");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("\r\nretry-after: 1\r\n"),
        "{answer}"
    );
    assert!(
        answer.ends_with(r#"{"error":"Request timed out"}"#),
        "{answer}"
    );
}

#[tokio::test]
async fn a_response_nobody_reads_is_closed_after_the_keep_alive_timeout() {
    use base64::Engine;
    use serde_json::{Value, json};
    let app = app(ConnectionSettings {
        idle_timeout: Duration::from_secs(2),
        max_connections_per_address: 1,
        ..ConnectionSettings::default()
    })
    .await;
    // 30,000 members of about 330 bytes of CSV each (10 MB): far more than
    // the socket buffers between the server and a client that reads nothing.
    let note = "n".repeat(256);
    for batch in 0..30 {
        let subscribers: Vec<Value> = (0..1000)
            .map(|i| json!({"email": format!("s{batch}-{i}@example.com"), "i": i, "note": note}))
            .collect();
        let response = app
            .send_json(
                reqwest::Method::POST,
                "/api/v1/batch/subscribers",
                &json!({ "subscribers": subscribers }),
            )
            .await;
        assert_eq!(response.status(), reqwest::StatusCode::OK);
    }
    let segment = app
        .create_segment(
            "Everyone",
            json!({"groups": [{"filters": [{"field": {"key": "i", "at_least": 0}}]}]}),
        )
        .await;
    // The download, from an address of its own with a receive buffer of a
    // few KiB, read no further than its status line.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(std::net::SocketAddr::from(([127, 0, 0, 3], 0)))
        .unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let server = app.base.trim_start_matches("http://").parse().unwrap();
    let mut download = socket.connect(server).await.unwrap();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        app.site.publishable_key, app.site.secret_key
    ));
    let request = format!(
        "GET /api/v1/fetch/segments/{}/members.csv?site_uuid={} HTTP/1.1\r\n\
         Host: corral\r\nAuthorization: Basic {basic}\r\n\r\n",
        segment["id"].as_str().unwrap(),
        app.site.uuid
    );
    download.write_all(request.as_bytes()).await.unwrap();
    let mut status = [0u8; 12];
    download.read_exact(&mut status).await.unwrap();
    assert_eq!(&status, b"HTTP/1.1 200");
    // While the response is being written, the connection is its address's
    // one: another from there is closed at once. Once the server has given
    // up on it, the address is answered again.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut probe = connect_from(&app, [127, 0, 0, 3]).await;
        let _ = probe.write_all(HEALTHZ).await;
        if first_words(&mut probe)
            .await
            .is_some_and(|words| words.starts_with("HTTP/1.1 200"))
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a response nobody reads kept its connection"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // It was closed: what it reads now ends before the body's last chunk.
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), download.read_to_end(&mut rest))
        .await
        .expect("the server closed the connection");
    let rest = String::from_utf8_lossy(&rest);
    assert!(
        !rest.ends_with("\r\n0\r\n\r\n"),
        "the whole response was sent"
    );
}
