//! Account recovery and e-mail verification: asking for a mailed link,
//! and using it.

use actix_web::http::Method;
use actix_web::middleware::from_fn;
use actix_web::{HttpResponse, web};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use userhub_domain::model::{Email, Password, UserView};
use userhub_domain::services::{ResetPasswordError, RevertEmailError, UndoError, VerifyEmailError};
use utoipa::ToSchema;

use crate::dto::{UserResponse, new_password};
use crate::error::{ApiError, HttpError};
use crate::extract::{Client, ValidJson};
use crate::openapi::TooManyRequests;
use crate::state::ApiState;
use crate::validation::invalid;
use crate::validation::{Fields, IntoDomain};
use crate::{middleware, validation};

/// The answer to a mailed token that is unknown, expired, spent or ended.
const INVALID_TOKEN: ApiError = ApiError::BadRequest("Invalid or expired token");

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    let limited = || from_fn(middleware::auth_rate_limit);
    cfg.service(
        super::resource(
            "/api/auth/forgot-password",
            [(Method::POST, web::to(forgot_password))],
        )
        .wrap(limited()),
    )
    .service(
        super::resource(
            "/api/auth/reset-password",
            [(Method::POST, web::to(reset_password))],
        )
        .wrap(limited()),
    )
    .service(
        super::resource(
            "/api/auth/request-verify-token",
            [(Method::POST, web::to(request_verify_token))],
        )
        .wrap(limited()),
    )
    .service(super::resource("/api/auth/verify", [(Method::POST, web::to(verify))]).wrap(limited()))
    .service(
        super::resource(
            "/api/auth/revert-email",
            [(Method::POST, web::to(revert_email))],
        )
        .wrap(limited()),
    )
    .service(super::resource("/api/auth/undo", [(Method::POST, web::to(undo))]).wrap(limited()));
}

/// The address of the account whose password was forgotten.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"email": "ada@example.com"}))]
pub(crate) struct ForgotPasswordRequest {
    #[schema(format = Email, max_length = 254)]
    email: String,
}

impl IntoDomain for ForgotPasswordRequest {
    type Domain = Email;

    fn into_domain(self, fields: &mut Fields) -> Option<Email> {
        fields.take("email", validation::parse_text(self.email, Email::parse))
    }
}

/// A request taken in; what follows happens out of band.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"detail": FORGOT_PASSWORD_ANSWER}))]
pub(crate) struct Accepted {
    /// What happens next.
    detail: &'static str,
}

/// The one answer to every forgot-password request.
const FORGOT_PASSWORD_ANSWER: &str =
    "If an account has this address, a link to reset its password is on its way";

/// Mails a password-reset link, if an active account has this address.
///
/// The answer is the same, in about the same time, for every address: the
/// request is queued and the lookup and the mail happen in the background.
#[utoipa::path(
    post,
    path = "/api/auth/forgot-password",
    operation_id = "forgot_password",
    tag = "auth",
    request_body = ForgotPasswordRequest,
    responses(
        (status = 202, description = "Taken in; a link is mailed if an active account has the address",
            body = Accepted),
        (status = 429, response = TooManyRequests),
    )
)]
pub(crate) async fn forgot_password(
    state: web::Data<ApiState>,
    body: ValidJson<ForgotPasswordRequest>,
    client: Client,
) -> Result<HttpResponse, ApiError> {
    state.recovery.forgot_password(&body.0, &client.0).await?;
    Ok(HttpResponse::Accepted().json(Accepted {
        detail: FORGOT_PASSWORD_ANSWER,
    }))
}

