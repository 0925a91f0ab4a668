//! The caller's linked identities: listing and unlinking.

use actix_web::http::Method;
use actix_web::http::header::{CacheControl, CacheDirective};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use userhub_domain::model::LinkedIdentity;
use utoipa::ToSchema;

use super::oauth::provider_of;
use crate::dto::rfc3339;
use crate::error::{ApiError, HttpError};
use crate::extract::{Client, CurrentUser};
use crate::openapi::TooManyRequests;
use crate::state::ApiState;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource(
        "/api/auth/identities",
        [(Method::GET, web::to(identities))],
    ))
    .service(super::resource(
        "/api/auth/identities/{provider}",
        [(Method::DELETE, web::to(unlink))],
    ));
}

/// An identity linked to the caller.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"provider": "google", "subject": "110169484474386276334", "email": "ada@example.com", "linked_at": "2026-12-06T10:00:00Z"}))]
pub(crate) struct IdentityResponse {
    /// The configured provider name.
    provider: String,
    /// The provider's id of the account (`sub`).
    subject: String,
    /// The address the provider gave when it was linked.
    email: Option<String>,
    /// When it was linked.
    linked_at: String,
}

impl From<LinkedIdentity> for IdentityResponse {
    fn from(identity: LinkedIdentity) -> Self {
        Self {
            provider: identity.provider,
            subject: identity.subject,
            email: identity.email,
            linked_at: rfc3339(identity.linked_at),
        }
    }
}
/// The caller's linked identities, oldest first.
#[utoipa::path(
    get,
    path = "/api/auth/identities",
    operation_id = "list_identities",
    tag = "oauth",
    security(("bearer" = []), ("oauth2" = [])),
    responses((status = 200, description = "The caller's identities", body = Vec<IdentityResponse>))
)]
pub(crate) async fn identities(
    state: web::Data<ApiState>,
    caller: CurrentUser,
) -> Result<HttpResponse, ApiError> {
    let list = state.oauth.identities(caller.0.user.id).await?;
    Ok(HttpResponse::Ok()
        .insert_header(CacheControl(vec![CacheDirective::NoStore]))
        .json(
            list.into_iter()
                .map(IdentityResponse::from)
                .collect::<Vec<_>>(),
        ))
}

/// Unlinks the caller's identity at `provider`, unless it is their last
/// way in (no password and no other identity).
#[utoipa::path(
    delete,
    path = "/api/auth/identities/{provider}",
    operation_id = "unlink_identity",
    tag = "oauth",
    params(("provider" = String, Path, description = "The provider of the identity")),
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 204, description = "Unlinked"),
        (status = 404, description = "No identity at that provider", body = HttpError),
        (status = 409, description = "The last sign-in method", body = HttpError,
            example = json!({"detail": "Cannot remove the last sign-in method"})),
        (status = 429, response = TooManyRequests),
    )
)]
pub(crate) async fn unlink(
    state: web::Data<ApiState>,
    req: HttpRequest,
    caller: CurrentUser,
    client: Client,
) -> Result<HttpResponse, ApiError> {
    state.spend_write_budget(caller.0.user.id).await?;
    state
        .oauth
        .unlink_identity(caller.0.user.id, &provider_of(&req), &client.0)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
