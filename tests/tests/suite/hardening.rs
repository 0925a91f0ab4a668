//! An attacker with a valid account and a loop, end to end over HTTP with
//! a real SMTP server: a stolen access token cannot move the account to
//! another address, mailed links die with the changes that should end
//! them, no loop floods an inbox or the audit trail, and no write is
//! refused because an unrelated one landed first.

use std::time::Duration;
use userhub_server::Span;

use serde_json::{Value, json};
use userhub_server::SmtpTlsSetting;
use userhub_tests::smtp::{SmtpServer, decoded_text, link_token, recipient};
use userhub_tests::{
    ALLOWED_ORIGIN, Backend, PASSWORD, ROOT_EMAIL, TestApp, TestDatabase, TestUser, spawn_app_on,
    spawn_app_with,
};

on_both_backends!(
    an_email_change_needs_the_password_and_the_old_address_can_undo_it,
    wrong_passwords_in_email_changes_count_as_failed_logins,
    a_revert_waits_while_another_account_holds_the_old_address,
    a_revert_ends_the_links_of_later_changes_only,
    every_email_and_password_change_tells_the_account,
    with_the_setting_off_an_email_change_needs_no_password,
    reset_links_die_with_the_changes_that_should_end_them,
    no_loop_mails_an_address_more_than_its_hourly_share,
    password_notices_are_never_capped,
    the_account_write_limit_answers_429_and_only_for_the_account_written,
    refresh_is_refused_to_unverified_users_when_verification_is_required,
    concurrent_profile_updates_and_logins_all_land,
    the_client_address_is_the_proxys_entry_and_ipv6_counts_by_its_64,
    preflights_allow_if_match_and_responses_expose_the_etag,
    if_match_lines_form_one_list,
    own_events_hide_who_followed_a_link,
    failed_login_names_are_stored_only_as_keyed_hashes,
);

const NEW_PASSWORD: &str = "Quartz-Lantern-Orbit-47";
const RESET: &str = "/reset-password";
const REVERT: &str = "/revert-email";
const VERIFY: &str = "/verify";

async fn mailing_app(
    backend: Backend,
    smtp: &SmtpServer,
    tweak: impl FnOnce(&mut userhub_server::Settings),
) -> TestApp {
    let db = TestDatabase::create(backend).await;
    let url = db.url.clone();
    let port = smtp.port;
    spawn_app_on(db, url, move |s| {
        s.mail.smtp_host = "127.0.0.1".into();
        s.mail.smtp_port = Some(port);
        s.mail.smtp_tls = SmtpTlsSetting::None;
        s.server.public_url = "https://app.example.com".into();
        s.mail.mail_retry_seconds = Span(1);
        tweak(s);
    })
    .await
}

