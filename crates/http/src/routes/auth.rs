//! `/api/auth`: registration, login, refresh and the current user.

use actix_web::http::Method;
use actix_web::http::header::{self, CacheControl, CacheDirective};
use actix_web::middleware::from_fn;
use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use userhub_domain::model::UserView;
use userhub_domain::services::{IssuedTokens, LoginError, LoginRequest, RegisterUser};
use utoipa::ToSchema;

use crate::dto::{UserResponse, created, new_user, user_response};
use crate::error::ApiError;
use crate::error::{HttpError, OAuthError};
use crate::extract::{Client, CurrentUser, JsonOrForm, ValidJson, client_info};
use crate::openapi::TooManyRequests;
use crate::state::ApiState;
use crate::validation::{Fields, IntoDomain};
use crate::{metrics, middleware, validation};

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    let limited = || from_fn(middleware::auth_rate_limit);
    cfg.service(
        super::resource("/api/auth/register", [(Method::POST, web::to(register))]).wrap(limited()),
    )
    .service(super::resource("/api/auth/login", [(Method::POST, web::to(login))]).wrap(limited()))
    .service(
        super::resource("/api/auth/refresh", [(Method::POST, web::to(refresh))]).wrap(limited()),
    )
    .service(super::resource(
        "/api/auth/me",
        [(Method::GET, web::to(me))],
    ));
}

/// Longest login name or password looked at; both are checked later anyway.
const MAX_CREDENTIAL: usize = 1024;

crate::dto::new_user_request! {
    /// A new account.
    #[schema(example = json!({"email": "ada@example.com", "username": "ada", "password": "correct horse battery staple", "full_name": "Ada Lovelace"}))]
    RegisterRequest {}
}

impl IntoDomain for RegisterRequest {
    type Domain = RegisterUser;

    fn into_domain(self, fields: &mut Fields) -> Option<RegisterUser> {
        new_user(
            fields,
            self.email,
            self.username,
            self.password,
            self.full_name.as_deref(),
        )
    }
}

/// Creates an account and returns it.
#[utoipa::path(
    post,
    path = "/api/auth/register",
    operation_id = "register",
    tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "The new user, as its owner sees it", body = UserResponse,
            headers(("Location" = String, description = "The user's URL"))),
        (status = 409, description = "Email or username taken", body = HttpError,
            example = json!({"detail": "Email already registered"})),
        (status = 429, response = TooManyRequests),
    )
)]
pub(crate) async fn register(
    state: web::Data<ApiState>,
    body: ValidJson<RegisterRequest>,
    client: Client,
) -> Result<HttpResponse, ApiError> {
    let user = state.auth.register(body.0, &client.0).await?;
    metrics::record_registration("register");
    Ok(created(UserView::own(user)))
}

/// Credentials as JSON; `email` may also hold the username.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"email": "ada@example.com", "password": "correct horse battery staple"}))]
pub(crate) struct LoginJson {
    /// The account's e-mail address or username.
    #[schema(min_length = 1, max_length = 1024, pattern = "^[^\\x00]*$")]
    email: String,
    #[schema(min_length = 1, max_length = 1024, pattern = "^[^\\x00]*$", format = Password)]
    password: String,
}

/// The OAuth2 password flow's form; `username` may hold an e-mail.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"username": "ada@example.com", "password": "correct horse battery staple", "grant_type": "password"}))]
pub(crate) struct LoginForm {
    /// The account's e-mail address or username.
    #[schema(min_length = 1, max_length = 1024, pattern = "^[^\\x00]*$")]
    username: String,
    #[schema(min_length = 1, max_length = 1024, pattern = "^[^\\x00]*$", format = Password)]
    password: String,
    /// `password` when sent.
    #[schema(pattern = "^password$")]
    grant_type: Option<String>,
    /// Accepted and ignored.
    #[allow(dead_code)]
    scope: Option<String>,
}

impl IntoDomain for LoginJson {
    type Domain = Self;

    fn into_domain(self, fields: &mut Fields) -> Option<Self> {
        let email = fields.take("email", credential(self.email));
        let password = fields.take("password", credential(self.password));
        Some(Self {
            email: email?,
            password: password?,
        })
    }
}

