//! Registration, login, token refresh and request authentication, as four
//! services that each take the ports they use: [`AuthService`] (register,
//! log in, change the password), [`SessionService`] (authenticate a
//! request, refresh, the caller's sessions), [`MfaService`] (the second
//! factor) and [`OAuthService`] (provider sign-in and linking).

use std::sync::Arc;

use secrecy::SecretString;
use time::{Duration, OffsetDateTime};
use tracing::info;

use self::codes::Codes;
use self::password::PasswordCheck;
use super::throttle::{LockoutPolicy, Throttle};
use super::{AuthPorts, Outbox, Ports};
use crate::PortError;
use crate::model::{
    ClientInfo, MailKind, NewSession, Notice, PasswordPolicy, SessionId, SignInProof, UndoTarget,
    User, UserId,
};
use crate::ports::{RefreshToken, SessionRepository, TokenError, TokenIssuer, UserRepository};

mod codes;
mod linking;
mod login;
mod mfa;
mod oauth;
mod passkeys;
mod password;
mod refresh;
mod register;
mod sessions;
#[cfg(test)]
mod test_support;
mod tokens;

pub use linking::UnlinkError;
pub use login::{LoginError, LoginRequest, MfaLoginError};
pub use mfa::{MfaChangeError, MfaResetError, MfaService, TotpEnrolment};
pub use oauth::{OAuthCallback, OAuthError, OAuthService};
pub use passkeys::{CeremonyOptions, PasskeyError, PasskeyLoginError, PasskeyService};
pub use password::ChangePasswordError;
pub use refresh::RefreshError;
pub use register::RegisterUser;
pub use sessions::{AuthenticateError, Authenticated, Credential, EndSessionError, SessionService};
pub use tokens::{NewToken, NewTokenError, TokenAccessError, TokenService};

/// Settings of the authentication use cases.
#[derive(Clone, Copy, Debug)]
pub struct AuthConfig {
    /// How long a refresh token (and so an idle session) lives.
    pub refresh_token_ttl: Duration,
    /// How long after a refresh the spent token still yields the same
    /// successor (for clients that raced two refreshes); zero means never.
    pub refresh_reuse_grace: Duration,
    /// When failed password checks refuse further tries.
    pub lockout: LockoutPolicy,
    /// What a new password must be.
    pub password_policy: PasswordPolicy,
    /// Refuse logins of users whose address is not verified.
    pub require_verified_email: bool,
    /// A provider sign-in whose verified address is a local account's
    /// links to that account (otherwise it is refused).
    pub oauth_associate_by_email: bool,
    /// How long a browser may spend at a provider before its sign-in is void.
    pub oauth_state_ttl: Duration,
    /// How long after signing in a session may add a way in without the
    /// password.
    pub reauth_window: Duration,
    /// Longest lifetime of a personal access token, in days.
    pub token_max_days: i64,
}

/// Tokens handed out at login and refresh.
#[derive(Clone, Debug)]
pub struct IssuedTokens {
    /// Signed access token.
    pub access_token: String,
    /// Opaque refresh token.
    pub refresh_token: SecretString,
    /// Access-token lifetime in seconds.
    pub expires_in: i64,
    /// Whose tokens these are.
    pub user_id: UserId,
    /// The session they belong to.
    pub session_id: SessionId,
}

/// The authentication services, each with its part of one set of
/// ports and one configuration.
#[derive(Clone)]
#[allow(missing_docs)] // each field is the service its type names
pub struct AuthServices {
    pub auth: AuthService,
    pub sessions: SessionService,
    pub mfa: MfaService,
    pub oauth: OAuthService,
    pub tokens: TokenService,
    pub passkeys: PasskeyService,
}

impl AuthServices {
    /// Each service takes its part of `ports`.
    #[must_use]
    pub fn new(ports: &Ports, config: AuthConfig) -> Self {
        Self {
            auth: AuthService::new(ports.for_auth(), config),
            sessions: SessionService::new(ports.for_sessions(), config),
            mfa: MfaService::new(ports.for_mfa(), config),
            oauth: OAuthService::new(ports.for_oauth(), config),
            tokens: TokenService::new(ports.for_tokens(), config),
            passkeys: PasskeyService::new(ports.for_passkeys(), config),
        }
    }
}

/// Registration, login (both steps) and password change.
#[derive(Clone)]
pub struct AuthService {
    ports: AuthPorts,
    config: AuthConfig,
    throttle: Throttle,
}

impl AuthService {
    /// One failed-login throttle per service, built from `config.lockout`.
    #[must_use]
    pub fn new(ports: AuthPorts, config: AuthConfig) -> Self {
        let throttle = Throttle::new(ports.throttle.clone(), ports.audit.clone(), config.lockout);
        Self {
            ports,
            config,
            throttle,
        }
    }

    /// Deletes stale failed-login state and expired login challenges, so
    /// that neither table grows without bound.
    pub async fn purge_login_state(&self) -> Result<u64, PortError> {
        let now = self.ports.clock.now();
        let forgotten = self.throttle.purge(now).await? + self.ports.mfa.purge(now).await?;
        if forgotten > 0 {
            info!(forgotten, "old login failures and challenges deleted");
        }
        Ok(forgotten)
    }
}

