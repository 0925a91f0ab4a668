//! The application: shared state, middleware and routes.

use std::sync::Arc;

use actix_cors::Cors;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::{NormalizePath, TrailingSlash, from_fn};
use actix_web::{App, web};
use userhub_domain::ports::HealthProbe;
use userhub_domain::services::{AuthService, UserService};

use crate::rate_limit::AuthRateLimit;
use crate::{middleware, routes};

/// What every handler shares.
pub struct ApiState {
    /// Registration, login, refresh, authentication.
    pub auth: AuthService,
    /// User management.
    pub users: UserService,
    /// Database health.
    pub health: Arc<dyn HealthProbe>,
    /// Reported by `/health`.
    pub version: &'static str,
    /// Per-IP limit on register, login and refresh; `None` turns it off.
    pub auth_rate_limit: Option<AuthRateLimit>,
    /// Take the client's address from `X-Forwarded-For` (set only behind a trusted proxy).
    pub trust_forwarded_for: bool,
    /// The JWK Set served at `/.well-known/jwks.json`, as JSON.
    pub jwks: String,
    /// What `/metrics` renders.
    pub metrics: crate::Metrics,
}

/// HTTP-level settings.
#[derive(Clone, Debug)]
pub struct ApiSettings {
    /// Origins allowed to call the API from a browser.
    pub cors_origins: Vec<String>,
    /// Largest accepted request body; larger ones get 413.
    pub max_body_bytes: usize,
}

/// The complete actix-web application.
pub fn build_app(
    state: web::Data<ApiState>,
    settings: ApiSettings,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(state)
        .app_data(web::PayloadConfig::new(settings.max_body_bytes))
        .configure(routes::configure)
        .default_service(web::to(routes::not_found))
        .wrap(cors(&settings.cors_origins))
        .wrap(from_fn(middleware::request_context))
        // Outermost: it rewrites the path, which needs the only reference to the request.
        .wrap(NormalizePath::new(TrailingSlash::Trim))
}

fn cors(origins: &[String]) -> Cors {
    let cors = origins
        .iter()
        .fold(Cors::default(), |cors, origin| cors.allowed_origin(origin));
    cors.allowed_methods([
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
    ])
    .allowed_headers([
        header::AUTHORIZATION,
        header::CONTENT_TYPE,
        header::ACCEPT,
        middleware::REQUEST_ID,
    ])
    .expose_headers([
        header::LOCATION,
        middleware::REQUEST_ID,
        header::RETRY_AFTER,
    ])
    // A disallowed origin gets no CORS headers (the browser blocks it)
    // rather than an error that would also hit non-browser clients.
    .block_on_origin_mismatch(false)
    .max_age(3600)
}
