//! What an attacker with a valid account and a loop could learn or break:
//! lost updates, ordering oracles, lockout enumeration and denial of
//! service, password guessing behind a stolen token, idle connections,
//! and the small contract points (every failing field, HEAD, no-store).

use std::time::Duration;
use userhub_server::Span;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use userhub_tests::{
    Backend, PASSWORD, TestApp, TestDatabase, TestUser, assert_one_won, spawn_app, spawn_app_on,
    spawn_app_with,
};

on_both_backends!(
    a_superusers_decision_stands_against_the_targets_in_flight_requests,
    etag_and_if_match_detect_a_lost_update,
    concurrent_deletes_and_password_changes_have_one_winner,
    nothing_in_a_listing_orders_by_what_the_caller_cannot_read,
    a_lockout_answers_alike_for_existing_deactivated_and_unknown_names,
    a_lockout_from_one_address_does_not_lock_the_owner_out_of_theirs,
    the_name_budget_stops_guessing_spread_over_many_addresses,
    wrong_current_passwords_behind_a_token_end_in_429,
    the_hashing_budget_is_per_caller,
    every_failing_field_is_listed_in_one_422,
    every_get_route_answers_head_and_personal_data_is_not_stored,
);

/// Logs in as `login` from the address `ip` (the server trusts `X-Forwarded-For`).
async fn login_from(app: &TestApp, ip: &str, login: &str, password: &str) -> u16 {
    app.client
        .post(app.url("/api/auth/login"))
        .header("x-forwarded-for", ip)
        .json(&json!({"email": login, "password": password}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The user loops writes of their own (a profile change, a PUT of the
/// current password, a password change) while a superuser deactivates,
/// demotes and resets them. Once the superuser's answer is in, the
/// decision stands: the user stays inactive and demoted, and neither the
/// old nor the user's new password logs in.
async fn a_superusers_decision_stands_against_the_targets_in_flight_requests(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.accounts.login_max_failures = 0;
        s.accounts.password_hash_budget_per_minute = 0;
    })
    .await;
    let root = app.root_token().await;
    for round in 0..4 {
        let name = format!("target{round}");
        let TestUser {
            id, access: token, ..
        } = app.user(&name).await;
        // Make the target a superuser, so that demotion is part of the race.
        let promoted = app
            .put(
                &format!("/api/users/{id}"),
                &json!({"is_superuser": true}),
                &root,
            )
            .await;
        assert_eq!(promoted.status(), 200);
        let own = {
            let (client, base, token, id) = (
                app.client.clone(),
                app.address.clone(),
                token.clone(),
                id.clone(),
            );
            tokio::spawn(async move {
                for i in 0..6 {
                    let url = format!("{base}/api/users/{id}");
                    let _ = client
                        .put(&url)
                        .bearer_auth(&token)
                        .json(&json!({"full_name": format!("N{i}"), "password": PASSWORD, "is_active": true, "is_superuser": true}))
                        .send()
                        .await;
                    let _ = client
                        .post(format!("{base}/api/auth/change-password"))
                        .bearer_auth(&token)
                        .json(&json!({"current_password": PASSWORD, "new_password": format!("Fresh-horse-battery-{i}")}))
                        .send()
                        .await;
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(20 * round)).await;
        let decision = app
            .put(
                &format!("/api/users/{id}"),
                &json!({"is_active": false, "is_superuser": false, "password": "Admin-chosen-horse-7"}),
                &root,
            )
            .await;
        assert_eq!(decision.status(), 200, "round {round}");
        own.await.unwrap();
        let stored: Value = app
            .get(&format!("/api/users/{id}"), &root)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            stored["is_active"], false,
            "round {round}: deactivation undone"
        );
        assert_eq!(
            stored["is_superuser"], false,
            "round {round}: demotion undone"
        );
        assert_eq!(app.get("/api/auth/me", &token).await.status(), 401);
        // Restore to check the password: only the superuser's stands.
        let restore = app
            .post(&format!("/api/users/{id}/restore"), &json!({}), Some(&root))
            .await;
        assert_eq!(restore.status(), 200);
        assert_eq!(
            app.login(&name, PASSWORD).await.status(),
            401,
            "round {round}"
        );
        for i in 0..6 {
            let new = format!("Fresh-horse-battery-{i}");
            assert_eq!(app.login(&name, &new).await.status(), 401, "round {round}");
        }
        assert_eq!(app.login(&name, "Admin-chosen-horse-7").await.status(), 200);
    }
}

async fn etag_and_if_match_detect_a_lost_update(backend: Backend) {
    let app = spawn_app(backend).await;
    let TestUser {
        id, access: token, ..
    } = app.user("ada").await;
    let path = format!("/api/users/{id}");
    let read = app.get(&path, &token).await;
    let etag = read.headers()["etag"].to_str().unwrap().to_owned();
    let me = app.get("/api/auth/me", &token).await;
    assert_eq!(me.headers()["etag"].to_str().unwrap(), etag);
    let put = |tag: String, name: &'static str| {
        app.client
            .put(app.url(&path))
            .bearer_auth(&token)
            .header("if-match", tag)
            .json(&json!({"full_name": name}))
            .send()
    };
    let first = put(etag.clone(), "Ada").await.unwrap();
    assert_eq!(first.status(), 200);
    let newer = first.headers()["etag"].to_str().unwrap().to_owned();
    assert_ne!(newer, etag);
    let stale = put(etag.clone(), "Lost").await.unwrap();
    assert_eq!(stale.status(), 412);
    assert!(stale.json::<Value>().await.unwrap()["detail"].is_string());
    assert_eq!(
        put(format!("W/{newer}"), "Weak").await.unwrap().status(),
        412
    );
    assert_eq!(put("*".into(), "Any").await.unwrap().status(), 200);
    let current: Value = app.get(&path, &token).await.json().await.unwrap();
    assert_eq!(current["full_name"], "Any");
    let delete = app
        .client
        .delete(app.url(&path))
        .bearer_auth(&token)
        .header("if-match", newer)
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), 412);
    // The version moves at each login, so others get no ETag and cannot
    // probe it with If-Match: they get 403 whatever they send.
    let TestUser { access: eve, .. } = app.user("eve").await;
    let seen = app.get(&path, &eve).await;
    assert_eq!(seen.status(), 200);
    assert!(seen.headers().get("etag").is_none());
    for tag in ["\"1\"", "\"2\"", "\"3\"", "\"4\"", "\"5\"", "\"6\""] {
        let probe = app
            .client
            .put(app.url(&path))
            .bearer_auth(&eve)
            .header("if-match", tag)
            .json(&json!({"full_name": "Probe"}))
            .send()
            .await
            .unwrap();
        assert_eq!(probe.status(), 403, "{tag}");
        let probe = app
            .client
            .delete(app.url(&path))
            .bearer_auth(&eve)
            .header("if-match", tag)
            .send()
            .await
            .unwrap();
        assert_eq!(probe.status(), 403, "{tag}");
    }
    // Without If-Match the behaviour is as before.
    assert_eq!(app.delete(&path, &token).await.status(), 204);
}

async fn concurrent_deletes_and_password_changes_have_one_winner(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.accounts.password_hash_budget_per_minute = 0).await;
    let root = app.root_token().await;
    let TestUser {
        id, access: token, ..
    } = app.user("ada").await;
    let changes = (0..10).map(|i| {
        app.client
            .post(app.url("/api/auth/change-password"))
            .bearer_auth(&token)
            .json(&json!({"current_password": PASSWORD, "new_password": format!("Fresh-horse-battery-{i}")}))
            .send()
    });
    let statuses: Vec<u16> = futures_util::future::join_all(changes)
        .await
        .into_iter()
        .map(|r| r.unwrap().status().as_u16())
        .collect();
    assert_one_won(&statuses, 204, 400);
    let deletes = (0..10).map(|_| {
        app.client
            .delete(app.url(&format!("/api/users/{id}")))
            .bearer_auth(&root)
            .send()
    });
    let statuses: Vec<u16> = futures_util::future::join_all(deletes)
        .await
        .into_iter()
        .map(|r| r.unwrap().status().as_u16())
        .collect();
    assert_one_won(&statuses, 204, 404);
}

