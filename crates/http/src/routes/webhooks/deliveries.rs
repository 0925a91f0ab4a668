//! An endpoint's deliveries: the listing, each one's attempts, and a
//! retry by hand.

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use userhub_domain::model::{Delivery, DeliveryAttempt, DeliveryId, DeliveryStatus, WebhookId};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::dto::rfc3339;
use crate::error::{ApiError, FieldError, HttpError};
use crate::extract::{CurrentUser, PathId, ValidQuery};
use crate::routes::audit::{MAX_CURSOR, open_cursor};
use crate::state::ApiState;
use crate::validation::{self, Fields, IntoDomain, Issue};

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(crate::routes::resource(
        "/api/webhooks/{id}/deliveries",
        [(Method::GET, web::to(list))],
    ))
    .service(crate::routes::resource(
        "/api/webhooks/{id}/deliveries/{delivery_id}/attempts",
        [(Method::GET, web::to(attempts))],
    ))
    .service(crate::routes::resource(
        "/api/webhooks/{id}/deliveries/{delivery_id}/retry",
        [(Method::POST, web::to(retry))],
    ));
}

/// One event's delivery to the endpoint.
#[derive(Serialize, ToSchema)]
#[schema(as = WebhookDelivery, example = json!({"id": "0193b5e2-7c1a-7d3e-a111-5a1b2c3d4e71", "event_id": "0193b5e2-7c1a-7d3e-9f00-5a1b2c3d4e60", "type": "user.registered", "status": "pending", "attempts": 2, "last_status": 503, "last_error": "HTTP 503", "next_attempt_at": "2026-12-07T10:00:20Z", "delivered_at": null}))]
pub(crate) struct DeliveryResponse {
    #[schema(format = Uuid)]
    id: String,
    /// The audit event, and every attempt's `webhook-id`.
    #[schema(format = Uuid)]
    event_id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    /// `pending`, `delivered` or `failed`.
    status: &'static str,
    attempts: u32,
    /// The HTTP status of the last attempt, if one came back.
    #[schema(required = true)]
    last_status: Option<u16>,
    #[schema(required = true)]
    last_error: Option<String>,
    /// While pending.
    #[schema(required = true, format = DateTime)]
    next_attempt_at: Option<String>,
    #[schema(required = true, format = DateTime)]
    delivered_at: Option<String>,
}

impl From<Delivery> for DeliveryResponse {
    fn from(delivery: Delivery) -> Self {
        Self {
            id: delivery.id.to_string(),
            event_id: delivery.event_id.to_string(),
            kind: delivery.kind.as_str(),
            status: delivery.status.as_str(),
            attempts: delivery.attempts,
            last_status: delivery.last_status,
            last_error: delivery.last_error,
            next_attempt_at: delivery.next_attempt_at.map(rfc3339),
            delivered_at: delivery.delivered_at.map(rfc3339),
        }
    }
}

/// One page of deliveries, newest first.
#[derive(Serialize, ToSchema)]
#[schema(as = WebhookDeliveryPage)]
pub(crate) struct DeliveryPage {
    items: Vec<DeliveryResponse>,
    /// Pass as `cursor` for the next page; `null` on the last.
    #[schema(required = true)]
    next_cursor: Option<String>,
}

/// One attempt of a delivery.
#[derive(Serialize, ToSchema)]
#[schema(as = WebhookAttempt)]
pub(crate) struct AttemptResponse {
    #[schema(format = DateTime)]
    at: String,
    /// The HTTP status, if one came back.
    #[schema(required = true)]
    status: Option<u16>,
    #[schema(required = true)]
    error: Option<String>,
    duration_ms: u32,
}

impl From<DeliveryAttempt> for AttemptResponse {
    fn from(attempt: DeliveryAttempt) -> Self {
        Self {
            at: rfc3339(attempt.at),
            status: attempt.status,
            error: attempt.error,
            duration_ms: attempt.duration_ms,
        }
    }
}

/// Filters of the listing.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DeliveryQuery {
    /// Only deliveries in this state: `pending`, `delivered` or `failed`.
    #[param(value_type = Option<String>, pattern = "^(pending|delivered|failed)$")]
    status: Option<String>,
    /// Deliveries to return.
    #[param(minimum = 1, maximum = 100, default = 20)]
    limit: Option<i64>,
    /// The `next_cursor` of the previous page, with the same filter.
    #[param(max_length = 128, pattern = "^[^\\x00]*$")]
    cursor: Option<String>,
}

/// The listing's filter, page size and cursor.
pub(crate) struct DeliveryListing {
    status: Option<DeliveryStatus>,
    limit: u64,
    cursor: Option<String>,
}

impl IntoDomain for DeliveryQuery {
    type Domain = DeliveryListing;

