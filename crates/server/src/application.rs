//! [`Application`]: connects, migrates, wires and binds, so that tests can
//! run the real server on port 0.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{HttpServer, web};
use anyhow::Context;
use migration::{Migrator, MigratorTrait};
use secrecy::{ExposeSecret, SecretString};
use userhub_domain::model::{Email, Password, Username};
use userhub_domain::ports::{Clock, Mailer, RequestCounter, SystemClock};
use userhub_domain::services::{
    AuditService, AuthConfig, AuthService, CreateUser, Ports, RecoveryPorts, RecoveryService,
    UserService,
};
use userhub_http::{
    ApiSettings, ApiState, AuthRateLimit, CursorKey, HashBudget, Lifecycle, Metrics, build_app,
};
use userhub_infrastructure::{
    BcryptPasswordHasher, Database, JwtSettings, JwtTokenIssuer, LogMailer, SeaOrmAuditLog,
    SeaOrmLoginThrottle, SeaOrmMailQueue, SeaOrmRecoveryTokens, SeaOrmRequestCounter,
    SeaOrmSessionRepository, SeaOrmUserRepository, SmtpMailer,
};

use crate::Settings;
use crate::settings::{DbPooler, RateLimitStore};

/// A bound, ready-to-run server.
pub struct Application {
    port: u16,
    server: Server,
    database: Database,
    lifecycle: Arc<Lifecycle>,
    shutdown: ShutdownTiming,
    first_superuser: Option<bool>,
    /// Periodic tasks, stopped with the server.
    background: Vec<tokio::task::JoinHandle<()>>,
}

impl Application {
    /// Connects to the database, applies migrations (unless turned off),
    /// creates the first superuser if configured, and binds the listener.
    ///
    /// # Errors
    /// Bad settings, an unreachable database, a failed migration, a taken port.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let (signing, previous) = settings.jwt_keys()?;
        let database = connect(&settings).await?;
        if settings.database.run_migrations {
            migrate(&settings, &database).await?;
        }
        // Not derived from the signing key: a key rotation keeps every
        // cursor and refresh-token successor as it was.
        let server_secret = database
            .server_secret("tokens")
            .await
            .context("reading the server's secret (are the migrations applied?)")?;
        let cursor_key = CursorKey::derive(server_secret.expose_secret().as_bytes());
        let tokens = JwtTokenIssuer::new(JwtSettings {
            signing,
            previous,
            refresh_secret: server_secret,
            issuer: settings.tokens.jwt_issuer.clone(),
            audience: settings.tokens.jwt_audience.clone(),
            access_token_ttl: settings.tokens.access_token_expire_minutes.time(),
            leeway_seconds: settings.tokens.jwt_leeway_seconds.0,
        })
        .context(
            "JWT keys (JWT_PRIVATE_KEY_FILE, JWT_PUBLIC_KEY_FILE, JWT_PREVIOUS_PUBLIC_KEY_FILE)",
        )?;
        let jwks = serde_json::to_string(tokens.jwks())?;
        let throttle_key = database
            .server_secret("login_names")
            .await
            .context("reading the server's secret (are the migrations applied?)")?;
        let services = Services::build(&settings, &database, tokens, throttle_key).await?;
        let first_superuser = ensure_first_superuser(&services.users, &settings).await?;
        let (auth_rate_limit, hash_budget, write_limit) = rate_limits(&settings, &services.counter);
        let metrics = Metrics::global();
        metrics::describe_counter!(
            crate::telemetry::DROPPED_METRIC,
            "Log lines not written: the output failed or the queue was full"
        );
        let lifecycle = Arc::new(Lifecycle::default());
        let tasks = services.clone();
        let state = web::Data::new(ApiState {
            auth: services.auth,
            users: services.users,
            recovery: services.recovery,
            audit: services.audit,
            health: Arc::new(database.clone()),
            version: env!("CARGO_PKG_VERSION"),
            auth_rate_limit,
            hash_budget,
            write_limit,
            trust_forwarded_for: settings.server.trust_forwarded_for,
            cursor_key,
            jwks,
            metrics: metrics.clone(),
            lifecycle: lifecycle.clone(),
        });
        let api = ApiSettings {
            cors_origins: settings.cors_origins(),
            max_body_bytes: settings.server.max_body_bytes,
            max_header_bytes: settings.server.max_header_bytes,
            body_timeout: settings.server.body_timeout_seconds.std(),
        };
        let listener = TcpListener::bind((settings.server.host.as_str(), settings.server.port))
            .with_context(|| {
                format!("binding {}:{}", settings.server.host, settings.server.port)
            })?;
        let port = listener.local_addr()?.port();
        // Background work starts only once the server can serve.
        let background = tasks.spawn_background(&settings, &metrics);
        let mut server = HttpServer::new(move || build_app(state.clone(), api.clone()))
            .listen(listener)?
            // A connection must send a complete request head within this
            // time, whether it sent nothing or part of one; then it is closed.
            .client_request_timeout(std::time::Duration::from_secs(5))
            .client_disconnect_timeout(std::time::Duration::from_secs(1))
            // Signals are handled in `run_until_stopped`, so SIGINT drains too.
            .disable_signals()
            .shutdown_timeout(settings.server.shutdown_timeout_seconds.0);
        if settings.server.workers > 0 {
            server = server.workers(settings.server.workers);
        }
        tracing::info!(
            version = env!("CARGO_PKG_VERSION"),
            database = ?database.backend(),
            url = %userhub_config::redact(&settings.database_url()),
            "listening on http://{}:{port}; API documentation at http://{}:{port}/docs",
            settings.server.host,
            settings.server.host,
        );
        Ok(Self {
            port,
            server: server.run(),
            database,
            lifecycle,
            first_superuser,
            shutdown: ShutdownTiming {
                delay: settings.server.shutdown_delay_seconds.std(),
                timeout: settings.server.shutdown_timeout_seconds.std(),
            },
            background,
        })
    }

    /// Whether the configured first superuser was created by this start
    /// (`Some(false)`: it existed already; `None`: none is configured).
    #[must_use]
    pub fn first_superuser_created(&self) -> Option<bool> {
        self.first_superuser
    }

    /// The bound port (useful when configured as 0).
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGTERM or SIGINT, then shuts down without dropping a
    /// request:
    ///
    /// 1. for `SHUTDOWN_DELAY_SECONDS`, `/health` answers 503 and every
    ///    response carries `Connection: close`, while requests are still
    ///    served, so that load balancers and keep-alive clients move away;
    /// 2. the listener stops accepting, and in-flight requests finish (up to
    ///    `SHUTDOWN_TIMEOUT_SECONDS`) with every worker and the database
    ///    still up: a worker that stopped early would take the pooled
    ///    connections it opened down under the others' requests;
    /// 3. the workers stop and the pool closes.
    ///
    /// A second signal exits at once.
    ///
    /// # Errors
    /// An I/O error of the server.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let handle = self.server.handle();
        let (lifecycle, timing) = (self.lifecycle.clone(), self.shutdown);
        tokio::spawn(async move {
            shutdown_signal().await;
            tokio::spawn(async {
                shutdown_signal().await;
                tracing::warn!("second signal: exiting now");
                std::process::exit(130);
            });
            drain(&handle, &lifecycle, timing).await;
        });
        self.server.await?;
        for task in self.background {
            task.abort();
        }
        self.database.close().await?;
        tracing::info!("stopped");
        Ok(())
    }

    /// Something that runs the shutdown sequence of
    /// [`Application::run_until_stopped`] without a signal.
    #[must_use]
    pub fn stopper(&self) -> Stopper {
        Stopper {
            handle: self.server.handle(),
            lifecycle: self.lifecycle.clone(),
            timing: self.shutdown,
        }
    }
}