async fn nothing_in_a_listing_orders_by_what_the_caller_cannot_read(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = app.root_token().await;
    let TestUser { access: eve, .. } = app.user("eve").await;
    for name in ["victim", "vic2", "vic3"] {
        app.register(name).await;
    }
    for sort in ["email", "-email"] {
        let refused = app.get(&format!("/api/users?sort={sort}"), &eve).await;
        assert_eq!(refused.status(), 403, "{sort}");
        let refused = app
            .get(&format!("/api/users?sort={sort}&search=vic"), &eve)
            .await;
        assert_eq!(refused.status(), 403, "{sort}");
    }
    // A search does not look at addresses either: a term only in an
    // address finds nothing, and the total says nothing.
    let page: Value = app
        .get("/api/users?search=example.com", &eve)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["total"], 0);
    // Cursors are the server's own, bound to their caller and listing.
    let page: Value = app
        .get("/api/users?sort=username&limit=1", &eve)
        .await
        .json()
        .await
        .unwrap();
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let ok = app
        .get(
            &format!("/api/users?sort=username&limit=1&cursor={cursor}"),
            &eve,
        )
        .await;
    assert_eq!(ok.status(), 200);
    for other in [
        format!("/api/users?sort=-username&limit=1&cursor={cursor}"),
        format!("/api/users?sort=username&limit=1&search=v&cursor={cursor}"),
        format!("/api/users?sort=username&limit=1&is_superuser=false&cursor={cursor}"),
    ] {
        assert_eq!(app.get(&other, &eve).await.status(), 422, "{other}");
    }
    // A superuser's cursor (over every user, by e-mail) is no use to anyone else.
    let page: Value = app
        .get("/api/users?sort=email&limit=1", &root)
        .await
        .json()
        .await
        .unwrap();
    let root_cursor = page["next_cursor"].as_str().unwrap().to_owned();
    for sort in ["email", "username", "created_at"] {
        let path = format!("/api/users?sort={sort}&limit=1&cursor={root_cursor}");
        assert!([403, 422].contains(&app.get(&path, &eve).await.status().as_u16()));
    }
    // A user id (the old cursor) or a tampered cursor is not a cursor.
    let (payload, tag) = cursor.split_once('.').unwrap();
    let flipped = if tag.starts_with('A') { "B" } else { "A" };
    for forged in [
        uuid::Uuid::now_v7().to_string(),
        format!("{payload}.{flipped}{}", &tag[1..]),
        payload.to_owned(),
    ] {
        let path = format!("/api/users?sort=username&limit=1&cursor={forged}");
        assert_eq!(app.get(&path, &eve).await.status(), 422, "{forged}");
    }
}

