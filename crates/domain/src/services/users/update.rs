//! Changing a user: who may change which field, and writes that no concurrent request can undo.

use secrecy::SecretString;
use time::Duration;
use tracing::{info, warn};

use super::UserService;
use crate::PortError;
use crate::model::{
    AuditEvent, AuditKind, ClientInfo, Email, FailureReason, FullName, MailKind, Notice, Password,
    PasswordError, Taken, User, UserId, UserView, Username, VersionMatch,
};
use crate::ports::{AccessClaims, PatchUserError, UserPatch, WriteGuard};

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
    /// The account's password, which a change of one's own email needs.
    pub current_password: Option<SecretString>,
}

/// A user about to be changed, with who changes it: the actor may write it.
#[derive(Debug)]
pub struct UpdateTarget {
    actor: User,
    before: User,
}

impl UpdateTarget {
    /// Permission first: only those who may write the user learn whether
    /// the version matched, or spend its budgets.
    fn new(actor: User, before: Option<User>) -> Result<Self, UpdateUserError> {
        let before = before.ok_or(UpdateUserError::NotFound)?;
        if !actor.is_superuser && actor.id != before.id {
            return Err(UpdateUserError::Forbidden);
        }
        Ok(Self { actor, before })
    }

    /// Who changes the user, as read with it.
    #[must_use]
    pub fn actor(&self) -> &User {
        &self.actor
    }
}

/// Why a user could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum UpdateUserError {
    /// The access token's session has ended, or its user is deactivated.
    #[error("could not validate credentials")]
    Unauthenticated,
    /// No such user, or invisible to the caller.
    #[error("user not found")]
    NotFound,
    /// Someone else's account, or a superuser-only field changed.
    #[error("not enough permissions")]
    Forbidden,
    /// A change of one's own email sent without the current password.
    #[error("changing the email needs the current password")]
    EmailChangeNeedsPassword,
    /// The current password sent with an email change is wrong.
    #[error("incorrect password")]
    IncorrectPassword,
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

/// What an update writes and the state its rules relied on, before any
/// password is checked or hashed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct UpdatePlan {
    /// The columns that change.
    pub patch: UserPatch,
    /// The state the write depends on.
    pub guard: WriteGuard,
    /// A non-superuser sent `password`: allowed only as the current one.
    pub prove_sent_password: bool,
    /// The actor changes their own email.
    pub own_email_change: bool,
}

/// Who may change what: the permission rules of an update, as a pure
/// function of the actor, the user as read and the fields sent. Writes
/// only fields that differ from what is stored, and relies on no other
/// state than the guard names, so that concurrent updates of other fields
/// never refuse each other.
pub(crate) fn plan_update(
    actor: &User,
    before: &User,
    changes: &UserChanges,
) -> Result<UpdatePlan, UpdateUserError> {
    if !actor.is_superuser && actor.id != before.id {
        return Err(UpdateUserError::Forbidden);
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
    } else {
        // Superuser-only fields may be sent back unchanged, never changed.
        let flag_changed = changes.is_active.is_some_and(|v| v != before.is_active)
            || changes
                .is_superuser
                .is_some_and(|v| v != before.is_superuser);
        if flag_changed {
            return Err(UpdateUserError::Forbidden);
        }
    }
    // A new address is unproven until its own link is followed.
    if patch.email.is_some() {
        patch.is_verified = Some(false);
    }
    // Whether this write removes a superuser is decided by the write: the
    // user may have been promoted since it was read.
    let removes_a_superuser = patch.is_active == Some(false) || patch.is_superuser == Some(false);
    // The actor's own rights must still hold when the write lands: a
    // superuser deactivated or demoted meanwhile changes nothing.
    let as_superuser = actor.id != before.id
        || patch.is_active.is_some()
        || patch.is_superuser.is_some()
        || (actor.is_superuser && changes.password.is_some());
    Ok(UpdatePlan {
        guard: WriteGuard {
            actor: actor.id,
            actor_is_superuser: actor.is_superuser && as_superuser,
            keep_a_superuser: removes_a_superuser,
            password_hash: None,
            target_active: None,
        },
        prove_sent_password: !actor.is_superuser && changes.password.is_some(),
        own_email_change: patch.email.is_some() && actor.id == before.id,
        patch,
    })
}

