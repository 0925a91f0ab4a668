//! Authenticating requests, and the caller's sessions: list, end one, end all.

use tracing::info;

use super::AuthConfig;
use crate::PortError;
use crate::model::{AuditEvent, AuditKind, ClientInfo, SessionId, SessionSummary, User};
use crate::model::{LAST_USED_RESOLUTION, TokenGrant};
use crate::ports::{AccessClaims, PERSONAL_TOKEN_PREFIX, TokenError};
use crate::services::SessionPorts;

/// The caller behind a valid access token or personal access token.
#[derive(Clone, Debug)]
pub struct Authenticated {
    /// The caller, active.
    pub user: User,
    /// What proved it is them.
    pub credential: Credential,
}

/// What authenticated a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credential {
    /// An access token of this live session.
    Session(SessionId),
    /// A live personal access token (the routes that act on a session or
    /// a credential refuse these at the edge).
    Token(TokenGrant),
}

impl Authenticated {
    /// The caller signed in with a session: `user`, by `session`.
    #[must_use]
    pub fn by_session(user: User, session: SessionId) -> Self {
        Self {
            user,
            credential: Credential::Session(session),
        }
    }

    /// The session the caller's access token belongs to; none for a
    /// personal access token.
    #[must_use]
    pub fn session_id(&self) -> Option<SessionId> {
        match self.credential {
            Credential::Session(id) => Some(id),
            Credential::Token(_) => None,
        }
    }

    /// The personal access token that authenticated the request, if one did.
    #[must_use]
    pub fn token(&self) -> Option<&TokenGrant> {
        match &self.credential {
            Credential::Token(grant) => Some(grant),
            Credential::Session(_) => None,
        }
    }
}

/// Why a request could not be authenticated.
#[derive(Debug, thiserror::Error)]
pub enum AuthenticateError {
    /// Bad token, ended session or deactivated user.
    #[error("could not validate credentials")]
    InvalidToken,
    /// A port failed; [`PortError`] tells whether retrying may help.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Why a session could not be ended.
#[derive(Debug, thiserror::Error)]
pub enum EndSessionError {
    /// No live session with this id belongs to the caller.
    #[error("session not found")]
    NotFound,
    /// A port failed; [`PortError`] tells whether retrying may help.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Request authentication, refresh, and the caller's sessions: the hot
/// path, which touches no hasher, throttle or mail.
#[derive(Clone)]
pub struct SessionService {
    pub(super) ports: SessionPorts,
    pub(super) config: AuthConfig,
}

impl SessionService {
    /// Reads `config`'s refresh lifetime, reuse grace and verification rule.
    #[must_use]
    pub fn new(ports: SessionPorts, config: AuthConfig) -> Self {
        Self { ports, config }
    }

    /// Deletes ended sessions, so that the table does not grow without bound.
    pub async fn purge_ended_sessions(&self) -> Result<u64, PortError> {
        let purged = self
            .ports
            .sessions
            .purge_ended(self.ports.clock.now())
            .await?;
        if purged > 0 {
            info!(purged, "ended sessions deleted");
        }
        Ok(purged)
    }

    /// Resolves a bearer token to an active user: an access token of a
    /// live session, or a live personal access token (`uhp_…`).
    pub async fn authenticate(
        &self,
        access_token: &str,
    ) -> Result<Authenticated, AuthenticateError> {
        if access_token.starts_with(PERSONAL_TOKEN_PREFIX) {
            return self.authenticate_personal(access_token).await;
        }
        let claims = self.claimed_user(access_token)?;
        let now = self.ports.clock.now();
        let user = self
            .ports
            .sessions
            .find_active_user(claims.user_id, claims.session_id, now)
            .await?
            .ok_or(AuthenticateError::InvalidToken)?;
        Ok(Authenticated::by_session(user, claims.session_id))
    }

    /// A personal access token: its checksum before any lookup, then its
    /// active owner in one read; its use recorded at most once a minute.
    async fn authenticate_personal(
        &self,
        presented: &str,
    ) -> Result<Authenticated, AuthenticateError> {
        let hash = self
            .ports
            .tokens
            .personal_token_hash(presented)
            .ok_or(AuthenticateError::InvalidToken)?;
        let now = self.ports.clock.now();
        let (user, grant) = self
            .ports
            .pats
            .authenticate(&hash, now)
            .await?
            .ok_or(AuthenticateError::InvalidToken)?;
        if grant
            .last_used_at
            .is_none_or(|at| now - at >= LAST_USED_RESOLUTION)
        {
            // Bookkeeping: its failure costs the request nothing.
            if let Err(err) = self
                .ports
                .pats
                .touch(grant.id, now, LAST_USED_RESOLUTION)
                .await
            {
                tracing::warn!(error = %err, "recording a token's use failed");
            }
        }
        Ok(Authenticated {
            user,
            credential: Credential::Token(grant),
        })
    }

    /// Whom a validly signed access token names, without asking the store
    /// whether its session is still live: enough to charge a per-caller
    /// budget before any database work, never enough to authorise.
    ///
    /// # Errors
    /// [`AuthenticateError::InvalidToken`] for a token that is not a valid access token.
    pub fn claimed_user(&self, access_token: &str) -> Result<AccessClaims, AuthenticateError> {
        self.ports
            .tokens
            .verify_access_token(access_token)
            .map_err(|err| match err {
                TokenError::Invalid(reason) => {
                    tracing::debug!(%reason, "access token refused");
                    AuthenticateError::InvalidToken
                }
                TokenError::Port(err) => AuthenticateError::Port(err),
            })
    }