async fn statuses_of_wrong_logins(app: &TestApp, login: &str, n: usize) -> Vec<u16> {
    let mut statuses = Vec::new();
    for _ in 0..n {
        statuses.push(app.login(login, "Wrong-password-1").await.status().as_u16());
    }
    statuses
}

async fn a_lockout_answers_alike_for_existing_deactivated_and_unknown_names(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = app.root_token().await;
    app.register("ada").await;
    let TestUser { id: bob_id, .. } = app.user("bob").await;
    assert_eq!(
        app.delete(&format!("/api/users/{bob_id}"), &root)
            .await
            .status(),
        204
    );
    let existing = statuses_of_wrong_logins(&app, "ada", 7).await;
    let deactivated = statuses_of_wrong_logins(&app, "bob", 7).await;
    let unknown = statuses_of_wrong_logins(&app, "nobody", 7).await;
    assert_eq!(existing, [401, 401, 401, 401, 401, 429, 429]);
    assert_eq!(deactivated, existing);
    assert_eq!(unknown, existing);
}

async fn a_lockout_from_one_address_does_not_lock_the_owner_out_of_theirs(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.server.trust_forwarded_for = true).await;
    app.register("admin2").await;
    for _ in 0..5 {
        assert_eq!(
            login_from(&app, "203.0.113.9", "admin2", "Wrong-password-1").await,
            401
        );
    }
    assert_eq!(
        login_from(&app, "203.0.113.9", "admin2", PASSWORD).await,
        429
    );
    // Renewing the lock from the attacker's address changes nothing elsewhere.
    for _ in 0..3 {
        assert_eq!(
            login_from(&app, "203.0.113.9", "admin2", "Wrong-password-1").await,
            429
        );
    }
    assert_eq!(
        login_from(&app, "198.51.100.7", "admin2", PASSWORD).await,
        200
    );
}

