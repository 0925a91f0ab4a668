//! Scenarios through a load balancer: `deploy/local-cluster.sh` starts three
//! instances behind HAProxy, on one PgBouncer in transaction pooling mode;
//! every request below may reach any instance (round robin).
//!
//! Each scenario prints `name: PASS|FAIL figures`; the last line is
//! `N passed, M failed`, and the exit code is 1 if any failed. The cluster
//! is stopped at the end. `CLUSTER_SCRIPT` names the script (default
//! `deploy/local-cluster.sh`, run from the repository root).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::{Client, Response};
use serde_json::{Value, json};
use userhub_tests::tally;

const PASSWORD: &str = "Tr0ub4dor&3-staple";

fn script() -> String {
    std::env::var("CLUSTER_SCRIPT").unwrap_or_else(|_| "deploy/local-cluster.sh".into())
}

fn cluster(args: &[&str]) -> bool {
    Command::new(script())
        .args(args)
        .status()
        .is_ok_and(|s| s.success())
}

/// The load balancer's URL, from the `env` file `start` wrote.
fn balancer() -> String {
    let dir = std::env::var("CLUSTER_DIR").unwrap_or_else(|_| "build/cluster".into());
    let env = std::fs::read_to_string(format!("{dir}/env")).expect("the cluster's env file");
    env.lines()
        .find_map(|line| line.strip_prefix("CLUSTER_URL="))
        .expect("CLUSTER_URL in the env file")
        .to_owned()
}

struct Api {
    client: Client,
    base: String,
}

