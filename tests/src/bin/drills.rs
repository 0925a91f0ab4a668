//! Fault drills against the real server binary and a PostgreSQL cluster of
//! their own (started on a free port, so that they can stop it, restart it
//! and terminate its backends without touching a shared server).
//!
//! Each drill prints `name: PASS|FAIL figures`; the last line is
//! `N passed, M failed`, and the exit code is 1 if any failed.
//!
//! `USERHUB_SERVER_BIN` names the server binary (default: the debug build
//! beside this one); `PG_BIN` the PostgreSQL binaries (default: the newest
//! under /usr/lib/postgresql).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::Client;
use sea_orm::{ConnectionTrait, Database, TransactionTrait};
use serde_json::{Value, json};
use userhub_tests::tally;

const JWT_KEY: &str = "drill-signing-key-of-at-least-32-bytes!!";
const ROOT_EMAIL: &str = "root@example.com";
const ROOT_PASSWORD: &str = "Correct-Horse-Battery-9";
const PASSWORD: &str = "Tr0ub4dor&3-staple";

/// A PostgreSQL cluster in a temporary folder, run as the `postgres` user
/// when this runs as root (initdb refuses root).
struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl Cluster {
    fn pg(&self, tool: &str, args: &[&str]) -> std::process::Output {
        let program = self.bin.join(tool);
        let mut command = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        command.args(args).output().expect("a PostgreSQL tool runs")
    }

    fn start_new() -> Self {
        let bin = std::env::var_os("PG_BIN").map_or_else(
            || {
                let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
                    .expect("PostgreSQL is installed under /usr/lib/postgresql")
                    .map(|e| e.unwrap().path().join("bin"))
                    .collect();
                versions.sort();
                versions.pop().unwrap()
            },
            PathBuf::from,
        );
        let dir = std::env::temp_dir().join(format!("userhub-drills-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        if is_root() {
            Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(&dir)
                .status()
                .unwrap();
        }
        let cluster = Self {
            bin,
            dir,
            port: free_port(),
        };
        let data = cluster.data();
        let out = cluster.pg(
            "initdb",
            &["-D", &data, "-U", "postgres", "--auth=trust", "-N"],
        );
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        cluster.start();
        cluster
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn ctl(&self, action: &str, extra: &[&str]) -> bool {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("postgres.log").display().to_string();
        let data = self.data();
        let mut args = vec!["-D", &data, "-o", &options, "-l", &log, "-w"];
        args.extend_from_slice(extra);
        args.push(action);
        self.pg("pg_ctl", &args).status.success()
    }

    fn start(&self) {
        assert!(self.ctl("start", &[]), "the drill cluster starts");
    }

    fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    async fn create_db(&self, name: &str) -> String {
        let admin = Database::connect(self.url("postgres")).await.unwrap();
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let _ = admin.close().await;
        self.url(name)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.ctl("stop", &["-m", "immediate"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One server process.
struct Server {
    child: Child,
    base: String,
}

fn server_bin() -> PathBuf {
    std::env::var_os("USERHUB_SERVER_BIN").map_or_else(
        || {
            let me = std::env::current_exe().unwrap();
            me.parent().unwrap().join("userhub-server")
        },
        PathBuf::from,
    )
}

impl Server {
    fn start(url: &str, log: &Path, extra: &[(&str, &str)]) -> Self {
        let log = std::fs::File::create(log).unwrap();
        Self::start_with(url, log.try_clone().unwrap().into(), log.into(), extra)
    }

    fn start_with(url: &str, stdout: Stdio, stderr: Stdio, extra: &[(&str, &str)]) -> Self {
        let port = free_port();
        let mut command = Command::new(server_bin());
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("DATABASE_URL", url)
            .env("PORT", port.to_string())
            .env("WORKERS", "2")
            .env("JWT_SECRET_KEY", JWT_KEY)
            .env("BCRYPT_COST", "10")
            .env("FIRST_SUPERUSER_EMAIL", ROOT_EMAIL)
            .env("FIRST_SUPERUSER_PASSWORD", ROOT_PASSWORD)
            .env("AUTH_RATE_LIMIT_PER_MINUTE", "0")
            .env("PASSWORD_HASH_BUDGET_PER_MINUTE", "0")
            .env("SHUTDOWN_DELAY_SECONDS", "0")
            .env("RUST_LOG", "warn");
        for (key, value) in extra {
            command.env(key, value);
        }
        let child = command
            .stdout(stdout)
            .stderr(stderr)
            .stdin(Stdio::null())
            .spawn()
            .expect("the server binary runs (build it with `cargo build -p userhub-server`)");
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    async fn ready(&mut self, client: &Client, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Ok(r) = client.get(format!("{}/health", self.base)).send().await
                && r.status() == 200
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    fn signal(&self, name: &str) {
        Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
    }

    async fn exited_within(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Registers and logs in `name`; returns (id, access token).
async fn user(client: &Client, base: &str, name: &str) -> (String, String) {
    let created: Value = client
        .post(format!("{base}/api/auth/register"))
        .json(&json!({"email": format!("{name}@example.com"), "username": name, "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tokens: Value = client
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"email": name, "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        created["id"].as_str().expect("registered").to_owned(),
        tokens["access_token"]
            .as_str()
            .expect("logged in")
            .to_owned(),
    )
}

/// Outcome of one drill.
struct Outcome {
    pass: bool,
    figures: String,
}

/// Reads under load while backends are terminated and the cluster restarts:
/// only 200 and 503, and service comes back by itself.
async fn database_restart(cluster: &Cluster, logs: &Path) -> Outcome {
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
async fn sigterm_drain(cluster: &Cluster, logs: &Path) -> Outcome {
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
async fn replicas(cluster: &Cluster, logs: &Path) -> Outcome {
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
async fn one_winner(cluster: &Cluster, logs: &Path) -> Outcome {
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
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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
async fn burst_lockout(cluster: &Cluster, logs: &Path) -> Outcome {
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

/// A number in `0..bound` that differs from run to run (where in a start a
/// kill lands); no seed to set, the figures say where kills landed.
fn random_below(bound: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let mixed = u64::from(nanos).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 17;
    mixed % bound.max(1)
}

/// How many migrations a database records as applied (0 without the table).
async fn migrations_applied(url: &str) -> i64 {
    let Ok(conn) = Database::connect(url).await else {
        return -1;
    };
    let backend = conn.get_database_backend();
    let count = conn
        .query_one_raw(sea_orm::Statement::from_string(
            backend,
            "SELECT count(*) AS n FROM seaql_migrations",
        ))
        .await
        .ok()
        .flatten()
        .and_then(|row| row.try_get::<i64>("", "n").ok())
        .unwrap_or(0);
    let _ = conn.close().await;
    count
}

/// `kill -9` at a random moment of a first start (most land while the
/// migrations run), sixteen times on fresh databases of each kind: every
/// next start comes up.
async fn first_start_killed(cluster: &Cluster, logs: &Path) -> Outcome {
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
async fn logging_load(base: &str, seconds: u64) -> Vec<u16> {
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
async fn closed_stdout(cluster: &Cluster, _logs: &Path) -> Outcome {
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
async fn late_database(cluster: &Cluster, logs: &Path) -> Outcome {
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

fn as_refs<'a>(vars: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    vars.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// A rolling key rotation under load: an instance with the new key (and
/// the previous one to verify) takes over from one with the old key; the
/// old key's tokens, refresh tokens and cursors go on working there.
async fn key_rotation(cluster: &Cluster, logs: &Path) -> Outcome {
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
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let page: Value = client
            .get(format!("{base}/api/users/?limit=1"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
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
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
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

#[tokio::main]
async fn main() {
    let logs = PathBuf::from(std::env::var("DRILL_LOGS").unwrap_or_else(|_| "build/drills".into()));
    std::fs::create_dir_all(&logs).unwrap();
    let cluster = Cluster::start_new();
    // Drill names as arguments run only those.
    let only: Vec<String> = std::env::args().skip(1).collect();
    let mut results = Vec::new();
    for name in [
        "database-restart",
        "sigterm-drain",
        "replicas",
        "one-winner",
        "burst-lockout",
        "first-start-killed",
        "closed-stdout",
        "late-database",
        "key-rotation",
    ] {
        if !only.is_empty() && !only.iter().any(|o| o == name) {
            continue;
        }
        let outcome = match name {
            "database-restart" => database_restart(&cluster, &logs).await,
            "sigterm-drain" => sigterm_drain(&cluster, &logs).await,
            "replicas" => replicas(&cluster, &logs).await,
            "one-winner" => one_winner(&cluster, &logs).await,
            "burst-lockout" => burst_lockout(&cluster, &logs).await,
            "first-start-killed" => first_start_killed(&cluster, &logs).await,
            "closed-stdout" => closed_stdout(&cluster, &logs).await,
            "late-database" => late_database(&cluster, &logs).await,
            _ => key_rotation(&cluster, &logs).await,
        };
        println!(
            "{name}: {} {}",
            if outcome.pass { "PASS" } else { "FAIL" },
            outcome.figures
        );
        results.push(outcome.pass);
    }
    let passed = results.iter().filter(|p| **p).count();
    println!("{passed} passed, {} failed", results.len() - passed);
    drop(cluster);
    if passed != results.len() {
        std::process::exit(1);
    }
}
