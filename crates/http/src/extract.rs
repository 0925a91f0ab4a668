//! Extractors: validated JSON, query strings and forms, path ids, and the
//! authenticated caller.
mod fields;

use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use userhub_domain::model::{ClientInfo, PasskeyId, SessionId, TokenId, UserId, WebhookId};
use userhub_domain::ports::{AccessClaims, PERSONAL_TOKEN_PREFIX};
use userhub_domain::services::Authenticated;
use uuid::Uuid;

use crate::error::{ApiError, FieldError};
use crate::state::ApiState;
use crate::validation::IntoDomain;

pub(crate) use fields::parse_json;
use fields::parse_urlencoded;
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

/// How long a request's body may take to arrive, once its head has
/// (`ApiSettings::body_timeout`, registered by `build_app`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct BodyDeadline(pub Duration);

/// Reads the body within the configured `PayloadConfig` limit and the
/// [`BodyDeadline`]: a client that trickles its body holds a worker's
/// memory and a connection, so it is cut off.
async fn read_body(req: &HttpRequest, payload: &mut Payload) -> Result<web::Bytes, ApiError> {
    let deadline = req
        .app_data::<BodyDeadline>()
        .copied()
        .ok_or(ApiError::Internal)?;
    let read = web::Bytes::from_request(req, payload);
    let body = tokio::time::timeout(deadline.0, read)
        .await
        .map_err(|_| ApiError::BodyTimeout)?;
    body.map_err(|err| match err.as_error::<PayloadError>() {
        Some(PayloadError::Overflow) => ApiError::PayloadTooLarge,
        _ => ApiError::BadRequest("Could not read the request body"),
    })
}

/// A JSON body as its domain values, every field checked.
pub(crate) struct ValidJson<T: IntoDomain>(pub T::Domain);

impl<T> FromRequest for ValidJson<T>
where
    T: DeserializeOwned + IntoDomain + 'static,
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
            Ok(Self(parse_json::<T>(&body)?))
        })
    }
}

/// A query string as its domain values, every field checked.
pub(crate) struct ValidQuery<T: IntoDomain>(pub T::Domain);

impl<T> FromRequest for ValidQuery<T>
where
    T: DeserializeOwned + IntoDomain + 'static,
{
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let result = parse_urlencoded::<T>("query", req.query_string().as_bytes()).map(Self);
        std::future::ready(result)
    }
}

/// A body sent either as JSON or as an HTML/OAuth2 form.
pub(crate) enum JsonOrForm<J: IntoDomain, F: IntoDomain> {
    /// `application/json`.
    Json(J::Domain),
    /// `application/x-www-form-urlencoded`.
    Form(F::Domain),
}

impl<J, F> FromRequest for JsonOrForm<J, F>
where
    J: DeserializeOwned + IntoDomain + 'static,
    F: DeserializeOwned + IntoDomain + 'static,
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
                Ok(Self::Form(parse_urlencoded::<F>("body", &body)?))
            } else {
                Ok(Self::Json(parse_json::<J>(&body)?))
            }
        })
    }
}

/// An id made from a UUID.
pub(crate) trait FromUuid {
    /// Wraps `uuid`.
    fn from_uuid(uuid: Uuid) -> Self;
}

macro_rules! from_uuid {
    ($($id:ident),*) => {
        $(impl FromUuid for $id {
            fn from_uuid(uuid: Uuid) -> Self {
                $id::from_uuid(uuid)
            }
        })*
    };
}

from_uuid!(UserId, TokenId, SessionId, PasskeyId, WebhookId);

/// The `{id}` path segment as a typed id; anything but a UUID is a 422 at
/// `["path", "id"]`. Put it after the authentication extractor, so that a
/// caller without a token learns nothing about the path.
pub(crate) struct PathId<T>(pub T);

impl<T: FromUuid> FromRequest for PathId<T> {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let parsed = req
            .match_info()
            .get("id")
            .and_then(|raw| Uuid::parse_str(raw).ok())
            .map(|uuid| Self(T::from_uuid(uuid)))
            .ok_or_else(|| {
                ApiError::Validation(vec![FieldError::new(
                    "uuid_parsing",
                    "path",
                    "id",
                    "Input should be a valid UUID",
                )])
            });
        std::future::ready(parsed)
    }
}

/// Where a request came from, for its session record and audit events.
pub(crate) fn client_info(req: &HttpRequest, trust_forwarded_for: bool) -> ClientInfo {
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let ip = crate::rate_limit::client_ip(req, trust_forwarded_for);
    let client = ClientInfo::new(user_agent, ip.map(|ip| ip.to_string()));
    match actix_web::HttpMessage::extensions(req).get::<crate::middleware::RequestId>() {
        Some(id) => client.with_request_id(&id.0),
        None => client,
    }
}

