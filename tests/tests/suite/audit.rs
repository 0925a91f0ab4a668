//! The audit trail over HTTP: what each action leaves, who may read it,
//! filters and paging.

use serde_json::{Value, json};
use userhub_tests::{Backend, PASSWORD, TestApp, TestUser, spawn_app};

on_both_backends!(
    a_user_reads_their_own_security_events_newest_first,
    a_superuser_finds_events_by_user_and_type,
    what_a_superuser_did_shows_in_the_users_events_without_their_address,
    only_superusers_list_every_event_and_bad_filters_are_422,
    event_pages_follow_each_other_without_overlap,
    session_and_password_events_are_recorded,
    a_superusers_actions_on_users_are_recorded,
);

async fn events(app: &TestApp, path: &str, token: &str) -> Value {
    let response = app.get(path, token).await;
    assert_eq!(response.status(), 200, "{path}");
    assert_eq!(response.headers()["cache-control"], "no-store");
    response.json().await.unwrap()
}

fn types(page: &Value) -> Vec<&str> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect()
}

async fn a_user_reads_their_own_security_events_newest_first(backend: Backend) {
    let app = spawn_app(backend).await;
    let TestUser { id, .. } = app.user("ada").await;
    assert_eq!(app.login("ada", "wrong password").await.status(), 401);
    let response = app
        .client
        .post(app.url("/api/auth/login"))
        .header("User-Agent", "audit-test/1.0")
        .header("X-Request-Id", "req-audit-1")
        .json(&json!({"email": "ada", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let access = response.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let page = events(&app, "/api/auth/events", &access).await;
    assert_eq!(
        types(&page),
        [
            "login.succeeded",
            "login.failed",
            "login.succeeded",
            "user.registered"
        ]
    );
    assert_eq!(page["next_cursor"], Value::Null);
    let latest = &page["items"][0];
    assert_eq!(latest["outcome"], "success");
    assert_eq!(latest["actor_id"], id.as_str());
    assert_eq!(latest["subject_id"], id.as_str());
    assert_eq!(latest["user_agent"], "audit-test/1.0");
    assert_eq!(latest["request_id"], "req-audit-1");
    assert!(latest["ip"].as_str().is_some());
    assert!(latest["details"]["session_id"].as_str().is_some());
    let failed = &page["items"][1];
    assert_eq!(failed["outcome"], "failure");
    assert_eq!(failed["actor_id"], Value::Null);
    assert_eq!(failed["details"], json!({"reason": "wrong_password"}));
    // Nothing in any event is a secret.
    let text = page.to_string();
    assert!(!text.contains(PASSWORD) && !text.contains("wrong password"));
    assert!(!text.contains("$2b$"));
}

async fn a_superuser_finds_events_by_user_and_type(backend: Backend) {
    let app = spawn_app(backend).await;
    let TestUser { id: ada, .. } = app.user("ada").await;
    app.user("bob").await;
    for _ in 0..2 {
        assert_eq!(app.login("ada", "wrong password").await.status(), 401);
    }
    assert_eq!(app.login("nobody", "wrong password").await.status(), 401);
    let root = app.root_token().await;
    let page = events(
        &app,
        &format!("/api/audit-events?user_id={ada}&type=login.failed"),
        &root,
    )
    .await;
    assert_eq!(types(&page), ["login.failed", "login.failed"]);
    assert!(
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["subject_id"] == ada.as_str())
    );
    // An unknown name's failure has no subject; a superuser sees it.
    let page = events(&app, "/api/audit-events?type=login.failed", &root).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 3);
    assert_eq!(page["items"][0]["subject_id"], Value::Null);
    assert_eq!(
        page["items"][0]["details"]["reason"], "unknown_account",
        "{page}"
    );
    // Time bounds.
    let far = "/api/audit-events?since=2999-01-01T00:00:00Z";
    assert_eq!(types(&events(&app, far, &root).await).len(), 0);
    let all = events(
        &app,
        "/api/audit-events?until=2999-01-01T00:00:00Z&limit=100",
        &root,
    )
    .await;
    assert!(types(&all).contains(&"user.registered"));
}

async fn what_a_superuser_did_shows_in_the_users_events_without_their_address(backend: Backend) {
    let app = spawn_app(backend).await;
    let TestUser {
        id: ada, access, ..
    } = app.user("ada").await;
    let root = app.root_token().await;
    let response = app
        .put(
            &format!("/api/users/{ada}"),
            &json!({"full_name": "Ada Lovelace", "password": "an entirely new passphrase"}),
            &root,
        )
        .await;
    assert_eq!(response.status(), 200);
    // The password change ended ada's sessions: log in again.
    let tokens: Value = app
        .login("ada", "an entirely new passphrase")
        .await
        .json()
        .await
        .unwrap();
    let access_again = tokens["access_token"].as_str().unwrap();
    assert_eq!(app.get("/api/auth/me", &access).await.status(), 401);
    let page = events(&app, "/api/auth/events", access_again).await;
    let updated = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "user.updated")
        .unwrap();
    assert_eq!(updated["subject_id"], ada.as_str());
    assert_ne!(updated["actor_id"], ada.as_str());
    assert_eq!(
        updated["details"]["fields"],
        json!(["full_name", "password"])
    );
    // The superuser's address and agent are not the user's to read...
    assert_eq!(updated["ip"], Value::Null);
    assert_eq!(updated["user_agent"], Value::Null);
    // ...but a superuser sees them.
    let page = events(
        &app,
        &format!("/api/audit-events?user_id={ada}&type=user.updated"),
        &root,
    )
    .await;
    assert!(page["items"][0]["ip"].as_str().is_some());
}

