//! Deleting (deactivating), restoring and unlocking users.

use tracing::info;

use super::UserService;
use crate::PortError;
use crate::model::{AuditEvent, AuditKind, ClientInfo, User, UserId, UserView, VersionMatch};
use crate::ports::{PatchUserError, UserPatch, WriteGuard};

/// Why a user could not be deleted.
#[derive(Debug, thiserror::Error)]
pub enum DeleteUserError {
    /// No such user, or already deleted.
    #[error("user not found")]
    NotFound,
    /// Someone else's account and the caller is no superuser.
    #[error("not enough permissions")]
    Forbidden,
    /// The last active superuser.
    #[error("the last active superuser cannot be deleted")]
    LastSuperuser,
    /// The user changed since the version the client sent in `If-Match`.
    #[error("the user changed since it was read")]
    PreconditionFailed,
    /// A port failed; [`PortError`] tells whether retrying may help.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Why a user could not be restored.
#[derive(Debug, thiserror::Error)]
pub enum RestoreUserError {
    /// No such user.
    #[error("user not found")]
    NotFound,
    /// The caller is no superuser.
    #[error("not enough permissions")]
    Forbidden,
    /// A port failed; [`PortError`] tells whether retrying may help.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Why a lockout could not be lifted.
#[derive(Debug, thiserror::Error)]
pub enum UnlockUserError {
    /// No such user.
    #[error("user not found")]
    NotFound,
    /// The caller is no superuser.
    #[error("not enough permissions")]
    Forbidden,
    /// A port failed; [`PortError`] tells whether retrying may help.
    #[error(transparent)]
    Port(#[from] PortError),
}

impl UserService {
    /// Soft-deletes a user and ends all their sessions. Of concurrent
    /// deletions one succeeds; the others find the user deleted (404).
    #[tracing::instrument(skip_all, fields(actor = %actor.id, target = %id))]
    pub async fn delete(
        &self,
        actor: &User,
        id: UserId,
        if_match: Option<VersionMatch>,
        client: &ClientInfo,
    ) -> Result<(), DeleteUserError> {
        let user = self
            .ports
            .users
            .find_by_id(id)
            .await?
            .filter(|u| u.is_active)
            .ok_or(DeleteUserError::NotFound)?;
        if !actor.is_superuser && actor.id != user.id {
            return Err(DeleteUserError::Forbidden);
        }
        if if_match.as_ref().is_some_and(|m| !m.accepts(user.version)) {
            return Err(DeleteUserError::PreconditionFailed);
        }
        let now = self.ports.clock.now();
        // The write itself checks that it leaves an active superuser: the
        // user may have been promoted since it was read.
        let guard = WriteGuard {
            actor: actor.id,
            actor_is_superuser: actor.is_superuser && actor.id != id,
            keep_a_superuser: true,
            password_hash: None,
            target_active: Some(true),
        };
        let event = AuditEvent::new(AuditKind::UserDeleted, now, client)
            .by(actor.id)
            .about(id);
        let version = if_match.map(|_| user.version);
        let patch = UserPatch {
            is_active: Some(false),
            ..UserPatch::default()
        };
        match self
            .ports
            .users
            .update(id, version, &patch, &guard, now, &event)
            .await
        {
            Ok(_) => {
                self.ports
                    .sessions
                    .revoke_all_for_user(id, None, now, None)
                    .await?;
                self.ports.pats.revoke_all(id).await?;
                info!("user deactivated; sessions ended, tokens revoked");
                Ok(())
            }
            Err(PatchUserError::Stale) => Err(DeleteUserError::PreconditionFailed),
            // Deleted by a concurrent request.
            Err(PatchUserError::NotFound | PatchUserError::ActiveChanged) => {
                Err(DeleteUserError::NotFound)
            }
            Err(PatchUserError::LastSuperuser) => Err(DeleteUserError::LastSuperuser),
            Err(PatchUserError::ActorChanged) => Err(DeleteUserError::Forbidden),
            Err(PatchUserError::Port(err)) => Err(err.into()),
            Err(
                err @ (PatchUserError::EmailTaken
                | PatchUserError::UsernameTaken
                | PatchUserError::PasswordChanged),
            ) => Err(PortError::unexpected(err.to_string()).into()),
        }
    }

