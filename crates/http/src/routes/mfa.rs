//! The second factor (TOTP, RFC 6238): status, enrolment, confirmation,
//! turning it off, new recovery codes, a superuser's reset, and the second
//! step of a login.

use actix_web::http::Method;
use actix_web::http::header::{CacheControl, CacheDirective};
use actix_web::middleware::from_fn;
use actix_web::{HttpResponse, web};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use userhub_domain::model::UserId;
use utoipa::ToSchema;

use crate::error::{ApiError, HttpError};
use crate::extract::{Client, CurrentUser, HashBudgetSpent, PathId, ValidJson};
use crate::middleware;
use crate::openapi::TooManyRequests;
use crate::state::ApiState;
use crate::validation::{self, Fields, IntoDomain};

pub(crate) mod second_step;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    let limited = || from_fn(middleware::auth_rate_limit);
    cfg.service(super::resource(
        "/api/auth/mfa",
        [(Method::GET, web::to(status))],
    ))
    .service(super::resource(
        "/api/auth/mfa/totp",
        [(Method::POST, web::to(begin))],
    ))
    .service(super::resource(
        "/api/auth/mfa/totp/confirm",
        [(Method::POST, web::to(confirm))],
    ))
    .service(super::resource(
        "/api/auth/mfa/totp/disable",
        [(Method::POST, web::to(disable))],
    ))
    .service(super::resource(
        "/api/auth/mfa/recovery-codes",
        [(Method::POST, web::to(recovery_codes))],
    ))
    .service(
        super::resource(
            "/api/auth/login/mfa",
            [(Method::POST, web::to(second_step::login))],
        )
        .wrap(limited()),
    )
    .service(super::resource(
        "/api/users/{id}/mfa",
        [(Method::DELETE, web::to(reset))],
    ));
}

/// Longest code looked at (a recovery code has 13 characters).
const MAX_CODE: usize = 64;
/// Longest password or token looked at.
const MAX_CREDENTIAL: usize = 1024;

fn no_store(mut response: actix_web::HttpResponseBuilder) -> actix_web::HttpResponseBuilder {
    response.insert_header(CacheControl(vec![CacheDirective::NoStore]));
    response
}

/// The caller's second factor.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"totp": true, "recovery_codes_left": 9}))]
pub(crate) struct MfaStatusResponse {
    /// TOTP is on.
    totp: bool,
    /// Recovery codes not used yet.
    recovery_codes_left: u32,
}

/// Whether the caller's second factor is on.
#[utoipa::path(
    get,
    path = "/api/auth/mfa",
    operation_id = "mfa_status",
    tag = "mfa",
    security(("bearer" = []), ("oauth2" = [])),
    responses((status = 200, description = "The caller's second factor", body = MfaStatusResponse))
)]
pub(crate) async fn status(
    state: web::Data<ApiState>,
    caller: CurrentUser,
) -> Result<HttpResponse, ApiError> {
    let status = state.mfa.mfa_status(&caller.0).await?;
    Ok(no_store(HttpResponse::Ok()).json(MfaStatusResponse {
        totp: status.totp,
        recovery_codes_left: status.recovery_codes_left,
    }))
}

/// The account's password.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"current_password": "correct horse battery staple"}))]
pub(crate) struct PasswordRequest {
    #[schema(min_length = 1, max_length = 1024, pattern = "^[^\\x00]*$", format = Password, write_only)]
    current_password: String,
}

impl IntoDomain for PasswordRequest {
    type Domain = SecretString;

    fn into_domain(self, fields: &mut Fields) -> Option<SecretString> {
        let password = fields.take(
            "current_password",
            validation::required(MAX_CREDENTIAL)(self.current_password),
        )?;
        Some(SecretString::from(password))
    }
}

/// A new secret, shown once.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"secret": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", "otpauth_uri": "otpauth://totp/UserHub:ada%40example.com?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=UserHub&algorithm=SHA1&digits=6&period=30"}))]
pub(crate) struct TotpEnrolmentResponse {
    /// Base32, for typing into an authenticator app.
    secret: String,
    /// For a QR code.
    otpauth_uri: String,
}

/// Starts a TOTP enrolment: a new secret, pending until confirmed (a new
/// call replaces a pending secret).
#[utoipa::path(
    post,
    path = "/api/auth/mfa/totp",
    operation_id = "mfa_totp_begin",
    tag = "mfa",
    request_body = PasswordRequest,
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "The pending secret", body = TotpEnrolmentResponse),
        (status = 400, description = "Wrong password (counted as a failed login)", body = HttpError,
            example = json!({"detail": "Incorrect password"})),
        (status = 409, description = "TOTP is already on", body = HttpError),
        (status = 429, response = TooManyRequests),
    )
)]
pub(crate) async fn begin(
    _budget: HashBudgetSpent,
    state: web::Data<ApiState>,
    caller: CurrentUser,
    client: Client,
    body: ValidJson<PasswordRequest>,
) -> Result<HttpResponse, ApiError> {
    state.spend_write_budget(caller.0.user.id).await?;
    let enrolment = state.mfa.begin_totp(&caller.0, &client.0, &body.0).await?;
    Ok(no_store(HttpResponse::Ok()).json(TotpEnrolmentResponse {
        secret: enrolment.secret.expose().to_owned(),
        otpauth_uri: enrolment.uri,
    }))
}

/// A code of the authenticator app.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"code": "123456"}))]
pub(crate) struct CodeRequest {
    /// Six digits.
    #[schema(min_length = 1, max_length = 64, pattern = "^[^\\x00]*$")]
    code: String,
}