    /// Ends the caller's own session: its refresh token and every access
    /// token carrying its id stop working at once.
    pub async fn logout(
        &self,
        caller: &Authenticated,
        client: &ClientInfo,
    ) -> Result<(), PortError> {
        // A personal access token has no session to end (its route
        // refuses tokens at the edge).
        let Some(session) = caller.session_id() else {
            return Ok(());
        };
        let now = self.ports.clock.now();
        let event = AuditEvent::new(AuditKind::SessionEnded, now, client)
            .own(caller.user.id)
            .session(session);
        self.ports
            .sessions
            .revoke(session, now, Some(event))
            .await?;
        info!(user_id = %caller.user.id, session_id = %session, "logged out");
        Ok(())
    }

    /// Ends every session of the caller, this one included.
    pub async fn logout_all(
        &self,
        caller: &Authenticated,
        client: &ClientInfo,
    ) -> Result<(), PortError> {
        let now = self.ports.clock.now();
        let event = AuditEvent::new(AuditKind::SessionsEndedAll, now, client).own(caller.user.id);
        self.ports
            .sessions
            .revoke_all_for_user(caller.user.id, None, now, Some(event))
            .await?;
        info!(user_id = %caller.user.id, "logged out everywhere");
        Ok(())
    }

    /// The caller's live sessions, the current one marked.
    pub async fn sessions(&self, caller: &Authenticated) -> Result<Vec<SessionSummary>, PortError> {
        let now = self.ports.clock.now();
        let sessions = self
            .ports
            .sessions
            .list_live_for_user(caller.user.id, now)
            .await?;
        Ok(sessions
            .into_iter()
            .map(|session| SessionSummary {
                current: Some(session.id) == caller.session_id(),
                session,
            })
            .collect())
    }

    /// Ends one of the caller's sessions.
    ///
    /// # Errors
    /// [`EndSessionError::NotFound`] for a session that is not a live one of the caller.
    pub async fn end_session(
        &self,
        caller: &Authenticated,
        session: SessionId,
        client: &ClientInfo,
    ) -> Result<(), EndSessionError> {
        let now = self.ports.clock.now();
        let event = AuditEvent::new(AuditKind::SessionEnded, now, client)
            .own(caller.user.id)
            .session(session);
        if !self
            .ports
            .sessions
            .revoke_for_user(caller.user.id, session, now, &event)
            .await?
        {
            return Err(EndSessionError::NotFound);
        }
        info!(user_id = %caller.user.id, session_id = %session, "session ended");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use mockall::predicate::eq;

    use super::*;
    use crate::model::*;

    use crate::model::Session;
    use crate::services::auth::test_support::*;
    use crate::services::auth::*;
    use crate::services::fixtures::{Mocks, NOW, user};

    #[tokio::test]
    async fn authenticate_resolves_the_user_of_a_live_session() {
        let ada = user("ada");
        let (uid, sid) = (ada.id, SessionId::generate());
        let mut mocks = Mocks::default();
        mocks.access_token_names(uid, sid);
        mocks
            .sessions
            .expect_find_active_user()
            .with(eq(uid), eq(sid), eq(NOW))
            .returning(move |_, _, _| Ok(Some(ada.clone())));
        let auth = session_service(mocks).authenticate("jwt").await.unwrap();
        assert_eq!((auth.user.id, auth.session_id()), (uid, Some(sid)));
    }

    #[tokio::test]
    async fn authenticate_refuses_a_valid_token_whose_session_ended() {
        let mut mocks = Mocks::default();
        mocks.access_token_names(UserId::generate(), SessionId::generate());
        mocks.session_finds(None);
        assert!(matches!(
            session_service(mocks).authenticate("jwt").await,
            Err(AuthenticateError::InvalidToken)
        ));
    }

    #[tokio::test]
    async fn authenticate_refuses_a_bad_token_without_touching_storage() {
        let mut mocks = Mocks::default();
        mocks
            .tokens
            .expect_verify_access_token()
            .returning(|_| Err(TokenError::Invalid("bad signature".into())));
        assert!(matches!(
            session_service(mocks).authenticate("jwt").await,
            Err(AuthenticateError::InvalidToken)
        ));
    }

    #[tokio::test]
    async fn ending_a_session_that_is_not_the_callers_is_not_found() {
        let ada = user("ada");
        let mut mocks = Mocks::default();
        mocks
            .sessions
            .expect_revoke_for_user()
            .returning(|_, _, _, _| Ok(false));
        let err = session_service(mocks)
            .end_session(&caller(&ada), SessionId::generate(), &ClientInfo::default())
            .await
            .unwrap_err();
        assert!(matches!(err, EndSessionError::NotFound));
    }

    #[tokio::test]
    async fn sessions_marks_the_callers_own_session_as_current() {
        let ada = user("ada");
        let me = caller(&ada);
        let (mine, other) = (
            Session {
                id: me.session_id().unwrap(),
                ..session(&ada)
            },
            session(&ada),
        );
        let mut mocks = Mocks::default();
        mocks
            .sessions
            .expect_list_live_for_user()
            .returning(move |_, _| Ok(vec![mine.clone(), other.clone()]));
        let listed = session_service(mocks).sessions(&me).await.unwrap();
        assert_eq!(
            listed.iter().map(|s| s.current).collect::<Vec<_>>(),
            [true, false]
        );
    }
}
