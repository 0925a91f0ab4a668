//! Logout, logout everywhere, the session list, ending one session, and
//! changing the password.

use serde_json::{Value, json};
use userhub_tests::{Backend, PASSWORD, TestUser, spawn_app};

on_both_backends!(
    logout_ends_this_session_at_once_and_only_this_one,
    logout_all_ends_every_session,
    sessions_lists_live_sessions_and_marks_the_current_one,
    deleting_a_session_ends_it_and_others_sessions_are_not_found,
    change_password_keeps_this_session_and_ends_the_others,
    change_password_refuses_a_wrong_current_or_weak_new_password,
    session_endpoints_need_a_valid_token,
    with_unbatched_reads_a_logout_is_seen_at_once,
);

async fn login(app: &userhub_tests::TestApp, name: &str, password: &str) -> (String, String) {
    let tokens: Value = app.login(name, password).await.json().await.unwrap();
    (
        tokens["access_token"].as_str().unwrap().to_owned(),
        tokens["refresh_token"].as_str().unwrap().to_owned(),
    )
}

async fn logout_ends_this_session_at_once_and_only_this_one(backend: Backend) {
    let app = spawn_app(backend).await;
    let TestUser {
        access, refresh, ..
    } = app.user("ada").await;
    let (other, _) = login(&app, "ada", PASSWORD).await;
    assert_eq!(
        app.post("/api/auth/logout", &json!({}), Some(&access))
            .await
            .status(),
        204
    );
    assert_eq!(app.get("/api/auth/me", &access).await.status(), 401);
    assert_eq!(
        app.post(
            "/api/auth/refresh",
            &json!({"refresh_token": refresh}),
            None
        )
        .await
        .status(),
        401
    );
    assert_eq!(app.get("/api/auth/me", &other).await.status(), 200);
}

async fn logout_all_ends_every_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let TestUser { access, .. } = app.user("ada").await;
    let (other, other_refresh) = login(&app, "ada", PASSWORD).await;
    assert_eq!(
        app.post("/api/auth/logout-all/", &json!({}), Some(&access))
            .await
            .status(),
        204
    );
    assert_eq!(app.get("/api/auth/me", &access).await.status(), 401);
    assert_eq!(app.get("/api/auth/me", &other).await.status(), 401);
    assert_eq!(
        app.post(
            "/api/auth/refresh",
            &json!({"refresh_token": other_refresh}),
            None
        )
        .await
        .status(),
        401
    );
}

async fn sessions_lists_live_sessions_and_marks_the_current_one(backend: Backend) {
    let app = spawn_app(backend).await;
    let TestUser { access: first, .. } = app.user("ada").await;
    let (second, _) = login(&app, "ada", PASSWORD).await;
    let (third, _) = login(&app, "ada", PASSWORD).await;
    app.post("/api/auth/logout", &json!({}), Some(&third)).await;
    let listed = app
        .client
        .get(app.url("/api/auth/sessions"))
        .bearer_auth(&second)
        .header("user-agent", "ignored-for-listing")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    let sessions: Vec<Value> = listed.json().await.unwrap();
    assert_eq!(sessions.len(), 2, "the logged-out session is not listed");
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    for session in &sessions {
        assert!(
            session["id"].is_string()
                && session["created_at"].is_string()
                && session["last_used_at"].is_string()
        );
        assert_eq!(session["ip"], "127.0.0.1");
        assert!(session.as_object().unwrap().contains_key("user_agent"));
    }
    assert_eq!(app.get("/api/auth/sessions", &first).await.status(), 200);
}

