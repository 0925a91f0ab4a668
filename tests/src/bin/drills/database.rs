//! Drills of the database and of concurrent requests: restarts, SIGTERM,
//! replicas starting together, one winner, a lockout burst.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::Client;
use sea_orm::{ConnectionTrait, Database, TransactionTrait};
use serde_json::{Value, json};
use userhub_tests::tally;

use crate::harness::{
    Cluster, FetchJson, Outcome, PASSWORD, ROOT_EMAIL, ROOT_PASSWORD, Server, user,
};

/// Reads under load while backends are terminated and the cluster restarts:
/// only 200 and 503, and service comes back by itself.
pub(crate) async fn database_restart(cluster: &Cluster, logs: &Path) -> Outcome {
    let url = cluster.create_db("restart").await;
    let mut server = Server::start(&url, &logs.join("restart.log"), &[]);
    let client = Client::new();
    assert!(server.ready(&client, Duration::from_secs(30)).await);
    let (id, token) = user(&client, &server.base, "ada").await;
    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = (0..8)
        .map(|i| {
            let (client, base, token, id, stop) = (
                Client::new(),
                server.base.clone(),
                token.clone(),
                id.clone(),
                stop.clone(),
            );
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let path = if i % 2 == 0 {
                        "/api/auth/me".to_owned()
                    } else {
                        format!("/api/users/{id}")
                    };
                    let status = client
                        .get(format!("{base}{path}"))
                        .bearer_auth(&token)
                        .send()
                        .await
                        .map_or(0, |r| r.status().as_u16());
                    statuses.push(status);
                }
                statuses
            })
        })
        .collect();
    let admin = Database::connect(cluster.url("postgres")).await.unwrap();
    for _ in 0..10 {
        let _ = admin
            .execute_unprepared(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                  WHERE datname = 'restart' AND pid <> pg_backend_pid()",
            )
            .await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let _ = admin.close().await;
    let restarted = cluster.ctl("restart", &["-m", "fast"]);
    let started = Instant::now();
    let recovered = server.ready(&client, Duration::from_secs(20)).await;
    let recovery = started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    let mut statuses = Vec::new();
    for task in load {
        statuses.extend(task.await.unwrap());
    }
    let bad = statuses.iter().filter(|s| ![200, 503].contains(*s)).count();
    Outcome {
        pass: restarted && recovered && bad == 0,
        figures: format!(
            "{} requests: {}; healthy again {:.1} s after the restart",
            statuses.len(),
            tally(&statuses),
            recovery.as_secs_f32()
        ),
    }
}

