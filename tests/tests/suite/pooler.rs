//! Behind PgBouncer in transaction pooling mode (`DB_POOLER=pgbouncer`):
//! the core scenarios of the end-to-end suite, through a real PgBouncer
//! that `scripts/test.sh` starts, and the pool's own guarantees.

use std::time::Duration;

use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};
use userhub_tests::{
    Backend, PASSWORD, TestApp, TestDatabase, TestUser, pgbouncer_url, spawn_app_behind_pgbouncer,
};

/// Runs each `async fn()` as `name::on_postgres` (it needs PostgreSQL).
macro_rules! behind_pgbouncer {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn on_postgres() {
                    super::$name().await;
                }
            }
        )*
    };
}

behind_pgbouncer!(
    register_login_refresh_and_logout_work_through_the_pooler,
    a_refresh_token_presented_twice_revokes_its_session,
    concurrent_registrations_of_one_email_make_one_user,
    failed_logins_lock_the_account,
    listings_page_and_conditional_updates_hold,
    many_concurrent_statements_share_few_server_connections,
    every_transaction_gets_the_statement_timeout,
    the_server_refuses_pgbouncer_without_a_direct_url_for_migrations,
    webhooks_are_delivered_through_the_pooler,
);

async fn tokens(app: &TestApp, login: &str, password: &str) -> Value {
    let response = app.login(login, password).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn register_login_refresh_and_logout_work_through_the_pooler() {
    let app = spawn_app_behind_pgbouncer(|_| {}).await;
    let user = app.register("ada").await;
    let first = tokens(&app, "ada", PASSWORD).await;
    let access = first["access_token"].as_str().unwrap();
    let me: Value = app.get("/api/auth/me", access).await.json().await.unwrap();
    assert_eq!(me["id"], user["id"]);
    let refreshed = app
        .post(
            "/api/auth/refresh",
            &json!({"refresh_token": first["refresh_token"]}),
            None,
        )
        .await;
    assert_eq!(refreshed.status(), 200);
    let second: Value = refreshed.json().await.unwrap();
    let access = second["access_token"].as_str().unwrap();
    let events: Value = app
        .get("/api/auth/events", access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(events["items"][0]["type"], "login.succeeded");
    assert_eq!(
        app.post("/api/auth/logout", &json!({}), Some(access))
            .await
            .status(),
        204
    );
    assert_eq!(app.get("/api/auth/me", access).await.status(), 401);
    let health: Value = app
        .client
        .get(app.url("/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["database"], "ok");
}

async fn a_refresh_token_presented_twice_revokes_its_session() {
    let app = spawn_app_behind_pgbouncer(|_| {}).await;
    let TestUser {
        access, refresh, ..
    } = app.user("ada").await;
    let body = json!({"refresh_token": refresh});
    assert_eq!(
        app.post("/api/auth/refresh", &body, None).await.status(),
        200
    );
    assert_eq!(
        app.post("/api/auth/refresh", &body, None).await.status(),
        401
    );
    assert_eq!(app.get("/api/auth/me", &access).await.status(), 401);
}

async fn concurrent_registrations_of_one_email_make_one_user() {
    let app = spawn_app_behind_pgbouncer(|settings| settings.database.db_pool_max_size = 8).await;
    let attempts = (0..12).map(|i| {
        let body = json!({"email": "race@example.com", "username": format!("racer{i}"), "password": PASSWORD});
        let app = &app;
        async move { app.post("/api/auth/register", &body, None).await.status().as_u16() }
    });
    let statuses = futures_util::future::join_all(attempts).await;
    userhub_tests::assert_one_won(&statuses, 201, 409);
}

async fn failed_logins_lock_the_account() {
    let app = spawn_app_behind_pgbouncer(|_| {}).await;
    app.register("ada").await;
    for _ in 0..5 {
        assert_eq!(app.login("ada", "wrong password").await.status(), 401);
    }
    let refused = app.login("ada", PASSWORD).await;
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
}

async fn listings_page_and_conditional_updates_hold() {
    let app = spawn_app_behind_pgbouncer(|_| {}).await;
    let TestUser { id, access, .. } = app.user("ada").await;
    for name in ["bob", "cyd", "dee"] {
        app.register(name).await;
    }
    let page: Value = app
        .get("/api/users?limit=2", &access)
        .await
        .json()
        .await
        .unwrap();
    let cursor = page["next_cursor"].as_str().unwrap();
    let next: Value = app
        .get(&format!("/api/users?limit=2&cursor={cursor}"), &access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert_eq!(next["items"].as_array().unwrap().len(), 2);
    assert_ne!(page["items"][0]["id"], next["items"][0]["id"]);
    let me = app.get("/api/auth/me", &access).await;
    let etag = me.headers()["etag"].to_str().unwrap().to_owned();
    let update = |name: &'static str, tag: String| {
        let (app, access, id) = (&app, &access, &id);
        async move {
            app.client
                .put(app.url(&format!("/api/users/{id}")))
                .bearer_auth(access)
                .header("If-Match", tag)
                .json(&json!({"full_name": name}))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(update("Ada", etag.clone()).await, 200);
    assert_eq!(update("Ada Lovelace", etag).await, 412);
}

async fn many_concurrent_statements_share_few_server_connections() {
    // A pool of 16 client connections over PgBouncer's 8 server connections:
    // statements of different clients meet on the same server connections.
    let app = spawn_app_behind_pgbouncer(|settings| settings.database.db_pool_max_size = 16).await;
    let TestUser { access, .. } = app.user("ada").await;
    let requests = (0..200).map(|i| {
        let (app, access) = (&app, &access);
        async move {
            let path = match i % 4 {
                0 => "/api/auth/me".to_owned(),
                1 => "/api/users?limit=5".to_owned(),
                2 => "/api/auth/sessions".to_owned(),
                _ => format!("/api/users?search=ad&limit={}", 1 + i % 7),
            };
            app.get(&path, access).await.status().as_u16()
        }
    });
    let statuses = futures_util::future::join_all(requests).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
}

async fn every_transaction_gets_the_statement_timeout() {
    let db = TestDatabase::create(Backend::Postgres).await;
    let name = db.url.rsplit('/').next().unwrap().to_owned();
    let database =
        userhub_infrastructure::Database::connect(&userhub_infrastructure::DatabaseSettings {
            url: format!("{}/{name}", pgbouncer_url()),
            max_connections: 4,
            min_connections: 0,
            acquire_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_millis(300),
            pgbouncer: true,
        })
        .await
        .unwrap();
    let conn = database.connection();
    let backend = conn.get_database_backend();
    let setting = conn
        .query_one_raw(Statement::from_string(
            backend,
            "SELECT current_setting('statement_timeout') AS t",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(setting.try_get::<String>("", "t").unwrap(), "300ms");
    // A statement that outlives it is cancelled, however the pooler assigns connections.
    let slow = conn
        .execute_raw(Statement::from_string(backend, "SELECT pg_sleep(2)"))
        .await
        .unwrap_err();
    assert!(slow.to_string().contains("statement timeout"), "{slow}");
    database.close().await.unwrap();
    drop(db);
}

async fn the_server_refuses_pgbouncer_without_a_direct_url_for_migrations() {
    let mut settings = userhub_tests::test_settings(format!("{}/postgres", pgbouncer_url()));
    settings.database.db_pooler = userhub_server::DbPooler::Pgbouncer;
    settings.accounts.bcrypt_cost = 12;
    let err = settings.validate().unwrap_err().to_string();
    assert!(err.starts_with("DATABASE_DIRECT_URL: required"), "{err}");
    settings.database.run_migrations = false;
    settings.validate().unwrap();
}

/// The outbox's trigger, the endpoint lease (`SKIP LOCKED`) and the
/// settling transaction all work in transaction pooling mode.
async fn webhooks_are_delivered_through_the_pooler() {
    let app = spawn_app_behind_pgbouncer(|s| {
        s.webhooks.webhook_allow_private_networks = true;
        s.webhooks.webhook_retry_base_seconds = userhub_server::Span(1);
    })
    .await;
    let root = app.root_token().await;
    let receiver = userhub_tests::webhooks::Receiver::start();
    let hook: Value = app
        .post(
            "/api/webhooks",
            &json!({"url": receiver.url(), "events": ["user.registered"]}),
            Some(&root),
        )
        .await
        .json()
        .await
        .unwrap();
    receiver
        .verify_with(&[hook["secret"].as_str().unwrap()])
        .await;
    receiver.control(json!({"fail": 1, "status": 503})).await;
    for name in ["ada", "bea", "cai"] {
        app.register(name).await;
    }
    let got = receiver
        .wait_for(Duration::from_secs(20), |got| {
            got.iter().filter(|d| d["status"] == 204).count() == 3
        })
        .await;
    let delivered: Vec<&Value> = got
        .iter()
        .filter(|d| d["status"] == 204)
        .map(|d| &d["body"]["data"]["user"]["username"])
        .collect();
    assert_eq!(
        delivered,
        [&json!("ada"), &json!("bea"), &json!("cai")],
        "in order, after a retry"
    );
    assert!(got.iter().all(|d| d["verified"] == json!([true])));
}