/// `codes()` (what checking a second-factor code uses) for the services
/// that check codes, and `password_check()` for those that prove a
/// signed-in user's password; each borrows the service's ports and throttle.
macro_rules! checks {
    (codes: $($codes:ty),*; passwords: $($passwords:ty),*) => {
        $(impl $codes {
            fn codes(&self) -> Codes<'_> {
                Codes {
                    mfa: self.ports.mfa.as_ref(),
                    second_factor: self.ports.second_factor.as_ref(),
                    tokens: self.ports.tokens.as_ref(),
                    throttle: &self.throttle,
                }
            }
        })*
        $(impl $passwords {
            fn password_check(&self) -> PasswordCheck<'_> {
                PasswordCheck {
                    hasher: self.ports.hasher.as_ref(),
                    throttle: &self.throttle,
                    clock: self.ports.clock.as_ref(),
                }
            }
        })*
    };
}

checks!(
    codes: AuthService, MfaService;
    passwords: AuthService, MfaService, OAuthService, TokenService, PasskeyService
);

/// Mails `user` a notice of a change of a way in, to the account's
/// address; with `target`, the notice carries a link that undoes it.
async fn notify(
    outbox: Outbox<'_>,
    user: &User,
    kind: MailKind,
    target: Option<UndoTarget>,
    client: &ClientInfo,
) {
    let notice = Notice {
        kind,
        user_id: user.id,
        to: user.email.clone(),
        new_email: None,
        target,
    };
    crate::services::queue_notice(outbox, &notice, client).await;
}

/// Whether the caller's session signed in within `window` of `now` (a
/// refresh keeps the sign-in's time): a way in may be added without the
/// password only then.
async fn signed_in_within(
    sessions: &dyn SessionRepository,
    now: OffsetDateTime,
    caller: &Authenticated,
    window: Duration,
) -> Result<bool, PortError> {
    let live = sessions.list_live_for_user(caller.user.id, now).await?;
    Ok(live
        .iter()
        .find(|s| Some(s.id) == caller.session_id())
        .is_some_and(|s| s.created_at > now - window))
}

/// The end of every sign-in whose session was stored: the login recorded
/// and logged as `what`, and the session's first tokens.
async fn signed_in(
    users: &Arc<dyn UserRepository>,
    tokens: &Arc<dyn TokenIssuer>,
    session: &NewSession,
    refresh: RefreshToken,
    now: OffsetDateTime,
    what: &'static str,
) -> Result<IssuedTokens, PortError> {
    users.record_login(session.user_id, now).await?;
    info!(user_id = %session.user_id, session_id = %session.id, "{what}");
    issue(
        tokens.as_ref(),
        session.user_id,
        session.id,
        session.proof,
        refresh,
        now,
    )
}

/// The token pair of a session that signed in (or refreshed) just now.
fn issue(
    tokens: &dyn TokenIssuer,
    user_id: UserId,
    session_id: SessionId,
    proof: SignInProof,
    refresh: RefreshToken,
    now: OffsetDateTime,
) -> Result<IssuedTokens, PortError> {
    let access = tokens
        .issue_access_token(user_id, session_id, proof, now)
        .map_err(|err| match err {
            TokenError::Port(err) => err,
            TokenError::Invalid(reason) => PortError::unexpected(reason),
        })?;
    Ok(IssuedTokens {
        access_token: access.token,
        refresh_token: refresh.secret,
        expires_in: access.expires_in,
        user_id,
        session_id,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use mockall::predicate::eq;

    use time::Duration;

    use crate::services::auth::test_support::*;

    use crate::services::fixtures::{Mocks, NOW};

    #[tokio::test]
    async fn purging_deletes_sessions_ended_by_now() {
        let mut mocks = Mocks::default();
        mocks
            .sessions
            .expect_purge_ended()
            .with(eq(NOW))
            .times(1)
            .returning(|_| Ok(3));
        assert_eq!(
            session_service(mocks).purge_ended_sessions().await.unwrap(),
            3
        );
    }

    #[tokio::test]
    async fn purging_deletes_old_login_failures_and_expired_challenges() {
        let mut mocks = Mocks::default();
        // Failed-login state is kept twice as long as the longest lock or window.
        mocks
            .throttle
            .expect_purge()
            .with(eq(NOW - Duration::hours(2)))
            .times(1)
            .returning(|_| Ok(2));
        // Login challenges that expired.
        mocks
            .mfa
            .expect_purge()
            .with(eq(NOW))
            .times(1)
            .returning(|_| Ok(1));
        assert_eq!(service(mocks).purge_login_state().await.unwrap(), 3);
    }

    #[tokio::test]
    async fn purging_deletes_spent_sign_in_states_that_expired() {
        let mut mocks = Mocks::default();
        mocks
            .identities
            .expect_purge()
            .with(eq(NOW))
            .times(1)
            .returning(|_| Ok(4));
        assert_eq!(
            oauth_service(mocks, false)
                .purge_spent_states()
                .await
                .unwrap(),
            4
        );
    }
}
