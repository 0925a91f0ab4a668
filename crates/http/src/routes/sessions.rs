//! The caller's own sessions: logout, logout everywhere, listing, ending
//! one, and changing the password.

use actix_web::{HttpResponse, web};
use garde::Validate;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use userhub_domain::model::{Password, SessionId};

use super::auth::invalid;
use super::users::rfc3339;
use crate::app::ApiState;
use crate::error::{ApiError, FieldError};
use crate::extract::{CurrentUser, ValidJson};
use crate::validation;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/api/auth/logout").route(web::post().to(logout)))
        .service(super::resource("/api/auth/logout-all").route(web::post().to(logout_all)))
        .service(super::resource("/api/auth/sessions").route(web::get().to(list)))
        .service(super::resource("/api/auth/sessions/{id}").route(web::delete().to(end)))
        .service(
            super::resource("/api/auth/change-password").route(web::post().to(change_password)),
        );
}

async fn logout(state: web::Data<ApiState>, caller: CurrentUser) -> Result<HttpResponse, ApiError> {
    state.auth.logout(&caller.0).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn logout_all(
    state: web::Data<ApiState>,
    caller: CurrentUser,
) -> Result<HttpResponse, ApiError> {
    state.auth.logout_all(&caller.0).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Serialize)]
struct SessionResponse {
    id: String,
    created_at: String,
    last_used_at: String,
    user_agent: Option<String>,
    ip: Option<String>,
    current: bool,
}

async fn list(state: web::Data<ApiState>, caller: CurrentUser) -> Result<HttpResponse, ApiError> {
    let sessions = state.auth.sessions(&caller.0).await?;
    let body: Vec<SessionResponse> = sessions
        .into_iter()
        .map(|s| SessionResponse {
            id: s.session.id.to_string(),
            created_at: rfc3339(s.session.created_at),
            last_used_at: rfc3339(s.session.last_used_at),
            user_agent: s.session.client.user_agent,
            ip: s.session.client.ip,
            current: s.current,
        })
        .collect();
    Ok(HttpResponse::Ok().json(body))
}

async fn end(
    state: web::Data<ApiState>,
    caller: CurrentUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = uuid::Uuid::parse_str(&id)
        .map(SessionId::from_uuid)
        .map_err(|_| {
            ApiError::Validation(vec![FieldError::new(
                "uuid_parsing",
                "path",
                "id",
                "Input should be a valid UUID",
            )])
        })?;
    state.auth.end_session(&caller.0, id).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, Validate)]
struct ChangePasswordRequest {
    #[garde(custom(validation::required(1024)))]
    current_password: String,
    // The personal-information rule needs the caller's details: the domain checks it.
    #[garde(custom(validation::new_password(None, None)))]
    new_password: String,
}

async fn change_password(
    state: web::Data<ApiState>,
    caller: CurrentUser,
    body: ValidJson<ChangePasswordRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.0;
    let new = Password::new(SecretString::from(body.new_password))
        .map_err(|e| invalid("new_password", e))?;
    state
        .auth
        .change_password(&caller.0, &SecretString::from(body.current_password), new)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
