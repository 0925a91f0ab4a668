//! Taking an account back, end to end with a real OpenID provider and a
//! real SMTP server: the owner, with only their inbox, evicts an intruder
//! who knew the password; no new way in opens without the password; and
//! neither the mail cap, a squatter, a lookalike address, a loop of wrong
//! codes nor a race turns the owner away.

use serde_json::{Value, json};
use userhub_tests::oidc::{OidcProvider, PROVIDER, sign_in_at_provider};
use userhub_tests::smtp::{SmtpServer, link_token};
use userhub_tests::totp::{code, seconds_left_in_step};
use userhub_tests::{Backend, PASSWORD, TestApp, assert_one_won};

use super::oidc::{app_tweaked, authorize, callback, identities, link, me, sign_in, token_of};

on_both_backends!(
    following_the_notice_evicts_an_intruder_who_knew_the_password,
    linking_needs_a_fresh_sign_in_or_the_password,
    the_notice_arrives_past_the_cap_and_the_old_address_cannot_be_squatted,
    a_lookalike_provider_address_is_neither_verified_nor_linked,
    wrong_codes_lock_the_second_step_whatever_name_proves_the_password,
    concurrent_turn_offs_with_a_valid_code_one_wins_the_others_409,
    concurrent_first_sign_ins_of_one_identity_reach_one_account,
    a_linked_identitys_notice_undoes_it_from_the_inbox_alone,
    every_second_factor_change_is_told_without_a_link,
);

const REVERT: &str = "/revert-email";

async fn app(
    provider: &OidcProvider,
    smtp: &SmtpServer,
    backend: Backend,
    tweak: impl FnOnce(&mut userhub_server::Settings),
) -> TestApp {
    let port = smtp.port;
    app_tweaked(provider, backend, move |s| {
        s.mail.smtp_host = "127.0.0.1".into();
        s.mail.smtp_port = Some(port);
        s.mail.smtp_tls = userhub_server::SmtpTlsSetting::None;
        s.mail.mail_retry_seconds = userhub_server::Span(1);
        s.server.public_url = "https://app.example.com".into();
        tweak(s);
    })
    .await
}

async fn fresh_step() {
    let left = seconds_left_in_step();
    if left < 4 {
        tokio::time::sleep(std::time::Duration::from_secs(left + 1)).await;
    }
}

/// Turns TOTP on for the caller of `token`; its secret.
async fn enable_totp(app: &TestApp, token: &str) -> String {
    let response = app
        .post(
            "/api/auth/mfa/totp",
            &json!({"current_password": PASSWORD}),
            Some(token),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let secret = body["secret"].as_str().unwrap().to_owned();
    fresh_step().await;
    let response = app
        .post(
            "/api/auth/mfa/totp/confirm",
            &json!({"code": code(&secret, 0)}),
            Some(token),
        )
        .await;
    assert_eq!(response.status(), 200);
    secret
}

async fn login_token(app: &TestApp, name: &str) -> String {
    let response = app.login(name, PASSWORD).await;
    assert_eq!(response.status(), 200);
    token_of(&response.json().await.unwrap())
}

async fn following_the_notice_evicts_an_intruder_who_knew_the_password(backend: Backend) {
    let provider = OidcProvider::start();
    let smtp = SmtpServer::started();
    let app = app(&provider, &smtp, backend, |_| {}).await;
    let ada = app.user("ada").await;

    // The intruder signs in with the password, moves the address, links
    // their own provider account and turns on their own second factor.
    let intruder = login_token(&app, "ada").await;
    let moved = app
        .put(
            &format!("/api/users/{}", ada.id),
            &json!({"email": "mallory@evil.example", "current_password": PASSWORD}),
            &intruder,
        )
        .await;
    assert_eq!(moved.status(), 200);
    let (status, body) = link(&app, &intruder, "mallory").await;
    assert_eq!(status, 200, "{body}");
    enable_totp(&app, &intruder).await;

    // The owner follows the notice.
    let notice = smtp.wait_for_links(REVERT, 1).await;
    assert!(
        userhub_tests::smtp::recipient(&notice[0]) == "ada@example.com",
        "the notice goes to the old address"
    );
    let token = link_token(&notice[0], REVERT);
    let response = app
        .post("/api/auth/revert-email", &json!({"token": token}), None)
        .await;
    assert_eq!(response.status(), 200);

    // Every session ended, the intruder's included.
    assert_eq!(app.get("/api/auth/me", &intruder).await.status(), 401);
    // Their provider account no longer reaches ada's account.
    let (status, tokens) = sign_in(&app, "mallory").await;
    assert_eq!(status, 200, "{tokens}");
    assert_ne!(me(&app, &token_of(&tokens)).await["id"], ada.id.as_str());
    // The owner's password login asks for no second factor of theirs, and
    // no identity of theirs is linked. (The adapter tests show that ways
    // in older than the change stay.)
    let owner = login_token(&app, "ada").await;
    assert_eq!(identities(&app, &owner).await, json!([]));
    let mfa: Value = app.get("/api/auth/mfa", &owner).await.json().await.unwrap();
    assert_eq!(mfa["totp"], false);
    // The trail says what the revert removed.
    let events: Value = app
        .get("/api/auth/events?limit=100", &owner)
        .await
        .json()
        .await
        .unwrap();
    let reverted = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "email.reverted")
        .unwrap_or_else(|| panic!("no email.reverted: {events}"));
    assert_eq!(
        reverted["details"]["removed"],
        json!([format!("identity:{PROVIDER}"), "totp"])
    );
}

