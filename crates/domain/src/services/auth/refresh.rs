//! Refresh-token rotation, and reuse detection.

use time::OffsetDateTime;
use tracing::warn;

use super::{IssuedTokens, SessionService, issue};
use crate::PortError;
use crate::model::{AuditEvent, AuditKind, ClientInfo, Session, SessionId, UserId};
use crate::ports::RefreshToken;

/// Why a refresh failed.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// Unknown, expired, revoked or spent token, or a deactivated user.
    #[error("invalid refresh token")]
    InvalidToken,
    /// The settings require a verified address and the user's is not
    /// (any more): a session cannot outlive the rule that login applies.
    #[error("email not verified")]
    EmailNotVerified,
    /// A port failed; [`PortError`] tells whether retrying may help.
    #[error(transparent)]
    Port(#[from] PortError),
}

impl SessionService {
    /// Spends a refresh token for a new token pair in the same session.
    ///
    /// A token that was already spent is taken as stolen and its whole
    /// session is revoked, unless it was spent less than the grace window
    /// ago and its successor is still current: then the caller raced its own
    /// refresh and gets that same successor. Of concurrent refreshes of one
    /// token exactly one rotates; the others are reuse.
    #[tracing::instrument(skip_all)]
    pub async fn refresh(
        &self,
        presented: &str,
        client: &ClientInfo,
    ) -> Result<IssuedTokens, RefreshError> {
        let hash = self.ports.tokens.hash_token(presented);
        let now = self.ports.clock.now();
        if let Some(session) = self.ports.sessions.find_by_refresh_token(&hash).await? {
            if !session.is_live(now) {
                return Err(RefreshError::InvalidToken);
            }
            self.ensure_may_refresh(session.user_id, session.id, now)
                .await?;
            let next = self.ports.tokens.successor_refresh_token(presented);
            let expires_at = now + self.config.refresh_token_ttl;
            if self
                .ports
                .sessions
                .rotate(session.id, &hash, &next.hash, now, expires_at)
                .await?
            {
                return Ok(self.issue(&session, next, now)?);
            }
            // Another request spent the same token between our read and write.
        }
        let Some((session_id, spent_at)) = self.ports.sessions.find_by_spent_token(&hash).await?
        else {
            return Err(RefreshError::InvalidToken);
        };
        let grace = self.config.refresh_reuse_grace;
        if grace.is_positive() && now - spent_at <= grace {
            let next = self.ports.tokens.successor_refresh_token(presented);
            let current = self
                .ports
                .sessions
                .find_by_refresh_token(&next.hash)
                .await?;
            if let Some(session) = current.filter(|s| s.id == session_id && s.is_live(now)) {
                self.ensure_may_refresh(session.user_id, session.id, now)
                    .await?;
                return Ok(self.issue(&session, next, now)?);
            }
        }
        warn!(%session_id, "spent refresh token presented again; revoking its session");
        let event = AuditEvent::new(AuditKind::TokenReuseDetected, now, client).session(session_id);
        self.ports
            .sessions
            .revoke(session_id, now, Some(event))
            .await?;
        Err(RefreshError::InvalidToken)
    }

    /// The new token pair of a refreshed `session`.
    fn issue(
        &self,
        session: &Session,
        next: RefreshToken,
        now: OffsetDateTime,
    ) -> Result<IssuedTokens, PortError> {
        issue(
            self.ports.tokens.as_ref(),
            session.user_id,
            session.id,
            session.proof,
            next,
            now,
        )
    }

