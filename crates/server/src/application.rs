//! [`Application`]: connects, migrates, wires and binds, so that tests can
//! run the real server on port 0.

mod database;
mod tasks;
mod wiring;

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{HttpServer, web};
use anyhow::Context;
use secrecy::ExposeSecret;
use userhub_http::{
    ApiSettings, ApiState, ConsoleSettings, CursorKey, Lifecycle, Metrics, build_app,
};
use userhub_infrastructure::{Database, JwtSettings, JwtTokenIssuer};

use crate::Settings;

use database::{connect, ensure_first_superuser, migrate};
use wiring::{Services, rate_limits};

/// A bound, ready-to-run server.
pub struct Application {
    port: u16,
    server: Server,
    database: Database,
    lifecycle: Arc<Lifecycle>,
    shutdown: ShutdownTiming,
    first_superuser: Option<bool>,
    /// Periodic tasks and workers, stopped with the server.
    background: wiring::Background,
}

/// What serving and `create-superuser` both need: the database, migrated,
/// and the use cases wired to it.
struct Prepared {
    database: Database,
    services: Services,
    cursor_key: CursorKey,
    jwks: String,
}

impl Prepared {
    async fn new(settings: &Settings) -> anyhow::Result<Self> {
        let (signing, previous) = settings.jwt_keys()?;
        let database = connect(settings).await?;
        if settings.database.run_migrations {
            migrate(settings, &database).await?;
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
        let services = Services::build(settings, &database, tokens, throttle_key).await?;
        Ok(Self {
            database,
            services,
            cursor_key,
            jwks,
        })
    }
}

impl Application {
    /// Connects, applies migrations and makes the configured first
    /// superuser, then closes: `create-superuser`'s work, with no port
    /// bound and nothing served. `true` when it was created, `false` when
    /// an account with that address or username exists.
    ///
    /// # Errors
    /// As [`Application::build`]; also when no first superuser is configured.
    pub async fn create_superuser(settings: Settings) -> anyhow::Result<bool> {
        let prepared = Prepared::new(&settings).await?;
        let created = ensure_first_superuser(&prepared.services.users, &settings).await;
        let _ = prepared.database.close().await;
        created?.context("FIRST_SUPERUSER_EMAIL and FIRST_SUPERUSER_PASSWORD are needed")
    }

    /// Connects to the database, applies migrations (unless turned off),
    /// creates the first superuser if configured, and binds the listener.
    ///
    /// # Errors
    /// Bad settings, an unreachable database, a failed migration, a taken port.
    #[allow(clippy::too_many_lines)] // the wiring of one server, in order
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let Prepared {
            database,
            services,
            cursor_key,
            jwks,
        } = Prepared::new(&settings).await?;
        let first_superuser = ensure_first_superuser(&services.users, &settings).await?;
        for provider in &settings.oauth_providers {
            tracing::info!(provider = %provider.name, issuer = %provider.issuer, "sign-in provider configured");
        }
        let (auth_rate_limit, hash_budget, write_limit) = rate_limits(&settings, &services.counter);
        let metrics = Metrics::global();
        metrics::describe_counter!(
            crate::telemetry::DROPPED_METRIC,
            "Log lines not written: the output failed or the queue was full"
        );
        let lifecycle = Arc::new(Lifecycle::default());
        let tasks = services.clone();
        let state = web::Data::new(ApiState {
            auth: services.auth.auth,
            sessions: services.auth.sessions,
            mfa: services.auth.mfa,
            oauth: services.auth.oauth,
            tokens: services.auth.tokens,
            passkeys: services.auth.passkeys,
            users: services.users,
            recovery: services.recovery,
            audit: services.audit,
            webhooks: services.webhooks,
            accounts: services.accounts,
            health: Arc::new(database.clone()),
            version: env!("CARGO_PKG_VERSION"),
            auth_rate_limit,
            hash_budget,
            write_limit,
            trust_forwarded_for: settings.server.trust_forwarded_for,
            cursor_key,
            jwks,
            oauth_cookie_secure: settings.oauth_redirect_base().starts_with("https://"),
            metrics: metrics.clone(),
            lifecycle: lifecycle.clone(),
        });
        let api = ApiSettings {
            cors_origins: settings.cors_origins(),
            max_body_bytes: settings.server.max_body_bytes,
            max_header_bytes: settings.server.max_header_bytes,
            body_timeout: settings.server.body_timeout_seconds.std(),
            console: settings.server.admin_console.then(|| ConsoleSettings {
                providers: settings
                    .oauth_providers
                    .iter()
                    .map(|provider| provider.name.clone())
                    .collect(),
            }),
        };
        let listener = TcpListener::bind((settings.server.host.as_str(), settings.server.port))
            .with_context(|| {
                format!("binding {}:{}", settings.server.host, settings.server.port)
            })?;
        let port = listener.local_addr()?.port();
        // Background work starts only once the server can serve.
        let background = tasks.spawn_background(&settings, &metrics, &lifecycle);
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
        for task in self.background.tasks {
            task.abort();
        }
        // Draining told the webhook workers to stop after the delivery in
        // hand (at most one attempt's timeout); then their endpoints are
        // released, not left leased until the lease ends.
        let deadline = tokio::time::Instant::now() + WEBHOOK_STOP_GRACE;
        for worker in self.background.webhook_workers {
            let abort = worker.abort_handle();
            if tokio::time::timeout_at(deadline, worker).await.is_err() {
                abort.abort();
            }
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

/// How long webhook workers may take to finish the attempt in hand at
/// shutdown: one attempt's timeout, and a moment to record it.
const WEBHOOK_STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(11);

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