async fn linking_needs_a_fresh_sign_in_or_the_password(backend: Backend) {
    let provider = OidcProvider::start();
    let smtp = SmtpServer::started();
    // A window of 0: every session is too old to link without the password.
    let app = app(&provider, &smtp, backend, |s| {
        s.accounts.reauth_window_minutes = userhub_server::Span(0);
    })
    .await;
    let ada = app.user("ada").await;
    let path = format!("/api/auth/oauth/{PROVIDER}/associate/authorize");
    let response = app.get(&path, &ada.access).await;
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"detail": "Sign in again to link an account", "error": "reauthentication_required"})
    );
    // A wrong password is refused and counted as a failed login.
    let wrong = app
        .post(
            &path,
            &json!({"current_password": "Not-the-password-1"}),
            Some(&ada.access),
        )
        .await;
    assert_eq!(wrong.status(), 400);
    let missing = app.post(&path, &json!({}), Some(&ada.access)).await;
    assert_eq!(missing.status(), 422);
    // The password opens the link.
    let response = app
        .post(
            &path,
            &json!({"current_password": PASSWORD}),
            Some(&ada.access),
        )
        .await;
    assert_eq!(response.status(), 200);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned();
    let body: Value = response.json().await.unwrap();
    let redirect =
        sign_in_at_provider(body["authorization_url"].as_str().unwrap(), "ada-work").await;
    let (status, body) = callback(
        &app,
        &format!("/api/auth/oauth/{PROVIDER}/associate/callback"),
        &redirect,
        Some(&cookie),
        Some(&ada.access),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        identities(&app, &ada.access).await[0]["subject"],
        "ada-work"
    );

    // With the default window, a session that just signed in links by GET.
    let fresh = app_tweaked(&provider, backend, |_| {}).await;
    let bob = fresh.user("bob").await;
    authorize(&fresh, &path, Some(&bob.access)).await;
}

