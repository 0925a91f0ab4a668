//! Webhooks over HTTP, delivered to a real receiver that verifies every
//! delivery with the `standardwebhooks` library: filters, retries after
//! failures, secret rotation, the test event, retries by hand, who may
//! manage endpoints, and the refusals of non-public addresses.

use std::time::Duration;

use serde_json::{Value, json};
use userhub_server::Span;
use userhub_tests::webhooks::Receiver;
use userhub_tests::{Backend, PASSWORD, TestApp, spawn_app_with};

on_both_backends!(
    a_subscribed_event_arrives_signed_with_its_subject_and_others_do_not,
    failed_deliveries_are_retried_until_the_receiver_answers,
    a_rotated_secret_signs_beside_the_new_one,
    a_delivery_is_retried_by_hand_and_a_delivered_one_is_409,
    a_redirect_is_not_followed_and_a_slow_receiver_times_out,
    only_superusers_manage_webhooks_with_the_contracts_errors,
    endpoints_are_changed_turned_off_and_deleted,
    non_public_addresses_are_refused,
    the_superusers_inbox_deletes_a_webhook_it_did_not_add,
    the_superusers_inbox_deletes_a_webhook_pointed_elsewhere,
);

const WAIT: Duration = Duration::from_secs(20);

/// A server that may deliver to the local receiver and retries after
/// `retry_base` seconds.
async fn app(backend: Backend, retry_base: u64) -> TestApp {
    spawn_app_with(backend, |s| {
        s.webhooks.webhook_allow_private_networks = true;
        s.webhooks.webhook_retry_base_seconds = Span(retry_base);
    })
    .await
}

/// Subscribes `receiver` to `events`; the endpoint's JSON (with its secret).
async fn subscribe(app: &TestApp, root: &str, receiver: &Receiver, events: &[&str]) -> Value {
    let response = app
        .post(
            "/api/webhooks",
            &json!({"url": receiver.url(), "events": events, "description": "test"}),
            Some(root),
        )
        .await;
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let hook: Value = response.json().await.unwrap();
    receiver
        .verify_with(&[hook["secret"].as_str().unwrap()])
        .await;
    hook
}

fn path(hook: &Value, rest: &str) -> String {
    format!("/api/webhooks/{}{rest}", hook["id"].as_str().unwrap())
}

