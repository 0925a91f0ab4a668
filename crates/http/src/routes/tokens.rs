//! Personal access tokens: the caller's (list, create, revoke) and a
//! superuser's view of anyone's.

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use userhub_domain::model::{PersonalToken, Scope, Scopes, TokenId, TokenName, UserId};
use userhub_domain::services::NewToken;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::dto::rfc3339;
use crate::error::{ApiError, FieldError, HttpError};
use crate::extract::{Client, CurrentUser, HashBudgetSpent, PathId, ValidJson};
use crate::state::ApiState;
use crate::validation::{self, Fields, IntoDomain, Issue};

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource(
        "/api/auth/tokens",
        [
            (Method::GET, web::to(list)),
            (Method::POST, web::to(create)),
        ],
    ))
    .service(super::resource(
        "/api/auth/tokens/{id}",
        [(Method::DELETE, web::to(revoke))],
    ))
    .service(super::resource(
        "/api/users/{id}/tokens",
        [(Method::GET, web::to(list_for))],
    ))
    .service(super::resource(
        "/api/users/{id}/tokens/{token_id}",
        [(Method::DELETE, web::to(revoke_for))],
    ));
}

/// What a personal access token may do.
#[derive(ToSchema)]
#[allow(dead_code)] // only its schema is used
pub(crate) enum ScopeName {
    #[schema(rename = "profile:read")]
    ProfileRead,
    #[schema(rename = "users:read")]
    UsersRead,
    #[schema(rename = "users:write")]
    UsersWrite,
    #[schema(rename = "audit:read")]
    AuditRead,
}

/// A personal access token, never its secret.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"id": "0193b5e2-7c1a-7d3e-9f00-5a1b2c3d4e61", "name": "nightly export", "scopes": ["users:read"], "prefix": "uhp_3kTq", "created_at": "2026-12-07T10:00:00Z", "expires_at": "2027-01-06T10:00:00Z", "last_used_at": null}))]
pub(crate) struct TokenResponse {
    #[schema(format = Uuid)]
    id: String,
    name: String,
    /// What it may do.
    #[schema(value_type = Vec<ScopeName>)]
    scopes: Vec<&'static str>,
    /// Its first characters, to recognise it by.
    prefix: String,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    expires_at: String,
    /// When it was last used, to the minute.
    #[schema(format = DateTime, required = true)]
    last_used_at: Option<String>,
}

impl From<PersonalToken> for TokenResponse {
    fn from(token: PersonalToken) -> Self {
        Self {
            id: token.id.to_string(),
            name: token.name.as_str().to_owned(),
            scopes: token.scopes.iter().map(Scope::as_str).collect(),
            prefix: token.prefix,
            created_at: rfc3339(token.created_at),
            expires_at: rfc3339(token.expires_at),
            last_used_at: token.last_used_at.map(rfc3339),
        }
    }
}

/// 200 with `tokens` as the listings show them.
fn listing(tokens: Vec<PersonalToken>) -> HttpResponse {
    HttpResponse::Ok().json(
        tokens
            .into_iter()
            .map(TokenResponse::from)
            .collect::<Vec<_>>(),
    )
}

/// A new token: what the listing shows, and the token itself, this once.
#[derive(Serialize, ToSchema)]
pub(crate) struct CreatedTokenResponse {
    #[serde(flatten)]
    token: TokenResponse,
    /// `uhp_…`: send it as `Authorization: Bearer`. It is never shown again.
    #[schema(format = Password)]
    #[serde(rename = "token")]
    secret: String,
}

/// A token to make.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"name": "nightly export", "scopes": ["users:read"], "expires_in_days": 30, "current_password": "correct horse battery staple"}))]
pub(crate) struct CreateTokenRequest {
    /// 1–100 characters, to tell tokens apart.
    #[schema(min_length = 1, max_length = 100)]
    name: String,
    /// At least one of `profile:read`, `users:read`, `users:write`, `audit:read`.
    #[schema(min_items = 1, value_type = Vec<ScopeName>)]
    scopes: Vec<String>,
    /// 1 to `PAT_MAX_DAYS` (365 by default); 30 when absent.
    #[schema(minimum = 1)]
    expires_in_days: Option<i64>,
    /// The caller's password: a stolen access token mints no token.
    #[schema(min_length = 1, max_length = 1024, format = Password)]
    current_password: String,
}

impl IntoDomain for CreateTokenRequest {
    type Domain = NewToken;

    fn into_domain(self, fields: &mut Fields) -> Option<NewToken> {
        let name = fields.take(
            "name",
            validation::parse_text(self.name, |raw| {
                TokenName::parse(raw)
                    .map_err(|why| Issue::new("value_error", format!("Value error, {why}")))
            }),
        );
        let scopes = fields.take("scopes", scopes(&self.scopes));
        let current = fields.take(
            "current_password",
            validation::required(1024)(self.current_password),
        );
        Some(NewToken {
            name: name?,
            scopes: scopes?,
            expires_in_days: self.expires_in_days,
            current_password: SecretString::from(current?),
        })
    }
}

