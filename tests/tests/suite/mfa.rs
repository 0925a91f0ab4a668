//! The second factor end to end over HTTP, with codes computed by pyotp
//! (an independent TOTP implementation): enrolment, the two-step login,
//! replay, recovery codes, turning it off, a superuser's reset, the
//! lockout and a race of two logins with one code.

use base64::Engine as _;
use serde_json::{Value, json};
use userhub_tests::totp::{code, parse_uri, seconds_left_in_step};
use userhub_tests::{
    Backend, PASSWORD, TestApp, TestUser, assert_one_won, spawn_app, spawn_app_with,
};

on_both_backends!(
    enrolment_login_replay_recovery_codes_and_turning_it_off,
    wrong_codes_count_as_failed_logins_and_lock_the_account,
    an_mfa_token_allows_five_codes_once,
    two_logins_with_one_code_at_once_let_one_in,
    a_password_change_ends_a_pending_login,
    a_superuser_turns_off_the_second_factor_of_a_lost_device,
    mfa_changes_spend_the_account_write_budget,
);

/// Waits for a fresh step when the current one is about to end, so that a
/// code computed now is still the server's when it arrives.
async fn fresh_step() {
    let left = seconds_left_in_step();
    if left < 4 {
        tokio::time::sleep(std::time::Duration::from_secs(left + 1)).await;
    }
}