/// A mailed token and the new password.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"token": "3q2-7wAAAAB0aGlzIGlzIG5vdCBhIHJlYWwgdG9rZW4", "new_password": "purple monkey dishwasher 42"}))]
pub(crate) struct ResetPasswordRequest {
    /// The `token` of the mailed link.
    #[schema(min_length = 1, max_length = 1024, pattern = "^[^\\x00]*$")]
    token: String,
    // The personal-information rule needs the account's details: the domain checks it.
    /// 8–72 bytes, strong enough, without the username or e-mail.
    #[schema(min_length = 8, max_length = 72, pattern = "^[^\\x00]*$", format = Password)]
    new_password: String,
}

impl IntoDomain for ResetPasswordRequest {
    /// The token and the new password.
    type Domain = (SecretString, Password);

    fn into_domain(self, fields: &mut Fields) -> Option<Self::Domain> {
        let token = fields.take("token", validation::required(1024)(self.token));
        let new = fields.take("new_password", new_password(self.new_password, None, None));
        Some((SecretString::from(token?), new?))
    }
}

/// Sets a new password with a mailed token. The token works once; every
/// session of the account ends and failed-login locks on it are lifted.
#[utoipa::path(
    post,
    path = "/api/auth/reset-password",
    operation_id = "reset_password",
    tag = "auth",
    request_body = ResetPasswordRequest,
    responses(
        (status = 204, description = "The password is changed; every session of the account ended"),
        (status = 400, description = "Unknown, expired, superseded or already used token", body = HttpError,
            example = json!({"detail": "Invalid or expired token"})),
        (status = 429, response = TooManyRequests),
    )
)]
pub(crate) async fn reset_password(
    state: web::Data<ApiState>,
    body: ValidJson<ResetPasswordRequest>,
    client: Client,
) -> Result<HttpResponse, ApiError> {
    let (token, new) = body.0;
    state
        .recovery
        .reset_password(&token, new, &client.0)
        .await
        .map_err(|err| match err {
            ResetPasswordError::InvalidToken => INVALID_TOKEN,
            ResetPasswordError::WeakPassword(e) => invalid("new_password", e),
            ResetPasswordError::Port(e) => e.into(),
        })?;
    Ok(HttpResponse::NoContent().finish())
}

/// The address to send a verification link to.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"email": "ada@example.com"}))]
pub(crate) struct VerifyRequestRequest {
    #[schema(format = Email, max_length = 254)]
    email: String,
}

impl IntoDomain for VerifyRequestRequest {
    type Domain = Email;

    fn into_domain(self, fields: &mut Fields) -> Option<Email> {
        fields.take("email", validation::parse_text(self.email, Email::parse))
    }
}

/// The one answer to every request for a verification link.
const VERIFY_REQUEST_ANSWER: &str =
    "If an unverified account has this address, a verification link is on its way";

/// Mails a verification link, if an active account with this address is
/// not verified yet. The answer is the same, in about the same time, for
/// every address.
#[utoipa::path(
    post,
    path = "/api/auth/request-verify-token",
    operation_id = "request_verify_token",
    tag = "auth",
    request_body = VerifyRequestRequest,
    responses(
        (status = 202, description = "Taken in; a link is mailed if an unverified active account has the address",
            body = Accepted, example = json!({"detail": VERIFY_REQUEST_ANSWER})),
        (status = 429, response = TooManyRequests),
    )
)]
pub(crate) async fn request_verify_token(
    state: web::Data<ApiState>,
    body: ValidJson<VerifyRequestRequest>,
    client: Client,
) -> Result<HttpResponse, ApiError> {
    state
        .recovery
        .request_verification(&body.0, &client.0)
        .await?;
    Ok(HttpResponse::Accepted().json(Accepted {
        detail: VERIFY_REQUEST_ANSWER,
    }))
}

/// A mailed verification token.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"token": "3q2-7wAAAAB0aGlzIGlzIG5vdCBhIHJlYWwgdG9rZW4"}))]
pub(crate) struct VerifyRequest {
    /// The `token` of the mailed link.
    #[schema(min_length = 1, max_length = 1024, pattern = "^[^\\x00]*$")]
    token: String,
}

