//! Sign-in with an OpenID provider (paths and error codes of fastapi-users'
//! OAuth router), linking a provider's account, and the caller's identities.

use actix_web::http::Method;
use actix_web::http::header::{self, CacheControl, CacheDirective};
use actix_web::middleware::from_fn;
use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use userhub_domain::model::UserView;
use userhub_domain::ports::Authorization;
use userhub_domain::services::OAuthCallback;
use utoipa::{IntoParams, ToSchema};

use super::auth::token_response;
use crate::dto::user_response;
use crate::error::{ApiError, HttpError};
use crate::extract::{Client, CurrentUser, HashBudgetSpent, ValidJson, ValidQuery};
use crate::middleware;
use crate::openapi::TooManyRequests;
use crate::state::ApiState;
use crate::validation::{self, Fields, IntoDomain, Issue};

/// The cookie that binds a `state` to the browser that asked for it.
pub(crate) const STATE_COOKIE: &str = "userhub_oauth_state";
/// Where the cookie is sent: the callbacks, and nothing else.
const COOKIE_PATH: &str = "/api/auth/oauth";
/// Longest code or state looked at.
const MAX_PARAM: usize = 2048;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    let limited = || from_fn(middleware::auth_rate_limit);
    cfg.service(
        super::resource(
            "/api/auth/oauth/{provider}/authorize",
            [(Method::GET, web::to(authorize))],
        )
        .wrap(limited()),
    )
    .service(
        super::resource(
            "/api/auth/oauth/{provider}/callback",
            [(Method::GET, web::to(callback))],
        )
        .wrap(limited())
        .wrap(from_fn(crate::console::callback_page)),
    )
    .service(super::resource(
        "/api/auth/oauth/{provider}/associate/authorize",
        [
            (Method::GET, web::to(associate_authorize)),
            (Method::POST, web::to(associate_authorize_with_password)),
        ],
    ))
    .service(
        super::resource(
            "/api/auth/oauth/{provider}/associate/callback",
            [(Method::GET, web::to(associate_callback))],
        )
        .wrap(from_fn(crate::console::callback_page)),
    );
}

/// Where to send the browser.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"authorization_url": "https://accounts.example.com/authorize?response_type=code&client_id=userhub&state=…&code_challenge=…&code_challenge_method=S256&redirect_uri=…&scope=openid+email+profile&nonce=…"}))]
pub(crate) struct AuthorizationResponse {
    /// The provider's authorization URL: code flow, PKCE (S256), `state`, `nonce`.
    authorization_url: String,
}

/// The scopes to ask the provider for.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuthorizeQuery {
    /// Scopes, space-separated; the provider's configured scopes when
    /// absent. `openid` is always asked for.
    #[param(max_length = 1024, pattern = "^[\\x21\\x23-\\x5B\\x5D-\\x7E ]*$")]
    scopes: Option<String>,
}

impl IntoDomain for AuthorizeQuery {
    type Domain = Option<String>;

    fn into_domain(self, fields: &mut Fields) -> Option<Self::Domain> {
        fields.optional("scopes", self.scopes, |raw: String| {
            let scope_char =
                |c: char| matches!(c, '\x21' | '\x23'..='\x5B' | '\x5D'..='\x7E' | ' ');
            if raw.len() > 1024 {
                return Err(Issue::new(
                    "string_too_long",
                    "String should have at most 1024 characters",
                ));
            }
            if !raw.chars().all(scope_char) {
                return Err(Issue::new(
                    "string_pattern_mismatch",
                    "Scopes are RFC 6749 scope tokens separated by spaces",
                ));
            }
            Ok(raw)
        })
    }
}

/// What the provider sent back to the redirect URI.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct CallbackQuery {
    /// The authorization code.
    #[param(min_length = 1, max_length = 2048, pattern = "^[^\\x00]*$")]
    code: String,
    /// The `state` of the authorization URL, unchanged.
    #[param(min_length = 1, max_length = 2048, pattern = "^[^\\x00]*$")]
    state: String,
}

impl IntoDomain for CallbackQuery {
    type Domain = (String, String);

    fn into_domain(self, fields: &mut Fields) -> Option<Self::Domain> {
        let code = fields.take("code", validation::required(MAX_PARAM)(self.code));
        let state = fields.take("state", validation::required(MAX_PARAM)(self.state));
        Some((code?, state?))
    }
}

pub(super) fn provider_of(req: &HttpRequest) -> String {
    req.match_info()
        .get("provider")
        .unwrap_or_default()
        .to_owned()
}

