//! Webhooks (superusers): endpoints, their secrets and test events; their
//! deliveries are in [`deliveries`], the body each delivery carries in
//! [`payload`].

pub(crate) mod deliveries;
pub(crate) mod payload;

use actix_web::http::Method;
use actix_web::http::header::{CacheControl, CacheDirective};
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use userhub_domain::model::{
    EventFilter, Webhook, WebhookChange, WebhookDescription, WebhookId, WebhookSecret, WebhookUrl,
};
use userhub_domain::services::{NewWebhook, WebhookError};
use utoipa::ToSchema;

use crate::dto::rfc3339;
use crate::error::{ApiError, HttpError};
use crate::extract::{Client, CurrentUser, PathId, ValidJson};
use crate::state::ApiState;
use crate::validation::{self, Fields, IntoDomain, Issue};

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource(
        "/api/webhooks",
        [
            (Method::GET, web::to(list)),
            (Method::POST, web::to(create)),
        ],
    ))
    .service(super::resource(
        "/api/webhooks/{id}",
        [
            (Method::GET, web::to(get)),
            (Method::PATCH, web::to(update)),
            (Method::DELETE, web::to(delete)),
        ],
    ))
    .service(super::resource(
        "/api/webhooks/{id}/rotate-secret",
        [(Method::POST, web::to(rotate_secret))],
    ))
    .service(super::resource(
        "/api/webhooks/{id}/test",
        [(Method::POST, web::to(test))],
    ));
    deliveries::configure(cfg);
}

/// An endpoint subscribed to audit events; never its secret.
#[derive(Serialize, ToSchema)]
#[schema(as = Webhook, example = json!({"id": "0193b5e2-7c1a-7d3e-9f00-5a1b2c3d4e70", "url": "https://crm.example.com/hooks/userhub", "events": ["user.registered", "user.deleted"], "description": "CRM sync", "enabled": true, "created_at": "2026-12-07T10:00:00Z", "disabled_reason": null}))]
pub(crate) struct WebhookResponse {
    #[schema(format = Uuid)]
    id: String,
    url: String,
    /// Audit event types, or `["*"]` for all.
    events: Vec<&'static str>,
    #[schema(required = true)]
    description: Option<String>,
    enabled: bool,
    #[schema(format = DateTime)]
    created_at: String,
    /// Why the server turned it off (every delivery failed for 3 days).
    #[schema(required = true)]
    disabled_reason: Option<String>,
}

impl From<Webhook> for WebhookResponse {
    fn from(hook: Webhook) -> Self {
        Self {
            id: hook.id.to_string(),
            url: hook.url.as_str().to_owned(),
            events: hook.events.names(),
            description: hook.description.map(|d| d.as_str().to_owned()),
            enabled: hook.enabled,
            created_at: rfc3339(hook.created_at),
            disabled_reason: hook.disabled_reason,
        }
    }
}

/// A new endpoint: what the listing shows, and its secret, this once.
#[derive(Serialize, ToSchema)]
pub(crate) struct CreatedWebhookResponse {
    #[serde(flatten)]
    webhook: WebhookResponse,
    /// `whsec_…`: verifies deliveries' signatures. It is never shown again.
    #[schema(format = Password)]
    secret: String,
}

/// A rotated secret.
#[derive(Serialize, ToSchema)]
pub(crate) struct SecretResponse {
    /// The new `whsec_…`; the old one also signs for 24 hours.
    #[schema(format = Password)]
    secret: String,
}

/// An endpoint to subscribe.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"url": "https://crm.example.com/hooks/userhub", "events": ["user.registered", "user.deleted"], "description": "CRM sync"}))]
pub(crate) struct CreateWebhookRequest {
    /// `https://` (`http://` outside production); its host must resolve
    /// to public addresses only.
    #[schema(max_length = 2048, format = "uri")]
    url: String,
    /// Audit event types (not `webhook.*`), or `["*"]`.
    #[schema(min_items = 1)]
    events: Vec<String>,
    /// At most 200 characters.
    #[schema(max_length = 200)]
    description: Option<String>,
}

impl IntoDomain for CreateWebhookRequest {
    type Domain = NewWebhook;

    fn into_domain(self, fields: &mut Fields) -> Option<NewWebhook> {
        let url = fields.take("url", url(self.url));
        let events = fields.take("events", events(&self.events));
        let description = fields.optional("description", self.description, description);
        Some(NewWebhook {
            url: url?,
            events: events?,
            description: description?,
        })
    }
}

