//! Personal access tokens over HTTP: made with the password and shown
//! once, accepted wherever an access token is, held to their scopes at the
//! edge, and following their owner at every request.

use serde_json::{Value, json};
use userhub_tests::{Backend, PASSWORD, ROOT_PASSWORD, TestApp, TestUser, spawn_app};

on_both_backends!(
    a_token_is_made_with_the_password_shown_once_and_authenticates,
    scopes_and_credential_routes_are_enforced_with_the_contracts_bodies,
    a_token_follows_its_owners_state_and_rights,
    a_token_revokes_itself_and_no_other,
    bad_requests_are_422_and_bad_tokens_401,
    superusers_list_and_revoke_anyones_tokens,
    a_token_that_makes_users_spends_its_owners_hashing_budget,
);

/// Makes a token of `access`'s user with `scopes`; its JSON.
async fn make(app: &TestApp, access: &str, scopes: &[&str]) -> Value {
    let response = app
        .post(
            "/api/auth/tokens",
            &json!({"name": "script", "scopes": scopes, "current_password": PASSWORD}),
            Some(access),
        )
        .await;
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

fn secret(token: &Value) -> String {
    token["token"].as_str().unwrap().to_owned()
}

async fn patch(app: &TestApp, path: &str, body: &Value, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .patch(app.url(path))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn a_token_is_made_with_the_password_shown_once_and_authenticates(backend: Backend) {
    let app = spawn_app(backend).await;
    let TestUser { id, access, .. } = app.user("ada").await;
    let wrong = app
        .post(
            "/api/auth/tokens",
            &json!({"name": "x", "scopes": ["profile:read"], "current_password": "nope"}),
            Some(&access),
        )
        .await;
    assert_eq!(wrong.status(), 400);
    let made = make(&app, &access, &["profile:read", "users:read"]).await;
    let token = secret(&made);
    assert!(token.starts_with("uhp_") && token.len() == 53, "{token}");
    assert_eq!(made["prefix"], token[..8]);
    assert_eq!(made["scopes"], json!(["profile:read", "users:read"]));
    assert!(made["last_used_at"].is_null());

    let me: Value = app.get("/api/auth/me", &token).await.json().await.unwrap();
    assert_eq!(me["id"], id.as_str());
    let user = app.get(&format!("/api/users/{id}"), &token).await;
    assert_eq!(user.status(), 200);
    assert_eq!(app.get("/api/users", &token).await.status(), 200);

    let listed: Value = app
        .get("/api/auth/tokens", &access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["id"], made["id"]);
    assert!(listed[0].get("token").is_none(), "never shown again");
    assert!(listed[0]["last_used_at"].is_string(), "its use is recorded");

    let events: Value = app
        .get("/api/auth/events", &access)
        .await
        .json()
        .await
        .unwrap();
    let created = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "token.created")
        .expect("a token.created event");
    assert_eq!(created["details"]["token_id"], made["id"]);
}

async fn scopes_and_credential_routes_are_enforced_with_the_contracts_bodies(backend: Backend) {
    let app = spawn_app(backend).await;
    let TestUser { id, access, .. } = app.user("ada").await;
    let reader = secret(&make(&app, &access, &["profile:read"]).await);
    let refused = app.get("/api/users", &reader).await;
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(
        body,
        json!({"detail": "Insufficient scope", "required_scope": "users:read"})
    );
    let refused = app.get("/api/auth/events", &reader).await;
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["required_scope"], "audit:read");

    let not_with_token = json!({"detail": "Not allowed with a personal access token"});
    let writer = secret(&make(&app, &access, &["users:write", "profile:read"]).await);
    for response in [
        app.post(
            "/api/auth/change-password",
            &json!({"current_password": PASSWORD, "new_password": "Quartz-Lantern-Orbit-47"}),
            Some(&writer),
        )
        .await,
        app.post("/api/auth/logout", &json!({}), Some(&writer))
            .await,
        app.get("/api/auth/sessions", &writer).await,
        app.get("/api/auth/tokens", &writer).await,
        app.post(
            "/api/auth/tokens",
            &json!({"name": "x", "scopes": ["users:write"], "current_password": PASSWORD}),
            Some(&writer),
        )
        .await,
        app.get("/api/auth/mfa", &writer).await,
        patch(
            &app,
            &format!("/api/users/{id}"),
            &json!({"email": "new@example.com"}),
            &writer,
        )
        .await,
        patch(
            &app,
            &format!("/api/users/{id}"),
            &json!({"password": "Quartz-Lantern-Orbit-47"}),
            &writer,
        )
        .await,
    ] {
        assert_eq!(response.status(), 403);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body, not_with_token);
    }
    // Within its scope and its owner's rights, it writes.
    let renamed = patch(
        &app,
        &format!("/api/users/{id}"),
        &json!({"full_name": "Ada Lovelace"}),
        &writer,
    )
    .await;
    assert_eq!(renamed.status(), 200);
    // The password still works, the session still lives.
    assert_eq!(app.login("ada", PASSWORD).await.status(), 200);
    assert_eq!(app.get("/api/auth/me", &access).await.status(), 200);
}

