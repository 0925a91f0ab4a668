//! The caller's own sessions: logout, logout everywhere, listing, ending
//! one, and changing the password.

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use userhub_domain::model::{Password, SessionId, SessionSummary};
use utoipa::ToSchema;

use crate::dto::{new_password, rfc3339};
use crate::error::{ApiError, HttpError};
use crate::extract::{Client, CurrentUser, HashBudgetSpent, PathId, ValidJson, client_info};
use crate::state::ApiState;
use crate::validation::{self, Fields, IntoDomain};

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource(
        "/api/auth/logout",
        [(Method::POST, web::to(logout))],
    ))
    .service(super::resource(
        "/api/auth/logout-all",
        [(Method::POST, web::to(logout_all))],
    ))
    .service(super::resource(
        "/api/auth/sessions",
        [(Method::GET, web::to(list))],
    ))
    .service(super::resource(
        "/api/auth/sessions/{id}",
        [(Method::DELETE, web::to(end))],
    ))
    .service(super::resource(
        "/api/auth/change-password",
        [(Method::POST, web::to(change_password))],
    ));
}

/// Ends the caller's session.
#[utoipa::path(
    post,
    path = "/api/auth/logout",
    operation_id = "logout",
    tag = "sessions",
    security(("bearer" = []), ("oauth2" = [])),
    responses((status = 204, description = "The session's tokens stop working at once"))
)]
pub(crate) async fn logout(
    state: web::Data<ApiState>,
    caller: CurrentUser,
    client: Client,
) -> Result<HttpResponse, ApiError> {
    state.sessions.logout(&caller.0, &client.0).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Ends every session of the caller.
#[utoipa::path(
    post,
    path = "/api/auth/logout-all",
    operation_id = "logout_all",
    tag = "sessions",
    security(("bearer" = []), ("oauth2" = [])),
    responses((status = 204, description = "Every session of the user ended"))
)]
pub(crate) async fn logout_all(
    state: web::Data<ApiState>,
    caller: CurrentUser,
    client: Client,
) -> Result<HttpResponse, ApiError> {
    state.sessions.logout_all(&caller.0, &client.0).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// One live session.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"id": "0193b5e2-7c1a-7d3e-9f00-5a1b2c3d4e60", "created_at": "2026-11-25T10:00:00Z", "last_used_at": "2026-11-25T10:30:00Z", "user_agent": "Mozilla/5.0", "ip": "203.0.113.7", "current": true}))]
pub(crate) struct SessionResponse {
    #[schema(format = Uuid)]
    id: String,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    last_used_at: String,
    #[schema(required = true)]
    user_agent: Option<String>,
    #[schema(required = true)]
    ip: Option<String>,
    /// Whether the caller's token belongs to this session.
    current: bool,
}

impl From<SessionSummary> for SessionResponse {
    fn from(s: SessionSummary) -> Self {
        Self {
            id: s.session.id.to_string(),
            created_at: rfc3339(s.session.created_at),
            last_used_at: rfc3339(s.session.last_used_at),
            user_agent: s.session.client.user_agent,
            ip: s.session.client.ip,
            current: s.current,
        }
    }
}

/// 200 with `sessions` as the listings show them.
pub(crate) fn listing(sessions: Vec<SessionSummary>) -> HttpResponse {
    HttpResponse::Ok().json(
        sessions
            .into_iter()
            .map(SessionResponse::from)
            .collect::<Vec<_>>(),
    )
}

/// The caller's live sessions.
#[utoipa::path(
    get,
    path = "/api/auth/sessions",
    operation_id = "list_sessions",
    tag = "sessions",
    security(("bearer" = []), ("oauth2" = [])),
    responses((status = 200, description = "Live sessions, newest first", body = Vec<SessionResponse>))
)]
pub(crate) async fn list(
    state: web::Data<ApiState>,
    caller: CurrentUser,
) -> Result<HttpResponse, ApiError> {
    let sessions = state.sessions.sessions(&caller.0).await?;
    Ok(listing(sessions))
}

/// Ends one of the caller's sessions.
#[utoipa::path(
    delete,
    path = "/api/auth/sessions/{id}",
    operation_id = "end_session",
    tag = "sessions",
    params(("id" = String, Path, format = Uuid, description = "The session's id")),
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 204, description = "The session ended"),
        (status = 404, description = "Not one of the caller's live sessions", body = HttpError),
    )
)]
pub(crate) async fn end(
    state: web::Data<ApiState>,
    caller: CurrentUser,
    id: PathId<SessionId>,
    client: Client,
) -> Result<HttpResponse, ApiError> {
    state
        .sessions
        .end_session(&caller.0, id.0, &client.0)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The current password and its replacement.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"current_password": "correct horse battery staple", "new_password": "purple monkey dishwasher 42"}))]
pub(crate) struct ChangePasswordRequest {
    #[schema(min_length = 1, max_length = 1024, pattern = "^[^\\x00]*$", format = Password)]
    current_password: String,
    // The personal-information rule needs the caller's details: the domain checks it.
    /// 8–72 bytes, strong enough, without the username or e-mail.
    #[schema(min_length = 8, max_length = 72, pattern = "^[^\\x00]*$", format = Password)]
    new_password: String,
}

impl IntoDomain for ChangePasswordRequest {
    /// The current password and the new one.
    type Domain = (SecretString, Password);

    fn into_domain(self, fields: &mut Fields) -> Option<Self::Domain> {
        let current = fields.take(
            "current_password",
            validation::required(1024)(self.current_password),
        );
        let new = fields.take("new_password", new_password(self.new_password, None, None));
        Some((SecretString::from(current?), new?))
    }
}

/// Changes the caller's password and ends every other session.
#[utoipa::path(
    post,
    path = "/api/auth/change-password",
    operation_id = "change_password",
    tag = "sessions",
    request_body = ChangePasswordRequest,
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 204, description = "Changed; the caller's session stays"),
        (status = 400, description = "Wrong current password", body = HttpError,
            example = json!({"detail": "Incorrect password"})),
        (status = 429, response = crate::openapi::TooManyRequests),
    )
)]
pub(crate) async fn change_password(
    _budget: HashBudgetSpent,
    state: web::Data<ApiState>,
    req: HttpRequest,
    caller: CurrentUser,
    body: ValidJson<ChangePasswordRequest>,
) -> Result<HttpResponse, ApiError> {
    let (current, new) = body.0;
    let client = client_info(&req, state.trust_forwarded_for);
    state
        .auth
        .change_password(&caller.0, &client, &current, new)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
