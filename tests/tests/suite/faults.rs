//! Faults: a database that blocks, ends connections or is shared by several
//! instances starting together, oversized headers, and shutdown under load.
//! The answer is success or 503 with `Retry-After`, never a 500 or a
//! dropped request.

use std::time::{Duration, Instant};
use userhub_server::Span;

use sea_orm::{ConnectionTrait, Database, TransactionTrait};
use serde_json::{Value, json};
use userhub_server::Application;
use userhub_tests::{
    Backend, PASSWORD, Proxy, ROOT_EMAIL, TestDatabase, TestUser, spawn_app, spawn_app_on,
    test_settings,
};

on_both_backends!(oversized_header_blocks_get_431);

async fn oversized_header_blocks_get_431(backend: Backend) {
    let app = spawn_app(backend).await;
    for size in [20 * 1024, 60 * 1024] {
        let response = app
            .client
            .get(app.url("/health/live"))
            .header("x-filler", "a".repeat(size))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 431, "{size}");
    }
    let fine = app
        .client
        .get(app.url("/health/live"))
        .header("x-filler", "a".repeat(4 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(fine.status(), 200);
}

/// A statement that waits on a lock longer than `DB_STATEMENT_TIMEOUT_SECONDS`
/// is cancelled by the database and answered 503, and `/health` answers
/// within a second while the database cannot be reached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_statement_is_cancelled_and_answered_503_on_postgres() {
    let db = TestDatabase::create(Backend::Postgres).await;
    let url = db.url.clone();
    let app = spawn_app_on(db, url.clone(), |s| {
        s.database.db_statement_timeout_seconds = Span(1)
    })
    .await;
    let TestUser { access: token, .. } = app.user("ada").await;
    let blocker = Database::connect(&url).await.unwrap();
    let txn = blocker.begin().await.unwrap();
    txn.execute_unprepared("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let started = Instant::now();
    let me = app.get("/api/auth/me", &token).await;
    assert_eq!(me.status(), 503);
    assert!(me.headers().contains_key("retry-after"));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    txn.rollback().await.unwrap();
    assert_eq!(app.get("/api/auth/me", &token).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_answers_within_a_second_while_the_database_is_gone_on_postgres() {
    let db = TestDatabase::create(Backend::Postgres).await;
    let proxy = Proxy::start(db.postgres_port()).await;
    let url = db.url_via_port(proxy.port());
    let app = spawn_app_on(db, url, |_| {}).await;
    proxy.take_down();
    let started = Instant::now();
    let health = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 503);
    // The probe has its own deadline, under a load balancer's usual one second.
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
}

/// Backends terminated under load (as a database restart does): every
/// answer is a success or a 503, never a 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_backends_give_503_or_success_never_500_on_postgres() {
    let db = TestDatabase::create(Backend::Postgres).await;
    let url = db.url.clone();
    let app = spawn_app_on(db, url.clone(), |s| s.database.db_pool_max_size = 8).await;
    let TestUser {
        id, access: token, ..
    } = app.user("ada").await;
    let admin = Database::connect(&url).await.unwrap();
    let load = (0..4).map(|_| {
        let (client, base, token, id) = (
            app.client.clone(),
            app.address.clone(),
            token.clone(),
            id.clone(),
        );
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            for i in 0..60 {
                let path = if i % 2 == 0 {
                    "/api/auth/me".to_owned()
                } else {
                    format!("/api/users/{id}")
                };
                let response = client
                    .get(format!("{base}{path}"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap();
                statuses.push(response.status().as_u16());
            }
            statuses
        })
    });
    let load: Vec<_> = load.collect();
    for _ in 0..15 {
        admin
            .execute_unprepared(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                  WHERE datname = current_database() AND pid <> pg_backend_pid()",
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let mut statuses = Vec::new();
    for task in load {
        statuses.extend(task.await.unwrap());
    }
    assert!(
        statuses.iter().all(|s| [200, 503].contains(s)),
        "{:?}",
        statuses
            .iter()
            .filter(|s| ![200, 503].contains(*s))
            .collect::<Vec<_>>()
    );
    assert!(statuses.contains(&200));
}

/// A database that turned read-only under the server (a standby reached
/// during a failover, before its promotion completes) refuses writes: 503
/// with `Retry-After`, never 500; reads still work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_on_a_read_only_database_are_503_on_postgres() {
    let db = TestDatabase::create(Backend::Postgres).await;
    let url = db.url.clone();
    let app = spawn_app_on(db, url.clone(), |s| s.database.db_pool_max_size = 2).await;
    let TestUser { access: token, .. } = app.user("ada").await;
    let admin = Database::connect(&url).await.unwrap();
    admin
        .execute_unprepared(
            "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET default_transaction_read_only = on', current_database()); END $$",
        )
        .await
        .unwrap();
    // The pool's sessions end; the new ones start read-only.
    admin
        .execute_unprepared(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
              WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .await
        .unwrap();
    let mut statuses = Vec::new();
    for i in 0..6 {
        let body = json!({"email": format!("w{i}@example.com"), "username": format!("writer{i}"), "password": PASSWORD});
        let response = app.post("/api/auth/register", &body, None).await;
        let status = response.status().as_u16();
        if status == 503 {
            assert!(response.headers().contains_key("retry-after"));
        }
        statuses.push(status);
    }
    assert!(statuses.iter().all(|s| *s == 503), "{statuses:?}");
    let mut read = 0;
    for _ in 0..3 {
        read = app.get("/api/auth/me", &token).await.status().as_u16();
        if read == 200 {
            break;
        }
    }
    assert_eq!(read, 200);
}

/// Three instances started together on one empty database (migrations and
/// the first superuser included) all come up, and so do three on a
/// migrated database whose superuser does not exist yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_started_together_all_come_up_on_postgres() {
    for migrated in [false, true] {
        let db = TestDatabase::create(Backend::Postgres).await;
        if migrated {
            let mut settings = test_settings(db.url.clone());
            settings.accounts.first_superuser_email = None;
            drop(Application::build(settings).await.unwrap());
        }
        let starts = (0..3).map(|_| {
            let settings = test_settings(db.url.clone());
            tokio::spawn(async move { Application::build(settings).await.map(drop) })
        });
        for (i, started) in futures_util::future::join_all(starts)
            .await
            .into_iter()
            .enumerate()
        {
            let outcome = started.unwrap();
            assert!(
                outcome.is_ok(),
                "replica {i} (migrated: {migrated}): {outcome:?}"
            );
        }
        let conn = Database::connect(&db.url).await.unwrap();
        let row = conn
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                format!("SELECT count(*) AS n FROM users WHERE email = '{ROOT_EMAIL}'"),
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.try_get::<i64>("", "n").unwrap(), 1);
    }
}

/// SIGTERM's sequence under way: `/health` turns 503 and responses ask
/// clients to close their connections; a request waiting on the database
/// when the listener closes still gets its answer; then the server stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_in_flight_requests_on_postgres() {
    let db = TestDatabase::create(Backend::Postgres).await;
    let url = db.url.clone();
    let mut settings = test_settings(url.clone());
    settings.server.shutdown_delay_seconds = Span(1);
    settings.server.workers = 2;
    let app = Application::build(settings).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let stopper = app.stopper();
    let running = tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::new();
    client
        .post(format!("{base}/api/auth/register"))
        .json(&serde_json::json!({"email": "ada@example.com", "username": "ada", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let tokens: Value = client
        .post(format!("{base}/api/auth/login"))
        .json(&serde_json::json!({"email": "ada", "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = tokens["access_token"].as_str().unwrap().to_owned();

    // A request held up by the database across the whole shutdown.
    let blocker = Database::connect(&url).await.unwrap();
    let txn = blocker.begin().await.unwrap();
    txn.execute_unprepared("LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let held = {
        let (client, base, token) = (client.clone(), base.clone(), token.clone());
        tokio::spawn(async move {
            client
                .get(format!("{base}/api/auth/me"))
                .bearer_auth(token)
                .send()
                .await
                .map(|r| r.status().as_u16())
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stopping = tokio::spawn(async move { stopper.stop().await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let health = client.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(health.status(), 503);
    assert_eq!(health.headers()["connection"], "close");
    assert_eq!(health.json::<Value>().await.unwrap()["status"], "draining");
    // Past the delay the listener is closed, yet the held request waits on.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!held.is_finished());
    txn.rollback().await.unwrap();
    assert_eq!(held.await.unwrap().unwrap(), 200);
    stopping.await.unwrap();
    running.await.unwrap().unwrap();
}

/// An unreachable database stops the start with its real cause, and a URL
/// without a password is shown as it is; a server that accepts the
/// connection but never answers is given up on after
/// `DB_CONNECT_TIMEOUT_SECONDS`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_at_start_is_reported_with_its_cause() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let url = format!("postgres://postgres@127.0.0.1:{port}/userhub");
    let err = Application::build(test_settings(url.clone()))
        .await
        .err()
        .expect("no database, no start");
    let message = format!("{err:#}");
    assert!(message.contains(&url), "{message}");
    assert!(!message.contains(":***"), "{message}");
    assert!(message.to_lowercase().contains("refused"), "{message}");

    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let accepted = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });
    let mut settings = test_settings(format!("postgres://postgres@127.0.0.1:{port}/userhub"));
    settings.database.db_connect_timeout_seconds = Span(1);
    settings.database.db_acquire_timeout_seconds = Span(30);
    let started = Instant::now();
    let err = Application::build(settings)
        .await
        .err()
        .expect("a silent database, no start");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(
        format!("{err:#}").contains("DB_CONNECT_TIMEOUT_SECONDS"),
        "{err:#}"
    );
    accepted.abort();
}

/// What `userhub-server create-superuser` reports: made by this start, or
/// already there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_superuser_bootstrap_says_whether_it_created_one() {
    let db = TestDatabase::create(Backend::Sqlite).await;
    let first = Application::build(test_settings(db.url.clone()))
        .await
        .unwrap();
    assert_eq!(first.first_superuser_created(), Some(true));
    drop(first);
    let again = Application::build(test_settings(db.url.clone()))
        .await
        .unwrap();
    assert_eq!(again.first_superuser_created(), Some(false));
    let mut none = test_settings(db.url.clone());
    none.accounts.first_superuser_email = None;
    let none = Application::build(none).await.unwrap();
    assert_eq!(none.first_superuser_created(), None);
}

/// Forty reads at once while the database cannot answer them: each is a
/// 503 with `Retry-After` within `DB_ACQUIRE_TIMEOUT_SECONDS` (1 s here,
/// with half a second for the HTTP round trip), batched or not.
async fn every_read_is_answered_within_the_acquire_timeout(
    app: &userhub_tests::TestApp,
    token: &str,
) {
    let started = Instant::now();
    let reads = (0..40).map(|_| async {
        let response = app.get("/api/auth/me", token).await;
        (
            response.status().as_u16(),
            response.headers().contains_key("retry-after"),
            started.elapsed(),
        )
    });
    for (status, retry_after, elapsed) in futures_util::future::join_all(reads).await {
        assert_eq!((status, retry_after), (503, true));
        assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
    }
}

/// A table locked for longer than the acquire timeout (the statement
/// timeout is 30 s): batched reads queued behind the blocked one give up
/// at the acquire timeout rather than waiting for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_reads_behind_a_locked_table_answer_503_within_the_acquire_timeout_on_postgres() {
    let db = TestDatabase::create(Backend::Postgres).await;
    let url = db.url.clone();
    let app = spawn_app_on(db, url.clone(), |s| {
        s.database.db_acquire_timeout_seconds = Span(1);
        s.database.db_statement_timeout_seconds = Span(30);
        s.database.db_pool_max_size = 4;
    })
    .await;
    let TestUser { access: token, .. } = app.user("ada").await;
    let blocker = Database::connect(&url).await.unwrap();
    let txn = blocker.begin().await.unwrap();
    txn.execute_unprepared("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    every_read_is_answered_within_the_acquire_timeout(&app, &token).await;
    txn.rollback().await.unwrap();
    assert_eq!(app.get("/api/auth/me", &token).await.status(), 200);
}

/// The database stopped (its connections cut and new ones refused), with
/// and without `DB_BATCH_READS`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_while_the_database_is_stopped_answer_503_within_the_acquire_timeout_on_postgres() {
    for batched in [true, false] {
        let db = TestDatabase::create(Backend::Postgres).await;
        let proxy = Proxy::start(db.postgres_port()).await;
        let url = db.url_via_port(proxy.port());
        let app = spawn_app_on(db, url, |s| {
            s.database.db_acquire_timeout_seconds = Span(1);
            s.database.db_pool_max_size = 4;
            s.database.db_batch_reads = batched;
        })
        .await;
        let TestUser { access: token, .. } = app.user("ada").await;
        proxy.take_down();
        every_read_is_answered_within_the_acquire_timeout(&app, &token).await;
        proxy.bring_up();
    }
}