/// The browser's binding cookie, if it sent one.
fn binding_of(req: &HttpRequest) -> Option<String> {
    let header = req.headers().get(header::COOKIE)?.to_str().ok()?;
    header.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name == STATE_COOKIE && !value.is_empty()).then(|| value.to_owned())
    })
}

fn callback_of<'a>(
    provider: &'a str,
    code: &'a str,
    state: &'a str,
    binding: &'a Option<String>,
    client: &'a Client,
) -> OAuthCallback<'a> {
    OAuthCallback {
        provider,
        code,
        state,
        binding: binding.as_deref(),
        client: &client.0,
    }
}

fn cookie(state: &ApiState, value: &str, max_age: i64) -> String {
    let secure = if state.oauth_cookie_secure {
        "; Secure"
    } else {
        ""
    };
    format!(
        "{STATE_COOKIE}={value}; Path={COOKIE_PATH}; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}"
    )
}

fn authorization_response(state: &ApiState, authorization: &Authorization) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(CacheControl(vec![CacheDirective::NoStore]))
        .insert_header((
            header::SET_COOKIE,
            cookie(
                state,
                authorization.binding.expose_secret(),
                (authorization.expires_at - time::OffsetDateTime::now_utc())
                    .whole_seconds()
                    .max(1),
            ),
        ))
        .json(AuthorizationResponse {
            authorization_url: authorization.url.clone(),
        })
}

/// Starts a sign-in at `provider`: the URL to send the browser to, and an
/// HttpOnly, SameSite=Lax cookie that the `state` is bound to.
#[utoipa::path(
    get,
    path = "/api/auth/oauth/{provider}/authorize",
    operation_id = "oauth_authorize",
    tag = "oauth",
    params(("provider" = String, Path, description = "A configured provider"), AuthorizeQuery),
    responses(
        (status = 200, description = "The authorization URL; the binding cookie is set", body = AuthorizationResponse),
        (status = 404, description = "Unknown provider", body = HttpError),
        (status = 429, response = TooManyRequests),
        (status = 503, description = "The provider cannot be reached", body = HttpError),
    )
)]
pub(crate) async fn authorize(
    state: web::Data<ApiState>,
    req: HttpRequest,
    query: ValidQuery<AuthorizeQuery>,
) -> Result<HttpResponse, ApiError> {
    let authorization = state
        .oauth
        .oauth_authorize(&provider_of(&req), None, query.0)
        .await?;
    Ok(authorization_response(&state, &authorization))
}

/// The provider's redirect: signs the identity's user in, creating them on
/// a first sign-in. The answer is a login's: tokens, or the 403
/// `mfa_required` answer when the user has a second factor.
#[utoipa::path(
    get,
    path = "/api/auth/oauth/{provider}/callback",
    operation_id = "oauth_callback",
    tag = "oauth",
    params(("provider" = String, Path, description = "A configured provider"), CallbackQuery),
    responses(
        (status = 200, description = "A new session's tokens", body = crate::routes::auth::TokenResponse),
        (status = 400, description = "`OAUTH_INVALID_STATE`, `OAUTH_INVALID_CODE`, `OAUTH_INVALID_ID_TOKEN`, `OAUTH_NOT_AVAILABLE_EMAIL`, `OAUTH_USER_ALREADY_EXISTS` or `LOGIN_BAD_CREDENTIALS`",
            body = HttpError, example = json!({"detail": "OAUTH_INVALID_STATE"})),
        (status = 403, description = "The user has a second factor", body = crate::error::MfaRequiredError),
        (status = 404, description = "Unknown provider", body = HttpError),
        (status = 429, response = TooManyRequests),
        (status = 503, description = "The provider cannot be reached", body = HttpError),
    )
)]
pub(crate) async fn callback(
    state: web::Data<ApiState>,
    req: HttpRequest,
    client: Client,
    query: ValidQuery<CallbackQuery>,
) -> Result<HttpResponse, ApiError> {
    let (provider, binding, (code, raw_state)) = (provider_of(&req), binding_of(&req), query.0);
    let outcome = state
        .oauth
        .oauth_sign_in(callback_of(&provider, &code, &raw_state, &binding, &client))
        .await;
    crate::metrics::record_login(match &outcome {
        Ok(_) => "success",
        Err(userhub_domain::services::OAuthError::MfaRequired { .. }) => "mfa_required",
        Err(_) => "failure",
    });
    let tokens = match outcome {
        Ok(tokens) => tokens,
        // The user's passkeys may answer the second step instead of a code.
        Err(userhub_domain::services::OAuthError::MfaRequired { mfa_token, user }) => {
            return Err(super::passkeys::sign_in::mfa_required(&state, &mfa_token, user).await);
        }
        Err(err) => return Err(err.into()),
    };
    let mut response = token_response(&tokens);
    clear_cookie(&state, &mut response);
    Ok(response)
}

