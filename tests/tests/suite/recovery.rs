//! Password reset end to end, with a real SMTP server (aiosmtpd): the mail
//! arrives, its link resets the password once, sessions end, locks lift.

use serde_json::{Value, json};
use userhub_server::SmtpTlsSetting;
use userhub_server::Span;
use userhub_tests::smtp::{SmtpServer, link_token, recipient};
use userhub_tests::{Backend, PASSWORD, TestApp, TestDatabase, TestUser, spawn_app_on};

on_both_backends!(
    a_forgotten_password_is_reset_through_the_mailed_link,
    every_address_gets_the_same_answer_and_only_accounts_get_mail,
    a_newer_link_supersedes_the_older_one,
    a_weak_or_malformed_new_password_is_422_and_keeps_the_token,
    mail_waits_for_an_smtp_server_that_is_down_at_first,
    a_registered_address_is_verified_through_its_mailed_link,
    a_changed_address_must_be_verified_again_and_old_links_do_not_verify_it,
    with_verification_required_unverified_users_cannot_log_in,
);

const NEW_PASSWORD: &str = "Quartz-Lantern-Orbit-47";
const RESET: &str = "/reset-password";
const VERIFY: &str = "/verify";

async fn app_mailing_to(backend: Backend, smtp: &SmtpServer) -> TestApp {
    let db = TestDatabase::create(backend).await;
    let url = db.url.clone();
    let port = smtp.port;
    spawn_app_on(db, url, move |s| {
        s.mail.smtp_host = "127.0.0.1".into();
        s.mail.smtp_port = Some(port);
        s.mail.smtp_tls = SmtpTlsSetting::None;
        s.server.public_url = "https://app.example.com".into();
        s.mail.mail_retry_seconds = Span(1);
    })
    .await
}