/// Stops a running [`Application`] the way a signal does.
#[derive(Clone)]
pub struct Stopper {
    handle: ServerHandle,
    lifecycle: Arc<Lifecycle>,
    timing: ShutdownTiming,
}

impl Stopper {
    /// Drains and stops the server; returns once the workers have stopped.
    pub async fn stop(&self) {
        drain(&self.handle, &self.lifecycle, self.timing).await;
    }
}

/// How long each step of the shutdown sequence may take.
#[derive(Clone, Copy, Debug)]
struct ShutdownTiming {
    delay: std::time::Duration,
    timeout: std::time::Duration,
}

async fn drain(handle: &ServerHandle, lifecycle: &Lifecycle, timing: ShutdownTiming) {
    lifecycle.start_draining();
    tracing::info!(
        delay_seconds = timing.delay.as_secs(),
        "shutting down: /health answers 503 and connections close after their response"
    );
    tokio::time::sleep(timing.delay).await;
    handle.pause().await;
    tracing::info!(
        in_flight = lifecycle.in_flight(),
        "listener paused; draining in-flight requests"
    );
    let deadline = tokio::time::Instant::now() + timing.timeout;
    while lifecycle.in_flight() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    if lifecycle.in_flight() > 0 {
        tracing::warn!(
            in_flight = lifecycle.in_flight(),
            "shutdown timeout reached with requests in flight"
        );
    }
    handle.stop(true).await;
}

/// Folds histogram samples into buckets now and then, so that memory stays
/// flat whether or not anyone scrapes `/metrics`.
async fn upkeep_every(metrics: Metrics) {
    let mut interval = tokio::time::interval(std::time::Duration::from_secs(5));
    loop {
        interval.tick().await;
        metrics.run_upkeep();
    }
}