impl IntoDomain for LoginForm {
    type Domain = Self;

    fn into_domain(self, fields: &mut Fields) -> Option<Self> {
        let username = fields.take("username", credential(self.username));
        let password = fields.take("password", credential(self.password));
        let grant_type = fields.optional(
            "grant_type",
            self.grant_type,
            validation::literal("password"),
        );
        Some(Self {
            username: username?,
            password: password?,
            grant_type: grant_type?,
            scope: self.scope,
        })
    }
}

/// A login name, password or token: present, bounded, NUL-free.
fn credential(value: String) -> Result<String, validation::Issue> {
    validation::required(MAX_CREDENTIAL)(value)
}

/// Exchanges credentials for an access token and a refresh token.
#[utoipa::path(
    post,
    path = "/api/auth/login",
    operation_id = "login",
    tag = "auth",
    request_body(content(
        (LoginJson = "application/json"),
        (LoginForm = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "A new session's tokens", body = TokenResponse,
            headers(("Cache-Control" = String, description = "`no-store`"))),
        (status = 401, description = "Unknown account, wrong password or deactivated account, alike",
            body = OAuthError,
            headers(("WWW-Authenticate" = String, description = "`Bearer`")),
            example = json!({"detail": "Incorrect email or password", "error": "invalid_grant", "error_description": "Incorrect email or password"})),
        (status = 403, description = "The password was right, but a second factor is required (`error` `mfa_required`, with the `mfa_token` for `/api/auth/login/mfa`, and `passkey` options when the user has passkeys), or `REQUIRE_VERIFIED_EMAIL` is on and the address is not verified (`error` `invalid_grant`)",
            body = crate::error::MfaRequiredError,
            example = json!({"detail": "MFA required", "error": "mfa_required", "error_description": "The password is right; send a code of the second factor with mfa_token to /api/auth/login/mfa", "mfa_token": "3q2-7wAAAAB0aGlzIGlzIG5vdCBhIHJlYWwgdG9rZW4"})),
        (status = 429, response = TooManyRequests),
    )
)]
pub(crate) async fn login(
    state: web::Data<ApiState>,
    req: HttpRequest,
    body: Result<JsonOrForm<LoginJson, LoginForm>, ApiError>,
) -> Result<HttpResponse, ApiError> {
    let (login, password) = match body.map_err(ApiError::for_oauth)? {
        JsonOrForm::Json(json) => (json.email, json.password),
        JsonOrForm::Form(form) => (form.username, form.password),
    };
    let request = LoginRequest {
        login,
        password: SecretString::from(password),
        client: client_info(&req, state.trust_forwarded_for),
    };
    let outcome = state.auth.login(request).await;
    match &outcome {
        Ok(_) => metrics::record_login("success"),
        Err(LoginError::InvalidCredentials) => metrics::record_login("failure"),
        Err(LoginError::Locked { .. }) => metrics::record_login("locked"),
        Err(LoginError::EmailNotVerified) => metrics::record_login("unverified"),
        Err(LoginError::MfaRequired { .. }) => metrics::record_login("mfa_required"),
        Err(LoginError::Port(_)) => {}
    }
    let tokens = match outcome {
        Ok(tokens) => tokens,
        // The user's passkeys may answer the second step instead of a code.
        Err(LoginError::MfaRequired { mfa_token, user }) => {
            return Err(super::passkeys::sign_in::mfa_required(&state, &mfa_token, user).await);
        }
        Err(err) => return Err(ApiError::from(err).for_oauth()),
    };
    Ok(token_response(&tokens))
}

/// A refresh token to spend.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"refresh_token": "3q2-7wAAAAB0aGlzIGlzIG5vdCBhIHJlYWwgdG9rZW4"}))]
pub(crate) struct RefreshRequest {
    #[schema(min_length = 1, max_length = 1024, pattern = "^[^\\x00]*$")]
    refresh_token: String,
}

/// RFC 6749 §6: a refresh as a form, as OAuth2 client libraries send it.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"grant_type": "refresh_token", "refresh_token": "3q2-7wAAAAB0aGlzIGlzIG5vdCBhIHJlYWwgdG9rZW4"}))]
pub(crate) struct RefreshForm {
    /// Always `refresh_token`.
    #[schema(pattern = "^refresh_token$")]
    grant_type: String,
    #[schema(min_length = 1, max_length = 1024, pattern = "^[^\\x00]*$")]
    refresh_token: String,
    /// Accepted and ignored.
    #[allow(dead_code)]
    scope: Option<String>,
}

