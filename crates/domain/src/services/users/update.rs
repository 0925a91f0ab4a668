//! Changing a user: who may change which field, and writes that no concurrent request can undo.

use time::Duration;
use tracing::{info, warn};

use super::{MAX_ATTEMPTS, UserService};
use crate::PortError;
use crate::model::{
    AuditEvent, AuditKind, ClientInfo, Email, FullName, Password, PasswordError, PasswordHash,
    Taken, User, UserId, UserView, Username,
};
use crate::ports::{PatchUserError, UserPatch, WriteGuard};

/// The fields an update sends; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct UserChanges {
    /// New address.
    pub email: Option<Email>,
    /// New username.
    pub username: Option<Username>,
    /// New display name; `Some(None)` clears it.
    pub full_name: Option<Option<FullName>>,
    /// New password (superuser only, unless it is the current one).
    pub password: Option<Password>,
    /// New active flag (superuser only, unless unchanged).
    pub is_active: Option<bool>,
    /// New superuser flag (superuser only, unless unchanged).
    pub is_superuser: Option<bool>,
}

/// Why a user could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum UpdateUserError {
    /// No such user, or invisible to the caller.
    #[error("user not found")]
    NotFound,
    /// Someone else's account, or a superuser-only field changed.
    #[error("not enough permissions")]
    Forbidden,
    /// The new address or username is another user's.
    #[error(transparent)]
    Taken(Taken),
    /// The new password contains personal information.
    #[error(transparent)]
    WeakPassword(PasswordError),
    /// The change would leave no active superuser.
    #[error("the last active superuser cannot be deactivated or demoted")]
    LastSuperuser,
    /// The user changed since the version the client sent in `If-Match`.
    #[error("the user changed since it was read")]
    PreconditionFailed,
    /// The user kept changing under this request.
    #[error("the user changed while this request ran; try again")]
    Conflict,
    /// Too many wrong passwords for this user from this address.
    #[error("too many failed password checks")]
    Locked {
        /// Time left on the lock.
        retry_after: Duration,
    },
    /// A port failed; [`PortError`] tells whether retrying may help.
    #[error(transparent)]
    Port(#[from] PortError),
}

