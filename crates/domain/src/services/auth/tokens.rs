//! Personal access tokens: made with the current password, listed and
//! revoked by their owner, and by a superuser for anyone.

use secrecy::{ExposeSecret, SecretString};
use time::Duration;
use tracing::{info, warn};

use super::password::Proof;
use super::{AuthConfig, Authenticated};
use crate::PortError;
use crate::model::{
    AuditEvent, AuditKind, ClientInfo, DEFAULT_TOKEN_DAYS, MAX_TOKENS_PER_USER, NewPersonalToken,
    PersonalToken, Scopes, TokenId, TokenName, UserId,
};
use crate::ports::CreateTokenError;
use crate::services::TokenPorts;
use crate::services::throttle::Throttle;

/// Characters of a token kept to recognise it by: `uhp_` and four more.
const SHOWN_PREFIX: usize = 8;

/// A token to make.
#[derive(Debug)]
pub struct NewToken {
    /// The owner's name for it.
    pub name: TokenName,
    /// What it may do.
    pub scopes: Scopes,
    /// Its lifetime in days (default 30).
    pub expires_in_days: Option<i64>,
    /// The owner's current password.
    pub current_password: SecretString,
}

/// Why a token was not made.
#[derive(Debug, thiserror::Error)]
pub enum NewTokenError {
    /// The request came with a personal access token.
    #[error("not allowed with a personal access token")]
    NotWithToken,
    /// `expires_in_days` is outside 1 to the configured maximum.
    #[error("expires_in_days must be from 1 to {max}")]
    Lifetime {
        /// The configured maximum.
        max: i64,
    },
    /// The current password was wrong (counted as a failed login).
    #[error("wrong password")]
    WrongPassword,
    /// Too many failed password checks: refused for this long.
    #[error("locked")]
    Locked {
        /// Time left on the lock.
        retry_after: Duration,
    },
    /// The owner holds 50 live tokens already.
    #[error("too many tokens")]
    TooMany,
    /// A port failed.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Why tokens could not be listed or revoked.
#[derive(Debug, thiserror::Error)]
pub enum TokenAccessError {
    /// A personal access token acting on another user's tokens.
    #[error("not allowed with a personal access token")]
    NotWithToken,
    /// Someone not a superuser acting on another user's tokens.
    #[error("forbidden")]
    Forbidden,
    /// No such user.
    #[error("user not found")]
    UnknownUser,
    /// No such token (of that user's).
    #[error("not found")]
    NotFound,
    /// A port failed.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Personal access tokens.
#[derive(Clone)]
pub struct TokenService {
    pub(super) ports: TokenPorts,
    pub(super) throttle: Throttle,
    max_days: i64,
}

impl TokenService {
    /// Tokens live at most `config.token_max_days`; a wrong password
    /// counts against `config.lockout`.
    #[must_use]
    pub fn new(ports: TokenPorts, config: AuthConfig) -> Self {
        let throttle = Throttle::new(ports.throttle.clone(), ports.audit.clone(), config.lockout);
        Self {
            ports,
            throttle,
            max_days: config.token_max_days,
        }
    }

    /// Makes a token for the caller, who proves their password: a stolen
    /// access token cannot mint a long-lived credential. Returns the token
    /// and its secret, shown this once.
    #[tracing::instrument(skip_all, fields(user_id = %caller.user.id))]
    pub async fn create(
        &self,
        caller: &Authenticated,
        new: NewToken,
        client: &ClientInfo,
    ) -> Result<(PersonalToken, SecretString), NewTokenError> {
        if caller.token().is_some() {
            return Err(NewTokenError::NotWithToken);
        }
        let days = new.expires_in_days.unwrap_or(DEFAULT_TOKEN_DAYS);
        if !(1..=self.max_days).contains(&days) {
            return Err(NewTokenError::Lifetime { max: self.max_days });
        }
        match self
            .password_check()
            .prove(&caller.user, client, &new.current_password)
            .await?
        {
            Proof::Proven => {}
            Proof::Wrong => {
                warn!("token refused: wrong password");
                return Err(NewTokenError::WrongPassword);
            }
            Proof::Locked { retry_after } => return Err(NewTokenError::Locked { retry_after }),
        }
        let secret = self.ports.tokens.new_personal_token()?;
        let now = self.ports.clock.now();
        let token = PersonalToken {
            id: TokenId::generate(),
            user_id: caller.user.id,
            name: new.name,
            scopes: new.scopes,
            prefix: secret
                .secret
                .expose_secret()
                .chars()
                .take(SHOWN_PREFIX)
                .collect(),
            created_at: now,
            expires_at: now + Duration::days(days),
            last_used_at: None,
        };
        let mut event = AuditEvent::new(AuditKind::TokenCreated, now, client).own(caller.user.id);
        event.details.token_id = Some(token.id);
        let stored = NewPersonalToken {
            token: token.clone(),
            hash: secret.hash,
            proven: caller.user.password_hash.clone(),
        };
        match self
            .ports
            .pats
            .create(&stored, MAX_TOKENS_PER_USER, now, &event)
            .await
        {
            Ok(()) => {}
            Err(CreateTokenError::TooMany) => return Err(NewTokenError::TooMany),
            // Deactivated, or the password reset, since it was proven.
            Err(CreateTokenError::OwnerChanged) => return Err(NewTokenError::WrongPassword),
            Err(CreateTokenError::Port(err)) => return Err(err.into()),
        }
        info!(token_id = %token.id, "personal access token created");
        Ok((token, secret.secret))
    }