async fn json_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Turns TOTP on for `user`; the secret and the recovery codes.
async fn enable(app: &TestApp, user: &TestUser) -> (String, Vec<String>) {
    let body = json!({"current_password": PASSWORD});
    let (status, enrolment) = json_of(
        app.post("/api/auth/mfa/totp", &body, Some(&user.access))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{enrolment}");
    let secret = enrolment["secret"].as_str().unwrap().to_owned();
    fresh_step().await;
    let body = json!({"code": code(&secret, 0)});
    let (status, codes) = json_of(
        app.post("/api/auth/mfa/totp/confirm", &body, Some(&user.access))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{codes}");
    let codes = codes["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    (secret, codes)
}

/// A password login that must stop at the second factor; its `mfa_token`.
async fn mfa_token(app: &TestApp, name: &str) -> String {
    let (status, body) = json_of(app.login(name, PASSWORD).await).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "mfa_required", "{body}");
    assert!(body.get("access_token").is_none(), "{body}");
    body["mfa_token"].as_str().unwrap().to_owned()
}

async fn second_step(app: &TestApp, token: &str, code: &str) -> (u16, Value) {
    let body = json!({"mfa_token": token, "code": code});
    json_of(app.post("/api/auth/login/mfa", &body, None).await).await
}

/// The `amr` claim of an access token (read, not verified: the server
/// verifies its tokens elsewhere).
fn amr(access_token: &str) -> Value {
    let payload = access_token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice::<Value>(&bytes).unwrap()["amr"].clone()
}

async fn enrolment_login_replay_recovery_codes_and_turning_it_off(backend: Backend) {
    let app = spawn_app(backend).await;
    let ada = app.user("ada").await;
    let (status, state) = json_of(app.get("/api/auth/mfa", &ada.access).await).await;
    assert_eq!(
        (status, state),
        (200, json!({"totp": false, "recovery_codes_left": 0}))
    );
    // A wrong password is refused (and counted); the right one gets a
    // pending secret whose URI pyotp reads back.
    let wrong = json!({"current_password": "Not-the-password-1"});
    let response = app
        .post("/api/auth/mfa/totp", &wrong, Some(&ada.access))
        .await;
    assert_eq!(response.status(), 400);
    let body = json!({"current_password": PASSWORD});
    let (_, enrolment) = json_of(
        app.post("/api/auth/mfa/totp", &body, Some(&ada.access))
            .await,
    )
    .await;
    let secret = enrolment["secret"].as_str().unwrap();
    let (parsed, issuer, account) = parse_uri(enrolment["otpauth_uri"].as_str().unwrap());
    assert_eq!(
        (parsed.as_str(), issuer.as_str(), account.as_str()),
        (secret, "UserHub", "ada@example.com")
    );
    // A code of another time does not confirm it.
    let far = json!({"code": code(secret, 20)});
    let (status, refused) = json_of(
        app.post("/api/auth/mfa/totp/confirm", &far, Some(&ada.access))
            .await,
    )
    .await;
    assert_eq!((status, refused), (400, json!({"detail": "Invalid code"})));
    // A new enrolment replaces the pending secret.
    let (secret, recovery) = enable(&app, &ada).await;
    assert_eq!(recovery.len(), 10);
    let (_, state) = json_of(app.get("/api/auth/mfa", &ada.access).await).await;
    assert_eq!(state, json!({"totp": true, "recovery_codes_left": 10}));
    let again = app
        .post("/api/auth/mfa/totp", &body, Some(&ada.access))
        .await;
    assert_eq!(again.status(), 409);

    // A wrong password is the same 401 as anyone's.
    let (status, body) = json_of(app.login("ada", "Not-the-password-1").await).await;
    assert_eq!(status, 401);
    assert_eq!(body["detail"], "Incorrect email or password");
    // The code that confirmed the enrolment was spent: no replay.
    let token = mfa_token(&app, "ada").await;
    let (status, body) = second_step(&app, &token, &code(&secret, 0)).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["detail"], "Invalid code");
    // The next step's code lets the login through, once.
    let (status, tokens) = second_step(&app, &token, &code(&secret, 1)).await;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(amr(access), json!(["pwd", "otp"]));
    assert_eq!(amr(&ada.access), json!(["pwd"]));
    let (status, _) = second_step(&app, &token, &code(&secret, 1)).await;
    assert_eq!(status, 401, "an mfa_token is single use");
    // A refresh keeps the session's methods.
    let refresh = json!({"refresh_token": tokens["refresh_token"]});
    let (status, refreshed) = json_of(app.post("/api/auth/refresh", &refresh, None).await).await;
    assert_eq!(status, 200);
    assert_eq!(
        amr(refreshed["access_token"].as_str().unwrap()),
        json!(["pwd", "otp"])
    );
    // A recovery code works once, in any case and without its dash.
    let token = mfa_token(&app, "ada").await;
    let typed = recovery[0].replace('-', "").to_uppercase();
    let (status, _) = second_step(&app, &token, &typed).await;
    assert_eq!(status, 200);
    let token = mfa_token(&app, "ada").await;
    let (status, _) = second_step(&app, &token, &recovery[0]).await;
    assert_eq!(status, 401);
    let (_, state) = json_of(app.get("/api/auth/mfa", &ada.access).await).await;
    assert_eq!(state["recovery_codes_left"], 9);

    // New recovery codes: the old set is spent.
    let body = json!({"current_password": PASSWORD, "code": recovery[1]});
    let (status, fresh) = json_of(
        app.post("/api/auth/mfa/recovery-codes", &body, Some(&ada.access))
            .await,
    )
    .await;
    assert_eq!(status, 200);
    let fresh: Vec<String> = serde_json::from_value(fresh["recovery_codes"].clone()).unwrap();
    let token = mfa_token(&app, "ada").await;
    let (status, _) = second_step(&app, &token, &recovery[2]).await;
    assert_eq!(status, 401);

    // Turning it off needs the password and a code, and ends the other sessions.
    let body = json!({"current_password": PASSWORD, "code": "000000"});
    let response = app
        .post("/api/auth/mfa/totp/disable", &body, Some(&ada.access))
        .await;
    assert_eq!(response.status(), 400);
    let body = json!({"current_password": PASSWORD, "code": fresh[0]});
    let response = app
        .post("/api/auth/mfa/totp/disable", &body, Some(&ada.access))
        .await;
    assert_eq!(response.status(), 204);
    let (status, _) = json_of(app.post("/api/auth/refresh", &refresh, None).await).await;
    assert_eq!(status, 401, "the other sessions ended");
    assert_eq!(app.get("/api/auth/me", &ada.access).await.status(), 200);
    let response = app
        .post("/api/auth/mfa/totp/disable", &body, Some(&ada.access))
        .await;
    assert_eq!(response.status(), 409);
    assert_eq!(app.login("ada", PASSWORD).await.status(), 200);

    // The trail has each step.
    let (_, events) = json_of(app.get("/api/auth/events?limit=100", &ada.access).await).await;
    let kinds: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    for kind in [
        "mfa.enabled",
        "mfa.failed",
        "mfa.recovery_code_used",
        "mfa.recovery_codes_regenerated",
        "mfa.disabled",
    ] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
}

async fn wrong_codes_count_as_failed_logins_and_lock_the_account(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.accounts.login_max_failures = 3).await;
    let ada = app.user("ada").await;
    let (secret, _) = enable(&app, &ada).await;
    let token = mfa_token(&app, "ada").await;
    for _ in 0..3 {
        let (status, _) = second_step(&app, &token, &code(&secret, 20)).await;
        assert_eq!(status, 401);
    }
    // Locked now, even with the right code, and for a password login too.
    let response = app
        .post(
            "/api/auth/login/mfa",
            &json!({"mfa_token": token, "code": code(&secret, 1)}),
            None,
        )
        .await;
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(app.login("ada", PASSWORD).await.status(), 429);
}

