//! User management: who may read, create, change, delete and restore whom.

use time::Duration;
use tracing::{info, warn};

use super::Ports;
use super::throttle::{LockoutPolicy, Throttle};
use super::{NewUserError, insert_user};
use crate::PortError;
use crate::model::{
    AuditEvent, AuditKind, ClientInfo, Email, FullName, Password, PasswordError, PasswordHash,
    PasswordPolicy, User, UserId, UserView, Username,
};
use crate::ports::{
    AccessClaims, DeactivateUserError as Deactivation, PatchUserError,
    ReactivateUserError as Reactivation, UserCursor, UserPage, UserPatch, UserQuery, UserSort,
    UserSortField, WriteGuard,
};

/// How often a change computed from a row that moved on meanwhile is
/// re-read and re-applied before the caller gets 409.
const MAX_ATTEMPTS: usize = 5;

/// A listing as asked for by a caller, before authorisation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListUsers {
    /// Rows to skip.
    pub skip: u64,
    /// Page size (1–100, checked at the edge).
    pub limit: u64,
    /// Substring to look for; empty means none.
    pub search: Option<String>,
    /// Order.
    pub sort: UserSort,
    /// Filter on `is_active` (superusers only, unless `true`).
    pub is_active: Option<bool>,
    /// Filter on `is_superuser`.
    pub is_superuser: Option<bool>,
    /// Continue after this position (the last row of the previous page).
    pub after: Option<UserCursor>,
}

/// A page of users as one caller may see them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserListing {
    /// The page.
    pub items: Vec<UserView>,
    /// Every user matching the filters.
    pub total: u64,
    /// Where the next page starts; `None` when this page is not full.
    pub next: Option<UserCursor>,
}

/// A user created by a superuser.
#[derive(Debug)]
pub struct CreateUser {
    /// Address.
    pub email: Email,
    /// Login name.
    pub username: Username,
    /// Password, length-checked.
    pub password: Password,
    /// Display name.
    pub full_name: Option<FullName>,
    /// Defaults to true.
    pub is_active: Option<bool>,
    /// Defaults to false.
    pub is_superuser: Option<bool>,
    /// Defaults to false (a verification mail is sent).
    pub is_verified: Option<bool>,
}

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

/// Why a listing was refused.
#[derive(Debug, thiserror::Error)]
pub enum ListUsersError {
    /// Only superusers may list deactivated users.
    #[error("only superusers can filter on is_active")]
    FilterForbidden,
    /// Only superusers may order by e-mail: the order would reveal addresses.
    #[error("only superusers can sort by email")]
    SortForbidden,
    /// Infrastructure failure.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Why a user could not be read.
#[derive(Debug, thiserror::Error)]
pub enum GetUserError {
    /// The token's session has ended, or its user is deactivated.
    #[error("could not validate credentials")]
    Unauthenticated,
    /// No such user, or deactivated and the caller is no superuser.
    #[error("user not found")]
    NotFound,
    /// Infrastructure failure.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Why a user could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    /// The caller is no superuser.
    #[error("not enough permissions")]
    Forbidden,
    /// The address belongs to another account.
    #[error("email already registered")]
    EmailTaken,
    /// The username belongs to another account.
    #[error("username already taken")]
    UsernameTaken,
    /// The password contains personal information.
    #[error(transparent)]
    WeakPassword(PasswordError),
    /// Infrastructure failure.
    #[error(transparent)]
    Port(#[from] PortError),
}

impl From<NewUserError> for CreateUserError {
    fn from(err: NewUserError) -> Self {
        match err {
            NewUserError::EmailTaken => Self::EmailTaken,
            NewUserError::UsernameTaken => Self::UsernameTaken,
            NewUserError::WeakPassword(err) => Self::WeakPassword(err),
            NewUserError::Port(err) => Self::Port(err),
        }
    }
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
    /// The address belongs to another account.
    #[error("email already registered")]
    EmailTaken,
    /// The username belongs to another account.
    #[error("username already taken")]
    UsernameTaken,
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
    /// Infrastructure failure.
    #[error(transparent)]
    Port(#[from] PortError),
}

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
    /// The user kept changing under this request.
    #[error("the user changed while this request ran; try again")]
    Conflict,
    /// Infrastructure failure.
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
    /// The user kept changing under this request.
    #[error("the user changed while this request ran; try again")]
    Conflict,
    /// Infrastructure failure.
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
    /// Infrastructure failure.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// The user-management use cases. Every method takes the acting user first.
#[derive(Clone)]
pub struct UserService {
    ports: Ports,
    password_policy: PasswordPolicy,
    throttle: Throttle,
}

impl UserService {
    /// Builds the service.
    #[must_use]
    pub fn new(ports: Ports, password_policy: PasswordPolicy, lockout: LockoutPolicy) -> Self {
        let throttle = Throttle::new(ports.throttle.clone(), ports.audit.clone(), lockout);
        Self {
            ports,
            password_policy,
            throttle,
        }
    }