/// The fields to change; absent ones stay.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"enabled": true}))]
pub(crate) struct UpdateWebhookRequest {
    #[schema(max_length = 2048, format = "uri")]
    url: Option<String>,
    #[schema(min_items = 1)]
    events: Option<Vec<String>>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "validation::double_option")]
    #[schema(max_length = 200, value_type = Option<String>)]
    description: Option<Option<String>>,
    /// Turning it on again clears `disabled_reason`.
    enabled: Option<bool>,
}

impl IntoDomain for UpdateWebhookRequest {
    type Domain = WebhookChange;

    fn into_domain(self, fields: &mut Fields) -> Option<WebhookChange> {
        let url = fields.optional("url", self.url, url);
        let events = fields.optional("events", self.events, |names| events(&names));
        let description = fields.optional("description", self.description, |raw| {
            raw.map(description).transpose()
        });
        Some(WebhookChange {
            url: url?,
            events: events?,
            description: description?,
            enabled: self.enabled,
        })
    }
}

/// The URL's form; the scheme production requires and the host's
/// addresses are the domain's rules (a 422 at the same place).
fn url(raw: String) -> Result<WebhookUrl, Issue> {
    validation::parse_text(raw, |raw| {
        WebhookUrl::parse(raw, true).map_err(|why| Issue::new("url_parsing", why))
    })
}

fn events(names: &[String]) -> Result<EventFilter, Issue> {
    if names.iter().any(|n| n.contains('\0') || n.len() > 64) {
        return Err(Issue::new("value_error", "unknown event type"));
    }
    EventFilter::parse(names)
        .map_err(|why| Issue::new("value_error", format!("Value error, {why}")))
}

fn description(raw: String) -> Result<WebhookDescription, Issue> {
    validation::parse_text(raw, |raw| {
        WebhookDescription::parse(raw).map_err(|why| Issue::new("value_error", why))
    })
}

impl From<WebhookError> for ApiError {
    fn from(err: WebhookError) -> Self {
        match err {
            WebhookError::Forbidden => Self::Forbidden("Not enough permissions"),
            WebhookError::NotFound => Self::NotFound("Webhook not found"),
            WebhookError::UrlRefused(why) => {
                Self::field("value_error", "body", "url", format!("Value error, {why}"))
            }
            WebhookError::AlreadyDelivered => Self::Conflict("Delivery already delivered"),
            WebhookError::Port(e) => e.into(),
        }
    }
}

fn secret_shown(response: &mut actix_web::HttpResponseBuilder, secret: &WebhookSecret) -> String {
    response.insert_header(CacheControl(vec![CacheDirective::NoStore]));
    secret.expose().to_owned()
}

/// Every endpoint, oldest first.
#[utoipa::path(
    get,
    path = "/api/webhooks",
    operation_id = "list_webhooks",
    tag = "webhooks",
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "Every endpoint", body = Vec<WebhookResponse>),
        (status = 403, description = "The caller is not a superuser (or came with a personal access token)", body = HttpError),
    )
)]
pub(crate) async fn list(
    state: web::Data<ApiState>,
    caller: CurrentUser,
) -> Result<HttpResponse, ApiError> {
    let hooks = state.webhooks.list(&caller.0.user).await?;
    Ok(HttpResponse::Ok().json(
        hooks
            .into_iter()
            .map(WebhookResponse::from)
            .collect::<Vec<_>>(),
    ))
}

/// Subscribes an endpoint; its signing secret is shown this once.
#[utoipa::path(
    post,
    path = "/api/webhooks",
    operation_id = "create_webhook",
    tag = "webhooks",
    request_body = CreateWebhookRequest,
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 201, description = "The endpoint; `secret` is shown only here", body = CreatedWebhookResponse),
        (status = 403, description = "The caller is not a superuser", body = HttpError),
        (status = 422, description = "A bad or non-public URL, or an unknown event type", body = crate::error::HttpValidationError),
        (status = 429, response = crate::openapi::TooManyRequests),
    )
)]
pub(crate) async fn create(
    state: web::Data<ApiState>,
    caller: CurrentUser,
    body: ValidJson<CreateWebhookRequest>,
    client: Client,
) -> Result<HttpResponse, ApiError> {
    state.spend_write_budget(caller.0.user.id).await?;
    let (hook, secret) = state
        .webhooks
        .create(&caller.0.user, body.0, &client.0)
        .await?;
    let mut response = HttpResponse::Created();
    let secret = secret_shown(&mut response, &secret);
    Ok(response.json(CreatedWebhookResponse {
        webhook: hook.into(),
        secret,
    }))
}