/// PUTs `body` to user `id`; returns the status and the body.
async fn put_user(app: &TestApp, id: &str, body: Value, token: &str) -> (u16, Value) {
    let response = app.put(&format!("/api/users/{id}"), &body, token).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

async fn post_token(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    let response = app.post(path, &body, None).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

/// The messages to `to` that link to `path`.
fn links_to(smtp: &SmtpServer, path: &str, to: &str) -> Vec<String> {
    smtp.links_to(path)
        .into_iter()
        .filter(|m| recipient(m) == to)
        .collect()
}

/// Waits until a message to `to` links to `path`; returns the newest.
async fn wait_for_link(smtp: &SmtpServer, path: &str, to: &str, count: usize) -> String {
    for _ in 0..400 {
        let found = links_to(smtp, path, to);
        if found.len() >= count {
            return found.last().unwrap().clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no {count} message(s) to {to} link to {path}");
}

/// Waits until a message to `to` has `subject`; returns them all.
async fn wait_for_subject(smtp: &SmtpServer, to: &str, subject: &str, count: usize) -> Vec<String> {
    for _ in 0..400 {
        let found: Vec<String> = smtp
            .messages()
            .into_iter()
            .filter(|m| recipient(m) == to && m.contains(&format!("Subject: {subject}")))
            .collect();
        if found.len() >= count {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no {count} message(s) to {to} with the subject {subject}");
}

async fn an_email_change_needs_the_password_and_the_old_address_can_undo_it(backend: Backend) {
    let smtp = SmtpServer::started();
    let app = mailing_app(backend, &smtp, |_| {}).await;
    let TestUser { id, access, .. } = app.user("ada").await;
    // A stolen access token alone cannot move the account.
    let (status, body) = put_user(&app, &id, json!({"email": "thief@evil.example"}), &access).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["detail"],
        "Changing the email needs the current password"
    );
    let (status, body) = put_user(
        &app,
        &id,
        json!({"email": "thief@evil.example", "current_password": "not it at all"}),
        &access,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["detail"], "Incorrect password");
    assert!(!body.to_string().contains("not it at all"), "never echoed");
    let (status, body) = put_user(
        &app,
        &id,
        json!({"email": "ada@new.example", "current_password": PASSWORD}),
        &access,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["email"], "ada@new.example");
    assert_eq!(body["is_verified"], false);
    assert!(body.get("current_password").is_none());

    // The old address is told, with a link that undoes the change.
    let notice = wait_for_link(&smtp, REVERT, "ada@example.com", 1).await;
    let text = decoded_text(&notice);
    assert!(text.contains("ada@new.example"), "{text}");
    let token = link_token(&notice, REVERT);
    let (status, body) = post_token(&app, "/api/auth/revert-email", json!({"token": token})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["email"], "ada@example.com");
    assert_eq!(body["is_verified"], true);
    // Every session ended; the link works once.
    assert_eq!(app.get("/api/auth/me", &access).await.status(), 401);
    let (status, _) = post_token(&app, "/api/auth/revert-email", json!({"token": token})).await;
    assert_eq!(status, 400);
    let (status, _) = post_token(&app, "/api/auth/revert-email", json!({"token": "made-up"})).await;
    assert_eq!(status, 400);
    assert_eq!(app.login("ada@example.com", PASSWORD).await.status(), 200);
    // On record, for the account and for superusers.
    let root = app.root_token().await;
    let events: Value = app
        .get(
            &format!("/api/audit-events?user_id={id}&type=email.reverted"),
            &root,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(events["items"].as_array().unwrap().len(), 1, "{events}");
}

async fn wrong_passwords_in_email_changes_count_as_failed_logins(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let TestUser { id, access, .. } = app.user("ada").await;
    let mut statuses = Vec::new();
    for i in 0..6 {
        let body =
            json!({"email": "x@evil.example", "current_password": format!("guess number {i}")});
        statuses.push(put_user(&app, &id, body, &access).await.0);
    }
    assert_eq!(statuses, [400, 400, 400, 400, 400, 429]);
    // Locked for this address, even with the right password, and for login.
    let (status, _) = put_user(
        &app,
        &id,
        json!({"email": "x@evil.example", "current_password": PASSWORD}),
        &access,
    )
    .await;
    assert_eq!(status, 429);
    assert_eq!(app.login("ada", PASSWORD).await.status(), 429);
}

async fn a_revert_waits_while_another_account_holds_the_old_address(backend: Backend) {
    let smtp = SmtpServer::started();
    let app = mailing_app(backend, &smtp, |_| {}).await;
    let TestUser { id, access, .. } = app.user("ada").await;
    let (status, _) = put_user(
        &app,
        &id,
        json!({"email": "ada@new.example", "current_password": PASSWORD}),
        &access,
    )
    .await;
    assert_eq!(status, 200);
    let token = link_token(
        &wait_for_link(&smtp, REVERT, "ada@example.com", 1).await,
        REVERT,
    );
    // Nobody takes the freed address while its link lives: it is reserved
    // for the account it was taken from.
    let taken = app
        .post(
            "/api/auth/register",
            &json!({"email": "ada@example.com", "username": "squatter", "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(taken.status(), 409);
    let (status, body) = post_token(&app, "/api/auth/revert-email", json!({"token": token})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["email"], "ada@example.com");
}

/// An intruder moves the account on twice (A→B, then B→C): the owner's
/// link, mailed to A, ends the intruder's link mailed to B, which would
/// take the address back; the intruder's link used first does not end the
/// owner's, older one.
async fn a_revert_ends_the_links_of_later_changes_only(backend: Backend) {
    for owner_first in [true, false] {
        let smtp = SmtpServer::started();
        let app = mailing_app(backend, &smtp, |_| {}).await;
        let TestUser { id, access, .. } = app.user("ada").await;
        for email in ["ada@b.example", "ada@c.example"] {
            let (status, _) = put_user(
                &app,
                &id,
                json!({"email": email, "current_password": PASSWORD}),
                &access,
            )
            .await;
            assert_eq!(status, 200);
        }
        let owners = link_token(
            &wait_for_link(&smtp, REVERT, "ada@example.com", 1).await,
            REVERT,
        );
        let intruders = link_token(
            &wait_for_link(&smtp, REVERT, "ada@b.example", 1).await,
            REVERT,
        );
        let revert = |token: String| {
            let app = &app;
            async move { post_token(app, "/api/auth/revert-email", json!({"token": token})).await }
        };
        if owner_first {
            let (status, body) = revert(owners).await;
            assert_eq!(
                (status, body["email"].as_str()),
                (200, Some("ada@example.com"))
            );
            assert_eq!(
                revert(intruders).await.0,
                400,
                "a later change's link is dead"
            );
        } else {
            let (status, body) = revert(intruders).await;
            assert_eq!(
                (status, body["email"].as_str()),
                (200, Some("ada@b.example"))
            );
            let (status, body) = revert(owners).await;
            assert_eq!(
                (status, body["email"].as_str()),
                (200, Some("ada@example.com"))
            );
        }
    }
}

async fn every_email_and_password_change_tells_the_account(backend: Backend) {
    let smtp = SmtpServer::started();
    let app = mailing_app(backend, &smtp, |_| {}).await;
    let root = app.root_token().await;
    let TestUser { id, .. } = app.user("bob").await;
    // A superuser's change of bob's address: no password, and a notice.
    let (status, _) = put_user(&app, &id, json!({"email": "bob@new.example"}), &root).await;
    assert_eq!(status, 200);
    let notice = wait_for_link(&smtp, REVERT, "bob@example.com", 1).await;
    assert!(decoded_text(&notice).contains("bob@new.example"));
    // A superuser-set password, a change and a reset: one notice each.
    let subject = "Your password was changed";
    let (status, _) = put_user(&app, &id, json!({"password": NEW_PASSWORD}), &root).await;
    assert_eq!(status, 200);
    wait_for_subject(&smtp, "bob@new.example", subject, 1).await;
    let access = app
        .login("bob", NEW_PASSWORD)
        .await
        .json::<Value>()
        .await
        .unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let changed = app
        .post(
            "/api/auth/change-password",
            &json!({"current_password": NEW_PASSWORD, "new_password": PASSWORD}),
            Some(&access),
        )
        .await;
    assert_eq!(changed.status(), 204);
    wait_for_subject(&smtp, "bob@new.example", subject, 2).await;
    app.post(
        "/api/auth/forgot-password",
        &json!({"email": "bob@new.example"}),
        None,
    )
    .await;
    let token = link_token(
        &wait_for_link(&smtp, RESET, "bob@new.example", 1).await,
        RESET,
    );
    let (status, _) = post_token(
        &app,
        "/api/auth/reset-password",
        json!({"token": token, "new_password": NEW_PASSWORD}),
    )
    .await;
    assert_eq!(status, 204);
    let notices = wait_for_subject(&smtp, "bob@new.example", subject, 3).await;
    // No link in a password notice.
    assert!(!decoded_text(&notices[2]).contains("token="));
}

async fn with_the_setting_off_an_email_change_needs_no_password(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.accounts.email_change_requires_password = false
    })
    .await;
    let TestUser { id, access, .. } = app.user("ada").await;
    let (status, body) = put_user(&app, &id, json!({"email": "ada@new.example"}), &access).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["email"], "ada@new.example");
}

/// Asks for a reset link for `email` and returns its token.
async fn reset_link(app: &TestApp, smtp: &SmtpServer, email: &str, nth: usize) -> String {
    let answer = app
        .post("/api/auth/forgot-password", &json!({"email": email}), None)
        .await;
    assert_eq!(answer.status(), 202);
    link_token(&wait_for_link(smtp, RESET, email, nth).await, RESET)
}

async fn reset_with(app: &TestApp, token: &str) -> u16 {
    post_token(
        app,
        "/api/auth/reset-password",
        json!({"token": token, "new_password": NEW_PASSWORD}),
    )
    .await
    .0
}

async fn reset_links_die_with_the_changes_that_should_end_them(backend: Backend) {
    let smtp = SmtpServer::started();
    let app = mailing_app(backend, &smtp, |_| {}).await;
    let root = app.root_token().await;

    // An email change.
    let TestUser { id, access, .. } = app.user("ada").await;
    let token = reset_link(&app, &smtp, "ada@example.com", 1).await;
    let (status, _) = put_user(
        &app,
        &id,
        json!({"email": "ada@new.example", "current_password": PASSWORD}),
        &access,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(reset_with(&app, &token).await, 400, "after an email change");

    // The user's own password change.
    let TestUser { access, .. } = app.user("bob").await;
    let token = reset_link(&app, &smtp, "bob@example.com", 1).await;
    let changed = app
        .post(
            "/api/auth/change-password",
            &json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
            Some(&access),
        )
        .await;
    assert_eq!(changed.status(), 204);
    assert_eq!(
        reset_with(&app, &token).await,
        400,
        "after a password change"
    );

    // A password a superuser set.
    let TestUser { id, .. } = app.user("cleo").await;
    let token = reset_link(&app, &smtp, "cleo@example.com", 1).await;
    let (status, _) = put_user(
        &app,
        &id,
        json!({"password": "Admin-chosen-horse-7"}),
        &root,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        reset_with(&app, &token).await,
        400,
        "after a superuser's password"
    );

    // A deactivation; a restore does not bring the link back.
    let TestUser { id, .. } = app.user("dan").await;
    let token = reset_link(&app, &smtp, "dan@example.com", 1).await;
    assert_eq!(
        app.delete(&format!("/api/users/{id}"), &root)
            .await
            .status(),
        204
    );
    let restored = app
        .post(&format!("/api/users/{id}/restore"), &json!({}), Some(&root))
        .await;
    assert_eq!(restored.status(), 200);
    assert_eq!(reset_with(&app, &token).await, 400, "after a deactivation");

    // A newer link.
    app.user("eve").await;
    let older = reset_link(&app, &smtp, "eve@example.com", 1).await;
    let newer = reset_link(&app, &smtp, "eve@example.com", 2).await;
    assert_eq!(reset_with(&app, &older).await, 400, "superseded");
    assert_eq!(reset_with(&app, &newer).await, 204);
}

async fn no_loop_mails_an_address_more_than_its_hourly_share(backend: Backend) {
    let smtp = SmtpServer::started();
    let app = mailing_app(backend, &smtp, |s| s.mail.mail_max_per_address_per_hour = 3).await;
    let TestUser { id, access, .. } = app.user("ada").await;
    // Registration sent one verification link; a loop of requests, each
    // waited out so that none is merged with another, gets two more.
    wait_for_link(&smtp, VERIFY, "ada@example.com", 1).await;
    let mut answers = Vec::new();
    for i in 0..6 {
        let path = if i % 2 == 0 {
            "/api/auth/forgot-password"
        } else {
            "/api/auth/request-verify-token"
        };
        let response = app
            .post(path, &json!({"email": "ada@example.com"}), None)
            .await;
        answers.push((response.status().as_u16(), response.text().await.unwrap()));
        tokio::time::sleep(Duration::from_millis(1300)).await;
    }
    // The answers say nothing of the cap.
    assert!(answers[..].iter().all(|(s, _)| *s == 202), "{answers:?}");
    assert_eq!(answers[0], answers[2]);
    assert_eq!(answers[0], answers[4]);
    assert_eq!(answers[1], answers[5]);
    let links = links_to(&smtp, RESET, "ada@example.com").len()
        + links_to(&smtp, VERIFY, "ada@example.com").len();
    assert_eq!(links, 3, "the hourly share of links");

    // Flipping one's email to a stranger's address and back: the
    // stranger gets no more than their share of links; each change away
    // from the address is a notice, sent whatever the share.
    for _ in 0..4 {
        for email in ["stranger@example.org", "ada@example.com"] {
            let (status, body) = put_user(
                &app,
                &id,
                json!({"email": email, "current_password": PASSWORD}),
                &access,
            )
            .await;
            assert_eq!(status, 200, "{body}");
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let to_stranger: Vec<String> = smtp
        .messages()
        .into_iter()
        .filter(|m| recipient(m) == "stranger@example.org")
        .collect();
    let links = to_stranger
        .iter()
        .filter(|m| decoded_text(m).contains(VERIFY))
        .count();
    // (A link is sent only while the address is still the account's.)
    assert!(links <= 3, "{links} links");
    let notices = to_stranger.len() - links;
    assert_eq!(notices, 4, "one notice per change");
}

/// A notice of a change that happened is never dropped by the hourly
/// share: four password changes, four notices, however few links the
/// address may get.
async fn password_notices_are_never_capped(backend: Backend) {
    let smtp = SmtpServer::started();
    let app = mailing_app(backend, &smtp, |s| s.mail.mail_max_per_address_per_hour = 1).await;
    let TestUser { access, .. } = app.user("ada").await;
    // The verification link spends the address's share.
    wait_for_link(&smtp, VERIFY, "ada@example.com", 1).await;
    let passwords = [PASSWORD, NEW_PASSWORD];
    for i in 0..4 {
        let changed = app
            .post(
                "/api/auth/change-password",
                &json!({"current_password": passwords[i % 2], "new_password": passwords[(i + 1) % 2]}),
                Some(&access),
            )
            .await;
        assert_eq!(changed.status(), 204);
    }
    let mut to_ada = 0;
    for _ in 0..100 {
        to_ada = smtp
            .messages()
            .into_iter()
            .filter(|m| recipient(m) == "ada@example.com")
            .count();
        if to_ada >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(to_ada, 5, "the verification link and four notices");
}

async fn the_account_write_limit_answers_429_and_only_for_the_account_written(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.accounts.user_write_limit_per_minute = 3).await;
    let TestUser { id, access, .. } = app.user("ada").await;
    let TestUser {
        id: bob,
        access: bob_token,
        ..
    } = app.user("bob").await;
    // Bob's refused writes to ada's account spend nothing of hers.
    for _ in 0..5 {
        let (status, _) =
            put_user(&app, &id, json!({"full_name": "Bob was here"}), &bob_token).await;
        assert_eq!(status, 403);
    }
    let mut statuses = Vec::new();
    for i in 0..4 {
        statuses.push(
            put_user(&app, &id, json!({"full_name": format!("Ada {i}")}), &access)
                .await
                .0,
        );
    }
    assert_eq!(statuses, [200, 200, 200, 429]);
    let refused = app
        .put(
            &format!("/api/users/{id}"),
            &json!({"full_name": "Ada"}),
            &access,
        )
        .await;
    let wait: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=61).contains(&wait), "{wait}");
    // Another account has its own budget.
    let (status, _) = put_user(&app, &bob, json!({"full_name": "Bob"}), &bob_token).await;
    assert_eq!(status, 200);
}

async fn refresh_is_refused_to_unverified_users_when_verification_is_required(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.accounts.require_verified_email = true).await;
    // The first superuser is verified; a login, then an email change.
    let tokens: Value = app
        .login(ROOT_EMAIL, userhub_tests::ROOT_PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    let (access, refresh) = (
        tokens["access_token"].as_str().unwrap(),
        tokens["refresh_token"].as_str().unwrap(),
    );
    let me: Value = app.get("/api/auth/me", access).await.json().await.unwrap();
    let id = me["id"].as_str().unwrap();
    let (status, _) = put_user(
        &app,
        id,
        json!({"email": "root@new.example", "current_password": userhub_tests::ROOT_PASSWORD}),
        access,
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) =
        post_token(&app, "/api/auth/refresh", json!({"refresh_token": refresh})).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["detail"], "Email not verified");
    assert_eq!(body["error"], "invalid_grant");
}

async fn concurrent_profile_updates_and_logins_all_land(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.accounts.password_hash_budget_per_minute = 0).await;
    let TestUser { id, access, .. } = app.user("ada").await;
    let sent: Vec<String> = (0..64).map(|i| format!("Ada {i}")).collect();
    let mut tasks = Vec::new();
    for thread in 0..16 {
        let (client, url, access, names) = (
            app.client.clone(),
            app.url(&format!("/api/users/{id}")),
            access.clone(),
            sent[thread * 4..thread * 4 + 4].to_vec(),
        );
        tasks.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for name in names {
                let status = client
                    .patch(&url)
                    .bearer_auth(&access)
                    .json(&json!({"full_name": name}))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16();
                statuses.push(status);
            }
            statuses
        }));
    }
    let logins: Vec<_> = (0..4)
        .map(|_| {
            let (client, url) = (app.client.clone(), app.url("/api/auth/login"));
            tokio::spawn(async move {
                client
                    .post(url)
                    .json(&json!({"email": "ada", "password": PASSWORD}))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.extend(task.await.unwrap());
    }
    for login in logins {
        statuses.push(login.await.unwrap());
    }
    assert!(
        statuses.iter().all(|s| *s == 200),
        "{}",
        userhub_tests::tally(&statuses)
    );
    let me: Value = app.get("/api/auth/me", &access).await.json().await.unwrap();
    let name = me["full_name"].as_str().unwrap().to_owned();
    assert!(sent.contains(&name), "{name}");
}

/// Logs in as `login` with `X-Forwarded-For` lines `lines`.
async fn login_through(app: &TestApp, lines: &[&str], login: &str, password: &str) -> u16 {
    let mut request = app.client.post(app.url("/api/auth/login"));
    for line in lines {
        request = request.header("x-forwarded-for", *line);
    }
    request
        .json(&json!({"email": login, "password": password}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn the_client_address_is_the_proxys_entry_and_ipv6_counts_by_its_64(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.server.trust_forwarded_for = true).await;
    app.register("ada").await;
    app.register("bob").await;
    // Five failures from five addresses of one /64: that /64 is locked,
    // another is not.
    for i in 1..=5 {
        let ip = format!("2001:db8:1:2::{i}");
        assert_eq!(login_through(&app, &[&ip], "ada", "wrong").await, 401);
    }
    assert_eq!(
        login_through(&app, &["2001:db8:1:2:ffff::9"], "ada", PASSWORD).await,
        429
    );
    assert_eq!(
        login_through(&app, &["2001:db8:1:3::1"], "ada", PASSWORD).await,
        200
    );
    // An IPv4-mapped address is that IPv4 address.
    for _ in 0..5 {
        assert_eq!(
            login_through(&app, &["::ffff:192.0.2.7"], "bob", "wrong").await,
            401
        );
    }
    assert_eq!(
        login_through(&app, &["192.0.2.7"], "bob", PASSWORD).await,
        429
    );
    // Lines and entries a client wrote before the proxy's are ignored.
    for i in 0..5 {
        let forged = format!("203.0.113.{i}");
        let lines = [forged.as_str(), "198.51.100.1, 10.9.8.7"];
        assert_eq!(login_through(&app, &lines, "cleo", "wrong").await, 401);
    }
    assert_eq!(
        login_through(&app, &["10.9.8.7"], "cleo", "wrong").await,
        429
    );
    let root = app.root_token().await;
    let events: Value = app
        .get("/api/audit-events?type=login.failed&limit=100", &root)
        .await
        .json()
        .await
        .unwrap();
    let ips: std::collections::BTreeSet<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["ip"].as_str())
        .collect();
    assert!(
        ips.contains("10.9.8.7") && ips.contains("192.0.2.7"),
        "{ips:?}"
    );
    assert!(
        !ips.iter()
            .any(|ip| ip.starts_with("203.0.113") || ip.starts_with("198.51")),
        "{ips:?}"
    );
}

async fn preflights_allow_if_match_and_responses_expose_the_etag(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let TestUser { id, access, .. } = app.user("ada").await;
    let preflight = app
        .client
        .request(
            reqwest::Method::OPTIONS,
            app.url(&format!("/api/users/{id}")),
        )
        .header("origin", ALLOWED_ORIGIN)
        .header("access-control-request-method", "PATCH")
        .header(
            "access-control-request-headers",
            "if-match, authorization, content-type, x-request-id",
        )
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let allowed = preflight.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    for header in ["if-match", "authorization", "content-type", "x-request-id"] {
        assert!(allowed.contains(header), "{allowed}");
    }
    let read = app
        .client
        .get(app.url("/api/auth/me"))
        .header("origin", ALLOWED_ORIGIN)
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert!(read.headers().contains_key("etag"));
    // A front end on a listed origin may send credentials (the provider
    // sign-in's state cookie); another origin gets no CORS headers at all.
    assert_eq!(read.headers()["access-control-allow-credentials"], "true");
    assert_eq!(
        read.headers()["access-control-allow-origin"],
        ALLOWED_ORIGIN
    );
    let stranger = app
        .client
        .get(app.url("/api/auth/me"))
        .header("origin", "http://evil.example")
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    // (actix-cors may still say `allow-credentials`; without an allowed
    // origin the browser reads nothing either way.)
    assert!(
        !stranger
            .headers()
            .contains_key("access-control-allow-origin")
    );
    let exposed = read.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    for header in ["etag", "location", "retry-after", "x-request-id"] {
        assert!(exposed.contains(header), "{exposed}");
    }
}

async fn if_match_lines_form_one_list(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let TestUser { id, access, .. } = app.user("ada").await;
    let url = app.url(&format!("/api/users/{id}"));
    let etag = app
        .get(&format!("/api/users/{id}"), &access)
        .await
        .headers()["etag"]
        .to_str()
        .unwrap()
        .to_owned();
    let send = |lines: Vec<String>| {
        let mut request = app.client.patch(&url).bearer_auth(&access);
        for line in lines {
            request = request.header("if-match", line);
        }
        async move {
            request
                .json(&json!({"full_name": "Ada"}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(send(vec!["\"999\"".into()]).await, 412);
    // The current tag on a second line matches.
    assert_eq!(send(vec!["\"999\"".into(), etag.clone()]).await, 200);
    // Now stale: every line is checked, none matches.
    assert_eq!(send(vec![etag.clone(), "\"998\"".into()]).await, 412);
}

async fn own_events_hide_who_followed_a_link(backend: Backend) {
    let smtp = SmtpServer::started();
    let app = mailing_app(backend, &smtp, |_| {}).await;
    let TestUser { access, .. } = app.user("ada").await;
    let token = link_token(
        &wait_for_link(&smtp, VERIFY, "ada@example.com", 1).await,
        VERIFY,
    );
    let verified = app
        .client
        .post(app.url("/api/auth/verify"))
        .header("user-agent", "someone-elses-mail-scanner")
        .json(&json!({"token": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(verified.status(), 200);
    let own: Value = app
        .get("/api/auth/events", &access)
        .await
        .json()
        .await
        .unwrap();
    let event = own["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "email.verified")
        .expect("the verification is listed");
    assert_eq!(event["ip"], Value::Null, "{event}");
    assert_eq!(event["user_agent"], Value::Null, "{event}");
    // A superuser sees who it was.
    let root = app.root_token().await;
    let all: Value = app
        .get("/api/audit-events?type=email.verified", &root)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(all["items"][0]["user_agent"], "someone-elses-mail-scanner");
}

async fn failed_login_names_are_stored_only_as_keyed_hashes(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    app.register("ada").await;
    // A password typed into the name field.
    let typed = "My-Secret-Passphrase-77";
    assert_eq!(app.login(typed, "whatever").await.status(), 401);
    assert_eq!(app.login("ada", "wrong").await.status(), 401);
    let conn = sea_orm::Database::connect(&app.db.url).await.unwrap();
    for table in ["login_failures", "login_name_failures"] {
        let rows = sea_orm::ConnectionTrait::query_all_raw(
            &conn,
            sea_orm::Statement::from_string(
                sea_orm::ConnectionTrait::get_database_backend(&conn),
                format!("SELECT login FROM {table}"),
            ),
        )
        .await
        .unwrap();
        assert!(!rows.is_empty(), "{table} counts the failures");
        for row in rows {
            let login: String = row.try_get("", "login").unwrap();
            assert_ne!(login, typed.to_lowercase(), "{table}");
            assert_ne!(login, "ada", "{table}");
            assert_eq!(login.len(), 64, "a keyed hash, in hex: {login}");
        }
    }
    let _ = conn.close().await;
}
