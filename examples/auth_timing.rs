//! How long a refused request takes when its publishable key exists (with a
//! wrong secret) and when it does not: the two must not be told apart, or
//! timing would let a caller find which keys exist.
//!
//! Starts Corral on a temporary SQLite file (its own runtime, two worker
//! threads, as `corral serve` on a 2-core machine), then sends N requests of
//! each kind over one keep-alive connection, alternating the two so that
//! drift affects both alike, after a warm-up. `busy` adds a writer that
//! commits an event every 5 ms, so the store's change signal keeps moving
//! and both kinds go to the database.
//!
//! ```sh
//! cargo run --release --example auth_timing -- [N] [busy]
//! ```
//!
//! Not run by the tests: timing depends on the machine.

use corral::clock::SystemClock;
use corral::credentials::{KeyPair, generate_site_uuid};
use corral::http::{self, AppState, HttpSettings};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() {
    let mut args = std::env::args().skip(1);
    let requests: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(2_000);
    let busy = args.next().as_deref() == Some("busy");
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("corral.db").display());

    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("server runtime");
    let (base, site, keys) = server.block_on(async {
        let store = corral::storage::open(&url).await.expect("database");
        let keys = KeyPair::generate();
        let site = generate_site_uuid();
        store
            .create_site("Timing", &site, &keys, false, 0)
            .await
            .expect("site");
        let settings = HttpSettings {
            rate_limit_per_minute: 0,
            ..HttpSettings::default()
        };
        let state = AppState::new(store, Arc::new(SystemClock), settings);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(http::serve(listener, state, std::future::pending()));
        (base, site, keys)
    });

    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");
    client.block_on(async {
        corral::webhooks::delivery::install_tls();
        let http = reqwest::Client::new();
        if busy {
            let (http, base, site, keys) = (http.clone(), base.clone(), site.clone(), keys.clone());
            server.spawn(async move {
                for i in 0u64.. {
                    let body = format!(
                        r#"{{"events":[{{"type":"tick","email":"w{}@example.com"}}]}}"#,
                        i % 100
                    );
                    let _ = http
                        .post(format!("{base}/api/v1/batch/events?site_uuid={site}"))
                        .basic_auth(&keys.publishable_key, Some(&keys.secret_key))
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            });
        }
        let url = format!("{base}/api/v1/fetch/segments?site_uuid={site}");
        let unknown = KeyPair::generate().publishable_key;
        let kinds = [
            ("known key, wrong secret", keys.publishable_key.as_str()),
            ("unknown key", unknown.as_str()),
        ];
        let mut times: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
        let warm_up = 200;
        for i in 0..warm_up + requests {
            // Alternate which goes first, so neither always follows the other.
            let order = if i % 2 == 0 { [0, 1] } else { [1, 0] };
            for kind in order {
                let started = Instant::now();
                let response = http
                    .get(&url)
                    .basic_auth(kinds[kind].1, Some("s-not-the-secret"))
                    .send()
                    .await
                    .expect("request");
                assert_eq!(response.status(), 401);
                response.bytes().await.expect("body");
                if i >= warm_up {
                    times[kind].push(started.elapsed());
                }
            }
        }
        println!(
            "{requests} refused requests of each kind{}:",
            if busy { ", a commit every 5 ms" } else { "" }
        );
        println!(
            "{:<26} {:>9} {:>9} {:>9} {:>9}",
            "", "median", "p90", "p99", "mean"
        );
        for (kind, times) in kinds.iter().zip(times.iter_mut()) {
            times.sort();
            let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
            let mean = times.iter().sum::<Duration>() / times.len() as u32;
            println!(
                "{:<26} {:>9.1?} {:>9.1?} {:>9.1?} {:>9.1?}",
                kind.0,
                at(0.5),
                at(0.9),
                at(0.99),
                mean
            );
        }
    });
    drop(server);
}
