//! A request waits for the database a bounded time in all, on PostgreSQL:
//! writes queued behind a site's head row that another transaction holds
//! are each answered 503 with `Retry-After` once their own wait is over
//! (not one after another, nor at the request timeout), and none of them is
//! stored. (The database going away altogether is in `postgres.rs`.)
//!
//! These need a PostgreSQL cluster (`CORRAL_TEST_POSTGRES`); without one they
//! say so and pass.

use crate::helpers::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::Connection;

#[tokio::test]
async fn writes_behind_a_held_site_lock_are_each_told_to_retry_and_none_is_stored() {
    let Some(url) = fresh_postgres_database().await else {
        eprintln!("outage: skipped, CORRAL_TEST_POSTGRES names no PostgreSQL cluster");
        return;
    };
    let app = TestApp::spawn_on(url.clone()).await;
    let write = |email: String| {
        app.request(Method::POST, "/api/v1/batch/subscribers")
            .json(&json!({"subscribers": [{"email": email}]}))
            .send()
    };
    assert_eq!(
        write("before@x.com".into()).await.unwrap().status(),
        StatusCode::OK
    );

    // Another server's transaction holds the site's head row, as a write
    // that never ends would.
    let site_id = app.site_id(&app.site).await;
    let mut other = sqlx::PgConnection::connect(&url).await.unwrap();
    let mut held = other.begin().await.unwrap();
    sqlx::query("SELECT seq FROM change_heads WHERE site_id = $1 FOR UPDATE")
        .bind(site_id)
        .fetch_one(&mut *held)
        .await
        .unwrap();

    // Eight writers meanwhile: the first waits for the row, the others for
    // their turn behind it. Each is answered that the database is
    // unavailable, with when to try again; none by the request timeout.
    let writes = (0..8).map(|i| write(format!("w{i}@x.com")));
    let answers = futures_util::future::join_all(writes).await;
    for answer in answers {
        let answer = answer.unwrap();
        let status = answer.status();
        let retry_after = answer.headers().get("retry-after").cloned();
        let body: Value = answer.json().await.unwrap();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body, json!({"error": "Service Unavailable"}));
        assert_eq!(retry_after.unwrap(), "1");
    }

    // Let go: nothing of what was refused was written, and writes go on.
    held.rollback().await.unwrap();
    assert_eq!(
        write("after@x.com".into()).await.unwrap().status(),
        StatusCode::OK
    );
    let stats: Value = app.get("/api/v1/stats/site").await.json().await.unwrap();
    assert_eq!(stats["user_count"], 2, "{stats}");
}
