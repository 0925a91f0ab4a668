//! The use cases wired to the adapters, and the request limits.

use std::sync::Arc;

use anyhow::Context;
use secrecy::SecretString;
use userhub_domain::model::RetryPolicy;
use userhub_domain::ports::{Clock, Mailer, RequestCounter, SystemClock};
use userhub_domain::services::{
    AccountService, AuditService, AuthConfig, AuthServices, Ports, RecoveryService, UserService,
    WebhookConfig, WebhookPorts, WebhookService,
};
use userhub_http::{AuthRateLimit, HashBudget, Lifecycle, Metrics};
use userhub_infrastructure::{
    BcryptPasswordHasher, Database, HttpWebhookSender, JwtTokenIssuer, LogMailer,
    OidcProviderSettings, OidcProviders, OidcSettings, SeaOrmAuditLog, SeaOrmIdentityRepository,
    SeaOrmLoginThrottle, SeaOrmMailQueue, SeaOrmMfaRepository, SeaOrmPasskeyRepository,
    SeaOrmPersonalTokenRepository, SeaOrmRecoveryTokens, SeaOrmRequestCounter,
    SeaOrmSessionRepository, SeaOrmUserRepository, SeaOrmWebhookStore, SealingKey, SmtpMailer,
    TotpSecondFactor, WebauthnCeremonies,
};

use crate::Settings;
use crate::settings::RateLimitStore;

use super::tasks::{
    deliver_mail, deliver_webhooks, purge_every, upkeep_every, webhook_backlog_every,
};

/// The use cases, wired to the adapters.
#[derive(Clone)]
pub(super) struct Services {
    pub(super) auth: AuthServices,
    pub(super) users: UserService,
    pub(super) recovery: RecoveryService,
    pub(super) audit: AuditService,
    pub(super) webhooks: WebhookService,
    pub(super) accounts: AccountService,
    pub(super) counter: Arc<SeaOrmRequestCounter>,
    pub(super) clock: Arc<dyn Clock>,
}