async fn a_token_follows_its_owners_state_and_rights(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = app.root_token().await;
    let TestUser {
        id: bob_id,
        access: bob,
        ..
    } = app.user("bob").await;
    let TestUser {
        id: ada_id,
        access: ada,
        ..
    } = app.user("ada").await;
    let promoted = app
        .put(
            &format!("/api/users/{bob_id}"),
            &json!({"is_superuser": true}),
            &root,
        )
        .await;
    assert_eq!(promoted.status(), 200);
    let bob_token = secret(&make(&app, &bob, &["users:write", "users:read"]).await);
    let ada_token = secret(&make(&app, &ada, &["profile:read"]).await);
    // A superuser's token restores, within its scope.
    let unlock = app
        .post(
            &format!("/api/users/{ada_id}/unlock"),
            &json!({}),
            Some(&bob_token),
        )
        .await;
    assert_eq!(unlock.status(), 200);
    // Demoted: the token loses the right at once.
    let demoted = app
        .put(
            &format!("/api/users/{bob_id}"),
            &json!({"is_superuser": false}),
            &root,
        )
        .await;
    assert_eq!(demoted.status(), 200);
    let unlock = app
        .post(
            &format!("/api/users/{ada_id}/unlock"),
            &json!({}),
            Some(&bob_token),
        )
        .await;
    assert_eq!(unlock.status(), 403);
    // Deactivated: the token stops working at once.
    assert_eq!(app.get("/api/auth/me", &ada_token).await.status(), 200);
    assert_eq!(
        app.delete(&format!("/api/users/{ada_id}"), &root)
            .await
            .status(),
        204
    );
    assert_eq!(app.get("/api/auth/me", &ada_token).await.status(), 401);
    // Restored: the account gets none of its tokens back.
    let restored = app
        .post(
            &format!("/api/users/{ada_id}/restore"),
            &json!({}),
            Some(&root),
        )
        .await;
    assert_eq!(restored.status(), 200);
    assert_eq!(app.get("/api/auth/me", &ada_token).await.status(), 401);
    let tokens: Value = app.login("ada", PASSWORD).await.json().await.unwrap();
    let ada = tokens["access_token"].as_str().unwrap();
    let listed: Value = app.get("/api/auth/tokens", ada).await.json().await.unwrap();
    assert_eq!(listed, json!([]));
}

async fn a_token_revokes_itself_and_no_other(backend: Backend) {
    let app = spawn_app(backend).await;
    let TestUser { access, .. } = app.user("ada").await;
    let first = make(&app, &access, &["profile:read"]).await;
    let second = make(&app, &access, &["profile:read"]).await;
    let other = app
        .delete(
            &format!("/api/auth/tokens/{}", second["id"].as_str().unwrap()),
            &secret(&first),
        )
        .await;
    assert_eq!(other.status(), 404);
    let own = app
        .delete(
            &format!("/api/auth/tokens/{}", first["id"].as_str().unwrap()),
            &secret(&first),
        )
        .await;
    assert_eq!(own.status(), 204);
    assert_eq!(app.get("/api/auth/me", &secret(&first)).await.status(), 401);
    assert_eq!(
        app.get("/api/auth/me", &secret(&second)).await.status(),
        200
    );
    // The owner's session revokes the other; once.
    let path = format!("/api/auth/tokens/{}", second["id"].as_str().unwrap());
    assert_eq!(app.delete(&path, &access).await.status(), 204);
    assert_eq!(app.delete(&path, &access).await.status(), 404);
    assert_eq!(
        app.get("/api/auth/me", &secret(&second)).await.status(),
        401
    );
}