async fn the_name_budget_stops_guessing_spread_over_many_addresses(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.server.trust_forwarded_for = true;
        s.accounts.login_max_failures_per_name_per_hour = 8;
    })
    .await;
    app.register("ada").await;
    for i in 0..8 {
        let ip = format!("192.0.2.{i}");
        assert_eq!(login_from(&app, &ip, "ada", "Wrong-password-1").await, 401);
    }
    // Now every address is refused, with the right password too.
    assert_eq!(login_from(&app, "192.0.2.200", "ada", PASSWORD).await, 429);
    // Unknown names have budgets too, so the answer reveals nothing.
    for i in 0..8 {
        let ip = format!("192.0.2.{i}");
        assert_eq!(
            login_from(&app, &ip, "nobody", "Wrong-password-1").await,
            401
        );
    }
    assert_eq!(
        login_from(&app, "192.0.2.200", "nobody", PASSWORD).await,
        429
    );
}

async fn wrong_current_passwords_behind_a_token_end_in_429(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.accounts.password_hash_budget_per_minute = 0).await;
    let TestUser {
        id, access: token, ..
    } = app.user("ada").await;
    let wrong =
        json!({"current_password": "Not-my-password-9", "new_password": "Fresh-horse-battery-1"});
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let response = app
            .post("/api/auth/change-password", &wrong, Some(&token))
            .await;
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [400, 400, 400, 400, 400, 429]);
    let right = json!({"current_password": PASSWORD, "new_password": "Fresh-horse-battery-1"});
    let locked = app
        .post("/api/auth/change-password", &right, Some(&token))
        .await;
    assert_eq!(locked.status(), 429, "even the right password waits");
    assert!(locked.headers().contains_key("retry-after"));
    // The profile update's password check shares the same count.
    let put = app
        .put(
            &format!("/api/users/{id}"),
            &json!({"password": PASSWORD}),
            &token,
        )
        .await;
    assert_eq!(put.status(), 429);
    // A fresh user: wrong passwords in PUT count and end in 429 as well.
    let TestUser {
        id: bob,
        access: bob_token,
        ..
    } = app.user("bob").await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let response = app
            .put(
                &format!("/api/users/{bob}"),
                &json!({"password": "Not-my-password-9"}),
                &bob_token,
            )
            .await;
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [403, 403, 403, 403, 403, 429]);
}

async fn the_hashing_budget_is_per_caller(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.accounts.password_hash_budget_per_minute = 3;
        s.accounts.login_max_failures = 0;
    })
    .await;
    let TestUser { access: ada, .. } = app.user("ada").await;
    let TestUser { access: bob, .. } = app.user("bob").await;
    let wrong =
        json!({"current_password": "Not-my-password-9", "new_password": "Fresh-horse-battery-1"});
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(
            app.post("/api/auth/change-password", &wrong, Some(&ada))
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, [400, 400, 400, 429]);
    assert_eq!(
        app.post("/api/auth/change-password", &wrong, Some(&bob))
            .await
            .status(),
        400,
        "another caller still has its budget"
    );
}

async fn every_failing_field_is_listed_in_one_422(backend: Backend) {
    let app = spawn_app(backend).await;
    let locs = |body: &Value| -> Vec<String> {
        body["detail"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                format!(
                    "{}:{}",
                    e["loc"][1].as_str().unwrap(),
                    e["type"].as_str().unwrap()
                )
            })
            .collect()
    };
    let empty = app.post("/api/auth/register", &json!({}), None).await;
    assert_eq!(empty.status(), 422);
    let body: Value = empty.json().await.unwrap();
    assert_eq!(
        locs(&body),
        ["email:missing", "username:missing", "password:missing"]
    );
    let mixed = app
        .post(
            "/api/auth/register",
            &json!({"email": 5, "username": "x", "full_name": "a\u{1}b"}),
            None,
        )
        .await;
    let body: Value = mixed.json().await.unwrap();
    let mut got = locs(&body);
    got.sort();
    assert_eq!(
        got,
        [
            "email:string_type",
            "full_name:value_error",
            "password:missing",
            "username:string_too_short"
        ]
    );
    let form = app
        .client
        .post(app.url("/api/auth/login"))
        .form(&[("grant_type", "password")])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 422);
    let body: Value = form.json().await.unwrap();
    assert_eq!(locs(&body), ["username:missing", "password:missing"]);
    let TestUser { access: token, .. } = app.user("ada").await;
    let query = app.get("/api/users?skip=x&limit=0&sort=nope", &token).await;
    assert_eq!(query.status(), 422);
    let body: Value = query.json().await.unwrap();
    let mut got = locs(&body);
    got.sort();
    assert_eq!(
        got,
        [
            "limit:greater_than_equal",
            "skip:int_parsing",
            "sort:literal_error"
        ]
    );
}