    /// A page of the users the caller may see. Nothing a non-superuser may
    /// not read (deactivated users, e-mail addresses) filters or orders it.
    ///
    /// # Errors
    /// [`ListUsersError`].
    pub async fn list(
        &self,
        actor: &User,
        request: ListUsers,
    ) -> Result<UserListing, ListUsersError> {
        let is_active = if actor.is_superuser {
            request.is_active
        } else if request.is_active == Some(false) {
            return Err(ListUsersError::FilterForbidden);
        } else {
            Some(true)
        };
        if !actor.is_superuser && request.sort.field == UserSortField::Email {
            return Err(ListUsersError::SortForbidden);
        }
        let query = UserQuery {
            skip: request.skip,
            limit: request.limit,
            search: request
                .search
                .filter(|s| !s.is_empty())
                .map(|s| s.to_lowercase()),
            search_email: actor.is_superuser,
            sort: request.sort,
            is_active,
            is_superuser: request.is_superuser,
            after: request.after,
        };
        let UserPage { items, total } = self.ports.users.list(&query).await?;
        let full = u64::try_from(items.len()).unwrap_or(u64::MAX) >= query.limit;
        let next = items
            .last()
            .filter(|_| full)
            .map(|last| UserCursor::of(last, query.sort.field));
        let items = items
            .into_iter()
            .map(|user| UserView::for_viewer(user, actor))
            .collect();
        Ok(UserListing { items, total, next })
    }

    /// One user, if the caller may see it.
    ///
    /// # Errors
    /// [`GetUserError`].
    pub async fn get(&self, actor: &User, id: UserId) -> Result<UserView, GetUserError> {
        let user = self
            .visible(actor, id)
            .await?
            .ok_or(GetUserError::NotFound)?;
        Ok(UserView::for_viewer(user, actor))
    }

    /// [`UserService::get`] for the caller a verified access token names:
    /// the session check and the read are one round trip, with the same
    /// rules (an ended session or a deactivated caller is refused at once).
    ///
    /// # Errors
    /// [`GetUserError`].
    pub async fn get_as(&self, caller: AccessClaims, id: UserId) -> Result<UserView, GetUserError> {
        let now = self.ports.clock.now();
        let (actor, target) = self
            .ports
            .sessions
            .find_active_user_and(caller.user_id, caller.session_id, id, now)
            .await?
            .ok_or(GetUserError::Unauthenticated)?;
        let user = target
            .filter(|u| u.is_active || actor.is_superuser)
            .ok_or(GetUserError::NotFound)?;
        Ok(UserView::for_viewer(user, &actor))
    }

