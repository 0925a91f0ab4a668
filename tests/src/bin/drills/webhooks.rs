//! Webhook drills: a burst of events while the server is killed with
//! SIGKILL twice and the receiver is down for a minute must all arrive;
//! two instances on one database must send no event twice. The receiver
//! verifies every delivery with the `standardwebhooks` library.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::Client;
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};
use userhub_tests::webhooks::Receiver;

use crate::harness::{
    Cluster, FetchJson, Outcome, PASSWORD, ROOT_EMAIL, ROOT_PASSWORD, Server, random_below,
};

/// The settings every drill server gets: deliveries to the local
/// receiver, retries from one second.
const HOOKS: [(&str, &str); 2] = [
    ("WEBHOOK_ALLOW_PRIVATE_NETWORKS", "true"),
    ("WEBHOOK_RETRY_BASE_SECONDS", "1"),
];

async fn started(url: &str, log: &Path, client: &Client) -> Server {
    let mut server = Server::start(url, log, &HOOKS);
    assert!(
        server.ready(client, Duration::from_secs(30)).await,
        "a drill server started"
    );
    server
}

/// Subscribes `receiver` to registrations through `base`; the secret.
async fn subscribe(client: &Client, base: &str, receiver: &Receiver) -> String {
    let tokens: Value = client
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"email": ROOT_EMAIL, "password": ROOT_PASSWORD}))
        .fetch_json()
        .await;
    let root = tokens["access_token"].as_str().unwrap();
    let hook: Value = client
        .post(format!("{base}/api/webhooks"))
        .bearer_auth(root)
        .json(&json!({"url": receiver.url(), "events": ["user.registered"]}))
        .fetch_json()
        .await;
    let secret = hook["secret"].as_str().expect("a webhook was created");
    receiver.verify_with(&[secret]).await;
    secret.to_owned()
}

/// Registers `name` through `base`; whether the server answered 201.
async fn register(client: &Client, base: &str, name: &str) -> bool {
    client
        .post(format!("{base}/api/auth/register"))
        .json(&json!({"email": format!("{name}@example.com"), "username": name, "password": PASSWORD}))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .is_ok_and(|r| r.status() == 201)
}

/// The `user.registered` events the database holds: every one must arrive.
async fn committed(url: &str) -> HashSet<String> {
    let conn = Database::connect(url).await.unwrap();
    let rows = conn
        .query_all_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT id::text AS id FROM audit_events WHERE type = 'user.registered'",
        ))
        .await
        .unwrap();
    let _ = conn.close().await;
    rows.iter()
        .map(|row| row.try_get::<String>("", "id").unwrap())
        .collect()
}

