//! Routes, one module per resource.

pub(crate) mod accounts;
pub(crate) mod audit;
pub(crate) mod auth;
pub(crate) mod identities;
pub(crate) mod mfa;
pub(crate) mod oauth;
pub(crate) mod operations;
pub(crate) mod passkeys;
pub(crate) mod recovery;
pub(crate) mod sessions;
pub(crate) mod tokens;
pub(crate) mod users;
pub(crate) mod webhooks;

use actix_web::http::Method;
use actix_web::{HttpResponse, Resource, Route, web};

use crate::error::ApiError;

/// Registers every route. Paths are written without a trailing slash; the
/// path-normalising middleware serves them with one too.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    operations::configure(cfg);
    auth::configure(cfg);
    mfa::configure(cfg);
    oauth::configure(cfg);
    identities::configure(cfg);
    recovery::configure(cfg);
    sessions::configure(cfg);
    tokens::configure(cfg);
    passkeys::configure(cfg);
    accounts::configure(cfg);
    users::configure(cfg);
    audit::configure(cfg);
    webhooks::configure(cfg);
}

/// A resource serving each route under its method; any other method gets a
/// JSON 405 whose `Allow` lists those methods.
fn resource<const N: usize>(path: &str, routes: [(Method, Route); N]) -> Resource {
    let allow = routes
        .iter()
        .map(|(method, _)| method.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let fallback = web::to(move || method_not_allowed(allow.clone()));
    routes.into_iter().fold(
        web::resource(path).default_service(fallback),
        |resource, (method, route)| resource.route(route.method(method)),
    )
}

pub(crate) async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound("Not Found"))
}

async fn method_not_allowed(allow: String) -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed { allow })
}