impl UserService {
    /// Applies the fields sent, under the field-level permissions of the
    /// contract, writing only the fields that change. The write is
    /// conditional on the version the rules were checked against; when
    /// another write landed first the rules are checked again on the new
    /// state (or, with `if_match`, the caller gets `PreconditionFailed`).
    #[tracing::instrument(skip_all, fields(actor = %actor.id, target = %id))]
    pub async fn update(
        &self,
        actor: &User,
        id: UserId,
        changes: UserChanges,
        if_match: Option<u64>,
        client: &ClientInfo,
    ) -> Result<UserView, UpdateUserError> {
        // bcrypt work is done once and reused by a retry while it still applies.
        let mut proven: Option<PasswordHash> = None;
        let mut new_hash: Option<PasswordHash> = None;
        for _ in 0..MAX_ATTEMPTS {
            let before = self
                .visible(actor, id)
                .await?
                .ok_or(UpdateUserError::NotFound)?;
            // Permission first: the version counts logins too, and only
            // those who may read `last_login_at` may learn it.
            if !actor.is_superuser && actor.id != before.id {
                return Err(UpdateUserError::Forbidden);
            }
            if if_match.is_some_and(|v| v != before.version) {
                return Err(UpdateUserError::PreconditionFailed);
            }
            let mut patch = UserPatch {
                email: changes.email.clone().filter(|e| *e != before.email),
                username: changes.username.clone().filter(|u| *u != before.username),
                full_name: changes.full_name.clone().filter(|n| *n != before.full_name),
                ..UserPatch::default()
            };
            if actor.is_superuser {
                patch.is_active = changes.is_active.filter(|v| *v != before.is_active);
                patch.is_superuser = changes.is_superuser.filter(|v| *v != before.is_superuser);
                if let Some(new) = &changes.password {
                    let username = patch.username.as_ref().unwrap_or(&before.username);
                    let email = patch.email.as_ref().unwrap_or(&before.email);
                    self.password_policy
                        .check(new, username, email)
                        .map_err(UpdateUserError::WeakPassword)?;
                    if new_hash.is_none() {
                        new_hash = Some(self.ports.hasher.hash(new).await?);
                    }
                    patch.password_hash.clone_from(&new_hash);
                }
            } else {
                // Superuser-only fields may be sent back unchanged, never changed.
                let flag_changed = changes.is_active.is_some_and(|v| v != before.is_active)
                    || changes
                        .is_superuser
                        .is_some_and(|v| v != before.is_superuser);
                if flag_changed {
                    return Err(UpdateUserError::Forbidden);
                }
                if let Some(sent) = &changes.password
                    && proven.as_ref() != Some(&before.password_hash)
                {
                    self.prove_password(&before, sent, client).await?;
                    proven = Some(before.password_hash.clone());
                }
            }
            if patch.is_empty() {
                return Ok(UserView::for_viewer(before, actor));
            }
            // A new address is unproven until its own link is followed.
            if patch.email.is_some() {
                patch.is_verified = Some(false);
            }
            let stays_superuser = patch.is_active.unwrap_or(before.is_active)
                && patch.is_superuser.unwrap_or(before.is_superuser);
            // The actor's own rights must still hold when the write lands:
            // a superuser deactivated or demoted meanwhile changes nothing.
            let as_superuser = actor.id != id
                || patch.is_active.is_some()
                || patch.is_superuser.is_some()
                || patch.password_hash.is_some();
            let guard = WriteGuard {
                actor: actor.id,
                actor_is_superuser: actor.is_superuser && as_superuser,
                keep_a_superuser: before.is_active && before.is_superuser && !stays_superuser,
            };
            let now = self.ports.clock.now();
            let mut event = AuditEvent::new(AuditKind::UserUpdated, now, client)
                .by(actor.id)
                .about(id);
            event.details.fields = changed_fields(&patch);
            let outcome = self
                .ports
                .users
                .update(id, before.version, &patch, &guard, now, &event)
                .await;
            let after = match outcome {
                Ok(after) => after,
                Err(PatchUserError::Stale) if if_match.is_some() => {
                    return Err(UpdateUserError::PreconditionFailed);
                }
                Err(PatchUserError::Stale) => continue,
                Err(PatchUserError::NotFound) => return Err(UpdateUserError::NotFound),
                Err(PatchUserError::EmailTaken) => {
                    return Err(UpdateUserError::Taken(Taken::Email));
                }
                Err(PatchUserError::UsernameTaken) => {
                    return Err(UpdateUserError::Taken(Taken::Username));
                }
                Err(PatchUserError::LastSuperuser) => return Err(UpdateUserError::LastSuperuser),
                Err(PatchUserError::ActorChanged) => return Err(UpdateUserError::Forbidden),
                Err(PatchUserError::Port(err)) => return Err(err.into()),
            };
            if patch.is_active == Some(false) || patch.password_hash.is_some() {
                self.ports
                    .sessions
                    .revoke_all_for_user(id, None, now, None)
                    .await?;
            }
            if let Some(email) = &patch.email {
                crate::services::queue_verification(&self.ports, email, client).await;
            }
            info!("user updated");
            return Ok(UserView::for_viewer(after, actor));
        }
        warn!("user update gave up: the user kept changing");
        Err(UpdateUserError::Conflict)
    }