    /// The caller's live tokens, newest first.
    pub async fn list(&self, caller: &Authenticated) -> Result<Vec<PersonalToken>, PortError> {
        self.ports
            .pats
            .list(caller.user.id, self.ports.clock.now())
            .await
    }

    /// Revokes one of the caller's tokens; a personal access token may
    /// revoke itself and no other (any other is, to it, not found, as the
    /// contract lists no other answer).
    ///
    /// # Errors
    /// [`TokenAccessError::NotFound`] for no such token of the caller's,
    /// or another token than the one the request came with.
    pub async fn revoke(
        &self,
        caller: &Authenticated,
        id: TokenId,
        client: &ClientInfo,
    ) -> Result<(), TokenAccessError> {
        if caller.token().is_some_and(|grant| grant.id != id) {
            return Err(TokenAccessError::NotFound);
        }
        let now = self.ports.clock.now();
        let mut event = AuditEvent::new(AuditKind::TokenRevoked, now, client).own(caller.user.id);
        event.details.token_id = Some(id);
        if !self.ports.pats.revoke(caller.user.id, id, &event).await? {
            return Err(TokenAccessError::NotFound);
        }
        info!(user_id = %caller.user.id, token_id = %id, "personal access token revoked");
        Ok(())
    }

    /// A superuser's view of `user`'s live tokens.
    ///
    /// # Errors
    /// [`TokenAccessError::Forbidden`] for a caller who is not a superuser,
    /// [`TokenAccessError::NotWithToken`] for one who came with a token,
    /// [`TokenAccessError::UnknownUser`] for no such user.
    pub async fn list_for(
        &self,
        caller: &Authenticated,
        user: UserId,
    ) -> Result<Vec<PersonalToken>, TokenAccessError> {
        self.superuser_over(caller, user).await?;
        Ok(self.ports.pats.list(user, self.ports.clock.now()).await?)
    }

    /// A superuser revokes `user`'s token `id`.
    ///
    /// # Errors
    /// As [`Self::list_for`], and [`TokenAccessError::NotFound`] for no
    /// such token of that user's.
    pub async fn revoke_for(
        &self,
        caller: &Authenticated,
        user: UserId,
        id: TokenId,
        client: &ClientInfo,
    ) -> Result<(), TokenAccessError> {
        self.superuser_over(caller, user).await?;
        let now = self.ports.clock.now();
        let mut event = AuditEvent::new(AuditKind::TokenRevoked, now, client)
            .by(caller.user.id)
            .about(user);
        event.details.token_id = Some(id);
        if !self.ports.pats.revoke(user, id, &event).await? {
            return Err(TokenAccessError::NotFound);
        }
        info!(actor = %caller.user.id, user_id = %user, token_id = %id, "personal access token revoked by a superuser");
        Ok(())
    }

    /// Deletes expired tokens, so that the table does not grow without bound.
    pub async fn purge_expired(&self) -> Result<u64, PortError> {
        self.ports.pats.purge_expired(self.ports.clock.now()).await
    }