impl UserService {
    /// Applies the fields sent, under the field-level permissions of the
    /// contract ([`plan_update`]), writing only the fields that change. The
    /// write is conditional on the state the rules relied on, and on the
    /// version only when the client sent `If-Match`. An email change mails
    /// the old address a notice with a link that undoes it, and the new
    /// one a verification link; a new password mails a notice.
    pub async fn update(
        &self,
        actor: &User,
        id: UserId,
        changes: UserChanges,
        if_match: Option<VersionMatch>,
        client: &ClientInfo,
    ) -> Result<UserView, UpdateUserError> {
        let target = self.target(actor.clone(), id).await?;
        self.apply(target, changes, if_match, client).await
    }

    /// The first half of [`UserService::update`]: reads the user `actor`
    /// wants to change; 404 when it is invisible to them, 403 when it is
    /// not theirs to change. The caller may spend budgets on the
    /// [`UpdateTarget::actor`] before [`UserService::apply`].
    pub async fn target(&self, actor: User, id: UserId) -> Result<UpdateTarget, UpdateUserError> {
        let before = self.visible(&actor, id).await?;
        UpdateTarget::new(actor, before)
    }

    /// [`UserService::target`] for the caller a verified access token
    /// names: the session check and the read are one round trip.
    pub async fn target_as(
        &self,
        caller: AccessClaims,
        id: UserId,
    ) -> Result<UpdateTarget, UpdateUserError> {
        let now = self.ports.clock.now();
        let (actor, before) = self
            .ports
            .sessions
            .find_active_user_and(caller.user_id, caller.session_id, id, now)
            .await?
            .ok_or(UpdateUserError::Unauthenticated)?;
        let before = before.filter(|u| u.is_active || actor.is_superuser);
        UpdateTarget::new(actor, before)
    }

