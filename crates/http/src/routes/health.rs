//! Operational endpoints: `/health`, `/health/live` and the public keys
//! at `/.well-known/jwks.json`.

use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use serde::Serialize;

use crate::app::ApiState;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/health").route(web::get().to(health)))
        .service(super::resource("/health/live").route(web::get().to(live)))
        .service(super::resource("/.well-known/jwks.json").route(web::get().to(jwks)));
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    database: &'static str,
    version: &'static str,
}

/// The longest `/health` waits for the database.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

async fn health(state: web::Data<ApiState>) -> HttpResponse {
    let probe = tokio::time::timeout(PROBE_TIMEOUT, state.health.check_database()).await;
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

async fn live() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// The keys that verify access tokens, for other services (empty with HS256).
async fn jwks(state: web::Data<ApiState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .body(state.jwks.clone())
}
