//! Extractors: validated JSON, query strings and forms, path ids, and the
//! authenticated caller.

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;
use garde::Validate;
use serde::de::DeserializeOwned;
use userhub_domain::model::{ClientInfo, UserId};
use userhub_domain::services::Authenticated;
use uuid::Uuid;

use crate::app::ApiState;
use crate::error::{ApiError, FieldError};
use crate::validation;

/// The request's media type, lower-cased, without parameters.
fn media_type(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(
        value
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase(),
    )
}

fn is_json(media_type: &str) -> bool {
    media_type == "application/json"
        || (media_type.starts_with("application/") && media_type.ends_with("+json"))
}

/// Reads the body within the configured `PayloadConfig` limit.
async fn read_body(req: &HttpRequest, payload: &mut Payload) -> Result<web::Bytes, ApiError> {
    web::Bytes::from_request(req, payload).await.map_err(|err| {
        match err.as_error::<PayloadError>() {
            Some(PayloadError::Overflow) => ApiError::PayloadTooLarge,
            _ => ApiError::BadRequest("Could not read the request body"),
        }
    })
}

/// Deserialises JSON, naming the failing field.
pub(crate) fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            json_invalid()
        } else {
            ApiError::Validation(vec![validation::from_serde(
                "body",
                &path,
                &inner.to_string(),
            )])
        }
    })?;
    de.end().map_err(|_| json_invalid())?;
    Ok(value)
}

fn json_invalid() -> ApiError {
    ApiError::field("json_invalid", "body", "", "JSON decode error")
}

/// Deserialises `application/x-www-form-urlencoded` or a query string.
fn parse_urlencoded<T: DeserializeOwned>(source: &str, raw: &[u8]) -> Result<T, ApiError> {
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(raw));
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        ApiError::Validation(vec![validation::from_serde(
            source,
            &path,
            &err.into_inner().to_string(),
        )])
    })
}

fn validate<T: Validate<Context = ()>>(source: &str, value: T) -> Result<T, ApiError> {
    value
        .validate()
        .map_err(|report| ApiError::Validation(validation::from_report(source, &report)))?;
    Ok(value)
}

/// A JSON body that deserialised and passed its garde rules.
pub(crate) struct ValidJson<T>(pub T);

impl<T> FromRequest for ValidJson<T>
where
    T: DeserializeOwned + Validate<Context = ()> + 'static,
{
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let mut payload = payload.take();
        Box::pin(async move {
            if !media_type(&req).is_some_and(|m| is_json(&m)) {
                return Err(ApiError::UnsupportedMediaType(
                    "Content-Type must be application/json",
                ));
            }
            let body = read_body(&req, &mut payload).await?;
            Ok(Self(validate("body", parse_json(&body)?)?))
        })
    }
}

/// A query string that deserialised and passed its garde rules.
pub(crate) struct ValidQuery<T>(pub T);

impl<T> FromRequest for ValidQuery<T>
where
    T: DeserializeOwned + Validate<Context = ()> + 'static,
{
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let result = parse_urlencoded("query", req.query_string().as_bytes())
            .and_then(|value| validate("query", value))
            .map(Self);
        std::future::ready(result)
    }
}

/// A body sent either as JSON or as an HTML/OAuth2 form.
pub(crate) enum JsonOrForm<J, F> {
    /// `application/json`.
    Json(J),
    /// `application/x-www-form-urlencoded`.
    Form(F),
}

impl<J, F> FromRequest for JsonOrForm<J, F>
where
    J: DeserializeOwned + Validate<Context = ()> + 'static,
    F: DeserializeOwned + Validate<Context = ()> + 'static,
{
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let mut payload = payload.take();
        Box::pin(async move {
            let media = media_type(&req).unwrap_or_default();
            let form = media == "application/x-www-form-urlencoded";
            if !form && !is_json(&media) {
                return Err(ApiError::UnsupportedMediaType(
                    "Content-Type must be application/json or application/x-www-form-urlencoded",
                ));
            }
            let body = read_body(&req, &mut payload).await?;
            if form {
                Ok(Self::Form(validate(
                    "body",
                    parse_urlencoded("body", &body)?,
                )?))
            } else {
                Ok(Self::Json(validate("body", parse_json(&body)?)?))
            }
        })
    }
}

/// Parses the `{id}` path segment.
pub(crate) fn user_id(raw: &str) -> Result<UserId, ApiError> {
    Uuid::parse_str(raw).map(UserId::from_uuid).map_err(|_| {
        ApiError::Validation(vec![FieldError::new(
            "uuid_parsing",
            "path",
            "id",
            "Input should be a valid UUID",
        )])
    })
}

/// Where a request came from, for its session record.
pub(crate) fn client_info(req: &HttpRequest, trust_forwarded_for: bool) -> ClientInfo {
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let ip = crate::rate_limit::client_ip(req, trust_forwarded_for);
    ClientInfo::new(user_agent, ip.map(|ip| ip.to_string()))
}

/// Longest bearer token looked at; anything longer is refused unread.
const MAX_TOKEN_LEN: usize = 4096;

/// The caller, authenticated by `Authorization: Bearer <access token>`:
/// a valid token of a live session of an active user.
pub(crate) struct CurrentUser(pub Authenticated);

impl FromRequest for CurrentUser {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<ApiState>>().cloned();
        let token = bearer_token(req);
        Box::pin(async move {
            let state = state.ok_or(ApiError::Internal)?;
            let token = token.ok_or(ApiError::Unauthorized("Not authenticated"))?;
            if token.len() > MAX_TOKEN_LEN {
                return Err(ApiError::Unauthorized("Could not validate credentials"));
            }
            Ok(Self(state.auth.authenticate(&token).await?))
        })
    }
}

fn bearer_token(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
        .filter(|t| !t.is_empty())
}
