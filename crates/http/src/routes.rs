//! Routes, one module per resource.

pub(crate) mod auth;
pub(crate) mod health;
pub(crate) mod sessions;
pub(crate) mod users;

use actix_web::{HttpResponse, web};

use crate::error::ApiError;

/// Registers every route. Paths are written without a trailing slash; the
/// path-normalising middleware serves them with one too.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    health::configure(cfg);
    auth::configure(cfg);
    sessions::configure(cfg);
    users::configure(cfg);
}

/// A resource whose other methods get a JSON 405 naming the `allow`ed ones.
fn resource(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(move || method_not_allowed(allow)))
}

pub(crate) async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound("Not Found"))
}

async fn method_not_allowed(allow: &'static str) -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed { allow })
}