fn scopes(names: &[String]) -> Result<Scopes, Issue> {
    if names.is_empty() {
        return Err(Issue::new(
            "too_short",
            "List should have at least 1 item after validation, not 0",
        ));
    }
    Scopes::parse(names.iter().map(String::as_str)).map_err(|unknown| {
        let known: Vec<_> = Scope::ALL
            .iter()
            .map(|s| format!("'{}'", s.as_str()))
            .collect();
        Issue::new(
            "literal_error",
            format!("Input should be {}, not {unknown:?}", known.join(", ")),
        )
    })
}

/// The caller's live tokens.
#[utoipa::path(
    get,
    path = "/api/auth/tokens",
    operation_id = "list_tokens",
    tag = "tokens",
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "Live tokens, newest first", body = Vec<TokenResponse>),
        (status = 403, description = "A personal access token cannot list tokens", body = HttpError),
    )
)]
pub(crate) async fn list(
    state: web::Data<ApiState>,
    caller: CurrentUser,
) -> Result<HttpResponse, ApiError> {
    let tokens = state.tokens.list(&caller.0).await?;
    Ok(listing(tokens))
}

/// Makes a token for the caller, who proves their password.
#[utoipa::path(
    post,
    path = "/api/auth/tokens",
    operation_id = "create_token",
    tag = "tokens",
    request_body = CreateTokenRequest,
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 201, description = "The token; `token` is shown only here", body = CreatedTokenResponse),
        (status = 400, description = "Wrong password (counted as a failed login)", body = HttpError,
            example = json!({"detail": "Incorrect password"})),
        (status = 403, description = "A personal access token cannot make tokens", body = HttpError),
        (status = 409, description = "50 live tokens already", body = HttpError),
        (status = 422, description = "An unknown scope, or `expires_in_days` out of range", body = crate::error::HttpValidationError),
        (status = 429, response = crate::openapi::TooManyRequests),
    )
)]
pub(crate) async fn create(
    state: web::Data<ApiState>,
    _budget: HashBudgetSpent,
    caller: CurrentUser,
    body: ValidJson<CreateTokenRequest>,
    client: Client,
) -> Result<HttpResponse, ApiError> {
    state.spend_write_budget(caller.0.user.id).await?;
    let (token, secret) = state.tokens.create(&caller.0, body.0, &client.0).await?;
    Ok(HttpResponse::Created()
        .insert_header(actix_web::http::header::CacheControl(vec![
            actix_web::http::header::CacheDirective::NoStore,
        ]))
        .json(CreatedTokenResponse {
            token: token.into(),
            secret: secret.expose_secret().to_owned(),
        }))
}

/// Revokes one of the caller's tokens (a personal access token may revoke itself).
#[utoipa::path(
    delete,
    path = "/api/auth/tokens/{id}",
    operation_id = "revoke_token",
    tag = "tokens",
    params(("id" = String, Path, format = Uuid, description = "The token's id")),
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 204, description = "Revoked: it stops working at once"),
        (status = 404, description = "Not one of the caller's tokens (or, to a personal access token, not itself)", body = HttpError),
    )
)]
pub(crate) async fn revoke(
    state: web::Data<ApiState>,
    caller: CurrentUser,
    id: PathId<TokenId>,
    client: Client,
) -> Result<HttpResponse, ApiError> {
    state.tokens.revoke(&caller.0, id.0, &client.0).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A user's live tokens (superusers only).
#[utoipa::path(
    get,
    path = "/api/users/{id}/tokens",
    operation_id = "list_user_tokens",
    tag = "tokens",
    params(("id" = String, Path, format = Uuid, description = "The user's id")),
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "Live tokens, newest first", body = Vec<TokenResponse>),
        (status = 403, description = "The caller is not a superuser", body = HttpError),
        (status = 404, description = "No such user", body = HttpError),
    )
)]
pub(crate) async fn list_for(
    state: web::Data<ApiState>,
    caller: CurrentUser,
    id: PathId<UserId>,
) -> Result<HttpResponse, ApiError> {
    let tokens = state.tokens.list_for(&caller.0, id.0).await?;
    Ok(listing(tokens))
}

/// Revokes a user's token (superusers only).
#[utoipa::path(
    delete,
    path = "/api/users/{id}/tokens/{token_id}",
    operation_id = "revoke_user_token",
    tag = "tokens",
    params(
        ("id" = String, Path, format = Uuid, description = "The user's id"),
        ("token_id" = String, Path, format = Uuid, description = "The token's id"),
    ),
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 204, description = "Revoked"),
        (status = 403, description = "The caller is not a superuser", body = HttpError),
        (status = 404, description = "No such user, or no such token of theirs", body = HttpError),
    )
)]
pub(crate) async fn revoke_for(
    state: web::Data<ApiState>,
    req: HttpRequest,
    caller: CurrentUser,
    id: PathId<UserId>,
    client: Client,
) -> Result<HttpResponse, ApiError> {
    let token = req
        .match_info()
        .get("token_id")
        .and_then(|raw| Uuid::parse_str(raw).ok())
        .map(TokenId::from_uuid)
        .ok_or_else(|| {
            ApiError::Validation(vec![FieldError::new(
                "uuid_parsing",
                "path",
                "token_id",
                "Input should be a valid UUID",
            )])
        })?;
    state
        .tokens
        .revoke_for(&caller.0, id.0, token, &client.0)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