/// The deliveries once the newest has left `pending`: a receiver has a
/// delivery before the server has recorded its answer.
async fn settled(app: &TestApp, root: &str, hook: &Value) -> Vec<Value> {
    for _ in 0..100 {
        let listed = deliveries(app, root, hook).await;
        if listed.first().is_some_and(|d| d["status"] != "pending") {
            return listed;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    deliveries(app, root, hook).await
}

async fn deliveries(app: &TestApp, root: &str, hook: &Value) -> Vec<Value> {
    let page: Value = app
        .get(&path(hook, "/deliveries"), root)
        .await
        .json()
        .await
        .unwrap();
    page["items"].as_array().unwrap().clone()
}

/// The attempts of `delivery` (as listed).
async fn attempts(app: &TestApp, root: &str, hook: &Value, delivery: &Value) -> Value {
    let id = delivery["id"].as_str().unwrap();
    app.get(&path(hook, &format!("/deliveries/{id}/attempts")), root)
        .await
        .json()
        .await
        .unwrap()
}

async fn a_subscribed_event_arrives_signed_with_its_subject_and_others_do_not(backend: Backend) {
    let app = app(backend, 1).await;
    let root = app.root_token().await;
    let receiver = Receiver::start();
    let hook = subscribe(&app, &root, &receiver, &["user.registered"]).await;
    assert_eq!(hook["events"], json!(["user.registered"]));
    assert_eq!(hook["enabled"], true);
    assert!(hook["secret"].as_str().unwrap().starts_with("whsec_"));
    let ada = app.user("ada").await;
    let got = receiver.wait_for(WAIT, |got| !got.is_empty()).await;
    assert_eq!(got.len(), 1, "{got:?}");
    let delivery = &got[0];
    assert_eq!(
        delivery["verified"],
        json!([true]),
        "standardwebhooks verified it"
    );
    assert_eq!(delivery["type"], "user.registered");
    let body = &delivery["body"];
    assert_eq!(
        body["data"]["event"]["id"], delivery["id"],
        "webhook-id is the event's id"
    );
    assert_eq!(body["data"]["event"]["subject_id"], ada.id.as_str());
    assert!(body["data"]["event"].get("ip").is_none());
    assert!(body["data"]["event"].get("user_agent").is_none());
    assert_eq!(body["data"]["user"]["email"], "ada@example.com");
    assert_eq!(body["data"]["user"]["username"], "ada");
    // The login that followed is not subscribed: nothing more arrives.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.received().await.len(), 1);
    let listed = settled(&app, &root, &hook).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["status"], "delivered");
    assert_eq!(listed[0]["attempts"], 1);
    assert_eq!(listed[0]["last_status"], 204);
    assert_eq!(listed[0]["event_id"], delivery["id"]);
    let attempts = attempts(&app, &root, &hook, &listed[0]).await;
    assert_eq!(attempts[0]["status"], 204);
    // The audit trail says who subscribed it.
    let events: Value = app
        .get("/api/audit-events?type=webhook.created", &root)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(events["items"][0]["details"]["webhook_id"], hook["id"]);
}

async fn failed_deliveries_are_retried_until_the_receiver_answers(backend: Backend) {
    let app = app(backend, 1).await;
    let root = app.root_token().await;
    let receiver = Receiver::start();
    let hook = subscribe(&app, &root, &receiver, &["user.deleted"]).await;
    receiver.control(json!({"fail": 2, "status": 503})).await;
    // The test event goes out whatever the endpoint's filter.
    let queued = app
        .post(&path(&hook, "/test"), &json!({}), Some(&root))
        .await;
    assert_eq!(queued.status(), 202);
    let got = receiver
        .wait_for(WAIT, |got| got.iter().any(|d| d["status"] == 204))
        .await;
    let statuses: Vec<&Value> = got.iter().map(|d| &d["status"]).collect();
    assert_eq!(statuses, [&json!(503), &json!(503), &json!(204)], "{got:?}");
    assert!(
        got.iter().all(|d| d["id"] == got[0]["id"]),
        "one webhook-id across retries"
    );
    assert!(got.iter().all(|d| d["verified"] == json!([true])));
    assert_eq!(got[0]["type"], "webhook.test");
    let listed = settled(&app, &root, &hook).await;
    assert_eq!(listed[0]["status"], "delivered");
    assert_eq!(listed[0]["attempts"], 3);
    let attempts = attempts(&app, &root, &hook, &listed[0]).await;
    let answered: Vec<&Value> = attempts
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["status"])
        .collect();
    assert_eq!(answered, [&json!(503), &json!(503), &json!(204)]);
    assert_eq!(attempts[0]["error"], "HTTP 503");
    let metrics = reqwest::get(app.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("userhub_webhook_deliveries_total{outcome=\"retried\"}"),
        "{metrics}"
    );
}

async fn a_rotated_secret_signs_beside_the_new_one(backend: Backend) {
    let app = app(backend, 1).await;
    let root = app.root_token().await;
    let receiver = Receiver::start();
    let hook = subscribe(&app, &root, &receiver, &["user.registered"]).await;
    let old = hook["secret"].as_str().unwrap().to_owned();
    let rotated = app
        .post(&path(&hook, "/rotate-secret"), &json!({}), Some(&root))
        .await;
    assert_eq!(rotated.status(), 200);
    let new = rotated.json::<Value>().await.unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new, old);
    receiver.verify_with(&[&old, &new]).await;
    app.register("bea").await;
    let got = receiver.wait_for(WAIT, |got| !got.is_empty()).await;
    assert_eq!(
        got[0]["verified"],
        json!([true, true]),
        "a receiver with either secret verifies it"
    );
}

