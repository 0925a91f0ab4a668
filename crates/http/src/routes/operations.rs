//! Operational endpoints: `/health`, `/health/live`, the public keys at
//! `/.well-known/jwks.json`, `/metrics`, `/openapi.json` and `/docs`.

use std::time::Duration;

use actix_web::http::Method;
use actix_web::http::header;
use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::openapi;
use crate::state::ApiState;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/health", [(Method::GET, web::to(health))]))
        .service(super::resource(
            "/health/live",
            [(Method::GET, web::to(live))],
        ))
        .service(super::resource(
            "/.well-known/jwks.json",
            [(Method::GET, web::to(jwks))],
        ))
        .service(super::resource(
            "/metrics",
            [(Method::GET, web::to(metrics))],
        ))
        .service(super::resource(
            "/openapi.json",
            [(Method::GET, web::to(openapi::document))],
        ))
        .service(super::resource(
            "/docs",
            [(Method::GET, web::to(openapi::docs))],
        ))
        .service(super::resource(
            "/docs/{tail:.*}",
            [(Method::GET, web::to(openapi::docs))],
        ));
}

/// The service's and its database's state.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"status": "ok", "database": "ok", "version": "0.1.0"}))]
pub(crate) struct Health {
    /// `ok`, `unavailable`, or `draining` while the server shuts down.
    #[schema(pattern = "^(ok|unavailable|draining)$")]
    status: &'static str,
    /// `ok` or `unavailable`.
    #[schema(pattern = "^(ok|unavailable)$")]
    database: &'static str,
    /// The server's version.
    version: &'static str,
}

/// `/health/live`'s body.
#[derive(Serialize, ToSchema)]
pub(crate) struct Live {
    /// Always `ok`.
    #[schema(pattern = "^ok$")]
    status: &'static str,
}

/// The longest `/health` waits for the database: under a probe's usual
/// one-second timeout.
const PROBE_TIMEOUT: Duration = Duration::from_millis(900);

/// Readiness: whether the database answers.
#[utoipa::path(
    get,
    path = "/health",
    operation_id = "health",
    tag = "operations",
    responses(
        (status = 200, description = "Serving, database reachable", body = Health),
        (status = 503, description = "The database cannot be reached, or the server is shutting down", body = Health,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub(crate) async fn health(state: web::Data<ApiState>) -> HttpResponse {
    let probe = tokio::time::timeout(PROBE_TIMEOUT, state.health.check_database()).await;
    if state.lifecycle.is_draining() {
        return HttpResponse::ServiceUnavailable()
            .insert_header((header::RETRY_AFTER, "5"))
            .json(Health {
                status: "draining",
                database: if matches!(probe, Ok(Ok(()))) {
                    "ok"
                } else {
                    "unavailable"
                },
                version: state.version,
            });
    }
    match probe {
        Ok(Ok(())) => HttpResponse::Ok().json(Health {
            status: "ok",
            database: "ok",
            version: state.version,
        }),
        failed => {
            if let Ok(Err(err)) = failed {
                tracing::warn!(error = %err, "health check: database unavailable");
            }
            HttpResponse::ServiceUnavailable()
                .insert_header((header::RETRY_AFTER, "5"))
                .json(Health {
                    status: "unavailable",
                    database: "unavailable",
                    version: state.version,
                })
        }
    }
}

/// Liveness: the process serves.
#[utoipa::path(
    get,
    path = "/health/live",
    operation_id = "live",
    tag = "operations",
    responses((status = 200, description = "Serving", body = Live))
)]
pub(crate) async fn live() -> HttpResponse {
    HttpResponse::Ok().json(Live { status: "ok" })
}

/// The keys that verify access tokens, for other services (empty with HS256).
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    operation_id = "jwks",
    tag = "operations",
    responses((status = 200, description = "A JWK Set (RFC 7517)", body = Jwks))
)]
pub(crate) async fn jwks(state: web::Data<ApiState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .body(state.jwks.clone())
}

/// A JWK Set, documented only: the body is built by the token issuer.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct Jwks {
    /// Public keys; empty when tokens are signed with a shared secret.
    keys: Vec<serde_json::Value>,
}

/// Prometheus metrics, in the text exposition format.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "operations",
    responses((status = 200, description = "Request counts and latencies by route and status, \
        the database pool, logins by outcome, users registered",
        body = String, content_type = "text/plain"))
)]
pub(crate) async fn metrics(state: web::Data<ApiState>) -> HttpResponse {
    let text = state.metrics.render(state.health.pool_status());
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text)
}
