//! The use cases. Each holds its ports behind `Arc<dyn …>`: one concrete
//! service type keeps the HTTP layer free of generics and compiles once,
//! while tests still swap any port for a mock.

mod audit;
mod auth;
mod recovery;
mod throttle;
mod users;

use std::sync::Arc;

pub use audit::{AuditPage, AuditPorts, AuditService, ListAuditEvents, ListAuditEventsError};
pub use auth::{
    AuthConfig, AuthService, AuthenticateError, Authenticated, ChangePasswordError,
    EndSessionError, IssuedTokens, LoginError, LoginRequest, MfaChangeError, MfaLoginError,
    MfaResetError, OAuthCallback, OAuthError, RefreshError, RegisterUser, TotpEnrolment,
    UnlinkError,
};
pub use recovery::{
    EVICTED_BY_REVERT, RecoveryConfig, RecoveryPorts, RecoveryService, ResetPasswordError,
    RevertEmailError, UndoError, VerifyEmailError,
};
pub use throttle::LockoutPolicy;
pub use users::{
    CreateUser, CreateUserError, DeleteUserError, GetUserError, ListUsers, ListUsersError,
    RestoreUserError, UnlockUserError, UpdateUserError, UserChanges, UserListing, UserPorts,
    UserService,
};

use crate::PortError;
use crate::model::{
    AuditEvent, AuditKind, ClientInfo, PasswordError, PasswordPolicy, Taken, User, UserId,
};
use crate::ports::{
    AuditLog, Clock, IdentityProviders, IdentityRepository, InsertUserError, LoginThrottle,
    MailQueue, MfaRepository, PasswordHasher, SecondFactor, SessionRepository, TokenIssuer,
    UserRepository,
};

/// The ports of the authentication use cases ([`AuthService`]), which use
/// every one of them; the other services take only theirs
/// ([`UserPorts`], [`AuditPorts`], [`RecoveryPorts`]).
#[derive(Clone)]
#[allow(missing_docs)] // each field is the port its type names
pub struct Ports {
    pub users: Arc<dyn UserRepository>,
    pub sessions: Arc<dyn SessionRepository>,
    pub throttle: Arc<dyn LoginThrottle>,
    pub hasher: Arc<dyn PasswordHasher>,
    pub tokens: Arc<dyn TokenIssuer>,
    pub mail: Arc<dyn MailQueue>,
    pub audit: Arc<dyn AuditLog>,
    pub clock: Arc<dyn Clock>,
    pub mfa: Arc<dyn MfaRepository>,
    pub second_factor: Arc<dyn SecondFactor>,
    pub identities: Arc<dyn IdentityRepository>,
    pub providers: Arc<dyn IdentityProviders>,
}

impl Ports {
    /// The part user management uses, for a composition root that holds
    /// every adapter.
    #[must_use]
    pub fn for_users(&self) -> UserPorts {
        UserPorts {
            users: self.users.clone(),
            sessions: self.sessions.clone(),
            hasher: self.hasher.clone(),
            throttle: self.throttle.clone(),
            audit: self.audit.clone(),
            mail: self.mail.clone(),
            clock: self.clock.clone(),
        }
    }

    /// The part the audit trail's use cases use.
    #[must_use]
    pub fn for_audit(&self) -> AuditPorts {
        AuditPorts {
            audit: self.audit.clone(),
            clock: self.clock.clone(),
        }
    }

    /// The part recovery uses, with the ports only recovery has.
    #[must_use]
    pub fn for_recovery(
        &self,
        tokens: Arc<dyn crate::ports::RecoveryTokens>,
        mailer: Arc<dyn crate::ports::Mailer>,
        counter: Arc<dyn crate::ports::RequestCounter>,
    ) -> RecoveryPorts {
        RecoveryPorts {
            users: self.users.clone(),
            hasher: self.hasher.clone(),
            throttle: self.throttle.clone(),
            issuer: self.tokens.clone(),
            mail: self.mail.clone(),
            clock: self.clock.clone(),
            tokens,
            mailer,
            counter,
        }
    }
}

/// Where mail is queued, and the time it is queued at.
#[derive(Clone, Copy)]
struct Outbox<'a> {
    mail: &'a dyn MailQueue,
    clock: &'a dyn Clock,
}

