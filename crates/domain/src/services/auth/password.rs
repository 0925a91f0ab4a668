//! Changing one's own password, and proving it where a signed-in user
//! must.

use secrecy::SecretString;
use time::Duration;
use tracing::{info, warn};

use super::{AuthService, Authenticated};
use crate::PortError;
use crate::model::{
    AuditEvent, AuditKind, ClientInfo, FailureReason, MailKind, Password, PasswordError, User,
};
use crate::ports::{Clock, PasswordHasher};
use crate::services::throttle::Throttle;

/// Why a password change failed.
#[derive(Debug, thiserror::Error)]
pub enum ChangePasswordError {
    /// The current password given is wrong (or no longer current).
    #[error("incorrect password")]
    WrongPassword,
    /// Too many wrong passwords for this user from this address: refused
    /// before any check, for this long.
    #[error("too many failed password checks")]
    Locked {
        /// Time left on the lock.
        retry_after: Duration,
    },
    /// The new password contains personal information.
    #[error(transparent)]
    WeakPassword(PasswordError),
    /// A port failed; [`PortError`] tells whether retrying may help.
    #[error(transparent)]
    Port(#[from] PortError),
}

impl AuthService {
    /// Replaces the caller's password after checking the current one, and
    /// ends every other session (the caller's stays). A wrong current
    /// password counts as a failed login of the caller's username from this
    /// address, so a stolen access token is no password-guessing oracle.
    /// The write succeeds only if the password is still the one checked: of
    /// concurrent changes one wins, and a reset that landed meanwhile stands.
    #[tracing::instrument(skip_all, fields(user_id = %caller.user.id))]
    pub async fn change_password(
        &self,
        caller: &Authenticated,
        client: &ClientInfo,
        current: &SecretString,
        new: Password,
    ) -> Result<(), ChangePasswordError> {
        let user = &caller.user;
        match self.password_check().prove(user, client, current).await? {
            Proof::Proven => {}
            Proof::Locked { retry_after } => {
                return Err(ChangePasswordError::Locked { retry_after });
            }
            Proof::Wrong => {
                warn!("password change refused: wrong current password");
                return Err(ChangePasswordError::WrongPassword);
            }
        }
        self.config
            .password_policy
            .check(&new, &user.username, &user.email)
            .map_err(ChangePasswordError::WeakPassword)?;
        let hash = self.ports.hasher.hash(&new).await?;
        let now = self.ports.clock.now();
        let event = AuditEvent::new(AuditKind::PasswordChanged, now, client).own(user.id);
        if !self
            .ports
            .users
            .replace_password_hash(user.id, &user.password_hash, &hash, now, Some(event))
            .await?
        {
            warn!("password change refused: the password changed meanwhile");
            return Err(ChangePasswordError::WrongPassword);
        }
        self.ports
            .sessions
            .revoke_all_for_user(user.id, caller.session_id(), now, None)
            .await?;
        super::notify(
            self.ports.outbox(),
            user,
            MailKind::PasswordChanged,
            None,
            client,
        )
        .await;
        info!("password changed; other sessions ended");
        Ok(())
    }
}

/// The outcome of a signed-in user proving their password.
pub(super) enum Proof {
    /// Right.
    Proven,
    /// Wrong (counted as a failed login).
    Wrong,
    /// Refused before any check: too many failures.
    Locked {
        /// Time left on the lock.
        retry_after: Duration,
    },
}

/// What proving a password uses: borrowed from the service that asks.
#[derive(Clone, Copy)]
pub(super) struct PasswordCheck<'a> {
    pub(super) hasher: &'a dyn PasswordHasher,
    pub(super) throttle: &'a Throttle,
    pub(super) clock: &'a dyn Clock,
}

