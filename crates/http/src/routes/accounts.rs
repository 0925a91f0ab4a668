//! A superuser's view of one account: its sessions (and ending them all)
//! and its ways in.

use actix_web::http::Method;
use actix_web::{HttpResponse, web};
use serde::Serialize;
use userhub_domain::model::UserId;
use userhub_domain::services::{AccountError, SignInMethods};
use utoipa::ToSchema;

use crate::error::{ApiError, HttpError};
use crate::extract::{Client, CurrentUser, PathId};
use crate::routes::identities::IdentityResponse;
use crate::routes::passkeys::PasskeyResponse;
use crate::routes::sessions::{SessionResponse, listing};
use crate::state::ApiState;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource(
        "/api/users/{id}/sessions",
        [
            (Method::GET, web::to(sessions)),
            (Method::DELETE, web::to(end_sessions)),
        ],
    ))
    .service(super::resource(
        "/api/users/{id}/sign-in-methods",
        [(Method::GET, web::to(sign_in_methods))],
    ));
}

impl From<AccountError> for ApiError {
    fn from(err: AccountError) -> Self {
        match err {
            AccountError::Forbidden => Self::Forbidden("Not enough permissions"),
            AccountError::NotFound => Self::NotFound("User not found"),
            AccountError::Port(e) => e.into(),
        }
    }
}

/// How an account can sign in; never a secret.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"password": true, "totp": true, "recovery_codes_left": 8, "passkeys": [], "identities": [], "tokens": 1}))]
pub(crate) struct SignInMethodsResponse {
    /// It has a password.
    password: bool,
    /// TOTP is on.
    totp: bool,
    /// Recovery codes not used yet.
    recovery_codes_left: u32,
    passkeys: Vec<PasskeyResponse>,
    /// Linked provider accounts.
    identities: Vec<IdentityResponse>,
    /// Live personal access tokens.
    tokens: usize,
}

impl From<SignInMethods> for SignInMethodsResponse {
    fn from(methods: SignInMethods) -> Self {
        Self {
            password: methods.password,
            totp: methods.totp,
            recovery_codes_left: methods.recovery_codes_left,
            passkeys: methods.passkeys.into_iter().map(Into::into).collect(),
            identities: methods.identities.into_iter().map(Into::into).collect(),
            tokens: methods.tokens,
        }
    }
}

/// A user's live sessions (superusers only); none is `current`.
#[utoipa::path(
    get,
    path = "/api/users/{id}/sessions",
    operation_id = "list_user_sessions",
    tag = "users",
    params(("id" = String, Path, format = Uuid, description = "The user's id")),
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "Live sessions, newest first", body = Vec<SessionResponse>),
        (status = 403, description = "The caller is not a superuser", body = HttpError),
        (status = 404, description = "No such user", body = HttpError),
    )
)]
pub(crate) async fn sessions(
    state: web::Data<ApiState>,
    caller: CurrentUser,
    id: PathId<UserId>,
) -> Result<HttpResponse, ApiError> {
    let sessions = state.accounts.sessions(&caller.0.user, id.0).await?;
    Ok(listing(sessions))
}

/// Ends every session of a user at once (superusers only).
#[utoipa::path(
    delete,
    path = "/api/users/{id}/sessions",
    operation_id = "end_user_sessions",
    tag = "users",
    params(("id" = String, Path, format = Uuid, description = "The user's id")),
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 204, description = "Every session of the user ended"),
        (status = 403, description = "The caller is not a superuser", body = HttpError),
        (status = 404, description = "No such user", body = HttpError),
        (status = 429, response = crate::openapi::TooManyRequests),
    )
)]
pub(crate) async fn end_sessions(
    state: web::Data<ApiState>,
    caller: CurrentUser,
    id: PathId<UserId>,
    client: Client,
) -> Result<HttpResponse, ApiError> {
    state.spend_write_budget(caller.0.user.id).await?;
    state
        .accounts
        .end_sessions(&caller.0.user, id.0, &client.0)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// How a user can sign in (superusers only): never a secret.
#[utoipa::path(
    get,
    path = "/api/users/{id}/sign-in-methods",
    operation_id = "user_sign_in_methods",
    tag = "users",
    params(("id" = String, Path, format = Uuid, description = "The user's id")),
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "The account's ways in", body = SignInMethodsResponse),
        (status = 403, description = "The caller is not a superuser", body = HttpError),
        (status = 404, description = "No such user", body = HttpError),
    )
)]
pub(crate) async fn sign_in_methods(
    state: web::Data<ApiState>,
    caller: CurrentUser,
    id: PathId<UserId>,
) -> Result<HttpResponse, ApiError> {
    let methods = state.accounts.sign_in_methods(&caller.0.user, id.0).await?;
    Ok(HttpResponse::Ok().json(SignInMethodsResponse::from(methods)))
}