    /// The second half of [`UserService::update`]: applies the changes to
    /// the user [`UserService::target`] read.
    #[tracing::instrument(skip_all, fields(actor = %target.actor.id, target = %target.before.id))]
    pub async fn apply(
        &self,
        target: UpdateTarget,
        changes: UserChanges,
        if_match: Option<VersionMatch>,
        client: &ClientInfo,
    ) -> Result<UserView, UpdateUserError> {
        let UpdateTarget { actor, before } = target;
        let actor = &actor;
        let id = before.id;
        if if_match
            .as_ref()
            .is_some_and(|m| !m.accepts(before.version))
        {
            return Err(UpdateUserError::PreconditionFailed);
        }
        let UpdatePlan {
            mut patch,
            mut guard,
            prove_sent_password,
            own_email_change,
        } = plan_update(actor, &before, &changes)?;
        if own_email_change && self.email_change_requires_password {
            let sent = changes
                .current_password
                .as_ref()
                .ok_or(UpdateUserError::EmailChangeNeedsPassword)?;
            self.prove_password(&before, sent, client, UpdateUserError::IncorrectPassword)
                .await?;
            guard.password_hash = Some(before.password_hash.clone());
        }
        if prove_sent_password && let Some(sent) = &changes.password {
            self.prove_password(&before, sent.secret(), client, UpdateUserError::Forbidden)
                .await?;
            guard.password_hash = Some(before.password_hash.clone());
        }
        if actor.is_superuser
            && let Some(new) = &changes.password
        {
            let username = patch.username.as_ref().unwrap_or(&before.username);
            let email = patch.email.as_ref().unwrap_or(&before.email);
            self.password_policy
                .check(new, username, email)
                .map_err(UpdateUserError::WeakPassword)?;
            patch.password_hash = Some(self.ports.hasher.hash(new).await?);
        }
        if patch.is_empty() {
            return Ok(UserView::for_viewer(before, actor));
        }
        let now = self.ports.clock.now();
        if patch.email.is_some() {
            // Nobody else may take the old address while its owner can
            // still undo the change (and so get it back).
            patch.reserve_old_email =
                Some((before.email.clone(), now + self.old_email_reserved_for));
        }
        let mut event = AuditEvent::new(AuditKind::UserUpdated, now, client)
            .by(actor.id)
            .about(id);
        event.details.fields = changed_fields(&patch);
        let version = if_match.map(|_| before.version);
        let after = self
            .ports
            .users
            .update(id, version, &patch, &guard, now, &event)
            .await
            .map_err(|err| match err {
                PatchUserError::Stale => UpdateUserError::PreconditionFailed,
                PatchUserError::NotFound | PatchUserError::ActiveChanged => {
                    UpdateUserError::NotFound
                }
                PatchUserError::EmailTaken => UpdateUserError::Taken(Taken::Email),
                PatchUserError::UsernameTaken => UpdateUserError::Taken(Taken::Username),
                PatchUserError::LastSuperuser => UpdateUserError::LastSuperuser,
                PatchUserError::ActorChanged => UpdateUserError::Forbidden,
                // The password proven is no longer the account's.
                PatchUserError::PasswordChanged if own_email_change => {
                    UpdateUserError::IncorrectPassword
                }
                PatchUserError::PasswordChanged => UpdateUserError::Forbidden,
                PatchUserError::Port(err) => UpdateUserError::Port(err),
            })?;
        if patch.is_active == Some(false) || patch.password_hash.is_some() {
            self.ports
                .sessions
                .revoke_all_for_user(id, None, now, None)
                .await?;
        }
        if patch.is_active == Some(false) {
            self.ports.pats.revoke_all(id).await?;
        }
        if let Some(email) = &patch.email {
            let notice = Notice {
                kind: MailKind::EmailChanged,
                user_id: id,
                to: before.email.clone(),
                new_email: Some(email.clone()),
                target: None,
            };
            crate::services::queue_notice(self.ports.outbox(), &notice, client).await;
            crate::services::queue_verification(self.ports.outbox(), email, client).await;
        }
        if patch.password_hash.is_some() {
            let notice = Notice {
                kind: MailKind::PasswordChanged,
                user_id: id,
                to: after.email.clone(),
                new_email: None,
                target: None,
            };
            crate::services::queue_notice(self.ports.outbox(), &notice, client).await;
        }
        info!("user updated");
        Ok(UserView::for_viewer(after, actor))
    }