impl Services {
    pub(super) async fn build(
        settings: &Settings,
        database: &Database,
        tokens: JwtTokenIssuer,
        throttle_key: SecretString,
    ) -> anyhow::Result<Self> {
        let hasher = BcryptPasswordHasher::new(settings.accounts.bcrypt_cost)
            .await
            .context("BCRYPT_COST")?;
        let second_factor = second_factor(settings, database).await?;
        let webhook_store = Arc::new(SeaOrmWebhookStore::new(
            database.clone(),
            second_factor.sealer(),
        ));
        let ports = Ports {
            users: Arc::new(SeaOrmUserRepository::new(database.clone())),
            sessions: Arc::new(SeaOrmSessionRepository::new(database.clone())),
            throttle: Arc::new(SeaOrmLoginThrottle::new(database.clone(), throttle_key)),
            hasher: Arc::new(hasher),
            tokens: Arc::new(tokens),
            mail: Arc::new(SeaOrmMailQueue::new(database.clone())),
            audit: Arc::new(SeaOrmAuditLog::new(database.clone())),
            clock: Arc::new(SystemClock),
            mfa: Arc::new(SeaOrmMfaRepository::new(database.clone())),
            second_factor: Arc::new(second_factor),
            identities: Arc::new(SeaOrmIdentityRepository::new(database.clone())),
            providers: Arc::new(providers(settings, database).await?),
            pats: Arc::new(SeaOrmPersonalTokenRepository::new(database.clone())),
            passkeys: Arc::new(SeaOrmPasskeyRepository::new(database.clone())),
            ceremonies: Arc::new(
                WebauthnCeremonies::new(&settings.webauthn()?).map_err(anyhow::Error::msg)?,
            ),
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
        if settings.webhooks.webhook_allow_private_networks {
            tracing::warn!(
                "WEBHOOK_ALLOW_PRIVATE_NETWORKS=true: webhook endpoints may be on loopback and private addresses"
            );
        }
        let sender = HttpWebhookSender::new(
            settings.webhooks.webhook_allow_private_networks,
            Arc::new(userhub_http::webhook_body),
        )
        .map_err(anyhow::Error::msg)?;
        let webhooks = WebhookService::new(
            WebhookPorts {
                webhooks: webhook_store.clone(),
                outbox: webhook_store,
                sender: Arc::new(sender),
                users: ports.users.clone(),
                mail: ports.mail.clone(),
                clock: clock.clone(),
            },
            WebhookConfig {
                allow_http: !settings.is_production(),
                retry: RetryPolicy::new(settings.webhooks.webhook_retry_base_seconds.time()),
            },
        );
        Ok(Self {
            webhooks,
            accounts: AccountService::new(ports.for_accounts()),
            auth: AuthServices::new(
                &ports,
                AuthConfig {
                    refresh_token_ttl: settings.tokens.refresh_token_expire_days.time(),
                    refresh_reuse_grace: settings.tokens.refresh_reuse_grace_seconds.time(),
                    lockout: settings.lockout(),
                    password_policy: settings.password_policy(),
                    require_verified_email: settings.accounts.require_verified_email,
                    oauth_associate_by_email: settings.oauth.oauth_associate_by_email,
                    oauth_state_ttl: settings.oauth.oauth_state_ttl_seconds.time(),
                    reauth_window: settings.accounts.reauth_window_minutes.time(),
                    token_max_days: settings.tokens.pat_max_days.into(),
                },
            ),
            users: UserService::new(
                ports.for_users(),
                settings.password_policy(),
                settings.lockout(),
            )
            .email_change_requires_password(settings.accounts.email_change_requires_password)
            .old_email_reserved_for(settings.mail.revert_email_token_days.time()),
            audit: AuditService::new(
                ports.for_audit(),
                settings.database.audit_retention_days.time(),
            ),
            recovery: RecoveryService::new(
                ports.for_recovery(
                    Arc::new(SeaOrmRecoveryTokens::new(database.clone())),
                    mailer,
                    counter.clone(),
                ),
                settings.recovery(),
            ),
            counter,
            clock,
        })
    }

    /// The cleanup task (unless turned off), the mail and webhook
    /// workers and the metrics upkeep.
    pub(super) fn spawn_background(
        self,
        settings: &Settings,
        metrics: &Metrics,
        lifecycle: &Arc<Lifecycle>,
    ) -> Background {
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
        let backlog = tokio::spawn(webhook_backlog_every(
            self.webhooks.clone(),
            metrics.clone(),
        ));
        let webhook_workers = (0..WEBHOOK_WORKERS)
            .map(|_| {
                tokio::spawn(deliver_webhooks(
                    self.webhooks.clone(),
                    metrics.clone(),
                    lifecycle.clone(),
                ))
            })
            .collect();
        Background {
            tasks: cleanup.into_iter().chain([upkeep, mail, backlog]).collect(),
            webhook_workers,
        }
    }
}

/// The tasks that run beside the server.
pub(super) struct Background {
    /// Stopped with the server.
    pub(super) tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Given a moment to finish the delivery in hand and release their
    /// endpoint once the server drains, then stopped.
    pub(super) webhook_workers: Vec<tokio::task::JoinHandle<()>>,
}

/// Webhook workers per instance: each serves one endpoint at a time, so
/// this many slow endpoints do not hold up the others.
const WEBHOOK_WORKERS: usize = 2;

/// The per-IP limit, the hashing budget and the per-account write limit,
/// held where `RATE_LIMIT_STORE` says.
pub(super) fn rate_limits(
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

/// TOTP, sealing with `MFA_ENCRYPTION_KEY`, or in development with a key
/// the server keeps in its database (the same for every instance).
async fn second_factor(
    settings: &Settings,
    database: &Database,
) -> anyhow::Result<TotpSecondFactor> {
    let (current, previous) = settings.sealing_keys()?;
    let current = match current {
        Some(key) => key,
        None => SealingKey::derive(
            &database
                .server_secret("totp")
                .await
                .context("reading the server's secret (are the migrations applied?)")?,
        ),
    };
    Ok(TotpSecondFactor::new(
        &settings.mfa.mfa_issuer,
        current,
        previous,
    ))
}

/// The OpenID providers; their `state` is signed with a key the server
/// keeps in its database, so any instance can take any callback.
async fn providers(settings: &Settings, database: &Database) -> anyhow::Result<OidcProviders> {
    let state_key = database
        .server_secret("oauth_state")
        .await
        .context("reading the server's secret (are the migrations applied?)")?;
    OidcProviders::new(OidcSettings {
        providers: settings
            .oauth_providers
            .iter()
            .map(|p| OidcProviderSettings {
                name: p.name.clone(),
                issuer: p.issuer.clone(),
                client_id: p.client_id.clone(),
                client_secret: p.client_secret.clone(),
                scopes: p.scopes.split_whitespace().map(str::to_owned).collect(),
            })
            .collect(),
        redirect_base: settings.oauth_redirect_base(),
        state_key,
    })
    .map_err(|err| anyhow::anyhow!("OAUTH_PROVIDERS: {err}"))
}