    /// Creates a user with any flags (superusers only).
    ///
    /// # Errors
    /// [`CreateUserError`].
    #[tracing::instrument(skip_all, fields(actor = %actor.id, username = %cmd.username))]
    pub async fn create(
        &self,
        actor: &User,
        cmd: CreateUser,
        client: &ClientInfo,
    ) -> Result<UserView, CreateUserError> {
        if !actor.is_superuser {
            return Err(CreateUserError::Forbidden);
        }
        let event = AuditEvent::new(AuditKind::UserCreated, self.ports.clock.now(), client);
        let user = insert_user(&self.ports, self.password_policy, cmd, event.by(actor.id)).await?;
        info!(user_id = %user.id, is_superuser = user.is_superuser, "user created");
        Ok(UserView::for_viewer(user, actor))
    }

    /// Creates the configured first superuser unless an account with that
    /// e-mail or username exists. Returns whether it created one. Several
    /// instances starting together may race here: the one whose insert the
    /// unique constraint refuses simply finds the work done.
    ///
    /// # Errors
    /// [`CreateUserError`] (never `Forbidden` nor `…Taken`).
    pub async fn ensure_superuser(&self, cmd: CreateUser) -> Result<bool, CreateUserError> {
        let users = &self.ports.users;
        if users.find_by_login(cmd.email.as_str()).await?.is_some()
            || users.find_by_login(cmd.username.as_str()).await?.is_some()
        {
            return Ok(false);
        }
        // The operator configured this address: no mail to prove it.
        let cmd = CreateUser {
            is_active: Some(true),
            is_superuser: Some(true),
            is_verified: Some(true),
            ..cmd
        };
        let event = AuditEvent::new(
            AuditKind::UserCreated,
            self.ports.clock.now(),
            &ClientInfo::default(),
        );
        match insert_user(&self.ports, self.password_policy, cmd, event).await {
            Ok(user) => {
                info!(user_id = %user.id, "first superuser created");
                Ok(true)
            }
            Err(NewUserError::EmailTaken | NewUserError::UsernameTaken) => Ok(false),
            Err(err) => Err(err.into()),
        }
    }

    /// Applies the fields sent, under the field-level permissions of the
    /// contract, writing only the fields that change. The write is
    /// conditional on the version the rules were checked against; when
    /// another write landed first the rules are checked again on the new
    /// state (or, with `if_match`, the caller gets `PreconditionFailed`).
    ///
    /// # Errors
    /// [`UpdateUserError`].
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
                Err(PatchUserError::EmailTaken) => return Err(UpdateUserError::EmailTaken),
                Err(PatchUserError::UsernameTaken) => return Err(UpdateUserError::UsernameTaken),
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
                super::queue_verification(&self.ports, email, client).await;
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

    /// Soft-deletes a user and ends all their sessions. Of concurrent
    /// deletions one succeeds; the others find the user deleted (404).
    ///
    /// # Errors
    /// [`DeleteUserError`].
    #[tracing::instrument(skip_all, fields(actor = %actor.id, target = %id))]
    pub async fn delete(
        &self,
        actor: &User,
        id: UserId,
        if_match: Option<u64>,
        client: &ClientInfo,
    ) -> Result<(), DeleteUserError> {
        for _ in 0..MAX_ATTEMPTS {
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
            if if_match.is_some_and(|v| v != user.version) {
                return Err(DeleteUserError::PreconditionFailed);
            }
            let now = self.ports.clock.now();
            let guard = WriteGuard {
                actor: actor.id,
                actor_is_superuser: actor.is_superuser && actor.id != id,
                keep_a_superuser: user.is_superuser,
            };
            let event = AuditEvent::new(AuditKind::UserDeleted, now, client)
                .by(actor.id)
                .about(id);
            match self
                .ports
                .users
                .deactivate(id, user.version, &guard, now, &event)
                .await
            {
                Ok(_) => {
                    self.ports
                        .sessions
                        .revoke_all_for_user(id, None, now, None)
                        .await?;
                    info!("user deactivated");
                    return Ok(());
                }
                Err(Deactivation::Stale) if if_match.is_some() => {
                    return Err(DeleteUserError::PreconditionFailed);
                }
                Err(Deactivation::Stale) => {}
                Err(Deactivation::NotFound) => return Err(DeleteUserError::NotFound),
                Err(Deactivation::LastSuperuser) => return Err(DeleteUserError::LastSuperuser),
                Err(Deactivation::ActorChanged) => return Err(DeleteUserError::Forbidden),
                Err(Deactivation::Port(err)) => return Err(err.into()),
            }
        }
        Err(DeleteUserError::Conflict)
    }