async fn deleting_a_session_ends_it_and_others_sessions_are_not_found(backend: Backend) {
    let app = spawn_app(backend).await;
    let TestUser { access: mine, .. } = app.user("ada").await;
    let (other, _) = login(&app, "ada", PASSWORD).await;
    let TestUser { access: bob, .. } = app.user("bob").await;
    let sessions: Vec<Value> = app
        .get("/api/auth/sessions", &mine)
        .await
        .json()
        .await
        .unwrap();
    let other_id = sessions.iter().find(|s| s["current"] == false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        app.delete(&format!("/api/auth/sessions/{other_id}"), &bob)
            .await
            .status(),
        404
    );
    assert_eq!(app.get("/api/auth/me", &other).await.status(), 200);
    assert_eq!(
        app.delete(&format!("/api/auth/sessions/{other_id}"), &mine)
            .await
            .status(),
        204
    );
    assert_eq!(app.get("/api/auth/me", &other).await.status(), 401);
    assert_eq!(
        app.delete(&format!("/api/auth/sessions/{other_id}"), &mine)
            .await
            .status(),
        404,
        "already ended"
    );
    assert_eq!(
        app.delete("/api/auth/sessions/nope", &mine).await.status(),
        422
    );
    assert_eq!(app.get("/api/auth/me", &mine).await.status(), 200);
}

async fn change_password_keeps_this_session_and_ends_the_others(backend: Backend) {
    let app = spawn_app(backend).await;
    let TestUser { access: mine, .. } = app.user("ada").await;
    let (other, other_refresh) = login(&app, "ada", PASSWORD).await;
    let body = json!({"current_password": PASSWORD, "new_password": "Another-Strong-Secret-7"});
    assert_eq!(
        app.post("/api/auth/change-password", &body, Some(&mine))
            .await
            .status(),
        204
    );
    assert_eq!(app.get("/api/auth/me", &mine).await.status(), 200);
    assert_eq!(app.get("/api/auth/me", &other).await.status(), 401);
    assert_eq!(
        app.post(
            "/api/auth/refresh",
            &json!({"refresh_token": other_refresh}),
            None
        )
        .await
        .status(),
        401
    );
    assert_eq!(app.login("ada", PASSWORD).await.status(), 401);
    assert_eq!(
        app.login("ada", "Another-Strong-Secret-7").await.status(),
        200
    );
}

async fn change_password_refuses_a_wrong_current_or_weak_new_password(backend: Backend) {
    let app = spawn_app(backend).await;
    let TestUser { access: mine, .. } = app.user("ada").await;
    let wrong =
        json!({"current_password": "not-my-password", "new_password": "Another-Strong-Secret-7"});
    let response = app
        .post("/api/auth/change-password", &wrong, Some(&mine))
        .await;
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.json::<Value>().await.unwrap()["detail"],
        "Incorrect password"
    );
    for weak in ["Sh0rt!", "ada-forever-2026"] {
        let body = json!({"current_password": PASSWORD, "new_password": weak});
        let response = app
            .post("/api/auth/change-password", &body, Some(&mine))
            .await;
        assert_eq!(response.status(), 422, "{weak}");
        let text = response.text().await.unwrap();
        assert!(!text.contains(weak));
        let detail: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(detail["detail"][0]["loc"], json!(["body", "new_password"]));
    }
    assert_eq!(
        app.login("ada", PASSWORD).await.status(),
        200,
        "nothing changed"
    );
}

async fn session_endpoints_need_a_valid_token(backend: Backend) {
    let app = spawn_app(backend).await;
    for path in [
        "/api/auth/logout",
        "/api/auth/logout-all",
        "/api/auth/change-password",
    ] {
        let response = app
            .client
            .post(app.url(path))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{path}");
    }
    assert_eq!(
        app.client
            .get(app.url("/api/auth/sessions"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
}

/// `DB_BATCH_READS=false`: each authenticating read is its own query, and
/// sees a logout as a batched one does.
async fn with_unbatched_reads_a_logout_is_seen_at_once(backend: Backend) {
    let app = userhub_tests::spawn_app_with(backend, |s| s.database.db_batch_reads = false).await;
    let TestUser { access, .. } = app.user("ada").await;
    assert_eq!(app.get("/api/auth/me", &access).await.status(), 200);
    let out = app
        .post("/api/auth/logout", &json!({}), Some(&access))
        .await;
    assert_eq!(out.status(), 204);
    assert_eq!(app.get("/api/auth/me", &access).await.status(), 401);
}
