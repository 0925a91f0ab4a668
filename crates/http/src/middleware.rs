//! Per-request context: the request id (on the response and in every log
//! line of the request), an access log line, and security headers.

use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, ResponseError, web};
use tracing::Instrument;
use uuid::Uuid;

use crate::error::ApiError;
use crate::metrics;
use crate::rate_limit::client_network;
use crate::state::ApiState;

/// The Swagger UI page needs scripts and styles of its own origin, inline
/// styles and data: images; nothing from elsewhere.
const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'";

/// Everything else is JSON: nothing may load, nothing may frame it.
const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// The request-id header, read from clients and always written back.
pub(crate) const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A client's id is reused only when it is short and plain.
fn sane(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// The largest request line and header block accepted, in bytes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HeaderLimit(pub(crate) usize);

/// The size of the request line and header block as sent, give or take
/// the line breaks.
fn head_size(req: &ServiceRequest) -> usize {
    let target = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    let line = req.method().as_str().len() + target + 12;
    req.headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum::<usize>()
        + line
}

/// The id a request is logged under, for handlers that record it.
#[derive(Clone, Debug)]
pub(crate) struct RequestId(pub(crate) String);

/// Tags the request with an id, logs its outcome and sets headers every
/// response carries.
pub(crate) async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let state = req.app_data::<web::Data<ApiState>>().cloned();
    let _in_flight = state.as_ref().map(|s| s.lifecycle.enter());
    let draining = state.as_ref().is_some_and(|s| s.lifecycle.is_draining());
    if let Some(limit) = req.app_data::<web::Data<HeaderLimit>>().map(|l| l.0)
        && head_size(&req) > limit
    {
        return Ok(req.into_response(ApiError::HeadersTooLarge.error_response()));
    }
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| sane(v))
        .map_or_else(|| Uuid::new_v4().to_string(), str::to_owned);
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().clone();
    let is_docs = req.path() == "/docs" || req.path().starts_with("/docs/");
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.path());
    let started = Instant::now();
    // Handlers' and extractors' errors arrive here as responses already;
    // only an inner middleware's own error would pass through `?`.
    let mut response = next
        .call(req)
        .instrument(span.clone())
        .await?
        .map_into_boxed_body();
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    span.in_scope(|| {
        tracing::info!(
            status,
            // Whole microseconds: 0.732, not 0.7321479999999999.
            elapsed_ms = (elapsed.as_secs_f64() * 1e6).round() / 1e3,
            "request served"
        );
    });
    metrics::record_request(
        &method,
        response.request().match_pattern().as_deref(),
        status,
        elapsed,
    );
    if draining {
        // Clients reconnect elsewhere while this instance drains.
        response
            .response_mut()
            .head_mut()
            .set_connection_type(actix_web::http::ConnectionType::Close);
    }
    let is_api = response.request().path().starts_with("/api/");
    let headers = response.headers_mut();
    if is_api && !headers.contains_key(header::CACHE_CONTROL) {
        // Every API response may carry personal data or tokens.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        headers.insert(REQUEST_ID, value);
    }
    // The policy depends on the path (the docs page runs Swagger UI; the
    // console's pages set their own); the fixed security headers are
    // `DefaultHeaders` in `build_app`.
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(if is_docs { DOCS_CSP } else { API_CSP }),
        );
    }
    Ok(response)
}

/// Refuses a request with 429 and `Retry-After` once its client IP has
/// spent its budget on the public auth endpoints.
pub(crate) async fn auth_rate_limit(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let limited = req.app_data::<web::Data<ApiState>>().and_then(|state| {
        let limit = state.auth_rate_limit.clone()?;
        let ip = client_network(req.request(), state.trust_forwarded_for)?;
        Some((limit, ip))
    });
    let refusal = match limited {
        Some((limit, ip)) => limit.check(ip).await.err().map(|wait| {
            tracing::warn!(%ip, "auth rate limit exceeded");
            ApiError::TooManyRequests {
                detail: "Too many requests; slow down",
                retry_after: wait.as_secs() + 1,
            }
        }),
        None => None,
    };
    match refusal {
        Some(err) => Ok(req.into_response(err.error_response())),
        None => Ok(next.call(req).await?.map_into_boxed_body()),
    }
}
