//! A superuser's view of one account over HTTP: its sessions, ending them
//! all, and its ways in.

use serde_json::{Value, json};
use userhub_tests::{Backend, PASSWORD, TestUser, spawn_app};

on_both_backends!(
    a_superuser_lists_and_ends_a_users_sessions,
    a_superuser_reads_a_users_sign_in_methods_and_no_secret,
);

async fn a_superuser_lists_and_ends_a_users_sessions(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = app.root_token().await;
    let TestUser { id, access, .. } = app.user("ada").await;
    let second = app.login("ada", PASSWORD).await;
    assert_eq!(second.status(), 200);
    let path = format!("/api/users/{id}/sessions");
    let listed: Value = app.get(&path, &root).await.json().await.unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|s| s["current"] == false));
    assert!(listed.iter().all(|s| s["ip"].is_string()));
    // Only superusers.
    let bea = app.user("bea").await;
    assert_eq!(app.get(&path, &bea.access).await.status(), 403);
    assert_eq!(app.delete(&path, &bea.access).await.status(), 403);
    assert_eq!(
        app.get(&format!("/api/users/{id}/sign-in-methods"), &access)
            .await
            .status(),
        403
    );
    let unknown = format!("/api/users/{}/sessions", uuid::Uuid::now_v7());
    assert_eq!(app.get(&unknown, &root).await.status(), 404);
    assert_eq!(app.delete(&unknown, &root).await.status(), 404);
    // Ending them all: at once, and on record.
    assert_eq!(app.get("/api/auth/me", &access).await.status(), 200);
    assert_eq!(app.delete(&path, &root).await.status(), 204);
    assert_eq!(app.get("/api/auth/me", &access).await.status(), 401);
    let listed: Value = app.get(&path, &root).await.json().await.unwrap();
    assert_eq!(listed, json!([]));
    let events: Value = app
        .get(
            &format!("/api/audit-events?user_id={id}&type=sessions.ended_all"),
            &root,
        )
        .await
        .json()
        .await
        .unwrap();
    let event = &events["items"][0];
    assert_eq!(event["subject_id"], id.as_str());
    assert_ne!(event["actor_id"], id.as_str(), "the superuser acted");
    assert_eq!(
        app.get("/api/auth/me", &bea.access).await.status(),
        200,
        "others keep theirs"
    );
}

async fn a_superuser_reads_a_users_sign_in_methods_and_no_secret(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = app.root_token().await;
    let TestUser { id, access, .. } = app.user("ada").await;
    let path = format!("/api/users/{id}/sign-in-methods");
    let methods: Value = app.get(&path, &root).await.json().await.unwrap();
    assert_eq!(
        methods,
        json!({"password": true, "totp": false, "recovery_codes_left": 0, "passkeys": [], "identities": [], "tokens": 0})
    );
    let made = app
        .post(
            "/api/auth/tokens",
            &json!({"name": "script", "scopes": ["users:read"], "current_password": PASSWORD}),
            Some(&access),
        )
        .await;
    assert_eq!(made.status(), 201);
    let made: Value = made.json().await.unwrap();
    let methods: Value = app.get(&path, &root).await.json().await.unwrap();
    assert_eq!(methods["tokens"], 1);
    let text = methods.to_string();
    assert!(!text.contains(made["token"].as_str().unwrap()));
    // A personal access token, even a superuser's, reads nothing here.
    let pat: Value = app
        .post(
            "/api/auth/tokens",
            &json!({"name": "ops", "scopes": ["users:read"], "current_password": userhub_tests::ROOT_PASSWORD}),
            Some(&root),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        app.get(&path, pat["token"].as_str().unwrap())
            .await
            .status(),
        403
    );
}
