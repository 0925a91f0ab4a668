//! `/api/users`: list, get, create, update, delete, restore.

use serde_json::{Value, json};
use userhub_tests::{Backend, PASSWORD, ROOT_EMAIL, ROOT_PASSWORD, TestUser, spawn_app};

on_both_backends!(
    list_pages_without_overlap_and_counts_the_total,
    list_sorts_by_each_field_both_ways,
    list_search_is_case_insensitive_and_takes_wildcards_literally,
    list_hides_deactivated_users_and_other_peoples_emails,
    get_shows_private_fields_only_to_the_user_and_superusers,
    get_hides_deactivated_users_from_ordinary_users,
    create_is_for_superusers_and_honours_flags,
    update_lets_users_edit_their_profile_but_not_privileged_fields,
    update_by_a_superuser_can_change_anything_and_ends_sessions_on_deactivation,
    update_conflicts_and_unknowns,
    delete_soft_deletes_and_ends_sessions_at_once,
    the_last_active_superuser_cannot_be_deleted_or_demoted,
    restore_is_for_superusers_and_lets_the_user_back_in,
    list_cursor_walks_every_order_like_skip_does,
);

/// Following `next_cursor` visits the same users, in the same order, as
/// stepping `skip`; a malformed cursor is a 422.
async fn list_cursor_walks_every_order_like_skip_does(backend: Backend) {
    let app = spawn_app(backend).await;
    for name in ["kim", "ann", "lee", "bo1", "zed"] {
        app.register(name).await;
    }
    let root = app.root_token().await;
    for sort in [
        "created_at",
        "-created_at",
        "username",
        "-username",
        "email",
        "-email",
    ] {
        let mut by_skip = Vec::new();
        for skip in [0, 2, 4] {
            let page: Value = app
                .get(
                    &format!("/api/users?sort={sort}&limit=2&skip={skip}"),
                    &root,
                )
                .await
                .json()
                .await
                .unwrap();
            by_skip.extend(ids(&page));
        }
        let mut by_cursor = Vec::new();
        let mut path = format!("/api/users?sort={sort}&limit=2");
        loop {
            let page: Value = app.get(&path, &root).await.json().await.unwrap();
            assert_eq!(page["total"], 6, "the total ignores the cursor");
            by_cursor.extend(ids(&page));
            match page["next_cursor"].as_str() {
                Some(cursor) => path = format!("/api/users?sort={sort}&limit=2&cursor={cursor}"),
                None => break,
            }
            assert!(by_cursor.len() <= 6, "the walk ends");
        }
        assert_eq!(by_cursor, by_skip, "{sort}");
    }
    let bad = app.get("/api/users?cursor=not-a-cursor", &root).await;
    assert_eq!(bad.status(), 422);
    let body: Value = bad.json().await.unwrap();
    assert_eq!(body["detail"][0]["loc"], json!(["query", "cursor"]));
    assert_eq!(body["detail"][0]["type"], "value_error");
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_owned())
        .collect()
}

fn usernames(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap().to_owned())
        .collect()
}

async fn list_pages_without_overlap_and_counts_the_total(backend: Backend) {
    let app = spawn_app(backend).await;
    for name in ["user1", "user2", "user3", "user4"] {
        app.register(name).await;
    }
    let TestUser { access: token, .. } = app.user("user5").await;
    let mut all = Vec::new();
    for skip in [0, 2, 4] {
        let page: Value = app
            .get(&format!("/api/users/?skip={skip}&limit=2"), &token)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(page["total"], 6, "five users and the superuser");
        assert_eq!(
            (page["skip"].as_u64(), page["limit"].as_u64()),
            (Some(skip), Some(2))
        );
        all.extend(ids(&page));
    }
    let mut unique = all.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((all.len(), unique.len()), (6, 6));
    let defaults: Value = app.get("/api/users", &token).await.json().await.unwrap();
    assert_eq!(
        (defaults["skip"].as_u64(), defaults["limit"].as_u64()),
        (Some(0), Some(10))
    );
    let beyond: Value = app
        .get("/api/users?skip=100", &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            beyond["items"].as_array().unwrap().len(),
            beyond["total"].as_u64()
        ),
        (0, Some(6))
    );
}