    /// Checks a password sent with a profile update. A wrong one counts as
    /// a failed login of that user from this address, and is `wrong`.
    async fn prove_password(
        &self,
        user: &User,
        sent: &SecretString,
        client: &ClientInfo,
        wrong: UpdateUserError,
    ) -> Result<(), UpdateUserError> {
        let name = user.username.as_str();
        let address = client.address_key();
        let address = address.as_deref();
        let now = self.ports.clock.now();
        if let Some(retry_after) = self.throttle.refusal(name, address, now).await? {
            return Err(UpdateUserError::Locked { retry_after });
        }
        if !self.ports.hasher.verify(sent, &user.password_hash).await? {
            warn!("profile update refused: wrong password");
            let event = AuditEvent::new(AuditKind::LoginFailed, now, client)
                .about(user.id)
                .reason(FailureReason::WrongPassword);
            self.throttle.failed(name, address, now, event).await?;
            return Err(wrong);
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

    /// The change is written, the new address gets a verification link and
    /// the old one a notice naming the new one.
    fn expects_email_change(mocks: &mut Mocks, target: &User, new: &'static str) {
        let old = target.email.clone();
        saved(mocks, target, move |patch, _| {
            patch.email.as_ref().map(Email::as_str) == Some(new) && patch.is_verified == Some(false)
        });
        mocks
            .mail
            .expect_enqueue()
            .withf(move |kind, email, _, _| *kind == MailKind::VerifyEmail && email == new)
            .times(1)
            .returning(|_, _, _, _| Ok(()));
        let id = target.id;
        mocks
            .mail
            .expect_notify()
            .withf(move |notice, _, _| {
                *notice
                    == Notice {
                        kind: MailKind::EmailChanged,
                        user_id: id,
                        to: old.clone(),
                        new_email: Some(Email::parse(new).unwrap()),
                        target: None,
                    }
            })
            .times(1)
            .returning(|_, _, _| Ok(()));
    }

    fn email_change(email: &str, current_password: Option<&str>) -> UserChanges {
        UserChanges {
            email: Some(Email::parse(email).unwrap()),
            current_password: current_password.map(|p| SecretString::from(p.to_owned())),
            ..UserChanges::default()
        }
    }

    #[tokio::test]
    async fn a_new_address_is_unverified_and_gets_its_own_link_and_the_old_one_a_notice() {
        let ada = User {
            is_verified: true,
            ..user("ada")
        };
        let mut mocks = Mocks::default();
        found(&mut mocks, &ada);
        mocks.throttle_clear();
        mocks.password_matches(true);
        expects_email_change(&mut mocks, &ada, "ada@new.example");
        let changes = email_change("ada@new.example", Some("the password"));
        let view = update(mocks, &ada, ada.id, changes).await.unwrap();
        assert!(!view.user().is_verified);
    }

    #[tokio::test]
    async fn changing_ones_own_email_needs_the_current_password() {
        let ada = user("ada");
        // Without it: refused before any check or write.
        let mut mocks = Mocks::default();
        found(&mut mocks, &ada);
        mocks.hasher.expect_verify().never();
        mocks.users.expect_update().never();
        let err = update(mocks, &ada, ada.id, email_change("a@new.example", None))
            .await
            .unwrap_err();
        assert!(matches!(err, UpdateUserError::EmailChangeNeedsPassword));

        // A wrong one: refused, and counted as a failed login of the user.
        let mut mocks = Mocks::default();
        found(&mut mocks, &ada);
        mocks.throttle_clear();
        mocks.password_matches(false);
        mocks
            .throttle
            .expect_record_failure()
            .withf(|name, _, _, _, event| name == "ada" && event.kind == AuditKind::LoginFailed)
            .times(1)
            .returning(|_, _, _, _, _| Ok(ThrottleState::default()));
        mocks.users.expect_update().never();
        let err = update(
            mocks,
            &ada,
            ada.id,
            email_change("a@new.example", Some("guess")),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, UpdateUserError::IncorrectPassword));

        // The right one: the write relies on that password still being hers.
        let mut mocks = Mocks::default();
        found(&mut mocks, &ada);
        mocks.throttle_clear();
        mocks.password_matches(true);
        let hash = ada.password_hash.clone();
        mocks
            .users
            .expect_update()
            .withf(move |_, _, _, guard, _, _| guard.password_hash.as_ref() == Some(&hash))
            .times(1)
            .returning(|_, _, _, _, _, _| Err(PatchUserError::PasswordChanged));
        let err = update(
            mocks,
            &ada,
            ada.id,
            email_change("a@new.example", Some("right")),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, UpdateUserError::IncorrectPassword));
    }

    #[tokio::test]
    async fn an_email_change_needs_no_password_when_turned_off_or_made_by_a_superuser_for_another()
    {
        let ada = user("ada");
        let mut mocks = Mocks::default();
        found(&mut mocks, &ada);
        mocks.hasher.expect_verify().never();
        expects_email_change(&mut mocks, &ada, "ada@new.example");
        service(mocks)
            .email_change_requires_password(false)
            .update(
                &ada,
                ada.id,
                email_change("ada@new.example", None),
                None,
                &ClientInfo::default(),
            )
            .await
            .unwrap();

        let mut mocks = Mocks::default();
        found(&mut mocks, &ada);
        mocks.hasher.expect_verify().never();
        expects_email_change(&mut mocks, &ada, "ada@new.example");
        update(
            mocks,
            &superuser("root"),
            ada.id,
            email_change("ada@new.example", None),
        )
        .await
        .unwrap();

        // A superuser changing their own email proves their password too.
        let root = superuser("root");
        let mut mocks = Mocks::default();
        found(&mut mocks, &root);
        mocks.users.expect_update().never();
        let err = update(mocks, &root, root.id, email_change("r@new.example", None))
            .await
            .unwrap_err();
        assert!(matches!(err, UpdateUserError::EmailChangeNeedsPassword));
    }