    /// Re-activates a soft-deleted user (superusers only).
    ///
    /// # Errors
    /// [`RestoreUserError`].
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
        for _ in 0..MAX_ATTEMPTS {
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
            };
            let event = AuditEvent::new(AuditKind::UserRestored, now, client)
                .by(actor.id)
                .about(id);
            match self
                .ports
                .users
                .reactivate(id, user.version, &guard, now, &event)
                .await
            {
                Ok(user) => {
                    info!("user restored");
                    return Ok(UserView::for_viewer(user, actor));
                }
                Err(Reactivation::Stale) => {}
                Err(Reactivation::NotFound) => return Err(RestoreUserError::NotFound),
                Err(Reactivation::ActorChanged) => return Err(RestoreUserError::Forbidden),
                Err(Reactivation::Port(err)) => return Err(err.into()),
            }
        }
        Err(RestoreUserError::Conflict)
    }

    /// Lifts every login lock on the user's e-mail and username, from every
    /// address (superusers only).
    ///
    /// # Errors
    /// [`UnlockUserError`].
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

    /// The user with this id if the actor may see it: deactivated users
    /// exist only for superusers.
    async fn visible(&self, actor: &User, id: UserId) -> Result<Option<User>, PortError> {
        let user = self.ports.users.find_by_id(id).await?;
        Ok(user.filter(|u| u.is_active || actor.is_superuser))
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

    use mockall::predicate::eq;

    use super::*;
    use crate::model::{MailKind, PasswordHash};
    use crate::services::fixtures::{Mocks, NOW, password, superuser, user};

    fn service(mocks: Mocks) -> UserService {
        UserService::new(
            mocks.ports(),
            PasswordPolicy::default(),
            LockoutPolicy::default(),
        )
    }

    /// The user as stored after `patch`.
    fn apply(user: &User, patch: &UserPatch) -> User {
        let mut after = user.clone();
        if let Some(v) = &patch.email {
            after.email = v.clone();
        }
        if let Some(v) = &patch.username {
            after.username = v.clone();
        }
        if let Some(v) = &patch.full_name {
            after.full_name = v.clone();
        }
        if let Some(v) = &patch.password_hash {
            after.password_hash = v.clone();
        }
        after.is_active = patch.is_active.unwrap_or(after.is_active);
        after.is_superuser = patch.is_superuser.unwrap_or(after.is_superuser);
        after.is_verified = patch.is_verified.unwrap_or(after.is_verified);
        after.updated_at = NOW;
        after.version += 1;
        after
    }

    /// Expects one conditional write of `target` at its current version,
    /// whose patch (and last-superuser guard) pass `check`.
    fn saved(
        mocks: &mut Mocks,
        target: &User,
        check: impl Fn(&UserPatch, bool) -> bool + Send + 'static,
    ) {
        let stored = target.clone();
        let (id, version) = (target.id, target.version);
        mocks
            .users
            .expect_update()
            .withf(move |i, v, patch, guard, at, event| {
                *i == id
                    && *v == version
                    && *at == NOW
                    && check(patch, guard.keep_a_superuser)
                    && event.kind == AuditKind::UserUpdated
                    && event.actor_id == Some(guard.actor)
                    && event.subject_id == Some(id)
            })
            .times(1)
            .returning(move |_, _, patch, _, _, _| Ok(apply(&stored, patch)));
    }

    fn found(mocks: &mut Mocks, target: &User) {
        let target = target.clone();
        mocks
            .users
            .expect_find_by_id()
            .with(eq(target.id))
            .returning(move |_| Ok(Some(target.clone())));
    }

    #[tokio::test]
    async fn list_shows_ordinary_users_only_active_users_and_hides_emails() {
        let (ada, bob) = (user("ada"), user("bob"));
        let bob_id = bob.id;
        let mut mocks = Mocks::default();
        mocks
            .users
            .expect_list()
            .withf(|q| {
                q.is_active == Some(true) && !q.search_email && q.search.as_deref() == Some("bo%")
            })
            .returning(move |_| {
                Ok(UserPage {
                    items: vec![bob.clone()],
                    total: 1,
                })
            });
        let request = ListUsers {
            limit: 10,
            search: Some("Bo%".into()),
            ..ListUsers::default()
        };
        let UserListing { items, total, .. } = service(mocks).list(&ada, request).await.unwrap();
        assert_eq!(total, 1);
        assert_eq!(items[0].user().id, bob_id);
        assert_eq!(items[0].email(), None);
        assert_eq!(items[0].last_login_at(), None);
    }

    #[tokio::test]
    async fn list_forbids_ordinary_users_to_ask_for_deactivated_users() {
        let request = ListUsers {
            limit: 10,
            is_active: Some(false),
            ..ListUsers::default()
        };
        let err = service(Mocks::default())
            .list(&user("ada"), request)
            .await
            .unwrap_err();
        assert!(matches!(err, ListUsersError::FilterForbidden));
    }

    #[tokio::test]
    async fn list_lets_superusers_filter_and_search_emails_and_see_them() {
        let root = superuser("root");
        let cursor = UserCursor {
            value: crate::ports::SortValue::Time(NOW),
            id: UserId::generate(),
        };
        let expected = cursor.clone();
        let bob = User {
            is_active: false,
            ..user("bob")
        };
        let mut mocks = Mocks::default();
        mocks
            .users
            .expect_list()
            .withf(move |q| {
                q.is_active == Some(false)
                    && q.search_email
                    && q.search.is_none()
                    && q.after.as_ref() == Some(&expected)
            })
            .returning(move |_| {
                Ok(UserPage {
                    items: vec![bob.clone()],
                    total: 1,
                })
            });
        let request = ListUsers {
            limit: 10,
            is_active: Some(false),
            search: Some(String::new()),
            after: Some(cursor),
            ..ListUsers::default()
        };
        let UserListing { items, .. } = service(mocks).list(&root, request).await.unwrap();
        assert_eq!(items[0].email().unwrap().as_str(), "bob@example.com");
    }

    #[tokio::test]
    async fn get_hides_deactivated_users_from_ordinary_users_only() {
        let bob = User {
            is_active: false,
            ..user("bob")
        };
        let mut mocks = Mocks::default();
        found(&mut mocks, &bob);
        let service = service(mocks);
        assert!(matches!(
            service.get(&user("ada"), bob.id).await,
            Err(GetUserError::NotFound)
        ));
        assert_eq!(
            service
                .get(&superuser("root"), bob.id)
                .await
                .unwrap()
                .user()
                .id,
            bob.id
        );
    }

    #[tokio::test]
    async fn get_shows_the_email_to_the_user_themself() {
        let ada = user("ada");
        let mut mocks = Mocks::default();
        found(&mut mocks, &ada);
        let view = service(mocks).get(&ada, ada.id).await.unwrap();
        assert_eq!(view.email(), Some(&ada.email));
        assert_eq!(view.last_login_at(), Some(None));
    }

    fn claims(of: &User) -> AccessClaims {
        AccessClaims {
            user_id: of.id,
            session_id: crate::model::SessionId::generate(),
        }
    }

    fn fused(mocks: &mut Mocks, answer: Option<(User, Option<User>)>) {
        mocks
            .sessions
            .expect_find_active_user_and()
            .times(1)
            .return_once(move |_, _, _, _| Ok(answer));
    }

    #[tokio::test]
    async fn get_as_applies_the_rules_of_get_to_one_fused_read() {
        let (ada, root) = (user("ada"), superuser("root"));
        let bob = User {
            is_active: false,
            ..user("bob")
        };
        // An ended session or a deactivated caller: refused.
        let mut mocks = Mocks::default();
        fused(&mut mocks, None);
        let err = service(mocks)
            .get_as(claims(&ada), bob.id)
            .await
            .unwrap_err();
        assert!(matches!(err, GetUserError::Unauthenticated));
        // A deactivated user is not found by ordinary users…
        let mut mocks = Mocks::default();
        fused(&mut mocks, Some((ada.clone(), Some(bob.clone()))));
        let err = service(mocks)
            .get_as(claims(&ada), bob.id)
            .await
            .unwrap_err();
        assert!(matches!(err, GetUserError::NotFound));
        // …but is by superusers, who see the private fields.
        let mut mocks = Mocks::default();
        fused(&mut mocks, Some((root.clone(), Some(bob.clone()))));
        let view = service(mocks).get_as(claims(&root), bob.id).await.unwrap();
        assert_eq!(view.email(), Some(&bob.email));
        // Someone else's private fields stay hidden; an unknown id is not found.
        let carol = user("carol");
        let mut mocks = Mocks::default();
        fused(&mut mocks, Some((ada.clone(), Some(carol.clone()))));
        let view = service(mocks).get_as(claims(&ada), carol.id).await.unwrap();
        assert_eq!(view.email(), None);
        let mut mocks = Mocks::default();
        fused(&mut mocks, Some((ada.clone(), None)));
        let err = service(mocks)
            .get_as(claims(&ada), carol.id)
            .await
            .unwrap_err();
        assert!(matches!(err, GetUserError::NotFound));
    }

    fn create_cmd(name: &str, pw: &str) -> CreateUser {
        CreateUser {
            email: Email::parse(&format!("{name}@example.com")).unwrap(),
            username: Username::parse(name).unwrap(),
            password: password(pw),
            full_name: None,
            is_active: Some(false),
            is_superuser: Some(true),
            is_verified: None,
        }
    }

    #[tokio::test]
    async fn create_is_for_superusers_only() {
        let err = service(Mocks::default())
            .create(
                &user("ada"),
                create_cmd("bob", "correct horse"),
                &ClientInfo::default(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, CreateUserError::Forbidden));
    }

    #[tokio::test]
    async fn create_keeps_the_flags_a_superuser_sets() {
        let mut mocks = Mocks::default();
        mocks
            .hasher
            .expect_hash()
            .returning(|_| Ok(PasswordHash::new("h".into())));
        mocks
            .users
            .expect_insert()
            .withf(|u, event| {
                !u.is_active
                    && u.is_superuser
                    && !u.is_verified
                    && event.kind == AuditKind::UserCreated
                    && event.subject_id == Some(u.id)
                    && event.actor_id.is_some_and(|actor| actor != u.id)
            })
            .times(1)
            .returning(|_, _| Ok(()));
        mocks
            .mail
            .expect_enqueue()
            .withf(|kind, email, _, _| *kind == MailKind::VerifyEmail && email == "bob@example.com")
            .times(1)
            .returning(|_, _, _, _| Ok(()));
        let view = service(mocks)
            .create(
                &superuser("root"),
                create_cmd("bob", "correct horse"),
                &ClientInfo::default(),
            )
            .await
            .unwrap();
        assert!(view.user().is_superuser);
    }

    #[tokio::test]
    async fn the_first_superuser_is_verified_and_gets_no_mail() {
        let mut mocks = Mocks::default();
        mocks.users.expect_find_by_login().returning(|_| Ok(None));
        mocks
            .hasher
            .expect_hash()
            .returning(|_| Ok(PasswordHash::new("h".into())));
        mocks
            .users
            .expect_insert()
            .withf(|u, _| u.is_active && u.is_superuser && u.is_verified)
            .times(1)
            .returning(|_, _| Ok(()));
        // No mail expectation: queueing one would panic.
        assert!(
            service(mocks)
                .ensure_superuser(create_cmd("root", "correct horse"))
                .await
                .unwrap()
        );
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
        let view = service(mocks)
            .update(&ada, ada.id, changes, None, &ClientInfo::default())
            .await
            .unwrap();
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
        let err = service(mocks)
            .update(&user("ada"), bob.id, changes, None, &ClientInfo::default())
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
        let view = service(mocks)
            .update(&ada, ada.id, changes, None, &ClientInfo::default())
            .await
            .unwrap();
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
            let err = service(mocks)
                .update(&ada, ada.id, changes, None, &ClientInfo::default())
                .await
                .unwrap_err();
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
            let result = service(mocks)
                .update(&ada, ada.id, changes, None, &ClientInfo::default())
                .await;
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
        service(mocks)
            .update(
                &superuser("root"),
                bob.id,
                changes,
                None,
                &ClientInfo::default(),
            )
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
        let err = service(mocks)
            .update(
                &superuser("root"),
                bob.id,
                changes,
                None,
                &ClientInfo::default(),
            )
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
        let err = service(mocks)
            .update(&root, root.id, changes, None, &ClientInfo::default())
            .await
            .unwrap_err();
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
        service(mocks)
            .update(
                &superuser("root"),
                bob.id,
                changes,
                None,
                &ClientInfo::default(),
            )
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn delete_of_oneself_deactivates_and_ends_every_session() {
        let ada = user("ada");
        let mut mocks = Mocks::default();
        found(&mut mocks, &ada);
        let (id, version) = (ada.id, ada.version);
        let gone = User {
            is_active: false,
            ..ada.clone()
        };
        mocks
            .users
            .expect_deactivate()
            .withf(move |i, v, guard, at, event| {
                *i == id
                    && *v == version
                    && *at == NOW
                    && !guard.keep_a_superuser
                    && event.kind == AuditKind::UserDeleted
                    && event.subject_id == Some(id)
            })
            .times(1)
            .returning(move |_, _, _, _, _| Ok(gone.clone()));
        mocks
            .sessions
            .expect_revoke_all_for_user()
            .with(eq(ada.id), eq(None), eq(NOW), mockall::predicate::always())
            .times(1)
            .returning(|_, _, _, _| Ok(()));
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
            .expect_deactivate()
            .withf(|_, _, guard, _, _| guard.keep_a_superuser)
            .times(1)
            .returning(|_, _, _, _, _| Err(crate::ports::DeactivateUserError::LastSuperuser));
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
            .expect_reactivate()
            .withf(|_, _, guard, _, event| {
                guard.actor_is_superuser
                    && !guard.keep_a_superuser
                    && event.kind == AuditKind::UserRestored
            })
            .times(1)
            .returning(move |_, _, _, _, _| Ok(back.clone()));
        let view = service(mocks)
            .restore(&superuser("root"), bob.id, &ClientInfo::default())
            .await
            .unwrap();
        assert!(view.user().is_active);
    }

    #[tokio::test]
    async fn ensure_superuser_creates_it_once() {
        let mut mocks = Mocks::default();
        let mut existing = vec![None, None, Some(superuser("bob"))].into_iter();
        mocks
            .users
            .expect_find_by_login()
            .returning(move |_| Ok(existing.next().flatten()));
        mocks
            .hasher
            .expect_hash()
            .returning(|_| Ok(PasswordHash::new("h".into())));
        mocks
            .users
            .expect_insert()
            .withf(|u, _| u.is_superuser && u.is_active)
            .times(1)
            .returning(|_, _| Ok(()));
        let service = service(mocks);
        assert!(
            service
                .ensure_superuser(create_cmd("bob", "correct horse"))
                .await
                .unwrap()
        );
        assert!(
            !service
                .ensure_superuser(create_cmd("bob", "correct horse"))
                .await
                .unwrap()
        );
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
    async fn list_forbids_ordinary_users_to_sort_by_email() {
        let request = ListUsers {
            limit: 10,
            sort: UserSort {
                field: UserSortField::Email,
                descending: true,
            },
            ..ListUsers::default()
        };
        let err = service(Mocks::default())
            .list(&user("ada"), request)
            .await
            .unwrap_err();
        assert!(matches!(err, ListUsersError::SortForbidden));
    }

    #[tokio::test]
    async fn list_continues_from_the_last_row_of_a_full_page_only() {
        let (ada, bob) = (user("ada"), user("bob"));
        let last = bob.clone();
        let mut mocks = Mocks::default();
        mocks.users.expect_list().returning(move |_| {
            Ok(UserPage {
                items: vec![ada.clone(), bob.clone()],
                total: 5,
            })
        });
        let service = service(mocks);
        let page = |limit| ListUsers {
            limit,
            sort: UserSort {
                field: UserSortField::Username,
                descending: false,
            },
            ..ListUsers::default()
        };
        let full = service.list(&user("eve"), page(2)).await.unwrap();
        assert_eq!(
            full.next,
            Some(UserCursor {
                value: crate::ports::SortValue::Text("bob".into()),
                id: last.id,
            })
        );
        let short = service.list(&user("eve"), page(3)).await.unwrap();
        assert_eq!(short.next, None);
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
        let mut reads = vec![bob.clone(), deactivated].into_iter();
        let mut mocks = Mocks::default();
        mocks
            .users
            .expect_find_by_id()
            .times(2)
            .returning(move |_| Ok(reads.next()));
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
        let err = service(mocks)
            .update(&bob, bob.id, changes, None, &ClientInfo::default())
            .await
            .unwrap_err();
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
        let err = service(mocks)
            .update(&bob, bob.id, changes, Some(7), &ClientInfo::default())
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
        let err = service(mocks)
            .update(&ada, ada.id, changes, None, &ClientInfo::default())
            .await
            .unwrap_err();
        assert!(matches!(err, UpdateUserError::Locked { .. }));
    }

    #[tokio::test]
    async fn of_concurrent_deletions_the_one_that_lost_finds_the_user_gone() {
        let bob = user("bob");
        let gone = User {
            is_active: false,
            version: 2,
            ..bob.clone()
        };
        let mut reads = vec![bob.clone(), gone].into_iter();
        let mut mocks = Mocks::default();
        mocks
            .users
            .expect_find_by_id()
            .returning(move |_| Ok(reads.next()));
        mocks
            .users
            .expect_deactivate()
            .times(1)
            .returning(|_, _, _, _, _| Err(crate::ports::DeactivateUserError::Stale));
        let err = service(mocks)
            .delete(&superuser("root"), bob.id, None, &ClientInfo::default())
            .await
            .unwrap_err();
        assert!(matches!(err, DeleteUserError::NotFound));
    }

    #[tokio::test]
    async fn ensure_superuser_that_another_instance_created_first_is_done() {
        let mut mocks = Mocks::default();
        mocks.users.expect_find_by_login().returning(|_| Ok(None));
        mocks
            .hasher
            .expect_hash()
            .returning(|_| Ok(PasswordHash::new("h".into())));
        mocks
            .users
            .expect_insert()
            .returning(|_, _| Err(crate::ports::InsertUserError::EmailTaken));
        assert!(
            !service(mocks)
                .ensure_superuser(create_cmd("root", "correct horse"))
                .await
                .unwrap()
        );
    }
}