async fn the_notice_arrives_past_the_cap_and_the_old_address_cannot_be_squatted(backend: Backend) {
    let provider = OidcProvider::start();
    let smtp = SmtpServer::started();
    let app = app(&provider, &smtp, backend, |s| {
        s.mail.mail_max_per_address_per_hour = 1;
    })
    .await;
    let ada = app.user("ada").await;
    let bob = app.user("bob").await;
    // The verification link spent the address's share; anonymous requests
    // ask for more.
    smtp.wait_for_links("/verify", 1).await;
    for _ in 0..4 {
        let response = app
            .post(
                "/api/auth/forgot-password",
                &json!({"email": "ada@example.com"}),
                None,
            )
            .await;
        assert_eq!(response.status(), 202);
        tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    }
    let moved = app
        .put(
            &format!("/api/users/{}", ada.id),
            &json!({"email": "mallory@evil.example", "current_password": PASSWORD}),
            &ada.access,
        )
        .await;
    assert_eq!(moved.status(), 200);
    let notice = smtp.wait_for_links(REVERT, 1).await;
    let token = link_token(&notice[0], REVERT);

    // While the link lives, nobody takes the old address.
    let squat = app
        .post(
            "/api/auth/register",
            &json!({"email": "ada@example.com", "username": "squatter", "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(squat.status(), 409);
    let taken = app
        .put(
            &format!("/api/users/{}", bob.id),
            &json!({"email": "ada@example.com", "current_password": PASSWORD}),
            &bob.access,
        )
        .await;
    assert_eq!(taken.status(), 409);
    let response = app
        .post("/api/auth/revert-email", &json!({"token": token}), None)
        .await;
    assert_eq!(response.status(), 200);
    let back: Value = response.json().await.unwrap();
    assert_eq!(back["email"], "ada@example.com");
}

async fn a_lookalike_provider_address_is_neither_verified_nor_linked(backend: Backend) {
    let provider = OidcProvider::start();
    let smtp = SmtpServer::started();
    let app = app(&provider, &smtp, backend, |s| {
        s.oauth.oauth_associate_by_email = true;
    })
    .await;
    // Kim proves her address.
    let kim = app.user("kim").await;
    let mail = smtp.wait_for_links("/verify", 1).await;
    let token = link_token(&mail[0], "/verify");
    let verified = app
        .post("/api/auth/verify", &json!({"token": token}), None)
        .await;
    assert_eq!(verified.status(), 200);
    // A provider account whose verified address is "Kim@…" with a Kelvin
    // sign folds to hers: it is not linked.
    let (status, body) = sign_in(&app, "kelvin-kim").await;
    assert_eq!(
        (status, body),
        (400, json!({"detail": "OAUTH_USER_ALREADY_EXISTS"}))
    );
    assert_eq!(identities(&app, &kim.access).await, json!([]));
    // Where no account has the folded address, the new account's address
    // is not taken as verified.
    let (status, tokens) = sign_in(&app, "kelvin-kate").await;
    assert_eq!(status, 200, "{tokens}");
    let kate = me(&app, &token_of(&tokens)).await;
    assert_eq!(kate["email"], "kate@example.com");
    assert_eq!(kate["is_verified"], false);
}

async fn mfa_token(app: &TestApp, name: &str) -> String {
    let response = app.login(name, PASSWORD).await;
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.unwrap();
    body["mfa_token"].as_str().unwrap().to_owned()
}

async fn second_step(app: &TestApp, token: &str, code: &str) -> u16 {
    app.post(
        "/api/auth/login/mfa",
        &json!({"mfa_token": token, "code": code}),
        None,
    )
    .await
    .status()
    .as_u16()
}

async fn wrong_codes_lock_the_second_step_whatever_name_proves_the_password(backend: Backend) {
    let app = userhub_tests::spawn_app_with(backend, |s| s.accounts.login_max_failures = 5).await;
    let ada = app.user("ada").await;
    let secret = enable_totp(&app, &ada.access).await;
    // Three wrong codes, then the password again with the username (which
    // once cleared the count), then two more with the email.
    let token = mfa_token(&app, "ada").await;
    for _ in 0..3 {
        assert_eq!(second_step(&app, &token, &code(&secret, 20)).await, 401);
    }
    let token = mfa_token(&app, "ada").await;
    assert_eq!(second_step(&app, &token, &code(&secret, 20)).await, 401);
    let token = mfa_token(&app, "ada@example.com").await;
    assert_eq!(second_step(&app, &token, &code(&secret, 20)).await, 401);
    // Five wrong codes: locked, even with the right code, and the right
    // password by either name is told so.
    fresh_step().await;
    assert_eq!(second_step(&app, &token, &code(&secret, 0)).await, 429);
    for name in ["ada", "ada@example.com"] {
        assert_eq!(app.login(name, PASSWORD).await.status(), 429, "{name}");
    }
    // Another user is not affected.
    app.user("bob").await;
    assert_eq!(app.login("bob", PASSWORD).await.status(), 200);
}

async fn concurrent_turn_offs_with_a_valid_code_one_wins_the_others_409(backend: Backend) {
    let app = userhub_tests::spawn_app_with(backend, |s| {
        s.accounts.login_max_failures = 3;
    })
    .await;
    let ada = app.user("ada").await;
    let secret = enable_totp(&app, &ada.access).await;
    let code = code(&secret, 1);
    let body = json!({"current_password": PASSWORD, "code": code});
    let tries = (0..6).map(|_| app.post("/api/auth/mfa/totp/disable", &body, Some(&ada.access)));
    let statuses: Vec<u16> = futures_util::future::join_all(tries)
        .await
        .into_iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_one_won(&statuses, 204, 409);
    // None was counted as a wrong code: the trail has no mfa.failed, and
    // the account is not locked.
    let events: Value = app
        .get("/api/auth/events?limit=100", &ada.access)
        .await
        .json()
        .await
        .unwrap();
    assert!(
        !events["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "mfa.failed"),
        "{events}"
    );
    assert_eq!(app.login("ada", PASSWORD).await.status(), 200);
}

async fn concurrent_first_sign_ins_of_one_identity_reach_one_account(backend: Backend) {
    let provider = OidcProvider::start();
    let app = app_tweaked(&provider, backend, |_| {}).await;
    // Each browser goes through the provider first; the callbacks race.
    let mut redirects = Vec::new();
    for _ in 0..4 {
        let started = authorize(&app, &format!("/api/auth/oauth/{PROVIDER}/authorize"), None).await;
        let redirect = sign_in_at_provider(&started.url, "nora").await;
        redirects.push((redirect, started.cookie));
    }
    let path = format!("/api/auth/oauth/{PROVIDER}/callback");
    let answers = futures_util::future::join_all(
        redirects
            .iter()
            .map(|(redirect, cookie)| callback(&app, &path, redirect, Some(cookie), None)),
    )
    .await;
    let mut ids = Vec::new();
    for (status, body) in answers {
        assert_eq!(status, 200, "{body}");
        ids.push(me(&app, &token_of(&body)).await["id"].clone());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
}

async fn a_linked_identitys_notice_undoes_it_from_the_inbox_alone(backend: Backend) {
    let provider = OidcProvider::start();
    let smtp = SmtpServer::started();
    let app = app(&provider, &smtp, backend, |_| {}).await;
    let ada = app.user("ada").await;
    let intruder = login_token(&app, "ada").await;
    let (status, body) = link(&app, &intruder, "mallory").await;
    assert_eq!(status, 200, "{body}");
    let notice = smtp.wait_for_links("/undo", 1).await;
    assert_eq!(
        userhub_tests::smtp::recipient(&notice[0]),
        "ada@example.com"
    );
    let token = link_token(&notice[0], "/undo");
    let response = app
        .post("/api/auth/undo", &json!({"token": token}), None)
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"removed": format!("identity:{PROVIDER}")}));
    // Every session ended; the provider account is no way in any more.
    for token in [&intruder, &ada.access] {
        assert_eq!(app.get("/api/auth/me", token).await.status(), 401);
    }
    let owner = login_token(&app, "ada").await;
    assert_eq!(identities(&app, &owner).await, json!([]));
    let (status, tokens) = sign_in(&app, "mallory").await;
    assert_eq!(status, 200, "{tokens}");
    assert_ne!(me(&app, &token_of(&tokens)).await["id"], ada.id.as_str());
    // The link works once.
    let again = app
        .post("/api/auth/undo", &json!({"token": token}), None)
        .await;
    assert_eq!(again.status(), 400);
    let body: Value = again.json().await.unwrap();
    assert_eq!(body, json!({"detail": "Invalid or expired token"}));
}

async fn every_second_factor_change_is_told_without_a_link(backend: Backend) {
    let provider = OidcProvider::start();
    let smtp = SmtpServer::started();
    let app = app(&provider, &smtp, backend, |_| {}).await;
    let ada = app.user("ada").await;
    let secret = enable_totp(&app, &ada.access).await;
    fresh_step().await;
    let off = app
        .post(
            "/api/auth/mfa/totp/disable",
            &json!({"current_password": PASSWORD, "code": code(&secret, 1)}),
            Some(&ada.access),
        )
        .await;
    assert_eq!(off.status(), 204);
    let mut subjects = Vec::new();
    for _ in 0..100 {
        subjects = smtp
            .messages()
            .iter()
            .map(|m| userhub_tests::smtp::decoded_text(m))
            .filter(|text| text.contains("Two-factor authentication was turned"))
            .collect();
        if subjects.len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(subjects.len(), 2, "one notice per change");
    assert!(subjects.iter().any(|t| t.contains("turned on")));
    assert!(subjects.iter().any(|t| t.contains("turned off")));
    for text in &subjects {
        assert!(!text.contains("token="), "no link: {text}");
    }
}