impl IntoDomain for VerifyRequest {
    type Domain = Self;

    fn into_domain(self, fields: &mut Fields) -> Option<Self> {
        let token = fields.take("token", validation::required(1024)(self.token))?;
        Some(Self { token })
    }
}

/// Verifies the address a token was mailed to. The token works once, and
/// only while the account still has that address.
#[utoipa::path(
    post,
    path = "/api/auth/verify",
    operation_id = "verify",
    tag = "auth",
    request_body = VerifyRequest,
    responses(
        (status = 200, description = "Verified: the account, as its owner sees it", body = UserResponse),
        (status = 400, description = "Unknown, expired, superseded or already used token, or an address changed since", body = HttpError,
            example = json!({"detail": "Invalid or expired token"})),
        (status = 429, response = TooManyRequests),
    )
)]
pub(crate) async fn verify(
    state: web::Data<ApiState>,
    body: ValidJson<VerifyRequest>,
    client: Client,
) -> Result<HttpResponse, ApiError> {
    let user = state
        .recovery
        .verify_email(&SecretString::from(body.0.token), &client.0)
        .await
        .map_err(|err| match err {
            VerifyEmailError::InvalidToken => INVALID_TOKEN,
            VerifyEmailError::Port(e) => e.into(),
        })?;
    Ok(HttpResponse::Ok().json(UserResponse::from(UserView::own(user))))
}

/// Undoes an email change with the link mailed to the old address.
#[utoipa::path(
    post,
    path = "/api/auth/revert-email",
    operation_id = "revert_email",
    tag = "auth",
    request_body = VerifyRequest,
    responses(
        (status = 200, description = "The old address is back (verified); every session and every other reset or verification link of the account ended, and lockouts were lifted", body = UserResponse),
        (status = 400, description = "Unknown, expired or already used token", body = HttpError,
            example = json!({"detail": "Invalid or expired token"})),
        (status = 409, description = "The old address is another account's now", body = HttpError),
        (status = 429, response = TooManyRequests),
    )
)]
pub(crate) async fn revert_email(
    state: web::Data<ApiState>,
    body: ValidJson<VerifyRequest>,
    client: Client,
) -> Result<HttpResponse, ApiError> {
    let user = state
        .recovery
        .revert_email(&SecretString::from(body.0.token), &client.0)
        .await
        .map_err(|err| match err {
            RevertEmailError::InvalidToken => INVALID_TOKEN,
            RevertEmailError::Taken => ApiError::Conflict("Email already registered"),
            RevertEmailError::Port(e) => e.into(),
        })?;
    Ok(HttpResponse::Ok().json(UserResponse::from(UserView::own(user))))
}

/// What an undo link removed.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"removed": "identity:google"}))]
pub(crate) struct UndoResponse {
    /// `identity:<provider>`.
    removed: String,
}

/// Removes the way in that a notice's undo link names (a linked provider
/// account someone else added); every session of the account ends.
#[utoipa::path(
    post,
    path = "/api/auth/undo",
    operation_id = "undo",
    tag = "auth",
    request_body = VerifyRequest,
    responses(
        (status = 200, description = "Removed; every session of the account ended", body = UndoResponse),
        (status = 400, description = "Unknown, expired (7 days) or already used token", body = HttpError,
            example = json!({"detail": "Invalid or expired token"})),
        (status = 429, response = TooManyRequests),
    )
)]
pub(crate) async fn undo(
    state: web::Data<ApiState>,
    body: ValidJson<VerifyRequest>,
    client: Client,
) -> Result<HttpResponse, ApiError> {
    let removed = state
        .recovery
        .undo(&SecretString::from(body.0.token), &client.0)
        .await
        .map_err(|err| match err {
            UndoError::InvalidToken => INVALID_TOKEN,
            UndoError::Port(e) => e.into(),
        })?;
    Ok(HttpResponse::Ok().json(UndoResponse { removed }))
}