    /// Checks the password a non-superuser sent with a profile update. A
    /// wrong one counts as a failed login of that user from this address.
    async fn prove_password(
        &self,
        user: &User,
        sent: &Password,
        client: &ClientInfo,
    ) -> Result<(), UpdateUserError> {
        let name = user.username.as_str();
        let address = client.ip.as_deref();
        let now = self.ports.clock.now();
        if let Some(retry_after) = self.throttle.refusal(name, address, now).await? {
            return Err(UpdateUserError::Locked { retry_after });
        }
        if !self
            .ports
            .hasher
            .verify(sent.secret(), &user.password_hash)
            .await?
        {
            warn!("profile update refused: wrong password");
            let event = AuditEvent::new(AuditKind::LoginFailed, now, client)
                .about(user.id)
                .reason("wrong_password");
            self.throttle.failed(name, address, now, event).await?;
            return Err(UpdateUserError::Forbidden);
        }
        Ok(())
    }
}

/// The names of the fields a patch writes, for its audit event: names
/// only, never values.
fn changed_fields(patch: &UserPatch) -> Vec<String> {
    let written = [
        ("email", patch.email.is_some()),
        ("username", patch.username.is_some()),
        ("full_name", patch.full_name.is_some()),
        ("password", patch.password_hash.is_some()),
        ("is_active", patch.is_active.is_some()),
        ("is_superuser", patch.is_superuser.is_some()),
        ("is_verified", patch.is_verified.is_some()),
    ];
    written
        .into_iter()
        .filter(|(_, written)| *written)
        .map(|(name, _)| name.to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use mockall::predicate::eq;

    use super::*;
    use crate::model::*;
    use crate::ports::*;
    use crate::services::fixtures::{Mocks, NOW, password, superuser, user};
    use crate::services::users::test_support::*;

    #[test]
    fn an_update_event_names_the_fields_never_their_values() {
        let patch = UserPatch {
            email: Some(Email::parse("new@example.com").unwrap()),
            full_name: Some(None),
            password_hash: Some(PasswordHash::new("secret-hash".into())),
            is_verified: Some(false),
            ..UserPatch::default()
        };
        let fields = super::changed_fields(&patch);
        assert_eq!(fields, ["email", "full_name", "password", "is_verified"]);
        assert!(!format!("{fields:?}").contains("secret-hash"));
    }

    #[tokio::test]
    async fn a_new_address_is_unverified_and_gets_its_own_link() {
        let ada = User {
            is_verified: true,
            ..user("ada")
        };
        let mut mocks = Mocks::default();
        found(&mut mocks, &ada);
        saved(&mut mocks, &ada, |patch, _| {
            patch.email.as_ref().map(Email::as_str) == Some("ada@new.example")
                && patch.is_verified == Some(false)
        });
        mocks
            .mail
            .expect_enqueue()
            .withf(|kind, email, _, _| *kind == MailKind::VerifyEmail && email == "ada@new.example")
            .times(1)
            .returning(|_, _, _, _| Ok(()));
        let changes = UserChanges {
            email: Some(Email::parse("ada@new.example").unwrap()),
            ..UserChanges::default()
        };
        let view = update(mocks, &ada, ada.id, changes).await.unwrap();
        assert!(!view.user().is_verified);
    }

    #[tokio::test]
    async fn update_of_someone_else_by_an_ordinary_user_is_forbidden() {
        let bob = user("bob");
        let mut mocks = Mocks::default();
        found(&mut mocks, &bob);
        let changes = UserChanges {
            full_name: Some(None),
            ..UserChanges::default()
        };
        let err = update(mocks, &user("ada"), bob.id, changes)
            .await
            .unwrap_err();
        assert!(matches!(err, UpdateUserError::Forbidden));
    }

    #[tokio::test]
    async fn update_lets_a_user_change_their_profile_and_send_back_unchanged_flags() {
        let ada = user("ada");
        let mut mocks = Mocks::default();
        found(&mut mocks, &ada);
        // Only the fields that change are written; the unchanged flags are not.
        saved(&mut mocks, &ada, |p, keep| {
            *p == UserPatch {
                username: Some(Username::parse("ada2").unwrap()),
                full_name: Some(Some(FullName::parse("Ada").unwrap())),
                ..UserPatch::default()
            } && !keep
        });
        let changes = UserChanges {
            username: Some(Username::parse("Ada2").unwrap()),
            full_name: Some(Some(FullName::parse("Ada").unwrap())),
            is_active: Some(true),
            is_superuser: Some(false),
            ..UserChanges::default()
        };
        let view = update(mocks, &ada, ada.id, changes).await.unwrap();
        assert_eq!(view.user().username.as_str(), "ada2");
    }

    #[tokio::test]
    async fn update_forbids_an_ordinary_user_to_change_superuser_only_flags() {
        for changes in [
            UserChanges {
                is_superuser: Some(true),
                ..UserChanges::default()
            },
            UserChanges {
                is_active: Some(false),
                ..UserChanges::default()
            },
        ] {
            let ada = user("ada");
            let mut mocks = Mocks::default();
            found(&mut mocks, &ada);
            let err = update(mocks, &ada, ada.id, changes).await.unwrap_err();
            assert!(matches!(err, UpdateUserError::Forbidden));
        }
    }

    #[tokio::test]
    async fn update_accepts_an_ordinary_users_current_password_but_not_a_new_one() {
        for (matches, ok) in [(true, true), (false, false)] {
            let ada = user("ada");
            let mut mocks = Mocks::default();
            found(&mut mocks, &ada);
            mocks.throttle_clear();
            mocks
                .hasher
                .expect_verify()
                .times(1)
                .returning(move |_, _| Ok(matches));
            if !matches {
                // A wrong password counts as a failed login of the user.
                mocks
                    .throttle
                    .expect_record_failure()
                    .withf(|name, _, _, _, _| name == "ada")
                    .times(1)
                    .returning(|_, _, _, _, _| Ok(crate::ports::ThrottleState::default()));
            }
            // The current password is proven, not written: nothing changes.
            mocks.users.expect_update().never();
            let changes = UserChanges {
                password: Some(password("some password")),
                ..UserChanges::default()
            };
            let result = update(mocks, &ada, ada.id, changes).await;
            assert_eq!(result.is_ok(), ok, "{result:?}");
            if !ok {
                assert!(matches!(result, Err(UpdateUserError::Forbidden)));
            }
        }
    }

    #[tokio::test]
    async fn update_of_a_password_by_a_superuser_rehashes_and_ends_the_users_sessions() {
        let bob = user("bob");
        let mut mocks = Mocks::default();
        found(&mut mocks, &bob);
        mocks
            .hasher
            .expect_hash()
            .times(1)
            .returning(|_| Ok(PasswordHash::new("new".into())));
        saved(&mut mocks, &bob, |p, _| {
            p.password_hash.as_ref().map(PasswordHash::as_str) == Some("new")
        });
        mocks
            .sessions
            .expect_revoke_all_for_user()
            .with(eq(bob.id), eq(None), eq(NOW), mockall::predicate::always())
            .times(1)
            .returning(|_, _, _, _| Ok(()));
        let changes = UserChanges {
            password: Some(password("new passphrase")),
            ..UserChanges::default()
        };
        update(mocks, &superuser("root"), bob.id, changes)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn update_refuses_a_new_password_containing_the_new_username() {
        let bob = user("bob");
        let mut mocks = Mocks::default();
        found(&mut mocks, &bob);
        let changes = UserChanges {
            username: Some(Username::parse("robert").unwrap()),
            password: Some(password("i-am-robert")),
            ..UserChanges::default()
        };
        let err = update(mocks, &superuser("root"), bob.id, changes)
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            UpdateUserError::WeakPassword(PasswordError::ContainsUsername)
        ));
    }

    #[tokio::test]
    async fn update_cannot_demote_the_last_active_superuser() {
        let root = superuser("root");
        let mut mocks = Mocks::default();
        found(&mut mocks, &root);
        mocks
            .users
            .expect_update()
            .withf(|_, _, p, guard, _, _| p.is_superuser == Some(false) && guard.keep_a_superuser)
            .times(1)
            .returning(|_, _, _, _, _, _| Err(PatchUserError::LastSuperuser));
        let changes = UserChanges {
            is_superuser: Some(false),
            ..UserChanges::default()
        };
        let err = update(mocks, &root, root.id, changes).await.unwrap_err();
        assert!(matches!(err, UpdateUserError::LastSuperuser));
    }

    #[tokio::test]
    async fn update_that_deactivates_a_user_ends_their_sessions() {
        let bob = user("bob");
        let mut mocks = Mocks::default();
        found(&mut mocks, &bob);
        saved(&mut mocks, &bob, |p, keep| {
            p.is_active == Some(false) && !keep
        });
        mocks
            .sessions
            .expect_revoke_all_for_user()
            .times(1)
            .returning(|_, _, _, _| Ok(()));
        let changes = UserChanges {
            is_active: Some(false),
            ..UserChanges::default()
        };
        update(mocks, &superuser("root"), bob.id, changes)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn an_update_that_lost_a_race_re_reads_and_applies_the_rules_again() {
        // Bob renames himself while a superuser deactivates him: the rename
        // was computed from version 1, finds version 2 and starts over; on
        // the deactivated row it is no longer bob's to make.
        let bob = user("bob");
        let deactivated = User {
            is_active: false,
            version: 2,
            ..bob.clone()
        };
        let mut mocks = Mocks::default();
        mocks.reads_in_turn(vec![bob.clone(), deactivated]);
        mocks
            .users
            .expect_update()
            .withf(|_, version, _, _, _, _| *version == 1)
            .times(1)
            .returning(|_, _, _, _, _, _| Err(PatchUserError::Stale));
        let changes = UserChanges {
            full_name: Some(Some(FullName::parse("Robert").unwrap())),
            ..UserChanges::default()
        };
        let err = update(mocks, &bob, bob.id, changes).await.unwrap_err();
        assert!(matches!(err, UpdateUserError::NotFound));
    }

    #[tokio::test]
    async fn an_update_with_a_stale_if_match_is_refused_before_any_write() {
        let bob = user("bob");
        let mut mocks = Mocks::default();
        found(&mut mocks, &bob);
        mocks.users.expect_update().never();
        let changes = UserChanges {
            full_name: Some(None),
            ..UserChanges::default()
        };
        let err = update_if_match(mocks, &bob, bob.id, changes, Some(7))
            .await
            .unwrap_err();
        assert!(matches!(err, UpdateUserError::PreconditionFailed));
    }

    #[tokio::test]
    async fn a_wrong_password_in_a_profile_update_is_refused_while_the_user_is_locked() {
        let ada = user("ada");
        let mut mocks = Mocks::default();
        found(&mut mocks, &ada);
        mocks.throttle.expect_state().returning(|_, _| {
            Ok(crate::ports::ThrottleState {
                pair_locked_until: Some(NOW + time::Duration::seconds(60)),
                ..crate::ports::ThrottleState::default()
            })
        });
        mocks.hasher.expect_verify().never();
        let changes = UserChanges {
            password: Some(password("a guess at it")),
            ..UserChanges::default()
        };
        let err = update(mocks, &ada, ada.id, changes).await.unwrap_err();
        assert!(matches!(err, UpdateUserError::Locked { .. }));
    }

    async fn update(
        mocks: Mocks,
        actor: &User,
        target: UserId,
        changes: UserChanges,
    ) -> Result<UserView, UpdateUserError> {
        update_if_match(mocks, actor, target, changes, None).await
    }

    async fn update_if_match(
        mocks: Mocks,
        actor: &User,
        target: UserId,
        changes: UserChanges,
        if_match: Option<u64>,
    ) -> Result<UserView, UpdateUserError> {
        service(mocks)
            .update(actor, target, changes, if_match, &ClientInfo::default())
            .await
    }
}
