//! Test support: a fresh database per test (PostgreSQL or SQLite), the real
//! server on port 0, and an HTTP client with helpers for the common steps.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

mod database;
pub mod oidc;
mod proxy;
pub mod smtp;
pub mod totp;
pub mod webhooks;

use std::time::Duration;

use reqwest::{Client, Response};
use secrecy::SecretString;
use serde_json::{Value, json};
use userhub_server::Span;
use userhub_server::{Application, Settings, telemetry};

pub use database::{Backend, TestDatabase};
pub use proxy::Proxy;

/// The signing key every test server uses, so tests can forge tokens.
pub const JWT_KEY: &str = "test-signing-key-of-at-least-32-bytes!!";
/// The first superuser's credentials.
pub const ROOT_EMAIL: &str = "root@example.com";
/// Its password.
pub const ROOT_PASSWORD: &str = "Correct-Horse-Battery-9";
/// Password used for every user the helpers register.
pub const PASSWORD: &str = "Tr0ub4dor&3-staple";
/// An origin the test servers allow.
pub const ALLOWED_ORIGIN: &str = "http://allowed.example";

/// A running server with its own database.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    /// HTTP client (no cookies, no redirects).
    pub client: Client,
    /// The database, dropped with the app.
    pub db: TestDatabase,
}

/// A registered, logged-in user of a test server.
#[derive(Clone, Debug)]
pub struct TestUser {
    /// The user's id.
    pub id: String,
    /// An access token of their session.
    pub access: String,
    /// That session's refresh token.
    pub refresh: String,
}

/// Now, at the microsecond precision both databases store.
#[must_use]
pub fn stored_now() -> time::OffsetDateTime {
    let now = time::OffsetDateTime::now_utc();
    now.replace_nanosecond(now.nanosecond() / 1000 * 1000)
        .unwrap()
}

/// An active, unverified, ordinary user `name` with `name@example.com`, as
/// the adapter tests store it.
#[must_use]
pub fn stored_user(name: &str) -> userhub_domain::model::User {
    use userhub_domain::model::{Email, PasswordHash, User, UserId, Username};
    let at = stored_now();
    User {
        id: UserId::generate(),
        email: Email::parse(&format!("{name}@example.com")).unwrap(),
        username: Username::parse(name).unwrap(),
        full_name: None,
        password_hash: PasswordHash::new("$2b$04$hash".into()),
        is_active: true,
        is_superuser: false,
        is_verified: false,
        created_at: at,
        updated_at: at,
        last_login_at: None,
        version: 1,
    }
}

/// An audit event of `kind`, now, from a test client, for the adapter
/// tests' writes.
#[must_use]
pub fn stored_event(kind: userhub_domain::model::AuditKind) -> userhub_domain::model::AuditEvent {
    use userhub_domain::model::{AuditEvent, ClientInfo};
    let client = ClientInfo::new(Some("adapter-test"), Some("192.0.2.1".into()));
    AuditEvent::new(kind, stored_now(), &client)
}

/// An event for a write whose event the test does not look at.
#[must_use]
pub fn any_event() -> userhub_domain::model::AuditEvent {
    stored_event(userhub_domain::model::AuditKind::UserUpdated)
}

/// A fresh, migrated database of `backend` and a pool on it, for adapter
/// tests; the database is dropped with the returned [`TestDatabase`].
pub async fn migrated_database(
    backend: Backend,
) -> (userhub_infrastructure::Database, TestDatabase) {
    use migration::MigratorTrait;
    let db = TestDatabase::create(backend).await;
    let database =
        userhub_infrastructure::Database::connect(&userhub_infrastructure::DatabaseSettings {
            url: db.url.clone(),
            max_connections: 4,
            min_connections: 0,
            acquire_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(10),
            pgbouncer: false,
        })
        .await
        .unwrap();
    migration::Migrator::up(database.sea_orm(), None)
        .await
        .unwrap();
    (database, db)
}

/// Starts the real server on a fresh database of `backend`.
pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

/// [`spawn_app`] with settings changed by `tweak`.
pub async fn spawn_app_with(backend: Backend, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let db = TestDatabase::create(backend).await;
    let url = db.url.clone();
    spawn_app_on(db, url, tweak).await
}

/// Starts the real server on a fresh PostgreSQL database that it reaches
/// through the test PgBouncer in transaction pooling mode
/// (`USERHUB_TEST_PGBOUNCER_URL`, set by `scripts/test.sh`), migrated over
/// the direct URL.
pub async fn spawn_app_behind_pgbouncer(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let pooler = pgbouncer_url();
    let db = TestDatabase::create(Backend::Postgres).await;
    let direct = db.url.clone();
    let name = direct
        .rsplit('/')
        .next()
        .expect("a database name")
        .to_owned();
    spawn_app_on(db, format!("{pooler}/{name}"), |settings| {
        settings.database.db_pooler = userhub_server::DbPooler::Pgbouncer;
        settings.database.database_direct_url = Some(direct);
        tweak(settings);
    })
    .await
}

/// The test PgBouncer's URL without a database name.
#[must_use]
pub fn pgbouncer_url() -> String {
    std::env::var("USERHUB_TEST_PGBOUNCER_URL").expect(
        "USERHUB_TEST_PGBOUNCER_URL is not set: run the suite with scripts/test.sh, which starts PgBouncer",
    )
}

