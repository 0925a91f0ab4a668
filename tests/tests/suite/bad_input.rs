//! Hostile and malformed input: always a clear 4xx, never a 5xx.

use serde_json::{Value, json};
use userhub_tests::{Backend, PASSWORD, TestUser, spawn_app};

on_both_backends!(
    malformed_json_wrong_types_and_wrong_content_types_are_4xx,
    nul_characters_anywhere_are_422_not_500,
    oversize_strings_and_bodies_are_refused,
    bad_list_queries_are_422_with_their_location,
);

async fn malformed_json_wrong_types_and_wrong_content_types_are_4xx(backend: Backend) {
    let app = spawn_app(backend).await;
    let raw = |body: &'static str, content_type: &'static str| {
        app.client
            .post(app.url("/api/auth/register"))
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let broken = raw("{\"email\": ", "application/json").await.unwrap();
    assert_eq!(broken.status(), 422);
    assert_eq!(
        broken.json::<Value>().await.unwrap()["detail"][0]["type"],
        "json_invalid"
    );
    assert_eq!(raw("[]", "application/json").await.unwrap().status(), 422);
    assert_eq!(raw("null", "application/json").await.unwrap().status(), 422);
    assert_eq!(
        raw("{} trailing", "application/json")
            .await
            .unwrap()
            .status(),
        422
    );
    assert_eq!(
        raw("\u{fffd}", "application/json").await.unwrap().status(),
        422
    );
    assert_eq!(raw("email=a", "text/plain").await.unwrap().status(), 415);
    let wrong_type = app
        .post(
            "/api/auth/register",
            &json!({"email": "a@example.com", "username": "abc", "password": 12345678}),
            None,
        )
        .await;
    assert_eq!(wrong_type.status(), 422);
    let body: Value = wrong_type.json().await.unwrap();
    assert_eq!(body["detail"][0]["loc"], json!(["body", "password"]));
    assert_eq!(body["detail"][0]["type"], "string_type");
    assert!(!body.to_string().contains("12345678"));
    let login_form = app
        .client
        .post(app.url("/api/auth/login"))
        .form(&[
            ("grant_type", "implicit"),
            ("username", "x"),
            ("password", "y"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(login_form.status(), 422);
}

async fn nul_characters_anywhere_are_422_not_500(backend: Backend) {
    let app = spawn_app(backend).await;
    let TestUser {
        id, access: token, ..
    } = app.user("ada").await;
    let bodies = [
        json!({"email": "a\u{0}@example.com", "username": "abc", "password": PASSWORD}),
        json!({"email": "b@example.com", "username": "ab\u{0}c", "password": PASSWORD}),
        json!({"email": "c@example.com", "username": "abcd", "password": "pass\u{0}word-long"}),
        json!({"email": "d@example.com", "username": "abcde", "password": PASSWORD, "full_name": "A\u{0}"}),
    ];
    for body in bodies {
        assert_eq!(
            app.post("/api/auth/register", &body, None).await.status(),
            422,
            "{body}"
        );
    }
    assert_eq!(app.login("ada\u{0}", PASSWORD).await.status(), 422);
    assert_eq!(
        app.put(
            &format!("/api/users/{id}"),
            &json!({"full_name": "x\u{0}"}),
            &token
        )
        .await
        .status(),
        422
    );
    assert_eq!(
        app.get("/api/users?search=a%00b", &token).await.status(),
        422
    );
    assert_eq!(app.get("/api/users/%00", &token).await.status(), 422);
}

async fn oversize_strings_and_bodies_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let long_password =
        json!({"email": "a@example.com", "username": "abc", "password": "p".repeat(73)});
    let response = app.post("/api/auth/register", &long_password, None).await;
    assert_eq!(response.status(), 422);
    assert_eq!(
        response.json::<Value>().await.unwrap()["detail"][0]["type"],
        "string_too_long"
    );
    let long_email = json!({"email": format!("{}@example.com", "a".repeat(250)), "username": "abc", "password": PASSWORD});
    assert_eq!(
        app.post("/api/auth/register", &long_email, None)
            .await
            .status(),
        422
    );
    let long_name =
        json!({"email": "a@example.com", "username": "a".repeat(33), "password": PASSWORD});
    assert_eq!(
        app.post("/api/auth/register", &long_name, None)
            .await
            .status(),
        422
    );
    let huge = json!({"email": "a@example.com", "username": "abc", "password": PASSWORD, "full_name": "x".repeat(70_000)});
    assert_eq!(
        app.post("/api/auth/register", &huge, None).await.status(),
        413
    );
    assert_eq!(app.login(&"a".repeat(2000), PASSWORD).await.status(), 422);
    let TestUser { access: token, .. } = app.user("ada").await;
    assert_eq!(
        app.get("/api/auth/me", &"x".repeat(10_000)).await.status(),
        401
    );
    assert_eq!(
        app.get(&format!("/api/users?search={}", "a".repeat(101)), &token)
            .await
            .status(),
        422
    );
    // Nothing was lost: the account made before still works.
    assert_eq!(app.get("/api/auth/me", &token).await.status(), 200);
}

async fn bad_list_queries_are_422_with_their_location(backend: Backend) {
    let app = spawn_app(backend).await;
    let TestUser { access: token, .. } = app.user("ada").await;
    for (query, field, kind) in [
        ("limit=0", "limit", "greater_than_equal"),
        ("limit=101", "limit", "less_than_equal"),
        ("skip=-1", "skip", "greater_than_equal"),
        ("skip=abc", "skip", "int_parsing"),
        ("limit=1e3", "limit", "int_parsing"),
        ("sort=password_hash", "sort", "literal_error"),
        ("is_active=maybe", "is_active", "value_error"),
    ] {
        let response = app.get(&format!("/api/users?{query}"), &token).await;
        assert_eq!(response.status(), 422, "{query}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["detail"][0]["loc"], json!(["query", field]), "{query}");
        assert_eq!(body["detail"][0]["type"], kind, "{query}");
    }
}
