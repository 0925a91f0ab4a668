//! Creating users: by a superuser, and the configured first superuser.

use tracing::info;

use super::UserService;
use crate::PortError;
use crate::model::{
    AuditEvent, AuditKind, ClientInfo, Email, FullName, Password, User, UserView, Username,
};
use crate::services::{NewUserError, insert_user};

/// A user created by a superuser.
#[derive(Debug)]
#[allow(missing_docs)] // each field is the user's field of the same name
pub struct CreateUser {
    pub email: Email,
    pub username: Username,
    pub password: Password,
    pub full_name: Option<FullName>,
    /// Defaults to true.
    pub is_active: Option<bool>,
    /// Defaults to false.
    pub is_superuser: Option<bool>,
    /// Defaults to false (a verification mail is sent).
    pub is_verified: Option<bool>,
}

/// Why a user could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    /// The caller is no superuser.
    #[error("not enough permissions")]
    Forbidden,
    /// The user could not be stored.
    #[error(transparent)]
    Refused(#[from] NewUserError),
}

impl From<PortError> for CreateUserError {
    fn from(err: PortError) -> Self {
        Self::Refused(err.into())
    }
}

impl UserService {
    /// Creates a user with any flags (superusers only).
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
        let user = insert_user(
            self.ports.new_user(),
            self.password_policy,
            cmd,
            event.by(actor.id),
        )
        .await?;
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
        match insert_user(self.ports.new_user(), self.password_policy, cmd, event).await {
            Ok(user) => {
                info!(user_id = %user.id, "first superuser created");
                Ok(true)
            }
            Err(NewUserError::Taken(_)) => Ok(false),
            Err(err) => Err(err.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::model::*;
    use crate::services::fixtures::{Mocks, password, superuser, user};
    use crate::services::users::test_support::*;

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
        mocks.hashes_to("h");
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
        mocks.hashes_to("h");
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
    async fn ensure_superuser_creates_it_once() {
        let mut mocks = Mocks::default();
        let mut existing = vec![None, None, Some(superuser("bob"))].into_iter();
        mocks
            .users
            .expect_find_by_login()
            .returning(move |_| Ok(existing.next().flatten()));
        mocks.hashes_to("h");
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
    async fn ensure_superuser_that_another_instance_created_first_is_done() {
        let mut mocks = Mocks::default();
        mocks.users.expect_find_by_login().returning(|_| Ok(None));
        mocks.hashes_to("h");
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
