//! The drills' PostgreSQL cluster, server processes and helpers.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Client;
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};

pub(crate) const JWT_KEY: &str = "drill-signing-key-of-at-least-32-bytes!!";
pub(crate) const ROOT_EMAIL: &str = "root@example.com";
pub(crate) const ROOT_PASSWORD: &str = "Correct-Horse-Battery-9";
pub(crate) const PASSWORD: &str = "Tr0ub4dor&3-staple";

/// A PostgreSQL cluster in a temporary folder, run as the `postgres` user
/// when this runs as root (initdb refuses root).
pub(crate) struct Cluster {
    pub(crate) bin: PathBuf,
    pub(crate) dir: PathBuf,
    pub(crate) port: u16,
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl Cluster {
    pub(crate) fn pg(&self, tool: &str, args: &[&str]) -> std::process::Output {
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

    pub(crate) fn start_new() -> Self {
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

    pub(crate) fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    pub(crate) fn ctl(&self, action: &str, extra: &[&str]) -> bool {
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

    pub(crate) fn start(&self) {
        assert!(self.ctl("start", &[]), "the drill cluster starts");
    }

    pub(crate) fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    pub(crate) async fn create_db(&self, name: &str) -> String {
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
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) base: String,
}

pub(crate) fn server_bin() -> PathBuf {
    std::env::var_os("USERHUB_SERVER_BIN").map_or_else(
        || {
            let me = std::env::current_exe().unwrap();
            me.parent().unwrap().join("userhub-server")
        },
        PathBuf::from,
    )
}

impl Server {
    pub(crate) fn start(url: &str, log: &Path, extra: &[(&str, &str)]) -> Self {
        let log = std::fs::File::create(log).unwrap();
        Self::start_with(url, log.try_clone().unwrap().into(), log.into(), extra)
    }

    pub(crate) fn start_with(
        url: &str,
        stdout: Stdio,
        stderr: Stdio,
        extra: &[(&str, &str)],
    ) -> Self {
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

    pub(crate) async fn ready(&mut self, client: &Client, within: Duration) -> bool {
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

    pub(crate) fn signal(&self, name: &str) {
        Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
    }

    pub(crate) async fn exited_within(&mut self, within: Duration) -> bool {
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

/// A request sent and its JSON body read, in a drill where either failing
/// is a broken set-up rather than a finding.
pub(crate) trait FetchJson {
    /// The response body as JSON.
    async fn fetch_json(self) -> Value;
}

impl FetchJson for reqwest::RequestBuilder {
    async fn fetch_json(self) -> Value {
        self.send().await.unwrap().json().await.unwrap()
    }
}

/// Registers and logs in `name`; returns (id, access token).
pub(crate) async fn user(client: &Client, base: &str, name: &str) -> (String, String) {
    let created: Value = client
        .post(format!("{base}/api/auth/register"))
        .json(&json!({"email": format!("{name}@example.com"), "username": name, "password": PASSWORD}))
        .fetch_json()
        .await;
    let tokens: Value = client
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"email": name, "password": PASSWORD}))
        .fetch_json()
        .await;
    (
        created["id"].as_str().expect("registered").to_owned(),
        tokens["access_token"]
            .as_str()
            .expect("logged in")
            .to_owned(),
    )
}

/// Outcome of one drill.
pub(crate) struct Outcome {
    pub(crate) pass: bool,
    pub(crate) figures: String,
}

/// A number in `0..bound` that differs from run to run (where in a start a
/// kill lands); no seed to set, the figures say where kills landed.
pub(crate) fn random_below(bound: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let mixed = u64::from(nanos).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 17;
    mixed % bound.max(1)
}

/// How many migrations a database records as applied (0 without the table).
pub(crate) async fn migrations_applied(url: &str) -> i64 {
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
