//! `corral backup`: a copy of a SQLite database taken while a server on it
//! writes, checked by SQLite's own integrity check and by a server on the
//! copy; what it refuses (an existing file without `--force`, a missing
//! database, PostgreSQL).

use super::{Cli, assert_fails};
use crate::helpers::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

fn email(n: usize) -> String {
    format!("w{n:05}@example.com")
}

/// Runs `corral backup` on `database` (off the runtime, which goes on
/// serving the server and its writer meanwhile).
async fn backup(database: &str, args: &[&str]) -> std::process::Output {
    let cli = Cli::on(database);
    let mut command = cli.command(&["backup"]);
    command.args(args);
    tokio::task::spawn_blocking(move || {
        let output = command.output().unwrap();
        drop(cli);
        output
    })
    .await
    .unwrap()
}

/// `PRAGMA integrity_check` of a SQLite file: `ok` when it is whole.
async fn integrity(path: &std::path::Path) -> String {
    use sqlx::{ConnectOptions, Connection};
    let mut connection = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .connect()
        .await
        .unwrap();
    let (verdict,): (String,) = sqlx::query_as("PRAGMA integrity_check")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    connection.close().await.unwrap();
    verdict
}

/// `GET path` as `site` on `app`, whose status must be 200: the body.
async fn read(app: &TestApp, site: &TestSite, path: &str) -> Value {
    let response = app.as_site(site, Method::GET, path).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_a_writer_writes_is_whole_and_serves_as_the_source_did_at_its_instant()
{
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("source.db").display());
    let app = Arc::new(TestApp::spawn_on(database.clone()).await);
    let evens = app
        .create_segment("Evens", json!({"tag": {"has": "even"}}))
        .await;
    let evens = evens["id"].as_str().unwrap().to_owned();

    // One subscriber a request, each sent once the one before was
    // acknowledged: any consistent copy holds the first k, for some k.
    let sent = Arc::new(AtomicUsize::new(0));
    let (acked_tx, mut acked) = tokio::sync::watch::channel(0usize);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (app, sent, stop) = (app.clone(), sent.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let tags = if n % 2 == 0 { "even" } else { "odd" };
                sent.store(n + 1, Ordering::SeqCst);
                let answer = app
                    .send_json(
                        Method::POST,
                        "/api/v1/batch/subscribers",
                        &json!({"subscribers": [{"email": email(n), "tags": tags, "n": n}]}),
                    )
                    .await;
                assert_eq!(answer.status(), StatusCode::OK);
                n += 1;
                acked_tx.send_replace(n);
            }
            n
        })
    };
    acked.wait_for(|n| *n >= 50).await.unwrap();

    let to = dir.path().join("backup.db");
    let acked_before = *acked.borrow();
    let output = backup(&database, &["--to", to.to_str().unwrap()]).await;
    let sent_by_end = sent.load(Ordering::SeqCst);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let said = String::from_utf8(output.stdout).unwrap();
    assert!(said.starts_with("backed up "), "{said}");
    // The writer wrote before, during and after the copy: it never paused.
    acked.wait_for(|n| *n >= sent_by_end + 5).await.unwrap();
    stop.store(true, Ordering::SeqCst);
    let written = writer.await.unwrap();

    assert_eq!(integrity(&to).await, "ok");
    let leftovers: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".partial-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&to).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the backup holds secrets: {mode:o}");
    }

    // A server on the copy: the source as it stood at one instant.
    let copy_url = format!("sqlite://{}", to.display());
    let copy = TestApp::spawn_on(copy_url).await;
    let site = &app.site;
    let counts = read(&copy, site, "/api/v1/stats/site").await;
    let k = counts["user_count"].as_u64().unwrap() as usize;
    assert!(
        (acked_before..=sent_by_end).contains(&k),
        "the copy holds {k} subscribers: {acked_before} were acknowledged before it began \
         and {sent_by_end} sent before it ended"
    );
    assert!(k < written, "the source went on to {written}");
    let path = |n: usize| format!("/api/v1/fetch/subscribers?email={}", email(n));
    for n in 0..k {
        assert_eq!(
            read(&copy, site, &path(n)).await,
            read(&app, site, &path(n)).await,
            "{}",
            email(n)
        );
    }
    assert_eq!(read(&copy, site, &path(k)).await["data"], Value::Null);
    let stats = format!("/api/v1/stats/segment?segment_id={evens}");
    assert_eq!(
        read(&copy, site, &stats).await["user_count"],
        json!(k.div_ceil(2))
    );
    assert_eq!(
        read(&copy, site, "/api/v1/fetch/segments").await,
        read(&app, site, "/api/v1/fetch/segments").await
    );
}

#[tokio::test]
async fn an_existing_file_is_kept_unless_force_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("source.db").display());
    let app = TestApp::spawn_on(database.clone()).await;
    let to = dir.path().join("backup.db");
    std::fs::write(&to, b"an earlier backup").unwrap();
    let target = to.to_str().unwrap();

    let refused = backup(&database, &["--to", target]).await;
    assert_fails(&refused, "exists: give --force to replace it");
    assert_eq!(std::fs::read(&to).unwrap(), b"an earlier backup");

    let replaced = backup(&database, &["--to", target, "--force", "--json"]).await;
    assert!(
        replaced.status.success(),
        "{}",
        String::from_utf8_lossy(&replaced.stderr)
    );
    let said: Value = serde_json::from_slice(&replaced.stdout).unwrap();
    assert_eq!(said["to"], target);
    assert_eq!(said["bytes"], std::fs::metadata(&to).unwrap().len());
    assert_eq!(integrity(&to).await, "ok");
    let copy = TestApp::spawn_on(format!("sqlite://{}", to.display())).await;
    read(&copy, &app.site, "/api/v1/fetch/segments").await;

    // The database itself, even with --force.
    let source = dir.path().join("source.db");
    let onto_itself = backup(&database, &["--to", source.to_str().unwrap(), "--force"]).await;
    assert_fails(&onto_itself, "is the database itself");
    assert_eq!(integrity(&source).await, "ok");
}

#[tokio::test]
async fn postgres_and_a_missing_database_are_refused_saying_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join("backup.db");
    let target = to.to_str().unwrap();
    let postgres = backup(
        "postgres://corral:secret@db.internal:5432/corral",
        &["--to", target],
    )
    .await;
    assert_eq!(postgres.status.code(), Some(1));
    assert_fails(&postgres, "pg_dump");
    let stderr = String::from_utf8_lossy(&postgres.stderr);
    assert!(
        stderr.contains("corral copy --from postgres://"),
        "{stderr}"
    );
    assert!(!stderr.contains("secret"), "{stderr}");

    let missing = dir.path().join("missing.db");
    let output = backup(
        &format!("sqlite://{}", missing.display()),
        &["--to", target],
    )
    .await;
    assert_fails(&output, "there is no database at");
    assert!(
        !missing.exists(),
        "a database was made where there was none"
    );
    assert!(!to.exists());
}
