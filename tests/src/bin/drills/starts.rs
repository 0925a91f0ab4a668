//! Drills of starting and running: killed first starts, closed log
//! pipes, a late database, a key rotation.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use reqwest::Client;
use serde_json::{Value, json};
use userhub_tests::tally;

use crate::harness::{
    Cluster, FetchJson, JWT_KEY, Outcome, PASSWORD, Server, migrations_applied, random_below, user,
};

/// `kill -9` at a random moment of a first start (most land while the
/// migrations run), sixteen times on fresh databases of each kind: every
/// next start comes up.
pub(crate) async fn first_start_killed(cluster: &Cluster, logs: &Path) -> Outcome {
    const ROUNDS: usize = 16;
    let client = Client::new();
    let dir = std::env::temp_dir().join(format!("userhub-drill-sqlite-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut pass = true;
    let mut figures = Vec::new();
    for backend in ["sqlite", "postgres"] {
        let url_for = async |round: usize| match backend {
            "sqlite" => format!("sqlite://{}/r{round}.db?mode=rwc", dir.display()),
            _ => cluster.create_db(&format!("killed_{round}")).await,
        };
        // When, in a first start here, the last migration is recorded: the
        // kills fall between the start and then.
        let url = url_for(ROUNDS).await;
        let started = Instant::now();
        let calibration = Server::start(&url, &logs.join(format!("killed-{backend}.log")), &[]);
        let mut first_seen = std::collections::BTreeMap::new();
        while started.elapsed() < Duration::from_secs(60) {
            first_seen
                .entry(migrations_applied(&url).await)
                .or_insert(started.elapsed());
            let healthy = client
                .get(format!("{}/health", calibration.base))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if healthy {
                break;
            }
        }
        let all = migrations_applied(&url).await;
        let migrated = first_seen.get(&all).copied().unwrap_or(started.elapsed());
        drop(calibration);
        let (mut up, mut applied_at_kill) = (0, Vec::new());
        for round in 0..ROUNDS {
            let url = url_for(round).await;
            let log = logs.join(format!("killed-{backend}-{round}.log"));
            let mut victim = Server::start(&url, &log, &[]);
            let delay = random_below(u64::try_from(migrated.as_micros()).unwrap());
            tokio::time::sleep(Duration::from_micros(delay)).await;
            let _ = victim.child.kill();
            let _ = victim.child.wait();
            applied_at_kill.push(migrations_applied(&url).await);
            let mut next = Server::start(
                &url,
                &logs.join(format!("killed-{backend}-{round}-next.log")),
                &[],
            );
            if next.ready(&client, Duration::from_secs(60)).await {
                up += 1;
            }
        }
        pass &= up == ROUNDS;
        applied_at_kill.sort_unstable();
        figures.push(format!(
            "{backend}: {up}/{ROUNDS} next starts up (migrated {:.2} s after the start; migrations recorded at each kill: {applied_at_kill:?})",
            migrated.as_secs_f32()
        ));
    }
    let _ = std::fs::remove_dir_all(&dir);
    Outcome {
        pass,
        figures: figures.join("; "),
    }
}

/// Load for `seconds`: half the clients read `/health`, half fail logins
/// (which log at warn); the statuses they got.
pub(crate) async fn logging_load(base: &str, seconds: u64) -> Vec<u16> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let load: Vec<_> = (0..8)
        .map(|i| {
            // A server stuck on its log output answers nothing: give up on
            // a request after a while, and count it as unanswered.
            let client = Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .unwrap();
            let base = base.to_owned();
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                while Instant::now() < deadline {
                    let status = if i % 2 == 0 {
                        client.get(format!("{base}/health")).send().await
                    } else {
                        client
                            .post(format!("{base}/api/auth/login"))
                            .json(&json!({"email": format!("nobody{i}"), "password": "Wrong-password-1"}))
                            .send()
                            .await
                    }
                    .map_or(0, |r| r.status().as_u16());
                    statuses.push(status);
                }
                statuses
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in load {
        statuses.extend(task.await.unwrap());
    }
    statuses
}

/// Standard output and error are pipes whose reader first stalls (never
/// reads, so the pipe fills and writes would block), then goes away (every
/// write fails); under a load that logs, the server goes on serving
/// throughout and stays up.
pub(crate) async fn closed_stdout(cluster: &Cluster, _logs: &Path) -> Outcome {
    let url = cluster.create_db("closed_stdout").await;
    let mut server = Server::start_with(
        &url,
        Stdio::piped(),
        Stdio::piped(),
        &[("RUST_LOG", "info")],
    );
    let client = Client::new();
    assert!(server.ready(&client, Duration::from_secs(30)).await);
    user(&client, &server.base, "ada").await;
    // Nobody reads the pipes: they fill within a moment.
    let stalled = logging_load(&server.base, 3).await;
    // The reader goes away: every later write to either pipe fails.
    drop(server.child.stdout.take());
    drop(server.child.stderr.take());
    let closed = logging_load(&server.base, 3).await;
    let alive = server.child.try_wait().unwrap().is_none();
    let after = client
        .get(format!("{}/health", server.base))
        .send()
        .await
        .map_or(0, |r| r.status().as_u16());
    // 429: the wrong logins lock their names, as they should.
    let bad = stalled
        .iter()
        .chain(&closed)
        .filter(|s| ![200, 401, 429].contains(*s))
        .count();
    Outcome {
        pass: alive && after == 200 && bad == 0 && !stalled.is_empty() && !closed.is_empty(),
        figures: format!(
            "{} requests while nobody read the log pipes: {}; {} with the pipes closed: {}; still running: {alive}; /health then {after}",
            stalled.len(),
            tally(&stalled),
            closed.len(),
            tally(&closed)
        ),
    }
}

/// The server starts 3 s before its database, with `DB_STARTUP_WAIT_SECONDS`
/// set: it waits and comes up. Without the setting it stops at once.
pub(crate) async fn late_database(cluster: &Cluster, logs: &Path) -> Outcome {
    let url = cluster.create_db("late").await;
    assert!(
        cluster.ctl("stop", &["-m", "fast"]),
        "the drill cluster stops"
    );
    let mut impatient = Server::start(&url, &logs.join("late-impatient.log"), &[]);
    let gave_up = impatient.exited_within(Duration::from_secs(10)).await;
    let started = Instant::now();
    let mut server = Server::start(
        &url,
        &logs.join("late.log"),
        &[("DB_STARTUP_WAIT_SECONDS", "30")],
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let waiting = server.child.try_wait().unwrap().is_none();
    cluster.start();
    let client = Client::new();
    let up = server.ready(&client, Duration::from_secs(30)).await;
    Outcome {
        pass: gave_up && waiting && up,
        figures: format!(
            "without the wait: stopped at once {gave_up}; with DB_STARTUP_WAIT_SECONDS=30: still waiting after 3 s {waiting}, up {:.1} s after its start: {up}",
            started.elapsed().as_secs_f32()
        ),
    }
}

pub(crate) fn as_refs<'a>(vars: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    vars.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// A rolling key rotation under load: an instance with the new key (and
/// the previous one to verify) takes over from one with the old key; the
/// old key's tokens, refresh tokens and cursors go on working there.
pub(crate) async fn key_rotation(cluster: &Cluster, logs: &Path) -> Outcome {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");
    let key = |name: &str| format!("{fixtures}/{name}");
    let rotations = [
        (
            "EdDSA",
            vec![
                ("JWT_ALGORITHM", "EdDSA".to_owned()),
                ("JWT_PRIVATE_KEY_FILE", key("ed25519-private.pem")),
                ("JWT_PUBLIC_KEY_FILE", key("ed25519-public.pem")),
            ],
            vec![
                ("JWT_ALGORITHM", "EdDSA".to_owned()),
                ("JWT_PRIVATE_KEY_FILE", key("ed25519-next-private.pem")),
                ("JWT_PUBLIC_KEY_FILE", key("ed25519-next-public.pem")),
                ("JWT_PREVIOUS_PUBLIC_KEY_FILE", key("ed25519-public.pem")),
            ],
        ),
        (
            "HS256",
            vec![],
            vec![
                (
                    "JWT_SECRET_KEY",
                    "the-next-drill-signing-key-of-32-bytes!!".to_owned(),
                ),
                ("JWT_PREVIOUS_SECRET_KEY", JWT_KEY.to_owned()),
            ],
        ),
    ];
    let client = Client::new();
    let (mut pass, mut figures) = (true, Vec::new());
    for (name, old, new) in rotations {
        let url = cluster
            .create_db(&format!("rotation_{}", name.to_lowercase()))
            .await;
        let mut before = Server::start(
            &url,
            &logs.join(format!("rotation-{name}-old.log")),
            &as_refs(&old),
        );
        assert!(before.ready(&client, Duration::from_secs(30)).await);
        let base = before.base.clone();
        let (_, token) = user(&client, &base, "ada").await;
        user(&client, &base, "bob").await;
        let refresh: Value = client
            .post(format!("{base}/api/auth/login"))
            .json(&json!({"email": "bob", "password": PASSWORD}))
            .fetch_json()
            .await;
        let page: Value = client
            .get(format!("{base}/api/users/?limit=1"))
            .bearer_auth(&token)
            .fetch_json()
            .await;
        let cursor = page["next_cursor"].as_str().unwrap_or_default().to_owned();
        let mut after = Server::start(
            &url,
            &logs.join(format!("rotation-{name}-new.log")),
            &as_refs(&new),
        );
        assert!(after.ready(&client, Duration::from_secs(30)).await);
        drop(before);
        let base = after.base.clone();
        let deadline = Instant::now() + Duration::from_secs(2);
        let load: Vec<_> = (0..8)
            .map(|_| {
                let (client, base, token) = (Client::new(), base.clone(), token.clone());
                tokio::spawn(async move {
                    let mut statuses = Vec::new();
                    while Instant::now() < deadline {
                        statuses.push(
                            client
                                .get(format!("{base}/api/auth/me"))
                                .bearer_auth(&token)
                                .send()
                                .await
                                .map_or(0, |r| r.status().as_u16()),
                        );
                    }
                    statuses
                })
            })
            .collect();
        let mut statuses = Vec::new();
        for task in load {
            statuses.extend(task.await.unwrap());
        }
        let status =
            |r: Result<reqwest::Response, reqwest::Error>| r.map_or(0, |r| r.status().as_u16());
        let next_page = status(
            client
                .get(format!("{base}/api/users/?limit=1&cursor={cursor}"))
                .bearer_auth(&token)
                .send()
                .await,
        );
        let refreshed = status(
            client
                .post(format!("{base}/api/auth/refresh"))
                .json(&json!({"refresh_token": refresh["refresh_token"]}))
                .send()
                .await,
        );
        let (_, fresh) = user(&client, &base, "cleo").await;
        let fresh_ok = status(
            client
                .get(format!("{base}/api/auth/me"))
                .bearer_auth(&fresh)
                .send()
                .await,
        );
        let keys: Value = client
            .get(format!("{base}/.well-known/jwks.json"))
            .fetch_json()
            .await;
        let published = keys["keys"].as_array().map_or(0, Vec::len);
        let unauthorized = statuses.iter().filter(|s| **s == 401).count();
        let expected_keys = if name == "HS256" { 0 } else { 2 };
        let ok = unauthorized == 0
            && statuses.iter().all(|s| *s == 200)
            && next_page == 200
            && refreshed == 200
            && fresh_ok == 200
            && published == expected_keys
            && !cursor.is_empty();
        pass &= ok;
        figures.push(format!(
            "{name}: old tokens on the new instance {}; old cursor {next_page}; old refresh token {refreshed}; new token {fresh_ok}; {published} keys published",
            tally(&statuses)
        ));
        drop(after);
    }
    Outcome {
        pass,
        figures: figures.join("; "),
    }
}
