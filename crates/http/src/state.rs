//! What every handler shares, and the budgets handlers spend from it.

use std::sync::Arc;

use userhub_domain::model::UserId;
use userhub_domain::ports::HealthProbe;
use userhub_domain::services::{
    AccountService, AuditService, AuthService, MfaService, OAuthService, PasskeyService,
    RecoveryService, SessionService, TokenService, UserService, WebhookService,
};

use crate::cursor::CursorKey;
use crate::error::ApiError;
use crate::rate_limit::{AuthRateLimit, HashBudget};

/// What every handler shares.
pub struct ApiState {
    /// Registration, login, password change.
    pub auth: AuthService,
    /// Request authentication, refresh, the caller's sessions.
    pub sessions: SessionService,
    /// The second factor.
    pub mfa: MfaService,
    /// Provider sign-in and linking.
    pub oauth: OAuthService,
    /// Personal access tokens.
    pub tokens: TokenService,
    /// Passkeys.
    pub passkeys: PasskeyService,
    /// User management.
    pub users: UserService,
    /// Password reset and its mail.
    pub recovery: RecoveryService,
    /// The audit trail.
    pub audit: AuditService,
    /// Webhooks.
    pub webhooks: WebhookService,
    /// A superuser's view of an account's sessions and ways in.
    pub accounts: AccountService,
    /// Database health.
    pub health: Arc<dyn HealthProbe>,
    /// Reported by `/health`.
    pub version: &'static str,
    /// Per-IP limit on register, login and refresh; `None` turns it off.
    pub auth_rate_limit: Option<AuthRateLimit>,
    /// Per-caller budget on requests that hash a password; `None` turns it off.
    pub hash_budget: Option<HashBudget>,
    /// Per-account budget on profile writes; `None` turns it off.
    pub write_limit: Option<HashBudget>,
    /// Take the client's address from `X-Forwarded-For` (set only behind a trusted proxy).
    pub trust_forwarded_for: bool,
    /// Seals the listings' `next_cursor`.
    pub cursor_key: CursorKey,
    /// The JWK Set served at `/.well-known/jwks.json`, as JSON.
    pub jwks: String,
    /// Mark the sign-in state cookie `Secure` (the redirect base is HTTPS).
    pub oauth_cookie_secure: bool,
    /// What `/metrics` renders.
    pub metrics: crate::Metrics,
    /// Draining state and requests in flight, for graceful shutdown.
    pub lifecycle: Arc<crate::Lifecycle>,
}

impl ApiState {
    /// Spends one unit of the written account's write budget, or refuses
    /// with 429: one account cannot flood the audit trail or an inbox.
    pub(crate) async fn spend_write_budget(&self, account: UserId) -> Result<(), ApiError> {
        let Some(budget) = &self.write_limit else {
            return Ok(());
        };
        budget.check(account.to_string()).await.map_err(|wait| {
            tracing::debug!("account write limit exceeded");
            ApiError::TooManyRequests {
                detail: "Too many changes to this account; slow down",
                retry_after: wait.as_secs() + 1,
            }
        })
    }

    /// Spends one unit of `caller`'s hashing budget, or refuses with 429.
    pub(crate) async fn spend_hash_budget(&self, caller: String) -> Result<(), ApiError> {
        let Some(budget) = &self.hash_budget else {
            return Ok(());
        };
        budget.check(caller).await.map_err(|wait| {
            // Debug only: a flood of refusals must not become a flood of log lines.
            tracing::debug!("password hashing budget exceeded");
            ApiError::TooManyRequests {
                detail: "Too many requests; slow down",
                retry_after: wait.as_secs() + 1,
            }
        })
    }
}