/// What making a user uses.
#[derive(Clone, Copy)]
struct NewUserPorts<'a> {
    users: &'a dyn UserRepository,
    hasher: &'a dyn PasswordHasher,
    outbox: Outbox<'a>,
}

/// `outbox()` for the port sets with a mail queue and a clock, and
/// `new_user()` for those that also make users.
macro_rules! shared_parts {
    (outbox: $($mails:ty),*; new_user: $($makes:ty),*) => {
        $(impl $mails {
            fn outbox(&self) -> Outbox<'_> {
                Outbox {
                    mail: self.mail.as_ref(),
                    clock: self.clock.as_ref(),
                }
            }
        })*
        $(impl $makes {
            fn new_user(&self) -> NewUserPorts<'_> {
                NewUserPorts {
                    users: self.users.as_ref(),
                    hasher: self.hasher.as_ref(),
                    outbox: self.outbox(),
                }
            }
        })*
    };
}

shared_parts!(outbox: Ports, UserPorts, RecoveryPorts; new_user: Ports, UserPorts);

/// Why a new user (registered, or created by a superuser) was not stored.
#[derive(Debug, thiserror::Error)]
pub enum NewUserError {
    /// Another user has the address or the username.
    #[error(transparent)]
    Taken(Taken),
    /// The password contains the username or the address.
    #[error(transparent)]
    WeakPassword(PasswordError),
    /// A port failed; [`PortError`] tells whether retrying may help.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Checks the password against the new user's own details, hashes it and
/// stores the user with `event`, now about them (and by them, for a
/// registration): the one way a user comes into existence.
async fn insert_user(
    ports: NewUserPorts<'_>,
    policy: PasswordPolicy,
    cmd: CreateUser,
    mut event: AuditEvent,
) -> Result<User, NewUserError> {
    policy
        .check(&cmd.password, &cmd.username, &cmd.email)
        .map_err(NewUserError::WeakPassword)?;
    let now = ports.outbox.clock.now();
    let user = User {
        id: UserId::generate(),
        email: cmd.email,
        username: cmd.username,
        full_name: cmd.full_name,
        password_hash: ports.hasher.hash(&cmd.password).await?,
        is_active: cmd.is_active.unwrap_or(true),
        is_superuser: cmd.is_superuser.unwrap_or(false),
        is_verified: cmd.is_verified.unwrap_or(false),
        created_at: now,
        updated_at: now,
        last_login_at: None,
        version: 1,
    };
    event.subject_id = Some(user.id);
    if event.kind == AuditKind::UserRegistered {
        event.actor_id = Some(user.id);
    }
    ports
        .users
        .insert(&user, &event)
        .await
        .map_err(|err| match err {
            InsertUserError::EmailTaken => NewUserError::Taken(Taken::Email),
            InsertUserError::UsernameTaken => NewUserError::Taken(Taken::Username),
            InsertUserError::Port(err) => NewUserError::Port(err),
        })?;
    if !user.is_verified {
        queue_verification(ports.outbox, &user.email, &event.client).await;
    }
    Ok(user)
}

/// Queues a verification mail for `email`. The change that calls for it
/// has landed already, so a failure is logged, not returned: the user can
/// ask for another link.
async fn queue_verification(ports: Outbox<'_>, email: &crate::model::Email, client: &ClientInfo) {
    let now = ports.clock.now();
    if let Err(err) = ports
        .mail
        .enqueue(
            crate::model::MailKind::VerifyEmail,
            email.as_str(),
            now,
            client,
        )
        .await
    {
        tracing::warn!(error = %err, "queueing a verification mail failed");
    }
}

/// Queues a security notice of a change that has landed already; like
/// [`queue_verification`], a failure is logged, not returned.
async fn queue_notice(ports: Outbox<'_>, notice: &crate::model::Notice, client: &ClientInfo) {
    let now = ports.clock.now();
    if let Err(err) = ports.mail.notify(notice, now, client).await {
        tracing::error!(error = %err, kind = notice.kind.as_str(), "queueing a security notice failed");
    }
}

#[cfg(any(test, feature = "mocks"))]
pub mod fixtures;
