//! [`ApiError`]: every failure a request can end in, with the FastAPI-shaped
//! bodies of API.md.
mod domain;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, CacheControl, CacheDirective, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use userhub_domain::PortError;
use userhub_domain::model::PasswordError;

/// One entry of a 422 body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = ValidationError)]
pub struct FieldError {
    /// Machine-readable kind, as pydantic names it (`string_too_short`, `missing`, …).
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Where: `["body", "password"]`, `["query", "limit"]`, `["path", "id"]`.
    pub loc: Vec<String>,
    /// Human-readable message; never contains a submitted secret.
    pub msg: String,
}

impl FieldError {
    /// An error at `source` (`body`, `query`, …) and `field`.
    pub fn new(kind: &'static str, source: &str, field: &str, msg: impl Into<String>) -> Self {
        let mut loc = vec![source.to_owned()];
        loc.extend(
            field
                .split('.')
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        );
        Self {
            kind,
            loc,
            msg: msg.into(),
        }
    }
}

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 422 with one entry per failing field.
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// 400.
    #[error("{0}")]
    BadRequest(&'static str),
    /// 401 with `WWW-Authenticate: Bearer`.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 403.
    #[error("{0}")]
    Forbidden(&'static str),
    /// 404.
    #[error("{0}")]
    NotFound(&'static str),
    /// 405 with `Allow`.
    #[error("method not allowed")]
    MethodNotAllowed {
        /// The methods the resource serves, comma-separated.
        allow: String,
    },
    /// 409.
    #[error("{0}")]
    Conflict(&'static str),
    /// An error of the OAuth2 token endpoints (login, refresh): the inner
    /// error's status, headers and `detail`, plus RFC 6749's `error` and
    /// `error_description`, so that standard OAuth2 clients recognise it.
    #[error("{inner}")]
    OAuth {
        /// The error as any endpoint would answer it.
        inner: Box<ApiError>,
        /// RFC 6749 §5.2 error code.
        error: OAuthErrorCode,
    },
    /// 403 of a login whose password was right, with the `mfa_token`
    /// that the second step (`/api/auth/login/mfa`) takes.
    #[error("MFA required")]
    MfaRequired {
        /// Opaque, single use, five minutes.
        mfa_token: String,
        /// The user's passkeys may answer instead of a code: the
        /// `PublicKeyCredentialRequestOptionsJSON` that lists them.
        passkey: Option<serde_json::Value>,
    },
    /// 403 `reauthentication_required`: the session signed in too long ago
    /// to add a way in without the password.
    #[error("reauthentication required")]
    ReauthenticationRequired,
    /// 403 `{"detail": "Insufficient scope", "required_scope": …}`: a
    /// personal access token without the scope the route needs.
    #[error("insufficient scope")]
    InsufficientScope {
        /// The scope the route needs.
        required_scope: &'static str,
    },
    /// 412: `If-Match` names a version that is no longer current.
    #[error("precondition failed")]
    PreconditionFailed,
    /// 431: the request's header block is larger than allowed.
    #[error("request header fields too large")]
    HeadersTooLarge,
    /// 413.
    #[error("request body too large")]
    PayloadTooLarge,
    /// 408 with `Connection: close`: the body did not arrive within the
    /// body deadline.
    #[error("request body not received in time")]
    BodyTimeout,
    /// 415.
    #[error("unsupported media type")]
    UnsupportedMediaType(&'static str),
    /// 429 with `Retry-After` in seconds.
    #[error("too many requests")]
    TooManyRequests {
        /// What the client is told.
        detail: &'static str,
        /// Seconds to wait.
        retry_after: u64,
    },
    /// 503 with `Retry-After`; the cause was logged where it happened.
    #[error("service unavailable")]
    Unavailable,
    /// 500; the cause was logged where it happened.
    #[error("internal server error")]
    Internal,
}

impl ApiError {
    /// A 422 for one field.
    pub fn field(kind: &'static str, source: &str, field: &str, msg: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(kind, source, field, msg)])
    }

    /// This error as the OAuth2 token endpoints answer it: `invalid_grant`
    /// for refused credentials or tokens (or an unverified address), `unsupported_grant_type` for a
    /// `grant_type` other than the endpoint's, `invalid_request` for any
    /// other malformed request; other errors (429, 503, …) unchanged.
    #[must_use]
    pub fn for_oauth(self) -> Self {
        let error = match &self {
            Self::Unauthorized(_) | Self::Forbidden(_) => OAuthErrorCode::InvalidGrant,
            Self::Validation(errors)
                if errors
                    .iter()
                    .any(|e| e.loc.get(1).is_some_and(|f| f == "grant_type")) =>
            {
                OAuthErrorCode::UnsupportedGrantType
            }
            Self::Validation(_) | Self::BadRequest(_) | Self::UnsupportedMediaType(_) => {
                OAuthErrorCode::InvalidRequest
            }
            _ => return self,
        };
        Self::OAuth {
            inner: Box::new(self),
            error,
        }
    }

    fn weak_password(field: &str, err: PasswordError) -> Self {
        crate::validation::invalid(field, err)
    }
}

/// A FastAPI-shaped error: `{"detail": "…"}`.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(example = json!({"detail": "User not found"}))]
pub(crate) struct HttpError<'a> {
    /// What went wrong, for people.
    detail: &'a str,
}

/// A personal access token's 403 for a route outside its scopes.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(example = json!({"detail": "Insufficient scope", "required_scope": "users:write"}))]
pub(crate) struct ScopeError<'a> {
    /// `Insufficient scope`.
    detail: &'a str,
    /// The scope the route needs.
    required_scope: &'a str,
}

/// RFC 6749 §5.2's error codes, as the token endpoints use them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OAuthErrorCode {
    /// Refused credentials or refresh token.
    InvalidGrant,
    /// A malformed request.
    InvalidRequest,
    /// A `grant_type` other than the endpoint's.
    UnsupportedGrantType,
}

/// A token endpoint's error (login, refresh): FastAPI's `detail` and
/// RFC 6749's `error` and `error_description`, so that OAuth2 client
/// libraries recognise it.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(example = json!({"detail": "Incorrect email or password", "error": "invalid_grant", "error_description": "Incorrect email or password"}))]
pub(crate) struct OAuthError<'a> {
    /// What went wrong, for people.
    detail: &'a str,
    /// What went wrong, for OAuth2 clients.
    error: OAuthErrorCode,
    /// The same as `detail`.
    error_description: &'a str,
}