/// SIGTERM under keep-alive load: clients that stop sending once `/health`
/// turns 503 (as a load balancer does) lose no request, and a request held
/// up by the database through the whole sequence still gets its answer.
pub(crate) async fn sigterm_drain(cluster: &Cluster, logs: &Path) -> Outcome {
    let url = cluster.create_db("drain").await;
    let mut server = Server::start(
        &url,
        &logs.join("drain.log"),
        &[("SHUTDOWN_DELAY_SECONDS", "2")],
    );
    let client = Client::new();
    assert!(server.ready(&client, Duration::from_secs(30)).await);
    let (_, token) = user(&client, &server.base, "ada").await;
    let (held_id, held_token) = user(&client, &server.base, "held").await;
    let routed = Arc::new(AtomicBool::new(true));
    let poller = {
        let (client, base, routed) = (client.clone(), server.base.clone(), routed.clone());
        tokio::spawn(async move {
            loop {
                let healthy = client
                    .get(format!("{base}/health"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200);
                if !healthy {
                    routed.store(false, Ordering::SeqCst);
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let load: Vec<_> = (0..32)
        .map(|_| {
            let (client, base, token, routed) = (
                Client::new(),
                server.base.clone(),
                token.clone(),
                routed.clone(),
            );
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                while routed.load(Ordering::SeqCst) {
                    let status = client
                        .get(format!("{base}/api/auth/me"))
                        .bearer_auth(&token)
                        .send()
                        .await
                        .map_or(0, |r| r.status().as_u16());
                    statuses.push(status);
                }
                statuses
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Hold one write on a row lock across the whole shutdown (reads of
    // the load go on meanwhile).
    let blocker = Database::connect(&url).await.unwrap();
    let txn = blocker.begin().await.unwrap();
    txn.execute_unprepared(&format!(
        "SELECT 1 FROM users WHERE id = '{held_id}' FOR UPDATE"
    ))
    .await
    .unwrap();
    let held = {
        let (client, base) = (Client::new(), server.base.clone());
        tokio::spawn(async move {
            client
                .put(format!("{base}/api/users/{held_id}"))
                .bearer_auth(held_token)
                .json(&json!({"full_name": "Held Up"}))
                .send()
                .await
                .map_or(0, |r| r.status().as_u16())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let signalled = Instant::now();
    server.signal("TERM");
    tokio::time::sleep(Duration::from_secs(4)).await;
    txn.rollback().await.unwrap();
    let held = held.await.unwrap();
    let exited = server.exited_within(Duration::from_secs(10)).await;
    let took = signalled.elapsed();
    poller.await.unwrap();
    let mut statuses = Vec::new();
    for task in load {
        statuses.extend(task.await.unwrap());
    }
    let failed = statuses.iter().filter(|s| **s != 200).count();

    // A second signal ends a drain at once.
    let mut second = Server::start(
        &url,
        &logs.join("drain-twice.log"),
        &[("SHUTDOWN_DELAY_SECONDS", "30")],
    );
    assert!(second.ready(&client, Duration::from_secs(30)).await);
    second.signal("TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    second.signal("TERM");
    let forced = second.exited_within(Duration::from_secs(3)).await;
    Outcome {
        pass: failed == 0 && held == 200 && exited && forced && !statuses.is_empty(),
        figures: format!(
            "{} requests: {}; held request {held}; exited {:.1} s after SIGTERM; second signal exits: {forced}",
            statuses.len(),
            tally(&statuses),
            took.as_secs_f32()
        ),
    }
}

/// Three instances started together, on an empty database and on a
/// migrated one without its superuser: all come up, one superuser.
pub(crate) async fn replicas(cluster: &Cluster, logs: &Path) -> Outcome {
    let client = Client::new();
    let mut figures = Vec::new();
    let mut pass = true;
    for (case, migrated) in [("empty", false), ("migrated", true)] {
        let url = cluster.create_db(&format!("replicas_{case}")).await;
        if migrated {
            let mut first = Server::start(
                &url,
                &logs.join(format!("replicas-{case}-0.log")),
                &[
                    ("FIRST_SUPERUSER_EMAIL", ""),
                    ("FIRST_SUPERUSER_PASSWORD", ""),
                ],
            );
            assert!(first.ready(&client, Duration::from_secs(30)).await);
        }
        let mut servers: Vec<Server> = (1..=3)
            .map(|i| Server::start(&url, &logs.join(format!("replicas-{case}-{i}.log")), &[]))
            .collect();
        let mut up = 0;
        for server in &mut servers {
            if server.ready(&client, Duration::from_secs(30)).await {
                up += 1;
            }
        }
        let conn = Database::connect(&url).await.unwrap();
        let row = conn
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT count(*) AS n FROM users WHERE is_superuser",
            ))
            .await
            .unwrap()
            .unwrap();
        let superusers: i64 = row.try_get("", "n").unwrap();
        let _ = conn.close().await;
        pass &= up == 3 && superusers == 1;
        figures.push(format!("{case}: {up}/3 up, {superusers} superuser"));
    }
    Outcome {
        pass,
        figures: figures.join("; "),
    }
}

/// Concurrent requests that must have one winner: password changes of one
/// user, deletions of one user.
pub(crate) async fn one_winner(cluster: &Cluster, logs: &Path) -> Outcome {
    let url = cluster.create_db("winner").await;
    let mut server = Server::start(&url, &logs.join("winner.log"), &[]);
    let client = Client::new();
    assert!(server.ready(&client, Duration::from_secs(30)).await);
    let base = server.base.clone();
    let (id, token) = user(&client, &base, "ada").await;
    let changes = (0..20).map(|i| {
        client
            .post(format!("{base}/api/auth/change-password"))
            .bearer_auth(&token)
            .json(&json!({"current_password": PASSWORD, "new_password": format!("Fresh-horse-battery-{i}")}))
            .send()
    });
    let changes: Vec<u16> = futures_util::future::join_all(changes)
        .await
        .into_iter()
        .map(|r| r.map_or(0, |r| r.status().as_u16()))
        .collect();
    let root: Value = client
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"email": ROOT_EMAIL, "password": ROOT_PASSWORD}))
        .fetch_json()
        .await;
    let root = root["access_token"].as_str().unwrap().to_owned();
    let deletes = (0..20).map(|_| {
        client
            .delete(format!("{base}/api/users/{id}"))
            .bearer_auth(&root)
            .send()
    });
    let deletes: Vec<u16> = futures_util::future::join_all(deletes)
        .await
        .into_iter()
        .map(|r| r.map_or(0, |r| r.status().as_u16()))
        .collect();
    let won = |s: &[u16], ok: u16, lost: u16| {
        s.iter().filter(|x| **x == ok).count() == 1 && s.iter().all(|x| [ok, lost].contains(x))
    };
    Outcome {
        pass: won(&changes, 204, 400) && won(&deletes, 204, 404),
        figures: format!(
            "password changes: {}; deletions: {}",
            tally(&changes),
            tally(&deletes)
        ),
    }
}

/// A burst of wrong passwords locks once, for the first period.
pub(crate) async fn burst_lockout(cluster: &Cluster, logs: &Path) -> Outcome {
    let url = cluster.create_db("burst").await;
    let mut server = Server::start(&url, &logs.join("burst.log"), &[]);
    let client = Client::new();
    assert!(server.ready(&client, Duration::from_secs(30)).await);
    let base = server.base.clone();
    user(&client, &base, "ada").await;
    let attempts = (0..30).map(|_| {
        client
            .post(format!("{base}/api/auth/login"))
            .json(&json!({"email": "ada", "password": "Wrong-password-1"}))
            .send()
    });
    let responses = futures_util::future::join_all(attempts).await;
    let statuses: Vec<u16> = responses
        .iter()
        .map(|r| r.as_ref().map_or(0, |r| r.status().as_u16()))
        .collect();
    let max_retry: u64 = responses
        .iter()
        .filter_map(|r| {
            r.as_ref()
                .ok()?
                .headers()
                .get("retry-after")?
                .to_str()
                .ok()?
                .parse()
                .ok()
        })
        .max()
        .unwrap_or(0);
    let after: u64 = client
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"email": "ada", "password": PASSWORD}))
        .send()
        .await
        .ok()
        .and_then(|r| r.headers().get("retry-after")?.to_str().ok()?.parse().ok())
        .unwrap_or(0);
    Outcome {
        pass: statuses.iter().all(|s| [401, 429].contains(s))
            && max_retry <= 61
            && (1..=61).contains(&after),
        figures: format!(
            "30 parallel wrong logins: {}; longest Retry-After {max_retry} s, then {after} s",
            tally(&statuses)
        ),
    }
}