/// Distinct verified event ids received, and how many deliveries repeated one.
async fn tally(receiver: &Receiver) -> (HashSet<String>, usize, usize) {
    let got = receiver.received().await;
    let unverified = got
        .iter()
        .filter(|d| d["verified"] != json!([true]))
        .count();
    let ids: HashSet<String> = got
        .iter()
        .filter(|d| d["status"] == 204)
        .map(|d| d["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    let delivered = got.iter().filter(|d| d["status"] == 204).count();
    (ids.clone(), delivered - ids.len(), unverified)
}

/// A burst of 150 registrations; the server is killed with SIGKILL after
/// a third and after two thirds (and restarted each time), and the
/// receiver is down from the second kill for a minute.
pub(crate) async fn webhook_kills(cluster: &Cluster, logs: &Path) -> Outcome {
    let url = cluster.create_db("hook_kills").await;
    let client = Client::new();
    let mut receiver = Receiver::start();
    let port = receiver.port;
    let mut server = started(&url, &logs.join("hook-kills-0.log"), &client).await;
    let secret = subscribe(&client, &server.base, &receiver).await;
    let mut answered = 0;
    let mut down_since = None;
    let mut earlier = (HashSet::new(), 0, 0);
    let mut kills_at = Vec::new();
    for i in 0..30 {
        // Registrations in flight; at 10 and 20 the server is killed
        // while they are (some answered, some not, some committed
        // without an answer: the database says which events exist).
        let batch: Vec<_> = (0..5)
            .map(|j| {
                let (client, base) = (client.clone(), server.base.clone());
                tokio::spawn(
                    async move { register(&client, &base, &format!("burst{i}x{j}")).await },
                )
            })
            .collect();
        if i == 10 || i == 20 {
            let after = random_below(150);
            tokio::time::sleep(Duration::from_millis(after)).await;
            server.signal("KILL");
            kills_at.push(after);
            assert!(server.exited_within(Duration::from_secs(10)).await);
        }
        for request in batch {
            answered += usize::from(request.await.unwrap_or(false));
        }
        if i == 10 || i == 20 {
            if i == 20 {
                // What it got before it goes down leaves with its memory.
                earlier = tally(&receiver).await;
                receiver.stop();
                down_since = Some(Instant::now());
            }
            server = started(
                &url,
                &logs.join(format!("hook-kills-{}.log", i / 10)),
                &client,
            )
            .await;
        }
    }
    let down_since = down_since.unwrap();
    tokio::time::sleep(Duration::from_secs(60).saturating_sub(down_since.elapsed())).await;
    // The receiver comes back where it was, knowing its secret again.
    receiver = Receiver::start_on(port);
    receiver.verify_with(&[&secret]).await;
    let back = Instant::now();
    let expected = committed(&url).await;
    let deadline = back + Duration::from_secs(240);
    let mut arrived = HashSet::new();
    let mut repeated = 0;
    let mut unverified = 0;
    while Instant::now() < deadline {
        let (later, again, bad) = tally(&receiver).await;
        repeated = earlier.1 + again + earlier.0.intersection(&later).count();
        unverified = earlier.2 + bad;
        arrived = earlier.0.union(&later).cloned().collect();
        if expected.is_subset(&arrived) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let drained = back.elapsed().as_secs();
    let missing = expected.difference(&arrived).count();
    if missing > 0 {
        eprintln!("{}", diagnose(&url).await);
    }
    drop(server);
    Outcome {
        pass: missing == 0 && unverified == 0 && expected.len() >= answered,
        figures: format!(
            "{} events committed ({answered} registrations answered 201; SIGKILLs {kills_at:?} ms into a batch in flight), {} arrived after the receiver was down 60 s, {missing} missing, {repeated} repeated (receivers drop them by webhook-id), drained {drained} s after it came back",
            expected.len(),
            arrived.len()
        ),
    }
}

/// Two instances on one database, 100 registrations spread over both:
/// every event arrives, none twice.
pub(crate) async fn webhook_two_instances(cluster: &Cluster, logs: &Path) -> Outcome {
    let url = cluster.create_db("hook_pair").await;
    let client = Client::new();
    let receiver = Receiver::start();
    let a = started(&url, &logs.join("hook-pair-a.log"), &client).await;
    let b = started(&url, &logs.join("hook-pair-b.log"), &client).await;
    subscribe(&client, &a.base, &receiver).await;
    let bases = [a.base.clone(), b.base.clone()];
    for i in 0..20 {
        let batch = (0..5).map(|j| {
            let (client, base) = (client.clone(), bases[(i + j) % 2].clone());
            async move { register(&client, &base, &format!("pair{i}x{j}")).await }
        });
        futures_util::future::join_all(batch).await;
    }
    let expected = committed(&url).await;
    let started_at = Instant::now();
    while started_at.elapsed() < Duration::from_secs(60) {
        if expected.is_subset(&tally(&receiver).await.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let drained = started_at.elapsed().as_millis();
    // Anything sent twice would have arrived by now too.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (arrived, repeated, unverified) = tally(&receiver).await;
    let missing = expected.difference(&arrived).count();
    drop((a, b));
    Outcome {
        pass: missing == 0 && repeated == 0 && unverified == 0 && expected.len() == 100,
        figures: format!(
            "{} events, {} arrived ({drained} ms after the burst), {missing} missing, {repeated} sent twice, all verified: {}",
            expected.len(),
            arrived.len(),
            unverified == 0
        ),
    }
}

/// Where the deliveries stand, for a failed drill's log.
async fn diagnose(url: &str) -> String {
    let conn = Database::connect(url).await.unwrap();
    let rows = conn
        .query_all_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT status || ' attempts=' || attempts || ' last=' || coalesce(last_error, '-') || ' next=' || next_attempt_at AS line FROM webhook_deliveries ORDER BY event_id",
        ))
        .await
        .unwrap();
    let hooks = conn
        .query_all_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT 'paused=' || paused_until || ' lease=' || lease_until || ' failing=' || failing_since || ' now=' || (extract(epoch from now()) * 1000000)::bigint AS line FROM webhooks",
        ))
        .await
        .unwrap();
    let _ = conn.close().await;
    hooks
        .iter()
        .chain(rows.iter())
        .map(|r| r.try_get::<String>("", "line").unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}
