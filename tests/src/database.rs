//! A fresh database per test, dropped after it.

use std::path::PathBuf;

use sea_orm::{ConnectionTrait, Database};
use uuid::Uuid;

/// Which database a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The server at `TEST_DATABASE_URL` (default: the local one).
    Postgres,
    /// A file in a fresh temporary folder.
    Sqlite,
}

/// Where the PostgreSQL tests create their databases.
fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let mut url = reqwest::Url::parse(url).expect("TEST_DATABASE_URL is a URL");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

/// An empty database; PostgreSQL ones are dropped and SQLite files removed on drop.
pub struct TestDatabase {
    /// Connection URL of the new database.
    pub url: String,
    /// The backend.
    pub backend: Backend,
    name: String,
    dir: Option<PathBuf>,
}

impl TestDatabase {
    /// Creates the database. A PostgreSQL test fails loudly when the server
    /// is unreachable: `scripts/test.sh` decides beforehand whether to run them.
    pub async fn create(backend: Backend) -> Self {
        let name = format!("userhub_test_{}", Uuid::new_v4().simple());
        match backend {
            Backend::Postgres => {
                let admin = admin_url();
                let conn = Database::connect(&admin).await.unwrap_or_else(|e| {
                    panic!("PostgreSQL is unreachable at {admin} ({e}); set TEST_DATABASE_URL or start it")
                });
                conn.execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("CREATE DATABASE");
                let _ = conn.close().await;
                Self {
                    url: with_database(&admin, &name),
                    backend,
                    name,
                    dir: None,
                }
            }
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(&name);
                std::fs::create_dir_all(&dir).expect("a temporary folder");
                let url = format!("sqlite://{}?mode=rwc", dir.join("userhub.db").display());
                Self {
                    url,
                    backend,
                    name,
                    dir: Some(dir),
                }
            }
        }
    }

    /// The database's host port, for tests that put a proxy in front of it.
    #[must_use]
    pub fn postgres_port(&self) -> u16 {
        let (_, authority, _) = split_url(&self.url);
        authority
            .rsplit_once(':')
            .and_then(|(_, port)| port.parse().ok())
            .unwrap_or(5432)
    }

    /// The URL reaching the same database through 127.0.0.1:`port`.
    #[must_use]
    pub fn url_via_port(&self, port: u16) -> String {
        let (scheme, authority, path) = split_url(&self.url);
        let credentials = authority
            .rsplit_once('@')
            .map(|(c, _)| format!("{c}@"))
            .unwrap_or_default();
        format!("{scheme}://{credentials}127.0.0.1:{port}/{path}")
    }
}

/// `scheme://authority/path` → (scheme, authority, path).
fn split_url(url: &str) -> (&str, &str, &str) {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    (scheme, authority, path)
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
            return;
        }
        // Drop runs outside any runtime guarantee: use a thread with its own.
        let name = self.name.clone();
        let admin = admin_url();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let conn = Database::connect(&admin).await.ok()?;
                conn.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .ok()?;
                conn.close().await.ok()
            })
        })
        .join();
    }
}