    /// Refuses (and ends) the session of a user who is no longer active,
    /// and refuses (keeping the session) an unverified user's while the
    /// settings require a verified address.
    async fn ensure_may_refresh(
        &self,
        user: UserId,
        session: SessionId,
        now: OffsetDateTime,
    ) -> Result<(), RefreshError> {
        let user = self.ports.users.find_by_id(user).await?;
        let Some(user) = user.filter(|u| u.is_active) else {
            self.ports.sessions.revoke(session, now, None).await?;
            return Err(RefreshError::InvalidToken);
        };
        if self.config.require_verified_email && !user.is_verified {
            warn!(user_id = %user.id, reason = "email not verified", "refresh refused");
            return Err(RefreshError::EmailNotVerified);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use mockall::predicate::eq;
    use secrecy::ExposeSecret;

    use super::*;
    use crate::model::*;
    use crate::model::{Session, TokenHash};
    use crate::services::auth::test_support::*;
    use crate::services::auth::*;
    use crate::services::fixtures::{Mocks, NOW, user};
    use time::{Duration, OffsetDateTime};

    #[tokio::test]
    async fn refresh_rotates_the_token_within_the_same_session() {
        let ada = user("ada");
        let live = session(&ada);
        let sid = live.id;
        let mut mocks = Mocks::default();
        mocks.refresh_token_finds("old", Some(live));
        mocks.finds_by_id(&ada);
        mocks
            .sessions
            .expect_rotate()
            .withf(move |id, old, new, now, exp| {
                *id == sid
                    && old.as_str() == "old"
                    && new.as_str() == "fresh"
                    && *now == NOW
                    && *exp == NOW + Duration::days(7)
            })
            .times(1)
            .returning(|_, _, _, _, _| Ok(true));
        expect_tokens(&mut mocks);
        let tokens = session_service(mocks)
            .refresh("old-secret", &ClientInfo::default())
            .await
            .unwrap();
        assert_eq!(tokens.session_id, sid);
    }

    #[tokio::test]
    async fn refresh_with_a_spent_token_revokes_the_whole_session() {
        let sid = SessionId::generate();
        let mut mocks = Mocks::default();
        mocks.refresh_token_finds("spent", None);
        mocks
            .sessions
            .expect_find_by_spent_token()
            .returning(move |_| Ok(Some((sid, NOW - Duration::seconds(10)))));
        mocks
            .sessions
            .expect_revoke()
            .withf(move |id, at, event| {
                *id == sid
                    && *at == NOW
                    && event.as_ref().is_some_and(|e| {
                        e.kind == AuditKind::TokenReuseDetected
                            && e.details.session_id == Some(sid)
                            && e.subject_id.is_none()
                    })
            })
            .times(1)
            .returning(|_, _, _| Ok(()));
        let err = session_service(mocks)
            .refresh("spent-secret", &ClientInfo::default())
            .await
            .unwrap_err();
        assert!(matches!(err, RefreshError::InvalidToken));
    }

    #[tokio::test]
    async fn refresh_with_an_unknown_token_revokes_nothing() {
        let mut mocks = Mocks::default();
        mocks.refresh_token_finds("x", None);
        mocks
            .sessions
            .expect_find_by_spent_token()
            .returning(|_| Ok(None));
        let err = session_service(mocks)
            .refresh("garbage", &ClientInfo::default())
            .await
            .unwrap_err();
        assert!(matches!(err, RefreshError::InvalidToken));
    }

    #[tokio::test]
    async fn refresh_of_an_expired_or_revoked_session_is_refused() {
        let ada = user("ada");
        for s in [
            Session {
                expires_at: NOW,
                ..session(&ada)
            },
            Session {
                revoked_at: Some(NOW),
                ..session(&ada)
            },
        ] {
            let mut mocks = Mocks::default();
            mocks.refresh_token_finds("x", Some(s));
            let err = session_service(mocks)
                .refresh("t", &ClientInfo::default())
                .await
                .unwrap_err();
            assert!(matches!(err, RefreshError::InvalidToken));
        }
    }

    #[tokio::test]
    async fn refresh_that_loses_a_race_revokes_the_session_instead_of_forking_it() {
        let ada = user("ada");
        let live = session(&ada);
        let sid = live.id;
        let mut mocks = Mocks::default();
        mocks.refresh_token_finds("old", Some(live));
        mocks.finds_by_id(&ada);
        mocks
            .tokens
            .expect_successor_refresh_token()
            .returning(|_| RefreshToken {
                secret: SecretString::from("n"),
                hash: TokenHash::new("n".into()),
            });
        mocks
            .sessions
            .expect_rotate()
            .returning(|_, _, _, _, _| Ok(false));
        // The winner recorded the token as spent a moment ago.
        mocks
            .sessions
            .expect_find_by_spent_token()
            .returning(move |_| Ok(Some((sid, NOW))));
        mocks
            .sessions
            .expect_revoke()
            .with(eq(sid), eq(NOW), mockall::predicate::always())
            .times(1)
            .returning(|_, _, _| Ok(()));
        let err = session_service(mocks)
            .refresh("old", &ClientInfo::default())
            .await
            .unwrap_err();
        assert!(matches!(err, RefreshError::InvalidToken));
    }

    #[tokio::test]
    async fn refresh_for_a_deactivated_user_is_refused() {
        let ada = User {
            is_active: false,
            ..user("ada")
        };
        let live = session(&ada);
        let mut mocks = Mocks::default();
        mocks.refresh_token_finds("old", Some(live));
        mocks.finds_by_id(&ada);
        mocks
            .sessions
            .expect_revoke()
            .withf(|_, _, event| event.is_none())
            .times(1)
            .returning(|_, _, _| Ok(()));
        assert!(matches!(
            session_service(mocks)
                .refresh("old", &ClientInfo::default())
                .await,
            Err(RefreshError::InvalidToken)
        ));
    }

    /// A spent token `old` of a session whose current token is `succ`.
    fn spent_within(mocks: &mut Mocks, session: &Session, spent_at: OffsetDateTime) {
        let (live, sid) = (session.clone(), session.id);
        mocks
            .tokens
            .expect_hash_token()
            .returning(|_| TokenHash::new("old".into()));
        mocks
            .tokens
            .expect_successor_refresh_token()
            .returning(|_| RefreshToken {
                secret: SecretString::from("succ"),
                hash: TokenHash::new("succ".into()),
            });
        mocks
            .sessions
            .expect_find_by_refresh_token()
            .returning(move |hash| Ok((hash.as_str() == "succ").then(|| live.clone())));
        mocks
            .sessions
            .expect_find_by_spent_token()
            .returning(move |_| Ok(Some((sid, spent_at))));
    }

    #[tokio::test]
    async fn within_the_grace_window_a_spent_token_yields_the_same_successor() {
        let ada = user("ada");
        let live = session(&ada);
        let mut mocks = Mocks::default();
        spent_within(&mut mocks, &live, NOW - Duration::seconds(3));
        mocks.finds_by_id(&ada);
        mocks.issues_access_tokens();
        // Neither rotate nor revoke is expected.
        let tokens = session_service_with_grace(mocks, Duration::seconds(5))
            .refresh("old-secret", &ClientInfo::default())
            .await
            .unwrap();
        assert_eq!(tokens.refresh_token.expose_secret(), "succ");
        assert_eq!(tokens.session_id, live.id);
    }

    #[tokio::test]
    async fn after_the_grace_window_a_spent_token_revokes_the_session() {
        let ada = user("ada");
        let live = session(&ada);
        let sid = live.id;
        let mut mocks = Mocks::default();
        spent_within(&mut mocks, &live, NOW - Duration::seconds(6));
        mocks
            .sessions
            .expect_revoke()
            .with(eq(sid), eq(NOW), mockall::predicate::always())
            .times(1)
            .returning(|_, _, _| Ok(()));
        let err = session_service_with_grace(mocks, Duration::seconds(5))
            .refresh("old-secret", &ClientInfo::default())
            .await
            .unwrap_err();
        assert!(matches!(err, RefreshError::InvalidToken));
    }
}