async fn a_delivery_is_retried_by_hand_and_a_delivered_one_is_409(backend: Backend) {
    // Retries an hour apart: only a retry by hand sends it again soon.
    let app = app(backend, 3600).await;
    let root = app.root_token().await;
    let receiver = Receiver::start();
    let hook = subscribe(&app, &root, &receiver, &["user.registered"]).await;
    receiver.control(json!({"fail": 1, "status": 500})).await;
    app.register("cai").await;
    receiver.wait_for(WAIT, |got| got.len() == 1).await;
    // The receiver has it before the server has recorded the answer.
    let mut delivery = Value::Null;
    for _ in 0..100 {
        let pending: Value = app
            .get(&path(&hook, "/deliveries?status=pending"), &root)
            .await
            .json()
            .await
            .unwrap();
        delivery = pending["items"][0].clone();
        if delivery["attempts"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(delivery["attempts"], 1);
    assert_eq!(delivery["last_status"], 500);
    assert!(delivery["next_attempt_at"].is_string());
    let retry = path(
        &hook,
        &format!("/deliveries/{}/retry", delivery["id"].as_str().unwrap()),
    );
    assert_eq!(
        app.post(&retry, &json!({}), Some(&root)).await.status(),
        202
    );
    let got = receiver.wait_for(WAIT, |got| got.len() == 2).await;
    assert_eq!(got[1]["status"], 204);
    let mut status = 0;
    for _ in 0..50 {
        status = app
            .post(&retry, &json!({}), Some(&root))
            .await
            .status()
            .as_u16();
        if status == 409 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 409, "delivered already");
    let unknown = path(
        &hook,
        &format!("/deliveries/{}/retry", uuid::Uuid::now_v7()),
    );
    assert_eq!(
        app.post(&unknown, &json!({}), Some(&root)).await.status(),
        404
    );
    let filtered: Value = app
        .get(&path(&hook, "/deliveries?status=failed"), &root)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(filtered["items"], json!([]));
    let bad = app
        .get(&path(&hook, "/deliveries?status=lost"), &root)
        .await;
    assert_eq!(bad.status(), 422);
}

async fn a_redirect_is_not_followed_and_a_slow_receiver_times_out(backend: Backend) {
    let app = app(backend, 1).await;
    let root = app.root_token().await;
    let receiver = Receiver::start();
    let hook = subscribe(&app, &root, &receiver, &["user.registered"]).await;
    // A redirect is a failure as it stands: followed, it would end at a
    // path that answers 404.
    receiver.control(json!({"fail": 1, "status": 302})).await;
    app.post(&path(&hook, "/test"), &json!({}), Some(&root))
        .await;
    receiver.wait_for(WAIT, |got| got.len() == 2).await;
    let listed = settled(&app, &root, &hook).await;
    let tried = attempts(&app, &root, &hook, &listed[0]).await;
    assert_eq!(tried[0]["status"], 302);
    assert_eq!(tried[0]["error"], "HTTP 302");
    assert_eq!(tried[1]["status"], 204);
    // An answer later than 10 seconds is a failure, tried again.
    receiver.control(json!({"delay": 11})).await;
    app.post(&path(&hook, "/test"), &json!({}), Some(&root))
        .await;
    receiver.wait_for(WAIT, |got| got.len() == 3).await;
    receiver.control(json!({"delay": 0})).await;
    let got = receiver.wait_for(WAIT, |got| got.len() == 4).await;
    assert_eq!(got[2]["id"], got[3]["id"], "the same message again");
    let mut tried = Value::Null;
    for _ in 0..100 {
        let listed = deliveries(&app, &root, &hook).await;
        tried = attempts(&app, &root, &hook, &listed[0]).await;
        if tried.as_array().is_some_and(|a| a.len() == 2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(tried[0]["status"].is_null(), "{tried}");
    assert!(
        tried[0]["error"].as_str().unwrap().starts_with("timed out"),
        "{tried}"
    );
    assert!(
        tried[0]["duration_ms"].as_u64().unwrap() >= 9_900,
        "{tried}"
    );
    assert_eq!(tried[1]["status"], 204);
}

async fn only_superusers_manage_webhooks_with_the_contracts_errors(backend: Backend) {
    let app = app(backend, 1).await;
    let root = app.root_token().await;
    let ada = app.user("ada").await;
    let body = json!({"url": "http://127.0.0.1:9/hook", "events": ["*"]});
    assert_eq!(app.get("/api/webhooks", &ada.access).await.status(), 403);
    assert_eq!(
        app.post("/api/webhooks", &body, Some(&ada.access))
            .await
            .status(),
        403
    );
    // A superuser's personal access token manages nothing either.
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
    let refused = app
        .get("/api/webhooks", pat["token"].as_str().unwrap())
        .await;
    assert_eq!(refused.status(), 403);
    assert_eq!(
        refused.json::<Value>().await.unwrap()["detail"],
        "Not allowed with a personal access token"
    );
    for (events, field) in [
        (json!(["user.nope"]), "events"),
        (json!(["webhook.created"]), "events"),
        (json!([]), "events"),
    ] {
        let response = app
            .post(
                "/api/webhooks",
                &json!({"url": "http://127.0.0.1:9/hook", "events": events}),
                Some(&root),
            )
            .await;
        assert_eq!(response.status(), 422, "{events}");
        let detail: Value = response.json().await.unwrap();
        assert_eq!(
            detail["detail"][0]["loc"],
            json!(["body", field]),
            "{detail}"
        );
    }
    let response = app
        .post(
            "/api/webhooks",
            &json!({"url": "not a url", "events": ["*"]}),
            Some(&root),
        )
        .await;
    assert_eq!(response.status(), 422);
    assert_eq!(
        response.json::<Value>().await.unwrap()["detail"][0]["loc"],
        json!(["body", "url"])
    );
    let missing = format!("/api/webhooks/{}", uuid::Uuid::now_v7());
    assert_eq!(app.get(&missing, &root).await.status(), 404);
    assert_eq!(app.get(&missing, &ada.access).await.status(), 403);
    let _ = PASSWORD;
}

async fn endpoints_are_changed_turned_off_and_deleted(backend: Backend) {
    let app = app(backend, 1).await;
    let root = app.root_token().await;
    let receiver = Receiver::start();
    let hook = subscribe(&app, &root, &receiver, &["user.registered"]).await;
    let patch = |body: Value| {
        let url = app.url(&path(&hook, ""));
        let root = root.clone();
        async move {
            reqwest::Client::new()
                .patch(url)
                .bearer_auth(root)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let off = patch(json!({"enabled": false, "description": null})).await;
    assert_eq!(off.status(), 200);
    let off: Value = off.json().await.unwrap();
    assert_eq!(off["enabled"], false);
    assert_eq!(off["description"], Value::Null);
    app.register("dee").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        receiver.received().await.is_empty(),
        "an endpoint turned off hears nothing"
    );
    let on: Value = patch(json!({"enabled": true, "events": ["*"]}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(on["events"], json!(["*"]));
    assert_eq!(on["disabled_reason"], Value::Null);
    app.register("eve").await;
    receiver.wait_for(WAIT, |got| !got.is_empty()).await;
    let listed: Value = app.get("/api/webhooks", &root).await.json().await.unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(
        listed[0].get("secret").is_none(),
        "the secret is shown once only"
    );
    assert_eq!(app.delete(&path(&hook, ""), &root).await.status(), 204);
    assert_eq!(app.get(&path(&hook, ""), &root).await.status(), 404);
    let events: Value = app
        .get("/api/audit-events?type=webhook.deleted", &root)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(events["items"][0]["details"]["webhook_id"], hook["id"]);
}

async fn non_public_addresses_are_refused(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let root = app.root_token().await;
    for url in [
        "http://127.0.0.1:9/hook",
        "http://localhost:9/hook",
        "http://[::1]:9/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.1/hook",
        "https://does-not-resolve.invalid/hook",
    ] {
        let response = app
            .post(
                "/api/webhooks",
                &json!({"url": url, "events": ["*"]}),
                Some(&root),
            )
            .await;
        assert_eq!(response.status(), 422, "{url}");
        let detail: Value = response.json().await.unwrap();
        assert_eq!(
            detail["detail"][0]["loc"],
            json!(["body", "url"]),
            "{detail}"
        );
    }
    assert_eq!(
        app.get("/api/webhooks", &root)
            .await
            .json::<Value>()
            .await
            .unwrap(),
        json!([])
    );
}

/// A webhook sends every account's events away: one added with a stolen
/// superuser session is deleted from the superuser's inbox alone.
async fn the_superusers_inbox_deletes_a_webhook_it_did_not_add(backend: Backend) {
    use userhub_tests::smtp::{SmtpServer, link_token, recipient};
    let smtp = SmtpServer::started();
    let app = app_mailing_to(backend, smtp.port).await;
    let owner = app.root_token().await;
    let intruder = app.root_token().await;
    let receiver = Receiver::start();
    let hook = subscribe(&app, &intruder, &receiver, &["*"]).await;
    let notice = smtp.wait_for_links("/undo", 1).await;
    assert_eq!(recipient(&notice[0]), userhub_tests::ROOT_EMAIL);
    let token = link_token(&notice[0], "/undo");
    let undone = app
        .post("/api/auth/undo", &json!({"token": token}), None)
        .await;
    assert_eq!(undone.status(), 200);
    assert_eq!(
        undone.json::<Value>().await.unwrap(),
        json!({"removed": "webhook"})
    );
    // Gone, and every session of the account with it.
    for token in [&owner, &intruder] {
        assert_eq!(app.get("/api/auth/me", token).await.status(), 401);
    }
    let root = app.root_token().await;
    assert_eq!(app.get(&path(&hook, ""), &root).await.status(), 404);
    let events: Value = app
        .get("/api/audit-events?type=webhook.deleted", &root)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(events["items"][0]["details"]["webhook_id"], hook["id"]);
    assert_eq!(events["items"][0]["details"]["removed"], json!(["webhook"]));
    let again = app
        .post("/api/auth/undo", &json!({"token": token}), None)
        .await;
    assert_eq!(again.status(), 400);
}

/// Pointing a webhook at another server with a stolen session is told to
/// the superuser's inbox too, whose link deletes it; the same URL sent back
/// (a client saving the whole object) tells nothing.
async fn the_superusers_inbox_deletes_a_webhook_pointed_elsewhere(backend: Backend) {
    use userhub_tests::smtp::{SmtpServer, link_token, recipient};
    let smtp = SmtpServer::started();
    let app = app_mailing_to(backend, smtp.port).await;
    let root = app.root_token().await;
    let receiver = Receiver::start();
    let hook = subscribe(&app, &root, &receiver, &["*"]).await;
    smtp.wait_for_links("/undo", 1).await;
    let patch = |url: String| {
        let (to, root) = (app.url(&path(&hook, "")), root.clone());
        async move {
            reqwest::Client::new()
                .patch(to)
                .bearer_auth(root)
                .json(&json!({"url": url, "description": "same"}))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(patch(receiver.url()).await, 200);
    let elsewhere = format!("{}?elsewhere", receiver.url());
    assert_eq!(patch(elsewhere).await, 200);
    let notices = smtp.wait_for_links("/undo", 2).await;
    // Both notices were queued by the time the second PATCH answered.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(
        smtp.wait_for_links("/undo", 2).await.len(),
        2,
        "the same URL sent back mailed nothing"
    );
    assert_eq!(recipient(&notices[1]), userhub_tests::ROOT_EMAIL);
    assert!(
        notices[1].contains("pointed at another server"),
        "{}",
        notices[1]
    );
    let undone = app
        .post(
            "/api/auth/undo",
            &json!({"token": link_token(&notices[1], "/undo")}),
            None,
        )
        .await;
    assert_eq!(
        undone.json::<Value>().await.unwrap(),
        json!({"removed": "webhook"})
    );
    assert_eq!(app.get("/api/auth/me", &root).await.status(), 401);
    let root = app.root_token().await;
    assert_eq!(app.get(&path(&hook, ""), &root).await.status(), 404);
}

/// The server with webhooks to local receivers, mailing to an SMTP server on `port`.
async fn app_mailing_to(backend: Backend, port: u16) -> TestApp {
    spawn_app_with(backend, move |s| {
        s.webhooks.webhook_allow_private_networks = true;
        s.mail.smtp_host = "127.0.0.1".into();
        s.mail.smtp_port = Some(port);
        s.mail.smtp_tls = userhub_server::SmtpTlsSetting::None;
        s.mail.mail_retry_seconds = Span(1);
        s.server.public_url = "https://app.example.com".into();
    })
    .await
}