async fn forgot(app: &TestApp, email: &str) -> (u16, Value) {
    let response = app
        .post("/api/auth/forgot-password", &json!({"email": email}), None)
        .await;
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn reset(app: &TestApp, token: &str, new_password: &str) -> u16 {
    app.post(
        "/api/auth/reset-password",
        &json!({"token": token, "new_password": new_password}),
        None,
    )
    .await
    .status()
    .as_u16()
}

async fn a_forgotten_password_is_reset_through_the_mailed_link(backend: Backend) {
    let smtp = SmtpServer::started();
    let app = app_mailing_to(backend, &smtp).await;
    let TestUser {
        id: ada,
        access,
        refresh,
    } = app.user("ada").await;
    // Locked out by failed logins first: the reset lifts the lock.
    for _ in 0..7 {
        app.login("ada", "not the password").await;
    }
    assert_eq!(app.login("ada", PASSWORD).await.status(), 429);

    let asked = app
        .client
        .post(app.url("/api/auth/forgot-password"))
        .header("X-Request-Id", "forgot-1")
        .json(&json!({"email": "Ada@Example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(asked.status(), 202);
    let mail = smtp.wait_for_links(RESET, 1).await.remove(0);
    assert_eq!(recipient(&mail), "ada@example.com");
    assert!(mail.contains("Subject: Reset your password"), "{mail}");
    assert!(
        mail.contains("https://app.example.com/reset-password?token="),
        "{mail}"
    );
    let token = link_token(&mail, RESET);
    assert!(token.len() >= 43, "{token}");

    assert_eq!(reset(&app, &token, NEW_PASSWORD).await, 204);
    // Every session ended, at once.
    assert_eq!(app.get("/api/auth/me", &access).await.status(), 401);
    let refreshed = app
        .post(
            "/api/auth/refresh",
            &json!({"refresh_token": refresh}),
            None,
        )
        .await;
    assert_eq!(refreshed.status(), 401);
    // The old password is gone, the new one works, the lock is lifted.
    assert_eq!(app.login("ada", PASSWORD).await.status(), 401);
    assert_eq!(app.login("ada", NEW_PASSWORD).await.status(), 200);
    // The link works once.
    assert_eq!(reset(&app, &token, "Another-Quartz-Lantern-48").await, 400);
    assert_eq!(reset(&app, "not-a-token", NEW_PASSWORD).await, 400);

    // On record: the lock, the request (with the asking request's id,
    // written when the link was issued) and the reset, by ada herself.
    let root = app.root_token().await;
    let event = |kind: &'static str| {
        let (app, root, ada) = (&app, &root, &ada);
        async move {
            let page: Value = app
                .get(
                    &format!("/api/audit-events?user_id={ada}&type={kind}"),
                    root,
                )
                .await
                .json()
                .await
                .unwrap();
            assert_eq!(page["items"].as_array().unwrap().len(), 1, "{kind}: {page}");
            page["items"][0].clone()
        }
    };
    assert!(event("login.locked").await["details"]["lock_seconds"].is_i64());
    let requested = event("password.reset_requested").await;
    assert_eq!(requested["request_id"], "forgot-1");
    assert_eq!(requested["actor_id"], Value::Null);
    let done = event("password.reset").await;
    assert_eq!(done["actor_id"], ada.as_str());
    assert!(!done.to_string().contains(&token), "no token in an event");
}

async fn every_address_gets_the_same_answer_and_only_accounts_get_mail(backend: Backend) {
    let smtp = SmtpServer::started();
    let app = app_mailing_to(backend, &smtp).await;
    app.register("ada").await;
    app.register("bob").await;
    let root = app.root_token().await;
    let bob = app
        .get("/api/users?search=bob", &root)
        .await
        .json::<Value>()
        .await
        .unwrap();
    let bob_id = bob["items"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        app.delete(&format!("/api/users/{bob_id}"), &root)
            .await
            .status(),
        204
    );

    let unknown = forgot(&app, "nobody@example.com").await;
    let deactivated = forgot(&app, "bob@example.com").await;
    // Repeated while the first is pending: one mail, not two.
    let known = forgot(&app, "ada@example.com").await;
    let again = forgot(&app, "ada@example.com").await;
    assert_eq!(unknown, known);
    assert_eq!(deactivated, known);
    assert_eq!(again, known);
    assert_eq!(known.0, 202);

    let mails = smtp.wait_for_links(RESET, 1).await;
    // The jobs run in order: by the time Ada's mail is here, the others
    // were handled, and sent nothing.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let mails_after = smtp.links_to(RESET);
    assert_eq!(mails_after.len(), 1, "{mails_after:?}");
    assert_eq!(recipient(&mails[0]), "ada@example.com");
}

async fn a_newer_link_supersedes_the_older_one(backend: Backend) {
    let smtp = SmtpServer::started();
    let app = app_mailing_to(backend, &smtp).await;
    app.register("ada").await;
    forgot(&app, "ada@example.com").await;
    let first = link_token(&smtp.wait_for_links(RESET, 1).await[0], RESET);
    forgot(&app, "ada@example.com").await;
    let second = link_token(&smtp.wait_for_links(RESET, 2).await[1], RESET);
    assert_ne!(first, second);
    assert_eq!(reset(&app, &first, NEW_PASSWORD).await, 400);
    assert_eq!(reset(&app, &second, NEW_PASSWORD).await, 204);
}

async fn a_weak_or_malformed_new_password_is_422_and_keeps_the_token(backend: Backend) {
    let smtp = SmtpServer::started();
    let app = app_mailing_to(backend, &smtp).await;
    app.register("adalovelace").await;
    forgot(&app, "adalovelace@example.com").await;
    let token = link_token(&smtp.wait_for_links(RESET, 1).await[0], RESET);
    for weak in ["short", "adalovelace-2026", "password123"] {
        let response = app
            .post(
                "/api/auth/reset-password",
                &json!({"token": token, "new_password": weak}),
                None,
            )
            .await;
        assert_eq!(response.status(), 422, "{weak}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["detail"][0]["loc"], json!(["body", "new_password"]));
    }
    let missing = app
        .post("/api/auth/reset-password", &json!({"token": token}), None)
        .await;
    assert_eq!(missing.status(), 422);
    let malformed = app
        .post(
            "/api/auth/forgot-password",
            &json!({"email": "not-an-address"}),
            None,
        )
        .await;
    assert_eq!(malformed.status(), 422);
    // None of these spent the token.
    assert_eq!(reset(&app, &token, NEW_PASSWORD).await, 204);
}

async fn mail_waits_for_an_smtp_server_that_is_down_at_first(backend: Backend) {
    let mut smtp = SmtpServer::reserve();
    let app = app_mailing_to(backend, &smtp).await;
    app.register("ada").await;
    let (status, _) = forgot(&app, "ada@example.com").await;
    assert_eq!(status, 202, "the answer does not wait for the mail server");
    // Two attempts fail (connection refused) before the server is up.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert!(smtp.messages().is_empty());
    smtp.start();
    let mail = smtp.wait_for_links(RESET, 1).await.remove(0);
    let token = link_token(&mail, RESET);
    assert_eq!(reset(&app, &token, NEW_PASSWORD).await, 204);
}

async fn verify(app: &TestApp, token: &str) -> (u16, Value) {
    let response = app
        .post("/api/auth/verify", &json!({"token": token}), None)
        .await;
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn a_registered_address_is_verified_through_its_mailed_link(backend: Backend) {
    let smtp = SmtpServer::started();
    let app = app_mailing_to(backend, &smtp).await;
    let TestUser { access, .. } = app.user("ada").await;
    let me: Value = app.get("/api/auth/me", &access).await.json().await.unwrap();
    assert_eq!(me["is_verified"], false);
    let mail = smtp.wait_for_links(VERIFY, 1).await.remove(0);
    assert_eq!(recipient(&mail), "ada@example.com");
    assert!(
        mail.contains("Subject: Verify your email address"),
        "{mail}"
    );
    let token = link_token(&mail, VERIFY);

    let (status, body) = verify(&app, &token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["is_verified"], true);
    assert_eq!(body["email"], "ada@example.com");
    let me: Value = app.get("/api/auth/me", &access).await.json().await.unwrap();
    assert_eq!(me["is_verified"], true);
    let own: Value = app
        .get("/api/auth/events", &access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(own["items"][0]["type"], "email.verified", "{own}");
    assert_eq!(own["items"][0]["actor_id"], me["id"]);
    // Once only; a verified address gets no further link.
    assert_eq!(verify(&app, &token).await.0, 400);
    let answer = app
        .post(
            "/api/auth/request-verify-token",
            &json!({"email": "ada@example.com"}),
            None,
        )
        .await;
    assert_eq!(answer.status(), 202);
    let unknown = app
        .post(
            "/api/auth/request-verify-token",
            &json!({"email": "nobody@example.com"}),
            None,
        )
        .await;
    assert_eq!(unknown.status(), 202);
    // Others never see whether an address is verified.
    let TestUser {
        access: bob_token, ..
    } = app.user("bob").await;
    let ada_id = me["id"].as_str().unwrap();
    let seen: Value = app
        .get(&format!("/api/users/{ada_id}"), &bob_token)
        .await
        .json()
        .await
        .unwrap();
    assert!(seen.get("is_verified").is_none(), "{seen}");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let to_ada: Vec<String> = smtp
        .links_to(VERIFY)
        .into_iter()
        .filter(|m| recipient(m) == "ada@example.com")
        .collect();
    assert_eq!(to_ada.len(), 1, "no second link for a verified address");
}

async fn a_changed_address_must_be_verified_again_and_old_links_do_not_verify_it(backend: Backend) {
    let smtp = SmtpServer::started();
    let app = app_mailing_to(backend, &smtp).await;
    let TestUser { id, access, .. } = app.user("ada").await;
    let old_link = link_token(&smtp.wait_for_links(VERIFY, 1).await[0], VERIFY);
    let changed = app
        .put(
            &format!("/api/users/{id}"),
            &json!({"email": "ada@new.example", "current_password": PASSWORD}),
            &access,
        )
        .await;
    assert_eq!(changed.status(), 200);
    let body: Value = changed.json().await.unwrap();
    assert_eq!(body["is_verified"], false);
    // The link mailed to the old address does not verify the new one.
    assert_eq!(verify(&app, &old_link).await.0, 400);
    let mails = smtp.wait_for_links(VERIFY, 2).await;
    let to_new = mails
        .iter()
        .find(|m| recipient(m) == "ada@new.example")
        .expect("a link to the new address");
    let token = link_token(to_new, VERIFY);
    assert_eq!(verify(&app, &token).await.0, 200);
    let me: Value = app.get("/api/auth/me", &access).await.json().await.unwrap();
    assert_eq!(me["is_verified"], true);
    assert_eq!(me["email"], "ada@new.example");
    // A verified user who changes address is unverified again.
    let again = app
        .put(
            &format!("/api/users/{id}"),
            &json!({"email": "ada@third.example", "current_password": PASSWORD}),
            &access,
        )
        .await;
    let body: Value = again.json().await.unwrap();
    assert_eq!(body["is_verified"], false);
}

async fn with_verification_required_unverified_users_cannot_log_in(backend: Backend) {
    let smtp = SmtpServer::started();
    let db = TestDatabase::create(backend).await;
    let url = db.url.clone();
    let port = smtp.port;
    let app = spawn_app_on(db, url, move |s| {
        s.mail.smtp_host = "127.0.0.1".into();
        s.mail.smtp_port = Some(port);
        s.mail.smtp_tls = SmtpTlsSetting::None;
        s.accounts.require_verified_email = true;
    })
    .await;
    app.register("ada").await;
    let refused = app.login("ada", PASSWORD).await;
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["detail"], "Email not verified");
    assert_eq!(body["error"], "invalid_grant");
    // A wrong password is still just a wrong password.
    assert_eq!(app.login("ada", "not the password").await.status(), 401);
    let token = link_token(&smtp.wait_for_links(VERIFY, 1).await[0], VERIFY);
    assert_eq!(verify(&app, &token).await.0, 200);
    assert_eq!(app.login("ada", PASSWORD).await.status(), 200);
    // The first superuser was configured, not registered: verified already.
    assert_eq!(
        app.login(userhub_tests::ROOT_EMAIL, userhub_tests::ROOT_PASSWORD)
            .await
            .status(),
        200
    );
}