fn clear_cookie(state: &ApiState, response: &mut HttpResponse) {
    if let Ok(value) = header::HeaderValue::from_str(&cookie(state, "", 0)) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// Starts linking an account at `provider` to the caller, whose session
/// signed in within `REAUTH_WINDOW_MINUTES`; an older session proves the
/// password with POST instead.
#[utoipa::path(
    get,
    path = "/api/auth/oauth/{provider}/associate/authorize",
    operation_id = "oauth_associate_authorize",
    tag = "oauth",
    params(("provider" = String, Path, description = "A configured provider"), AuthorizeQuery),
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "The authorization URL; the binding cookie is set", body = AuthorizationResponse),
        (status = 403, description = "The session signed in too long ago: sign in again, or POST the password", body = crate::error::CodedError),
        (status = 404, description = "Unknown provider", body = HttpError),
        (status = 503, description = "The provider cannot be reached", body = HttpError),
    )
)]
pub(crate) async fn associate_authorize(
    state: web::Data<ApiState>,
    req: HttpRequest,
    caller: CurrentUser,
    client: Client,
    query: ValidQuery<AuthorizeQuery>,
) -> Result<HttpResponse, ApiError> {
    let authorization = state
        .oauth
        .oauth_authorize_link(&caller.0, &provider_of(&req), query.0, None, &client.0)
        .await?;
    Ok(authorization_response(&state, &authorization))
}

/// Starts linking an account at `provider` to the caller, who proves the
/// password (a wrong one counts as a failed login).
#[utoipa::path(
    post,
    path = "/api/auth/oauth/{provider}/associate/authorize",
    operation_id = "oauth_associate_authorize_with_password",
    tag = "oauth",
    params(("provider" = String, Path, description = "A configured provider"), AuthorizeQuery),
    request_body = crate::routes::mfa::PasswordRequest,
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "The authorization URL; the binding cookie is set", body = AuthorizationResponse),
        (status = 400, description = "Wrong password (counted as a failed login)", body = HttpError,
            example = json!({"detail": "Incorrect password"})),
        (status = 404, description = "Unknown provider", body = HttpError),
        (status = 429, response = TooManyRequests),
        (status = 503, description = "The provider cannot be reached", body = HttpError),
    )
)]
pub(crate) async fn associate_authorize_with_password(
    _budget: HashBudgetSpent,
    state: web::Data<ApiState>,
    req: HttpRequest,
    caller: CurrentUser,
    client: Client,
    query: ValidQuery<AuthorizeQuery>,
    body: ValidJson<crate::routes::mfa::PasswordRequest>,
) -> Result<HttpResponse, ApiError> {
    let authorization = state
        .oauth
        .oauth_authorize_link(
            &caller.0,
            &provider_of(&req),
            query.0,
            Some(&body.0),
            &client.0,
        )
        .await?;
    Ok(authorization_response(&state, &authorization))
}

/// The provider's redirect of a link: the account becomes a way in to the
/// caller, who started it.
#[utoipa::path(
    get,
    path = "/api/auth/oauth/{provider}/associate/callback",
    operation_id = "oauth_associate_callback",
    tag = "oauth",
    params(("provider" = String, Path, description = "A configured provider"), CallbackQuery),
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "The caller, with the identity linked", body = crate::dto::UserResponse),
        (status = 400, description = "`OAUTH_INVALID_STATE` (also a state of another user), `OAUTH_INVALID_CODE` or `OAUTH_INVALID_ID_TOKEN`",
            body = HttpError, example = json!({"detail": "OAUTH_INVALID_STATE"})),
        (status = 404, description = "Unknown provider", body = HttpError),
        (status = 409, description = "The identity is linked to another account, or the caller has another at this provider", body = HttpError),
        (status = 429, response = TooManyRequests),
        (status = 503, description = "The provider cannot be reached", body = HttpError),
    )
)]
pub(crate) async fn associate_callback(
    state: web::Data<ApiState>,
    req: HttpRequest,
    caller: CurrentUser,
    client: Client,
    query: ValidQuery<CallbackQuery>,
) -> Result<HttpResponse, ApiError> {
    state.spend_write_budget(caller.0.user.id).await?;
    let (provider, binding, (code, raw_state)) = (provider_of(&req), binding_of(&req), query.0);
    let user = state
        .oauth
        .oauth_associate(
            callback_of(&provider, &code, &raw_state, &binding, &client),
            caller.0.user.id,
        )
        .await?;
    let mut response = user_response(UserView::own(user));
    clear_cookie(&state, &mut response);
    Ok(response)
}