    async fn superuser_over(
        &self,
        caller: &Authenticated,
        user: UserId,
    ) -> Result<(), TokenAccessError> {
        if caller.token().is_some() {
            return Err(TokenAccessError::NotWithToken);
        }
        if !caller.user.is_superuser {
            return Err(TokenAccessError::Forbidden);
        }
        if self.ports.users.find_by_id(user).await?.is_none() {
            return Err(TokenAccessError::UnknownUser);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use mockall::predicate::{always, eq};

    use super::*;
    use crate::model::{Scope, TokenGrant, TokenHash};
    use crate::ports::RefreshToken;
    use crate::services::auth::Credential;
    use crate::services::auth::test_support::{caller, config};
    use crate::services::fixtures::{Mocks, NOW, superuser, user};

    fn service(mocks: Mocks) -> TokenService {
        TokenService::new(mocks.ports().for_tokens(), config(Duration::ZERO))
    }

    fn new_token(days: Option<i64>) -> NewToken {
        NewToken {
            name: TokenName::parse("deploy").unwrap(),
            scopes: Scopes::of([Scope::UsersRead]),
            expires_in_days: days,
            current_password: SecretString::from("pw"),
        }
    }

    fn with_token(caller: &mut Authenticated) -> TokenId {
        let id = TokenId::generate();
        caller.credential = Credential::Token(TokenGrant {
            id,
            scopes: Scopes::of(Scope::ALL),
            last_used_at: None,
        });
        id
    }

    #[tokio::test]
    async fn a_token_is_made_with_the_right_password_stored_as_a_hash_and_audited() {
        let ada = user("ada");
        let mut mocks = Mocks::default();
        mocks.throttle_permissive();
        mocks.password_matches(true);
        mocks.tokens.expect_new_personal_token().returning(|| {
            Ok(RefreshToken {
                secret: SecretString::from("uhp_abcdefghij"),
                hash: TokenHash::new("h".into()),
            })
        });
        let (owner, owner_hash) = (ada.id, ada.password_hash.clone());
        mocks
            .pats
            .expect_create()
            .withf(move |new, max, at, event| {
                new.hash.as_str() == "h"
                    && new.proven == owner_hash
                    && new.token.prefix == "uhp_abcd"
                    && new.token.expires_at == NOW + Duration::days(30)
                    && *max == 50
                    && *at == NOW
                    && event.kind == AuditKind::TokenCreated
                    && event.subject_id == Some(owner)
                    && event.details.token_id == Some(new.token.id)
            })
            .times(1)
            .returning(|_, _, _, _| Ok(()));
        let (token, secret) = service(mocks)
            .create(&caller(&ada), new_token(None), &ClientInfo::default())
            .await
            .unwrap();
        assert_eq!(secret.expose_secret(), "uhp_abcdefghij");
        assert_eq!(token.scopes, Scopes::of([Scope::UsersRead]));
    }

    #[tokio::test]
    async fn a_wrong_password_is_counted_and_makes_nothing() {
        let ada = user("ada");
        let mut mocks = Mocks::default();
        mocks.throttle_permissive();
        mocks.password_matches(false);
        mocks.audit.expect_record().returning(|_| Ok(()));
        let err = service(mocks)
            .create(&caller(&ada), new_token(Some(7)), &ClientInfo::default())
            .await
            .unwrap_err();
        assert!(matches!(err, NewTokenError::WrongPassword), "{err:?}");
    }

    #[tokio::test]
    async fn a_lifetime_out_of_range_or_a_token_caller_is_refused_before_the_password() {
        let ada = user("ada");
        for days in [0, 366, -1] {
            let err = service(Mocks::default())
                .create(&caller(&ada), new_token(Some(days)), &ClientInfo::default())
                .await
                .unwrap_err();
            assert!(
                matches!(err, NewTokenError::Lifetime { max: 365 }),
                "{err:?}"
            );
        }
        let mut me = caller(&ada);
        with_token(&mut me);
        let err = service(Mocks::default())
            .create(&me, new_token(None), &ClientInfo::default())
            .await
            .unwrap_err();
        assert!(matches!(err, NewTokenError::NotWithToken), "{err:?}");
    }

    #[tokio::test]
    async fn the_fifty_first_token_is_refused() {
        let ada = user("ada");
        let mut mocks = Mocks::default();
        mocks.throttle_permissive();
        mocks.password_matches(true);
        mocks.tokens.expect_new_personal_token().returning(|| {
            Ok(RefreshToken {
                secret: SecretString::from("uhp_x"),
                hash: TokenHash::new("h".into()),
            })
        });
        mocks
            .pats
            .expect_create()
            .returning(|_, _, _, _| Err(CreateTokenError::TooMany));
        let err = service(mocks)
            .create(&caller(&ada), new_token(None), &ClientInfo::default())
            .await
            .unwrap_err();
        assert!(matches!(err, NewTokenError::TooMany), "{err:?}");
    }

    #[tokio::test]
    async fn a_token_revokes_itself_and_no_other() {
        let ada = user("ada");
        let mut me = caller(&ada);
        let own = with_token(&mut me);
        let err = service(Mocks::default())
            .revoke(&me, TokenId::generate(), &ClientInfo::default())
            .await
            .unwrap_err();
        assert!(matches!(err, TokenAccessError::NotFound), "{err:?}");
        let mut mocks = Mocks::default();
        mocks
            .pats
            .expect_revoke()
            .with(eq(ada.id), eq(own), always())
            .times(1)
            .returning(|_, _, event| {
                assert_eq!(event.kind, AuditKind::TokenRevoked);
                Ok(true)
            });
        service(mocks)
            .revoke(&me, own, &ClientInfo::default())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn only_a_superuser_without_a_token_reads_or_revokes_anothers_tokens() {
        let (ada, root) = (user("ada"), superuser("root"));
        let err = service(Mocks::default())
            .list_for(&caller(&ada), root.id)
            .await
            .unwrap_err();
        assert!(matches!(err, TokenAccessError::Forbidden), "{err:?}");
        let mut with_pat = caller(&root);
        with_token(&mut with_pat);
        let err = service(Mocks::default())
            .revoke_for(
                &with_pat,
                ada.id,
                TokenId::generate(),
                &ClientInfo::default(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, TokenAccessError::NotWithToken), "{err:?}");
        let mut mocks = Mocks::default();
        mocks.users.expect_find_by_id().returning(|_| Ok(None));
        let err = service(mocks)
            .list_for(&caller(&root), UserId::generate())
            .await
            .unwrap_err();
        assert!(matches!(err, TokenAccessError::UnknownUser), "{err:?}");
        let mut mocks = Mocks::default();
        mocks.finds_by_id(&ada);
        let (by, about) = (root.id, ada.id);
        mocks
            .pats
            .expect_revoke()
            .withf(move |user, _, event| {
                *user == about && event.actor_id == Some(by) && event.subject_id == Some(about)
            })
            .returning(|_, _, _| Ok(false));
        let err = service(mocks)
            .revoke_for(
                &caller(&root),
                ada.id,
                TokenId::generate(),
                &ClientInfo::default(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, TokenAccessError::NotFound), "{err:?}");
    }

    #[tokio::test]
    async fn a_token_with_a_bad_checksum_is_refused_without_a_lookup() {
        let mut mocks = Mocks::default();
        mocks
            .tokens
            .expect_personal_token_hash()
            .returning(|_| None);
        let err = crate::services::auth::test_support::session_service(mocks)
            .authenticate("uhp_typo")
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            crate::services::AuthenticateError::InvalidToken
        ));
    }

    #[tokio::test]
    async fn a_tokens_use_is_written_only_when_the_last_is_a_minute_old() {
        let ada = user("ada");
        for (last_used, writes) in [
            (None, 1),
            (Some(NOW - Duration::seconds(59)), 0),
            (Some(NOW - Duration::seconds(60)), 1),
        ] {
            let mut mocks = Mocks::default();
            mocks
                .tokens
                .expect_personal_token_hash()
                .returning(|_| Some(TokenHash::new("h".into())));
            let grant = TokenGrant {
                id: TokenId::generate(),
                scopes: Scopes::of([Scope::ProfileRead]),
                last_used_at: last_used,
            };
            let found = ada.clone();
            mocks
                .pats
                .expect_authenticate()
                .returning(move |_, _| Ok(Some((found.clone(), grant))));
            mocks
                .pats
                .expect_touch()
                .with(eq(grant.id), eq(NOW), eq(Duration::MINUTE))
                .times(writes)
                .returning(|_, _, _| Ok(()));
            let auth = crate::services::auth::test_support::session_service(mocks)
                .authenticate("uhp_valid")
                .await
                .unwrap();
            assert_eq!(auth.user.id, ada.id);
            assert_eq!(auth.token(), Some(&grant));
            assert_eq!(auth.session_id(), None);
        }
    }
}
