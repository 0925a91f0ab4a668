//! The use cases. Each holds its ports behind `Arc<dyn …>`: one concrete
//! service type keeps the HTTP layer free of generics and compiles once,
//! while tests still swap any port for a mock.

mod accounts;
mod audit;
mod auth;
mod recovery;
mod throttle;
mod users;
mod webhooks;

use std::sync::Arc;

pub use accounts::{AccountError, AccountService, SignInMethods};
pub use audit::{AuditPage, AuditService, ListAuditEvents, ListAuditEventsError};
pub use auth::{
    AuthConfig, AuthService, AuthServices, AuthenticateError, Authenticated, CeremonyOptions,
    ChangePasswordError, Credential, EndSessionError, IssuedTokens, LoginError, LoginRequest,
    MfaChangeError, MfaLoginError, MfaResetError, MfaService, NewToken, NewTokenError,
    OAuthCallback, OAuthError, OAuthService, PasskeyError, PasskeyLoginError, PasskeyService,
    RefreshError, RegisterUser, SessionService, TokenAccessError, TokenService, TotpEnrolment,
    UnlinkError,
};
pub use recovery::{
    EVICTED_BY_REVERT, RecoveryConfig, RecoveryPorts, RecoveryService, ResetPasswordError,
    RevertEmailError, UndoError, VerifyEmailError,
};
pub use throttle::LockoutPolicy;
pub use users::{
    CreateUser, CreateUserError, DeleteUserError, GetUserError, ListUsers, ListUsersError,
    RestoreUserError, UnlockUserError, UpdateTarget, UpdateUserError, UserChanges, UserListing,
    UserService,
};
pub use webhooks::{
    DispatchRound, NewWebhook, WebhookConfig, WebhookError, WebhookPorts, WebhookService,
};

use crate::PortError;
use crate::model::{
    AuditEvent, AuditKind, ClientInfo, PasswordError, PasswordPolicy, Taken, User, UserId,
};
use crate::ports::{
    AuditLog, Clock, IdentityProviders, IdentityRepository, InsertUserError, LoginThrottle,
    MailQueue, MfaRepository, PasskeyCeremonies, PasskeyRepository, PasswordHasher,
    PersonalTokenRepository, SecondFactor, SessionRepository, TokenIssuer, UserRepository,
};

/// Every port, as a composition root holds them; each service takes its
/// own set out of it ([`Ports::for_auth`], [`Ports::for_sessions`], …),
/// so a service's test mocks only what its rules touch.
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
    pub pats: Arc<dyn PersonalTokenRepository>,
    pub passkeys: Arc<dyn PasskeyRepository>,
    pub ceremonies: Arc<dyn PasskeyCeremonies>,
}

/// Declares a service's ports, a part of [`Ports`] (same field names), and
/// the method of [`Ports`] that takes that part out.
macro_rules! port_set {
    ($(#[$doc:meta])* $name:ident = $method:ident { $($field:ident: $port:ident),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone)]
        #[allow(missing_docs)] // each field is the port its type names
        pub struct $name {
            $(pub $field: Arc<dyn $port>,)*
        }

        impl Ports {
            #[doc = concat!("The part [`", stringify!($name), "`] names.")]
            #[must_use]
            pub fn $method(&self) -> $name {
                $name {
                    $($field: self.$field.clone(),)*
                }
            }
        }
    };
}

port_set! {
    /// The ports of registration, login and password change ([`AuthService`]).
    AuthPorts = for_auth {
        users: UserRepository,
        sessions: SessionRepository,
        throttle: LoginThrottle,
        hasher: PasswordHasher,
        tokens: TokenIssuer,
        mail: MailQueue,
        audit: AuditLog,
        clock: Clock,
        mfa: MfaRepository,
        second_factor: SecondFactor,
    }
}

port_set! {
    /// The ports of request authentication, refresh and the caller's
    /// sessions ([`SessionService`]).
    SessionPorts = for_sessions {
        users: UserRepository,
        sessions: SessionRepository,
        tokens: TokenIssuer,
        clock: Clock,
        pats: PersonalTokenRepository,
    }
}

port_set! {
    /// The ports of personal access tokens ([`TokenService`]).
    TokenPorts = for_tokens {
        users: UserRepository,
        pats: PersonalTokenRepository,
        tokens: TokenIssuer,
        hasher: PasswordHasher,
        throttle: LoginThrottle,
        audit: AuditLog,
        clock: Clock,
    }
}

port_set! {
    /// The ports of passkeys ([`PasskeyService`]).
    PasskeyPorts = for_passkeys {
        users: UserRepository,
        sessions: SessionRepository,
        passkeys: PasskeyRepository,
        ceremonies: PasskeyCeremonies,
        mfa: MfaRepository,
        mail: MailQueue,
        tokens: TokenIssuer,
        hasher: PasswordHasher,
        throttle: LoginThrottle,
        audit: AuditLog,
        clock: Clock,
    }
}

port_set! {
    /// The ports of second-factor management ([`MfaService`]).
    MfaPorts = for_mfa {
        users: UserRepository,
        throttle: LoginThrottle,
        hasher: PasswordHasher,
        tokens: TokenIssuer,
        mail: MailQueue,
        audit: AuditLog,
        clock: Clock,
        mfa: MfaRepository,
        second_factor: SecondFactor,
    }
}

port_set! {
    /// The ports of provider sign-in and linking ([`OAuthService`]).
    OAuthPorts = for_oauth {
        users: UserRepository,
        sessions: SessionRepository,
        throttle: LoginThrottle,
        hasher: PasswordHasher,
        tokens: TokenIssuer,
        mail: MailQueue,
        audit: AuditLog,
        clock: Clock,
        mfa: MfaRepository,
        identities: IdentityRepository,
        providers: IdentityProviders,
    }
}

port_set! {
    /// The ports of user management ([`UserService`]).
    UserPorts = for_users {
        users: UserRepository,
        sessions: SessionRepository,
        pats: PersonalTokenRepository,
        hasher: PasswordHasher,
        throttle: LoginThrottle,
        audit: AuditLog,
        mail: MailQueue,
        clock: Clock,
    }
}

port_set! {
    /// The ports of a superuser's account view ([`AccountService`]).
    AccountPorts = for_accounts {
        users: UserRepository,
        sessions: SessionRepository,
        mfa: MfaRepository,
        passkeys: PasskeyRepository,
        identities: IdentityRepository,
        pats: PersonalTokenRepository,
        clock: Clock,
    }
}

port_set! {
    /// The ports of the audit trail's use cases ([`AuditService`]).
    AuditPorts = for_audit {
        audit: AuditLog,
        clock: Clock,
    }
}

impl Ports {
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

shared_parts!(
    outbox: AuthPorts, MfaPorts, OAuthPorts, UserPorts, RecoveryPorts, PasskeyPorts;
    new_user: AuthPorts, UserPorts
);

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
