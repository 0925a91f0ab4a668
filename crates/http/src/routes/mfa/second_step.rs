//! The second step of a login: a code of the app, a recovery code, or a
//! passkey's answer, for the `mfa_token` of the first step.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use utoipa::ToSchema;

use super::super::auth::token_response;
use super::{MAX_CODE, MAX_CREDENTIAL};
use crate::error::{ApiError, OAuthError};
use crate::extract::{Client, JsonOrForm};
use crate::openapi::TooManyRequests;
use crate::state::ApiState;
use crate::validation::{self, Fields, IntoDomain, Issue};

/// The second step of a login.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"mfa_token": "3q2-7wAAAAB0aGlzIGlzIG5vdCBhIHJlYWwgdG9rZW4", "code": "123456"}))]
pub(crate) struct MfaLoginRequest {
    /// The `mfa_token` of the login's 403.
    #[schema(min_length = 1, max_length = 1024, pattern = "^[^\\x00]*$")]
    mfa_token: String,
    /// Six digits, or a recovery code; or send `credential` instead.
    #[schema(min_length = 1, max_length = 64, pattern = "^[^\\x00]*$")]
    code: Option<String>,
    /// A passkey's answer to the 403's `passkey` options
    /// (`AuthenticationResponseJSON`), instead of a code.
    #[schema(value_type = Option<Object>)]
    credential: Option<serde_json::Value>,
}

/// What answers a login's second step.
pub(crate) enum SecondStep {
    /// A code of the app, or a recovery code.
    Code(String),
    /// A passkey's answer, as JSON text.
    Passkey(String),
}

impl IntoDomain for MfaLoginRequest {
    type Domain = (String, SecondStep);

    fn into_domain(self, fields: &mut Fields) -> Option<Self::Domain> {
        let token = fields.take(
            "mfa_token",
            validation::required(MAX_CREDENTIAL)(self.mfa_token),
        );
        let answer = match (self.code, self.credential) {
            (Some(code), None) => fields
                .take("code", validation::required(MAX_CODE)(code))
                .map(SecondStep::Code),
            (None, Some(credential)) if credential.is_object() => {
                Some(SecondStep::Passkey(credential.to_string()))
            }
            (None, Some(_)) => fields.take::<SecondStep, _>(
                "credential",
                Err(Issue::new(
                    "dict_type",
                    "Input should be a valid dictionary",
                )),
            ),
            (None, None) => {
                fields.take::<SecondStep, _>("code", Err(Issue::new("missing", "Field required")))
            }
            (Some(_), Some(_)) => fields.take::<SecondStep, _>(
                "credential",
                Err(Issue::new(
                    "value_error",
                    "Value error, send a code or a credential, not both",
                )),
            ),
        };
        Some((token?, answer?))
    }
}

/// The second step of a login as a form: the fields of
/// [`MfaLoginRequest`]. A schema of its own, because client generators
/// (openapi-python-client) cannot tell two media types of one schema apart.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"mfa_token": "3q2-7wAAAAB0aGlzIGlzIG5vdCBhIHJlYWwgdG9rZW4", "code": "123456"}))]
pub(crate) struct MfaLoginForm {
    /// The `mfa_token` of the login's 403.
    #[schema(min_length = 1, max_length = 1024, pattern = "^[^\\x00]*$")]
    mfa_token: String,
    /// Six digits, or a recovery code.
    #[schema(min_length = 1, max_length = 64, pattern = "^[^\\x00]*$")]
    code: String,
}

impl IntoDomain for MfaLoginForm {
    type Domain = (String, SecondStep);

    fn into_domain(self, fields: &mut Fields) -> Option<Self::Domain> {
        MfaLoginRequest {
            mfa_token: self.mfa_token,
            code: Some(self.code),
            credential: None,
        }
        .into_domain(fields)
    }
}

/// Exchanges the `mfa_token` of a login and a code (of the app, or a
/// recovery code), or a passkey's answer, for the usual tokens. JSON or a
/// form (a code only).
#[utoipa::path(
    post,
    path = "/api/auth/login/mfa",
    operation_id = "login_mfa",
    tag = "auth",
    request_body(content(
        (MfaLoginRequest = "application/json"),
        (MfaLoginForm = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "A new session's tokens", body = crate::routes::auth::TokenResponse),
        (status = 401, description = "Wrong code or passkey (`Invalid passkey`), or an expired, spent or unknown `mfa_token`",
            body = OAuthError,
            example = json!({"detail": "Invalid code", "error": "invalid_grant", "error_description": "Invalid code"})),
        (status = 429, response = TooManyRequests),
    )
)]
pub(crate) async fn login(
    state: web::Data<ApiState>,
    client: Client,
    body: Result<JsonOrForm<MfaLoginRequest, MfaLoginForm>, ApiError>,
) -> Result<HttpResponse, ApiError> {
    let (token, answer) = match body.map_err(ApiError::for_oauth)? {
        JsonOrForm::Json(pair) | JsonOrForm::Form(pair) => pair,
    };
    let tokens = match answer {
        SecondStep::Code(code) => state
            .auth
            .login_mfa(&token, &code, &client.0)
            .await
            .map_err(|e| ApiError::from(e).for_oauth())?,
        SecondStep::Passkey(credential) => {
            state
                .passkeys
                .login_second_factor(&token, &credential, &client.0)
                .await?
        }
    };
    crate::metrics::record_login("success");
    Ok(token_response(&tokens))
}