impl PasswordCheck<'_> {
    /// Checks a signed-in user's password under the login lockout: a wrong
    /// one counts as a failed login of their username from this address,
    /// so that a stolen access token is no password-guessing oracle.
    pub(super) async fn prove(
        &self,
        user: &User,
        client: &ClientInfo,
        password: &SecretString,
    ) -> Result<Proof, PortError> {
        let name = user.username.as_str();
        let address = client.address_key();
        let address = address.as_deref();
        let now = self.clock.now();
        if let Some(retry_after) = self.throttle.refusal(name, address, now).await? {
            return Ok(Proof::Locked { retry_after });
        }
        if self.hasher.verify(password, &user.password_hash).await? {
            return Ok(Proof::Proven);
        }
        let event = AuditEvent::new(AuditKind::LoginFailed, now, client)
            .about(user.id)
            .reason(FailureReason::WrongCurrentPassword);
        self.throttle.failed(name, address, now, event).await?;
        Ok(Proof::Wrong)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use mockall::predicate::eq;

    use super::*;
    use crate::model::*;

    use crate::model::PasswordHash;
    use crate::ports::ThrottleState;
    use crate::services::auth::test_support::*;

    use crate::services::fixtures::{Mocks, NOW, password, user};

    #[tokio::test]
    async fn change_password_checks_the_current_one_and_keeps_only_this_session() {
        let ada = user("ada");
        let me = caller(&ada);
        let (uid, sid) = (ada.id, me.session_id().unwrap());
        let mut mocks = Mocks::default();
        mocks
            .hasher
            .expect_verify()
            .times(1)
            .returning(|_, _| Ok(true));
        mocks
            .hasher
            .expect_hash()
            .times(1)
            .returning(|_| Ok(PasswordHash::new("new".into())));
        mocks.throttle_clear();
        // Written only if the hash is still the one the current password matched.
        mocks
            .users
            .expect_replace_password_hash()
            .withf(move |id, old, new, _, event| {
                *id == uid
                    && old.as_str() == "hash-of-ada"
                    && new.as_str() == "new"
                    && event.as_ref().is_some_and(|e| {
                        e.kind == AuditKind::PasswordChanged
                            && e.actor_id == Some(uid)
                            && e.subject_id == Some(uid)
                    })
            })
            .times(1)
            .returning(|_, _, _, _, _| Ok(true));
        mocks
            .sessions
            .expect_revoke_all_for_user()
            .with(
                eq(uid),
                eq(Some(sid)),
                eq(NOW),
                mockall::predicate::always(),
            )
            .times(1)
            .returning(|_, _, _, _| Ok(()));
        // The account's address is told.
        let to = ada.email.clone();
        mocks
            .mail
            .expect_notify()
            .withf(move |n, _, _| {
                n.kind == MailKind::PasswordChanged && n.user_id == uid && n.to == to
            })
            .times(1)
            .returning(|_, _, _| Ok(()));
        service(mocks)
            .change_password(
                &me,
                &ClientInfo::default(),
                &SecretString::from("old"),
                password("brand new secret"),
            )
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn change_password_refuses_a_wrong_current_password_and_changes_nothing() {
        let ada = user("ada");
        let mut mocks = Mocks::default();
        mocks.password_matches(false);
        // A wrong current password counts as a failed login of the user.
        mocks.throttle_clear();
        mocks
            .throttle
            .expect_record_failure()
            .withf(|name, _, _, _, _| name == "ada")
            .times(1)
            .returning(|_, _, _, _, _| Ok(ThrottleState::default()));
        let err = service(mocks)
            .change_password(
                &caller(&ada),
                &ClientInfo::default(),
                &SecretString::from("wrong"),
                password("brand new secret"),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, ChangePasswordError::WrongPassword));
    }

    #[tokio::test]
    async fn change_password_refuses_a_new_password_with_the_username() {
        let ada = user("ada");
        let mut mocks = Mocks::default();
        mocks.throttle_clear();
        mocks.password_matches(true);
        let err = service(mocks)
            .change_password(
                &caller(&ada),
                &ClientInfo::default(),
                &SecretString::from("old"),
                password("i-am-ada-1234"),
            )
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            ChangePasswordError::WeakPassword(PasswordError::ContainsUsername)
        ));
    }
}