/// Opens the pool; the error names the database without its password.
async fn connect(settings: &Settings) -> anyhow::Result<Database> {
    if settings
        .database
        .database_url
        .trim()
        .starts_with("postgresql+asyncpg://")
    {
        tracing::info!(
            "DATABASE_URL has the original service's postgresql+asyncpg:// form; connecting with postgres://"
        );
    }
    let wait = settings.database.db_startup_wait_seconds.std();
    let deadline = tokio::time::Instant::now() + wait;
    let mut attempt = 1_u32;
    loop {
        match Database::connect(&settings.database()).await {
            Ok(database) => return Ok(database),
            Err(err) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(
                    attempt,
                    error = %err,
                    "the database is not reachable yet; retrying (DB_STARTUP_WAIT_SECONDS={})",
                    settings.database.db_startup_wait_seconds.0
                );
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                tokio::time::sleep(left.min(std::time::Duration::from_secs(1))).await;
                attempt += 1;
            }
            Err(err) => {
                return Err(err).with_context(|| {
                    format!(
                        "connecting to the database at {}",
                        userhub_config::redact(&settings.database_url())
                    )
                });
            }
        }
    }
}

/// The use cases, wired to the adapters.
#[derive(Clone)]
struct Services {
    auth: AuthService,
    users: UserService,
    recovery: RecoveryService,
    audit: AuditService,
    counter: Arc<SeaOrmRequestCounter>,
    clock: Arc<dyn Clock>,
}

impl Services {
    async fn build(
        settings: &Settings,
        database: &Database,
        tokens: JwtTokenIssuer,
        throttle_key: SecretString,
    ) -> anyhow::Result<Self> {
        let hasher = BcryptPasswordHasher::new(settings.accounts.bcrypt_cost)
            .await
            .context("BCRYPT_COST")?;
        let ports = Ports {
            users: Arc::new(SeaOrmUserRepository::new(database.clone())),
            sessions: Arc::new(SeaOrmSessionRepository::new(database.clone())),
            throttle: Arc::new(SeaOrmLoginThrottle::new(database.clone(), throttle_key)),
            hasher: Arc::new(hasher),
            tokens: Arc::new(tokens),
            mail: Arc::new(SeaOrmMailQueue::new(database.clone())),
            audit: Arc::new(SeaOrmAuditLog::new(database.clone())),
            clock: Arc::new(SystemClock),
        };
        let clock = ports.clock.clone();
        let mailer: Arc<dyn Mailer> = match settings.smtp() {
            Some(smtp) => Arc::new(SmtpMailer::new(&smtp).map_err(anyhow::Error::msg)?),
            None => {
                tracing::warn!("SMTP_HOST is not set: mail is written to the log, not sent");
                Arc::new(LogMailer)
            }
        };
        let counter = Arc::new(SeaOrmRequestCounter::new(database.clone()));
        Ok(Self {
            auth: AuthService::new(
                ports.clone(),
                AuthConfig {
                    refresh_token_ttl: settings.tokens.refresh_token_expire_days.time(),
                    refresh_reuse_grace: settings.tokens.refresh_reuse_grace_seconds.time(),
                    lockout: settings.lockout(),
                    password_policy: settings.password_policy(),
                    require_verified_email: settings.accounts.require_verified_email,
                },
            ),
            users: UserService::new(
                ports.clone(),
                settings.password_policy(),
                settings.lockout(),
            )
            .email_change_requires_password(settings.accounts.email_change_requires_password),
            audit: AuditService::new(ports.clone(), settings.database.audit_retention_days.time()),
            recovery: RecoveryService::new(
                ports,
                RecoveryPorts {
                    tokens: Arc::new(SeaOrmRecoveryTokens::new(database.clone())),
                    mailer,
                    counter: counter.clone(),
                },
                settings.recovery(),
            ),
            counter,
            clock,
        })
    }

    /// The cleanup task (unless turned off), the mail worker and the
    /// metrics upkeep.
    fn spawn_background(
        self,
        settings: &Settings,
        metrics: &Metrics,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let cleanup = (settings.database.session_cleanup_interval_seconds.0 > 0).then(|| {
            tokio::spawn(purge_every(
                self.auth,
                self.recovery.clone(),
                self.audit,
                self.counter,
                self.clock,
                settings.database.session_cleanup_interval_seconds.0,
            ))
        });
        let mail = tokio::spawn(deliver_mail(self.recovery));
        let upkeep = tokio::spawn(upkeep_every(metrics.clone()));
        cleanup.into_iter().chain([upkeep, mail]).collect()
    }
}

