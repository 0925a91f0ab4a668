//! `/health`, `/health/live`, request ids, CORS, unknown routes, and an
//! outage of the database.

use std::time::{Duration, Instant};

use serde_json::Value;
use userhub_tests::{
    ALLOWED_ORIGIN, Backend, Proxy, TestDatabase, TestUser, spawn_app, spawn_app_on,
};

on_both_backends!(
    health_reports_the_database_and_version,
    every_response_carries_a_request_id_and_keeps_a_sane_client_one,
    a_preflight_from_an_allowed_origin_is_answered_and_others_get_no_cors_headers,
    unknown_paths_and_methods_get_json_404_and_405,
    security_headers_are_on_every_response,
    every_405_names_the_allowed_methods,
);

async fn health_reports_the_database_and_version(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["database"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    let live = app
        .client
        .get(app.url("/health/live/"))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
}

async fn every_response_carries_a_request_id_and_keeps_a_sane_client_one(backend: Backend) {
    let app = spawn_app(backend).await;
    let generated = app.client.get(app.url("/nowhere")).send().await.unwrap();
    assert!(generated.headers()["x-request-id"].len() >= 16);
    let kept = app
        .client
        .get(app.url("/health/live"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(kept.headers()["x-request-id"], "abc-123");
    let insane = app
        .client
        .get(app.url("/health/live"))
        .header("x-request-id", "a b\"<script>")
        .send()
        .await
        .unwrap();
    assert_ne!(insane.headers()["x-request-id"], "a b\"<script>");
}

async fn a_preflight_from_an_allowed_origin_is_answered_and_others_get_no_cors_headers(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/api/auth/me"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let allowed = preflight(ALLOWED_ORIGIN).await.unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        ALLOWED_ORIGIN
    );
    let refused = preflight("http://evil.example").await.unwrap();
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    let simple = app
        .client
        .get(app.url("/health/live"))
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(simple.status(), 200);
    assert!(
        simple
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

async fn unknown_paths_and_methods_get_json_404_and_405(backend: Backend) {
    let app = spawn_app(backend).await;
    let missing = app
        .client
        .get(app.url("/api/nothing"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.json::<Value>().await.unwrap()["detail"],
        "Not Found"
    );
    let wrong = app
        .client
        .delete(app.url("/api/auth/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 405);
    assert_eq!(wrong.headers()["allow"], "POST");
    assert_eq!(
        wrong.json::<Value>().await.unwrap()["detail"],
        "Method Not Allowed"
    );
}

async fn every_405_names_the_allowed_methods(backend: Backend) {
    let app = spawn_app(backend).await;
    let id = uuid::Uuid::now_v7();
    for (path, allow) in [
        ("/api/users".to_owned(), "GET, POST"),
        (format!("/api/users/{id}"), "GET, PUT, PATCH, DELETE"),
        ("/api/auth/me".to_owned(), "GET"),
        ("/docs".to_owned(), "GET"),
    ] {
        let response = app
            .client
            .request(
                reqwest::Method::from_bytes(b"TRACE").unwrap(),
                app.url(&path),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405, "{path}");
        assert_eq!(response.headers()["allow"], allow, "{path}");
    }
}

async fn security_headers_are_on_every_response(backend: Backend) {
    let app = spawn_app(backend).await;
    for path in ["/health", "/api/auth/me", "/nowhere"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(
            response.headers()["x-content-type-options"],
            "nosniff",
            "{path}"
        );
        assert_eq!(
            response.headers()["referrer-policy"],
            "no-referrer",
            "{path}"
        );
        assert!(
            response.headers().contains_key("content-security-policy"),
            "{path}"
        );
    }
}

/// The database goes away: requests get 503 with `Retry-After` within the
/// acquire timeout instead of hanging, and service resumes by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_gives_503_quickly_and_service_recovers_on_postgres() {
    let db = TestDatabase::create(Backend::Postgres).await;
    let proxy = Proxy::start(db.postgres_port()).await;
    let url = db.url_via_port(proxy.port());
    let app = spawn_app_on(db, url, |_| {}).await;
    let TestUser { access: token, .. } = app.user("ada").await;

    proxy.take_down();
    let started = Instant::now();
    let health = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 503);
    assert!(health.headers().contains_key("retry-after"));
    assert_eq!(
        health.json::<Value>().await.unwrap()["database"],
        "unavailable"
    );
    let me = app.get("/api/auth/me", &token).await;
    assert_eq!(me.status(), 503);
    assert!(me.headers().contains_key("retry-after"));
    let body = me.text().await.unwrap();
    assert!(
        !body.to_lowercase().contains("sql") && !body.contains("connection"),
        "{body}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "answered in {:?}",
        started.elapsed()
    );

    proxy.bring_up();
    assert!(
        app.wait_for_status("/health", 200, Duration::from_secs(15))
            .await,
        "recovered"
    );
    assert_eq!(app.get("/api/auth/me", &token).await.status(), 200);
}
