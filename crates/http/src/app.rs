//! The application: middleware and routes, over the shared [`ApiState`](crate::ApiState).

use actix_cors::Cors;
use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::{DefaultHeaders, NormalizePath, TrailingSlash, from_fn};
use actix_web::{App, web};

use crate::console::{self, ConsoleSettings};
use crate::state::ApiState;
use crate::{middleware, routes};

/// HTTP-level settings.
#[derive(Clone, Debug)]
pub struct ApiSettings {
    /// Origins allowed to call the API from a browser.
    pub cors_origins: Vec<String>,
    /// Largest accepted request body; larger ones get 413.
    pub max_body_bytes: usize,
    /// Largest accepted request line and header block; larger ones get 431.
    pub max_header_bytes: usize,
    /// Longest a body may take to arrive after its head; slower ones get 408.
    pub body_timeout: std::time::Duration,
    /// The browser console at `/admin/`, or `None` when it is off.
    pub console: Option<ConsoleSettings>,
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
        .app_data(crate::extract::BodyDeadline(settings.body_timeout))
        .configure(routes::configure)
        .configure(|cfg| console::configure(cfg, settings.console.clone()))
        .default_service(web::to(routes::not_found))
        .wrap(cors(&settings.cors_origins))
        .wrap(from_fn(middleware::request_context))
        // Outside the request context, so that its own early answers
        // (431) carry them too.
        .wrap(
            DefaultHeaders::new()
                .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
                .add((header::REFERRER_POLICY, "no-referrer")),
        )
        .app_data(web::Data::new(middleware::HeaderLimit(
            settings.max_header_bytes,
        )))
        // Outermost: these rewrite the request, which needs its only reference.
        .wrap(NormalizePath::new(TrailingSlash::Trim))
        .wrap_fn(|mut req, srv| {
            // HEAD is served as GET; the HTTP layer remembers the request
            // was HEAD and sends the status and headers without the body.
            if req.method() == Method::HEAD {
                req.head_mut().method = Method::GET;
            }
            srv.call(req)
        })
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
    // `If-Match` and `ETag` let a browser app use optimistic concurrency.
    .allowed_headers([
        header::AUTHORIZATION,
        header::CONTENT_TYPE,
        header::ACCEPT,
        header::IF_MATCH,
        middleware::REQUEST_ID,
    ])
    .expose_headers([
        header::ETAG,
        header::LOCATION,
        middleware::REQUEST_ID,
        header::RETRY_AFTER,
    ])
    // A disallowed origin gets no CORS headers (the browser blocks it)
    // rather than an error that would also hit non-browser clients.
    .block_on_origin_mismatch(false)
    // A front end on a listed origin runs the provider sign-in with
    // `credentials: "include"`: the state cookie must come back with its
    // callback. Origins are listed one by one, never a wildcard.
    .supports_credentials()
    .max_age(3600)
}
