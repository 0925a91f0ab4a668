//! `/api/auth`: register, login, refresh, me.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use time::OffsetDateTime;
use userhub_server::Span;
use userhub_tests::{
    Backend, JWT_KEY, PASSWORD, TestDatabase, TestUser, spawn_app, spawn_app_on, spawn_server,
};

on_both_backends!(
    register_returns_201_with_location_and_the_self_view,
    register_conflicts_on_a_taken_email_or_username_in_any_case,
    register_lists_every_invalid_field_without_echoing_the_password,
    register_refuses_a_personal_or_guessable_password,
    login_accepts_json_and_the_oauth2_form_and_returns_uncacheable_tokens,
    login_gives_one_answer_for_unknown_wrong_and_deactivated_accounts,
    refresh_rotates_and_a_reused_token_revokes_the_whole_session,
    refresh_rejects_unknown_tokens_and_bad_bodies,
    me_returns_the_caller_with_private_fields,
    me_refuses_missing_malformed_forged_expired_and_refresh_tokens,
    repeated_failures_lock_the_account_with_429_until_a_superuser_unlocks_it,
    a_successful_login_resets_the_failure_count,
    the_public_auth_endpoints_share_a_per_ip_budget,
    forwarded_addresses_count_only_behind_a_trusted_proxy,
    a_hash_of_an_older_cost_is_replaced_at_the_next_login,
    concurrent_refreshes_of_one_token_never_fork_the_session,
    within_the_grace_window_racing_refreshes_get_the_same_successor,
    oauth2_clients_get_rfc_6749_errors_and_can_refresh_with_a_form,
);