/// A token endpoint's 422: one entry per failing field, and RFC 6749's fields.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(example = json!({"detail": [{"type": "missing", "loc": ["body", "password"], "msg": "Field required"}], "error": "invalid_request", "error_description": "Field required"}))]
pub(crate) struct OAuthValidationError<'a> {
    /// One entry per failing field.
    detail: &'a [FieldError],
    /// `invalid_request`, or `unsupported_grant_type` for a wrong `grant_type`.
    error: OAuthErrorCode,
    /// The first entry's message.
    error_description: &'a str,
}

/// The `detail` of a login that needs a second factor.
const MFA_REQUIRED: &str = "MFA required";

/// A login's 403 when the password was right and the user has a second
/// factor: no tokens, but the `mfa_token` for `/api/auth/login/mfa`. (The
/// 403 of an unverified address has the same fields but `mfa_token`, with
/// `error` `invalid_grant`.)
#[derive(Serialize, utoipa::ToSchema)]
#[schema(example = json!({"detail": "MFA required", "error": "mfa_required", "error_description": "The password is right; send a code of the second factor with mfa_token to /api/auth/login/mfa", "mfa_token": "3q2-7wAAAAB0aGlzIGlzIG5vdCBhIHJlYWwgdG9rZW4"}))]
pub(crate) struct MfaRequiredError<'a> {
    /// `MFA required`.
    detail: &'a str,
    /// `mfa_required`.
    error: &'a str,
    /// What to do next.
    error_description: &'a str,
    /// Opaque, single use, valid five minutes for five codes.
    #[serde(skip_serializing_if = "Option::is_none")]
    mfa_token: Option<&'a str>,
    /// When the user has passkeys: a `PublicKeyCredentialRequestOptionsJSON`
    /// listing exactly them; its answer goes to `/api/auth/login/mfa` as
    /// `credential`, instead of a code.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    passkey: Option<&'a serde_json::Value>,
}

/// A 403 with a machine-readable reason next to `detail`.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(example = json!({"detail": "Sign in again to link an account", "error": "reauthentication_required"}))]
pub(crate) struct CodedError<'a> {
    /// What went wrong, for people.
    detail: &'a str,
    /// What went wrong, for programs: `reauthentication_required`.
    error: &'a str,
}

