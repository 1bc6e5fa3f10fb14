//! Slow and idle clients: half-sent requests and idle keep-alive
//! connections are closed, and at the connection cap the server still
//! answers.

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