async fn bad_requests_are_422_and_bad_tokens_401(backend: Backend) {
    let app = spawn_app(backend).await;
    let TestUser { access, .. } = app.user("ada").await;
    for (body, field) in [
        (json!({}), "name"),
        (
            json!({"name": "x", "scopes": ["admin"], "current_password": PASSWORD}),
            "scopes",
        ),
        (
            json!({"name": "x", "scopes": [], "current_password": PASSWORD}),
            "scopes",
        ),
        (
            json!({"name": "", "scopes": ["profile:read"], "current_password": PASSWORD}),
            "name",
        ),
        (
            json!({"name": "x", "scopes": ["profile:read"], "expires_in_days": 0, "current_password": PASSWORD}),
            "expires_in_days",
        ),
        (
            json!({"name": "x", "scopes": ["profile:read"], "expires_in_days": 366, "current_password": PASSWORD}),
            "expires_in_days",
        ),
    ] {
        let response = app.post("/api/auth/tokens", &body, Some(&access)).await;
        assert_eq!(response.status(), 422, "{body}");
        let errors: Value = response.json().await.unwrap();
        assert_eq!(errors["detail"][0]["loc"], json!(["body", field]), "{body}");
    }
    let made = secret(&make(&app, &access, &["profile:read"]).await);
    // A changed character fails its checksum; an unknown but well-formed
    // token, its lookup: both 401.
    let mut typo = made.clone().into_bytes();
    typo[20] = if typo[20] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(typo).unwrap();
    assert_eq!(app.get("/api/auth/me", &typo).await.status(), 401);
    assert_eq!(app.get("/api/auth/me", "uhp_nothing").await.status(), 401);
    assert_eq!(app.get("/api/users", "uhp_nothing").await.status(), 401);
}

async fn superusers_list_and_revoke_anyones_tokens(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = app.root_token().await;
    let TestUser { id, access, .. } = app.user("ada").await;
    let TestUser { access: bob, .. } = app.user("bob").await;
    let made = make(&app, &access, &["profile:read"]).await;
    let path = format!("/api/users/{id}/tokens");
    assert_eq!(app.get(&path, &bob).await.status(), 403);
    let listed: Value = app.get(&path, &root).await.json().await.unwrap();
    assert_eq!(listed[0]["id"], made["id"]);
    let unknown = "/api/users/0193b5e2-7c1a-7d3e-9f00-5a1b2c3d4e60/tokens";
    assert_eq!(app.get(unknown, &root).await.status(), 404);
    let one = format!("{path}/{}", made["id"].as_str().unwrap());
    assert_eq!(app.delete(&one, &bob).await.status(), 403);
    assert_eq!(app.delete(&one, &root).await.status(), 204);
    assert_eq!(app.delete(&one, &root).await.status(), 404);
    assert_eq!(app.get("/api/auth/me", &secret(&made)).await.status(), 401);
    let events: Value = app
        .get("/api/auth/events", &access)
        .await
        .json()
        .await
        .unwrap();
    assert!(
        events["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "token.revoked" && e["details"]["token_id"] == made["id"])
    );
}

async fn a_token_that_makes_users_spends_its_owners_hashing_budget(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = app.root_token().await;
    let made = app
        .post(
            "/api/auth/tokens",
            &json!({"name": "provisioning", "scopes": ["users:write"], "current_password": ROOT_PASSWORD}),
            Some(&root),
        )
        .await;
    assert_eq!(made.status(), 201);
    let writer = secret(&made.json().await.unwrap());
    let mut statuses = Vec::new();
    for i in 0..12 {
        let body = json!({
            "email": format!("made{i}@example.com"),
            "username": format!("made{i}"),
            "password": "Quartz-Lantern-Orbit-47",
        });
        statuses.push(
            app.post("/api/users", &body, Some(&writer))
                .await
                .status()
                .as_u16(),
        );
    }
    // PASSWORD_HASH_BUDGET_PER_MINUTE is 10 by default, per owner; making
    // the token spent one.
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        9,
        "{statuses:?}"
    );
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    // The budget is the owner's: their session is over it too.
    let body = json!({"email": "more@example.com", "username": "more", "password": "Quartz-Lantern-Orbit-47"});
    assert_eq!(
        app.post("/api/users", &body, Some(&root)).await.status(),
        429
    );
}