/// Starts the real server on `db`, reached through `url` (a proxy, say),
/// with `tweak` applied to the test settings.
pub async fn spawn_app_on(
    db: TestDatabase,
    url: String,
    tweak: impl FnOnce(&mut Settings),
) -> TestApp {
    let address = spawn_server(url, tweak).await;
    let client = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    TestApp {
        address,
        client,
        db,
    }
}

/// Starts a server on the database at `url`; returns its base address.
pub async fn spawn_server(url: String, tweak: impl FnOnce(&mut Settings)) -> String {
    let mut settings = test_settings(url);
    tweak(&mut settings);
    let app = Application::build(settings)
        .await
        .expect("the server starts");
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    address
}

/// The settings every test server starts from: port 0, one worker, a cheap
/// bcrypt cost, the test signing key and first superuser, no pre-stop delay.
#[must_use]
pub fn test_settings(url: String) -> Settings {
    if std::env::var_os("TEST_LOG").is_some() {
        telemetry::init("info", telemetry::LogFormat::Pretty);
    }
    let mut settings = Settings::default();
    settings.server.port = 0;
    settings.server.workers = 1;
    settings.server.cors_origins = ALLOWED_ORIGIN.into();
    settings.server.shutdown_delay_seconds = Span(0);
    settings.database.database_url = url;
    settings.database.db_pool_max_size = 4;
    settings.database.db_acquire_timeout_seconds = Span(2);
    settings.database.db_connect_timeout_seconds = Span(2);
    settings.tokens.jwt_secret_key = Some(SecretString::from(JWT_KEY));
    let accounts = &mut settings.accounts;
    accounts.bcrypt_cost = 4;
    accounts.first_superuser_email = Some(ROOT_EMAIL.into());
    accounts.first_superuser_password = Some(SecretString::from(ROOT_PASSWORD));
    // Every test client is 127.0.0.1; the limits have tests of their own.
    accounts.auth_rate_limit_per_minute = 0;
    accounts.user_write_limit_per_minute = 0;
    settings.mail.mail_max_per_address_per_hour = 1000;
    settings
}

impl TestApp {
    /// Absolute URL of `path`.
    #[must_use]
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// POSTs JSON, optionally with a bearer token.
    pub async fn post(&self, path: &str, body: &Value, token: Option<&str>) -> Response {
        let mut request = self.client.post(self.url(path)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    /// GETs with a bearer token.
    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// PUTs JSON with a bearer token.
    pub async fn put(&self, path: &str, body: &Value, token: &str) -> Response {
        self.client
            .put(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// DELETEs with a bearer token.
    pub async fn delete(&self, path: &str, token: &str) -> Response {
        self.client
            .delete(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// Registers `name@example.com` / `name` with [`PASSWORD`]; returns the user.
    pub async fn register(&self, name: &str) -> Value {
        let body =
            json!({"email": format!("{name}@example.com"), "username": name, "password": PASSWORD});
        let response = self.post("/api/auth/register", &body, None).await;
        assert_eq!(response.status(), 201, "registering {name}");
        response.json().await.unwrap()
    }

    /// Logs in with JSON; returns the token response.
    pub async fn login(&self, login: &str, password: &str) -> Response {
        self.post(
            "/api/auth/login",
            &json!({"email": login, "password": password}),
            None,
        )
        .await
    }

    /// Registers and logs in `name`.
    pub async fn user(&self, name: &str) -> TestUser {
        let user = self.register(name).await;
        let tokens: Value = self.login(name, PASSWORD).await.json().await.unwrap();
        TestUser {
            id: user["id"].as_str().unwrap().to_owned(),
            access: tokens["access_token"].as_str().unwrap().to_owned(),
            refresh: tokens["refresh_token"].as_str().unwrap().to_owned(),
        }
    }

    /// An access token of the first superuser.
    pub async fn root_token(&self) -> String {
        let tokens: Value = self
            .login(ROOT_EMAIL, ROOT_PASSWORD)
            .await
            .json()
            .await
            .unwrap();
        tokens["access_token"].as_str().unwrap().to_owned()
    }

    /// Polls `path` until it answers `status` or `within` passes.
    pub async fn wait_for_status(&self, path: &str, status: u16, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < deadline {
            if let Ok(response) = self.client.get(self.url(path)).send().await
                && response.status() == status
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        false
    }
}

/// Statuses counted, as `15183×200 5×503` (`no-response` for 0: the request
/// got no answer), for the drills' reports.
#[must_use]
pub fn tally(statuses: &[u16]) -> String {
    let mut counts: std::collections::BTreeMap<u16, usize> = std::collections::BTreeMap::new();
    for s in statuses {
        *counts.entry(*s).or_default() += 1;
    }
    counts
        .iter()
        .map(|(s, n)| {
            if *s == 0 {
                format!("{n}×no-response")
            } else {
                format!("{n}×{s}")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Asserts that of requests raced against each other exactly one got `won`
/// and every other got `lost`.
///
/// # Panics
/// Otherwise, with the [`tally`] of the statuses.
pub fn assert_one_won(statuses: &[u16], won: u16, lost: u16) {
    let wins = statuses.iter().filter(|s| **s == won).count();
    let others_lost = statuses.iter().all(|s| *s == won || *s == lost);
    assert!(
        wins == 1 && others_lost,
        "expected one {won} and the rest {lost}: {}",
        tally(statuses)
    );
}