async fn only_superusers_list_every_event_and_bad_filters_are_422(backend: Backend) {
    let app = spawn_app(backend).await;
    let TestUser { access, .. } = app.user("ada").await;
    let response = app.get("/api/audit-events", &access).await;
    assert_eq!(response.status(), 403);
    let root = app.root_token().await;
    // A limit out of range is refused by the query's own rules, first.
    let response = app.get("/api/audit-events?type=login&limit=0", &root).await;
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["detail"][0]["loc"],
        json!(["query", "limit"]),
        "{body}"
    );
    let response = app
        .get(
            "/api/audit-events?user_id=nope&type=login&since=yesterday",
            &root,
        )
        .await;
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    let fields: Vec<&str> = body["detail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["loc"][1].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["user_id", "type", "since"], "{body}");
    assert_eq!(body["detail"][0]["type"], "uuid_parsing");
    let response = app.get("/api/audit-events?user_id=&since=", &root).await;
    assert_eq!(response.status(), 422, "an empty filter is malformed");
    assert_eq!(
        app.get("/api/auth/events", "not-a-token").await.status(),
        401
    );
    let response = app
        .get("/api/auth/events?cursor=forged.cursor", &access)
        .await;
    assert_eq!(response.status(), 422);
}

async fn event_pages_follow_each_other_without_overlap(backend: Backend) {
    let app = spawn_app(backend).await;
    let TestUser { .. } = app.user("ada").await;
    for _ in 0..4 {
        assert_eq!(app.login("ada", "wrong password").await.status(), 401);
    }
    let tokens: Value = app.login("ada", PASSWORD).await.json().await.unwrap();
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    // registered, login, 4 failures, login: 7 events in pages of 3.
    let mut seen = Vec::new();
    let mut path = "/api/auth/events?limit=3".to_owned();
    loop {
        let page = events(&app, &path, &access).await;
        for event in page["items"].as_array().unwrap() {
            seen.push(event["id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/auth/events?limit=3&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.reverse();
    sorted.dedup();
    assert_eq!(seen, sorted, "newest first, no repeats");
    // A cursor of the own listing does not continue another user's.
    let TestUser { access: bob, .. } = app.user("bob").await;
    let page = events(&app, "/api/auth/events?limit=1", &access).await;
    let cursor = page["next_cursor"].as_str().unwrap();
    let response = app
        .get(&format!("/api/auth/events?cursor={cursor}"), &bob)
        .await;
    assert_eq!(response.status(), 422);
}

async fn session_and_password_events_are_recorded(backend: Backend) {
    let app = spawn_app(backend).await;
    let TestUser {
        id,
        access,
        refresh,
    } = app.user("ada").await;
    // Refresh, then present the spent token again: reuse.
    let response = app
        .post(
            "/api/auth/refresh",
            &json!({"refresh_token": refresh}),
            None,
        )
        .await;
    assert_eq!(response.status(), 200);
    let response = app
        .post(
            "/api/auth/refresh",
            &json!({"refresh_token": refresh}),
            None,
        )
        .await;
    assert_eq!(response.status(), 401);
    let tokens: Value = app.login("ada", PASSWORD).await.json().await.unwrap();
    let second = tokens["access_token"].as_str().unwrap().to_owned();
    let response = app
        .post(
            "/api/auth/change-password",
            &json!({"current_password": "wrong", "new_password": "another good passphrase"}),
            Some(&second),
        )
        .await;
    assert_eq!(response.status(), 400);
    let response = app
        .post(
            "/api/auth/change-password",
            &json!({"current_password": PASSWORD, "new_password": "another good passphrase"}),
            Some(&second),
        )
        .await;
    assert_eq!(response.status(), 204);
    assert_eq!(
        app.post("/api/auth/logout-all", &json!({}), Some(&second))
            .await
            .status(),
        204
    );
    let tokens: Value = app
        .login("ada", "another good passphrase")
        .await
        .json()
        .await
        .unwrap();
    let third = tokens["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        app.post("/api/auth/logout", &json!({}), Some(&third))
            .await
            .status(),
        204
    );
    assert_eq!(app.get("/api/auth/me", &access).await.status(), 401);
    let root = app.root_token().await;
    let page = events(
        &app,
        &format!("/api/audit-events?user_id={id}&limit=100"),
        &root,
    )
    .await;
    assert_eq!(
        types(&page),
        [
            "session.ended",
            "login.succeeded",
            "sessions.ended_all",
            "password.changed",
            "login.failed",
            "login.succeeded",
            "token.reuse_detected",
            "login.succeeded",
            "user.registered",
        ]
    );
    let reuse = &page["items"][6];
    assert_eq!(reuse["outcome"], "failure");
    assert_eq!(reuse["subject_id"], id.as_str());
    assert_eq!(
        page["items"][4]["details"]["reason"],
        "wrong_current_password"
    );
}

async fn a_superusers_actions_on_users_are_recorded(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = app.root_token().await;
    let root_id = app
        .get("/api/auth/me", &root)
        .await
        .json::<Value>()
        .await
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let created: Value = app
        .post(
            "/api/users",
            &json!({"email": "bob@example.com", "username": "bob", "password": PASSWORD}),
            Some(&root),
        )
        .await
        .json()
        .await
        .unwrap();
    let bob = created["id"].as_str().unwrap();
    for (method, path, status) in [
        ("DELETE", format!("/api/users/{bob}"), 204),
        ("POST", format!("/api/users/{bob}/restore"), 200),
        ("POST", format!("/api/users/{bob}/unlock"), 200),
    ] {
        let request = match method {
            "DELETE" => app.client.delete(app.url(&path)),
            _ => app.client.post(app.url(&path)),
        };
        let response = request.bearer_auth(&root).send().await.unwrap();
        assert_eq!(response.status(), status, "{method} {path}");
    }
    let page = events(&app, &format!("/api/audit-events?user_id={bob}"), &root).await;
    assert_eq!(
        types(&page),
        [
            "user.unlocked",
            "user.restored",
            "user.deleted",
            "user.created"
        ]
    );
    assert!(
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["actor_id"] == root_id.as_str())
    );
    let by_root = events(
        &app,
        &format!("/api/audit-events?actor_id={root_id}&type=user.created"),
        &root,
    )
    .await;
    assert_eq!(by_root["items"][0]["subject_id"], bob);
}