    /// Re-activates a soft-deleted user (superusers only); restoring an
    /// active user changes nothing.
    #[tracing::instrument(skip_all, fields(actor = %actor.id, target = %id))]
    pub async fn restore(
        &self,
        actor: &User,
        id: UserId,
        client: &ClientInfo,
    ) -> Result<UserView, RestoreUserError> {
        if !actor.is_superuser {
            return Err(RestoreUserError::Forbidden);
        }
        let user = self
            .ports
            .users
            .find_by_id(id)
            .await?
            .ok_or(RestoreUserError::NotFound)?;
        if user.is_active {
            return Ok(UserView::for_viewer(user, actor));
        }
        let now = self.ports.clock.now();
        let guard = WriteGuard {
            actor: actor.id,
            actor_is_superuser: true,
            keep_a_superuser: false,
            password_hash: None,
            target_active: Some(false),
        };
        let event = AuditEvent::new(AuditKind::UserRestored, now, client)
            .by(actor.id)
            .about(id);
        let patch = UserPatch {
            is_active: Some(true),
            ..UserPatch::default()
        };
        match self
            .ports
            .users
            .update(id, None, &patch, &guard, now, &event)
            .await
        {
            Ok(user) => {
                info!("user restored");
                Ok(UserView::for_viewer(user, actor))
            }
            // Restored by a concurrent request: the outcome stands.
            Err(PatchUserError::ActiveChanged) => {
                let user = self
                    .ports
                    .users
                    .find_by_id(id)
                    .await?
                    .ok_or(RestoreUserError::NotFound)?;
                Ok(UserView::for_viewer(user, actor))
            }
            Err(PatchUserError::NotFound) => Err(RestoreUserError::NotFound),
            Err(PatchUserError::ActorChanged) => Err(RestoreUserError::Forbidden),
            Err(PatchUserError::Port(err)) => Err(err.into()),
            Err(err) => Err(PortError::unexpected(err.to_string()).into()),
        }
    }

