//! User management: who may read, create, change, delete and restore whom.

use tracing::info;

use super::NewUserError;
use super::Ports;
use crate::PortError;
use crate::model::{
    Email, FullName, LoginLockout, Password, PasswordError, PasswordPolicy, User, UserId, UserView,
    Username,
};
use crate::ports::{SaveUserError, UserPage, UserQuery, UserSort};

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
    /// Continue after this user (the last of the previous page).
    pub after: Option<UserId>,
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
    Forbidden,
    /// Infrastructure failure.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Why a user could not be read.
#[derive(Debug, thiserror::Error)]
pub enum GetUserError {
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
}

impl UserService {
    /// Builds the service.
    #[must_use]
    pub fn new(ports: Ports, password_policy: PasswordPolicy) -> Self {
        Self {
            ports,
            password_policy,
        }
    }

    /// A page of the users the caller may see.
    ///
    /// # Errors
    /// [`ListUsersError`].
    pub async fn list(
        &self,
        actor: &User,
        request: ListUsers,
    ) -> Result<(Vec<UserView>, u64), ListUsersError> {
        let is_active = if actor.is_superuser {
            request.is_active
        } else if request.is_active == Some(false) {
            return Err(ListUsersError::Forbidden);
        } else {
            Some(true)
        };
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
        let views = items
            .into_iter()
            .map(|user| UserView::for_viewer(user, actor))
            .collect();
        Ok((views, total))
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

    /// Creates a user with any flags (superusers only).
    ///
    /// # Errors
    /// [`CreateUserError`].
    #[tracing::instrument(skip_all, fields(actor = %actor.id, username = %cmd.username))]
    pub async fn create(&self, actor: &User, cmd: CreateUser) -> Result<UserView, CreateUserError> {
        if !actor.is_superuser {
            return Err(CreateUserError::Forbidden);
        }
        let user = super::insert_user(&self.ports, self.password_policy, cmd).await?;
        info!(user_id = %user.id, is_superuser = user.is_superuser, "user created");
        Ok(UserView::for_viewer(user, actor))
    }

    /// Creates the configured first superuser unless an account with that
    /// e-mail or username exists. Returns whether it created one.
    ///
    /// # Errors
    /// [`CreateUserError`] (never `Forbidden`).
    pub async fn ensure_superuser(&self, cmd: CreateUser) -> Result<bool, CreateUserError> {
        let users = &self.ports.users;
        if users.find_by_login(cmd.email.as_str()).await?.is_some()
            || users.find_by_login(cmd.username.as_str()).await?.is_some()
        {
            return Ok(false);
        }
        let user = super::insert_user(
            &self.ports,
            self.password_policy,
            CreateUser {
                is_active: Some(true),
                is_superuser: Some(true),
                ..cmd
            },
        )
        .await?;
        info!(user_id = %user.id, "first superuser created");
        Ok(true)
    }

    /// Applies the fields sent, under the field-level permissions of API.md.
    ///
    /// # Errors
    /// [`UpdateUserError`].
    #[tracing::instrument(skip_all, fields(actor = %actor.id, target = %id))]
    pub async fn update(
        &self,
        actor: &User,
        id: UserId,
        changes: UserChanges,
    ) -> Result<UserView, UpdateUserError> {
        let before = self
            .visible(actor, id)
            .await?
            .ok_or(UpdateUserError::NotFound)?;
        if !actor.is_superuser && actor.id != before.id {
            return Err(UpdateUserError::Forbidden);
        }
        let mut after = before.clone();
        let mut password = changes.password;
        if !actor.is_superuser {
            // Superuser-only fields may be sent back unchanged, never changed.
            let flag_changed = changes.is_active.is_some_and(|v| v != before.is_active)
                || changes
                    .is_superuser
                    .is_some_and(|v| v != before.is_superuser);
            if flag_changed {
                return Err(UpdateUserError::Forbidden);
            }
            if let Some(sent) = password.take()
                && !self
                    .ports
                    .hasher
                    .verify(sent.secret(), &before.password_hash)
                    .await?
            {
                return Err(UpdateUserError::Forbidden);
            }
        } else {
            after.is_active = changes.is_active.unwrap_or(after.is_active);
            after.is_superuser = changes.is_superuser.unwrap_or(after.is_superuser);
        }
        if let Some(email) = changes.email {
            after.email = email;
        }
        if let Some(username) = changes.username {
            after.username = username;
        }
        if let Some(full_name) = changes.full_name {
            after.full_name = full_name;
        }
        if let Some(new) = &password {
            self.password_policy
                .check(new, &after.username, &after.email)
                .map_err(UpdateUserError::WeakPassword)?;
            after.password_hash = self.ports.hasher.hash(new).await?;
        }
        let loses_superuser =
            before.is_active && before.is_superuser && !(after.is_active && after.is_superuser);
        let now = self.ports.clock.now();
        after.updated_at = now;
        let saved = if loses_superuser {
            self.ports.users.update_unless_last_superuser(&after).await
        } else {
            self.ports.users.update(&after).await
        };
        saved.map_err(|err| match err {
            SaveUserError::EmailTaken => UpdateUserError::EmailTaken,
            SaveUserError::UsernameTaken => UpdateUserError::UsernameTaken,
            SaveUserError::NotFound => UpdateUserError::NotFound,
            SaveUserError::LastSuperuser => UpdateUserError::LastSuperuser,
            SaveUserError::Port(err) => UpdateUserError::Port(err),
        })?;
        if (before.is_active && !after.is_active) || password.is_some() {
            self.ports
                .sessions
                .revoke_all_for_user(after.id, None, now)
                .await?;
        }
        info!("user updated");
        Ok(UserView::for_viewer(after, actor))
    }

    /// Soft-deletes a user and ends all their sessions.
    ///
    /// # Errors
    /// [`DeleteUserError`].
    #[tracing::instrument(skip_all, fields(actor = %actor.id, target = %id))]
    pub async fn delete(&self, actor: &User, id: UserId) -> Result<(), DeleteUserError> {
        let mut user = self
            .ports
            .users
            .find_by_id(id)
            .await?
            .filter(|u| u.is_active)
            .ok_or(DeleteUserError::NotFound)?;
        if !actor.is_superuser && actor.id != user.id {
            return Err(DeleteUserError::Forbidden);
        }
        let now = self.ports.clock.now();
        user.is_active = false;
        user.updated_at = now;
        let saved = if user.is_superuser {
            self.ports.users.update_unless_last_superuser(&user).await
        } else {
            self.ports.users.update(&user).await
        };
        saved.map_err(|err| match err {
            SaveUserError::NotFound => DeleteUserError::NotFound,
            SaveUserError::LastSuperuser => DeleteUserError::LastSuperuser,
            SaveUserError::Port(err) => DeleteUserError::Port(err),
            other => DeleteUserError::Port(PortError::unexpected(other)),
        })?;
        self.ports
            .sessions
            .revoke_all_for_user(user.id, None, now)
            .await?;
        info!("user deactivated");
        Ok(())
    }

    /// Re-activates a soft-deleted user (superusers only).
    ///
    /// # Errors
    /// [`RestoreUserError`].
    #[tracing::instrument(skip_all, fields(actor = %actor.id, target = %id))]
    pub async fn restore(&self, actor: &User, id: UserId) -> Result<UserView, RestoreUserError> {
        if !actor.is_superuser {
            return Err(RestoreUserError::Forbidden);
        }
        let mut user = self
            .ports
            .users
            .find_by_id(id)
            .await?
            .ok_or(RestoreUserError::NotFound)?;
        if !user.is_active {
            user.is_active = true;
            user.updated_at = self.ports.clock.now();
            self.ports
                .users
                .update(&user)
                .await
                .map_err(|err| match err {
                    SaveUserError::NotFound => RestoreUserError::NotFound,
                    SaveUserError::Port(err) => RestoreUserError::Port(err),
                    other => RestoreUserError::Port(PortError::unexpected(other)),
                })?;
            info!("user restored");
        }
        Ok(UserView::for_viewer(user, actor))
    }

    /// Lifts a login lockout early (superusers only).
    ///
    /// # Errors
    /// [`UnlockUserError`].
    #[tracing::instrument(skip_all, fields(actor = %actor.id, target = %id))]
    pub async fn unlock(&self, actor: &User, id: UserId) -> Result<UserView, UnlockUserError> {
        if !actor.is_superuser {
            return Err(UnlockUserError::Forbidden);
        }
        let mut user = self
            .ports
            .users
            .find_by_id(id)
            .await?
            .ok_or(UnlockUserError::NotFound)?;
        self.ports.users.clear_lockout(id).await?;
        user.lockout = LoginLockout::default();
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use mockall::predicate::eq;

    use super::*;
    use crate::model::PasswordHash;
    use crate::services::fixtures::{Mocks, NOW, password, superuser, user};

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
        let (items, total) = UserService::new(mocks.ports(), PasswordPolicy::default())
            .list(&ada, request)
            .await
            .unwrap();
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
        let err = UserService::new(Mocks::default().ports(), PasswordPolicy::default())
            .list(&user("ada"), request)
            .await
            .unwrap_err();
        assert!(matches!(err, ListUsersError::Forbidden));
    }

    #[tokio::test]
    async fn list_lets_superusers_filter_and_search_emails_and_see_them() {
        let root = superuser("root");
        let cursor = UserId::generate();
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
                    && q.after == Some(cursor)
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
        let (items, _) = UserService::new(mocks.ports(), PasswordPolicy::default())
            .list(&root, request)
            .await
            .unwrap();
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
        let service = UserService::new(mocks.ports(), PasswordPolicy::default());
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
        let view = UserService::new(mocks.ports(), PasswordPolicy::default())
            .get(&ada, ada.id)
            .await
            .unwrap();
        assert_eq!(view.email(), Some(&ada.email));
        assert_eq!(view.last_login_at(), Some(None));
    }

    fn create_cmd(name: &str, pw: &str) -> CreateUser {
        CreateUser {
            email: Email::parse(&format!("{name}@example.com")).unwrap(),
            username: Username::parse(name).unwrap(),
            password: password(pw),
            full_name: None,
            is_active: Some(false),
            is_superuser: Some(true),
        }
    }

    #[tokio::test]
    async fn create_is_for_superusers_only() {
        let err = UserService::new(Mocks::default().ports(), PasswordPolicy::default())
            .create(&user("ada"), create_cmd("bob", "correct horse"))
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
            .withf(|u| !u.is_active && u.is_superuser)
            .times(1)
            .returning(|_| Ok(()));
        let view = UserService::new(mocks.ports(), PasswordPolicy::default())
            .create(&superuser("root"), create_cmd("bob", "correct horse"))
            .await
            .unwrap();
        assert!(view.user().is_superuser);
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
        let err = UserService::new(mocks.ports(), PasswordPolicy::default())
            .update(&user("ada"), bob.id, changes)
            .await
            .unwrap_err();
        assert!(matches!(err, UpdateUserError::Forbidden));
    }

    #[tokio::test]
    async fn update_lets_a_user_change_their_profile_and_send_back_unchanged_flags() {
        let ada = user("ada");
        let mut mocks = Mocks::default();
        found(&mut mocks, &ada);
        mocks
            .users
            .expect_update()
            .withf(|u| {
                u.username.as_str() == "ada2"
                    && u.full_name.as_ref().unwrap().as_str() == "Ada"
                    && u.updated_at == NOW
            })
            .times(1)
            .returning(|_| Ok(()));
        let changes = UserChanges {
            username: Some(Username::parse("Ada2").unwrap()),
            full_name: Some(Some(FullName::parse("Ada").unwrap())),
            is_active: Some(true),
            is_superuser: Some(false),
            ..UserChanges::default()
        };
        let view = UserService::new(mocks.ports(), PasswordPolicy::default())
            .update(&ada, ada.id, changes)
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
            let err = UserService::new(mocks.ports(), PasswordPolicy::default())
                .update(&ada, ada.id, changes)
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
            mocks
                .hasher
                .expect_verify()
                .times(1)
                .returning(move |_, _| Ok(matches));
            mocks.users.expect_update().returning(|_| Ok(()));
            let changes = UserChanges {
                password: Some(password("some password")),
                ..UserChanges::default()
            };
            let result = UserService::new(mocks.ports(), PasswordPolicy::default())
                .update(&ada, ada.id, changes)
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
        mocks
            .users
            .expect_update()
            .withf(|u| u.password_hash.as_str() == "new")
            .returning(|_| Ok(()));
        mocks
            .sessions
            .expect_revoke_all_for_user()
            .with(eq(bob.id), eq(None), eq(NOW))
            .times(1)
            .returning(|_, _, _| Ok(()));
        let changes = UserChanges {
            password: Some(password("new passphrase")),
            ..UserChanges::default()
        };
        UserService::new(mocks.ports(), PasswordPolicy::default())
            .update(&superuser("root"), bob.id, changes)
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
        let err = UserService::new(mocks.ports(), PasswordPolicy::default())
            .update(&superuser("root"), bob.id, changes)
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
            .expect_update_unless_last_superuser()
            .withf(|u| !u.is_superuser)
            .times(1)
            .returning(|_| Err(SaveUserError::LastSuperuser));
        let changes = UserChanges {
            is_superuser: Some(false),
            ..UserChanges::default()
        };
        let err = UserService::new(mocks.ports(), PasswordPolicy::default())
            .update(&root, root.id, changes)
            .await
            .unwrap_err();
        assert!(matches!(err, UpdateUserError::LastSuperuser));
    }

    #[tokio::test]
    async fn update_that_deactivates_a_user_ends_their_sessions() {
        let bob = user("bob");
        let mut mocks = Mocks::default();
        found(&mut mocks, &bob);
        mocks
            .users
            .expect_update()
            .withf(|u| !u.is_active)
            .returning(|_| Ok(()));
        mocks
            .sessions
            .expect_revoke_all_for_user()
            .times(1)
            .returning(|_, _, _| Ok(()));
        let changes = UserChanges {
            is_active: Some(false),
            ..UserChanges::default()
        };
        UserService::new(mocks.ports(), PasswordPolicy::default())
            .update(&superuser("root"), bob.id, changes)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn delete_of_oneself_deactivates_and_ends_every_session() {
        let ada = user("ada");
        let mut mocks = Mocks::default();
        found(&mut mocks, &ada);
        mocks
            .users
            .expect_update()
            .withf(|u| !u.is_active && u.updated_at == NOW)
            .times(1)
            .returning(|_| Ok(()));
        mocks
            .sessions
            .expect_revoke_all_for_user()
            .with(eq(ada.id), eq(None), eq(NOW))
            .times(1)
            .returning(|_, _, _| Ok(()));
        UserService::new(mocks.ports(), PasswordPolicy::default())
            .delete(&ada, ada.id)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn delete_of_someone_else_is_for_superusers_only() {
        let bob = user("bob");
        let mut mocks = Mocks::default();
        found(&mut mocks, &bob);
        let err = UserService::new(mocks.ports(), PasswordPolicy::default())
            .delete(&user("ada"), bob.id)
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
        let err = UserService::new(mocks.ports(), PasswordPolicy::default())
            .delete(&superuser("root"), bob.id)
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
            .expect_update_unless_last_superuser()
            .withf(|u| !u.is_active)
            .times(1)
            .returning(|_| Err(SaveUserError::LastSuperuser));
        let err = UserService::new(mocks.ports(), PasswordPolicy::default())
            .delete(&root, root.id)
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
        let err = UserService::new(Mocks::default().ports(), PasswordPolicy::default())
            .restore(&user("ada"), bob.id)
            .await
            .unwrap_err();
        assert!(matches!(err, RestoreUserError::Forbidden));

        let mut mocks = Mocks::default();
        found(&mut mocks, &bob);
        mocks
            .users
            .expect_update()
            .withf(|u| u.is_active)
            .times(1)
            .returning(|_| Ok(()));
        let view = UserService::new(mocks.ports(), PasswordPolicy::default())
            .restore(&superuser("root"), bob.id)
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
            .withf(|u| u.is_superuser && u.is_active)
            .times(1)
            .returning(|_| Ok(()));
        let service = UserService::new(mocks.ports(), PasswordPolicy::default());
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
        let bob = User {
            lockout: LoginLockout {
                failed_attempts: 3,
                lockouts: 1,
                locked_until: Some(NOW),
            },
            ..user("bob")
        };
        let err = UserService::new(Mocks::default().ports(), PasswordPolicy::default())
            .unlock(&user("ada"), bob.id)
            .await
            .unwrap_err();
        assert!(matches!(err, UnlockUserError::Forbidden));
        let mut mocks = Mocks::default();
        found(&mut mocks, &bob);
        mocks
            .users
            .expect_clear_lockout()
            .with(eq(bob.id))
            .times(1)
            .returning(|_| Ok(()));
        let view = UserService::new(mocks.ports(), PasswordPolicy::default())
            .unlock(&superuser("root"), bob.id)
            .await
            .unwrap();
        assert_eq!(view.user().lockout, LoginLockout::default());
    }
}