/// One endpoint.
#[utoipa::path(
    get,
    path = "/api/webhooks/{id}",
    operation_id = "get_webhook",
    tag = "webhooks",
    params(("id" = String, Path, format = Uuid, description = "The endpoint's id")),
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "The endpoint", body = WebhookResponse),
        (status = 403, description = "The caller is not a superuser", body = HttpError),
        (status = 404, description = "No such endpoint", body = HttpError),
    )
)]
pub(crate) async fn get(
    state: web::Data<ApiState>,
    caller: CurrentUser,
    id: PathId<WebhookId>,
) -> Result<HttpResponse, ApiError> {
    let hook = state.webhooks.get(&caller.0.user, id.0).await?;
    Ok(HttpResponse::Ok().json(WebhookResponse::from(hook)))
}

/// Changes the fields given.
#[utoipa::path(
    patch,
    path = "/api/webhooks/{id}",
    operation_id = "update_webhook",
    tag = "webhooks",
    params(("id" = String, Path, format = Uuid, description = "The endpoint's id")),
    request_body = UpdateWebhookRequest,
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "The endpoint as it is now", body = WebhookResponse),
        (status = 403, description = "The caller is not a superuser", body = HttpError),
        (status = 404, description = "No such endpoint", body = HttpError),
        (status = 422, description = "A bad or non-public URL, or an unknown event type", body = crate::error::HttpValidationError),
        (status = 429, response = crate::openapi::TooManyRequests),
    )
)]
pub(crate) async fn update(
    state: web::Data<ApiState>,
    caller: CurrentUser,
    id: PathId<WebhookId>,
    body: ValidJson<UpdateWebhookRequest>,
    client: Client,
) -> Result<HttpResponse, ApiError> {
    state.spend_write_budget(caller.0.user.id).await?;
    let hook = state
        .webhooks
        .update(&caller.0.user, id.0, body.0, &client.0)
        .await?;
    Ok(HttpResponse::Ok().json(WebhookResponse::from(hook)))
}

/// Deletes the endpoint and its deliveries.
#[utoipa::path(
    delete,
    path = "/api/webhooks/{id}",
    operation_id = "delete_webhook",
    tag = "webhooks",
    params(("id" = String, Path, format = Uuid, description = "The endpoint's id")),
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "The caller is not a superuser", body = HttpError),
        (status = 404, description = "No such endpoint", body = HttpError),
        (status = 429, response = crate::openapi::TooManyRequests),
    )
)]
pub(crate) async fn delete(
    state: web::Data<ApiState>,
    caller: CurrentUser,
    id: PathId<WebhookId>,
    client: Client,
) -> Result<HttpResponse, ApiError> {
    state.spend_write_budget(caller.0.user.id).await?;
    state
        .webhooks
        .delete(&caller.0.user, id.0, &client.0)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A new signing secret; the old one also signs for 24 hours.
#[utoipa::path(
    post,
    path = "/api/webhooks/{id}/rotate-secret",
    operation_id = "rotate_webhook_secret",
    tag = "webhooks",
    params(("id" = String, Path, format = Uuid, description = "The endpoint's id")),
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "The new secret, shown only here", body = SecretResponse),
        (status = 403, description = "The caller is not a superuser", body = HttpError),
        (status = 404, description = "No such endpoint", body = HttpError),
        (status = 429, response = crate::openapi::TooManyRequests),
    )
)]
pub(crate) async fn rotate_secret(
    state: web::Data<ApiState>,
    caller: CurrentUser,
    id: PathId<WebhookId>,
    client: Client,
) -> Result<HttpResponse, ApiError> {
    state.spend_write_budget(caller.0.user.id).await?;
    let secret = state
        .webhooks
        .rotate_secret(&caller.0.user, id.0, &client.0)
        .await?;
    let mut response = HttpResponse::Ok();
    let secret = secret_shown(&mut response, &secret);
    Ok(response.json(SecretResponse { secret }))
}

/// Queues a `webhook.test` event for this endpoint, whatever its `events`.
#[utoipa::path(
    post,
    path = "/api/webhooks/{id}/test",
    operation_id = "test_webhook",
    tag = "webhooks",
    params(("id" = String, Path, format = Uuid, description = "The endpoint's id")),
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 202, description = "Queued"),
        (status = 403, description = "The caller is not a superuser", body = HttpError),
        (status = 404, description = "No such endpoint", body = HttpError),
        (status = 429, response = crate::openapi::TooManyRequests),
    )
)]
pub(crate) async fn test(
    state: web::Data<ApiState>,
    caller: CurrentUser,
    id: PathId<WebhookId>,
    client: Client,
) -> Result<HttpResponse, ApiError> {
    state.spend_write_budget(caller.0.user.id).await?;
    state.webhooks.test(&caller.0.user, id.0, &client.0).await?;
    Ok(HttpResponse::Accepted().finish())
}
