//! Each use case's errors as answers.

use userhub_domain::model::Taken;
use userhub_domain::services::{
    AuthenticateError, ChangePasswordError, CreateUserError, DeleteUserError, EndSessionError,
    GetUserError, ListAuditEventsError, ListUsersError, LoginError, MfaChangeError, MfaLoginError,
    MfaResetError, NewTokenError, NewUserError, OAuthError, PasskeyError, PasskeyLoginError,
    RefreshError, RestoreUserError, TokenAccessError, UnlinkError, UnlockUserError,
    UpdateUserError,
};

use super::ApiError;

const INVALID_CODE: &str = "Invalid code";
const MFA_NOT_ON: &str = "Two-factor authentication is not on";
const EMAIL_TAKEN: &str = "Email already registered";
const USERNAME_TAKEN: &str = "Username already taken";
const FORBIDDEN: &str = "Not enough permissions";
const USER_NOT_FOUND: &str = "User not found";
const LAST_METHOD: &str = "Cannot remove the last sign-in method";
const INVALID_PASSKEY: &str = "Invalid passkey";
const TOO_MANY_PASSWORD_FAILURES: &str = "Too many failed login attempts; try again later";

/// Seconds to announce in `Retry-After`, rounded up so that a client that
/// waits this long gets through.
fn retry_after_seconds(wait: time::Duration) -> u64 {
    u64::try_from(wait.whole_seconds() + 1).unwrap_or(1)
}

impl From<Taken> for ApiError {
    fn from(taken: Taken) -> Self {
        Self::Conflict(match taken {
            Taken::Email => EMAIL_TAKEN,
            Taken::Username => USERNAME_TAKEN,
        })
    }
}

impl From<NewUserError> for ApiError {
    fn from(err: NewUserError) -> Self {
        match err {
            NewUserError::Taken(taken) => taken.into(),
            NewUserError::WeakPassword(e) => Self::weak_password("password", e),
            NewUserError::Port(e) => e.into(),
        }
    }
}

impl From<LoginError> for ApiError {
    fn from(err: LoginError) -> Self {
        match err {
            LoginError::InvalidCredentials => Self::Unauthorized("Incorrect email or password"),
            LoginError::EmailNotVerified => Self::Forbidden("Email not verified"),
            LoginError::MfaRequired { mfa_token, .. } => Self::MfaRequired {
                mfa_token: secrecy::ExposeSecret::expose_secret(&mfa_token).to_owned(),
                passkey: None,
            },
            LoginError::Locked { retry_after } => Self::TooManyRequests {
                detail: TOO_MANY_PASSWORD_FAILURES,
                retry_after: retry_after_seconds(retry_after),
            },
            LoginError::Port(e) => e.into(),
        }
    }
}

impl From<RefreshError> for ApiError {
    fn from(err: RefreshError) -> Self {
        match err {
            RefreshError::InvalidToken => Self::Unauthorized("Invalid or expired refresh token"),
            RefreshError::EmailNotVerified => Self::Forbidden("Email not verified"),
            RefreshError::Port(e) => e.into(),
        }
    }
}

impl From<AuthenticateError> for ApiError {
    fn from(err: AuthenticateError) -> Self {
        match err {
            AuthenticateError::InvalidToken => Self::Unauthorized("Could not validate credentials"),
            AuthenticateError::Port(e) => e.into(),
        }
    }
}

impl From<ListUsersError> for ApiError {
    fn from(err: ListUsersError) -> Self {
        match err {
            ListUsersError::FilterForbidden => {
                Self::Forbidden("Only superusers can filter on is_active")
            }
            ListUsersError::SortForbidden => Self::Forbidden("Only superusers can sort by email"),
            ListUsersError::Port(e) => e.into(),
        }
    }
}

impl From<GetUserError> for ApiError {
    fn from(err: GetUserError) -> Self {
        match err {
            GetUserError::Unauthenticated => Self::Unauthorized("Could not validate credentials"),
            GetUserError::NotFound => Self::NotFound(USER_NOT_FOUND),
            GetUserError::Port(e) => e.into(),
        }
    }
}

impl From<CreateUserError> for ApiError {
    fn from(err: CreateUserError) -> Self {
        match err {
            CreateUserError::Forbidden => Self::Forbidden(FORBIDDEN),
            CreateUserError::Refused(e) => e.into(),
        }
    }
}

impl From<UpdateUserError> for ApiError {
    fn from(err: UpdateUserError) -> Self {
        match err {
            UpdateUserError::Unauthenticated => {
                Self::Unauthorized("Could not validate credentials")
            }
            UpdateUserError::NotFound => Self::NotFound(USER_NOT_FOUND),
            UpdateUserError::Forbidden => Self::Forbidden(FORBIDDEN),
            UpdateUserError::Taken(taken) => taken.into(),
            UpdateUserError::WeakPassword(e) => Self::weak_password("password", e),
            UpdateUserError::LastSuperuser => {
                Self::Conflict("The last active superuser cannot be deactivated or demoted")
            }
            UpdateUserError::PreconditionFailed => Self::PreconditionFailed,
            UpdateUserError::EmailChangeNeedsPassword => {
                Self::Forbidden("Changing the email needs the current password")
            }
            UpdateUserError::IncorrectPassword => Self::BadRequest("Incorrect password"),
            UpdateUserError::Locked { retry_after } => Self::TooManyRequests {
                detail: TOO_MANY_PASSWORD_FAILURES,
                retry_after: retry_after_seconds(retry_after),
            },
            UpdateUserError::Port(e) => e.into(),
        }
    }
}

