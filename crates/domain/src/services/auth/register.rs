//! Self-registration.

use tracing::info;

use super::AuthService;
use crate::model::{AuditEvent, AuditKind, ClientInfo, Email, FullName, Password, User, Username};
use crate::services::{CreateUser, NewUserError};

/// A self-registration.
#[derive(Debug)]
#[allow(missing_docs)] // each field is the user's field of the same name
pub struct RegisterUser {
    pub email: Email,
    pub username: Username,
    pub password: Password,
    pub full_name: Option<FullName>,
}

impl AuthService {
    /// Creates an ordinary, active account.
    #[tracing::instrument(skip_all, fields(username = %cmd.username))]
    pub async fn register(
        &self,
        cmd: RegisterUser,
        client: &ClientInfo,
    ) -> Result<User, NewUserError> {
        let cmd = CreateUser {
            email: cmd.email,
            username: cmd.username,
            password: cmd.password,
            full_name: cmd.full_name,
            is_active: None,
            is_superuser: None,
            is_verified: None,
        };
        let event = AuditEvent::new(AuditKind::UserRegistered, self.ports.clock.now(), client);
        let user = crate::services::insert_user(
            self.ports.new_user(),
            self.config.password_policy,
            cmd,
            event,
        )
        .await?;
        info!(user_id = %user.id, "user registered");
        Ok(user)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use mockall::predicate::eq;

    use super::*;
    use crate::model::*;

    use crate::ports::InsertUserError;
    use crate::services::auth::test_support::*;
    use crate::services::auth::*;
    use crate::services::fixtures::{Mocks, NOW};

    #[tokio::test]
    async fn register_stores_an_active_ordinary_user_with_a_hashed_password() {
        let mut mocks = Mocks::default();
        mocks.hashes_to("bcrypt");
        mocks
            .users
            .expect_insert()
            .withf(|u, _| {
                u.is_active
                    && !u.is_superuser
                    && !u.is_verified
                    && u.password_hash.as_str() == "bcrypt"
                    && u.created_at == NOW
            })
            .times(1)
            .returning(|_, _| Ok(()));
        mocks
            .mail
            .expect_enqueue()
            .with(
                eq(crate::model::MailKind::VerifyEmail),
                eq("ada@example.com"),
                eq(NOW),
                mockall::predicate::always(),
            )
            .times(1)
            .returning(|_, _, _, _| Ok(()));
        let user = service(mocks)
            .register(
                registration("ada", "correct horse battery"),
                &ClientInfo::default(),
            )
            .await
            .unwrap();
        assert_eq!(user.username.as_str(), "ada");
        assert_eq!(user.last_login_at, None);
    }

    #[tokio::test]
    async fn a_registration_stands_when_its_verification_mail_cannot_be_queued() {
        let mut mocks = Mocks::default();
        mocks.hashes_to("bcrypt");
        mocks.users.expect_insert().returning(|_, _| Ok(()));
        mocks
            .mail
            .expect_enqueue()
            .returning(|_, _, _, _| Err(PortError::Unavailable("down".into())));
        let user = service(mocks)
            .register(
                registration("ada", "correct horse battery"),
                &ClientInfo::default(),
            )
            .await
            .unwrap();
        assert!(!user.is_verified);
    }

    #[tokio::test]
    async fn register_refuses_a_password_containing_the_username_before_hashing() {
        let mocks = Mocks::default(); // no hash or insert expected
        let err = service(mocks)
            .register(registration("ada", "xx-ADA-1234"), &ClientInfo::default())
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            NewUserError::WeakPassword(PasswordError::ContainsUsername)
        ));
    }

    #[tokio::test]
    async fn register_reports_the_unique_constraint_that_refused_the_row() {
        for (save, expected) in [
            (InsertUserError::EmailTaken, "email"),
            (InsertUserError::UsernameTaken, "username"),
        ] {
            let mut mocks = Mocks::default();
            mocks.hashes_to("h");
            let mut save = Some(save);
            mocks
                .users
                .expect_insert()
                .returning(move |_, _| Err(save.take().unwrap()));
            let err = service(mocks)
                .register(registration("ada", "correct horse"), &ClientInfo::default())
                .await
                .unwrap_err();
            match (err, expected) {
                (NewUserError::Taken(Taken::Email), "email")
                | (NewUserError::Taken(Taken::Username), "username") => {}
                (err, _) => panic!("unexpected {err:?}"),
            }
        }
    }
}