async fn mfa_changes_spend_the_account_write_budget(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.accounts.user_write_limit_per_minute = 2).await;
    let ada = app.user("ada").await;
    // The enrolment and its confirmation spend the two writes of the minute.
    let (secret, codes) = enable(&app, &ada).await;
    fresh_step().await;
    let body = json!({"current_password": PASSWORD, "code": code(&secret, 0)});
    for path in ["/api/auth/mfa/totp/disable", "/api/auth/mfa/recovery-codes"] {
        let response = app.post(path, &body, Some(&ada.access)).await;
        assert_eq!(response.status(), 429, "{path}");
        assert!(response.headers().contains_key("retry-after"));
    }
    // Nothing changed: TOTP is on and the first recovery codes still work.
    let (_, state) = json_of(app.get("/api/auth/mfa", &ada.access).await).await;
    assert_eq!(state["totp"], true, "{state}");
    let token = mfa_token(&app, "ada").await;
    let (status, _) = second_step(&app, &token, &codes[0]).await;
    assert_eq!(status, 200);
    // Another account has its own budget.
    let bob = app.user("bob").await;
    let response = app
        .post(
            "/api/auth/mfa/totp",
            &json!({"current_password": PASSWORD}),
            Some(&bob.access),
        )
        .await;
    assert_eq!(response.status(), 200);
}

async fn an_mfa_token_allows_five_codes_once(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.accounts.login_max_failures = 0).await;
    let ada = app.user("ada").await;
    let (secret, _) = enable(&app, &ada).await;
    let token = mfa_token(&app, "ada").await;
    for _ in 0..5 {
        let (status, _) = second_step(&app, &token, &code(&secret, 20)).await;
        assert_eq!(status, 401);
    }
    let (status, _) = second_step(&app, &token, &code(&secret, 1)).await;
    assert_eq!(status, 401, "the sixth code is refused, even the right one");
    // A form works as well as JSON.
    let token = mfa_token(&app, "ada").await;
    let response = app
        .client
        .post(app.url("/api/auth/login/mfa"))
        .form(&[("mfa_token", token.as_str()), ("code", &code(&secret, 1))])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

async fn two_logins_with_one_code_at_once_let_one_in(backend: Backend) {
    let app = spawn_app(backend).await;
    let ada = app.user("ada").await;
    let (secret, _) = enable(&app, &ada).await;
    let first = mfa_token(&app, "ada").await;
    let second = mfa_token(&app, "ada").await;
    let one_code = code(&secret, 1);
    let (a, b) = tokio::join!(
        second_step(&app, &first, &one_code),
        second_step(&app, &second, &one_code)
    );
    assert_one_won(&[a.0, b.0], 200, 401);
}

async fn a_superuser_turns_off_the_second_factor_of_a_lost_device(backend: Backend) {
    let app = spawn_app(backend).await;
    let ada = app.user("ada").await;
    let bob = app.user("bob").await;
    let root = app.root_token().await;
    let path = format!("/api/users/{}/mfa", ada.id);
    assert_eq!(app.delete(&path, &root).await.status(), 409, "not on yet");
    let (secret, _) = enable(&app, &ada).await;
    let token = mfa_token(&app, "ada").await;
    let (_, tokens) = second_step(&app, &token, &code(&secret, 1)).await;
    assert_eq!(app.delete(&path, &bob.access).await.status(), 403);
    let unknown = "/api/users/0193a000-0000-7000-8000-000000000000/mfa";
    assert_eq!(app.delete(unknown, &root).await.status(), 404);
    assert_eq!(app.delete(&path, &root).await.status(), 204);
    // Every session of the user ended; a password alone logs in again.
    let refresh = json!({"refresh_token": tokens["refresh_token"]});
    assert_eq!(
        app.post("/api/auth/refresh", &refresh, None).await.status(),
        401
    );
    assert_eq!(app.get("/api/auth/me", &ada.access).await.status(), 401);
    assert_eq!(app.login("ada", PASSWORD).await.status(), 200);
    assert_eq!(app.delete(&path, &root).await.status(), 409);
    let (_, events) = json_of(
        app.get(
            &format!("/api/audit-events?user_id={}&type=mfa.disabled", ada.id),
            &root,
        )
        .await,
    )
    .await;
    assert_eq!(
        events["items"].as_array().map(Vec::len),
        Some(1),
        "{events}"
    );
}

async fn a_password_change_ends_a_pending_login(backend: Backend) {
    let app = spawn_app(backend).await;
    let ada = app.user("ada").await;
    let (secret, _) = enable(&app, &ada).await;
    // Someone with the old password got this far...
    let token = mfa_token(&app, "ada").await;
    let change = json!({"current_password": PASSWORD, "new_password": "Quartz-Lantern-Orbit-47"});
    let response = app
        .post("/api/auth/change-password", &change, Some(&ada.access))
        .await;
    assert_eq!(response.status(), 204);
    // ...and gets no further, even with a right code.
    let (status, _) = second_step(&app, &token, &code(&secret, 1)).await;
    assert_eq!(status, 401);
}