impl From<DeleteUserError> for ApiError {
    fn from(err: DeleteUserError) -> Self {
        match err {
            DeleteUserError::NotFound => Self::NotFound(USER_NOT_FOUND),
            DeleteUserError::Forbidden => Self::Forbidden(FORBIDDEN),
            DeleteUserError::LastSuperuser => {
                Self::Conflict("The last active superuser cannot be deleted")
            }
            DeleteUserError::PreconditionFailed => Self::PreconditionFailed,
            DeleteUserError::Port(e) => e.into(),
        }
    }
}

impl From<ListAuditEventsError> for ApiError {
    fn from(err: ListAuditEventsError) -> Self {
        match err {
            ListAuditEventsError::Forbidden => Self::Forbidden(FORBIDDEN),
            ListAuditEventsError::Port(e) => e.into(),
        }
    }
}

impl From<RestoreUserError> for ApiError {
    fn from(err: RestoreUserError) -> Self {
        match err {
            RestoreUserError::NotFound => Self::NotFound(USER_NOT_FOUND),
            RestoreUserError::Forbidden => Self::Forbidden(FORBIDDEN),
            RestoreUserError::Port(e) => e.into(),
        }
    }
}

impl From<NewTokenError> for ApiError {
    fn from(err: NewTokenError) -> Self {
        match err {
            NewTokenError::NotWithToken => Self::Forbidden(crate::scopes::NOT_WITH_TOKEN),
            NewTokenError::Lifetime { max } => Self::field(
                "value_error",
                "body",
                "expires_in_days",
                format!("Value error, expires_in_days must be from 1 to {max}"),
            ),
            NewTokenError::WrongPassword => Self::BadRequest("Incorrect password"),
            NewTokenError::Locked { retry_after } => Self::TooManyRequests {
                detail: TOO_MANY_PASSWORD_FAILURES,
                retry_after: retry_after_seconds(retry_after),
            },
            NewTokenError::TooMany => {
                Self::Conflict("Too many personal access tokens (at most 50)")
            }
            NewTokenError::Port(e) => e.into(),
        }
    }
}

impl From<TokenAccessError> for ApiError {
    fn from(err: TokenAccessError) -> Self {
        match err {
            TokenAccessError::NotWithToken => Self::Forbidden(crate::scopes::NOT_WITH_TOKEN),
            TokenAccessError::Forbidden => Self::Forbidden(FORBIDDEN),
            TokenAccessError::UnknownUser => Self::NotFound(USER_NOT_FOUND),
            TokenAccessError::NotFound => Self::NotFound("Token not found"),
            TokenAccessError::Port(e) => e.into(),
        }
    }
}

impl From<EndSessionError> for ApiError {
    fn from(err: EndSessionError) -> Self {
        match err {
            EndSessionError::NotFound => Self::NotFound("Session not found"),
            EndSessionError::Port(e) => e.into(),
        }
    }
}

impl From<ChangePasswordError> for ApiError {
    fn from(err: ChangePasswordError) -> Self {
        match err {
            ChangePasswordError::WrongPassword => Self::BadRequest("Incorrect password"),
            ChangePasswordError::WeakPassword(e) => Self::weak_password("new_password", e),
            ChangePasswordError::Locked { retry_after } => Self::TooManyRequests {
                detail: TOO_MANY_PASSWORD_FAILURES,
                retry_after: retry_after_seconds(retry_after),
            },
            ChangePasswordError::Port(e) => e.into(),
        }
    }
}

impl From<UnlockUserError> for ApiError {
    fn from(err: UnlockUserError) -> Self {
        match err {
            UnlockUserError::NotFound => Self::NotFound(USER_NOT_FOUND),
            UnlockUserError::Forbidden => Self::Forbidden(FORBIDDEN),
            UnlockUserError::Port(e) => e.into(),
        }
    }
}

impl From<MfaChangeError> for ApiError {
    fn from(err: MfaChangeError) -> Self {
        match err {
            MfaChangeError::WrongPassword => Self::BadRequest("Incorrect password"),
            MfaChangeError::InvalidCode => Self::BadRequest(INVALID_CODE),
            MfaChangeError::AlreadyOn => Self::Conflict("Two-factor authentication is already on"),
            MfaChangeError::NothingPending => Self::Conflict("No two-factor enrolment is pending"),
            MfaChangeError::NotOn => Self::Conflict(MFA_NOT_ON),
            MfaChangeError::Locked { retry_after } => Self::TooManyRequests {
                detail: TOO_MANY_PASSWORD_FAILURES,
                retry_after: retry_after_seconds(retry_after),
            },
            MfaChangeError::Port(e) => e.into(),
        }
    }
}