impl IntoDomain for RefreshRequest {
    type Domain = Self;

    fn into_domain(self, fields: &mut Fields) -> Option<Self> {
        let refresh_token = fields.take("refresh_token", credential(self.refresh_token))?;
        Some(Self { refresh_token })
    }
}

impl IntoDomain for RefreshForm {
    type Domain = Self;

    fn into_domain(self, fields: &mut Fields) -> Option<Self> {
        let grant_type = fields.take(
            "grant_type",
            validation::literal("refresh_token")(self.grant_type),
        );
        let refresh_token = fields.take("refresh_token", credential(self.refresh_token));
        Some(Self {
            grant_type: grant_type?,
            refresh_token: refresh_token?,
            scope: self.scope,
        })
    }
}

/// Spends a refresh token for a new pair in the same session.
#[utoipa::path(
    post,
    path = "/api/auth/refresh",
    operation_id = "refresh",
    tag = "auth",
    request_body(content(
        (RefreshRequest = "application/json"),
        (RefreshForm = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "The session's new tokens; the old refresh token is spent",
            body = TokenResponse, headers(("Cache-Control" = String, description = "`no-store`"))),
        (status = 401, description = "Unknown, expired, revoked or already-spent token",
            body = OAuthError,
            headers(("WWW-Authenticate" = String, description = "`Bearer`")),
            example = json!({"detail": "Invalid or expired refresh token", "error": "invalid_grant", "error_description": "Invalid or expired refresh token"})),
        (status = 403, description = "`REQUIRE_VERIFIED_EMAIL` is on and the session's user is not verified",
            body = OAuthError,
            example = json!({"detail": "Email not verified", "error": "invalid_grant", "error_description": "Email not verified"})),
        (status = 429, response = TooManyRequests),
    )
)]
pub(crate) async fn refresh(
    state: web::Data<ApiState>,
    body: Result<JsonOrForm<RefreshRequest, RefreshForm>, ApiError>,
    client: Client,
) -> Result<HttpResponse, ApiError> {
    let presented = match body.map_err(ApiError::for_oauth)? {
        JsonOrForm::Json(json) => json.refresh_token,
        JsonOrForm::Form(form) => form.refresh_token,
    };
    let tokens = state
        .sessions
        .refresh(&presented, &client.0)
        .await
        .map_err(|e| ApiError::from(e).for_oauth())?;
    Ok(token_response(&tokens))
}

/// The caller.
#[utoipa::path(
    get,
    path = "/api/auth/me",
    operation_id = "me",
    tag = "auth",
    security(("bearer" = []), ("oauth2" = [])),
    responses((status = 200, description = "The caller, as its owner sees it", body = UserResponse,
        headers(("ETag" = String, description = "The caller's version, for `If-Match`"))))
)]
pub(crate) async fn me(caller: CurrentUser) -> HttpResponse {
    user_response(UserView::own(caller.0.user))
}

/// A session's tokens.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"access_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30.c2lnbmF0dXJl", "refresh_token": "3q2-7wAAAAB0aGlzIGlzIG5vdCBhIHJlYWwgdG9rZW4", "token_type": "bearer", "expires_in": 1800}))]
pub(crate) struct TokenResponse<'a> {
    /// A JWT for `Authorization: Bearer`.
    access_token: &'a str,
    /// Opaque; spend it at `/api/auth/refresh`.
    refresh_token: &'a str,
    /// Always `bearer`.
    #[schema(pattern = "^bearer$")]
    token_type: &'static str,
    /// The access token's lifetime in seconds.
    #[schema(minimum = 1)]
    expires_in: i64,
}

pub(super) fn token_response(tokens: &IssuedTokens) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(CacheControl(vec![CacheDirective::NoStore]))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(TokenResponse {
            access_token: &tokens.access_token,
            refresh_token: tokens.refresh_token.expose_secret(),
            token_type: "bearer",
            expires_in: tokens.expires_in,
        })
}