/// What a standard OAuth2 client library relies on: `error` and
/// `error_description` beside `detail` on refused grants and malformed
/// requests, and the RFC 6749 form of a refresh.
async fn oauth2_clients_get_rfc_6749_errors_and_can_refresh_with_a_form(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register("ada").await;
    let wrong = app.login("ada", "Wrong-password-1").await;
    assert_eq!(wrong.status(), 401);
    assert_eq!(wrong.headers()["www-authenticate"], "Bearer");
    let body: Value = wrong.json().await.unwrap();
    assert_eq!(body["detail"], "Incorrect email or password");
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["error_description"], "Incorrect email or password");
    let form = |pairs: &[(&str, &str)]| {
        app.client
            .post(app.url("/api/auth/login"))
            .form(
                &pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<Vec<_>>(),
            )
            .send()
    };
    let unsupported = form(&[
        ("grant_type", "client_credentials"),
        ("username", "ada"),
        ("password", PASSWORD),
    ])
    .await
    .unwrap();
    assert_eq!(unsupported.status(), 422);
    let body: Value = unsupported.json().await.unwrap();
    assert_eq!(body["error"], "unsupported_grant_type");
    assert!(body["detail"].is_array());
    let missing = form(&[("grant_type", "password")]).await.unwrap();
    assert_eq!(missing.status(), 422);
    assert_eq!(
        missing.json::<Value>().await.unwrap()["error"],
        "invalid_request"
    );

    let tokens: Value = form(&[
        ("grant_type", "password"),
        ("username", "ada"),
        ("password", PASSWORD),
    ])
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let refresh = |pairs: Vec<(&'static str, String)>| {
        app.client
            .post(app.url("/api/auth/refresh"))
            .form(&pairs)
            .send()
    };
    let refreshed = refresh(vec![
        ("grant_type", "refresh_token".into()),
        (
            "refresh_token",
            tokens["refresh_token"].as_str().unwrap().into(),
        ),
    ])
    .await
    .unwrap();
    assert_eq!(refreshed.status(), 200);
    assert_eq!(refreshed.headers()["cache-control"], "no-store");
    let next: Value = refreshed.json().await.unwrap();
    assert_eq!(next["token_type"], "bearer");
    let spent = refresh(vec![
        ("grant_type", "refresh_token".into()),
        (
            "refresh_token",
            tokens["refresh_token"].as_str().unwrap().into(),
        ),
    ])
    .await
    .unwrap();
    assert_eq!(spent.status(), 401);
    assert_eq!(
        spent.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
    let wrong_grant = refresh(vec![
        ("grant_type", "password".into()),
        (
            "refresh_token",
            next["refresh_token"].as_str().unwrap().into(),
        ),
    ])
    .await
    .unwrap();
    assert_eq!(wrong_grant.status(), 422);
    assert_eq!(
        wrong_grant.json::<Value>().await.unwrap()["error"],
        "unsupported_grant_type"
    );
    // JSON keeps working, and its errors carry the fields too.
    let json = app
        .post("/api/auth/refresh", &json!({"refresh_token": "nope"}), None)
        .await;
    assert_eq!(json.status(), 401);
    assert_eq!(
        json.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
}

async fn register_returns_201_with_location_and_the_self_view(backend: Backend) {
    let app = spawn_app(backend).await;
    let body = json!({"email": " Ada@Example.COM ", "username": "Ada_L", "password": PASSWORD, "full_name": "Ada Lovelace"});
    let response = app.post("/api/auth/register/", &body, None).await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let user: Value = response.json().await.unwrap();
    assert_eq!(
        location,
        format!("/api/users/{}", user["id"].as_str().unwrap())
    );
    assert_eq!(user["email"], "ada@example.com");
    assert_eq!(user["username"], "ada_l");
    assert_eq!(user["full_name"], "Ada Lovelace");
    assert_eq!(
        (user["is_active"].as_bool(), user["is_superuser"].as_bool()),
        (Some(true), Some(false))
    );
    assert!(
        user["last_login_at"].is_null() && user.as_object().unwrap().contains_key("last_login_at")
    );
    assert!(user["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(
        uuid::Uuid::parse_str(user["id"].as_str().unwrap())
            .unwrap()
            .get_version_num()
            == 7
    );
    assert!(user.get("password").is_none() && user.get("password_hash").is_none());
}

async fn register_conflicts_on_a_taken_email_or_username_in_any_case(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register("ada").await;
    let email = json!({"email": "ADA@example.com", "username": "other", "password": PASSWORD});
    let response = app.post("/api/auth/register", &email, None).await;
    assert_eq!(response.status(), 409);
    assert_eq!(
        response.json::<Value>().await.unwrap()["detail"],
        "Email already registered"
    );
    let username = json!({"email": "new@example.com", "username": "ADA", "password": PASSWORD});
    let response = app.post("/api/auth/register", &username, None).await;
    assert_eq!(response.status(), 409);
    assert_eq!(
        response.json::<Value>().await.unwrap()["detail"],
        "Username already taken"
    );
}

async fn register_lists_every_invalid_field_without_echoing_the_password(backend: Backend) {
    let app = spawn_app(backend).await;
    let body = json!({"email": "not-an-email", "username": "_xyz", "password": "Sh0rt!", "full_name": "x".repeat(101)});
    let response = app.post("/api/auth/register", &body, None).await;
    assert_eq!(response.status(), 422);
    let text = response.text().await.unwrap();
    assert!(!text.contains("Sh0rt!"));
    let detail: Value = serde_json::from_str(&text).unwrap();
    let mut fields: Vec<(String, String)> = detail["detail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["loc"][1].as_str().unwrap().to_owned(),
                e["type"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            ("email".into(), "value_error".into()),
            ("full_name".into(), "string_too_long".into()),
            ("password".into(), "string_too_short".into()),
            ("username".into(), "string_pattern_mismatch".into()),
        ]
    );
    for entry in detail["detail"].as_array().unwrap() {
        assert_eq!(entry["loc"][0], "body");
        assert!(entry["msg"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let missing = app
        .post(
            "/api/auth/register",
            &json!({"email": "a@example.com"}),
            None,
        )
        .await;
    assert_eq!(missing.status(), 422);
    let detail: Value = missing.json().await.unwrap();
    assert!(
        detail["detail"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "missing")
    );
}

async fn register_refuses_a_personal_or_guessable_password(backend: Backend) {
    let app = spawn_app(backend).await;
    for (username, email, password) in [
        ("grace", "g@example.com", "my-GRACE-pass"),
        ("hopper", "admiral@example.com", "xxAdmiral99"),
        ("turing", "alan@example.com", "password123"),
        ("lamarr", "hedy@example.com", "qwertyuiop"),
    ] {
        let body = json!({"email": email, "username": username, "password": password});
        let response = app.post("/api/auth/register", &body, None).await;
        assert_eq!(response.status(), 422, "{username}");
        let text = response.text().await.unwrap();
        assert!(!text.contains(password));
        let detail: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(detail["detail"][0]["loc"], json!(["body", "password"]));
    }
}

async fn login_accepts_json_and_the_oauth2_form_and_returns_uncacheable_tokens(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register("ada").await;
    let json_login = app.login("ADA@example.com", PASSWORD).await;
    assert_eq!(json_login.status(), 200);
    assert_eq!(json_login.headers()["cache-control"], "no-store");
    let tokens: Value = json_login.json().await.unwrap();
    assert_eq!(tokens["token_type"], "bearer");
    assert_eq!(tokens["expires_in"], 1800);
    assert!(tokens["refresh_token"].as_str().unwrap().len() >= 43);
    for username in ["ada", "ada@example.com"] {
        let form = app
            .client
            .post(app.url("/api/auth/login"))
            .form(&[
                ("grant_type", "password"),
                ("username", username),
                ("password", PASSWORD),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(form.status(), 200, "{username}");
        assert_eq!(form.headers()["cache-control"], "no-store");
    }
    let me: Value = app
        .get("/api/auth/me", tokens["access_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert!(me["last_login_at"].as_str().is_some());
}

async fn login_gives_one_answer_for_unknown_wrong_and_deactivated_accounts(backend: Backend) {
    let app = spawn_app(backend).await;
    let TestUser { id, .. } = app.user("ada").await;
    app.register("bob").await;
    let root = app.root_token().await;
    assert_eq!(
        app.delete(&format!("/api/users/{id}"), &root)
            .await
            .status(),
        204
    );
    for (login, password) in [
        ("nobody@example.com", PASSWORD),
        ("bob", "Wrong-password-1"),
        ("ada", PASSWORD),
    ] {
        let response = app.login(login, password).await;
        assert_eq!(response.status(), 401, "{login}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        assert_eq!(
            response.json::<Value>().await.unwrap(),
            json!({
                "detail": "Incorrect email or password",
                "error": "invalid_grant",
                "error_description": "Incorrect email or password",
            })
        );
    }
}

async fn refresh_rotates_and_a_reused_token_revokes_the_whole_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let TestUser {
        access, refresh, ..
    } = app.user("ada").await;
    let first = app
        .post(
            "/api/auth/refresh",
            &json!({"refresh_token": refresh}),
            None,
        )
        .await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["cache-control"], "no-store");
    let rotated: Value = first.json().await.unwrap();
    let (new_access, new_refresh) = (
        rotated["access_token"].as_str().unwrap(),
        rotated["refresh_token"].as_str().unwrap(),
    );
    assert_ne!(new_refresh, refresh);
    assert_eq!(app.get("/api/auth/me", new_access).await.status(), 200);

    // The spent token again: theft. The whole session ends.
    let reuse = app
        .post(
            "/api/auth/refresh",
            &json!({"refresh_token": refresh}),
            None,
        )
        .await;
    assert_eq!(reuse.status(), 401);
    let successor = app
        .post(
            "/api/auth/refresh",
            &json!({"refresh_token": new_refresh}),
            None,
        )
        .await;
    assert_eq!(
        successor.status(),
        401,
        "the successor dies with its session"
    );
    assert_eq!(app.get("/api/auth/me", new_access).await.status(), 401);
    assert_eq!(app.get("/api/auth/me", &access).await.status(), 401);
    // Another session of the same user is untouched.
    let other: Value = app.login("ada", PASSWORD).await.json().await.unwrap();
    assert_eq!(
        app.get("/api/auth/me", other["access_token"].as_str().unwrap())
            .await
            .status(),
        200
    );
}

async fn refresh_rejects_unknown_tokens_and_bad_bodies(backend: Backend) {
    let app = spawn_app(backend).await;
    let unknown = app
        .post(
            "/api/auth/refresh",
            &json!({"refresh_token": "garbage"}),
            None,
        )
        .await;
    assert_eq!(unknown.status(), 401);
    assert_eq!(unknown.headers()["www-authenticate"], "Bearer");
    assert_eq!(
        app.post("/api/auth/refresh", &json!({}), None)
            .await
            .status(),
        422
    );
    assert_eq!(
        app.post("/api/auth/refresh", &json!({"refresh_token": 5}), None)
            .await
            .status(),
        422
    );
    assert_eq!(
        app.post(
            "/api/auth/refresh",
            &json!({"refresh_token": "a\u{0}b"}),
            None
        )
        .await
        .status(),
        422
    );
}

async fn me_returns_the_caller_with_private_fields(backend: Backend) {
    let app = spawn_app(backend).await;
    let TestUser { id, access, .. } = app.user("ada").await;
    let me = app.get("/api/auth/me", &access).await;
    assert_eq!(me.status(), 200);
    let me: Value = me.json().await.unwrap();
    assert_eq!(me["id"], id.as_str());
    assert_eq!(me["email"], "ada@example.com");
}

fn forge(claims: &Value, alg: Algorithm, key: &[u8]) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(key)).unwrap()
}

async fn me_refuses_missing_malformed_forged_expired_and_refresh_tokens(backend: Backend) {
    let app = spawn_app(backend).await;
    let TestUser {
        access, refresh, ..
    } = app.user("ada").await;
    let payload: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(access.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let with = |key: &str, value: Value| {
        let mut claims = payload.clone();
        claims[key] = value;
        claims
    };
    let mut tampered = access.clone();
    tampered.pop();
    tampered.push(if access.ends_with('A') { 'B' } else { 'A' });
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(payload.to_string())
    );
    let cases = [
        ("garbage", "not.a.jwt".to_owned()),
        ("tampered", tampered),
        ("unsigned", unsigned),
        ("refresh token", refresh),
        (
            "expired",
            forge(
                &with("exp", json!(now - 120)),
                Algorithm::HS256,
                JWT_KEY.as_bytes(),
            ),
        ),
        (
            "other key",
            forge(
                &payload,
                Algorithm::HS256,
                b"another-key-another-key-another-key!",
            ),
        ),
        (
            "other algorithm",
            forge(&payload, Algorithm::HS384, JWT_KEY.as_bytes()),
        ),
        (
            "typ refresh",
            forge(
                &with("typ", json!("refresh")),
                Algorithm::HS256,
                JWT_KEY.as_bytes(),
            ),
        ),
        (
            "wrong audience",
            forge(
                &with("aud", json!("elsewhere")),
                Algorithm::HS256,
                JWT_KEY.as_bytes(),
            ),
        ),
        (
            "unknown session",
            forge(
                &with("sid", json!(uuid::Uuid::now_v7())),
                Algorithm::HS256,
                JWT_KEY.as_bytes(),
            ),
        ),
    ];
    for (case, token) in cases {
        let response = app.get("/api/auth/me", &token).await;
        assert_eq!(response.status(), 401, "{case}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer", "{case}");
        assert_eq!(
            response.json::<Value>().await.unwrap()["detail"],
            "Could not validate credentials",
            "{case}"
        );
    }
    let none = app
        .client
        .get(app.url("/api/auth/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), 401);
    assert_eq!(
        none.json::<Value>().await.unwrap()["detail"],
        "Not authenticated"
    );
    let basic = app
        .client
        .get(app.url("/api/auth/me"))
        .basic_auth("ada", Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 401);
    // A correctly forged token (same key) is still tied to a live session.
    let valid = forge(&payload, Algorithm::HS256, JWT_KEY.as_bytes());
    assert_eq!(app.get("/api/auth/me", &valid).await.status(), 200);
}

async fn locking_app(backend: Backend) -> userhub_tests::TestApp {
    let db = TestDatabase::create(backend).await;
    let url = db.url.clone();
    spawn_app_on(db, url, |s| s.accounts.login_max_failures = 3).await
}

async fn repeated_failures_lock_the_account_with_429_until_a_superuser_unlocks_it(
    backend: Backend,
) {
    let app = locking_app(backend).await;
    let TestUser {
        id, access: token, ..
    } = app.user("ada").await;
    for _ in 0..3 {
        assert_eq!(app.login("ada", "Wrong-password-1").await.status(), 401);
    }
    for password in [PASSWORD, "Wrong-password-1"] {
        let locked = app.login("ada", password).await;
        assert_eq!(locked.status(), 429, "even the right password is refused");
        let retry: u64 = locked.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=61).contains(&retry), "{retry}");
        assert!(
            locked.json::<Value>().await.unwrap()["detail"]
                .as_str()
                .unwrap()
                .contains("Too many")
        );
    }
    // The lock is on logins only: existing sessions go on.
    assert_eq!(app.get("/api/auth/me", &token).await.status(), 200);
    let unlock = format!("/api/users/{id}/unlock");
    assert_eq!(
        app.post(&unlock, &json!({}), Some(&token)).await.status(),
        403
    );
    let root = app.root_token().await;
    let unlocked = app.post(&unlock, &json!({}), Some(&root)).await;
    assert_eq!(unlocked.status(), 200);
    assert_eq!(unlocked.json::<Value>().await.unwrap()["username"], "ada");
    assert_eq!(app.login("ada", PASSWORD).await.status(), 200);
    let unknown = format!("/api/users/{}/unlock", uuid::Uuid::now_v7());
    assert_eq!(
        app.post(&unknown, &json!({}), Some(&root)).await.status(),
        404
    );
}

async fn a_successful_login_resets_the_failure_count(backend: Backend) {
    let app = locking_app(backend).await;
    app.register("ada").await;
    for _ in 0..2 {
        assert_eq!(app.login("ada", "Wrong-password-1").await.status(), 401);
    }
    assert_eq!(app.login("ada", PASSWORD).await.status(), 200);
    for _ in 0..2 {
        assert_eq!(app.login("ada", "Wrong-password-1").await.status(), 401);
    }
    assert_eq!(
        app.login("ada", PASSWORD).await.status(),
        200,
        "two plus two failures never reach three"
    );
}

async fn limited_app(backend: Backend, trust_forwarded_for: bool) -> userhub_tests::TestApp {
    let db = TestDatabase::create(backend).await;
    let url = db.url.clone();
    spawn_app_on(db, url, |s| {
        s.accounts.auth_rate_limit_per_minute = 3;
        s.server.trust_forwarded_for = trust_forwarded_for;
    })
    .await
}

async fn the_public_auth_endpoints_share_a_per_ip_budget(backend: Backend) {
    let app = limited_app(backend, false).await;
    app.register("ada").await;
    assert_eq!(app.login("ada", PASSWORD).await.status(), 200);
    assert_eq!(
        app.post("/api/auth/refresh", &json!({"refresh_token": "x"}), None)
            .await
            .status(),
        401
    );
    let limited = app.login("ada", PASSWORD).await;
    assert_eq!(limited.status(), 429);
    let retry: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=21).contains(&retry), "{retry}");
    assert_eq!(
        limited.json::<Value>().await.unwrap()["detail"],
        "Too many requests; slow down"
    );
    // A spoofed X-Forwarded-For does not buy a new budget.
    let spoofed = app
        .client
        .post(app.url("/api/auth/login"))
        .header("x-forwarded-for", "203.0.113.9")
        .json(&json!({"email": "ada", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(spoofed.status(), 429);
    // Other endpoints are not limited.
    assert_eq!(
        app.client
            .get(app.url("/health/live"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

async fn forwarded_addresses_count_only_behind_a_trusted_proxy(backend: Backend) {
    let app = limited_app(backend, true).await;
    app.register("ada").await;
    let login_from = |ip: &'static str| {
        app.client
            .post(app.url("/api/auth/login"))
            .header("x-forwarded-for", format!("10.9.9.9, {ip}"))
            .json(&json!({"email": "ada", "password": PASSWORD}))
            .send()
    };
    for _ in 0..3 {
        assert_eq!(login_from("198.51.100.1").await.unwrap().status(), 200);
    }
    assert_eq!(login_from("198.51.100.1").await.unwrap().status(), 429);
    let other = login_from("198.51.100.2").await.unwrap();
    assert_eq!(
        other.status(),
        200,
        "another client behind the proxy has its own budget"
    );
    let tokens: Value = other.json().await.unwrap();
    let sessions: Vec<Value> = app
        .get(
            "/api/auth/sessions",
            tokens["access_token"].as_str().unwrap(),
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(
        sessions
            .iter()
            .any(|s| s["ip"] == "198.51.100.2" && s["current"] == true)
    );
}

async fn stored_hash(url: &str, username: &str) -> String {
    use sea_orm::{ConnectionTrait, Statement};
    let conn = sea_orm::Database::connect(url).await.unwrap();
    let sql = format!("SELECT password_hash FROM users WHERE username = '{username}'");
    let row = conn
        .query_one_raw(Statement::from_string(conn.get_database_backend(), sql))
        .await
        .unwrap()
        .unwrap();
    let hash: String = row.try_get("", "password_hash").unwrap();
    conn.close().await.unwrap();
    hash
}

async fn a_hash_of_an_older_cost_is_replaced_at_the_next_login(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register("ada").await;
    assert!(stored_hash(&app.db.url, "ada").await.starts_with("$2b$04$"));
    // The operator raises the cost and restarts.
    let address = spawn_server(app.db.url.clone(), |s| s.accounts.bcrypt_cost = 5).await;
    let login = |password: &'static str| {
        app.client
            .post(format!("{address}/api/auth/login"))
            .json(&json!({"email": "ada", "password": password}))
            .send()
    };
    assert_eq!(login("Wrong-password-1").await.unwrap().status(), 401);
    assert!(
        stored_hash(&app.db.url, "ada").await.starts_with("$2b$04$"),
        "a failed login changes nothing"
    );
    assert_eq!(login(PASSWORD).await.unwrap().status(), 200);
    assert!(stored_hash(&app.db.url, "ada").await.starts_with("$2b$05$"));
    assert_eq!(
        login(PASSWORD).await.unwrap().status(),
        200,
        "the new hash verifies"
    );
}

async fn concurrent_refreshes_of_one_token_never_fork_the_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let TestUser { refresh, .. } = app.user("ada").await;
    let body = json!({"refresh_token": refresh});
    let attempts = (0..6).map(|_| app.post("/api/auth/refresh", &body, None));
    let responses = futures_util::future::join_all(attempts).await;
    let winners: Vec<&reqwest::Response> = responses.iter().filter(|r| r.status() == 200).collect();
    assert!(
        winners.len() <= 1,
        "{} refreshes of one token succeeded",
        winners.len()
    );
    assert!(
        responses
            .iter()
            .all(|r| r.status() == 200 || r.status() == 401)
    );
}

async fn within_the_grace_window_racing_refreshes_get_the_same_successor(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    let url = db.url.clone();
    let app = spawn_app_on(db, url, |s| s.tokens.refresh_reuse_grace_seconds = Span(30)).await;
    let TestUser { refresh, .. } = app.user("ada").await;
    let body = json!({"refresh_token": refresh});
    let attempts = (0..4).map(|_| app.post("/api/auth/refresh", &body, None));
    let mut successors = Vec::new();
    for response in futures_util::future::join_all(attempts).await {
        assert_eq!(response.status(), 200);
        let tokens: Value = response.json().await.unwrap();
        successors.push(tokens["refresh_token"].as_str().unwrap().to_owned());
    }
    successors.dedup();
    assert_eq!(successors.len(), 1, "one successor for all: {successors:?}");
    let next = app
        .post(
            "/api/auth/refresh",
            &json!({"refresh_token": successors[0]}),
            None,
        )
        .await;
    assert_eq!(next.status(), 200, "the session lives on");
    let newest: Value = next.json().await.unwrap();
    // Two generations back is outside what a race explains: theft.
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
    let after = app
        .post(
            "/api/auth/refresh",
            &json!({"refresh_token": newest["refresh_token"]}),
            None,
        )
        .await;
    assert_eq!(after.status(), 401, "the session was revoked");
}