impl From<MfaLoginError> for ApiError {
    fn from(err: MfaLoginError) -> Self {
        match err {
            MfaLoginError::InvalidCode => Self::Unauthorized(INVALID_CODE),
            MfaLoginError::Locked { retry_after } => Self::TooManyRequests {
                detail: TOO_MANY_PASSWORD_FAILURES,
                retry_after: retry_after_seconds(retry_after),
            },
            MfaLoginError::Port(e) => e.into(),
        }
    }
}

impl From<MfaResetError> for ApiError {
    fn from(err: MfaResetError) -> Self {
        match err {
            MfaResetError::Forbidden => Self::Forbidden(FORBIDDEN),
            MfaResetError::NotFound => Self::NotFound(USER_NOT_FOUND),
            MfaResetError::NotOn => Self::Conflict(MFA_NOT_ON),
            MfaResetError::Port(e) => e.into(),
        }
    }
}

impl From<OAuthError> for ApiError {
    fn from(err: OAuthError) -> Self {
        match err {
            OAuthError::UnknownProvider => Self::NotFound("Unknown provider"),
            OAuthError::InvalidState => Self::BadRequest("OAUTH_INVALID_STATE"),
            OAuthError::InvalidCode => Self::BadRequest("OAUTH_INVALID_CODE"),
            OAuthError::InvalidIdToken => Self::BadRequest("OAUTH_INVALID_ID_TOKEN"),
            OAuthError::NoEmail => Self::BadRequest("OAUTH_NOT_AVAILABLE_EMAIL"),
            OAuthError::UserAlreadyExists => Self::BadRequest("OAUTH_USER_ALREADY_EXISTS"),
            OAuthError::BadCredentials => Self::BadRequest("LOGIN_BAD_CREDENTIALS"),
            OAuthError::EmailNotVerified => Self::BadRequest("LOGIN_USER_NOT_VERIFIED"),
            OAuthError::MfaRequired { mfa_token, .. } => Self::MfaRequired {
                mfa_token: secrecy::ExposeSecret::expose_secret(&mfa_token).to_owned(),
                passkey: None,
            },
            OAuthError::LinkedElsewhere => {
                Self::Conflict("This identity is linked to another account")
            }
            OAuthError::ProviderLinked => {
                Self::Conflict("An identity of this provider is linked already")
            }
            OAuthError::Unavailable => Self::Unavailable,
            OAuthError::ReauthenticationRequired => Self::ReauthenticationRequired,
            OAuthError::WrongPassword => Self::BadRequest("Incorrect password"),
            OAuthError::Locked { retry_after } => Self::TooManyRequests {
                detail: TOO_MANY_PASSWORD_FAILURES,
                retry_after: retry_after_seconds(retry_after),
            },
            OAuthError::Port(e) => e.into(),
        }
    }
}

impl From<UnlinkError> for ApiError {
    fn from(err: UnlinkError) -> Self {
        match err {
            UnlinkError::NotLinked => Self::NotFound("No identity of this provider is linked"),
            UnlinkError::LastMethod => Self::Conflict(LAST_METHOD),
            UnlinkError::Port(e) => e.into(),
        }
    }
}

impl From<PasskeyError> for ApiError {
    fn from(err: PasskeyError) -> Self {
        match err {
            PasskeyError::NotWithToken => Self::Forbidden(crate::scopes::NOT_WITH_TOKEN),
            PasskeyError::PasswordRequired => {
                Self::field("missing", "body", "current_password", "Field required")
            }
            PasskeyError::WrongPassword => Self::BadRequest("Incorrect password"),
            PasskeyError::Locked { retry_after } => Self::TooManyRequests {
                detail: TOO_MANY_PASSWORD_FAILURES,
                retry_after: retry_after_seconds(retry_after),
            },
            PasskeyError::ReauthenticationRequired => {
                Self::Forbidden("Sign in again to add a passkey")
            }
            PasskeyError::TooMany => Self::Conflict("20 passkeys already"),
            PasskeyError::Invalid => Self::BadRequest(INVALID_PASSKEY),
            PasskeyError::AlreadyRegistered => Self::Conflict("Passkey already registered"),
            PasskeyError::NotFound => Self::NotFound("Passkey not found"),
            PasskeyError::UnknownUser => Self::NotFound(USER_NOT_FOUND),
            PasskeyError::LastMethod => Self::Conflict(LAST_METHOD),
            PasskeyError::Forbidden => Self::Forbidden(FORBIDDEN),
            PasskeyError::Port(e) => e.into(),
        }
    }
}

impl From<PasskeyLoginError> for ApiError {
    fn from(err: PasskeyLoginError) -> Self {
        match err {
            PasskeyLoginError::Invalid => Self::Unauthorized(INVALID_PASSKEY).for_oauth(),
            PasskeyLoginError::Port(e) => e.into(),
        }
    }
}
