//! `/api/auth`: registration, login, refresh and the current user.

use actix_web::http::header::{self, CacheControl, CacheDirective};
use actix_web::middleware::from_fn;
use actix_web::{HttpRequest, HttpResponse, web};
use garde::Validate;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use userhub_domain::model::{Email, FullName, Password, UserView, Username};
use userhub_domain::services::{IssuedTokens, LoginRequest, RegisterUser};

use super::users::{UserResponse, created};
use crate::app::ApiState;
use crate::error::ApiError;
use crate::extract::{CurrentUser, JsonOrForm, ValidJson, client_info};
use crate::{middleware, validation};

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    let limited = || from_fn(middleware::auth_rate_limit);
    cfg.service(
        super::resource("/api/auth/register")
            .wrap(limited())
            .route(web::post().to(register)),
    )
    .service(
        super::resource("/api/auth/login")
            .wrap(limited())
            .route(web::post().to(login)),
    )
    .service(
        super::resource("/api/auth/refresh")
            .wrap(limited())
            .route(web::post().to(refresh)),
    )
    .service(super::resource("/api/auth/me").route(web::get().to(me)));
}

/// Longest login name or password looked at; both are checked later anyway.
const MAX_CREDENTIAL: usize = 1024;

#[derive(Deserialize, Validate)]
struct RegisterRequest {
    #[garde(custom(validation::email))]
    email: String,
    #[garde(custom(validation::username))]
    username: String,
    #[garde(custom(validation::new_password(Some(&self.username), Some(&self.email))))]
    password: String,
    #[garde(inner(custom(validation::full_name)))]
    full_name: Option<String>,
}

impl RegisterRequest {
    fn try_into_domain(self) -> Result<RegisterUser, ApiError> {
        let fields = NewUserFields::parse(
            &self.email,
            &self.username,
            self.password,
            self.full_name.as_deref(),
        )?;
        Ok(RegisterUser {
            email: fields.email,
            username: fields.username,
            password: fields.password,
            full_name: fields.full_name,
        })
    }
}

/// The fields every new user is made of, as domain values.
pub(super) struct NewUserFields {
    pub(super) email: Email,
    pub(super) username: Username,
    pub(super) password: Password,
    pub(super) full_name: Option<FullName>,
}

impl NewUserFields {
    /// Converts fields that passed their garde rules.
    pub(super) fn parse(
        email: &str,
        username: &str,
        password: String,
        full_name: Option<&str>,
    ) -> Result<Self, ApiError> {
        Ok(Self {
            email: Email::parse(email).map_err(|e| invalid("email", e))?,
            username: Username::parse(username).map_err(|e| invalid("username", e))?,
            password: Password::new(SecretString::from(password))
                .map_err(|e| invalid("password", e))?,
            full_name: full_name
                .map(FullName::parse)
                .transpose()
                .map_err(|e| invalid("full_name", e))?,
        })
    }
}

/// A rule that garde already checked failed again in the domain.
pub(super) fn invalid(field: &str, err: impl ToString) -> ApiError {
    let msg = err.to_string();
    ApiError::field(validation::kind_of(&msg), "body", field, msg)
}

async fn register(
    state: web::Data<ApiState>,
    body: ValidJson<RegisterRequest>,
) -> Result<HttpResponse, ApiError> {
    let user = state.auth.register(body.0.try_into_domain()?).await?;
    Ok(created(UserView::own(user)))
}

#[derive(Deserialize, Validate)]
struct LoginJson {
    #[garde(custom(validation::required(MAX_CREDENTIAL)))]
    email: String,
    #[garde(custom(validation::required(MAX_CREDENTIAL)))]
    password: String,
}

/// The OAuth2 password flow's form; `username` may hold an e-mail.
#[derive(Deserialize, Validate)]
struct LoginForm {
    #[garde(custom(validation::required(MAX_CREDENTIAL)))]
    username: String,
    #[garde(custom(validation::required(MAX_CREDENTIAL)))]
    password: String,
    #[garde(inner(custom(grant_type_rule)))]
    grant_type: Option<String>,
    #[garde(skip)]
    #[allow(dead_code)]
    scope: Option<String>,
}

fn grant_type_rule(value: &str, _: &()) -> garde::Result {
    if value == "password" {
        Ok(())
    } else {
        Err(garde::Error::new(
            "String should match pattern '^password$'",
        ))
    }
}

async fn login(
    state: web::Data<ApiState>,
    req: HttpRequest,
    body: JsonOrForm<LoginJson, LoginForm>,
) -> Result<HttpResponse, ApiError> {
    let (login, password) = match body {
        JsonOrForm::Json(json) => (json.email, json.password),
        JsonOrForm::Form(form) => (form.username, form.password),
    };
    let request = LoginRequest {
        login,
        password: SecretString::from(password),
        client: client_info(&req, state.trust_forwarded_for),
    };
    let tokens = state.auth.login(request).await?;
    Ok(token_response(&tokens))
}

#[derive(Deserialize, Validate)]
struct RefreshRequest {
    #[garde(custom(validation::required(MAX_CREDENTIAL)))]
    refresh_token: String,
}

async fn refresh(
    state: web::Data<ApiState>,
    body: ValidJson<RefreshRequest>,
) -> Result<HttpResponse, ApiError> {
    let tokens = state.auth.refresh(&body.0.refresh_token).await?;
    Ok(token_response(&tokens))
}

async fn me(caller: CurrentUser) -> HttpResponse {
    HttpResponse::Ok().json(UserResponse::from(UserView::own(caller.0.user)))
}

#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    refresh_token: &'a str,
    token_type: &'static str,
    expires_in: i64,
}

fn token_response(tokens: &IssuedTokens) -> HttpResponse {
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
