//! Registration, login, token refresh and request authentication.

use secrecy::SecretString;
use time::{Duration, OffsetDateTime};
use tracing::info;

use super::Ports;
use super::throttle::{LockoutPolicy, Throttle};
use crate::PortError;
use crate::model::{PasswordPolicy, SessionId, SignInProof, UserId};
use crate::ports::{RefreshToken, TokenError};

mod codes;
mod linking;
mod login;
mod mfa;
mod oauth;
mod password;
mod refresh;
mod register;
mod sessions;
#[cfg(test)]
mod test_support;

pub use linking::UnlinkError;
pub use login::{LoginError, LoginRequest, MfaLoginError};
pub use mfa::{MfaChangeError, MfaResetError, TotpEnrolment};
pub use oauth::{OAuthCallback, OAuthError};
pub use password::ChangePasswordError;
pub use refresh::RefreshError;
pub use register::RegisterUser;
pub use sessions::{AuthenticateError, Authenticated, EndSessionError};

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

/// The authentication use cases.
#[derive(Clone)]
pub struct AuthService {
    ports: Ports,
    config: AuthConfig,
    throttle: Throttle,
}

impl AuthService {
    /// One failed-login throttle per service, built from `config.lockout`.
    #[must_use]
    pub fn new(ports: Ports, config: AuthConfig) -> Self {
        let throttle = Throttle::new(ports.throttle.clone(), ports.audit.clone(), config.lockout);
        Self {
            ports,
            config,
            throttle,
        }
    }

    /// Deletes ended sessions, stale failed-login state and expired login
    /// challenges, so that no table grows without bound.
    pub async fn purge_ended_sessions(&self) -> Result<u64, PortError> {
        let now = self.ports.clock.now();
        let purged = self.ports.sessions.purge_ended(now).await?;
        let forgotten = self.throttle.purge(now).await?
            + self.ports.mfa.purge(now).await?
            + self.ports.identities.purge(now).await?;
        if purged > 0 || forgotten > 0 {
            info!(
                purged,
                forgotten, "ended sessions and old login failures deleted"
            );
        }
        Ok(purged + forgotten)
    }

    /// Mails `user` a notice of a change of a way in, to the account's
    /// address; with `target`, the notice carries a link that undoes it.
    async fn notify(
        &self,
        user: &crate::model::User,
        kind: crate::model::MailKind,
        target: Option<crate::model::UndoTarget>,
        client: &crate::model::ClientInfo,
    ) {
        let notice = crate::model::Notice {
            kind,
            user_id: user.id,
            to: user.email.clone(),
            new_email: None,
            target,
        };
        crate::services::queue_notice(self.ports.outbox(), &notice, client).await;
    }

    fn issue(
        &self,
        user_id: UserId,
        session_id: SessionId,
        proof: SignInProof,
        refresh: RefreshToken,
        now: OffsetDateTime,
    ) -> Result<IssuedTokens, PortError> {
        let access = self
            .ports
            .tokens
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
        // Spent sign-in states that expired.
        mocks
            .identities
            .expect_purge()
            .with(eq(NOW))
            .times(1)
            .returning(|_| Ok(4));
        assert_eq!(service(mocks).purge_ended_sessions().await.unwrap(), 10);
    }
}