impl Api {
    async fn post(&self, path: &str, body: &Value, token: Option<&str>) -> Response {
        let mut request = self.client.post(format!("{}{path}", self.base)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    async fn get(&self, path: &str, token: &str) -> Response {
        self.client
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    async fn register(&self, name: &str) -> u16 {
        let body =
            json!({"email": format!("{name}@example.com"), "username": name, "password": PASSWORD});
        self.post("/api/auth/register", &body, None)
            .await
            .status()
            .as_u16()
    }

    async fn login(&self, name: &str, password: &str) -> Response {
        self.post(
            "/api/auth/login",
            &json!({"email": name, "password": password}),
            None,
        )
        .await
    }

    async fn tokens(&self, name: &str) -> Value {
        let response = self.login(name, PASSWORD).await;
        assert_eq!(response.status(), 200, "login of {name}");
        response.json().await.unwrap()
    }
}

fn served_by(response: &Response) -> String {
    response
        .headers()
        .get("x-served-by")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("?")
        .to_owned()
}

struct Outcome {
    pass: bool,
    figures: String,
}

/// 24 concurrent registrations of one address: one account.
async fn unique_email_race(api: &Api) -> Outcome {
    let attempts = (0..24).map(|i| async move {
        let body = json!({"email": "race@example.com", "username": format!("racer{i}"), "password": PASSWORD});
        let response = api.post("/api/auth/register", &body, None).await;
        (response.status().as_u16(), served_by(&response))
    });
    let results = futures_util::future::join_all(attempts).await;
    let statuses: Vec<u16> = results.iter().map(|(s, _)| *s).collect();
    let instances: BTreeSet<&str> = results.iter().map(|(_, by)| by.as_str()).collect();
    let created = statuses.iter().filter(|s| **s == 201).count();
    let conflicts = statuses.iter().filter(|s| **s == 409).count();
    Outcome {
        pass: created == 1 && conflicts == 23 && instances.len() == 3,
        figures: format!("{} on {} instances", tally(&statuses), instances.len()),
    }
}

/// A refresh token spent on one instance and presented again on another
/// revokes the session everywhere.
async fn refresh_reuse(api: &Api) -> Outcome {
    api.register("reuse").await;
    let first = api.tokens("reuse").await;
    let body = json!({"refresh_token": first["refresh_token"]});
    let rotated = api.post("/api/auth/refresh", &body, None).await;
    let rotated_by = served_by(&rotated);
    let rotated_status = rotated.status().as_u16();
    let second: Value = rotated.json().await.unwrap();
    let reused = api.post("/api/auth/refresh", &body, None).await;
    let reused_by = served_by(&reused);
    let reused_status = reused.status().as_u16();
    let mut after = Vec::new();
    for _ in 0..3 {
        let me = api
            .get("/api/auth/me", second["access_token"].as_str().unwrap())
            .await;
        after.push(me.status().as_u16());
    }
    Outcome {
        pass: rotated_status == 200
            && reused_status == 401
            && rotated_by != reused_by
            && after.iter().all(|s| *s == 401),
        figures: format!(
            "rotated {rotated_status} on {rotated_by}, reused {reused_status} on {reused_by}, the new token then {}",
            tally(&after)
        ),
    }
}

/// Wrong passwords spread over the instances lock the account on all of them.
async fn lockout(api: &Api) -> Outcome {
    api.register("locked").await;
    let mut by = BTreeSet::new();
    let mut failures = Vec::new();
    for _ in 0..5 {
        let response = api.login("locked", "wrong password").await;
        by.insert(served_by(&response));
        failures.push(response.status().as_u16());
    }
    let mut refused = Vec::new();
    for _ in 0..3 {
        refused.push(api.login("locked", PASSWORD).await.status().as_u16());
    }
    Outcome {
        pass: failures.iter().all(|s| *s == 401)
            && refused.iter().all(|s| *s == 429)
            && by.len() == 3,
        figures: format!(
            "failures {} on {} instances, then the right password {}",
            tally(&failures),
            by.len(),
            tally(&refused)
        ),
    }
}

/// Through HAProxy's `option forwardfor`, a client that writes its own
/// `X-Forwarded-For` lines picks nothing: each of five wrong logins claims
/// another address, yet all count for the one HAProxy saw, so the sixth
/// attempt is locked, and the audit trail records that address.
async fn forwarded_address(api: &Api) -> Outcome {
    api.register("spoofer").await;
    let mut failures = Vec::new();
    for i in 0..5 {
        let status = api
            .client
            .post(format!("{}/api/auth/login", api.base))
            .header("x-forwarded-for", format!("203.0.113.{i}"))
            .header("x-forwarded-for", format!("198.51.100.{i}, 192.0.2.{i}"))
            .json(&json!({"email": "spoofer", "password": "wrong password"}))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        failures.push(status);
    }
    let locked = api
        .client
        .post(format!("{}/api/auth/login", api.base))
        .header("x-forwarded-for", "203.0.113.99")
        .json(&json!({"email": "spoofer", "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    let root: Value = api
        .login("root@example.com", "Correct-Horse-Battery-9")
        .await
        .json()
        .await
        .unwrap_or_default();
    let root = root["access_token"].as_str().unwrap_or_default().to_owned();
    let events: Value = api
        .get("/api/audit-events?type=login.failed&limit=100", &root)
        .await
        .json()
        .await
        .unwrap_or_default();
    let addresses: BTreeSet<String> = events["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|e| e["ip"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    Outcome {
        pass: failures.iter().all(|s| *s == 401)
            && locked == 429
            && addresses == BTreeSet::from(["127.0.0.1".to_owned()]),
        figures: format!(
            "five wrong logins with forged X-Forwarded-For lines {}, then {locked}; addresses on record: {addresses:?}",
            tally(&failures)
        ),
    }
}

/// A logout on one instance ends the session on every instance at once.
async fn logout(api: &Api) -> Outcome {
    api.register("leaver").await;
    let tokens = api.tokens("leaver").await;
    let access = tokens["access_token"].as_str().unwrap();
    let mut before = Vec::new();
    for _ in 0..3 {
        before.push(api.get("/api/auth/me", access).await.status().as_u16());
    }
    let out = api.post("/api/auth/logout", &json!({}), Some(access)).await;
    let out_status = out.status().as_u16();
    let mut after = BTreeMap::new();
    for _ in 0..3 {
        let me = api.get("/api/auth/me", access).await;
        after.insert(served_by(&me), me.status().as_u16());
    }
    Outcome {
        pass: before.iter().all(|s| *s == 200)
            && out_status == 204
            && after.len() == 3
            && after.values().all(|s| *s == 401),
        figures: format!(
            "before {}, logout {out_status}, after {after:?}",
            tally(&before)
        ),
    }
}

/// Each instance in turn is stopped (SIGTERM) and started again while eight
/// clients read and register without pause: no request may fail.
async fn rolling_restart(api: &Api) -> Outcome {
    api.register("steady").await;
    let token = api.tokens("steady").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let stop = Arc::new(AtomicBool::new(false));
    let counter = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for worker in 0..8 {
        let (client, base, token) = (api.client.clone(), api.base.clone(), token.clone());
        let (stop, counter) = (stop.clone(), counter.clone());
        workers.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let response = if worker % 4 == 0 {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    client
                        .post(format!("{base}/api/auth/register"))
                        .json(&json!({"email": format!("roll{n}@example.com"), "username": format!("roll{n}"), "password": PASSWORD}))
                        .send()
                        .await
                } else {
                    client
                        .get(format!("{base}/api/auth/me"))
                        .bearer_auth(&token)
                        .send()
                        .await
                };
                statuses.push(response.map_or(0, |r| r.status().as_u16()));
                if i % 50 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            statuses
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut restarted = Vec::new();
    for n in ["1", "2", "3"] {
        let ok = tokio::task::spawn_blocking(move || cluster(&["restart", n]))
            .await
            .unwrap();
        restarted.push(ok);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let mut statuses = Vec::new();
    for worker in workers {
        statuses.extend(worker.await.unwrap());
    }
    let failed = statuses
        .iter()
        .filter(|s| !matches!(**s, 200 | 201))
        .count();
    Outcome {
        pass: failed == 0 && restarted.iter().all(|ok| *ok) && statuses.len() > 100,
        figures: format!(
            "{} requests in {:.1} s while restarting 3 instances ({}), {failed} failed",
            statuses.len(),
            started.elapsed().as_secs_f64(),
            tally(&statuses)
        ),
    }
}

#[tokio::main]
async fn main() {
    if !cluster(&["start"]) {
        eprintln!("the cluster did not start");
        std::process::exit(1);
    }
    let api = Api {
        client: Client::new(),
        base: balancer(),
    };
    let mut results = Vec::new();
    for name in [
        "unique-email-race",
        "refresh-reuse",
        "lockout",
        "logout",
        "forwarded-address",
        "rolling-restart",
    ] {
        let outcome = match name {
            "unique-email-race" => unique_email_race(&api).await,
            "refresh-reuse" => refresh_reuse(&api).await,
            "lockout" => lockout(&api).await,
            "logout" => logout(&api).await,
            "forwarded-address" => forwarded_address(&api).await,
            _ => rolling_restart(&api).await,
        };
        println!(
            "{name}: {} {}",
            if outcome.pass { "PASS" } else { "FAIL" },
            outcome.figures
        );
        results.push(outcome.pass);
    }
    cluster(&["stop"]);
    let passed = results.iter().filter(|p| **p).count();
    println!("{passed} passed, {} failed", results.len() - passed);
    if passed != results.len() {
        std::process::exit(1);
    }
}