/// A 422 body: one entry per failing field.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(example = json!({"detail": [{"type": "string_too_short", "loc": ["body", "password"], "msg": "String should have at least 8 bytes"}]}))]
pub(crate) struct HttpValidationError<'a> {
    detail: &'a [FieldError],
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::OAuth { inner, .. } => inner.status_code(),
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_)
            | Self::MfaRequired { .. }
            | Self::ReauthenticationRequired
            | Self::InsufficientScope { .. } => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            Self::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        match self {
            Self::OAuth { inner, error } => return Self::oauth_response(inner, *error),
            Self::MfaRequired { mfa_token, passkey } => {
                return response
                    .insert_header(CacheControl(vec![CacheDirective::NoStore]))
                    .json(MfaRequiredError {
                        detail: MFA_REQUIRED,
                        error: "mfa_required",
                        error_description: "The password is right; send a code of the second factor with mfa_token to /api/auth/login/mfa",
                        mfa_token: Some(mfa_token),
                        passkey: passkey.as_ref(),
                    });
            }
            Self::InsufficientScope { required_scope } => {
                return response.json(ScopeError {
                    detail: self.detail(),
                    required_scope,
                });
            }
            Self::ReauthenticationRequired => {
                return response.json(CodedError {
                    detail: self.detail(),
                    error: "reauthentication_required",
                });
            }
            Self::Unauthorized(_) => {
                response
                    .insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
            }
            Self::Unavailable => {
                response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("5")));
            }
            Self::TooManyRequests { retry_after, .. } => {
                response.insert_header((header::RETRY_AFTER, retry_after.to_string()));
            }
            Self::MethodNotAllowed { allow } => {
                response.insert_header((header::ALLOW, allow.as_str()));
            }
            // The rest of the body may still come: the connection cannot
            // carry another request.
            Self::BodyTimeout => {
                response.force_close();
            }
            _ => {}
        }
        match self {
            Self::Validation(errors) => response.json(HttpValidationError { detail: errors }),
            other => response.json(HttpError {
                detail: other.detail(),
            }),
        }
    }
}

impl ApiError {
    /// The `detail` of every error but a 422 (whose detail is its list).
    fn detail(&self) -> &'static str {
        match self {
            Self::BadRequest(detail)
            | Self::Unauthorized(detail)
            | Self::Forbidden(detail)
            | Self::NotFound(detail)
            | Self::Conflict(detail)
            | Self::UnsupportedMediaType(detail)
            | Self::TooManyRequests { detail, .. } => detail,
            Self::OAuth { inner, .. } => inner.detail(),
            Self::MethodNotAllowed { .. } => "Method Not Allowed",
            Self::MfaRequired { .. } => MFA_REQUIRED,
            Self::ReauthenticationRequired => "Sign in again to link an account",
            Self::InsufficientScope { .. } => "Insufficient scope",
            Self::PayloadTooLarge => "Request body too large",
            Self::BodyTimeout => "Request body not received in time",
            Self::PreconditionFailed => "The user changed since it was read",
            Self::HeadersTooLarge => "Request header fields too large",
            Self::Unavailable => "Service temporarily unavailable",
            Self::Internal => "Internal Server Error",
            Self::Validation(_) => "",
        }
    }

    /// `inner`'s response, with RFC 6749's `error` and `error_description`
    /// next to its `detail`.
    fn oauth_response(inner: &Self, error: OAuthErrorCode) -> HttpResponse {
        let body = match inner {
            Self::Validation(errors) => serde_json::to_string(&OAuthValidationError {
                detail: errors,
                error,
                error_description: errors.first().map_or("", |e| e.msg.as_str()),
            }),
            other => serde_json::to_string(&OAuthError {
                detail: other.detail(),
                error,
                error_description: other.detail(),
            }),
        }
        .unwrap_or_default();
        let mut response = inner.error_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response.set_body(actix_web::body::BoxBody::new(body))
    }
}

impl From<PortError> for ApiError {
    fn from(err: PortError) -> Self {
        // Logged here, inside the request's span, so the log line carries its id.
        match &err {
            PortError::Unavailable(_) => {
                tracing::warn!(error = %error_chain(&err), "backing service unavailable");
                Self::Unavailable
            }
            PortError::Unexpected(_) => {
                tracing::error!(error = %error_chain(&err), "request failed");
                Self::Internal
            }
        }
    }
}

fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