impl IntoDomain for CodeRequest {
    type Domain = String;

    fn into_domain(self, fields: &mut Fields) -> Option<String> {
        fields.take("code", validation::required(MAX_CODE)(self.code))
    }
}

/// Recovery codes, shown once.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"recovery_codes": ["k3n2x7-q8rt5a", "…"]}))]
pub(crate) struct RecoveryCodesResponse {
    /// Ten codes, each usable once wherever a code is asked for.
    recovery_codes: Vec<String>,
}

fn codes_response(codes: &[SecretString]) -> HttpResponse {
    no_store(HttpResponse::Ok()).json(RecoveryCodesResponse {
        recovery_codes: codes.iter().map(|c| c.expose_secret().to_owned()).collect(),
    })
}

/// Confirms the pending secret with a code: TOTP is on, and the recovery
/// codes are shown (only here).
#[utoipa::path(
    post,
    path = "/api/auth/mfa/totp/confirm",
    operation_id = "mfa_totp_confirm",
    tag = "mfa",
    request_body = CodeRequest,
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "TOTP is on; ten recovery codes", body = RecoveryCodesResponse),
        (status = 400, description = "Wrong code", body = HttpError,
            example = json!({"detail": "Invalid code"})),
        (status = 409, description = "Nothing pending", body = HttpError),
        (status = 429, response = TooManyRequests),
    )
)]
pub(crate) async fn confirm(
    state: web::Data<ApiState>,
    caller: CurrentUser,
    client: Client,
    body: ValidJson<CodeRequest>,
) -> Result<HttpResponse, ApiError> {
    state.spend_write_budget(caller.0.user.id).await?;
    let codes = state
        .mfa
        .confirm_totp(&caller.0, &client.0, &body.0)
        .await?;
    Ok(codes_response(&codes))
}

/// The password and a code (of the app, or a recovery code).
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"current_password": "correct horse battery staple", "code": "123456"}))]
pub(crate) struct PasswordAndCodeRequest {
    #[schema(min_length = 1, max_length = 1024, pattern = "^[^\\x00]*$", format = Password, write_only)]
    current_password: String,
    /// Six digits, or a recovery code.
    #[schema(min_length = 1, max_length = 64, pattern = "^[^\\x00]*$")]
    code: String,
}

impl IntoDomain for PasswordAndCodeRequest {
    type Domain = (SecretString, String);

    fn into_domain(self, fields: &mut Fields) -> Option<Self::Domain> {
        let password = fields.take(
            "current_password",
            validation::required(MAX_CREDENTIAL)(self.current_password),
        );
        let code = fields.take("code", validation::required(MAX_CODE)(self.code));
        Some((SecretString::from(password?), code?))
    }
}

/// Turns TOTP off; every other session ends.
#[utoipa::path(
    post,
    path = "/api/auth/mfa/totp/disable",
    operation_id = "mfa_totp_disable",
    tag = "mfa",
    request_body = PasswordAndCodeRequest,
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 204, description = "TOTP is off"),
        (status = 400, description = "Wrong password or code (counted as a failed login)", body = HttpError),
        (status = 409, description = "TOTP is not on", body = HttpError),
        (status = 429, response = TooManyRequests),
    )
)]
pub(crate) async fn disable(
    _budget: HashBudgetSpent,
    state: web::Data<ApiState>,
    caller: CurrentUser,
    client: Client,
    body: ValidJson<PasswordAndCodeRequest>,
) -> Result<HttpResponse, ApiError> {
    state.spend_write_budget(caller.0.user.id).await?;
    let (password, code) = body.0;
    state
        .mfa
        .disable_totp(&caller.0, &client.0, &password, &code)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A new set of recovery codes; the old set is spent.
#[utoipa::path(
    post,
    path = "/api/auth/mfa/recovery-codes",
    operation_id = "mfa_recovery_codes",
    tag = "mfa",
    request_body = PasswordAndCodeRequest,
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "Ten new recovery codes", body = RecoveryCodesResponse),
        (status = 400, description = "Wrong password or code (counted as a failed login)", body = HttpError),
        (status = 409, description = "TOTP is not on", body = HttpError),
        (status = 429, response = TooManyRequests),
    )
)]
pub(crate) async fn recovery_codes(
    _budget: HashBudgetSpent,
    state: web::Data<ApiState>,
    caller: CurrentUser,
    client: Client,
    body: ValidJson<PasswordAndCodeRequest>,
) -> Result<HttpResponse, ApiError> {
    state.spend_write_budget(caller.0.user.id).await?;
    let (password, code) = body.0;
    let codes = state
        .mfa
        .regenerate_recovery_codes(&caller.0, &client.0, &password, &code)
        .await?;
    Ok(codes_response(&codes))
}

/// Turns off a user's second factor (superusers only), for a lost device;
/// every session of the user ends.
#[utoipa::path(
    delete,
    path = "/api/users/{id}/mfa",
    operation_id = "reset_user_mfa",
    tag = "users",
    params(("id" = String, Path, format = Uuid, description = "The user's id")),
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 204, description = "The user's second factor is off"),
        (status = 403, description = "The caller is not a superuser", body = HttpError),
        (status = 404, description = "Unknown user", body = HttpError),
        (status = 409, description = "The user has no second factor", body = HttpError),
    )
)]
pub(crate) async fn reset(
    state: web::Data<ApiState>,
    caller: CurrentUser,
    client: Client,
    id: PathId<UserId>,
) -> Result<HttpResponse, ApiError> {
    state.mfa.reset_mfa(&caller.0, id.0, &client.0).await?;
    Ok(HttpResponse::NoContent().finish())
}
