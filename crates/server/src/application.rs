//! [`Application`]: connects, migrates, wires and binds, so that tests can
//! run the real server on port 0.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{HttpServer, web};
use anyhow::Context;
use migration::{Migrator, MigratorTrait};
use secrecy::{ExposeSecret, SecretString};
use time::Duration;
use userhub_domain::model::{Email, Password, Username};
use userhub_domain::ports::SystemClock;
use userhub_domain::services::{AuthConfig, AuthService, CreateUser, Ports, UserService};
use userhub_http::{
    ApiSettings, ApiState, AuthRateLimit, CursorKey, HashBudget, Metrics, build_app,
};
use userhub_infrastructure::{
    BcryptPasswordHasher, Database, JwtSettings, JwtTokenIssuer, SeaOrmLoginThrottle,
    SeaOrmSessionRepository, SeaOrmUserRepository,
};

use crate::Settings;

/// A bound, ready-to-run server.
pub struct Application {
    port: u16,
    server: Server,
    database: Database,
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
        let (signing, refresh_secret) = settings.jwt_keys()?;
        let database = Database::connect(&settings.database())
            .await
            .with_context(|| {
                format!(
                    "connecting to the database at {}",
                    redact(settings.database_url())
                )
            })?;
        if settings.run_migrations {
            Migrator::up(database.connection(), None)
                .await
                .context("applying migrations")?;
        }
        let hasher = BcryptPasswordHasher::new(settings.bcrypt_cost)
            .await
            .context("BCRYPT_COST")?;
        let cursor_key = CursorKey::derive(refresh_secret.expose_secret().as_bytes());
        let tokens = JwtTokenIssuer::new(JwtSettings {
            signing,
            refresh_secret,
            issuer: settings.jwt_issuer.clone(),
            audience: settings.jwt_audience.clone(),
            access_token_ttl: Duration::minutes(settings.access_token_expire_minutes.max(1)),
            leeway_seconds: settings.jwt_leeway_seconds,
        })
        .context("JWT signing keys")?;
        let jwks = serde_json::to_string(tokens.jwks())?;
        let ports = Ports {
            users: Arc::new(SeaOrmUserRepository::new(database.clone())),
            sessions: Arc::new(SeaOrmSessionRepository::new(database.clone())),
            throttle: Arc::new(SeaOrmLoginThrottle::new(database.clone())),
            hasher: Arc::new(hasher),
            tokens: Arc::new(tokens),
            clock: Arc::new(SystemClock),
        };
        let auth = AuthService::new(
            ports.clone(),
            AuthConfig {
                refresh_token_ttl: Duration::days(settings.refresh_token_expire_days.max(1)),
                refresh_reuse_grace: Duration::seconds(settings.refresh_reuse_grace_seconds.max(0)),
                lockout: settings.lockout(),
                password_policy: settings.password_policy(),
            },
        );
        let users = UserService::new(ports, settings.password_policy(), settings.lockout());
        let cleanup = (settings.session_cleanup_interval_seconds > 0).then(|| {
            tokio::spawn(purge_sessions_every(
                auth.clone(),
                settings.session_cleanup_interval_seconds,
            ))
        });
        ensure_first_superuser(&users, &settings).await?;
        let metrics = Metrics::global();
        let upkeep = tokio::spawn(upkeep_every(metrics.clone()));

        let state = web::Data::new(ApiState {
            auth,
            users,
            health: Arc::new(database.clone()),
            version: env!("CARGO_PKG_VERSION"),
            auth_rate_limit: AuthRateLimit::per_minute(settings.auth_rate_limit_per_minute),
            hash_budget: HashBudget::per_minute(settings.password_hash_budget_per_minute),
            trust_forwarded_for: settings.trust_forwarded_for,
            cursor_key,
            jwks,
            metrics: metrics.clone(),
        });
        let api = ApiSettings {
            cors_origins: settings.cors_origins(),
            max_body_bytes: settings.max_body_bytes,
        };
        let listener = TcpListener::bind((settings.host.as_str(), settings.port))
            .with_context(|| format!("binding {}:{}", settings.host, settings.port))?;
        let port = listener.local_addr()?.port();
        let mut server = HttpServer::new(move || build_app(state.clone(), api.clone()))
            .listen(listener)?
            // A connection must send a complete request head within this
            // time, whether it sent nothing or part of one; then it is closed.
            .client_request_timeout(std::time::Duration::from_secs(5))
            .client_disconnect_timeout(std::time::Duration::from_secs(1))
            // Signals are handled in `run_until_stopped`, so SIGINT drains too.
            .disable_signals()
            .shutdown_timeout(30);
        if settings.workers > 0 {
            server = server.workers(settings.workers);
        }
        tracing::info!(address = %settings.host, port, "listening");
        Ok(Self {
            port,
            server: server.run(),
            database,
            background: cleanup.into_iter().chain([upkeep]).collect(),
        })
    }

    /// The bound port (useful when configured as 0).
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A handle that stops the server.
    #[must_use]
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGTERM or SIGINT, then drains in-flight requests.
    ///
    /// # Errors
    /// An I/O error of the server.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let handle = self.server.handle();
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutting down: draining in-flight requests");
            handle.stop(true).await;
        });
        self.server.await?;
        for task in self.background {
            task.abort();
        }
        self.database.close().await?;
        Ok(())
    }
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

/// Deletes ended sessions now and then, so the table stays small.
async fn purge_sessions_every(auth: AuthService, seconds: u64) {
    let mut interval = tokio::time::interval(std::time::Duration::from_secs(seconds));
    loop {
        interval.tick().await;
        if let Err(err) = auth.purge_ended_sessions().await {
            tracing::warn!(error = %err, "deleting ended sessions failed; will retry");
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

async fn ensure_first_superuser(users: &UserService, settings: &Settings) -> anyhow::Result<()> {
    let (Some(email), Some(password)) = (
        &settings.first_superuser_email,
        &settings.first_superuser_password,
    ) else {
        return Ok(());
    };
    let cmd = CreateUser {
        email: Email::parse(email).context("FIRST_SUPERUSER_EMAIL")?,
        username: Username::parse(&settings.first_superuser_username)
            .context("FIRST_SUPERUSER_USERNAME")?,
        password: Password::new(SecretString::from(password.expose_secret().to_owned()))
            .context("FIRST_SUPERUSER_PASSWORD")?,
        full_name: None,
        is_active: None,
        is_superuser: None,
    };
    users
        .ensure_superuser(cmd)
        .await
        .map_err(|e| anyhow::anyhow!("creating the first superuser: {e}"))?;
    Ok(())
}

/// The URL without its password, for error messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}
