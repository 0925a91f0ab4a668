//! Passkeys over HTTP, on both databases: what a client without an
//! authenticator can provoke gets the contract's 4xx (the ceremonies
//! themselves run in Chromium: tests/browser/passkeys.test.mjs).

use serde_json::{Value, json};
use userhub_tests::{Backend, PASSWORD, TestUser, spawn_app};

on_both_backends!(
    sign_in_options_name_nobody_and_made_up_answers_are_401,
    registration_needs_the_password_and_a_real_answer,
    passkeys_of_others_are_not_found_and_a_superusers_removal_is_theirs_alone,
);

/// A `credential` shaped like a browser's answer, made up.
fn made_up() -> Value {
    json!({
        "id": "AAAA", "rawId": "AAAA", "type": "public-key",
        "response": {"clientDataJSON": "e30", "authenticatorData": "AAAA", "signature": "AAAA", "userHandle": null},
        "clientExtensionResults": {}
    })
}

async fn sign_in_options_name_nobody_and_made_up_answers_are_401(backend: Backend) {
    let app = spawn_app(backend).await;
    let options = app
        .post("/api/auth/passkeys/login/options", &json!({}), None)
        .await;
    assert_eq!(options.status(), 200);
    assert_eq!(
        options.headers()["cache-control"].to_str().unwrap(),
        "no-store"
    );
    let options: Value = options.json().await.unwrap();
    let public_key = &options["publicKey"];
    assert_eq!(public_key["userVerification"], "required");
    assert!(
        public_key["allowCredentials"]
            .as_array()
            .is_none_or(Vec::is_empty)
    );
    assert!(
        public_key["challenge"]
            .as_str()
            .is_some_and(|c| c.len() >= 22)
    );
    let token = options["login_token"].as_str().unwrap();
    for (login_token, credential) in [
        (token, made_up()),
        ("not-a-token", made_up()),
        (token, json!({"id": 1})),
    ] {
        let refused = app
            .post(
                "/api/auth/passkeys/login",
                &json!({"login_token": login_token, "credential": credential}),
                None,
            )
            .await;
        assert_eq!(refused.status(), 401);
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["detail"], "Invalid passkey");
        assert_eq!(body["error"], "invalid_grant");
    }
    // Not an object: 422, not 401.
    let shape = app
        .post(
            "/api/auth/passkeys/login",
            &json!({"login_token": token, "credential": "x"}),
            None,
        )
        .await;
    assert_eq!(shape.status(), 422);
    // The second step of a login: a code or a credential, one of them.
    let both = app
        .post(
            "/api/auth/login/mfa",
            &json!({"mfa_token": "t", "code": "123456", "credential": made_up()}),
            None,
        )
        .await;
    assert_eq!(both.status(), 422);
    let unknown = app
        .post(
            "/api/auth/login/mfa",
            &json!({"mfa_token": "t", "credential": made_up()}),
            None,
        )
        .await;
    assert_eq!(unknown.status(), 401);
}

async fn registration_needs_the_password_and_a_real_answer(backend: Backend) {
    let app = spawn_app(backend).await;
    let TestUser { access, .. } = app.user("ada").await;
    let path = "/api/auth/passkeys/register/options";
    assert_eq!(
        app.post(path, &json!({}), Some(&access)).await.status(),
        422
    );
    let wrong = app
        .post(path, &json!({"current_password": "nope"}), Some(&access))
        .await;
    assert_eq!(wrong.status(), 400);
    let options = app
        .post(path, &json!({"current_password": PASSWORD}), Some(&access))
        .await;
    assert_eq!(options.status(), 200);
    let options: Value = options.json().await.unwrap();
    let selection = &options["publicKey"]["authenticatorSelection"];
    assert_eq!(selection["residentKey"], "required");
    assert_eq!(selection["userVerification"], "required");
    let token = options["registration_token"].as_str().unwrap();
    let made_up = app
        .post(
            "/api/auth/passkeys/register",
            &json!({"registration_token": token, "credential": {"id": "AAAA", "rawId": "AAAA", "type": "public-key", "response": {"clientDataJSON": "e30", "attestationObject": "AAAA"}}}),
            Some(&access),
        )
        .await;
    assert_eq!(made_up.status(), 400);
    // The token went with that answer.
    let again = app
        .post(
            "/api/auth/passkeys/register",
            &json!({"registration_token": token, "credential": {}}),
            Some(&access),
        )
        .await;
    assert_eq!(again.status(), 400);
    let blank = app
        .post(
            "/api/auth/passkeys/register",
            &json!({"registration_token": token, "credential": {}, "name": " "}),
            Some(&access),
        )
        .await;
    assert_eq!(blank.status(), 422);
    // A personal access token adds none.
    let made: Value = app
        .post(
            "/api/auth/tokens",
            &json!({"name": "s", "scopes": ["profile:read"], "current_password": PASSWORD}),
            Some(&access),
        )
        .await
        .json()
        .await
        .unwrap();
    let pat = made["token"].as_str().unwrap();
    let by_token = app
        .post(path, &json!({"current_password": PASSWORD}), Some(pat))
        .await;
    assert_eq!(by_token.status(), 403);
    assert_eq!(app.get("/api/auth/passkeys", pat).await.status(), 403);
}

async fn passkeys_of_others_are_not_found_and_a_superusers_removal_is_theirs_alone(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let ada = app.user("ada").await;
    let listed = app.get("/api/auth/passkeys", &ada.access).await;
    assert_eq!(listed.status(), 200);
    assert_eq!(listed.json::<Value>().await.unwrap(), json!([]));
    let someone = "0193b5e2-7c1a-7d3e-9f00-5a1b2c3d4e62";
    let renamed = reqwest::Client::new()
        .patch(app.url(&format!("/api/auth/passkeys/{someone}")))
        .bearer_auth(&ada.access)
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(renamed.status(), 404);
    let removed = app
        .delete(&format!("/api/auth/passkeys/{someone}"), &ada.access)
        .await;
    assert_eq!(removed.status(), 404);
    let root = app.root_token().await;
    let refused = app
        .delete(&format!("/api/users/{}/passkeys", ada.id), &ada.access)
        .await;
    assert_eq!(refused.status(), 403);
    let unknown = app
        .delete(&format!("/api/users/{someone}/passkeys"), &root)
        .await;
    assert_eq!(unknown.status(), 404);
    let done = app
        .delete(&format!("/api/users/{}/passkeys", ada.id), &root)
        .await;
    assert_eq!(done.status(), 204);
    // Every session of Ada's ended.
    assert_eq!(app.get("/api/auth/me", &ada.access).await.status(), 401);
}
