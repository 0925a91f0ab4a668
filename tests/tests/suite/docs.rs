//! `/openapi.json`, the Swagger UI at `/docs` and `/metrics`.

use serde_json::Value;
use userhub_tests::{Backend, ROOT_EMAIL, ROOT_PASSWORD, spawn_app};

on_both_backends!(
    the_served_document_is_the_committed_openapi_json,
    the_document_covers_every_route_with_its_errors_and_security,
    docs_serve_swagger_ui_from_the_binary_with_its_own_csp,
    metrics_count_requests_by_route_template_logins_and_the_pool,
);

/// The committed copy at the repository root.
const COMMITTED: &str = include_str!("../../../openapi.json");

async fn the_served_document_is_the_committed_openapi_json(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let served = response.text().await.unwrap();
    assert!(
        served.trim_end() == COMMITTED.trim_end(),
        "openapi.json is stale: refresh it with \
         `cargo run -p userhub-http --example openapi -- openapi.json` and commit it"
    );
}

/// Swagger UI and generated clients list operations in document order:
/// the one a client follows, not the alphabet's.
#[test]
fn operations_are_listed_in_the_order_a_client_uses_them() {
    let order = [
        "\"/api/auth/register\"",
        "\"/api/auth/login\"",
        "\"/api/auth/refresh\"",
        "\"/api/auth/me\"",
        "\"/api/auth/logout\"",
        "\"/api/users\"",
        "\"/api/users/{id}\"",
        "\"/health\"",
    ];
    let positions: Vec<usize> = order
        .iter()
        .map(|path| {
            COMMITTED
                .find(path)
                .unwrap_or_else(|| panic!("{path} missing"))
        })
        .collect();
    assert!(positions.is_sorted(), "{order:?} at {positions:?}");
    let tags = [
        "\"name\": \"auth\"",
        "\"name\": \"sessions\"",
        "\"name\": \"users\"",
    ];
    let positions: Vec<usize> = tags
        .iter()
        .map(|tag| {
            COMMITTED
                .rfind(tag)
                .unwrap_or_else(|| panic!("{tag} missing"))
        })
        .collect();
    assert!(positions.is_sorted(), "{tags:?} at {positions:?}");
}

async fn the_document_covers_every_route_with_its_errors_and_security(backend: Backend) {
    let app = spawn_app(backend).await;
    let doc: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let expected = [
        (
            "post",
            "/api/auth/register",
            &["201", "409", "413", "415", "422", "429"][..],
        ),
        ("post", "/api/auth/login", &["200", "401", "422", "429"]),
        ("post", "/api/auth/refresh", &["200", "401", "422", "429"]),
        ("get", "/api/auth/me", &["200", "401"]),
        ("post", "/api/auth/logout", &["204", "401"]),
        ("post", "/api/auth/logout-all", &["204", "401"]),
        ("get", "/api/auth/sessions", &["200", "401"]),
        (
            "delete",
            "/api/auth/sessions/{id}",
            &["204", "401", "404", "422"],
        ),
        (
            "post",
            "/api/auth/change-password",
            &["204", "400", "401", "422"],
        ),
        ("get", "/api/users", &["200", "401", "403", "422"]),
        ("post", "/api/users", &["201", "401", "403", "409", "422"]),
        ("get", "/api/users/{id}", &["200", "401", "404", "422"]),
        (
            "put",
            "/api/users/{id}",
            &["200", "401", "403", "404", "409", "422"],
        ),
        (
            "patch",
            "/api/users/{id}",
            &["200", "401", "403", "404", "409", "422"],
        ),
        (
            "delete",
            "/api/users/{id}",
            &["204", "401", "403", "404", "409"],
        ),
        (
            "post",
            "/api/users/{id}/restore",
            &["200", "401", "403", "404"],
        ),
        (
            "post",
            "/api/users/{id}/unlock",
            &["200", "401", "403", "404"],
        ),
        ("get", "/health", &["200", "503"]),
        ("get", "/health/live", &["200"]),
        ("get", "/.well-known/jwks.json", &["200"]),
        ("get", "/metrics", &["200"]),
    ];
    for (method, path, statuses) in expected {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} is documented");
        for status in statuses {
            assert!(
                op["responses"][status].is_object(),
                "{method} {path} documents {status}"
            );
        }
        let secured = path.starts_with("/api/users")
            || ["/api/auth/me", "/api/auth/logout", "/api/auth/logout-all"].contains(&path)
            || path.starts_with("/api/auth/sessions")
            || path == "/api/auth/change-password";
        assert_eq!(
            op["security"].is_array(),
            secured,
            "{method} {path} security"
        );
    }
    let oauth = &doc["components"]["securitySchemes"]["oauth2"];
    assert_eq!(oauth["flows"]["password"]["tokenUrl"], "/api/auth/login");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let login = &doc["paths"]["/api/auth/login"]["post"]["requestBody"]["content"];
    assert!(login["application/x-www-form-urlencoded"].is_object());
    let username = &doc["components"]["schemas"]["RegisterRequest"]["properties"]["username"];
    assert_eq!(username["minLength"], 3);
    assert_eq!(username["maxLength"], 32);
}

async fn docs_serve_swagger_ui_from_the_binary_with_its_own_csp(backend: Backend) {
    let app = spawn_app(backend).await;
    for path in ["/docs", "/docs/"] {
        let page = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(page.status(), 200, "{path}");
        assert!(
            page.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let csp = page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert!(!csp.contains("http"), "nothing from elsewhere: {csp}");
        let html = page.text().await.unwrap();
        assert!(html.contains("<base href=\"/docs/\">"));
        assert!(html.contains("swagger-ui-bundle.js"));
    }
    let init = app
        .client
        .get(app.url("/docs/swagger-initializer.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(init.status(), 200);
    assert!(init.text().await.unwrap().contains("/openapi.json"));
    let bundle = app
        .client
        .get(app.url("/docs/swagger-ui-bundle.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(bundle.status(), 200);
    assert!(bundle.bytes().await.unwrap().len() > 100_000);
    let missing = app
        .client
        .get(app.url("/docs/nope.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    // The API keeps its strict policy.
    let api = app
        .client
        .get(app.url("/health/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        api.headers()["content-security-policy"],
        "default-src 'none'; frame-ancestors 'none'"
    );
}

async fn metrics_count_requests_by_route_template_logins_and_the_pool(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.root_token().await;
    app.register("metered").await;
    let unknown = format!("/api/users/{}", uuid::Uuid::now_v7());
    assert_eq!(app.get(&unknown, &token).await.status(), 404);
    assert_eq!(app.login(ROOT_EMAIL, "wrong password!").await.status(), 401);
    assert_eq!(app.login(ROOT_EMAIL, ROOT_PASSWORD).await.status(), 200);
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();
    // Labelled by template, not by the id in the path.
    assert!(
        text.lines().any(|l| l.starts_with("http_requests_total{")
            && l.contains("route=\"/api/users/{id}\"")
            && l.contains("status=\"404\"")),
        "{text}"
    );
    assert!(!text.contains(&unknown[11..]), "no raw ids in labels");
    assert!(text.contains("http_request_duration_seconds_bucket{"));
    assert!(text.contains("userhub_logins_total{outcome=\"success\"}"));
    assert!(text.contains("userhub_logins_total{outcome=\"failure\"}"));
    assert!(text.contains("db_pool_connections{state=\"idle\"}"));
    assert!(text.contains("db_pool_max_connections"));
    assert!(text.contains("userhub_users_registered_total{via=\"register\"}"));
}