    fn into_domain(self, fields: &mut Fields) -> Option<DeliveryListing> {
        let limit = fields.optional("limit", self.limit, validation::within(1, 100));
        let cursor = fields.optional("cursor", self.cursor, validation::bounded(MAX_CURSOR));
        let status = fields.optional("status", self.status, |raw: String| {
            DeliveryStatus::parse(&raw).ok_or_else(|| {
                Issue::new(
                    "literal_error",
                    "Input should be 'pending', 'delivered' or 'failed'",
                )
            })
        });
        Some(DeliveryListing {
            status: status?,
            limit: limit?
                .and_then(|l: i64| u64::try_from(l).ok())
                .unwrap_or(20),
            cursor: cursor?,
        })
    }
}

/// The `{delivery_id}` path segment.
fn delivery_id(req: &HttpRequest) -> Result<DeliveryId, ApiError> {
    req.match_info()
        .get("delivery_id")
        .and_then(|raw| Uuid::parse_str(raw).ok())
        .map(DeliveryId::from_uuid)
        .ok_or_else(|| {
            ApiError::Validation(vec![FieldError::new(
                "uuid_parsing",
                "path",
                "delivery_id",
                "Input should be a valid UUID",
            )])
        })
}

/// The endpoint's deliveries, newest first.
#[utoipa::path(
    get,
    path = "/api/webhooks/{id}/deliveries",
    operation_id = "list_webhook_deliveries",
    tag = "webhooks",
    params(("id" = String, Path, format = Uuid, description = "The endpoint's id"), DeliveryQuery),
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "Deliveries, newest event first", body = DeliveryPage),
        (status = 403, description = "The caller is not a superuser", body = HttpError),
        (status = 404, description = "No such endpoint", body = HttpError),
    )
)]
pub(crate) async fn list(
    state: web::Data<ApiState>,
    caller: CurrentUser,
    id: PathId<WebhookId>,
    query: ValidQuery<DeliveryQuery>,
) -> Result<HttpResponse, ApiError> {
    let DeliveryListing {
        status,
        limit,
        cursor,
    } = query.0;
    let caller = &caller.0.user;
    let binding = format!("webhook {} {:?}", id.0, status.map(DeliveryStatus::as_str));
    let before = open_cursor(&state, caller.id, &binding, cursor.as_deref())?;
    let items = state
        .webhooks
        .deliveries(
            caller,
            id.0,
            status,
            before.map(DeliveryId::from_uuid),
            limit,
        )
        .await?;
    let next_cursor = (items.len() as u64 == limit)
        .then(|| items.last())
        .flatten()
        .map(|last| {
            state
                .cursor_key
                .seal(caller.id, &binding, &last.id.as_uuid())
        });
    Ok(HttpResponse::Ok().json(DeliveryPage {
        items: items.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

/// Every attempt of one delivery, oldest first (status, error, timing).
#[utoipa::path(
    get,
    path = "/api/webhooks/{id}/deliveries/{delivery_id}/attempts",
    operation_id = "list_webhook_delivery_attempts",
    tag = "webhooks",
    params(
        ("id" = String, Path, format = Uuid, description = "The endpoint's id"),
        ("delivery_id" = String, Path, format = Uuid, description = "The delivery's id"),
    ),
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "The attempts, oldest first", body = Vec<AttemptResponse>),
        (status = 403, description = "The caller is not a superuser", body = HttpError),
        (status = 404, description = "No such delivery of this endpoint", body = HttpError),
    )
)]
pub(crate) async fn attempts(
    state: web::Data<ApiState>,
    req: HttpRequest,
    caller: CurrentUser,
    id: PathId<WebhookId>,
) -> Result<HttpResponse, ApiError> {
    let delivery = delivery_id(&req)?;
    let attempts = state
        .webhooks
        .attempts(&caller.0.user, id.0, delivery)
        .await?;
    Ok(HttpResponse::Ok().json(
        attempts
            .into_iter()
            .map(AttemptResponse::from)
            .collect::<Vec<_>>(),
    ))
}

/// Sends a pending or failed delivery again, now.
#[utoipa::path(
    post,
    path = "/api/webhooks/{id}/deliveries/{delivery_id}/retry",
    operation_id = "retry_webhook_delivery",
    tag = "webhooks",
    params(
        ("id" = String, Path, format = Uuid, description = "The endpoint's id"),
        ("delivery_id" = String, Path, format = Uuid, description = "The delivery's id"),
    ),
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 202, description = "Due now"),
        (status = 403, description = "The caller is not a superuser", body = HttpError),
        (status = 404, description = "No such delivery of this endpoint", body = HttpError),
        (status = 409, description = "Delivered already", body = HttpError),
        (status = 429, response = crate::openapi::TooManyRequests),
    )
)]
pub(crate) async fn retry(
    state: web::Data<ApiState>,
    req: HttpRequest,
    caller: CurrentUser,
    id: PathId<WebhookId>,
) -> Result<HttpResponse, ApiError> {
    let delivery = delivery_id(&req)?;
    state.spend_write_budget(caller.0.user.id).await?;
    state.webhooks.retry(&caller.0.user, id.0, delivery).await?;
    Ok(HttpResponse::Accepted().finish())
}
