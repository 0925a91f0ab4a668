//! Rate limits shared by every instance (`RATE_LIMIT_STORE=database`): the
//! request counter against real databases, and two servers on one database
//! spending one per-IP budget.

use std::sync::Arc;

use serde_json::json;
use time::{Duration, OffsetDateTime};
use userhub_domain::ports::RequestCounter;
use userhub_infrastructure::SeaOrmRequestCounter;
use userhub_server::RateLimitStore;
use userhub_tests::{Backend, PASSWORD, TestDatabase, migrated_database, spawn_server};

on_both_backends!(
    counts_are_exact_under_concurrency_and_start_again_each_window,
    two_instances_on_one_database_spend_one_per_ip_budget,
);

async fn counts_are_exact_under_concurrency_and_start_again_each_window(backend: Backend) {
    let (database, _db) = migrated_database(backend).await;
    let counter = Arc::new(SeaOrmRequestCounter::new(database));
    let minute = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
    let hits = (0..20).map(|_| {
        let counter = counter.clone();
        tokio::spawn(async move {
            counter
                .count("ip:192.0.2.1", Duration::MINUTE, minute)
                .await
                .unwrap()
        })
    });
    let mut seen: Vec<u32> = futures_util::future::join_all(hits)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    seen.sort_unstable();
    assert_eq!(
        seen,
        (1..=20).collect::<Vec<_>>(),
        "each request counted once"
    );
    // Another key has its own count; the next window starts from one.
    let other = counter
        .count("ip:192.0.2.2", Duration::MINUTE, minute)
        .await;
    assert_eq!(other.unwrap(), 1);
    let later = minute + Duration::seconds(59);
    assert_eq!(
        counter
            .count("ip:192.0.2.1", Duration::MINUTE, later)
            .await
            .unwrap(),
        21
    );
    let next = minute + Duration::MINUTE;
    assert_eq!(
        counter
            .count("ip:192.0.2.1", Duration::MINUTE, next)
            .await
            .unwrap(),
        1
    );
    // Purging forgets windows that started before the cut-off.
    assert_eq!(counter.purge(next).await.unwrap(), 1);
    assert_eq!(counter.purge(next).await.unwrap(), 0);
}

async fn two_instances_on_one_database_spend_one_per_ip_budget(backend: Backend) {
    // The windows are whole minutes: start well inside one.
    let second = OffsetDateTime::now_utc().second();
    if second > 45 {
        tokio::time::sleep(std::time::Duration::from_secs(u64::from(61 - second))).await;
    }
    let db = TestDatabase::create(backend).await;
    let shared = |s: &mut userhub_server::Settings| {
        s.accounts.rate_limit_store = RateLimitStore::Database;
        s.accounts.auth_rate_limit_per_minute = 4;
    };
    let a = spawn_server(db.url.clone(), shared).await;
    let b = spawn_server(db.url.clone(), shared).await;
    let client = reqwest::Client::new();
    let login = |base: &str| {
        client
            .post(format!("{base}/api/auth/login"))
            .json(&json!({"email": "nobody@example.com", "password": PASSWORD}))
            .send()
    };
    // Four requests, alternating between the instances, are within budget…
    for base in [&a, &b, &a, &b] {
        assert_eq!(login(base).await.unwrap().status(), 401);
    }
    // …and the fifth is refused by either.
    for base in [&a, &b] {
        let refused = login(base).await.unwrap();
        assert_eq!(refused.status(), 429);
        let retry: u64 = refused.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=61).contains(&retry), "{retry}");
    }
    drop(db);
}