    /// Lifts every login lock on the user's e-mail and username, from every
    /// address (superusers only).
    #[tracing::instrument(skip_all, fields(actor = %actor.id, target = %id))]
    pub async fn unlock(
        &self,
        actor: &User,
        id: UserId,
        client: &ClientInfo,
    ) -> Result<UserView, UnlockUserError> {
        if !actor.is_superuser {
            return Err(UnlockUserError::Forbidden);
        }
        let user = self
            .ports
            .users
            .find_by_id(id)
            .await?
            .ok_or(UnlockUserError::NotFound)?;
        let event = AuditEvent::new(AuditKind::UserUnlocked, self.ports.clock.now(), client)
            .by(actor.id)
            .about(id);
        self.throttle
            .clear(
                &[
                    user.email.as_str().to_owned(),
                    user.username.as_str().to_owned(),
                ],
                &event,
            )
            .await?;
        info!("login lockout lifted");
        Ok(UserView::for_viewer(user, actor))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use mockall::predicate::eq;

    use super::*;
    use crate::model::*;

    use crate::services::fixtures::{Mocks, NOW, superuser, user};
    use crate::services::users::test_support::*;

    #[tokio::test]
    async fn delete_of_oneself_deactivates_and_ends_every_session_and_token() {
        let ada = user("ada");
        let mut mocks = Mocks::default();
        found(&mut mocks, &ada);
        let id = ada.id;
        let gone = User {
            is_active: false,
            ..ada.clone()
        };
        mocks
            .users
            .expect_update()
            .withf(move |i, v, patch, guard, at, event| {
                // No If-Match: no version condition, but the write itself
                // checks that the user is still active and an active
                // superuser remains.
                *i == id
                    && v.is_none()
                    && patch.is_active == Some(false)
                    && *at == NOW
                    && guard.keep_a_superuser
                    && guard.target_active == Some(true)
                    && event.kind == AuditKind::UserDeleted
                    && event.subject_id == Some(id)
            })
            .times(1)
            .returning(move |_, _, _, _, _, _| Ok(gone.clone()));
        mocks
            .sessions
            .expect_revoke_all_for_user()
            .with(eq(ada.id), eq(None), eq(NOW), mockall::predicate::always())
            .times(1)
            .returning(|_, _, _, _| Ok(()));
        mocks
            .pats
            .expect_revoke_all()
            .with(eq(ada.id))
            .times(1)
            .returning(|_| Ok(0));
        service(mocks)
            .delete(&ada, ada.id, None, &ClientInfo::default())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn delete_of_someone_else_is_for_superusers_only() {
        let bob = user("bob");
        let mut mocks = Mocks::default();
        found(&mut mocks, &bob);
        let err = service(mocks)
            .delete(&user("ada"), bob.id, None, &ClientInfo::default())
            .await
            .unwrap_err();
        assert!(matches!(err, DeleteUserError::Forbidden));
    }

    #[tokio::test]
    async fn delete_of_a_deleted_user_is_not_found_even_for_superusers() {
        let bob = User {
            is_active: false,
            ..user("bob")
        };
        let mut mocks = Mocks::default();
        found(&mut mocks, &bob);
        let err = service(mocks)
            .delete(&superuser("root"), bob.id, None, &ClientInfo::default())
            .await
            .unwrap_err();
        assert!(matches!(err, DeleteUserError::NotFound));
    }

    #[tokio::test]
    async fn delete_of_the_last_active_superuser_is_refused() {
        let root = superuser("root");
        let mut mocks = Mocks::default();
        found(&mut mocks, &root);
        mocks
            .users
            .expect_update()
            .withf(|_, _, _, guard, _, _| guard.keep_a_superuser)
            .times(1)
            .returning(|_, _, _, _, _, _| Err(crate::ports::PatchUserError::LastSuperuser));
        let err = service(mocks)
            .delete(&root, root.id, None, &ClientInfo::default())
            .await
            .unwrap_err();
        assert!(matches!(err, DeleteUserError::LastSuperuser));
    }

    #[tokio::test]
    async fn restore_is_for_superusers_and_reactivates() {
        let bob = User {
            is_active: false,
            ..user("bob")
        };
        let err = service(Mocks::default())
            .restore(&user("ada"), bob.id, &ClientInfo::default())
            .await
            .unwrap_err();
        assert!(matches!(err, RestoreUserError::Forbidden));

        let mut mocks = Mocks::default();
        found(&mut mocks, &bob);
        let back = User {
            is_active: true,
            ..bob.clone()
        };
        mocks
            .users
            .expect_update()
            .withf(|_, _, patch, guard, _, event| {
                patch.is_active == Some(true)
                    && guard.actor_is_superuser
                    && !guard.keep_a_superuser
                    && guard.target_active == Some(false)
                    && event.kind == AuditKind::UserRestored
            })
            .times(1)
            .returning(move |_, _, _, _, _, _| Ok(back.clone()));
        let view = service(mocks)
            .restore(&superuser("root"), bob.id, &ClientInfo::default())
            .await
            .unwrap();
        assert!(view.user().is_active);
    }

    #[tokio::test]
    async fn a_delete_with_a_stale_if_match_is_refused_and_a_current_one_is_the_write_condition() {
        let bob = user("bob");
        let mut mocks = Mocks::default();
        found(&mut mocks, &bob);
        mocks.users.expect_update().never();
        let stale = VersionMatch::any_of([bob.version + 1, bob.version + 2]);
        let err = service(mocks)
            .delete(
                &superuser("root"),
                bob.id,
                Some(stale),
                &ClientInfo::default(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, DeleteUserError::PreconditionFailed));

        let mut mocks = Mocks::default();
        found(&mut mocks, &bob);
        let version = bob.version;
        mocks
            .users
            .expect_update()
            .withf(move |_, v, _, _, _, _| *v == Some(version))
            .times(1)
            .returning(|_, _, _, _, _, _| Err(crate::ports::PatchUserError::Stale));
        let listed = VersionMatch::any_of([version + 5, version]);
        let err = service(mocks)
            .delete(
                &superuser("root"),
                bob.id,
                Some(listed),
                &ClientInfo::default(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, DeleteUserError::PreconditionFailed));
    }

    #[tokio::test]
    async fn unlock_is_for_superusers_and_clears_the_lockout() {
        let bob = user("bob");
        let err = service(Mocks::default())
            .unlock(&user("ada"), bob.id, &ClientInfo::default())
            .await
            .unwrap_err();
        assert!(matches!(err, UnlockUserError::Forbidden));
        let mut mocks = Mocks::default();
        found(&mut mocks, &bob);
        // Both names the user can log in with, from every address.
        mocks
            .throttle
            .expect_clear_names()
            .withf(|names, event| {
                names == ["bob@example.com".to_owned(), "bob".to_owned()]
                    && event
                        .as_ref()
                        .is_some_and(|e| e.kind == AuditKind::UserUnlocked)
            })
            .times(1)
            .returning(|_, _| Ok(()));
        let view = service(mocks)
            .unlock(&superuser("root"), bob.id, &ClientInfo::default())
            .await
            .unwrap();
        assert_eq!(view.user().id, bob.id);
    }

    #[tokio::test]
    async fn of_concurrent_deletions_the_one_that_lost_finds_the_user_gone() {
        let bob = user("bob");
        let mut mocks = Mocks::default();
        found(&mut mocks, &bob);
        // The write is conditional on the user being active.
        mocks
            .users
            .expect_update()
            .times(1)
            .returning(|_, _, _, _, _, _| Err(crate::ports::PatchUserError::ActiveChanged));
        let err = service(mocks)
            .delete(&superuser("root"), bob.id, None, &ClientInfo::default())
            .await
            .unwrap_err();
        assert!(matches!(err, DeleteUserError::NotFound));
    }
}