    #[tokio::test]
    async fn a_password_set_by_a_superuser_mails_the_account_a_notice() {
        let bob = user("bob");
        let mut mocks = Mocks::default();
        found(&mut mocks, &bob);
        mocks.hashes_to("new");
        saved(&mut mocks, &bob, |p, _| p.password_hash.is_some());
        mocks
            .sessions
            .expect_revoke_all_for_user()
            .returning(|_, _, _, _| Ok(()));
        let (id, to) = (bob.id, bob.email.clone());
        mocks
            .mail
            .expect_notify()
            .withf(move |n, _, _| {
                n.kind == MailKind::PasswordChanged && n.user_id == id && n.to == to
            })
            .times(1)
            .returning(|_, _, _| Ok(()));
        let changes = UserChanges {
            password: Some(password("new passphrase")),
            ..UserChanges::default()
        };
        update(mocks, &superuser("root"), bob.id, changes)
            .await
            .unwrap();
    }

    /// Who may change what, for every kind of actor and field: the
    /// permission matrix of an update, as the pure planning step decides it.
    #[test]
    fn the_permission_matrix_of_an_update() {
        let ada = user("ada");
        let bob = user("bob");
        let root = superuser("root");
        let name = || Some(Some(FullName::parse("X").unwrap()));
        // (case, actor, user written, fields sent, allowed)
        let cases: [(&str, &User, &User, UserChanges, bool); 10] = [
            (
                "own name",
                &ada,
                &ada,
                UserChanges {
                    full_name: name(),
                    ..UserChanges::default()
                },
                true,
            ),
            (
                "other's name",
                &ada,
                &bob,
                UserChanges {
                    full_name: name(),
                    ..UserChanges::default()
                },
                false,
            ),
            (
                "own flag, unchanged",
                &ada,
                &ada,
                UserChanges {
                    is_active: Some(true),
                    is_superuser: Some(false),
                    ..UserChanges::default()
                },
                true,
            ),
            (
                "own promotion",
                &ada,
                &ada,
                UserChanges {
                    is_superuser: Some(true),
                    ..UserChanges::default()
                },
                false,
            ),
            (
                "own deactivation by flag",
                &ada,
                &ada,
                UserChanges {
                    is_active: Some(false),
                    ..UserChanges::default()
                },
                false,
            ),
            (
                "superuser: other's name",
                &root,
                &bob,
                UserChanges {
                    full_name: name(),
                    ..UserChanges::default()
                },
                true,
            ),
            (
                "superuser: promotion",
                &root,
                &bob,
                UserChanges {
                    is_superuser: Some(true),
                    ..UserChanges::default()
                },
                true,
            ),
            (
                "superuser: deactivation",
                &root,
                &bob,
                UserChanges {
                    is_active: Some(false),
                    ..UserChanges::default()
                },
                true,
            ),
            (
                "superuser: own demotion",
                &root,
                &root,
                UserChanges {
                    is_superuser: Some(false),
                    ..UserChanges::default()
                },
                true,
            ),
            (
                "own email",
                &ada,
                &ada,
                email_change("a@new.example", None),
                true,
            ),
        ];
        for (case, actor, before, changes, expected) in cases {
            let plan = plan_update(actor, before, &changes);
            assert_eq!(plan.is_ok(), expected, "{case}: {plan:?}");
            if let Err(err) = plan {
                assert!(matches!(err, UpdateUserError::Forbidden), "{case}");
            }
        }
        // What the guard relies on.
        let plan = plan_update(
            &root,
            &root,
            &UserChanges {
                is_superuser: Some(false),
                ..UserChanges::default()
            },
        )
        .unwrap();
        assert!(plan.guard.keep_a_superuser && plan.guard.actor_is_superuser);
        let plan = plan_update(
            &root,
            &bob,
            &UserChanges {
                is_active: Some(false),
                ..UserChanges::default()
            },
        )
        .unwrap();
        assert!(
            plan.guard.keep_a_superuser,
            "bob may have been promoted meanwhile"
        );
        let plan = plan_update(
            &ada,
            &ada,
            &UserChanges {
                full_name: name(),
                ..UserChanges::default()
            },
        )
        .unwrap();
        assert_eq!(
            (
                plan.guard.actor_is_superuser,
                plan.guard.keep_a_superuser,
                plan.own_email_change
            ),
            (false, false, false)
        );
        let plan = plan_update(&ada, &ada, &email_change("a@new.example", None)).unwrap();
        assert!(plan.own_email_change);
        assert_eq!(plan.patch.is_verified, Some(false));
        let plan = plan_update(&root, &bob, &email_change("b@new.example", None)).unwrap();
        assert!(
            !plan.own_email_change,
            "a superuser changing another's email"
        );
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
        mocks.mail.expect_notify().returning(|_, _, _| Ok(()));
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
    async fn update_that_deactivates_a_user_ends_their_sessions_and_tokens() {
        let bob = user("bob");
        let mut mocks = Mocks::default();
        found(&mut mocks, &bob);
        // The write itself checks that an active superuser remains: bob
        // may have been promoted since he was read.
        saved(&mut mocks, &bob, |p, keep| {
            p.is_active == Some(false) && keep
        });
        mocks
            .sessions
            .expect_revoke_all_for_user()
            .times(1)
            .returning(|_, _, _, _| Ok(()));
        mocks
            .pats
            .expect_revoke_all()
            .with(eq(bob.id))
            .times(1)
            .returning(|_| Ok(2));
        let changes = UserChanges {
            is_active: Some(false),
            ..UserChanges::default()
        };
        update(mocks, &superuser("root"), bob.id, changes)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn an_update_racing_a_deactivation_of_its_actor_is_refused_by_the_write() {
        // Bob renames himself while a superuser deactivates him: the write
        // relies on bob still being active, finds him not, and changes nothing.
        let bob = user("bob");
        let mut mocks = Mocks::default();
        found(&mut mocks, &bob);
        mocks
            .users
            .expect_update()
            .withf(|_, version, _, guard, _, _| version.is_none() && !guard.actor_is_superuser)
            .times(1)
            .returning(|_, _, _, _, _, _| Err(PatchUserError::ActorChanged));
        let changes = UserChanges {
            full_name: Some(Some(FullName::parse("Robert").unwrap())),
            ..UserChanges::default()
        };
        let err = update(mocks, &bob, bob.id, changes).await.unwrap_err();
        assert!(matches!(err, UpdateUserError::Forbidden));
    }

    #[tokio::test]
    async fn an_if_match_list_accepts_any_of_its_versions_and_becomes_the_write_condition() {
        let bob = user("bob");
        let mut mocks = Mocks::default();
        found(&mut mocks, &bob);
        let version = bob.version;
        mocks
            .users
            .expect_update()
            .withf(move |_, v, _, _, _, _| *v == Some(version))
            .times(1)
            .returning(|_, _, _, _, _, _| Err(PatchUserError::Stale));
        let changes = UserChanges {
            full_name: Some(Some(FullName::parse("Robert").unwrap())),
            ..UserChanges::default()
        };
        let listed = VersionMatch::any_of([version + 3, version]);
        let err = update_if_match(mocks, &bob, bob.id, changes, Some(listed))
            .await
            .unwrap_err();
        assert!(matches!(err, UpdateUserError::PreconditionFailed));
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
        let err = update_if_match(mocks, &bob, bob.id, changes, Some(7.into()))
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
        if_match: Option<VersionMatch>,
    ) -> Result<UserView, UpdateUserError> {
        service(mocks)
            .update(actor, target, changes, if_match, &ClientInfo::default())
            .await
    }
}