/// The per-IP limit, the hashing budget and the per-account write limit,
/// held where `RATE_LIMIT_STORE` says.
fn rate_limits(
    settings: &Settings,
    counter: &Arc<SeaOrmRequestCounter>,
) -> (
    Option<AuthRateLimit>,
    Option<HashBudget>,
    Option<HashBudget>,
) {
    match settings.accounts.rate_limit_store {
        RateLimitStore::Memory => (
            AuthRateLimit::local(settings.accounts.auth_rate_limit_per_minute),
            HashBudget::local(settings.accounts.password_hash_budget_per_minute),
            HashBudget::local(settings.accounts.user_write_limit_per_minute),
        ),
        RateLimitStore::Database => {
            let counter: Arc<dyn RequestCounter> = counter.clone();
            (
                AuthRateLimit::shared(
                    counter.clone(),
                    settings.accounts.auth_rate_limit_per_minute,
                    "ip",
                ),
                HashBudget::shared(
                    counter.clone(),
                    settings.accounts.password_hash_budget_per_minute,
                    "hash",
                ),
                HashBudget::shared(
                    counter,
                    settings.accounts.user_write_limit_per_minute,
                    "write",
                ),
            )
        }
    }
}

/// Applies pending migrations, under a lock, on a direct connection: the
/// pool's own, or `DATABASE_DIRECT_URL`'s behind PgBouncer.
async fn migrate(settings: &Settings, database: &Database) -> anyhow::Result<()> {
    let Some(url) = settings.direct_database_url() else {
        anyhow::bail!("DATABASE_DIRECT_URL: required to apply migrations behind a pooler");
    };
    let separate = (settings.database.db_pooler == DbPooler::Pgbouncer).then(|| {
        let mut direct = settings.database();
        direct.url.clone_from(&url);
        direct.pgbouncer = false;
        direct.max_connections = 2;
        direct.min_connections = 0;
        direct
    });
    let direct = match &separate {
        Some(direct) => Database::connect(direct).await.with_context(|| {
            format!(
                "connecting to DATABASE_DIRECT_URL {}",
                userhub_config::redact(&url)
            )
        })?,
        None => database.clone(),
    };
    let result = direct
        .with_migration_lock(&url, Migrator::up(direct.sea_orm(), None))
        .await
        .context("applying migrations");
    if separate.is_some() {
        let _ = direct.close().await;
    }
    result
}

/// Deletes ended sessions, expired reset tokens, mail jobs finished a
/// week ago and audit events past their retention now and then, so the
/// tables stay small.
async fn purge_every(
    auth: AuthService,
    recovery: RecoveryService,
    audit: AuditService,
    counter: Arc<SeaOrmRequestCounter>,
    clock: Arc<dyn Clock>,
    seconds: u64,
) {
    let mut interval = tokio::time::interval(std::time::Duration::from_secs(seconds));
    loop {
        interval.tick().await;
        if let Err(err) = auth.purge_ended_sessions().await {
            tracing::warn!(error = %err, "deleting ended sessions failed; will retry");
        }
        let week_ago = clock.now() - time::Duration::days(7);
        if let Err(err) = recovery.purge(week_ago).await {
            tracing::warn!(error = %err, "deleting old reset tokens and mail failed; will retry");
        }
        if let Err(err) = audit.purge().await {
            tracing::warn!(error = %err, "deleting old audit events failed; will retry");
        }
        // The longest window counted is an hour (mail per address).
        let hours_ago = clock.now() - time::Duration::hours(2);
        if let Err(err) = counter.purge(hours_ago).await {
            tracing::warn!(error = %err, "deleting old request counts failed; will retry");
        }
    }
}

/// Sends queued mail: polls the queue every second, and goes on at once
/// while it finds work. A job taken by an instance that stops is taken
/// again when its lease ends.
async fn deliver_mail(recovery: RecoveryService) {
    loop {
        match recovery.deliver_due().await {
            Ok(0) => tokio::time::sleep(std::time::Duration::from_secs(1)).await,
            Ok(_) => {}
            Err(err) => {
                tracing::warn!(error = %err, "reading the mail queue failed; will retry");
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            }
        }
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn ensure_first_superuser(
    users: &UserService,
    settings: &Settings,
) -> anyhow::Result<Option<bool>> {
    let (Some(email), Some(password)) = (
        &settings.accounts.first_superuser_email,
        &settings.accounts.first_superuser_password,
    ) else {
        return Ok(None);
    };
    let cmd = CreateUser {
        email: Email::parse(email).context("FIRST_SUPERUSER_EMAIL")?,
        username: Username::parse(&settings.accounts.first_superuser_username)
            .context("FIRST_SUPERUSER_USERNAME")?,
        password: Password::new(SecretString::from(password.expose_secret().to_owned()))
            .context("FIRST_SUPERUSER_PASSWORD")?,
        full_name: None,
        is_active: None,
        is_superuser: None,
        is_verified: None,
    };
    let created = users
        .ensure_superuser(cmd)
        .await
        .context("creating the first superuser")?;
    Ok(Some(created))
}