async fn list_sorts_by_each_field_both_ways(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = app.root_token().await;
    for (name, email) in [("carol", "a-carol"), ("alice", "c-alice"), ("bob", "b-bob")] {
        let body = json!({"email": format!("{email}@example.com"), "username": name, "password": PASSWORD});
        assert_eq!(
            app.post("/api/users", &body, Some(&root)).await.status(),
            201
        );
    }
    let get = |query: &'static str| {
        let app = &app;
        let root = root.clone();
        async move {
            app.get(&format!("/api/users?{query}"), &root)
                .await
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    for (query, expected) in [
        ("sort=username", ["admin", "alice", "bob", "carol"]),
        ("sort=-username", ["carol", "bob", "alice", "admin"]),
        ("sort=email", ["carol", "bob", "alice", "admin"]),
        ("sort=-email", ["admin", "alice", "bob", "carol"]),
        ("sort=created_at", ["admin", "carol", "alice", "bob"]),
        ("", ["admin", "carol", "alice", "bob"]),
        ("sort=-created_at", ["bob", "alice", "carol", "admin"]),
    ] {
        assert_eq!(usernames(&get(query).await), expected, "{query}");
    }
}

async fn list_search_is_case_insensitive_and_takes_wildcards_literally(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = app.root_token().await;
    for (name, full_name) in [
        ("a_b", "Grace Hopper"),
        ("axb", "Alan Turing"),
        ("pct", "100% Sure"),
    ] {
        let body = json!({"email": format!("{name}@corp.example"), "username": name, "password": PASSWORD, "full_name": full_name});
        assert_eq!(
            app.post("/api/users", &body, Some(&root)).await.status(),
            201
        );
    }
    let TestUser { access: token, .. } = app.user("zed").await;
    let search = |term: &str, who: &str| {
        let url = format!("/api/users?search={}", urlencode(term));
        let who = who.to_owned();
        let app = &app;
        async move { app.get(&url, &who).await.json::<Value>().await.unwrap() }
    };
    assert_eq!(usernames(&search("_", &token).await), ["a_b"]);
    assert_eq!(usernames(&search("%", &token).await), ["pct"]);
    assert_eq!(usernames(&search("HOPPER", &token).await), ["a_b"]);
    assert_eq!(usernames(&search("A_B", &token).await), ["a_b"]);
    let everyone: Value = search("", &token).await;
    assert_eq!(everyone["total"], 5);
    // E-mail addresses are searched for superusers only.
    assert_eq!(search("corp.example", &token).await["total"], 0);
    assert_eq!(search("corp.example", &root).await["total"], 3);
}

fn urlencode(term: &str) -> String {
    term.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn list_hides_deactivated_users_and_other_peoples_emails(backend: Backend) {
    let app = spawn_app(backend).await;
    let TestUser { id: gone, .. } = app.user("gone").await;
    let TestUser { access: token, .. } = app.user("ada").await;
    let root = app.root_token().await;
    assert_eq!(
        app.delete(&format!("/api/users/{gone}"), &root)
            .await
            .status(),
        204
    );
    let page: Value = app.get("/api/users", &token).await.json().await.unwrap();
    assert_eq!(usernames(&page), ["admin", "ada"]);
    for user in page["items"].as_array().unwrap() {
        let own = user["username"] == "ada";
        assert_eq!(user.get("email").is_some(), own);
        assert_eq!(user.get("last_login_at").is_some(), own);
    }
    assert_eq!(
        app.get("/api/users?is_active=false", &token).await.status(),
        403
    );
    assert_eq!(
        app.get("/api/users?is_active=true", &token).await.status(),
        200
    );
    let inactive: Value = app
        .get("/api/users?is_active=false", &root)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(usernames(&inactive), ["gone"]);
    assert!(inactive["items"][0]["email"].is_string());
    let supers: Value = app
        .get("/api/users?is_superuser=true", &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(usernames(&supers), ["admin"]);
}

async fn get_shows_private_fields_only_to_the_user_and_superusers(backend: Backend) {
    let app = spawn_app(backend).await;
    let TestUser {
        id: ada,
        access: ada_token,
        ..
    } = app.user("ada").await;
    let TestUser {
        access: bob_token, ..
    } = app.user("bob").await;
    let root = app.root_token().await;
    let own: Value = app
        .get(&format!("/api/users/{ada}"), &ada_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(own["email"], "ada@example.com");
    let other = app.get(&format!("/api/users/{ada}/"), &bob_token).await;
    assert_eq!(other.status(), 200);
    let other: Value = other.json().await.unwrap();
    assert_eq!(other["username"], "ada");
    assert!(other.get("email").is_none() && other.get("last_login_at").is_none());
    let admin: Value = app
        .get(&format!("/api/users/{ada}"), &root)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(admin["email"], "ada@example.com");
    assert_eq!(
        app.get(&format!("/api/users/{}", uuid::Uuid::now_v7()), &bob_token)
            .await
            .status(),
        404
    );
    let malformed = app.get("/api/users/not-a-uuid", &bob_token).await;
    assert_eq!(malformed.status(), 422);
    let body: Value = malformed.json().await.unwrap();
    assert_eq!(body["detail"][0]["loc"], json!(["path", "id"]));
    assert_eq!(body["detail"][0]["type"], "uuid_parsing");
}

async fn get_hides_deactivated_users_from_ordinary_users(backend: Backend) {
    let app = spawn_app(backend).await;
    let TestUser { id: gone, .. } = app.user("gone").await;
    let TestUser { access: token, .. } = app.user("ada").await;
    let root = app.root_token().await;
    app.delete(&format!("/api/users/{gone}"), &root).await;
    assert_eq!(
        app.get(&format!("/api/users/{gone}"), &token)
            .await
            .status(),
        404
    );
    let seen: Value = app
        .get(&format!("/api/users/{gone}"), &root)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(seen["is_active"], false);
}

async fn create_is_for_superusers_and_honours_flags(backend: Backend) {
    let app = spawn_app(backend).await;
    let TestUser { access: token, .. } = app.user("ada").await;
    let root = app.root_token().await;
    let body = json!({"email": "ops@example.com", "username": "ops", "password": PASSWORD, "is_superuser": true, "is_active": false});
    assert_eq!(
        app.post("/api/users/", &body, Some(&token)).await.status(),
        403
    );
    let created = app.post("/api/users/", &body, Some(&root)).await;
    assert_eq!(created.status(), 201);
    let location = created.headers()["location"].to_str().unwrap().to_owned();
    let user: Value = created.json().await.unwrap();
    assert_eq!(
        (user["is_superuser"].as_bool(), user["is_active"].as_bool()),
        (Some(true), Some(false))
    );
    assert_eq!(app.get(&location, &root).await.status(), 200);
    assert_eq!(
        app.post("/api/users", &body, Some(&root)).await.status(),
        409
    );
    let invalid = json!({"email": "x@example.com", "username": "x", "password": PASSWORD});
    assert_eq!(
        app.post("/api/users", &invalid, Some(&root)).await.status(),
        422
    );
    assert_eq!(app.post("/api/users", &body, None).await.status(), 401);
}

async fn update_lets_users_edit_their_profile_but_not_privileged_fields(backend: Backend) {
    let app = spawn_app(backend).await;
    let TestUser {
        id: ada,
        access: token,
        ..
    } = app.user("ada").await;
    let TestUser { id: bob, .. } = app.user("bob").await;
    let path = format!("/api/users/{ada}");
    let changed = app
        .put(
            &path,
            &json!({"username": "Ada2", "full_name": "Ada L.", "unknown": 1}),
            &token,
        )
        .await;
    assert_eq!(changed.status(), 200);
    let user: Value = changed.json().await.unwrap();
    assert_eq!(
        (user["username"].as_str(), user["full_name"].as_str()),
        (Some("ada2"), Some("Ada L."))
    );
    assert_ne!(user["updated_at"], user["created_at"]);
    // PUT back what was read, unchanged privileged fields included.
    let read: Value = app.get(&path, &token).await.json().await.unwrap();
    let mut echo = read.clone();
    echo["password"] = json!(PASSWORD);
    assert_eq!(app.put(&path, &echo, &token).await.status(), 200);
    // PATCH behaves the same; null clears the full name.
    let patched = app
        .client
        .patch(app.url(&path))
        .bearer_auth(&token)
        .json(&json!({"full_name": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);
    assert!(patched.json::<Value>().await.unwrap()["full_name"].is_null());
    for privileged in [
        json!({"is_superuser": true}),
        json!({"is_active": false}),
        json!({"password": "Another-pass-99"}),
    ] {
        assert_eq!(
            app.put(&path, &privileged, &token).await.status(),
            403,
            "{privileged}"
        );
    }
    assert_eq!(
        app.put(
            &format!("/api/users/{bob}"),
            &json!({"full_name": "x"}),
            &token
        )
        .await
        .status(),
        403
    );
    // The old password still works: nothing privileged changed.
    assert_eq!(app.login("ada2", PASSWORD).await.status(), 200);
}

async fn update_by_a_superuser_can_change_anything_and_ends_sessions_on_deactivation(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let TestUser {
        id: bob,
        access: bob_token,
        ..
    } = app.user("bob").await;
    let root = app.root_token().await;
    let path = format!("/api/users/{bob}");
    let promoted = app
        .put(
            &path,
            &json!({"is_superuser": true, "password": "Brand-new-secret-1"}),
            &root,
        )
        .await;
    assert_eq!(promoted.status(), 200);
    assert_eq!(
        promoted.json::<Value>().await.unwrap()["is_superuser"],
        true
    );
    assert_eq!(
        app.get("/api/auth/me", &bob_token).await.status(),
        401,
        "a password change ends sessions"
    );
    assert_eq!(app.login("bob", PASSWORD).await.status(), 401);
    let tokens: Value = app
        .login("bob", "Brand-new-secret-1")
        .await
        .json()
        .await
        .unwrap();
    let fresh = tokens["access_token"].as_str().unwrap();
    assert_eq!(
        app.put(&path, &json!({"is_active": false}), &root)
            .await
            .status(),
        200
    );
    assert_eq!(
        app.get("/api/auth/me", fresh).await.status(),
        401,
        "deactivation ends sessions"
    );
    let weak = app
        .put(&path, &json!({"password": "bob-is-back"}), &root)
        .await;
    assert_eq!(weak.status(), 422);
}

async fn update_conflicts_and_unknowns(backend: Backend) {
    let app = spawn_app(backend).await;
    let TestUser {
        id: ada,
        access: token,
        ..
    } = app.user("ada").await;
    app.register("bob").await;
    let path = format!("/api/users/{ada}");
    assert_eq!(
        app.put(
            &path,
            &json!({"email": "BOB@example.com", "current_password": PASSWORD}),
            &token
        )
        .await
        .status(),
        409
    );
    assert_eq!(
        app.put(&path, &json!({"username": "bob"}), &token)
            .await
            .status(),
        409
    );
    let root = app.root_token().await;
    assert_eq!(
        app.put(
            &format!("/api/users/{}", uuid::Uuid::now_v7()),
            &json!({}),
            &root
        )
        .await
        .status(),
        404
    );
    assert_eq!(
        app.put(&path, &json!({"email": "nope"}), &token)
            .await
            .status(),
        422
    );
}

async fn delete_soft_deletes_and_ends_sessions_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let TestUser {
        id: ada,
        access: ada_token,
        refresh: ada_refresh,
    } = app.user("ada").await;
    let TestUser {
        id: bob,
        access: bob_token,
        ..
    } = app.user("bob").await;
    assert_eq!(
        app.delete(&format!("/api/users/{bob}"), &ada_token)
            .await
            .status(),
        403
    );
    assert_eq!(
        app.delete(&format!("/api/users/{ada}"), &ada_token)
            .await
            .status(),
        204
    );
    assert_eq!(app.get("/api/auth/me", &ada_token).await.status(), 401);
    assert_eq!(
        app.post(
            "/api/auth/refresh",
            &json!({"refresh_token": ada_refresh}),
            None
        )
        .await
        .status(),
        401
    );
    assert_eq!(
        app.get(&format!("/api/users/{ada}"), &bob_token)
            .await
            .status(),
        404
    );
    let root = app.root_token().await;
    let kept: Value = app
        .get(&format!("/api/users/{ada}"), &root)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (kept["is_active"].as_bool(), kept["email"].as_str()),
        (Some(false), Some("ada@example.com"))
    );
    assert_eq!(
        app.delete(&format!("/api/users/{ada}"), &root)
            .await
            .status(),
        404,
        "already deleted"
    );
    assert_eq!(
        app.delete(&format!("/api/users/{bob}"), &root)
            .await
            .status(),
        204
    );
}

async fn the_last_active_superuser_cannot_be_deleted_or_demoted(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = app.root_token().await;
    let me: Value = app.get("/api/auth/me", &root).await.json().await.unwrap();
    let path = format!("/api/users/{}", me["id"].as_str().unwrap());
    assert_eq!(app.delete(&path, &root).await.status(), 409);
    assert_eq!(
        app.put(&path, &json!({"is_superuser": false}), &root)
            .await
            .status(),
        409
    );
    assert_eq!(
        app.put(&path, &json!({"is_active": false}), &root)
            .await
            .status(),
        409
    );
    let second = json!({"email": "ops@example.com", "username": "ops", "password": PASSWORD, "is_superuser": true});
    assert_eq!(
        app.post("/api/users", &second, Some(&root)).await.status(),
        201
    );
    assert_eq!(app.delete(&path, &root).await.status(), 204);
    assert_eq!(app.login(ROOT_EMAIL, ROOT_PASSWORD).await.status(), 401);
}

async fn restore_is_for_superusers_and_lets_the_user_back_in(backend: Backend) {
    let app = spawn_app(backend).await;
    let TestUser {
        id: ada,
        access: ada_token,
        ..
    } = app.user("ada").await;
    let TestUser {
        access: bob_token, ..
    } = app.user("bob").await;
    let root = app.root_token().await;
    assert_eq!(
        app.delete(&format!("/api/users/{ada}"), &ada_token)
            .await
            .status(),
        204
    );
    let restore = format!("/api/users/{ada}/restore");
    assert_eq!(
        app.post(&restore, &json!({}), Some(&bob_token))
            .await
            .status(),
        403
    );
    let restored = app.post(&restore, &json!({}), Some(&root)).await;
    assert_eq!(restored.status(), 200);
    assert_eq!(restored.json::<Value>().await.unwrap()["is_active"], true);
    assert_eq!(app.login("ada", PASSWORD).await.status(), 200);
    let unknown = format!("/api/users/{}/restore", uuid::Uuid::now_v7());
    assert_eq!(
        app.post(&unknown, &json!({}), Some(&root)).await.status(),
        404
    );
}
