//! A superuser's view of one account's ways in and sessions: what the
//! console's user page shows, and ending every session of the account.

use tracing::info;

use super::AccountPorts;
use crate::PortError;
use crate::model::{
    AuditEvent, AuditKind, ClientInfo, LinkedIdentity, Passkey, SessionSummary, User, UserId,
};

/// How an account can sign in; never a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignInMethods {
    /// It has a password.
    pub password: bool,
    /// TOTP is on.
    pub totp: bool,
    /// Recovery codes not used yet.
    pub recovery_codes_left: u32,
    /// Its passkeys.
    pub passkeys: Vec<Passkey>,
    /// Its linked provider accounts.
    pub identities: Vec<LinkedIdentity>,
    /// How many live personal access tokens it has.
    pub tokens: usize,
}

/// Why a superuser's request about an account was refused.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// Only superusers look into others' accounts.
    #[error("not enough permissions")]
    Forbidden,
    /// No such user.
    #[error("user not found")]
    NotFound,
    /// A port failed.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// The use cases of a superuser's account view.
#[derive(Clone)]
pub struct AccountService {
    ports: AccountPorts,
}

impl AccountService {
    /// The view on `ports`.
    #[must_use]
    pub fn new(ports: AccountPorts) -> Self {
        Self { ports }
    }

    /// `user`'s live sessions (none is the caller's `current` one).
    ///
    /// # Errors
    /// [`AccountError::Forbidden`], [`AccountError::NotFound`].
    pub async fn sessions(
        &self,
        actor: &User,
        user: UserId,
    ) -> Result<Vec<SessionSummary>, AccountError> {
        self.superuser_over(actor, user).await?;
        let now = self.ports.clock.now();
        let sessions = self.ports.sessions.list_live_for_user(user, now).await?;
        Ok(sessions
            .into_iter()
            .map(|session| SessionSummary {
                session,
                current: false,
            })
            .collect())
    }

    /// Ends every session of `user` at once (a `sessions.ended_all` by
    /// the superuser).
    ///
    /// # Errors
    /// [`AccountError::Forbidden`], [`AccountError::NotFound`].
    pub async fn end_sessions(
        &self,
        actor: &User,
        user: UserId,
        client: &ClientInfo,
    ) -> Result<(), AccountError> {
        self.superuser_over(actor, user).await?;
        let now = self.ports.clock.now();
        let event = AuditEvent::new(AuditKind::SessionsEndedAll, now, client)
            .by(actor.id)
            .about(user);
        self.ports
            .sessions
            .revoke_all_for_user(user, None, now, Some(event))
            .await?;
        info!(actor = %actor.id, user_id = %user, "every session ended by a superuser");
        Ok(())
    }

    /// How `user` can sign in.
    ///
    /// # Errors
    /// [`AccountError::Forbidden`], [`AccountError::NotFound`].
    pub async fn sign_in_methods(
        &self,
        actor: &User,
        user: UserId,
    ) -> Result<SignInMethods, AccountError> {
        let account = self.superuser_over(actor, user).await?;
        let now = self.ports.clock.now();
        let (mfa, passkeys, identities, tokens) = futures_util::future::try_join4(
            self.ports.mfa.status(user),
            self.ports.passkeys.list(user),
            self.ports.identities.list(user),
            self.ports.pats.list(user, now),
        )
        .await?;
        Ok(SignInMethods {
            password: account.password_hash.is_set(),
            totp: mfa.totp,
            recovery_codes_left: mfa.recovery_codes_left,
            passkeys,
            identities,
            tokens: tokens.len(),
        })
    }

    async fn superuser_over(&self, actor: &User, user: UserId) -> Result<User, AccountError> {
        if !actor.is_superuser {
            return Err(AccountError::Forbidden);
        }
        self.ports
            .users
            .find_by_id(user)
            .await?
            .ok_or(AccountError::NotFound)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use mockall::predicate::eq;

    use super::*;
    use crate::model::MfaStatus;
    use crate::services::fixtures::{Mocks, superuser, user};

    #[tokio::test]
    async fn only_superusers_look_into_an_account() {
        let mut mocks = Mocks::default();
        mocks.users.expect_find_by_id().never();
        mocks.sessions.expect_revoke_all_for_user().never();
        let service = AccountService::new(mocks.ports().for_accounts());
        let ada = user("ada");
        let bea = user("bea");
        assert!(matches!(
            service.sessions(&ada, bea.id).await,
            Err(AccountError::Forbidden)
        ));
        assert!(matches!(
            service
                .end_sessions(&ada, bea.id, &ClientInfo::default())
                .await,
            Err(AccountError::Forbidden)
        ));
        assert!(matches!(
            service.sign_in_methods(&ada, bea.id).await,
            Err(AccountError::Forbidden)
        ));
    }

    #[tokio::test]
    async fn an_unknown_user_is_not_found_and_nothing_ends() {
        let mut mocks = Mocks::default();
        mocks.users.expect_find_by_id().returning(|_| Ok(None));
        mocks.sessions.expect_revoke_all_for_user().never();
        let service = AccountService::new(mocks.ports().for_accounts());
        let err = service
            .end_sessions(
                &superuser("root"),
                UserId::generate(),
                &ClientInfo::default(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, AccountError::NotFound));
    }

    #[tokio::test]
    async fn ending_sessions_records_the_superuser_and_the_account() {
        let mut mocks = Mocks::default();
        let ada = user("ada");
        let root = superuser("root");
        mocks.finds_by_id(&ada);
        let (ada_id, root_id) = (ada.id, root.id);
        mocks
            .sessions
            .expect_revoke_all_for_user()
            .withf(move |user, keep, _, event| {
                let event = event.as_ref().unwrap();
                *user == ada_id
                    && keep.is_none()
                    && event.kind == AuditKind::SessionsEndedAll
                    && event.actor_id == Some(root_id)
                    && event.subject_id == Some(ada_id)
            })
            .times(1)
            .returning(|_, _, _, _| Ok(()));
        let service = AccountService::new(mocks.ports().for_accounts());
        service
            .end_sessions(&root, ada.id, &ClientInfo::default())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn sign_in_methods_gather_every_way_in_and_no_secret() {
        let mut mocks = Mocks::default();
        let ada = user("ada");
        mocks.finds_by_id(&ada);
        mocks.mfa.expect_status().with(eq(ada.id)).returning(|_| {
            Ok(MfaStatus {
                totp: true,
                recovery_codes_left: 7,
            })
        });
        mocks.passkeys.expect_list().returning(|_| Ok(vec![]));
        mocks.identities.expect_list().returning(|_| Ok(vec![]));
        mocks.pats.expect_list().returning(|_, _| Ok(vec![]));
        let service = AccountService::new(mocks.ports().for_accounts());
        let methods = service
            .sign_in_methods(&superuser("root"), ada.id)
            .await
            .unwrap();
        assert_eq!(
            methods,
            SignInMethods {
                password: true,
                totp: true,
                recovery_codes_left: 7,
                passkeys: vec![],
                identities: vec![],
                tokens: 0,
            }
        );
    }
}