/// [`client_info`] as an extractor.
pub(crate) struct Client(pub ClientInfo);

impl FromRequest for Client {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let trust = req
            .app_data::<web::Data<ApiState>>()
            .is_some_and(|state| state.trust_forwarded_for);
        std::future::ready(Ok(Self(client_info(req, trust))))
    }
}

/// Longest bearer token looked at; anything longer is refused unread.
const MAX_TOKEN_LEN: usize = 4096;

/// The caller, authenticated by `Authorization: Bearer <token>`: an
/// access token of a live session of an active user, or a personal access
/// token of an active user whose scopes reach the route ([`crate::scopes`]).
pub(crate) struct CurrentUser(pub Authenticated);

impl FromRequest for CurrentUser {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { authenticate(&req).await.map(Self) })
    }
}

/// The state and the request's bearer token, unchecked but for its length.
fn presented(req: &HttpRequest) -> Result<(&web::Data<ApiState>, String), ApiError> {
    let state = req
        .app_data::<web::Data<ApiState>>()
        .ok_or(ApiError::Internal)?;
    let token = bearer_token(req).ok_or(ApiError::Unauthorized("Not authenticated"))?;
    if token.len() > MAX_TOKEN_LEN {
        return Err(ApiError::Unauthorized("Could not validate credentials"));
    }
    Ok((state, token))
}

/// [`CurrentUser`]'s check.
async fn authenticate(req: &HttpRequest) -> Result<Authenticated, ApiError> {
    let (state, token) = presented(req)?;
    let caller = state.sessions.authenticate(&token).await?;
    if let Some(grant) = caller.token() {
        crate::scopes::check(req, grant)?;
    }
    Ok(caller)
}

/// The caller a valid access token names: its signature and claims are
/// checked, not yet its session, for handlers whose use case checks the
/// session in the same round trip as its own read. A personal access
/// token is authenticated as by [`CurrentUser`].
pub(crate) enum Claimed {
    /// An access token's claims, its session unchecked.
    Claims(AccessClaims),
    /// A personal access token's caller, authenticated.
    Token(Authenticated),
}

impl FromRequest for Claimed {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            if bearer_token(&req).is_some_and(|t| t.starts_with(PERSONAL_TOKEN_PREFIX)) {
                return authenticate(&req).await.map(Self::Token);
            }
            claims(&req).map(|(_, claims)| Self::Claims(claims))
        })
    }
}

/// The state and the claims of the request's bearer token, its signature
/// checked (not its session).
fn claims(req: &HttpRequest) -> Result<(web::Data<ApiState>, AccessClaims), ApiError> {
    let (state, token) = presented(req)?;
    let claims = state.sessions.claimed_user(&token)?;
    Ok((state.clone(), claims))
}

/// Charges the caller's password-hashing budget before any other work
/// (the access token's signature is checked, not its session): a caller
/// over budget is refused for the price of an HMAC. The refusal is held
/// back for up to [`REFUSAL_DELAY`], so that a client flooding on a few
/// connections sends a few requests a second rather than thousands, and
/// cannot take the processor from other users' logins either.
/// A request without a valid access token passes, to be refused by
/// [`CurrentUser`]; one with a personal access token is charged by its
/// handler ([`charge_token_caller`]).
pub(crate) struct HashBudgetSpent;

/// Charges a caller authenticated by a personal access token the hashing
/// budget [`HashBudgetSpent`] could not charge before the lookup.
pub(crate) async fn charge_token_caller(
    state: &ApiState,
    caller: &Authenticated,
) -> Result<(), ApiError> {
    if caller.token().is_none() {
        return Ok(());
    }
    state
        .spend_hash_budget(format!("user:{}", caller.user.id))
        .await
}

/// Longest a budget refusal is held back (never longer than `Retry-After`).
const REFUSAL_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

impl FromRequest for HashBudgetSpent {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // A personal access token names its owner only after a lookup: its
        // handler charges the owner once authenticated (a key per presented
        // token would let anyone grow the budget's table).
        let caller = claims(req)
            .ok()
            .map(|(state, claims)| (state, format!("user:{}", claims.user_id)));
        Box::pin(async move {
            let refused = match caller {
                Some((state, key)) => state.spend_hash_budget(key).await.err(),
                None => None,
            };
            match refused {
                None => Ok(Self),
                Some(err) => {
                    if let ApiError::TooManyRequests { retry_after, .. } = &err {
                        let wait = std::time::Duration::from_secs(*retry_after);
                        tokio::time::sleep(wait.min(REFUSAL_DELAY)).await;
                    }
                    Err(err)
                }
            }
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