async fn every_get_route_answers_head_and_personal_data_is_not_stored(backend: Backend) {
    let app = spawn_app(backend).await;
    let TestUser {
        id, access: token, ..
    } = app.user("ada").await;
    for path in [
        "/health".to_owned(),
        "/health/live".to_owned(),
        "/openapi.json".to_owned(),
        "/metrics".to_owned(),
        "/.well-known/jwks.json".to_owned(),
        "/api/auth/me".to_owned(),
        "/api/auth/sessions".to_owned(),
        "/api/users".to_owned(),
        format!("/api/users/{id}"),
    ] {
        let get = app.get(&path, &token).await;
        let head = app
            .client
            .head(app.url(&path))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), get.status(), "{path}");
        assert_eq!(
            head.headers().get("content-type"),
            get.headers().get("content-type"),
            "{path}"
        );
        assert!(head.bytes().await.unwrap().is_empty(), "{path}");
        if path.starts_with("/api/") {
            assert_eq!(get.headers()["cache-control"], "no-store", "{path}");
        }
    }
}

/// Connections that send no complete request head are closed within a
/// few seconds, whether they sent nothing or part of a head.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slow_connections_are_closed_within_seconds() {
    let app = spawn_app(Backend::Sqlite).await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut connections = Vec::new();
    for i in 0..20 {
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        if i % 2 == 1 {
            stream
                .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
                .await
                .unwrap();
        }
        connections.push(stream);
    }
    let closed = connections.into_iter().map(|mut stream| async move {
        let mut buf = vec![0_u8; 1024];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
                Ok(Ok(0) | Err(_)) => return true,
                Ok(Ok(_)) => {}
                Err(_) => return false,
            }
        }
    });
    let closed = futures_util::future::join_all(closed).await;
    assert!(closed.iter().all(|c| *c), "{closed:?}");
}

/// A body that trickles in is cut off at `BODY_TIMEOUT_SECONDS` with 408
/// and the connection closed; a body that arrives in time, even in pieces,
/// is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_does_not_arrive_in_time_is_a_408() {
    let db = TestDatabase::create(Backend::Sqlite).await;
    let url = db.url.clone();
    let app = spawn_app_on(db, url, |s| s.server.body_timeout_seconds = Span(1)).await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let body = br#"{"email": "slow@example.com", "password": "whatever-it-is"}"#;
    // Each answer is read to the end of the connection: the server must
    // close it after a 408 on its own, and is asked to after the 401.
    let send = |pause: Duration, connection: &str| {
        let address = address.clone();
        let head = format!(
            "POST /api/auth/login HTTP/1.1\r\nHost: x\r\nConnection: {connection}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        async move {
            let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
            stream.write_all(head.as_bytes()).await.unwrap();
            stream.write_all(&body[..10]).await.unwrap();
            tokio::time::sleep(pause).await;
            // The server may have answered and closed already.
            let _ = stream.write_all(&body[10..]).await;
            let mut answer = Vec::new();
            let read = stream.read_to_end(&mut answer);
            tokio::time::timeout(Duration::from_secs(10), read)
                .await
                .expect("the server closes the connection")
                .unwrap();
            String::from_utf8_lossy(&answer).into_owned()
        }
    };
    let late = send(Duration::from_secs(3), "keep-alive").await;
    assert!(late.starts_with("HTTP/1.1 408"), "{late}");
    assert!(late.contains("Request body not received in time"), "{late}");
    let in_time = send(Duration::from_millis(200), "close").await;
    assert!(in_time.starts_with("HTTP/1.1 401"), "{in_time}");
}
