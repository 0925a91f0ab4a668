//! Signing in with a passkey: the public ceremony, and the passkey
//! options of a login's second step.

use actix_web::{HttpResponse, web};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use userhub_domain::model::UserId;
use utoipa::ToSchema;

use super::{ceremony, credential};
use crate::error::{ApiError, OAuthError};
use crate::extract::{Client, ValidJson};
use crate::state::ApiState;
use crate::validation::{self, Fields, IntoDomain};

/// The 403 of a login that needs its second step, with the passkey
/// options when `user` has passkeys: they may answer instead of a code.
pub(crate) async fn mfa_required(
    state: &ApiState,
    mfa_token: &SecretString,
    user: UserId,
) -> ApiError {
    let options = match state.passkeys.second_factor_options(user, mfa_token).await {
        Ok(options) => options,
        Err(err) => return err.into(),
    };
    let passkey = options.and_then(|options| {
        let mut options: serde_json::Value = serde_json::from_str(&options).ok()?;
        Some(options.get_mut("publicKey")?.take())
    });
    ApiError::MfaRequired {
        mfa_token: mfa_token.expose_secret().to_owned(),
        passkey,
    }
}

/// A sign-in's options: `publicKey` is a `PublicKeyCredentialRequestOptionsJSON`
/// with an empty `allowCredentials` (the browser offers its passkeys).
#[derive(Serialize, ToSchema)]
pub(crate) struct LoginOptionsResponse {
    /// For `PublicKeyCredential.parseRequestOptionsFromJSON`.
    #[serde(rename = "publicKey")]
    #[schema(value_type = Object)]
    public_key: serde_json::Value,
    /// Single use, 5 minutes: send it back with the assertion.
    login_token: String,
}

/// A sign-in's answer.
#[derive(Deserialize, ToSchema)]
pub(crate) struct PasskeyLoginRequest {
    /// From the options.
    #[schema(min_length = 1, max_length = 1024)]
    login_token: String,
    /// `AuthenticationResponseJSON`: what `credential.toJSON()` gives.
    #[schema(value_type = Object)]
    credential: serde_json::Value,
}

/// A sign-in's answer, checked for shape.
pub(crate) struct PasskeyLogin {
    token: String,
    credential: String,
}

impl IntoDomain for PasskeyLoginRequest {
    type Domain = PasskeyLogin;

    fn into_domain(self, fields: &mut Fields) -> Option<PasskeyLogin> {
        let token = fields.take("login_token", validation::required(1024)(self.login_token));
        let credential = fields.take("credential", credential(self.credential));
        Some(PasskeyLogin {
            token: token?,
            credential: credential?,
        })
    }
}

/// Starts a sign-in with a passkey; names no account.
#[utoipa::path(
    post,
    path = "/api/auth/passkeys/login/options",
    operation_id = "passkey_login_options",
    tag = "passkeys",
    responses(
        (status = 200, description = "Options for `navigator.credentials.get`", body = LoginOptionsResponse),
        (status = 429, response = crate::openapi::TooManyRequests),
    )
)]
pub(crate) async fn login_options(state: web::Data<ApiState>) -> Result<HttpResponse, ApiError> {
    let options = state.passkeys.login_options().await?;
    ceremony(&options, "login_token")
}

/// Signs in with a passkey: a new session, `amr` `["pop", "mfa"]`.
#[utoipa::path(
    post,
    path = "/api/auth/passkeys/login",
    operation_id = "passkey_login",
    tag = "passkeys",
    request_body = PasskeyLoginRequest,
    responses(
        (status = 200, description = "A new session's tokens", body = crate::routes::auth::TokenResponse),
        (status = 401, description = "Unknown credential, failed check, spent or expired token, or an inactive user", body = OAuthError,
            example = json!({"detail": "Invalid passkey", "error": "invalid_grant", "error_description": "Invalid passkey"})),
        (status = 429, response = crate::openapi::TooManyRequests),
    )
)]
pub(crate) async fn login(
    state: web::Data<ApiState>,
    body: ValidJson<PasskeyLoginRequest>,
    client: Client,
) -> Result<HttpResponse, ApiError> {
    let tokens = state
        .passkeys
        .login(&body.0.token, &body.0.credential, &client.0)
        .await?;
    Ok(super::super::auth::token_response(&tokens))
}
